package abi

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"unsafe"

	"github.com/vmihailenco/msgpack/v5"
)

// TestFastEncoding checks that the Encoder's primitives write the bytes
// msgpack's do, and that the Decoder's read back what msgpack's read, at
// the edges of every form (and on truncated input, where they must fail
// as msgpack does).
func TestFastEncoding(t *testing.T) {
	var ints []int64
	for _, v := range []int64{0, 1, 31, 32, 127, 128, 255, 256, 65535, 65536, math.MaxUint32, math.MaxUint32 + 1, math.MaxInt64,
		-1, -32, -33, -128, -129, -32768, -32769, math.MinInt32, math.MinInt32 - 1, math.MinInt64} {
		ints = append(ints, v, v-1, v+1)
	}
	lens := []int{0, 1, 15, 16, 31, 32, 255, 256, 65535, 65536}
	var want bytes.Buffer
	lib := msgpack.NewEncoder(&want)
	e := NewEncoder()
	check := func(what string) {
		t.Helper()
		if !bytes.Equal(e.Bytes(), want.Bytes()) {
			t.Fatalf("%s: wrote % x, msgpack wrote % x", what, e.Bytes(), want.Bytes())
		}
		// Every prefix but the whole must fail to decode as msgpack fails.
		for cut := 0; cut <= len(want.Bytes()); cut++ {
			in := want.Bytes()[:cut]
			d, ld := NewDecoder(), msgpack.NewDecoder(bytes.NewReader(in))
			d.Reset(in)
			var got, exp any
			var gerr, lerr error
			switch what[0] {
			case 'a':
				got, gerr = d.arrayLen()
				exp, lerr = ld.DecodeArrayLen()
			case 's', 'b':
				got, gerr = d.bytesLen()
				exp, lerr = ld.DecodeBytesLen()
			case 'i':
				got, gerr = d.int64v()
				exp, lerr = ld.DecodeInt64()
			case 'u':
				got, gerr = d.uint64v()
				exp, lerr = ld.DecodeUint64()
			case 'B':
				got, gerr = d.boolv()
				exp, lerr = ld.DecodeBool()
			}
			if (gerr == nil) != (lerr == nil) || (gerr == nil && got != exp) {
				t.Fatalf("%s, % x: decoded %v, %v; msgpack decoded %v, %v", what, in, got, gerr, exp, lerr)
			}
		}
	}
	for _, v := range ints {
		e.Reset(nil)
		want.Reset()
		e.int64(v)
		_ = lib.EncodeInt(v)
		check("int64")
		e.Reset(nil)
		want.Reset()
		e.uint64(uint64(v))
		_ = lib.EncodeUint(uint64(v))
		check("uint64")
	}
	for _, n := range lens {
		e.Reset(nil)
		want.Reset()
		e.arr(n)
		_ = lib.EncodeArrayLen(n)
		check("arr")
		s := strings.Repeat("x", n)
		e.Reset(nil)
		want.Reset()
		e.str(s)
		_ = lib.EncodeString(s)
		check("str")
		e.Reset(nil)
		want.Reset()
		e.bin([]byte(s))
		_ = lib.EncodeBytes([]byte(s))
		check("bin")
	}
	for _, v := range []bool{false, true} {
		e.Reset(nil)
		want.Reset()
		e.boolean(v)
		_ = lib.EncodeBool(v)
		check("Bool")
	}
	e.Reset(nil)
	want.Reset()
	e.bin(nil)
	_ = lib.EncodeBytes(nil)
	check("bin nil")
}

// TestRecordsKnownKeys checks that Records returns requested keys as the
// caller's strings when they match, in order with gaps, and copies of
// anything else.
func TestRecordsKnownKeys(t *testing.T) {
	known := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"}
	got := []string{"b", "zz", "d", "k", "a"} // "k" is 7 ahead of "d": within reach
	recs := make([]Record, len(got))
	for i, k := range got {
		recs[i] = Record{Key: k, Value: []byte{byte(i)}}
	}
	e := NewEncoder()
	e.Records(recs)
	d := NewDecoder()
	d.Reset(e.Bytes())
	d.Known = known
	out, err := d.Records("m", false)
	if err != nil {
		t.Fatal(err)
	}
	shared := func(a, b string) bool { return unsafe.StringData(a) == unsafe.StringData(b) }
	for i, r := range out {
		if r.Key != got[i] || r.Map != "m" || len(r.Value) != 1 || r.Value[0] != byte(i) {
			t.Fatalf("record %d: %+v", i, r)
		}
	}
	if !shared(out[0].Key, known[1]) || !shared(out[2].Key, known[3]) || !shared(out[3].Key, known[10]) {
		t.Fatal("matching keys were copied")
	}
	// "a" comes after "k" in the response: it is behind the cursor, so it
	// is copied (a plugin must answer in the order of the keys).
	if shared(out[4].Key, known[0]) {
		t.Fatal("a key behind the cursor was matched")
	}
}

// FuzzFastPrimitives reads arbitrary bytes as a sequence of msgpack values
// with the Decoder's primitives and with msgpack's decoder: each must
// decode the same value, fail where msgpack fails, and consume the same
// bytes. ops picks the primitive of each step, three bits each.
func FuzzFastPrimitives(f *testing.F) {
	f.Add(uint32(0), []byte{0x92, 0xa1, 'a', 0xcd, 0x01, 0x00})
	f.Add(uint32(0o1234), []byte{0xdc, 0x00, 0x02, 0xd9, 0x01, 'x', 0xcf, 1, 2, 3, 4, 5, 6, 7, 8, 0xc3})
	f.Fuzz(func(t *testing.T, ops uint32, in []byte) {
		d := NewDecoder()
		d.Reset(in)
		r := bytes.NewReader(in)
		ld := msgpack.NewDecoder(r)
		for step := 0; step < 10; step, ops = step+1, ops>>3 {
			var got, exp any
			var gerr, lerr error
			switch ops & 7 {
			case 0:
				got, gerr = d.arrayLen()
				exp, lerr = ld.DecodeArrayLen()
			case 1, 5:
				got, gerr = d.bytesLen()
				exp, lerr = ld.DecodeBytesLen()
			case 2, 6:
				got, gerr = d.int64v()
				exp, lerr = ld.DecodeInt64()
			case 3, 7:
				got, gerr = d.uint64v()
				exp, lerr = ld.DecodeUint64()
			case 4:
				got, gerr = d.boolv()
				exp, lerr = ld.DecodeBool()
			}
			if (gerr == nil) != (lerr == nil) || (gerr == nil && got != exp) {
				t.Fatalf("step %d (op %d) on % x: decoded %v, %v; msgpack decoded %v, %v", step, ops&7, in, got, gerr, exp, lerr)
			}
			if gerr != nil {
				return
			}
			if d.r.len() != r.Len() {
				t.Fatalf("step %d (op %d) on % x: %d bytes left, msgpack left %d", step, ops&7, in, d.r.len(), r.Len())
			}
		}
	})
}
