package abi

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

func sampleRecords() []Record {
	return []Record{
		{Map: "m", Key: "a", Value: []byte("one"), ExpirationTime: 5, CreatedAt: 1, UpdatedAt: 2},
		{Map: "m", Key: "", Value: []byte{}, CreatedAt: 3, UpdatedAt: 4},
		{Map: "m", Key: "ключ/😀", Value: bytes.Repeat([]byte{0xff}, 300), CreatedAt: 1 << 40, UpdatedAt: 1<<40 + 1},
	}
}

func sampleExpired() []Record {
	return []Record{
		{Map: "m", Key: "a", Backup: true, ExpirationTime: 5, CreatedAt: 1, UpdatedAt: 2},
		{Map: "todo-items", Key: "b", ExpirationTime: 6, CreatedAt: 1, UpdatedAt: 2},
	}
}

func TestCodec_roundTrip(t *testing.T) {
	e, d := NewEncoder(), NewDecoder()
	check := func(t *testing.T, name string, got, want any, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := d.End(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: got %+v, want %+v", name, got, want)
		}
	}
	t.Run("Open", func(t *testing.T) {
		want := OpenRequest{Config: map[string]string{"a": "1", "b": ""}, DataDir: "/data", MaxResponseBytes: 1 << 25, MemoryLimitBytes: 1 << 28}
		e.Reset(nil)
		e.OpenRequest(&want)
		d.Reset(e.Bytes())
		got, err := d.OpenRequest()
		check(t, "open", got, want, err)
	})
	t.Run("Description", func(t *testing.T) {
		want := Description{Name: "null", ABIMajor: 1, ABIMinor: 7, Capabilities: CapAtomicBatch | 1<<40}
		e.Reset(nil)
		e.Description(&want)
		d.Reset(e.Bytes())
		got, err := d.Description()
		check(t, "description", got, want, err)
		// The name goes into logs and a metric label.
		for name, ok := range map[string]bool{
			"日本語-store": true, strings.Repeat("n", MaxBackendNameBytes): true,
			"": false, strings.Repeat("n", MaxBackendNameBytes+1): false,
			"bad\xffname": false, "two\nlines": false, "nul\x00": false,
		} {
			e.Reset(nil)
			e.Description(&Description{Name: name, ABIMajor: 1})
			d.Reset(e.Bytes())
			_, err := d.Description()
			if ok && err != nil {
				t.Errorf("name %q: %v", name, err)
			}
			if !ok && !errors.Is(err, ErrMalformed) {
				t.Errorf("name %q: err = %v, want malformed", name, err)
			}
		}
	})
	for _, alias := range []bool{false, true} {
		t.Run("Apply", func(t *testing.T) {
			want := Batch{Now: 42}
			want.Put("m", "k", false, []byte("v"), 9)
			want.Put("m", "k2", true, []byte{}, 0)
			want.Delete("other", "k", false)
			want.Put("m", "k3", false, bytes.Repeat([]byte("x"), 70000), 0)
			e.Reset(nil)
			e.ApplyRequest(&want)
			d.Reset(e.Bytes())
			d.AliasValues = alias
			got := Batch{Mutations: make([]Mutation, 10)}
			err := d.ApplyRequest(&got)
			d.AliasValues = false
			// nil and empty values are not distinguished on the wire.
			for i := range want.Mutations {
				if len(want.Mutations[i].Value) == 0 {
					want.Mutations[i].Value, got.Mutations[i].Value = nil, nil
				}
			}
			check(t, "apply", got, want, err)
		})
	}
	t.Run("Get", func(t *testing.T) {
		want := GetRequest{Map: "m", Backup: true, Keys: []string{"a", "", "ключ"}}
		e.Reset(nil)
		e.GetRequest(want.Map, want.Backup, want.Keys)
		d.Reset(e.Bytes())
		got, err := d.GetRequest(nil)
		check(t, "get", got, want, err)
	})
	t.Run("Scan", func(t *testing.T) {
		for _, want := range []ScanRequest{{Map: "m", Cursor: []byte("kabc"), Limit: 10, MaxBytes: 100}, {Map: "m", Backup: true}} {
			e.Reset(nil)
			e.ScanRequest(&want)
			d.Reset(e.Bytes())
			got, err := d.ScanRequest()
			check(t, "scan", got, want, err)
		}
	})
	t.Run("ListExpired", func(t *testing.T) {
		e.Reset(nil)
		e.ListExpiredRequest(123, 45)
		d.Reset(e.Bytes())
		now, limit, err := d.ListExpiredRequest()
		check(t, "list_expired", [2]int64{now, int64(limit)}, [2]int64{123, 45}, err)
	})
	t.Run("Records", func(t *testing.T) {
		want := sampleRecords()
		e.Reset(nil)
		e.Records(want)
		d.Reset(e.Bytes())
		got, err := d.Records("m", false)
		check(t, "records", got, want, err)
	})
	t.Run("Page", func(t *testing.T) {
		for _, want := range []Page{{Records: sampleRecords(), Cursor: []byte("kz")}, {}} {
			e.Reset(nil)
			e.Page(&want)
			d.Reset(e.Bytes())
			got, err := d.Page("m", false)
			check(t, "page", got, want, err)
		}
	})
	t.Run("Strings", func(t *testing.T) {
		want := []string{"a", "b", ""}
		e.Reset(nil)
		e.Strings(want)
		d.Reset(e.Bytes())
		got, err := d.Strings()
		check(t, "strings", got, want, err)
	})
	t.Run("Expired", func(t *testing.T) {
		want := sampleExpired()
		e.Reset(nil)
		e.Expired(want)
		d.Reset(e.Bytes())
		got, err := d.Expired()
		check(t, "expired", got, want, err)
	})
}

