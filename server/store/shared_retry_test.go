package store

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/topgun-go/topgun/server/record"
)

// remergeCounter is a log output that counts the store's "merging again"
// lines (one per Apply retried after a conflict).
type remergeCounter struct {
	t *testing.T
	n *atomic.Int64
}

func (w remergeCounter) Write(p []byte) (int, error) {
	if strings.Contains(string(p), "merging again") {
		w.n.Add(1)
	}
	w.t.Log(string(p))
	return len(p), nil
}

// sharedPairHeld is sharedPairFailing whose second store counts its
// retries after a conflict.
func sharedPairHeld(t *testing.T) (a, b *fixture, fb *failingPG, url string, remerged *atomic.Int64) {
	t.Helper()
	remerged = &atomic.Int64{}
	a, b, fb, url = sharedPairFailing(t, func(o *Options) {
		o.Logger = hclog.New(&hclog.LoggerOptions{Name: "store", Output: remergeCounter{t, remerged}, Level: hclog.Debug})
	})
	return a, b, fb, url, remerged
}

// awaitMerged waits (up to 10 s) until n requests were merged into the
// txn the committer is filling.
func awaitMerged(t *testing.T, f *fixture, n int64) {
	t.Helper()
	for i := 0; i < 1000 && f.s.merged.Load() < n; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if f.s.merged.Load() < n {
		t.Fatalf("%d requests merged, want %d", f.s.merged.Load(), n)
	}
}

// A checked commit that conflicts (another server wrote its key) failed
// every txn merged behind it, though they read nothing of it: a write of
// an unrelated key got the conflict and was merged again (a retry spent;
// under load each such txn failed the next one too, so a few conflicts
// spent a writer's eight tries in milliseconds), and a re-read of records
// another server changed failed, for the refresher to wait a second.
func TestShared_txnBehindConflictNotFailed(t *testing.T) {
	a, b, fb, url, remerged := sharedPairHeld(t)
	hold := make(chan struct{})
	fb.held.Store(&hold)
	wDone := make(chan error, 1)
	go func() {
		_, err := b.s.Apply(context.Background(), []Op{put("m", "k", "fromB", ts(t0+20, 0, "c2"))}, 1)
		wDone <- err
	}()
	<-fb.entered // B's commit of k is in flight, over what it read
	// Another server's write, unheard (no notification: no re-read
	// joins the txns below).
	writeElsewhere(t, url, a, "m", "k", record.NewLWW(record.StringValue("fromA"), ts(t0+10, 0, "c1")))
	xDone := make(chan error, 1)
	go func() {
		_, err := b.s.Apply(context.Background(), []Op{put("m", "j", "x", ts(t0+5, 0, "c3"))}, 1)
		xDone <- err
	}()
	rDone := make(chan error, 1)
	go func() { rDone <- b.s.refreshKeys(context.Background(), "n", []string{"other"}) }()
	awaitMerged(t, b, 2) // both behind the held commit
	fb.held.Store(nil)
	close(hold)
	if err := <-wDone; err != nil {
		t.Fatalf("B's write of k: %v", err)
	}
	if err := <-xDone; err != nil {
		t.Fatalf("B's write of j: %v", err)
	}
	if err := <-rDone; err != nil {
		t.Errorf("the re-read of another map failed: %v", err)
	}
	if n := remerged.Load(); n != 1 {
		t.Errorf("%d merges again after conflicts, want 1 (the write of k only)", n)
	}
	if v, _ := storedLWW(t, a, "m", "k"); v != "fromB" {
		t.Errorf("storage holds %q for k", v)
	}
	if v, _ := storedLWW(t, a, "m", "j"); v != "x" {
		t.Errorf("storage holds %q for j", v)
	}
}

