package wire

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/topgun-go/topgun/server/record"
)

// decodeResult is what decoding one user value gave: the record value, or
// the error (its kind, reason and field path), the bytes left and the
// memory counted.
type decodeResult struct {
	v       record.Value
	err     string
	tooBig  bool
	left    int
	counted int
}

func describe(err error) (string, bool) {
	if err == nil {
		return "", false
	}
	fe, ok := err.(*fieldError)
	if !ok {
		return "unexpected error type: " + err.Error(), false
	}
	return fmt.Sprintf("%v: %s at %q", fe.kind, fe.reason, fe.path), fe.kind == ErrDecodedTooLarge
}

// viaValueModel decodes b as record values were taken before they were
// decoded straight into record values: into the value model (value), then
// converted (record.FromWire). ambiguous reports a map with two keys
// FromWire turns into "" (invalid UTF-8), of which it keeps an arbitrary
// one (Go's map order).
func viaValueModel(b []byte, maxDepth, limit int) (r decodeResult, ambiguous bool) {
	d := newDecoder(b, maxDepth, limit)
	defer putDecoder(d)
	x, err := d.value()
	r.err, r.tooBig = describe(err)
	if err == nil {
		r.v = record.FromWire(x)
		ambiguous = emptyKeyCollision(x)
	}
	r.left, r.counted = d.remaining(), d.decoded()
	return r, ambiguous
}

// direct decodes b straight into a record value (recordValue).
func direct(b []byte, maxDepth, limit int) (r decodeResult) {
	d := newDecoder(b, maxDepth, limit)
	defer putDecoder(d)
	x, err := d.recordValue()
	r.err, r.tooBig = describe(err)
	if err == nil {
		if _, isValue := x.(record.Value); x != nil && !isValue {
			r.err = fmt.Sprintf("recordValue returned a %T", x)
		}
		if v, _ := x.(record.Value); x != nil && v.IsNull() {
			r.err = "recordValue returned Null in an interface, not nil"
		}
		r.v = record.FromWire(x)
	}
	r.left, r.counted = d.remaining(), d.decoded()
	return r
}

func emptyKeyCollision(x any) bool {
	switch t := x.(type) {
	case []any:
		for _, e := range t {
			if emptyKeyCollision(e) {
				return true
			}
		}
	case map[string]any:
		empty := 0
		for k, e := range t {
			if k == "" || !utf8.ValidString(k) {
				empty++
			}
			if emptyKeyCollision(e) {
				return true
			}
		}
		return empty > 1
	}
	return false
}

// checkSameValue: decoding b straight into a record value gives what the
// value model and record.FromWire gave (the value, or the same error at
// the same field, and the same bytes consumed), except that it may fit a
// limit the value model went over; and what it counts is what the
// unlimited decode counts.
func checkSameValue(t testing.TB, b []byte, maxDepth, limit int) {
	t.Helper()
	got := direct(b, maxDepth, limit)
	want, ambiguous := viaValueModel(b, maxDepth, math.MaxInt)
	if got.tooBig {
		full := direct(b, maxDepth, math.MaxInt)
		if full.err == "" && full.counted <= limit {
			t.Fatalf("%x: refused as over %d bytes, but it counts %d", b, limit, full.counted)
		}
		return
	}
	if got.err != want.err {
		t.Fatalf("%x (max depth %d): error %q, want %q", b, maxDepth, got.err, want.err)
	}
	if got.err != "" {
		return
	}
	if got.left != want.left {
		t.Fatalf("%x: %d bytes left, want %d", b, got.left, want.left)
	}
	if !ambiguous && !reflect.DeepEqual(got.v, want.v) {
		t.Fatalf("%x (max depth %d):\ngot  %v\nwant %v", b, maxDepth, got.v, want.v)
	}
}

// valueGen writes random MsgPack values: every type, every integer and
// float width, invalid UTF-8, extensions (timestamps too), map keys of
// every kind and repeated keys, and nesting past record.MaxStoredDepth.
type valueGen struct {
	r   *rand.Rand
	enc *msgpack.Encoder
	buf *bytes.Buffer
}

func newValueGen(seed uint64) *valueGen {
	var buf bytes.Buffer
	return &valueGen{r: rand.New(rand.NewPCG(seed, 7)), enc: msgpack.NewEncoder(&buf), buf: &buf}
}