// TestCodec_forwardCompatible checks that decoders skip fields appended by
// a later minor version, at the top level and inside elements.
func TestCodec_forwardCompatible(t *testing.T) {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	// A Page whose record has a sixth field and which has a third field.
	_ = enc.EncodeArrayLen(3)
	_ = enc.EncodeArrayLen(1)
	_ = enc.EncodeArrayLen(6)
	_ = enc.EncodeString("k")
	_ = enc.EncodeBytes([]byte("v"))
	_ = enc.EncodeInt(0)
	_ = enc.EncodeInt(1)
	_ = enc.EncodeInt(2)
	_ = enc.EncodeMap(map[string]any{"future": []any{1, "x"}})
	_ = enc.EncodeNil()
	_ = enc.EncodeString("future field")
	d := NewDecoder()
	d.Reset(buf.Bytes())
	p, err := d.Page("m", false)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.End(); err != nil {
		t.Fatal(err)
	}
	if len(p.Records) != 1 || p.Records[0].Key != "k" || p.Records[0].UpdatedAt != 2 || p.Cursor != nil {
		t.Errorf("page = %+v", p)
	}
}

// TestCodec_malformed checks that every truncation of valid messages, and
// lengths that claim more than the input holds, fail with ErrMalformed and
// without large allocations.
func TestCodec_malformed(t *testing.T) {
	e := NewEncoder()
	e.Page(&Page{Records: sampleRecords(), Cursor: []byte("k")})
	page := append([]byte(nil), e.Bytes()...)
	d := NewDecoder()
	for n := 0; n < len(page); n++ {
		d.Reset(page[:n])
		if _, err := d.Page("m", false); !errors.Is(err, ErrMalformed) {
			t.Fatalf("page truncated to %d bytes: err = %v, want ErrMalformed", n, err)
		}
	}
	d.Reset(append(page, 0))
	if _, err := d.Page("m", false); err != nil {
		t.Fatal(err)
	}
	if err := d.End(); !errors.Is(err, ErrMalformed) {
		t.Errorf("trailing byte: End = %v, want ErrMalformed", err)
	}
	huge := [][]byte{
		{0xdd, 0xff, 0xff, 0xff, 0xff},                        // array32 of 4G records
		{0x91, 0x95, 0xdb, 0xff, 0xff, 0xff, 0xff},            // a key of 4 GiB
		{0x91, 0x95, 0xa1, 'k', 0xc6, 0x7f, 0xff, 0xff, 0xff}, // a value of 2 GiB
	}
	for _, b := range huge {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		d.Reset(b)
		if _, err := d.Records("m", false); !errors.Is(err, ErrMalformed) {
			t.Errorf("% x: err = %v, want ErrMalformed", b, err)
		}
		runtime.ReadMemStats(&after)
		if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
			t.Errorf("% x: decoding allocated %d bytes", b, n)
		}
	}
}

