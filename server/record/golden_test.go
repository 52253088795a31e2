package record

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
)

// hx builds bytes from a dump in the notation of the reference: hex byte
// pairs, and 'text' for the raw bytes of a string (its header byte is
// written separately, as in the reference).
func hx(t testing.TB, dump string) []byte {
	t.Helper()
	var out []byte
	for i := 0; i < len(dump); {
		switch c := dump[i]; {
		case c == ' ' || c == '\n' || c == '\t':
			i++
		case c == '\'':
			j := strings.IndexByte(dump[i+1:], '\'')
			if j < 0 {
				t.Fatalf("hx: unterminated string in %q", dump)
			}
			out = append(out, dump[i+1:i+1+j]...)
			i += j + 2
		default:
			if i+2 > len(dump) {
				t.Fatalf("hx: odd hex digit at %d in %q", i, dump)
			}
			b, err := hex.DecodeString(dump[i : i+2])
			if err != nil {
				t.Fatalf("hx: %v in %q", err, dump)
			}
			out = append(out, b...)
			i += 2
		}
	}
	return out
}

func mustEncode(t testing.TB, rv RecordValue) []byte {
	t.Helper()
	b, err := Encode(nil, &rv)
	if err != nil {
		t.Fatalf("Encode(%+v): %v", rv, err)
	}
	return b
}

func mustDecode(t testing.TB, b []byte) RecordValue {
	t.Helper()
	rv, err := Decode(b)
	if err != nil {
		t.Fatalf("Decode(%x): %v", b, err)
	}
	return rv
}

// The exact bytes of reference §1.3, taken from TopGun's golden WAL corpus
// (legacy_wal_corpus_349a.bin).
const (
	goldenLWW = `81 a3'lww' 82 a5'value' 81 a3'Int' 2a a9'timestamp' 83 a6'millis' cf 00 00 01 8b cf e5 6b e8
	             a7'counter' 03 a6'nodeId' a6'node-b'`
	goldenORMapOnePrefix  = `81 a5'orMap' 81 a7'records' 91 83 a5'value' 81 a3'Int' 07 a3'tag'`
	goldenORMapTwoPrefix  = `81 a5'orMap' 82 a7'records' 92`
	goldenORMapTwoSuffix  = `aa'tombstones' 92 aa'tag-gone-1' aa'tag-gone-2'`
	goldenORTombstones    = `81 ac'orTombstones' 81 a4'tags' 92 a6'tag-e1' a6'tag-e2'`
	goldenLegacyBareValue = `81 a6'String' a6'legacy'`
)

func TestGolden_LWW(t *testing.T) {
	t.Parallel()
	want := hx(t, goldenLWW)
	rv := NewLWW(IntValue(42), Timestamp{Millis: 1700000001000, Counter: 3, NodeID: "node-b"})
	if got := mustEncode(t, rv); !bytes.Equal(got, want) {
		t.Fatalf("Encode:\n got %x\nwant %x", got, want)
	}
	back := mustDecode(t, want)
	if !back.Equal(&rv) {
		t.Fatalf("Decode = %+v, want %+v", back, rv)
	}
}

// entryHex is the spec-derived encoding of an OrMapEntry after its "tag" key.
func entryTail(tag, ts string) string { return tag + " a9'timestamp' " + ts }

func TestGolden_ORMapOneRecord(t *testing.T) {
	t.Parallel()
	rv := NewORMap([]ORMapEntry{{
		Value: IntValue(7), Tag: "1700000000000:0:node-a",
		Timestamp: Timestamp{Millis: 1700000000000, Counter: 0, NodeID: "node-a"},
	}}, nil)
	got := mustEncode(t, rv)
	prefix := hx(t, goldenORMapOnePrefix)
	if !bytes.HasPrefix(got, prefix) {
		t.Fatalf("Encode:\n got %x\nwant prefix %x", got, prefix)
	}
	// The rest follows the same rules: the tag string, then the timestamp map.
	want := append(prefix, hx(t, entryTail(`b6'1700000000000:0:node-a'`,
		`83 a6'millis' cf 00 00 01 8b cf e5 68 00 a7'counter' 00 a6'nodeId' a6'node-a'`))...)
	if !bytes.Equal(got, want) {
		t.Fatalf("Encode:\n got %x\nwant %x", got, want)
	}
	if back := mustDecode(t, got); !back.Equal(&rv) {
		t.Fatalf("Decode = %+v, want %+v", back, rv)
	}
}

