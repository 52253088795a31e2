package record

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

var sampleStrings = []string{"", "a", "node-b", "é", "ключ", "😀", "with space:and colon", "\x00\x01", "a|b#c", "\u2028", "\uffff"}

func randString(r *rand.Rand) string {
	if r.IntN(4) == 0 {
		b := make([]rune, r.IntN(40))
		for i := range b {
			b[i] = rune(r.IntN(0x2FFFF))
			if b[i] >= 0xD800 && b[i] < 0xE000 {
				b[i] = 'x'
			}
		}
		return string(b)
	}
	return sampleStrings[r.IntN(len(sampleStrings))]
}

var sampleFloats = []float64{0, math.Copysign(0, -1), 1, -1.5, 0.1, 1e21, 1e-7, 5e-324, math.MaxFloat64, math.Inf(1), math.Inf(-1), math.NaN(), 1700000000000}

var sampleInts = []int64{0, 1, -1, 127, 128, -32, -33, 255, 256, 65535, 65536, -129, -32768, -32769, 1 << 31, 1<<32 - 1, 1 << 32, -1 << 31, -1<<31 - 1, math.MaxInt64, math.MinInt64, 1 << 53, 1<<53 + 1}

func randValue(r *rand.Rand, depth int) Value {
	n := 5
	if depth < 4 {
		n = 8
	}
	switch Type(r.IntN(n)) {
	case TypeNull:
		return NullValue()
	case TypeBool:
		return BoolValue(r.IntN(2) == 0)
	case TypeInt:
		if r.IntN(2) == 0 {
			return IntValue(sampleInts[r.IntN(len(sampleInts))])
		}
		return IntValue(int64(r.Uint64()))
	case TypeFloat:
		if r.IntN(2) == 0 {
			return FloatValue(sampleFloats[r.IntN(len(sampleFloats))])
		}
		return FloatValue(r.NormFloat64() * math.Pow(10, float64(r.IntN(40)-20)))
	case TypeString:
		return StringValue(randString(r))
	case TypeBytes:
		b := make([]byte, r.IntN(20))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		return BytesValue(b)
	case TypeArray:
		items := make([]Value, r.IntN(5))
		for i := range items {
			items[i] = randValue(r, depth+1)
		}
		return ArrayValue(items...)
	default:
		fields := make([]Field, r.IntN(5))
		for i := range fields {
			fields[i] = Field{Key: randString(r), Value: randValue(r, depth+1)}
		}
		return MapValue(fields...)
	}
}

func randTimestamp(r *rand.Rand) Timestamp {
	ts := Timestamp{Millis: 1700000000000 + uint64(r.IntN(1e6)), Counter: uint32(r.IntN(3)), NodeID: randString(r)}
	switch r.IntN(8) {
	case 0:
		ts.Millis = r.Uint64()
	case 1:
		ts.Counter = r.Uint32()
	}
	return ts
}

func randRecord(r *rand.Rand) RecordValue {
	switch r.IntN(4) {
	case 0, 1:
		return NewLWW(randValue(r, 0), randTimestamp(r))
	case 2:
		recs := make([]ORMapEntry, r.IntN(4))
		for i := range recs {
			ts := randTimestamp(r)
			recs[i] = ORMapEntry{Value: randValue(r, 0), Tag: ts.String(), Timestamp: ts}
			if r.IntN(4) == 0 {
				recs[i].TTLMs = uint64(r.IntN(1e7) + 1)
			}
		}
		tombs := make([]string, r.IntN(3))
		for i := range tombs {
			tombs[i] = randTimestamp(r).String()
		}
		return NewORMap(recs, tombs)
	default:
		tombs := make([]string, r.IntN(3))
		for i := range tombs {
			tombs[i] = randString(r)
		}
		return RecordValue{Kind: KindORTombstones, ORMap: ORMap{Tombstones: tombs}}
	}
}

