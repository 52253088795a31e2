package record

import (
	"bytes"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

func benchRecords() map[string]RecordValue {
	ts := Timestamp{Millis: 1700000000000, Counter: 3, NodeID: "node-b"}
	profile := MapValue(
		Field{"name", StringValue("Alice")}, Field{"age", IntValue(30)}, Field{"score", FloatValue(0.75)},
		Field{"tags", ArrayValue(StringValue("a"), StringValue("b"))}, Field{"active", BoolValue(true)})
	return map[string]RecordValue{
		"lww-int": NewLWW(IntValue(42), ts),
		"lww-map": NewLWW(profile, ts),
		"ormap-3": NewORMap([]ORMapEntry{
			{Value: profile, Tag: ts.String(), Timestamp: ts},
			{Value: StringValue("x"), Tag: "1700000000001:0:node-a", Timestamp: ts},
			{Value: IntValue(7), Tag: "1700000000002:0:node-a", Timestamp: ts},
		}, []string{"1699999999999:0:node-c"}),
	}
}

// BenchmarkEncode compares Encode with the msgpack package's reflection
// encoder writing the same bytes (the mirror types of the differential test).
//
//	go test ./server/record -run '^$' -bench 'Encode|Decode' -benchtime 20000x
func BenchmarkEncode(b *testing.B) {
	for name, rv := range benchRecords() {
		b.Run(name+"/streaming", func(b *testing.B) {
			b.ReportAllocs()
			var buf []byte
			for i := 0; i < b.N; i++ {
				var err error
				if buf, err = Encode(buf[:0], &rv); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/reflection-baseline", func(b *testing.B) {
			b.ReportAllocs()
			var buf bytes.Buffer
			enc := msgpack.NewEncoder(&buf)
			enc.UseCompactInts(true)
			enc.SetSortMapKeys(true)
			for i := 0; i < b.N; i++ {
				buf.Reset()
				if err := enc.Encode(mirrorRecord(rv)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	for name, rv := range benchRecords() {
		in, err := Encode(nil, &rv)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name+"/streaming", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(in)))
			for i := 0; i < b.N; i++ {
				if _, err := Decode(in); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/reflection-baseline", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(in)))
			for i := 0; i < b.N; i++ {
				var x map[string]any
				if err := msgpack.Unmarshal(in, &x); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
