package abi

import (
	"bytes"
	"errors"
	"reflect"
	"strconv"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// runsBatch mixes kinds, maps, backup flags, nil and empty values, and a
// delete carrying a value (which apply_runs does not send).
func runsBatch() *Batch {
	b := &Batch{Now: 42}
	b.Put("m", "k1", false, []byte("v1"), 5)
	b.Put("m", "k2", false, nil, 0)
	b.Put("m", "k3", false, []byte{}, 0)
	b.Put("m", "k1", true, []byte("backup"), 0)
	b.Delete("m", "k2", false)
	b.Delete("m", "k3", false)
	b.Mutations = append(b.Mutations, Mutation{Kind: OpDelete, Map: "m", Key: "k9", Value: []byte("ignored"), ExpirationTime: 3})
	b.Put("other", "ключ/😀", false, bytes.Repeat([]byte{0xff}, 300), 0)
	b.Put("m", "k4", false, []byte("v4"), 0)
	b.Mutations = append(b.Mutations, Mutation{Kind: 9, Map: "m", Key: "odd", Value: []byte("x"), ExpirationTime: 1})
	return b
}

// normalized is what apply_runs delivers: deletes carry no value or
// expiration.
func normalized(b *Batch) []Mutation {
	out := append([]Mutation(nil), b.Mutations...)
	for i := range out {
		if out[i].Kind == OpDelete {
			out[i].Value, out[i].ExpirationTime = nil, 0
		}
	}
	return out
}

func TestApplyRuns_roundTrip(t *testing.T) {
	b := runsBatch()
	e := NewEncoder()
	e.ApplyRunsRequest(b)
	full := append([]byte(nil), e.Bytes()...)
	d := NewDecoder()
	for _, alias := range []bool{false, true} {
		d.AliasValues = alias
		// A batch decoded into the capacity of a longer one keeps none of
		// the longer one's mutations.
		got := Batch{Mutations: make([]Mutation, 20, 20)}
		for i := range got.Mutations {
			got.Mutations[i] = Mutation{Kind: OpPut, Map: "stale", Key: "stale", Value: []byte("stale")}
		}
		d.Reset(full)
		if err := d.ApplyRunsRequest(&got); err != nil || d.End() != nil {
			t.Fatalf("alias=%v: %v", alias, err)
		}
		if got.Now != 42 || !reflect.DeepEqual(got.Mutations, normalized(b)) {
			t.Fatalf("alias=%v: decoded %+v, want %+v", alias, got.Mutations, normalized(b))
		}
		if alias {
			if v := got.Mutations[0].Value; &v[0] != &full[bytes.Index(full, []byte("v1"))] {
				t.Error("AliasValues: the value is a copy")
			}
		}
	}
	// Runs: [m put] [m put backup] [m delete] [other put] [m put] [m kind 9].
	var raw []any
	if err := msgpack.Unmarshal(full, &raw); err != nil {
		t.Fatal(err)
	}
	if runs := raw[1].([]any); len(runs) != 6 {
		t.Fatalf("%d runs, want 6: %v", len(runs), runs)
	}
}

// One map's 1000 puts are one run, and smaller than apply's form.
func TestApplyRuns_smaller(t *testing.T) {
	b := &Batch{Now: 1}
	for i := 0; i < 1000; i++ {
		b.Put("bench", "key-"+strconv.Itoa(1e15+i), false, make([]byte, 100), 0)
	}
	e := NewEncoder()
	e.ApplyRequest(b)
	old := e.Len()
	e.Reset(nil)
	e.ApplyRunsRequest(b)
	if e.Len() >= old {
		t.Fatalf("apply_runs body %d bytes, apply %d", e.Len(), old)
	}
	t.Logf("apply %d bytes, apply_runs %d bytes", old, e.Len())
}

func TestApplyRuns_malformed(t *testing.T) {
	e := NewEncoder()
	e.ApplyRunsRequest(runsBatch())
	full := append([]byte(nil), e.Bytes()...)
	d := NewDecoder()
	for n := 0; n < len(full); n++ {
		d.Reset(full[:n])
		var got Batch
		if err := d.ApplyRunsRequest(&got); !errors.Is(err, ErrMalformed) {
			t.Fatalf("truncated to %d bytes: err = %v, want ErrMalformed", n, err)
		}
	}
	enc := func(v any) []byte {
		p, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	for name, body := range map[string][]byte{
		"items not triples": enc([]any{1, []any{[]any{1, "m", false, []any{"k", []byte("v")}}}}),
		"kind over 255":     enc([]any{1, []any{[]any{256, "m", false, []any{"k"}}}}),
		"run too short":     enc([]any{1, []any{[]any{1, "m", false}}}),
		"not an array":      enc(map[string]int{"a": 1}),
	} {
		d.Reset(body)
		var got Batch
		if err := d.ApplyRunsRequest(&got); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
	// Too many mutations: invalid argument, before the run is decoded.
	keys := make([]any, MaxBatchOps+1)
	for i := range keys {
		keys[i] = "k"
	}
	d.Reset(enc([]any{1, []any{[]any{2, "m", false, keys}}}))
	var got Batch
	if err := d.ApplyRunsRequest(&got); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("err = %v, want invalid argument", err)
	}
}

// A later minor version may append fields to the request and to runs.
func TestApplyRuns_forwardCompatible(t *testing.T) {
	body, err := msgpack.Marshal([]any{7, []any{[]any{1, "m", true, []any{"k", []byte("v"), 3}, "extra"}}, "extra"})
	if err != nil {
		t.Fatal(err)
	}
	d := NewDecoder()
	d.Reset(body)
	var got Batch
	if err := d.ApplyRunsRequest(&got); err != nil || d.End() != nil {
		t.Fatal(err)
	}
	want := []Mutation{{Kind: OpPut, Map: "m", Key: "k", Backup: true, Value: []byte("v"), ExpirationTime: 3}}
	if got.Now != 7 || !reflect.DeepEqual(got.Mutations, want) {
		t.Fatalf("decoded %+v", got)
	}
}

// FuzzApplyRunsRequest: any input decodes or fails with ErrMalformed or
// ErrInvalidArgument, and whatever decodes encodes back to a body that
// decodes to the same mutations.
func FuzzApplyRunsRequest(f *testing.F) {
	e := NewEncoder()
	e.ApplyRunsRequest(runsBatch())
	f.Add(append([]byte(nil), e.Bytes()...))
	f.Add([]byte{0x92, 0x01, 0x90})
	f.Fuzz(func(t *testing.T, body []byte) {
		d := NewDecoder()
		d.Reset(body)
		var got Batch
		if err := d.ApplyRunsRequest(&got); err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("err = %v", err)
			}
			return
		}
		e := NewEncoder()
		e.ApplyRunsRequest(&got)
		d.Reset(e.Bytes())
		var again Batch
		if err := d.ApplyRunsRequest(&again); err != nil || d.End() != nil {
			t.Fatalf("re-encoded body does not decode: %v", err)
		}
		if !reflect.DeepEqual(normalized(&got), again.Mutations) || got.Now != again.Now {
			t.Fatalf("round trip changed the batch: %+v then %+v", got, again)
		}
	})
}