// TestEncodeDecode_roundTrip checks decode(encode(x)) == x and that
// re-encoding is byte-identical, for random records.
func TestEncodeDecode_roundTrip(t *testing.T) {
	t.Parallel()
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	for i := 0; i < 3000; i++ {
		rv := randRecord(r)
		b := mustEncode(t, rv)
		back := mustDecode(t, b)
		if !back.Equal(&rv) {
			t.Fatalf("case %d: Decode(Encode(x)) = %+v\nwant %+v", i, back, rv)
		}
		if again := mustEncode(t, back); !bytes.Equal(again, b) {
			t.Fatalf("case %d: re-encoding differs:\n%x\n%x", i, again, b)
		}
	}
}

// Mirror types for the differential test: the msgpack package's reflection
// encoder, configured like rmp-serde (compact integers, sorted map keys,
// fields in declaration order), is an independent oracle for Encode.
type tsMirror struct {
	Millis  uint64 `msgpack:"millis"`
	Counter uint32 `msgpack:"counter"`
	NodeID  string `msgpack:"nodeId"`
}

type lwwMirror struct {
	Value     any      `msgpack:"value"`
	Timestamp tsMirror `msgpack:"timestamp"`
}

type entryMirror struct {
	Value     any      `msgpack:"value"`
	Tag       string   `msgpack:"tag"`
	Timestamp tsMirror `msgpack:"timestamp"`
	TTLMs     uint64   `msgpack:"ttlMs,omitempty"`
}

type orMapMirror struct {
	Records    []entryMirror `msgpack:"records"`
	Tombstones []string      `msgpack:"tombstones,omitempty"`
}

type orTombMirror struct {
	Tags []string `msgpack:"tags"`
}

func mirrorValue(v Value) any {
	switch v.Type() {
	case TypeNull:
		return "Null"
	case TypeBool:
		return map[string]any{"Bool": v.Bool()}
	case TypeInt:
		return map[string]any{"Int": v.Int()}
	case TypeFloat:
		return map[string]any{"Float": v.Float()}
	case TypeString:
		return map[string]any{"String": v.Text()}
	case TypeBytes:
		b := v.Bytes()
		out := make([]any, len(b))
		for i, x := range b {
			out[i] = x
		}
		return map[string]any{"Bytes": out}
	case TypeArray:
		out := make([]any, 0)
		for _, it := range v.Items() {
			out = append(out, mirrorValue(it))
		}
		return map[string]any{"Array": out}
	default:
		out := map[string]any{}
		for _, f := range v.Fields() {
			out[f.Key] = mirrorValue(f.Value)
		}
		return map[string]any{"Map": out}
	}
}

func mirrorTS(ts Timestamp) tsMirror { return tsMirror{ts.Millis, ts.Counter, ts.NodeID} }

func mirrorRecord(rv RecordValue) any {
	switch rv.Kind {
	case KindLWW:
		return map[string]any{"lww": lwwMirror{mirrorValue(rv.LWW.Value), mirrorTS(rv.LWW.Timestamp)}}
	case KindORMap:
		m := orMapMirror{Records: []entryMirror{}, Tombstones: rv.ORMap.Tombstones}
		for _, e := range rv.ORMap.Records {
			m.Records = append(m.Records, entryMirror{mirrorValue(e.Value), e.Tag, mirrorTS(e.Timestamp), e.TTLMs})
		}
		return map[string]any{"orMap": m}
	default:
		tags := rv.ORMap.Tombstones
		if tags == nil {
			tags = []string{}
		}
		return map[string]any{"orTombstones": orTombMirror{tags}}
	}
}

func TestEncode_matchesReflectionOracle(t *testing.T) {
	t.Parallel()
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 2))
	for i := 0; i < 2000; i++ {
		rv := randRecord(r)
		got := mustEncode(t, rv)
		var buf bytes.Buffer
		enc := msgpack.NewEncoder(&buf)
		enc.UseCompactInts(true)
		enc.SetSortMapKeys(true)
		if err := enc.Encode(mirrorRecord(rv)); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, buf.Bytes()) {
			t.Fatalf("case %d: %+v\nEncode %x\noracle %x", i, rv, got, buf.Bytes())
		}
	}
}

