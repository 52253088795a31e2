package wire

import (
	"errors"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

type depthNode struct {
	V    int        `msgpack:"v"`
	Next *depthNode `msgpack:"next,omitempty"`
}

// The msgpack library writes Go structs with no depth count: Encode
// checks what it wrote against MaxDepth as it checks maps and slices, so
// that it never writes a message its own decoder refuses as too deep.
func TestLimits_Encode_structValueDepth(t *testing.T) {
	t.Parallel()
	list := func(n int) *depthNode {
		var l *depthNode
		for i := range n {
			l = &depthNode{V: i, Next: l}
		}
		return l
	}
	put := func(v any) Message {
		return &ClientOpMessage{ClientOp: ClientOp{MapName: "m", Key: "k", OpType: "PUT", Record: &LWWRecord{Value: v}}}
	}
	l := DefaultLimits()
	// Alone, and nested in a slice (where the encoder counted levels
	// before the library took over).
	for _, v := range []any{list(DefaultMaxDepth + 10), []any{list(DefaultMaxDepth + 10)}} {
		b, err := l.Encode(put(v))
		if err == nil {
			_, derr := l.Decode(b)
			t.Fatalf("Encode of structs nested %d deep: no error; Decode: %v", DefaultMaxDepth+10, derr)
		}
		var ee *EncodeError
		if !errors.As(err, &ee) {
			t.Fatalf("Encode: %v, want an *EncodeError", err)
		}
	}
	b, err := l.Encode(put(list(10)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Decode(b); err != nil {
		t.Fatal(err)
	}
}

type cyclicNode struct {
	Next   *cyclicNode `msgpack:"next"`
	Parent *cyclicNode `msgpack:"-"` // a back pointer the library does not write
	Items  []any       `msgpack:"items"`
}

// A cyclic value of Go structs is refused, not handed to the msgpack
// library, which recursed until the stack overflowed: a fatal error that
// killed the process (the client's user's). A back pointer tagged "-",
// which the library does not follow, is no cycle.
func TestLimits_Encode_cyclicStructValue(t *testing.T) {
	t.Parallel()
	put := func(v any) Message {
		return &ClientOpMessage{ClientOp: ClientOp{MapName: "m", Key: "k", OpType: "PUT", Record: &LWWRecord{Value: v}}}
	}
	self := &cyclicNode{}
	self.Next = self
	viaSlice := &cyclicNode{}
	viaSlice.Items = []any{viaSlice}
	viaMap := map[string]any{}
	viaMap["x"] = &cyclicNode{Items: []any{viaMap}}
	for name, v := range map[string]any{"self": self, "through a slice": viaSlice, "through a map": viaMap} {
		_, err := DefaultLimits().Encode(put(v))
		var ee *EncodeError
		if !errors.As(err, &ee) {
			t.Errorf("%s: Encode = %v, want an *EncodeError", name, err)
		}
	}
	child := &cyclicNode{}
	root := &cyclicNode{Next: child}
	child.Parent = root
	b, err := DefaultLimits().Encode(put(root))
	if err != nil {
		t.Fatalf("a tree with back pointers tagged \"-\": %v", err)
	}
	if _, err := DefaultLimits().Decode(b); err != nil {
		t.Fatal(err)
	}
}

// embLink is embedded in embNode: the library writes its fields inline,
// in embNode's own map, so each node of a list is one level.
type embLink struct {
	V    int      `msgpack:"v"`
	Next *embNode `msgpack:"next,omitempty"`
}

type embNode struct {
	embLink
}

type omitBackNode struct {
	Next   *omitBackNode `msgpack:"next,omitempty"`
	Parent *omitBackNode `msgpack:"-,omitempty"` // not written: its name is "-"
}

// Values the library writes within the depth limit are encoded: the walk
// that guards the library from cycles follows what it writes, so an
// embedded struct (written inline, no level of its own) and a field whose
// tag names it "-" with options (not written) do not count.
func TestLimits_Encode_structValueAsTheLibraryWritesIt(t *testing.T) {
	t.Parallel()
	put := func(v any) Message {
		return &ClientOpMessage{ClientOp: ClientOp{MapName: "m", Key: "k", OpType: "PUT", Record: &LWWRecord{Value: v}}}
	}
	var list *embNode
	for i := range DefaultMaxDepth * 2 / 3 { // written that deep; walked as twice that
		list = &embNode{embLink{V: i, Next: list}}
	}
	child := &omitBackNode{}
	root := &omitBackNode{Next: child}
	child.Parent = root
	for name, v := range map[string]any{"embedded struct": list, "field tagged -,omitempty": root} {
		b, err := DefaultLimits().Encode(put(v))
		if err != nil {
			t.Errorf("%s: Encode: %v", name, err)
			continue
		}
		if _, err := DefaultLimits().Decode(b); err != nil {
			t.Errorf("%s: Decode: %v", name, err)
		}
	}
}

// selfEmbedded embeds a pointer to its own type.
type selfEmbedded struct {
	*selfEmbedded
	X int `msgpack:"x"`
}

// A type that embeds itself is refused, whatever its value: the library,
// listing the fields it writes inline, recursed through the embedding
// until the stack overflowed (a nil pointer too), killing the process.
func TestLimits_Encode_typeEmbeddingItself(t *testing.T) {
	t.Parallel()
	put := func(v any) Message {
		return &ClientOpMessage{ClientOp: ClientOp{MapName: "m", Key: "k", OpType: "PUT", Record: &LWWRecord{Value: v}}}
	}
	cyclic := &selfEmbedded{X: 1}
	cyclic.selfEmbedded = cyclic
	for name, v := range map[string]any{"nil": &selfEmbedded{X: 1}, "cyclic": cyclic, "in a slice": []any{selfEmbedded{X: 1}}} {
		_, err := DefaultLimits().Encode(put(v))
		var ee *EncodeError
		if !errors.As(err, &ee) {
			t.Errorf("%s: Encode = %v, want an *EncodeError", name, err)
		}
	}
}

// inlineSelfEncoder encodes itself, but embedded with the option inline
// the library writes its fields in the embedding struct's map all the same.
type inlineSelfEncoder struct {
	Next *inlineForcedNode `msgpack:"next"`
}

func (inlineSelfEncoder) EncodeMsgpack(e *msgpack.Encoder) error { return e.EncodeNil() }

// OtherSelfEncoder makes EncodeMsgpack ambiguous in inlineForcedNode, so
// that inlineForcedNode does not encode itself.
type OtherSelfEncoder struct{}

func (OtherSelfEncoder) EncodeMsgpack(e *msgpack.Encoder) error { return e.EncodeNil() }

type inlineForcedNode struct {
	inlineSelfEncoder `msgpack:",inline"`
	OtherSelfEncoder  `msgpack:"o"`
	V                 int `msgpack:"v"`
}

type inlinePtrInner struct{ A int }

// labels is a named slice of strings, embedded unexported in labelled.
type labels []string

type labelled struct {
	labels
	Name string
}

type inlinePtrOuter struct {
	*inlinePtrInner `msgpack:",inline"`
	B               int
}

// A struct embedded with the option inline is written inline even when
// its type encodes itself: a cycle through its fields overflowed the
// stack inside the library (the walk took its fields for unwritten),
// killing the process. A pointer embedded with the option inline, or an
// unexported embedded slice of strings, made the library panic: in a
// client, in the Put that flushed it, holding the send lock, and in every
// later flush of the queue it stayed in.
func TestLimits_Encode_forcedInline(t *testing.T) {
	t.Parallel()
	put := func(v any) Message {
		return &ClientOpMessage{ClientOp: ClientOp{MapName: "m", Key: "k", OpType: "PUT", Record: &LWWRecord{Value: v}}}
	}
	cyclic := &inlineForcedNode{V: 1}
	cyclic.Next = cyclic
	for name, v := range map[string]any{"cycle through a forced inline": cyclic, "pointer embedded inline": inlinePtrOuter{B: 1},
		"unexported embedded slice": labelled{labels{"a"}, "n"}} {
		_, err := DefaultLimits().Encode(put(v))
		var ee *EncodeError
		if !errors.As(err, &ee) {
			t.Errorf("%s: Encode = %v, want an *EncodeError", name, err)
		}
	}
	// Acyclic, it is written as the library writes it.
	b, err := DefaultLimits().Encode(put(&inlineForcedNode{inlineSelfEncoder: inlineSelfEncoder{Next: &inlineForcedNode{V: 2}}, V: 1}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DefaultLimits().Decode(b); err != nil {
		t.Fatal(err)
	}
}

type sharedNode struct {
	L, R *sharedNode
}

// Limits.Encode stops a message once it cannot fit MaxMessageBytes: a
// value whose parts are shared 40 levels deep, written once per path,
// took time exponential in its depth. Encode, which the server's answers
// use, has no such bound.
func TestLimits_Encode_sharedPartsOverTheFrameLimit(t *testing.T) {
	t.Parallel()
	put := func(v any) Message {
		return &ClientOpMessage{ClientOp: ClientOp{MapName: "m", Key: "k", OpType: "PUT", Record: &LWWRecord{Value: v}}}
	}
	n := &sharedNode{}
	var s any = 1
	for range 40 {
		n = &sharedNode{L: n, R: n}
		s = []any{s, s}
	}
	for _, v := range []any{n, s, []any{"x", n}} {
		_, err := DefaultLimits().Encode(put(v))
		var ee *EncodeError
		if !errors.Is(err, ErrTooLarge) || !errors.As(err, &ee) {
			t.Errorf("Encode of a %T shared 40 levels deep = %v, want an *EncodeError of ErrTooLarge", v, err)
		}
	}
	big := make([]any, DefaultMaxMessageBytes)
	for i := range big {
		big[i] = i % 100
	}
	if _, err := Encode(put(big)); err != nil {
		t.Errorf("Encode of a message over the frame limit: %v", err)
	}
}

// emptyFields has fields the library leaves out when empty: a slice or
// map with no elements (nil or not), as it decides.
type emptyFields struct {
	A          int            `msgpack:"a"`
	B, C, D, E []int          `msgpack:",omitempty"`
	F, G, H, I map[string]int `msgpack:",omitempty"`
}

// Fields the library leaves out take no byte of the frame, so they count
// for no part of it: a value that fits is not refused as over the limit.
func TestLimits_Encode_omittedEmptyFieldsFit(t *testing.T) {
	t.Parallel()
	put := func(v any) Message {
		return &ClientOpMessage{ClientOp: ClientOp{MapName: "m", Key: "k", OpType: "PUT", Record: &LWWRecord{Value: v}}}
	}
	// Each element writes 4 bytes (a map of "a": 0) whatever its empty
	// fields: 1 MB in all, half the frame limit, for 2.25 million fields.
	v := struct{ L []emptyFields }{L: make([]emptyFields, 250_000)}
	for i := range v.L {
		v.L[i] = emptyFields{B: []int{}, C: []int{}, D: []int{}, E: []int{}, F: map[string]int{}, G: map[string]int{}, H: map[string]int{}, I: map[string]int{}}
	}
	b, err := DefaultLimits().Encode(put(v))
	if err != nil {
		t.Fatalf("Encode of a value of empty fields left out: %v", err)
	}
	if len(b) > DefaultMaxMessageBytes/2 {
		t.Fatalf("encoded to %d bytes", len(b))
	}
}