// BenchmarkDecodeApply compares the two forms of a batch of 1000 puts of
// 100-byte values as the guest decodes them (run it inside wasm to see
// what a plugin pays: see sdk's benchmarks).
func BenchmarkDecodeApply(b *testing.B) {
	batch := &Batch{Now: 1}
	for i := 0; i < 1000; i++ {
		batch.Put("bench", "key-"+strconv.Itoa(1e15+i), false, make([]byte, 100), 0)
	}
	for _, form := range []string{"apply", "apply_runs"} {
		e := NewEncoder()
		decode := (*Decoder).ApplyRequest
		if form == "apply" {
			e.ApplyRequest(batch)
		} else {
			e.ApplyRunsRequest(batch)
			decode = (*Decoder).ApplyRunsRequest
		}
		body := e.Bytes()
		b.Run(form, func(b *testing.B) {
			d := NewDecoder()
			d.AliasValues = true
			var got Batch
			for i := 0; i < b.N; i++ {
				d.Reset(body)
				if err := decode(d, &got); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/mutation")
		})
	}
}

// A Records or Page message built from headers and single records is the
// same bytes as the one built from a slice.
func TestEncoder_piecewise(t *testing.T) {
	recs := sampleRecords()
	whole, parts, side := NewEncoder(), NewEncoder(), NewEncoder()
	whole.Records(recs)
	for i := range recs {
		side.Record(&recs[i])
	}
	parts.RecordsHeader(len(recs))
	parts.AppendEncoded(side.Bytes())
	if !bytes.Equal(whole.Bytes(), parts.Bytes()) {
		t.Fatalf("records: %x, piecewise %x", whole.Bytes(), parts.Bytes())
	}
	for _, cursor := range [][]byte{nil, []byte("k")} {
		whole.Reset(nil)
		whole.Page(&Page{Records: recs, Cursor: cursor})
		parts.Reset(nil)
		parts.PageHeader(len(recs))
		parts.AppendEncoded(side.Bytes())
		parts.PageCursor(cursor)
		if !bytes.Equal(whole.Bytes(), parts.Bytes()) {
			t.Fatalf("page: %x, piecewise %x", whole.Bytes(), parts.Bytes())
		}
	}
}