// clientOpFixture is TopGun's wire fixture CLIENT_OP.msgpack (from
// packages/core-rust/tests/fixtures, Apache-2.0), as the TypeScript client
// encodes it: map16 headers and millis as a float64.
const clientOpFixture = "de0002a474797065a9434c49454e545f4f50a77061796c6f6164de0005a26964a46f702d31a76d61704e616d65a57573657273a36b6579a6757365722d31a66f7054797065a3505554a67265636f7264de0003a576616c7565de0002a46e616d65a5416c696365a36167651ea974696d657374616d70de0003a66d696c6c6973cb4278bcfe56800000a7636f756e74657201a66e6f64654964a66e6f64652d31a574746c4d73cdea60"

type fixtureRecord struct {
	Value     Value     `msgpack:"value"`
	Timestamp Timestamp `msgpack:"timestamp"`
	TTLMs     *uint64   `msgpack:"ttlMs"`
}

type fixtureOp struct {
	Type    string `msgpack:"type"`
	Payload struct {
		ID     string        `msgpack:"id"`
		Key    string        `msgpack:"key"`
		Record fixtureRecord `msgpack:"record"`
	} `msgpack:"payload"`
}

func TestTimestampAndValue_decodeClientFixture(t *testing.T) {
	t.Parallel()
	var op fixtureOp
	if err := msgpack.Unmarshal(hx(t, clientOpFixture), &op); err != nil {
		t.Fatal(err)
	}
	rec := op.Payload.Record
	if want := (Timestamp{Millis: 1700000000000, Counter: 1, NodeID: "node-1"}); rec.Timestamp != want {
		t.Fatalf("timestamp = %+v, want %+v", rec.Timestamp, want)
	}
	want := MapValue(Field{"name", StringValue("Alice")}, Field{"age", IntValue(30)})
	if !rec.Value.Equal(want) {
		t.Fatalf("value = %v, want %v", rec.Value, want)
	}
	if rec.TTLMs == nil || *rec.TTLMs != 60000 {
		t.Fatalf("ttlMs = %v", rec.TTLMs)
	}
	// The stored form of that write.
	rv := NewLWW(rec.Value, rec.Timestamp)
	stored := mustEncode(t, rv)
	wantStored := hx(t, `81 a3'lww' 82 a5'value' 81 a3'Map' 82 a3'age' 81 a3'Int' 1e a4'name' 81 a6'String' a5'Alice'
		a9'timestamp' 83 a6'millis' cf 00 00 01 8b cf e5 68 00 a7'counter' 01 a6'nodeId' a6'node-1'`)
	if !bytes.Equal(stored, wantStored) {
		t.Fatalf("stored:\n got %x\nwant %x", stored, wantStored)
	}
}

func TestTimestamp_msgpackRoundTrip(t *testing.T) {
	t.Parallel()
	in := Timestamp{Millis: 1700000001000, Counter: 3, NodeID: "node-b"}
	b, err := msgpack.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := hx(t, `83 a6'millis' cf 00 00 01 8b cf e5 6b e8 a7'counter' 03 a6'nodeId' a6'node-b'`); !bytes.Equal(b, want) {
		t.Fatalf("Marshal = %x, want %x", b, want)
	}
	var out Timestamp
	if err := msgpack.Unmarshal(b, &out); err != nil || out != in {
		t.Fatalf("Unmarshal = %+v, %v", out, err)
	}
	if err := msgpack.Unmarshal(hx(t, `83 a6'millis' `+f64(0.5)+` a7'counter' 00 a6'nodeId' a1'n'`), &out); err == nil {
		t.Fatal("a fractional millis decoded")
	}
}