// FuzzDecodeResponse feeds arbitrary bytes to every response decoder (what
// the host reads from a plugin) and every request decoder (what a plugin
// reads). None may panic; a successful decode must re-encode to a message
// that decodes to the same value.
func FuzzDecodeResponse(f *testing.F) {
	e := NewEncoder()
	seed := func(fn func()) {
		e.Reset(nil)
		fn()
		f.Add(append([]byte(nil), e.Bytes()...))
	}
	seed(func() { e.Description(&Description{Name: "null", ABIMajor: 1, Capabilities: CapAtomicBatch}) })
	seed(func() { e.Records(sampleRecords()) })
	seed(func() { e.Page(&Page{Records: sampleRecords(), Cursor: []byte("k")}) })
	seed(func() { e.Strings([]string{"a", "todo-items"}) })
	seed(func() { e.Expired(sampleExpired()) })
	seed(func() {
		b := Batch{Now: 1}
		b.Put("m", "k", false, []byte("v"), 0)
		b.Delete("m", "x", true)
		e.ApplyRequest(&b)
	})
	seed(func() { e.OpenRequest(&OpenRequest{Config: map[string]string{"a": "b"}, DataDir: "/data"}) })
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		d := NewDecoder()
		d.Reset(data)
		if recs, err := d.Records("m", false); err == nil && d.End() == nil {
			e := NewEncoder()
			e.Records(recs)
			d2 := NewDecoder()
			d2.Reset(e.Bytes())
			again, err := d2.Records("m", false)
			if err != nil || !reflect.DeepEqual(again, recs) {
				t.Fatalf("records do not round-trip: %v", err)
			}
		}
		d.Reset(data)
		_, _ = d.Description()
		d.Reset(data)
		_, _ = d.Page("m", true)
		d.Reset(data)
		_, _ = d.Strings()
		d.Reset(data)
		_, _ = d.Expired()
		d.Reset(data)
		_, _ = d.OpenRequest()
		d.Reset(data)
		_, _ = d.GetRequest(nil)
		d.Reset(data)
		_, _ = d.ScanRequest()
		d.Reset(data)
		_, _, _ = d.ListExpiredRequest()
		var b Batch
		d.Reset(data)
		d.AliasValues = true
		_ = d.ApplyRequest(&b)
	})
}

func TestWasm_pack(t *testing.T) {
	if got := PackVersion(1, 2); got != 0x10002 {
		t.Errorf("PackVersion = %#x", got)
	}
	if ma, mi := UnpackVersion(0x20003); ma != 2 || mi != 3 {
		t.Errorf("UnpackVersion = %d.%d", ma, mi)
	}
	s, n := UnpackResult(PackResult(StatusBufferMoved|uint32(CodeNotFound), 77))
	if s != StatusBufferMoved|uint32(CodeNotFound) || n != 77 {
		t.Errorf("UnpackResult = %#x, %d", s, n)
	}
	if CallListExpired.String() != "list_expired" || WasmCall(99).String() != "call(99)" {
		t.Errorf("call names: %s %s", CallListExpired, WasmCall(99))
	}
}

func TestSliceReader(t *testing.T) {
	var r sliceReader
	if _, err := r.ReadByte(); err != io.EOF {
		t.Errorf("ReadByte on empty input = %v, want io.EOF", err)
	}
	if err := r.UnreadByte(); err == nil {
		t.Error("UnreadByte at the start succeeded")
	}
	r = sliceReader{b: []byte{1, 2, 3}}
	if c, err := r.ReadByte(); c != 1 || err != nil {
		t.Errorf("ReadByte = %d, %v", c, err)
	}
	if err := r.UnreadByte(); err != nil {
		t.Errorf("UnreadByte = %v", err)
	}
	p := make([]byte, 5)
	if n, err := r.Read(p); n != 3 || err != nil || !bytes.Equal(p[:n], []byte{1, 2, 3}) {
		t.Errorf("Read = %d %v %v", n, err, p[:n])
	}
	if n, err := r.Read(p[:0]); n != 0 || err != nil {
		t.Errorf("empty Read at the end = %d, %v; want 0, nil", n, err)
	}
	if n, err := r.Read(p); n != 0 || err != io.EOF {
		t.Errorf("Read at the end = %d, %v; want io.EOF", n, err)
	}
}

