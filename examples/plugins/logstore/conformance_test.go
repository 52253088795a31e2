package logstore

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/abi/abitest"
)

// tbWriter sends log output to the Logf of a conformance case.
type tbWriter struct{ t abitest.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// harness opens each case's stores in a fresh directory under base.
func harness(base string, compactMinBytes int64) abitest.Harness {
	open := func(t abitest.TB, dir string) abi.Backend {
		o := DefaultOptions()
		o.CompactMinBytes = compactMinBytes
		o.Logger = hclog.New(&hclog.LoggerOptions{Name: "logstore", Level: hclog.Debug, Output: tbWriter{t}})
		s, err := Open(context.Background(), dir, o)
		if err != nil {
			t.Fatalf("Open(%s): %v", dir, err)
		}
		return s
	}
	return abitest.Harness{
		Open: func(t abitest.TB) abi.Backend {
			dir, err := os.MkdirTemp(base, "case")
			if err != nil {
				t.Fatalf("%v", err)
			}
			return open(t, dir)
		},
		Reopen: func(t abitest.TB, b abi.Backend) abi.Backend {
			s := b.(*Store)
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			return open(t, s.dir)
		},
	}
}

func TestConformance(t *testing.T) {
	t.Run("default", func(t *testing.T) {
		abitest.RunConformance(t, harness(t.TempDir(), DefaultOptions().CompactMinBytes))
	})
	// A small floor makes the suite's overwrites and deletes compact the
	// log often, so every case also runs across compactions.
	t.Run("compacting", func(t *testing.T) {
		abitest.RunConformance(t, harness(t.TempDir(), 32<<10))
	})
}
