package store

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/host"
	"github.com/topgun-go/topgun/host/hosttest"
	"github.com/topgun-go/topgun/server/record"
)

// limitedLogstore opens the logstore example plugin with the least
// TOPGUN_PLUGIN_MAX_REQUEST_BYTES, which a request over it the plugin
// refuses as too large.
func limitedLogstore(t *testing.T) abi.Backend {
	if testing.Short() {
		t.Skip("builds a wasm plugin")
	}
	wasm := hosttest.BuildPlugin(t, "../../examples/plugins/logstore/cmd/logstore")
	limit := abi.MaxValueBytes + 64<<10
	pb, err := host.Load(context.Background(), wasm, &host.Options{DataDir: t.TempDir(), MaxRequestBytes: limit})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pb.Close() })
	return pb
}

// A wasm plugin refuses a request over TOPGUN_PLUGIN_MAX_REQUEST_BYTES.
// Writers whose writes each fit must not fail because a group commit
// gathered them into one batch over it.
func TestStore_groupCommitFitsPluginRequestLimit(t *testing.T) {
	pb := limitedLogstore(t)
	be := &sizeBackend{Backend: pb, entered: make(chan struct{}, 1), hold: make(chan struct{})}
	f, merged, first := heldFirstCommit(t, be, nil)
	const writers = 3
	big := strings.Repeat("x", 4<<20) // one fits a request; three do not
	errs := make(chan error, writers)
	for i := range writers {
		go func() {
			_, err := f.s.Apply(context.Background(), []Op{put("m", "k"+strconv.Itoa(i), big, ts(t0, 0, "c"))}, uint64(i+2))
			errs <- err
		}()
	}
	for deadline := time.Now().Add(10 * time.Second); merged.Load() < 2 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // let the committer gather the rest
	close(be.hold)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Errorf("a write that fits the plugin's request limit failed: %v", err)
		}
	}
	for i := range writers {
		if v, ok := f.get("m", "k"+strconv.Itoa(i)); !ok || len(v) != len(big) {
			t.Errorf("k%d not stored", i)
		}
	}
}

// A write merged behind a batch the plugin refuses as too large fails with
// it (its merge may have read that batch's state), but is merged again and
// committed: it does not fail for another client's oversized batch.
func TestStore_writeBehindOversizedBatchCommits(t *testing.T) {
	pb := limitedLogstore(t)
	be := &sizeBackend{Backend: pb, entered: make(chan struct{}, 1), hold: make(chan struct{})}
	f := newFixture(t, be, nil)
	var merged atomic.Int64
	f.s.mergedHook = func() { merged.Add(1) }
	big := strings.Repeat("x", 5<<20)
	oversized := make(chan error, 1)
	go func() {
		_, err := f.s.Apply(context.Background(), []Op{
			put("m", "a", big, ts(t0, 0, "c")), put("m", "b", big, ts(t0, 0, "c")),
		}, 1)
		oversized <- err
	}()
	<-be.entered // the oversized batch is in flight
	small := make(chan error, 1)
	go func() {
		_, err := f.s.Apply(context.Background(), []Op{put("m", "small", "v", ts(t0, 0, "c"))}, 2)
		small <- err
	}()
	for deadline := time.Now().Add(10 * time.Second); merged.Load() < 2 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	close(be.hold)
	if err := <-oversized; abi.CodeOf(err) != abi.CodeResourceExhausted {
		t.Fatalf("oversized batch: %v, want resource exhausted", err)
	}
	if err := <-small; err != nil {
		t.Fatalf("a small write merged behind another client's oversized batch failed: %v", err)
	}
	if v, ok := f.get("m", "small"); !ok || v != "v" {
		t.Fatalf("small = %q, %t", v, ok)
	}
	if _, ok := f.get("m", "a"); ok {
		t.Fatal("the refused batch was stored")
	}
}

// The expiry of OR keys keeps their unexpired entries: a pass over keys
// that are large together is a batch over a plugin's request limit, which
// failed at every pass, for good (they head every listing), and no record
// expired after them was reaped either.
func TestStore_ReapExpired_fitsPluginRequestLimit(t *testing.T) {
	pb := limitedLogstore(t)
	f := newFixture(t, pb, nil)
	big := record.StringValue(strings.Repeat("x", 3<<20)) // three keys do not fit one request
	const keys = 3
	for i := range keys {
		k := "k" + strconv.Itoa(i)
		r := f.apply(
			Op{Map: "m", Key: k, Kind: OpORAdd, Value: big, Timestamp: ts(t0, 0, "c"), Tag: k + "-kept"},
			Op{Map: "m", Key: k, Kind: OpORAdd, Value: record.StringValue("v"), Timestamp: ts(t0, 1, "c"), Tag: k + "-gone", TTLMs: 1000},
		)
		if !r[0].Changed || !r[1].Changed {
			t.Fatalf("adds to %s: %+v", k, r)
		}
	}
	f.apply(Op{Map: "m", Key: "later", Kind: OpPut, Value: record.StringValue("v"), Timestamp: ts(t0, 2, "c"), TTLMs: 2000})
	f.wall.Add(5000)
	n, err := f.s.ReapExpired(context.Background())
	if err != nil {
		t.Fatalf("reap: %v", err)
	}
	if n != keys+1 {
		t.Errorf("reaped %d records, want %d", n, keys+1)
	}
	recs, err := pb.ListExpired(context.Background(), f.wall.Load(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 0 {
		t.Errorf("%d records still listed as expired after the pass", len(recs))
	}
}