// TestDecoder_copies checks that what a Decoder returns does not alias its
// input (the guest reuses the request buffer for the response), except the
// values of ApplyRequest with AliasValues.
func TestDecoder_copies(t *testing.T) {
	e, d := NewEncoder(), NewDecoder()
	b := &Batch{Now: 1}
	b.Put("m", "k1", false, []byte("v1"), 0)
	b.Put("m", "k2", false, []byte("v2"), 0)
	e.ApplyRequest(b)
	for _, alias := range []bool{false, true} {
		in := append([]byte(nil), e.Bytes()...)
		d.Reset(in)
		d.AliasValues = alias
		var got Batch
		if err := d.ApplyRequest(&got); err != nil {
			t.Fatal(err)
		}
		if alias {
			for i, m := range got.Mutations {
				if cap(m.Value) != len(m.Value) {
					t.Errorf("aliased value %d has room to grow into the input: len %d, cap %d", i, len(m.Value), cap(m.Value))
				}
			}
		}
		clear(in)
		for i, m := range got.Mutations {
			if m.Map != "m" || m.Key != b.Mutations[i].Key {
				t.Errorf("alias=%v: mutation %d = %+v after the input was cleared", alias, i, m)
			}
			if want := string(b.Mutations[i].Value); !alias && string(m.Value) != want {
				t.Errorf("mutation %d value = %q after the input was cleared, want a copy of %q", i, m.Value, want)
			}
		}
	}
}

// benchApplyRequest returns an apply request of n puts of 100-byte values
// to one map, the shape of the guest's hot path.
func benchApplyRequest(n int) []byte {
	b := &Batch{Now: 1}
	value := make([]byte, 100)
	for i := 0; i < n; i++ {
		b.Put("bench", "key-"+strconv.Itoa(1e15+i), false, value, 0)
	}
	e := NewEncoder()
	e.ApplyRequest(b)
	return e.Bytes()
}

// BenchmarkDecoder_ApplyRequest measures the guest's decoding of an apply
// of 1000 puts, with aliased values and shared keys as the SDK decodes them.
func BenchmarkDecoder_ApplyRequest(b *testing.B) {
	req := benchApplyRequest(1000)
	d := NewDecoder()
	d.AliasValues, d.ShareKeys = true, true
	var batch Batch
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		d.Reset(req)
		if err := d.ApplyRequest(&batch); err != nil || len(batch.Mutations) != 1000 {
			b.Fatal(err, len(batch.Mutations))
		}
	}
}

// BenchmarkDecoder_GetRequest measures the guest's decoding of a get of
// one key.
func BenchmarkDecoder_GetRequest(b *testing.B) {
	e := NewEncoder()
	e.GetRequest("bench", false, []string{"key-0000000000000001"})
	req := e.Bytes()
	d := NewDecoder()
	d.ShareKeys = true
	keys := make([]string, 0, 1)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		d.Reset(req)
		r, err := d.GetRequest(keys)
		if err != nil || len(r.Keys) != 1 {
			b.Fatal(err, len(r.Keys))
		}
	}
}

