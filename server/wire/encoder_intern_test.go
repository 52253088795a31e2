package wire

import "testing"

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
		if v, _ := m.(*ClientOpMessage).Record.Value.(map[string]any); v["name"] != "alice" {
			t.Fatalf("message %d: value %#v, want name alice", i, m.(*ClientOpMessage).Record.Value)
		}
	}
}
