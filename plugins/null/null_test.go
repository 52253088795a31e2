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