func TestGolden_ORMapTwoRecordsTwoTombstones(t *testing.T) {
	t.Parallel()
	ts1 := Timestamp{Millis: 1, Counter: 0, NodeID: "a"}
	ts2 := Timestamp{Millis: 2, Counter: 1, NodeID: "b"}
	rv := NewORMap([]ORMapEntry{
		{Value: StringValue("x"), Tag: "t1", Timestamp: ts1},
		{Value: NullValue(), Tag: "t2", Timestamp: ts2},
	}, []string{"tag-gone-1", "tag-gone-2"})
	got := mustEncode(t, rv)
	want := hx(t, goldenORMapTwoPrefix+
		` 83 a5'value' 81 a6'String' a1'x' a3'tag' a2't1' a9'timestamp' 83 a6'millis' 01 a7'counter' 00 a6'nodeId' a1'a'`+
		` 83 a5'value' a4'Null' a3'tag' a2't2' a9'timestamp' 83 a6'millis' 02 a7'counter' 01 a6'nodeId' a1'b' `+
		goldenORMapTwoSuffix)
	if !bytes.Equal(got, want) {
		t.Fatalf("Encode:\n got %x\nwant %x", got, want)
	}
	if !bytes.HasSuffix(got, hx(t, goldenORMapTwoSuffix)) {
		t.Fatal("tombstones suffix differs from the reference")
	}
	if back := mustDecode(t, got); !back.Equal(&rv) {
		t.Fatalf("Decode = %+v, want %+v", back, rv)
	}
}

func TestGolden_ORTombstones(t *testing.T) {
	t.Parallel()
	in := hx(t, goldenORTombstones)
	rv := mustDecode(t, in)
	if rv.Kind != KindORTombstones || len(rv.ORMap.Records) != 0 ||
		strings.Join(rv.ORMap.Tombstones, ",") != "tag-e1,tag-e2" {
		t.Fatalf("Decode = %+v", rv)
	}
	if got := mustEncode(t, rv); !bytes.Equal(got, in) {
		t.Fatalf("re-encode:\n got %x\nwant %x", got, in)
	}
	if !rv.Normalize() || rv.Kind != KindORMap || len(rv.ORMap.Tombstones) != 2 {
		t.Fatalf("Normalize: %+v", rv)
	}
	want := hx(t, `81 a5'orMap' 82 a7'records' 90 aa'tombstones' 92 a6'tag-e1' a6'tag-e2'`)
	if got := mustEncode(t, rv); !bytes.Equal(got, want) {
		t.Fatalf("normalized:\n got %x\nwant %x", got, want)
	}
}

func TestGolden_LegacyBareValue(t *testing.T) {
	t.Parallel()
	in := hx(t, goldenLegacyBareValue)
	rv := mustDecode(t, in)
	if rv.Kind != KindLWW || !rv.LegacyBare || !rv.LWW.Timestamp.IsZero() || rv.LWW.Value.Text() != "legacy" {
		t.Fatalf("Decode = %+v", rv)
	}
	if got := mustEncode(t, rv); !bytes.Equal(got, in) {
		t.Fatalf("re-encode:\n got %x\nwant %x", got, in)
	}
	// A legacy null is the bare string "Null".
	if rv := mustDecode(t, hx(t, `a4'Null'`)); !rv.LegacyBare || !rv.LWW.Value.IsNull() {
		t.Fatalf("legacy null: %+v", rv)
	}
	if !rv.Normalize() || rv.LegacyBare {
		t.Fatal("Normalize did not clear LegacyBare")
	}
	want := hx(t, `81 a3'lww' 82 a5'value' 81 a6'String' a6'legacy' a9'timestamp' 83 a6'millis' 00 a7'counter' 00 a6'nodeId' a0`)
	if got := mustEncode(t, rv); !bytes.Equal(got, want) {
		t.Fatalf("normalized:\n got %x\nwant %x", got, want)
	}
}

