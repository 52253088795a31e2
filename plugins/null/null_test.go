package null_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/abi/abitest"
	"github.com/topgun-go/topgun/plugins/null"
)

func openNull(abitest.TB) abi.Backend { return null.Open() }

// TestConformance runs the whole conformance suite. The null backend keeps
// nothing across Close, so it has no Reopen and the durability case skips.
func TestConformance(t *testing.T) {
	abitest.RunConformance(t, abitest.Harness{Open: openNull})
}

// TestDescribe_notDurable checks what null alone promises: it declares
// atomic batches and nothing that would need storage outside the process.
func TestDescribe_notDurable(t *testing.T) {
	d := null.Open().Describe()
	if d.Name != null.Name {
		t.Errorf("Describe().Name = %q; want %q", d.Name, null.Name)
	}
	if d.Capabilities != abi.CapAtomicBatch {
		t.Errorf("Describe().Capabilities = %v; want only atomic_batch", d.Capabilities.Names())
	}
}

func BenchmarkNull(b *testing.B) {
	abitest.RunBenchmarks(b, func(*testing.B) abi.Backend { return null.Open() })
}

// BenchmarkApply_overwrite measures batches of 1000 puts of 100-byte values
// over records that already exist: the steady state of a write-heavy map.
func BenchmarkApply_overwrite(b *testing.B) {
	be := null.Open()
	defer be.Close()
	ctx := context.Background()
	value := make([]byte, 100)
	batch := &abi.Batch{}
	for i := 0; i < 1000; i++ {
		batch.Put("bench", "key-"+strconv.Itoa(1e15+i), false, value, 0)
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		batch.Now = int64(i + 1)
		if err := be.Apply(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
}

// TestApply_overwriteReusesNothingVisible checks that overwriting a record
// in place (its value storage is reused) changes neither what earlier Gets
// and Scans returned nor the caller's batch, and that shorter, longer and
// empty values read back exactly.
func TestApply_overwriteReusesNothingVisible(t *testing.T) {
	be := null.Open()
	defer be.Close()
	ctx := context.Background()
	put := func(now int64, v string) {
		t.Helper()
		val := []byte(v)
		b := &abi.Batch{Now: now}
		b.Put("m", "k", false, val, 0)
		if err := be.Apply(ctx, b); err != nil {
			t.Fatal(err)
		}
		val[0] = '!' // the backend must have copied it
	}
	get := func() string {
		t.Helper()
		recs, err := be.Get(ctx, "m", false, []string{"k"})
		if err != nil || len(recs) != 1 {
			t.Fatal(err, len(recs))
		}
		return string(recs[0].Value)
	}
	put(1, "first value")
	got := get()
	page, err := be.Scan(ctx, abi.ScanRequest{Map: "m"})
	if err != nil || len(page.Records) != 1 {
		t.Fatal(err, len(page.Records))
	}
	for i, v := range []string{"second", "a longer third value", "x", "same size!!"} {
		put(int64(i+2), v)
		if g := get(); g != v {
			t.Errorf("after put %d: Get = %q, want %q", i+2, g, v)
		}
	}
	if got != "first value" || string(page.Records[0].Value) != "first value" {
		t.Errorf("earlier results changed: Get %q, Scan %q", got, page.Records[0].Value)
	}
	b := &abi.Batch{Now: 9}
	b.Put("m", "k", false, []byte{}, 0)
	if err := be.Apply(ctx, b); err != nil {
		t.Fatal(err)
	}
	if g := get(); g != "" {
		t.Errorf("empty value reads back as %q", g)
	}
}

// TestApply_lastBucket checks the remembered bucket of the last Apply: a
// map emptied by the batch that remembered it, or by a later one, reads
// as empty, and a map re-created after that sees only its new records.
func TestApply_lastBucket(t *testing.T) {
	be := null.Open()
	defer be.Close()
	ctx := context.Background()
	apply := func(fill func(b *abi.Batch)) {
		t.Helper()
		b := &abi.Batch{Now: 1}
		fill(b)
		if err := be.Apply(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	count := func(mapName string, keys ...string) int {
		t.Helper()
		recs, err := be.Get(ctx, mapName, false, keys)
		if err != nil {
			t.Fatal(err)
		}
		page, err := be.Scan(ctx, abi.ScanRequest{Map: mapName})
		if err != nil || len(page.Records) != len(recs) {
			t.Fatalf("Scan: %v, %d records; Get found %d", err, len(page.Records), len(recs))
		}
		return len(recs)
	}
	apply(func(b *abi.Batch) { b.Put("a", "k1", false, []byte("v"), 0); b.Put("a", "k2", false, nil, 0) })
	if n := count("a", "k1", "k2"); n != 2 {
		t.Fatalf("a has %d records, want 2", n)
	}
	apply(func(b *abi.Batch) { b.Delete("a", "k1", false); b.Delete("a", "k2", false) })
	if n := count("a", "k1", "k2"); n != 0 {
		t.Errorf("a emptied by the remembering batch: %d records", n)
	}
	apply(func(b *abi.Batch) { b.Put("a", "k3", false, nil, 0) })
	if maps, err := be.ListMaps(ctx); err != nil || len(maps) != 1 || maps[0] != "a" {
		t.Errorf("ListMaps after a was re-created = %q, %v; want [a]", maps, err)
	}
	apply(func(b *abi.Batch) { b.Put("b", "k", false, nil, 0) })
	apply(func(b *abi.Batch) { b.Delete("a", "k3", false); b.Delete("z", "missing", false) })
	if n := count("a", "k1", "k2", "k3"); n != 0 {
		t.Errorf("a emptied by a later batch: %d records", n)
	}
	apply(func(b *abi.Batch) { b.Put("a", "k4", false, nil, 0) })
	if n := count("a", "k1", "k2", "k3", "k4"); n != 1 {
		t.Errorf("re-created a has %d records, want 1", n)
	}
	if n := count("b", "k"); n != 1 {
		t.Errorf("b has %d records, want 1", n)
	}
	if maps, err := be.ListMaps(ctx); err != nil || len(maps) != 2 || maps[0] != "a" || maps[1] != "b" {
		t.Errorf("ListMaps = %q, %v; want [a b]", maps, err)
	}
	if _, err := be.Get(ctx, "a", false, []string{"bad\x00key"}); abi.CodeOf(err) != abi.CodeInvalidArgument {
		t.Errorf("Get of an invalid key in a present map: %v, want CodeInvalidArgument", err)
	}
	if _, err := be.Get(ctx, "", false, []string{"k4"}); abi.CodeOf(err) != abi.CodeInvalidArgument {
		t.Errorf("Get of an empty map name: %v, want CodeInvalidArgument", err)
	}
	be.Close()
	if _, err := be.Get(ctx, "a", false, []string{"k4"}); abi.CodeOf(err) != abi.CodeUnavailable {
		t.Errorf("Get after Close: %v, want CodeUnavailable", err)
	}
}
