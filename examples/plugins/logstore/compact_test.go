package logstore

import (
	"bytes"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/topgun-go/topgun/abi"
)

// warnCounter counts the warnings of a store, passing every line on.
type warnCounter struct {
	Logger
	warns atomic.Int64
}

func (w *warnCounter) Warn(msg string, args ...any) {
	w.warns.Add(1)
	w.Logger.Warn(msg, args...)
}

// TestStore_failedCompactionBacksOff: a compaction that fails (here the
// compaction file cannot be created; in practice a disk too full for a copy
// of the live data) is not tried again after every batch. Found by making
// compaction fail: every later Apply sorted every key under the readers'
// lock and copied the live data again, only to fail, so each small batch
// cost time proportional to the whole store.
func TestStore_failedCompactionBacksOff(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	o := testOptions(t)
	o.CompactMinBytes = 4 << 10
	wc := &warnCounter{Logger: o.Logger}
	o.Logger = wc
	s := openT(t, dir, o)
	// A directory where the compaction file goes: creating it fails.
	blocker := filepath.Join(dir, compactFileName)
	if err := os.Mkdir(blocker, 0o755); err != nil {
		t.Fatal(err)
	}
	v := bytes.Repeat([]byte("v"), 200)
	apply := func(n int) {
		for i := 0; i < n; i++ {
			var b abi.Batch
			b.Now = 1
			b.Put("m", "k", false, v, 0)
			applyT(t, s, &b)
		}
	}
	const batches = 400 // the log grows to about 100 KiB, 25 times the threshold
	apply(batches)
	if s.Stats().Compactions != 0 {
		t.Fatalf("compacted although the compaction file could not be created")
	}
	if n := wc.warns.Load(); n == 0 || n > 20 {
		t.Fatalf("%d failed compactions in %d batches; want a few, retried as the log grows, not one per batch", n, batches)
	}
	// Once the cause is gone, the log is compacted again.
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	apply(batches)
	if st := s.Stats(); st.Compactions == 0 || st.FileBytes > 2*o.CompactMinBytes {
		t.Fatalf("after the failure cleared: %+v; want compactions and a small log", st)
	}
}