// TestEncode_valueEncodings pins the encoding of every Value variant and the
// msgpack size classes, derived by hand from rmp-serde's rules.
func TestEncode_valueEncodings(t *testing.T) {
	t.Parallel()
	long32 := strings.Repeat("x", 32)
	long256 := strings.Repeat("y", 256)
	sixteen := make([]Value, 16)
	for i := range sixteen {
		sixteen[i] = IntValue(int64(i))
	}
	sixteenHex := ""
	for i := 0; i < 16; i++ {
		sixteenHex += " 81 a3'Int' " + hex.EncodeToString([]byte{byte(i)})
	}
	cases := []struct {
		name string
		v    Value
		want string
	}{
		{"null", NullValue(), `a4'Null'`},
		{"true", BoolValue(true), `81 a4'Bool' c3`},
		{"false", BoolValue(false), `81 a4'Bool' c2`},
		{"int 0", IntValue(0), `81 a3'Int' 00`},
		{"int 127", IntValue(127), `81 a3'Int' 7f`},
		{"int 128", IntValue(128), `81 a3'Int' cc 80`},
		{"int 256", IntValue(256), `81 a3'Int' cd 01 00`},
		{"int 65536", IntValue(65536), `81 a3'Int' ce 00 01 00 00`},
		{"int 2^32", IntValue(1 << 32), `81 a3'Int' cf 00 00 00 01 00 00 00 00`},
		{"int -1", IntValue(-1), `81 a3'Int' ff`},
		{"int -32", IntValue(-32), `81 a3'Int' e0`},
		{"int -33", IntValue(-33), `81 a3'Int' d0 df`},
		{"int -129", IntValue(-129), `81 a3'Int' d1 ff 7f`},
		{"int -32769", IntValue(-32769), `81 a3'Int' d2 ff ff 7f ff`},
		{"int min", IntValue(-1 << 63), `81 a3'Int' d3 80 00 00 00 00 00 00 00`},
		{"float 1.5", FloatValue(1.5), `81 a5'Float' cb 3f f8 00 00 00 00 00 00`},
		{"float whole stays float64", FloatValue(1), `81 a5'Float' cb 3f f0 00 00 00 00 00 00`},
		{"string empty", StringValue(""), `81 a6'String' a0`},
		{"string 32", StringValue(long32), `81 a6'String' d9 20 '` + long32 + `'`},
		{"string 256", StringValue(long256), `81 a6'String' da 01 00 '` + long256 + `'`},
		{"string utf8", StringValue("é"), `81 a6'String' a2 c3 a9`},
		{"bytes as small ints", BytesValue([]byte{1, 200, 0}), `81 a5'Bytes' 93 01 cc c8 00`},
		{"bytes empty", BytesValue(nil), `81 a5'Bytes' 90`},
		{"array", ArrayValue(NullValue(), BoolValue(true)), `81 a5'Array' 92 a4'Null' 81 a4'Bool' c3`},
		{"array 16", ArrayValue(sixteen...), `81 a5'Array' dc 00 10` + sixteenHex},
		{"map sorted", MapValue(Field{"b", IntValue(2)}, Field{"a", IntValue(1)}),
			`81 a3'Map' 82 a1'a' 81 a3'Int' 01 a1'b' 81 a3'Int' 02`},
		{"map empty", MapValue(), `81 a3'Map' 80`},
		{"nested", MapValue(Field{"k", ArrayValue(MapValue(Field{"z", FloatValue(0)}))}),
			`81 a3'Map' 81 a1'k' 81 a5'Array' 91 81 a3'Map' 81 a1'z' 81 a5'Float' cb 00 00 00 00 00 00 00 00`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rv := RecordValue{Kind: KindLWW, LWW: LWW{Value: tc.v}, LegacyBare: true}
			got := mustEncode(t, rv)
			if want := hx(t, tc.want); !bytes.Equal(got, want) {
				t.Fatalf("Encode:\n got %x\nwant %x", got, want)
			}
			back := mustDecode(t, got)
			if !back.LWW.Value.Equal(tc.v) {
				t.Fatalf("Decode = %v, want %v", back.LWW.Value, tc.v)
			}
		})
	}
}

func TestEncode_ttlExtension(t *testing.T) {
	t.Parallel()
	rv := NewORMap([]ORMapEntry{{Value: NullValue(), Tag: "t", Timestamp: Timestamp{Millis: 1, NodeID: "n"}, TTLMs: 60000}}, nil)
	got := mustEncode(t, rv)
	want := hx(t, `81 a5'orMap' 81 a7'records' 91 84 a5'value' a4'Null' a3'tag' a1't'
		a9'timestamp' 83 a6'millis' 01 a7'counter' 00 a6'nodeId' a1'n' a5'ttlMs' cd ea 60`)
	if !bytes.Equal(got, want) {
		t.Fatalf("Encode:\n got %x\nwant %x", got, want)
	}
	if back := mustDecode(t, got); back.ORMap.Records[0].TTLMs != 60000 {
		t.Fatalf("TTLMs = %d", back.ORMap.Records[0].TTLMs)
	}
}

func TestEncode_appends(t *testing.T) {
	t.Parallel()
	rv := NewLWW(IntValue(42), Timestamp{Millis: 1700000001000, Counter: 3, NodeID: "node-b"})
	dst := []byte("prefix")
	got, err := Encode(dst, &rv)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, append([]byte("prefix"), hx(t, goldenLWW)...)) {
		t.Fatalf("Encode did not append: %x", got)
	}
}
