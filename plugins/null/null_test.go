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
