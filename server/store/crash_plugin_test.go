package store

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/host"
	"github.com/topgun-go/topgun/host/hosttest"
)

func init() {
	crashOpeners["plugin"] = func(ctx context.Context, arg string) (abi.Backend, error) {
		wasm, dir, _ := strings.Cut(arg, "|")
		return host.Load(ctx, wasm, &host.Options{DataDir: dir})
	}
}

// TestCrash_logstorePlugin runs the crash test on the durable example plugin
// through the wasm host.
func TestCrash_logstorePlugin(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a wasm plugin")
	}
	wasm := hosttest.BuildPlugin(t, "../../examples/plugins/logstore/cmd/logstore")
	runCrash(t, crashSpec{"plugin", wasm + "|" + t.TempDir()})
}

// A fresh instance that cannot start (here the plugin's open refuses its
// log, damaged since load, with invalid argument) is no refusal of the
// write that needed it: the write must fail for its client to send again
// once the store is repaired, not be rejected for good (refusesContent),
// which made TopGun's client and the Go client drop it.
func TestStore_freshInstanceStartFailureIsNotARefusal(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a wasm plugin")
	}
	wasm := hosttest.BuildPlugin(t, "../../host/testdata/plugins/crashstore")
	dir := t.TempDir()
	be, err := host.Load(context.Background(), wasm, &host.Options{DataDir: dir, BreakerFailures: -1})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, be, nil)
	f.apply(put("m", "a", "v", ts(t0, 1, "c")))
	// The header no longer reads as a logstore log's: open, at the next
	// fresh instance, refuses it as invalid argument.
	if err := os.WriteFile(filepath.Join(dir, "logstore.log"), []byte("not a logstore log, at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A write to map "trap" crashes the instance in apply.
	if _, err := f.s.Apply(context.Background(), []Op{put("trap", "k", "v", ts(t0, 2, "c"))}, 1); err == nil {
		t.Fatal("the crashing write succeeded")
	}
	res, err := f.s.Apply(context.Background(), []Op{put("m", "b", "v", ts(t0, 3, "c"))}, 1)
	if err == nil {
		t.Fatalf("a write no instance could take got results %+v, want it failed (sent again), not rejected for good", res)
	}
	if refusesContent(err) {
		t.Errorf("write failed with %v (%s), a code the store takes as storage refusing the write", err, abi.CodeOf(err))
	}
}