// TestDecoder_applyRequestEdges checks the apply decoder's own field
// handling: every truncation fails with ErrMalformed, lengths beyond the
// input and kinds beyond a byte are refused, a nil value stays nil, and
// fields a later version appends to a mutation are skipped.
func TestDecoder_applyRequestEdges(t *testing.T) {
	b := &Batch{Now: 7}
	b.Put("m", "k1", false, []byte("v1"), 5)
	b.Put("m", "k2", true, nil, 0)
	b.Delete("other", "k3", false)
	e := NewEncoder()
	e.ApplyRequest(b)
	full := append([]byte(nil), e.Bytes()...)
	d := NewDecoder()
	for _, alias := range []bool{false, true} {
		d.AliasValues = alias
		for n := 0; n < len(full); n++ {
			d.Reset(full[:n])
			var got Batch
			if err := d.ApplyRequest(&got); !errors.Is(err, ErrMalformed) {
				t.Fatalf("alias=%v, truncated to %d bytes: err = %v, want ErrMalformed", alias, n, err)
			}
		}
		d.Reset(full)
		var got Batch
		if err := d.ApplyRequest(&got); err != nil || d.End() != nil {
			t.Fatalf("alias=%v: %v", alias, err)
		}
		if !reflect.DeepEqual(got.Mutations, b.Mutations) || got.Now != 7 {
			t.Errorf("alias=%v: decoded %+v, want %+v", alias, got, *b)
		}
		if got.Mutations[1].Value != nil {
			t.Errorf("alias=%v: a nil value decoded as %#v", alias, got.Mutations[1].Value)
		}
	}

	mutation := func(kind uint64, key []byte, extra bool) []byte {
		var buf bytes.Buffer
		enc := msgpack.NewEncoder(&buf)
		_ = enc.EncodeArrayLen(2)
		_ = enc.EncodeInt(1)
		_ = enc.EncodeArrayLen(1)
		if extra {
			_ = enc.EncodeArrayLen(7)
		} else {
			_ = enc.EncodeArrayLen(6)
		}
		_ = enc.EncodeUint(kind)
		_ = enc.EncodeString("m")
		if key != nil {
			buf.Write(key)
		} else {
			_ = enc.EncodeString("k")
		}
		_ = enc.EncodeBool(false)
		_ = enc.EncodeBytes([]byte("v"))
		_ = enc.EncodeInt(0)
		if extra {
			_ = enc.EncodeMap(map[string]any{"future": []any{1, "x"}})
		}
		return buf.Bytes()
	}
	var got Batch
	d.Reset(mutation(1, nil, true))
	if err := d.ApplyRequest(&got); err != nil || d.End() != nil || len(got.Mutations) != 1 || got.Mutations[0].Key != "k" || string(got.Mutations[0].Value) != "v" {
		t.Errorf("mutation with a seventh field: %v, %+v", err, got.Mutations)
	}
	for name, req := range map[string][]byte{
		"kind 256":        mutation(256, nil, false),
		"key of 4 GiB":    mutation(1, []byte{0xdb, 0xff, 0xff, 0xff, 0xff}, false),
		"key not a str":   mutation(1, []byte{0x01}, false),
		"array32 of 4G":   {0x92, 0x01, 0xdd, 0xff, 0xff, 0xff, 0xff},
		"mutation of 5":   {0x92, 0x01, 0x91, 0x95, 0x01, 0xa1, 'm', 0xa1, 'k', 0xc2, 0xc4, 0x00},
		"backup not bool": {0x92, 0x01, 0x91, 0x96, 0x01, 0xa1, 'm', 0xa1, 'k', 0x01, 0xc4, 0x00, 0x00},
	} {
		d.Reset(req)
		if err := d.ApplyRequest(&got); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}

// TestDecoder_shareKeys checks that keys cut from shared chunks are right
// and stay unchanged when the input is cleared and later requests are
// decoded into fresh chunks, for empty, short and long keys.
func TestDecoder_shareKeys(t *testing.T) {
	keysOf := func(round int) []string {
		var keys []string
		for i := 0; i < 100; i++ {
			keys = append(keys, strings.Repeat(string(rune('a'+round)), i%25)+strconv.Itoa(i))
		}
		return append(keys, "", strings.Repeat("long", 100), "ключ/😀")
	}
	e, d := NewEncoder(), NewDecoder()
	d.ShareKeys = true
	var batches []Batch
	var gets [][]string
	for round := 0; round < 3; round++ {
		want := keysOf(round)
		b := &Batch{Now: 1}
		for _, k := range want {
			b.Put("m", k, false, []byte("v"), 0)
		}
		e.Reset(nil)
		e.ApplyRequest(b)
		in := append([]byte(nil), e.Bytes()...)
		d.Reset(in)
		var got Batch
		if err := d.ApplyRequest(&got); err != nil {
			t.Fatal(err)
		}
		clear(in)
		batches = append(batches, got)

		e.Reset(nil)
		e.GetRequest("m", false, want)
		in = append([]byte(nil), e.Bytes()...)
		d.Reset(in)
		r, err := d.GetRequest(nil)
		if err != nil {
			t.Fatal(err)
		}
		clear(in)
		gets = append(gets, r.Keys)
	}
	for round := range batches {
		want := keysOf(round)
		for i, m := range batches[round].Mutations {
			if m.Key != want[i] {
				t.Errorf("round %d: apply key %d = %q, want %q", round, i, m.Key, want[i])
			}
		}
		if !reflect.DeepEqual(gets[round], want) {
			t.Errorf("round %d: get keys = %q, want %q", round, gets[round], want)
		}
	}
}

// TestDecoder_getRequestEdges checks the get decoder's own field handling:
// every truncation fails with ErrMalformed, a nil key list is empty, and
// fields a later version appends are skipped.
func TestDecoder_getRequestEdges(t *testing.T) {
	e, d := NewEncoder(), NewDecoder()
	e.GetRequest("m", true, []string{"a", "", "ключ"})
	full := append([]byte(nil), e.Bytes()...)
	for n := 0; n < len(full); n++ {
		d.Reset(full[:n])
		if _, err := d.GetRequest(nil); !errors.Is(err, ErrMalformed) {
			t.Fatalf("truncated to %d bytes: err = %v, want ErrMalformed", n, err)
		}
	}
	d.Reset(full)
	r, err := d.GetRequest(nil)
	if err != nil || d.End() != nil || r.Map != "m" || !r.Backup || !reflect.DeepEqual(r.Keys, []string{"a", "", "ключ"}) {
		t.Errorf("GetRequest = %+v, %v", r, err)
	}
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	_ = enc.EncodeArrayLen(4)
	_ = enc.EncodeString("m")
	_ = enc.EncodeBool(false)
	_ = enc.EncodeNil()
	_ = enc.EncodeString("future field")
	d.Reset(buf.Bytes())
	if r, err := d.GetRequest(nil); err != nil || d.End() != nil || len(r.Keys) != 0 || r.Map != "m" {
		t.Errorf("nil keys and a fourth field: %+v, %v", r, err)
	}
	for name, req := range map[string][]byte{
		"array of 2":      {0x92, 0xa1, 'm', 0xc2},
		"key of 4 GiB":    {0x93, 0xa1, 'm', 0xc2, 0x91, 0xdb, 0xff, 0xff, 0xff, 0xff},
		"key not a str":   {0x93, 0xa1, 'm', 0xc2, 0x91, 0x01},
		"map not a str":   {0x93, 0x01, 0xc2, 0x90},
		"keys of 4G":      {0x93, 0xa1, 'm', 0xc2, 0xdd, 0xff, 0xff, 0xff, 0xff},
		"backup not bool": {0x93, 0xa1, 'm', 0x01, 0x90},
	} {
		d.Reset(req)
		if _, err := d.GetRequest(nil); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}

// TestDecoder_skipsTrailingFields: fields a later minor version adds are
// skipped whatever their shape, nested values without recursion (the stack
// is capped here so that recursing once per level would overflow it, which
// kills the process), and hostile lengths are refused before anything is
// allocated for them.
func TestDecoder_skipsTrailingFields(t *testing.T) {
	head := []byte{0x96, 0xa4, 'n', 'u', 'l', 'l', 0x01, 0x00, 0x04}
	want := Description{Name: "null", ABIMajor: 1, Capabilities: 4}
	decode := func(t *testing.T, in []byte) error {
		t.Helper()
		d := NewDecoder()
		d.Reset(in)
		got, err := d.Description()
		if err == nil {
			err = d.End()
		}
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("got %+v, want %+v", got, want)
		}
		return err
	}
	nested := func(depth int) []byte {
		b := bytes.Repeat([]byte{0x91}, depth)
		return append(b, 0x01)
	}
	enc := func(v any) []byte {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	concat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

	t.Run("any shape", func(t *testing.T) {
		in := concat(head, enc(map[string]any{"a": []any{1, "two", map[string]any{"b": []byte("c")}}}), []byte{0xd4, 0x05, 0x07})
		if err := decode(t, in); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("deep nesting", func(t *testing.T) {
		old := debug.SetMaxStack(8 << 20)
		defer debug.SetMaxStack(old)
		if err := decode(t, concat(head, nested(1<<20), []byte{0x02})); err != nil {
			t.Fatal(err)
		}
		if err := decode(t, concat(head, nested(1<<20))); err == nil || !IsMalformed(err) {
			t.Fatalf("one value missing at the end: got %v, want malformed", err)
		}
	})
	for name, tail := range map[string][]byte{
		"str32 of 4 GiB":   {0xdb, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02},
		"bin32 of 4 GiB":   {0xc6, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02},
		"ext32 of 4 GiB":   {0xc9, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02},
		"array32 of 4 Gi":  {0xdd, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02},
		"map32 of 4 Gi":    {0xdf, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02},
		"nested past end":  concat(bytes.Repeat([]byte{0x92}, 100), []byte{0x01}),
		"reserved code c1": {0xc1, 0x01},
	} {
		t.Run(name, func(t *testing.T) {
			in := concat(head, tail)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			err := decode(t, in)
			runtime.ReadMemStats(&after)
			if err == nil || !IsMalformed(err) {
				t.Fatalf("got %v, want malformed", err)
			}
			if got := after.TotalAlloc - before.TotalAlloc; got > 256<<10 {
				t.Fatalf("%d KiB allocated to refuse %d bytes", got>>10, len(in))
			}
		})
	}
}
