package null_test

import (
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