func (g *valueGen) next() []byte {
	g.buf.Reset()
	if g.r.IntN(20) == 0 {
		// Deep: a chain of arrays and maps around record.MaxStoredDepth.
		n := record.MaxStoredDepth - 2 + g.r.IntN(6)
		for range n {
			if g.r.IntN(2) == 0 {
				_ = g.enc.EncodeArrayLen(1)
			} else {
				_ = g.enc.EncodeMapLen(1)
				g.key(3)
			}
		}
		g.value(2)
	} else {
		g.value(0)
	}
	return bytes.Clone(g.buf.Bytes())
}

func (g *valueGen) str() string {
	s := []string{"", "a", "b", "name", "é", "\xff", "\xc3", "1", "nil", "true", strings33}[g.r.IntN(11)]
	return s
}

const strings33 = "a string of thirty-three bytes.."

func (g *valueGen) value(depth int) {
	e := g.enc
	n := 16
	if depth > 4 {
		n = 12 // no containers
	}
	switch g.r.IntN(n) {
	case 0:
		_ = e.EncodeNil()
	case 1:
		_ = e.EncodeBool(g.r.IntN(2) == 0)
	case 2:
		switch g.r.IntN(4) {
		case 0:
			_ = e.EncodeUint8(uint8(g.r.Uint32()))
		case 1:
			_ = e.EncodeUint16(uint16(g.r.Uint32()))
		case 2:
			_ = e.EncodeUint32(g.r.Uint32())
		default:
			_ = e.EncodeUint64(g.r.Uint64()) // above MaxInt64 half the time
		}
	case 3:
		switch g.r.IntN(4) {
		case 0:
			_ = e.EncodeInt8(int8(g.r.Uint32()))
		case 1:
			_ = e.EncodeInt16(int16(g.r.Uint32()))
		case 2:
			_ = e.EncodeInt32(int32(g.r.Uint32()))
		default:
			_ = e.EncodeInt64(int64(g.r.Uint64()))
		}
	case 4:
		_ = e.EncodeInt(int64(g.r.IntN(300)) - 150) // fixints
	case 5:
		_ = e.EncodeFloat32([]float32{0.1, -0, 1e30, float32(math.NaN()), float32(math.Inf(1))}[g.r.IntN(5)])
	case 6:
		_ = e.EncodeFloat64([]float64{0.1, math.Copysign(0, -1), 1e300, math.NaN(), math.Inf(-1), g.r.NormFloat64()}[g.r.IntN(6)])
	case 7, 8:
		_ = e.EncodeString(g.str())
	case 9:
		b := make([]byte, []int{0, 1, 15, 16, 100}[g.r.IntN(5)])
		for i := range b {
			b[i] = byte(g.r.IntN(256))
		}
		_ = e.EncodeBytes(b)
	case 10:
		g.ext()
	case 11:
		_ = e.EncodeString(string(bytes.Repeat([]byte{'x'}, g.r.IntN(600))))
	case 12, 13:
		n := g.r.IntN(6)
		if g.r.IntN(30) == 0 {
			n = 410
		}
		_ = e.EncodeArrayLen(n)
		for range n {
			g.value(depth + 1)
		}
	default:
		n := g.r.IntN(6)
		if g.r.IntN(30) == 0 {
			n = 57
		}
		_ = e.EncodeMapLen(n)
		for range n {
			g.key(depth + 1)
			g.value(depth + 1)
		}
	}
}

func (g *valueGen) ext() {
	switch g.r.IntN(3) {
	case 0:
		_ = g.enc.Encode(time.Unix(int64(g.r.Uint32()), int64(g.r.IntN(1e9))))
	case 1:
		_ = g.enc.EncodeExtHeader(int8(g.r.IntN(256)-128), 3)
		_, _ = g.buf.Write([]byte{1, 2, 3})
	default:
		_ = g.enc.EncodeExtHeader(5, 0)
	}
}

// key writes a map key: mostly strings (some repeated, some invalid
// UTF-8), else any value, containers included.
func (g *valueGen) key(depth int) {
	if g.r.IntN(3) > 0 {
		_ = g.enc.EncodeString(g.str())
		return
	}
	g.value(depth + 2)
}