// A re-read of records another server changed, grouped with a client
// write whose own checked commit conflicts, fails with that conflict:
// the refresher then waits a second before reading again, while clients
// of this server miss the other server's change. It is merged again at
// once, as a client write is.
func TestShared_refreshInConflictingGroupRetried(t *testing.T) {
	a, b, fb, url, _ := sharedPairHeld(t)
	rDone := make(chan error, 1)
	inConflictingGroup(t, a, b, fb, url, func() {
		writeElsewhere(t, url, a, "n", "other", record.NewLWW(record.StringValue("elsewhere"), ts(t0+1, 0, "c9")))
		go func() { rDone <- b.s.refreshKeys(context.Background(), "n", []string{"other"}) }()
	})
	if err := <-rDone; err != nil {
		t.Fatalf("the re-read failed: %v", err)
	}
	b.s.mu.RLock()
	indexed := false
	if ms := b.s.maps["n"]; ms != nil {
		_, indexed = ms.lww.get("other")
	}
	b.s.mu.RUnlock()
	if !indexed {
		t.Error("the re-read did not index the other server's record")
	}
}

// A tombstone collection chunk grouped with a client write whose own
// checked commit conflicts failed with that conflict: the pass stopped
// there (its cut-off unpublished, the tombstones kept) and the next one
// came a GCInterval (an hour) later. It is merged again at once, as the
// write is.
func TestShared_tombstoneCollectionInConflictingGroupRetried(t *testing.T) {
	a, b, fb, url := sharedPairFailing(t, func(o *Options) { o.TombstoneTTL = time.Hour })
	b.apply(Op{Map: "g", Key: "gone", Kind: OpRemove, Timestamp: ts(t0, 0, "c2")})
	b.wall.Add(2 * time.Hour.Milliseconds())
	type result struct {
		n   int
		err error
	}
	cDone := make(chan result, 1)
	inConflictingGroup(t, a, b, fb, url, func() {
		go func() {
			n, err := b.s.CollectTombstones(context.Background())
			cDone <- result{n, err}
		}()
	})
	r := <-cDone
	if r.err != nil || r.n != 1 {
		t.Fatalf("collection: %d collected, error %v; want 1, nil", r.n, r.err)
	}
	if recs, err := b.be.Get(context.Background(), "g", false, []string{"gone"}); err != nil || len(recs) != 0 {
		t.Fatalf("the old tombstone is still stored (%d records, %v)", len(recs), err)
	}
	if p, ok := b.s.PruneBefore(); !ok || p.Millis != uint64(b.wall.Load()-time.Hour.Milliseconds()) {
		t.Errorf("cut-off %v (%v) not published", p, ok)
	}
}

// inConflictingGroup has start (which starts some work of B's store in a
// goroutine of its own) merged into the txn of a client write of k whose
// checked commit conflicts: another server writes k after B read it, while
// a commit of B is held in flight. It returns once B's writes are
// answered.
func inConflictingGroup(t *testing.T, a, b *fixture, fb *failingPG, url string, start func()) {
	t.Helper()
	hold := make(chan struct{})
	fb.held.Store(&hold)
	zDone := make(chan error, 1)
	go func() {
		_, err := b.s.Apply(context.Background(), []Op{put("m", "z", "z", ts(t0, 0, "c2"))}, 1)
		zDone <- err
	}()
	<-fb.entered // a commit in flight: the next txn fills behind it
	wDone := make(chan error, 1)
	go func() {
		_, err := b.s.Apply(context.Background(), []Op{put("m", "k", "fromB", ts(t0+20, 0, "c2"))}, 1)
		wDone <- err
	}()
	awaitMerged(t, b, 1) // k read from storage
	// Another server's write, unheard (no notification: no re-read joins
	// the txns below): B's commit of k conflicts.
	writeElsewhere(t, url, a, "m", "k", record.NewLWW(record.StringValue("fromA"), ts(t0+10, 0, "c1")))
	start()
	awaitMerged(t, b, 2) // the work, in the txn whose commit conflicts
	fb.held.Store(nil)
	close(hold)
	for _, done := range []chan error{zDone, wDone} {
		if err := <-done; err != nil {
			t.Fatalf("B's write: %v", err)
		}
	}
}
