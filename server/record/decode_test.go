package record

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"runtime"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// f64 is the msgpack float64 encoding of f, in hx notation.
func f64(f float64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], math.Float64bits(f))
	return "cb " + hexSpaced(b[:])
}

// f32 is the msgpack float32 encoding of f, in hx notation.
func f32(f float32) string {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], math.Float32bits(f))
	return "ca " + hexSpaced(b[:])
}

func hexSpaced(b []byte) string {
	var s strings.Builder
	for _, x := range b {
		s.WriteString(" ")
		s.WriteString(strings.ToLower(string("0123456789abcdef"[x>>4])) + string("0123456789abcdef"[x&15]))
	}
	return s.String()
}

// lwwWith builds an LWW record whose timestamp map is ts (a hx fragment
// including its map header).
func lwwWith(ts string) string {
	return `81 a3'lww' 82 a5'value' 81 a3'Int' 2a a9'timestamp' ` + ts
}

func TestDecode_accepts(t *testing.T) {
	t.Parallel()
	want42 := NewLWW(IntValue(42), Timestamp{Millis: 1700000001000, Counter: 3, NodeID: "node-b"})
	cases := []struct {
		name string
		in   string
		want RecordValue
	}{
		{"fields in another order",
			`81 a3'lww' 82 a9'timestamp' 83 a6'nodeId' a6'node-b' a7'counter' 03 a6'millis' cf 00 00 01 8b cf e5 6b e8 a5'value' 81 a3'Int' 2a`,
			want42},
		{"unknown fields skipped at every level",
			`81 a3'lww' 84 a5'extra' 82 a1'a' 93 01 02 03 a1'b' 81 a1'c' c0 a5'value' 81 a3'Int' 2a
			 a9'timestamp' 84 a6'millis' cf 00 00 01 8b cf e5 6b e8 a4'junk' d4 01 00 a7'counter' 03 a6'nodeId' a6'node-b'
			 a5'ttlMs' c0`,
			want42},
		{"whole float64 millis as the TypeScript client sends",
			lwwWith(`83 a6'millis' ` + f64(1700000001000) + ` a7'counter' 03 a6'nodeId' a6'node-b'`), want42},
		{"whole float64 counter", lwwWith(`83 a6'millis' cf 00 00 01 8b cf e5 6b e8 a7'counter' ` + f64(3) + ` a6'nodeId' a6'node-b'`), want42},
		{"whole float32 counter", lwwWith(`83 a6'millis' cf 00 00 01 8b cf e5 6b e8 a7'counter' ` + f32(3) + ` a6'nodeId' a6'node-b'`), want42},
		{"map16 headers as msgpackr writes them",
			`de 00 01 a3'lww' de 00 02 a5'value' de 00 01 a3'Int' 2a a9'timestamp' de 00 03 a6'millis' cf 00 00 01 8b cf e5 6b e8
			 a7'counter' 03 a6'nodeId' a6'node-b'`, want42},
		{"counter as uint8 marker", lwwWith(`83 a6'millis' cf 00 00 01 8b cf e5 6b e8 a7'counter' cc 03 a6'nodeId' a6'node-b'`), want42},
		{"variant and fields by index",
			`81 00 82 00 81 02 2a 01 83 00 cf 00 00 01 8b cf e5 6b e8 01 03 02 a6'node-b'`, want42},
		{"structs as positional arrays",
			`81 a3'lww' 92 81 a3'Int' 2a 93 cf 00 00 01 8b cf e5 6b e8 03 a6'node-b'`, want42},
		{"strings as binary holding UTF-8",
			lwwWith(`83 a6'millis' cf 00 00 01 8b cf e5 6b e8 a7'counter' 03 a6'nodeId' c4 06 'node-b'`), want42},
		{"negative zero float is zero",
			lwwWith(`83 a6'millis' ` + f64(math.Copysign(0, -1)) + ` a7'counter' 00 a6'nodeId' a1'n'`),
			NewLWW(IntValue(42), Timestamp{NodeID: "n"})},
		{"largest millis as float64 below 2^64",
			lwwWith(`83 a6'millis' ` + f64(18446744073709549568) + ` a7'counter' ` + f64(4294967295) + ` a6'nodeId' a1'n'`),
			NewLWW(IntValue(42), Timestamp{Millis: 18446744073709549568, Counter: math.MaxUint32, NodeID: "n"})},
		{"largest millis as uint64",
			lwwWith(`83 a6'millis' cf ff ff ff ff ff ff ff ff a7'counter' ce ff ff ff ff a6'nodeId' a1'n'`),
			NewLWW(IntValue(42), Timestamp{Millis: math.MaxUint64, Counter: math.MaxUint32, NodeID: "n"})},
		{"tombstones absent", `81 a5'orMap' 81 a7'records' 90`, NewORMap(nil, nil)},
		{"null with nil content", `81 a3'lww' 82 a5'value' 81 a4'Null' c0 a9'timestamp' 83 a6'millis' 01 a7'counter' 00 a6'nodeId' a1'n'`,
			NewLWW(NullValue(), Timestamp{Millis: 1, NodeID: "n"})},
		{"float content given as integer", `81 a5'Float' 03`, legacy(FloatValue(3))},
		{"bytes given as binary", `81 a5'Bytes' c4 02 01 02`, legacy(BytesValue([]byte{1, 2}))},
		{"map with duplicate keys keeps the last", `81 a3'Map' 82 a1'k' 81 a3'Int' 01 a1'k' 81 a3'Int' 02`,
			legacy(MapValue(Field{"k", IntValue(2)}))},
		{"map keys sorted on decode", `81 a3'Map' 82 a1'b' a4'Null' a1'a' a4'Null'`,
			legacy(MapValue(Field{"a", NullValue()}, Field{"b", NullValue()}))},
		{"ttlMs as whole float", `81 a5'orMap' 81 a7'records' 91 84 a5'ttlMs' ` + f64(60000) + ` a5'value' a4'Null' a3'tag' a1't' a9'timestamp' 83 a6'millis' 01 a7'counter' 00 a6'nodeId' a1'n'`,
			NewORMap([]ORMapEntry{{Value: NullValue(), Tag: "t", Timestamp: Timestamp{Millis: 1, NodeID: "n"}, TTLMs: 60000}}, nil)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := Decode(hx(t, tc.in))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !got.Equal(&tc.want) {
				t.Fatalf("Decode = %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func legacy(v Value) RecordValue {
	return RecordValue{Kind: KindLWW, LWW: LWW{Value: v}, LegacyBare: true}
}

func TestDecode_rejects(t *testing.T) {
	t.Parallel()
	ts := func(millis, counter string) string {
		return lwwWith(`83 a6'millis' ` + millis + ` a7'counter' ` + counter + ` a6'nodeId' a1'n'`)
	}
	deep := strings.Repeat("81 a5'Array' 91 ", MaxStoredDepth) + "a4'Null'"
	cases := []struct {
		name, in, path string
	}{
		{"empty input", ``, ""},
		{"truncated", goldenLWW[:40], "lww"},
		{"trailing bytes", goldenLWW + ` c0`, ""},
		{"fractional millis", ts(f64(1.5), `00`), "lww.timestamp.millis"},
		{"negative millis", ts(`ff`, `00`), "lww.timestamp.millis"},
		{"negative float millis", ts(f64(-1), `00`), "lww.timestamp.millis"},
		{"millis 2^64 as float", ts(f64(18446744073709551616), `00`), "lww.timestamp.millis"},
		{"NaN millis", ts(f64(math.NaN()), `00`), "lww.timestamp.millis"},
		{"infinite millis", ts(f64(math.Inf(1)), `00`), "lww.timestamp.millis"},
		{"counter above u32", ts(`01`, `cf 00 00 00 01 00 00 00 00`), "lww.timestamp.counter"},
		{"counter 2^32 as float", ts(`01`, f64(4294967296)), "lww.timestamp.counter"},
		{"millis as string", ts(`a1'1'`, `00`), "lww.timestamp.millis"},
		{"millis nil", ts(`c0`, `00`), "lww.timestamp.millis"},
		{"missing nodeId", lwwWith(`82 a6'millis' 01 a7'counter' 00`), "lww.timestamp"},
		{"missing timestamp", `81 a3'lww' 81 a5'value' a4'Null'`, "lww"},
		{"missing records", `81 a5'orMap' 81 aa'tombstones' 90`, "orMap"},
		{"duplicate field", lwwWith(`84 a6'millis' 01 a6'millis' 01 a7'counter' 00 a6'nodeId' a1'n'`), "lww.timestamp"},
		{"unknown record variant", `81 a3'xyz' 80`, ""},
		{"unknown value variant", `81 a3'lww' 82 a5'value' 81 a4'Nope' c0 a9'timestamp' 80`, "lww.value"},
		{"record variant without content", `a3'lww'`, ""},
		{"newtype variant without content", `a3'Int'`, ""},
		{"two-entry variant map", `82 a3'lww' 80 a5'orMap' 80`, ""},
		{"int out of i64 range", `81 a3'Int' cf 80 00 00 00 00 00 00 00`, "Int"},
		{"int given as float", `81 a3'Int' ` + f64(1), "Int"},
		{"bool given as int", `81 a4'Bool' 01`, "Bool"},
		{"byte out of range", `81 a5'Bytes' 91 cd 01 00`, "Bytes[0]"},
		{"negative byte", `81 a5'Bytes' 91 ff`, "Bytes[0]"},
		{"invalid UTF-8 string", `81 a6'String' a1 ff`, "String"},
		{"invalid UTF-8 map key", `81 a3'Map' 81 a1 ff a4'Null'`, "Map.(key)"},
		{"non-string map key", `81 a3'Map' 81 01 a4'Null'`, "Map.(key)"},
		{"invalid UTF-8 tag", `81 a5'orMap' 81 a7'records' 91 83 a5'value' a4'Null' a3'tag' a1 ff a9'timestamp' 83 a6'millis' 01 a7'counter' 00 a6'nodeId' a1'n'`,
			"orMap.records[0].tag"},
		{"tombstones nil", `81 a5'orMap' 82 a7'records' 90 aa'tombstones' c0`, "orMap.tombstones"},
		{"struct array too long", `81 a3'lww' 93 a4'Null' 93 01 00 a1'n' c0`, "lww"},
		{"reserved code", `81 a3'lww' 82 a5'value' a4'Null' a9'timestamp' c1`, "lww.timestamp"},
		{"nesting deeper than the limit", deep, ""},
		{"hostile array length", `81 a5'Array' dd ff ff ff ff`, "Array[0]"},
		{"hostile string length", `81 a6'String' db ff ff ff ff 'abc'`, "String"},
		{"hostile map length", `81 a3'Map' df ff ff ff ff`, "Map.(key)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Decode(hx(t, tc.in))
			if err == nil {
				t.Fatal("Decode succeeded, want an error")
			}
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not match ErrMalformed", err)
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %T is not a *DecodeError", err)
			}
			if !strings.HasPrefix(de.Path, tc.path) {
				t.Fatalf("path = %q, want prefix %q (error: %v)", de.Path, tc.path, err)
			}
			if !strings.HasPrefix(err.Error(), "record: ") {
				t.Fatalf("error %q does not name the package", err)
			}
		})
	}
}

// TestDecode_hostileLengthsDoNotAllocate: a length claimed by a few bytes
// of input is checked against the input before anything is allocated for
// it, on every path: stored records, and plain values from a byte slice or
// from a stream (where only what arrives is buffered).
func TestDecode_hostileLengthsDoNotAllocate(t *testing.T) {
	stored := map[string]string{
		"array":               `81 a5'Array' dd ff ff ff ff`,
		"bytes as bin":        `81 05 c6 ff ff ff ff`,
		"bytes as bin, named": `81 a5'Bytes' c6 ff ff ff ff`,
		"unknown field":       `81 a5'orMap' 83 a1'0' c6 ff ff ff ff`,
		"string":              `81 a6'String' db ff ff ff ff`,
		"unknown ext field":   `81 a5'orMap' 83 a1'0' c9 ff ff ff ff 01`,
	}
	wire := map[string]string{
		"bin":          `c6 ff ff ff ff`,
		"bin in array": `92 01 c6 ff ff ff f0`,
		"str":          `db ff ff ff ff`,
		"array":        `dd ff ff ff ff`,
		"ext":          `c9 ff ff ff ff 01`,
	}
	check := func(t *testing.T, decode func() error) {
		t.Helper()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for i := 0; i < 4; i++ {
			if err := decode(); err == nil {
				t.Fatal("want an error")
			} else if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not match ErrMalformed", err)
			}
		}
		runtime.ReadMemStats(&after)
		// The library reads a string in steps of at most 1 MiB.
		if got := after.TotalAlloc - before.TotalAlloc; got > 16<<20 {
			t.Fatalf("4 decodes allocated %d MiB", got>>20)
		}
	}
	for name, h := range stored {
		in := hx(t, h)
		t.Run("Decode/"+name, func(t *testing.T) {
			check(t, func() error { _, err := Decode(in); return err })
		})
	}
	for name, h := range wire {
		in := hx(t, h)
		t.Run("UnmarshalWire/"+name, func(t *testing.T) {
			check(t, func() error { _, err := UnmarshalWire(in); return err })
		})
		t.Run("DecodeWire/"+name, func(t *testing.T) {
			check(t, func() error {
				// A reader without Len: the decoder sees only a stream.
				_, err := DecodeWire(msgpack.NewDecoder(io.MultiReader(bytes.NewReader(in))))
				return err
			})
		})
	}
}

func TestEncode_rejects(t *testing.T) {
	t.Parallel()
	deep := NullValue()
	for i := 0; i < MaxStoredDepth; i++ {
		deep = ArrayValue(deep)
	}
	ts := Timestamp{Millis: 1, NodeID: "n"}
	cases := []struct {
		name string
		rv   RecordValue
	}{
		{"invalid UTF-8 value", NewLWW(StringValue("\xff"), ts)},
		{"invalid UTF-8 key", NewLWW(MapValue(Field{"\xff", NullValue()}), ts)},
		{"invalid UTF-8 node id", NewLWW(NullValue(), Timestamp{NodeID: "\xff"})},
		{"invalid UTF-8 tag", NewORMap([]ORMapEntry{{Tag: "\xff", Timestamp: ts}}, nil)},
		{"invalid UTF-8 tombstone", NewORMap(nil, []string{"\xff"})},
		{"too deep", NewLWW(deep, ts)},
		{"unknown kind", RecordValue{Kind: 9}},
		{"orTombstones with records", RecordValue{Kind: KindORTombstones, ORMap: ORMap{Records: []ORMapEntry{{}}}}},
		{"legacy bare OR-Map", RecordValue{Kind: KindORMap, LegacyBare: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dst := []byte{1, 2, 3}
			out, err := Encode(dst, &tc.rv)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Encode error = %v, want ErrInvalid", err)
			}
			if !bytes.Equal(out, []byte{1, 2, 3}) {
				t.Fatalf("Encode changed dst on error: %x", out)
			}
		})
	}
}