// corrupt returns b cut short or with a byte changed, to reach the errors.
func corrupt(r *rand.Rand, b []byte) []byte {
	b = bytes.Clone(b)
	if len(b) == 0 {
		return b
	}
	if r.IntN(2) == 0 {
		return b[:r.IntN(len(b))]
	}
	b[r.IntN(len(b))] = byte(r.IntN(256))
	return b
}

var depthsAndLimits = []struct{ depth, limit int }{
	{DefaultMaxDepth, math.MaxInt},
	{4, math.MaxInt},
	{record.MaxStoredDepth + 3, math.MaxInt},
	{record.MaxStoredDepth + 100, 1 << 16},
	{DefaultMaxDepth, 2000},
}

// TestRecordValue_sameAsValueModel: the record values of a client's write
// decode straight into record values exactly as the value model and
// record.FromWire made them, over every fixture (each offset of each frame
// read as a value) and random values, whole and corrupted.
func TestRecordValue_sameAsValueModel(t *testing.T) {
	t.Parallel()
	for _, name := range fixtureNames(t) {
		raw, err := os.ReadFile(filepath.Join(fixtureDir, name+".msgpack"))
		if err != nil {
			t.Fatal(err)
		}
		for off := range raw {
			for _, dl := range depthsAndLimits {
				checkSameValue(t, raw[off:], dl.depth, dl.limit)
			}
		}
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	g := newValueGen(seed)
	r := rand.New(rand.NewPCG(seed, 8))
	for i := 0; i < 3000; i++ {
		b := g.next()
		dl := depthsAndLimits[i%len(depthsAndLimits)]
		checkSameValue(t, b, dl.depth, dl.limit)
		checkSameValue(t, corrupt(r, b), dl.depth, dl.limit)
	}
}

// TestRecordValue_writeMessages: the record values of CLIENT_OP, OP_BATCH,
// ORMAP_PUSH_DIFF and POST /sync operations decode to record.Value (nil
// for Null), those of the server's messages to the value model.
func TestRecordValue_writeMessages(t *testing.T) {
	t.Parallel()
	ts := Timestamp{Millis: 1, NodeID: "n"}
	value := map[string]any{"a": int64(1), "b": []any{"x", nil}}
	want := record.FromWire(value)
	op := ClientOp{MapName: "m", Key: "k", Record: &LWWRecord{Value: value, Timestamp: ts},
		ORRecord: &ORMapRecord{Value: value, Timestamp: ts, Tag: "t"}}
	nilOp := ClientOp{MapName: "m", Key: "k", Record: &LWWRecord{Timestamp: ts}}
	decode := func(m Message) Message {
		raw, err := Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	isWant := func(what string, v any) {
		if x, ok := v.(record.Value); !ok || !x.Equal(want) {
			t.Errorf("%s: %#v, want record value %v", what, v, want)
		}
	}
	c := decode(&ClientOpMessage{ClientOp: op}).(*ClientOpMessage)
	isWant("CLIENT_OP record", c.Record.Value)
	isWant("CLIENT_OP orRecord", c.ORRecord.Value)
	b := decode(&OpBatch{Ops: []ClientOp{op, nilOp}}).(*OpBatch)
	isWant("OP_BATCH record", b.Ops[0].Record.Value)
	if b.Ops[1].Record.Value != nil {
		t.Errorf("OP_BATCH nil value: %#v, want nil", b.Ops[1].Record.Value)
	}
	p := decode(&ORMapPushDiff{MapName: "m", Entries: []ORMapEntry{{Key: "k", Records: []ORMapRecord{*op.ORRecord}, Tombstones: []string{}}}}).(*ORMapPushDiff)
	isWant("ORMAP_PUSH_DIFF record", p.Entries[0].Records[0].Value)
	body, err := EncodeHTTPSyncRequest(&HTTPSyncRequest{ClientID: "c", Operations: []ClientOp{op}})
	if err != nil {
		t.Fatal(err)
	}
	req, err := DecodeHTTPSyncRequest(body)
	if err != nil {
		t.Fatal(err)
	}
	isWant("POST /sync operation", req.Operations[0].Record.Value)

	ev := decode(&ServerEvent{MapName: "m", EventType: EventPut, Key: "k", Record: op.Record}).(*ServerEvent)
	if !reflect.DeepEqual(ev.Record.Value, value) {
		t.Errorf("SERVER_EVENT record: %#v, want the value model %#v", ev.Record.Value, value)
	}
}

// largeTinyObjects is a 2 MiB OP_BATCH whose record value is an array of
// {"a": 1}.
func largeTinyObjects(t testing.TB) []byte {
	elem := []byte{0x81, 0xa1, 'a', 0x01}
	return opBatchWithValue(t, (DefaultMaxMessageBytes-256)/len(elem), elem)
}

// peakOfConversion is the live heap when a write's record value has been
// converted: the decoded message and its record value (for the value
// model, both trees).
func peakOfConversion(t testing.TB, raw []byte) (heap uint64, counted int) {
	l := DefaultLimits()
	l.MaxDecodedBytes = math.MaxInt
	var err error
	heap = retained(t, func() any {
		var m Message
		m, counted, err = l.DecodeSize(raw)
		if err != nil {
			return nil
		}
		return []any{m, record.FromWire(m.(*OpBatch).Ops[0].Record.Value)}
	})
	runtime.KeepAlive(raw)
	if err != nil {
		t.Fatal(err)
	}
	return heap, counted
}

// TestRecordValue_halvesLargeWrite: a 2 MiB array of tiny objects, which
// the value model and its conversion held at about 290 MiB, takes about
// half that decoded straight into record values; the count follows, and
// the message fits a 10 MiB message limit's decoded-size limit.
func TestRecordValue_halvesLargeWrite(t *testing.T) {
	// Not parallel: it measures the live heap.
	raw := largeTinyObjects(t)
	heap, counted := peakOfConversion(t, raw)

	// The value model's heap: the message's record value decoded by
	// value, then converted.
	start := bytes.Index(raw, []byte{0xdd})
	oldHeap := retained(t, func() any {
		d := newDecoder(raw[start:], DefaultMaxDepth, math.MaxInt)
		old, _ := d.value()
		putDecoder(d)
		return []any{old, record.FromWire(old)}
	})
	runtime.KeepAlive(raw)
	t.Logf("2 MiB of {\"a\": 1}: %d MiB decoded straight (counted %d MiB), %d MiB through the value model",
		heap>>20, counted>>20, oldHeap>>20)
	if heap > oldHeap*6/10 {
		t.Errorf("decoded straight into record values it takes %d MiB, the value model %d MiB", heap>>20, oldHeap>>20)
	}
	if got := uint64(counted); got > heap+heap/33 || got < heap-heap/33 {
		t.Errorf("counted %d bytes, takes %d", counted, heap)
	}
	l := DefaultLimits()
	l.MaxMessageBytes = 10 << 20
	if _, err := l.Decode(raw); err != nil {
		t.Errorf("under a 10 MiB message limit: %v", err)
	}
}

// BenchmarkDecodeLargeWrite decodes a 2 MiB array of tiny objects and
// converts it to a record value, reporting the live heap at the end.
func BenchmarkDecodeLargeWrite(b *testing.B) {
	raw := largeTinyObjects(b)
	var heap uint64
	for b.Loop() {
		heap, _ = peakOfConversion(b, raw)
	}
	b.ReportMetric(float64(heap)/(1<<20), "MiB-live")
}

// FuzzRecordValue: decoding straight into a record value gives what the
// value model and record.FromWire gave (checkSameValue); the first byte
// picks the depth and decoded-size limits.
//
//	go test ./server/wire -run '^$' -fuzz FuzzRecordValue -fuzztime 60s
func FuzzRecordValue(f *testing.F) {
	for _, name := range fixtureNames(f) {
		raw, err := os.ReadFile(filepath.Join(fixtureDir, name+".msgpack"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(append([]byte{0}, raw...))
	}
	g := newValueGen(1)
	for i := range 50 {
		f.Add(append([]byte{byte(i)}, g.next()...))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 {
			return
		}
		dl := depthsAndLimits[int(b[0])%len(depthsAndLimits)]
		checkSameValue(t, b[1:], dl.depth, dl.limit)
	})
}
