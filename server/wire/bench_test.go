package wire

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// Benchmarks of the hot paths (CLIENT_OP, OP_BATCH in; OP_ACK,
// SERVER_EVENT out). Each Decode benchmark has a "generic" twin that
// decodes the same bytes with the msgpack library into interface{} — the
// baseline measured in the same run; compare ns/op of the pair.

func benchFrames(b *testing.B) map[string][]byte {
	b.Helper()
	out := map[string][]byte{}
	for _, name := range []string{"CLIENT_OP", "OP_BATCH", "QUERY_SUB", "SERVER_EVENT"} {
		raw, err := os.ReadFile(filepath.Join(fixtureDir, name+".msgpack"))
		if err != nil {
			b.Fatal(err)
		}
		out[name] = raw
	}
	// A 100-op batch as the TS client sends it after a reconnect.
	ops := make([]ClientOp, 100)
	for i := range ops {
		ops[i] = ClientOp{ID: fmt.Sprint(i + 1), MapName: "todos", Key: fmt.Sprintf("item-%d", i), OpType: "PUT",
			Record: &LWWRecord{Value: map[string]any{"title": "buy milk", "done": false, "n": int64(i)},
				Timestamp: Timestamp{Millis: 1700000000000 + uint64(i), Counter: 0, NodeID: "client-abc"}}}
	}
	raw, err := Encode(&OpBatch{Ops: ops})
	if err != nil {
		b.Fatal(err)
	}
	out["OP_BATCH_100"] = raw
	return out
}

func BenchmarkDecode(b *testing.B) {
	frames := benchFrames(b)
	for _, name := range []string{"CLIENT_OP", "OP_BATCH", "OP_BATCH_100", "QUERY_SUB"} {
		raw := frames[name]
		b.Run(name+"/wire", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				if _, err := Decode(raw); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/generic", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				var v any
				if err := msgpack.Unmarshal(raw, &v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEncode(b *testing.B) {
	ack := &OpAck{LastID: "12345", AchievedLevel: Applied}
	ev := &ServerEvent{MapName: "todos", EventType: EventPut, Key: "item-1",
		Record: &LWWRecord{Value: map[string]any{"title": "buy milk", "done": false},
			Timestamp: Timestamp{Millis: 1700000000000, NodeID: "client-abc"}}}
	for _, m := range []Message{ack, ev} {
		b.Run(m.Type(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Encode(m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchTodo is a user value of Go structs, encoded by the msgpack library
// after the checks of the frame limit and depth walk it.
type benchTodo struct {
	Title string   `msgpack:"title"`
	Done  bool     `msgpack:"done"`
	N     int64    `msgpack:"n"`
	Tags  []string `msgpack:"tags,omitempty"`
	Note  string   `msgpack:"note,omitempty"`
}

type benchList struct {
	Name  string      `msgpack:"name"`
	Items []benchTodo `msgpack:"items"`
}

// BenchmarkEncodeUserValue encodes a CLIENT_OP as the Go client does
// (Limits.Encode, held to the frame limit) with a user value of a map, of
// a struct, and of a struct holding 100 structs.
func BenchmarkEncodeUserValue(b *testing.B) {
	items := make([]benchTodo, 100)
	for i := range items {
		items[i] = benchTodo{Title: "buy milk", N: int64(i), Tags: []string{"home"}}
	}
	values := []struct {
		name  string
		value any
	}{
		{"map", map[string]any{"title": "buy milk", "done": false, "n": int64(1)}},
		{"struct", benchTodo{Title: "buy milk", N: 1}},
		{"struct100", &benchList{Name: "groceries", Items: items}},
	}
	limits := DefaultLimits()
	for _, v := range values {
		m := &ClientOpMessage{ClientOp{ID: "1", MapName: "todos", Key: "item-1", OpType: "PUT",
			Record: &LWWRecord{Value: v.value, Timestamp: Timestamp{Millis: 1700000000000, NodeID: "client-abc"}}}}
		b.Run(v.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := limits.Encode(m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