// TestDecode_depthLimitIsExact checks that the deepest value Encode accepts
// decodes, so the two limits agree.
func TestDecode_depthLimitIsExact(t *testing.T) {
	t.Parallel()
	v := NullValue()
	var last []byte
	for {
		next := ArrayValue(v)
		rv := NewLWW(next, Timestamp{NodeID: "n"})
		b, err := Encode(nil, &rv)
		if err != nil {
			break
		}
		v, last = next, b
	}
	if _, err := Decode(last); err != nil {
		t.Fatalf("the deepest encodable value does not decode: %v", err)
	}
}

// TestDecode_refusedRowAllocatesInProportionToItsSize checks the promise of
// the package doc that Decode "bounds every preallocation by the input
// size": a stored value of 1 MiB whose container claims one element per
// remaining byte (each the reserved code 0xc1) must be refused
// without allocating a hundred times its size. Stored values come from the
// backend, which may be a sandboxed plugin answering with up to 32 MiB.
func TestDecode_refusedRowAllocatesInProportionToItsSize(t *testing.T) {
	n := 1 << 20
	header := func(prefix string) []byte {
		b := hx(t, prefix)
		return append(b, 0xdd, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	cases := map[string][]byte{
		"orMap records":    header(`81 a5'orMap' 81 a7'records'`),
		"Array value":      header(`81 a3'lww' 82 a9'timestamp' 83 a6'millis' 01 a7'counter' 00 a6'nodeId' a1'n' a5'value' 81 a5'Array'`),
		"orMap tombstones": header(`81 a5'orMap' 82 a7'records' 90 aa'tombstones'`),
	}
	for name, in := range cases {
		in = append(in, bytes.Repeat([]byte{0xc1}, n)...)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := Decode(in)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("%s: Decode error = %v, want ErrMalformed", name, err)
		}
		if got := after.TotalAlloc - before.TotalAlloc; got > 8<<20 {
			t.Errorf("%s: refusing a value of %d KiB allocated %d MiB", name, len(in)>>10, got>>20)
		}
	}
}
