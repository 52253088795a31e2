package wire

import (
	"errors"
	"testing"
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
