package wire

import (
	"strings"
	"testing"
)

type internedName struct {
	Name string `msgpack:"name,intern"`
}

// The library remembers the strings of fields tagged intern and writes a
// repeat as an index into them, in later calls of the same encoder too:
// with the pooled encoder, every message after the first carried the name
// as an extension, which a reader decodes to nil.
func TestLimits_Encode_internedStringAcrossMessages(t *testing.T) {
	t.Parallel()
	put := &ClientOpMessage{ClientOp: ClientOp{MapName: "m", Key: "k", OpType: "PUT", Record: &LWWRecord{Value: internedName{"alice"}}}}
	for i := range 10 {
		b, err := DefaultLimits().Encode(put)
		if err != nil {
			t.Fatal(err)
		}
		m, err := DefaultLimits().Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if v, _ := plain(m.(*ClientOpMessage).Record.Value).(map[string]any); v["name"] != "alice" {
			t.Fatalf("message %d: value %#v, want name alice", i, m.(*ClientOpMessage).Record.Value)
		}
	}
}

type internedPair struct {
	A string `msgpack:"a,intern"`
	B string `msgpack:"b,intern"`
}

// A value repeating a string of fields tagged intern is refused: the
// library writes the repeat as a reference to the first, which a reader
// decodes to nil (it was stored so, silently).
func TestLimits_Encode_internedStringRepeatedInAValue(t *testing.T) {
	t.Parallel()
	put := func(v any) Message {
		return &ClientOpMessage{ClientOp: ClientOp{MapName: "m", Key: "k", OpType: "PUT", Record: &LWWRecord{Value: v}}}
	}
	if _, err := DefaultLimits().Encode(put(internedPair{"xyz", "xyz"})); err == nil || !strings.Contains(err.Error(), "intern") {
		t.Fatalf("Encode of a repeated interned string: %v, want it refused", err)
	}
	b, err := DefaultLimits().Encode(put(internedPair{"xyz", "abc"}))
	if err != nil {
		t.Fatal(err)
	}
	m, err := DefaultLimits().Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := plain(m.(*ClientOpMessage).Record.Value).(map[string]any); v["a"] != "xyz" || v["b"] != "abc" {
		t.Fatalf("value %#v", m.(*ClientOpMessage).Record.Value)
	}
}

// The library's dictionary outlives its call: the wire encoder's own
// strings written after a value with a field tagged intern (a sibling
// string, the record's nodeId, a field name) went through the same
// library encoder and a repeat came out as a reference a reader cannot
// resolve.
func TestLimits_Encode_internedStringAfterTheValue(t *testing.T) {
	t.Parallel()
	put := &ClientOpMessage{ClientOp: ClientOp{MapName: "m", Key: "k", OpType: "PUT", Record: &LWWRecord{
		Value:     map[string]any{"a": internedName{"alice"}, "b": "alice"},
		Timestamp: Timestamp{Millis: 1, NodeID: "alice"},
	}}}
	b, err := DefaultLimits().Encode(put)
	if err != nil {
		t.Fatal(err)
	}
	m, err := DefaultLimits().Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	rec := m.(*ClientOpMessage).Record
	if v, _ := plain(rec.Value).(map[string]any); v["b"] != "alice" || rec.Timestamp.NodeID != "alice" {
		t.Fatalf("value %#v, nodeId %q: want b and nodeId alice", rec.Value, rec.Timestamp.NodeID)
	}
}

// Nor did the dictionary end with the message: the pooled encoder wrote
// the next message's strings (another op's key) as references into it.
func TestLimits_Encode_internedStringInTheNextMessage(t *testing.T) {
	t.Parallel()
	put := &ClientOpMessage{ClientOp: ClientOp{MapName: "m", Key: "k", OpType: "PUT", Record: &LWWRecord{Value: internedName{"alice"}}}}
	next := &ClientOpMessage{ClientOp: ClientOp{MapName: "m", Key: "alice", OpType: "REMOVE"}}
	for i := range 10 {
		if _, err := DefaultLimits().Encode(put); err != nil {
			t.Fatal(err)
		}
		b, err := DefaultLimits().Encode(next)
		if err != nil {
			t.Fatal(err)
		}
		m, err := DefaultLimits().Decode(b)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if k := m.(*ClientOpMessage).Key; k != "alice" {
			t.Fatalf("message %d: key %q, want alice", i, k)
		}
	}
}
