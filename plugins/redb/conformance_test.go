package redb

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/abi/abitest"
)

// tempDir returns a fresh directory removed at cleanup; abitest.TB has no
// TempDir, but *testing.T does.
func tempDir(t abitest.TB) string {
	if td, ok := t.(interface{ TempDir() string }); ok {
		return td.TempDir()
	}
	dir, err := os.MkdirTemp("", "redb-conformance-")
	if err != nil {
		t.Fatalf("redb: temp dir: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// conformanceOptions logs to the case's own log.
func conformanceOptions(t abitest.TB) *Options {
	o := DefaultOptions()
	if tb, ok := t.(testing.TB); ok {
		o.Logger = testLogger(tb)
	}
	return o
}

// harness opens each case's backend on a fresh file with the shipped
// options (fsync on), and reopens by closing and opening the same file.
func harness() abitest.Harness {
	return abitest.Harness{
		Open: func(t abitest.TB) abi.Backend {
			b, err := Open(context.Background(), filepath.Join(tempDir(t), "conformance.redb"), conformanceOptions(t))
			if err != nil {
				t.Fatalf("redb: Open: %v", err)
			}
			t.Cleanup(func() {
				_ = b.Close()
				checkFileConsistency(t, b.Path())
			})
			return b
		},
		Reopen: func(t abitest.TB, be abi.Backend) abi.Backend {
			b := be.(*Backend)
			if tb, ok := t.(testing.TB); ok && !b.closed.Load() {
				checkConsistency(tb, b)
			}
			if err := b.Close(); err != nil {
				t.Fatalf("redb: Close: %v", err)
			}
			nb, err := Open(context.Background(), b.Path(), conformanceOptions(t))
			if err != nil {
				t.Fatalf("redb: reopen %s: %v", b.Path(), err)
			}
			t.Cleanup(func() { _ = nb.Close() })
			return nb
		},
	}
}

func TestConformance(t *testing.T) {
	abitest.RunConformance(t, harness())
}

// checkFileConsistency opens a closed database again and checks its
// invariants, so every case also checks what it left on disk.
func checkFileConsistency(t abitest.TB, path string) {
	tb, ok := t.(testing.TB)
	if !ok {
		return
	}
	b, err := Open(context.Background(), path, conformanceOptions(t))
	if err != nil {
		t.Errorf("redb: reopen %s for the consistency check: %v", path, err)
		return
	}
	defer b.Close()
	checkConsistency(tb, b)
}
