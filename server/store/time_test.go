package store

import (
	"context"
	"testing"
	"time"

	"github.com/topgun-go/topgun/plugins/null"
	"github.com/topgun-go/topgun/server/record"
)

// sinceKeys returns the keys Since(since) reports for map m.
func sinceKeys(t *testing.T, f *fixture, m string, since int64) map[string]bool {
	t.Helper()
	es, _, complete, err := f.s.Since(context.Background(), m, since, SinceLimits{Records: 100, Bytes: 1 << 20})
	if err != nil || !complete {
		t.Fatalf("Since(%d): complete %v, %v", since, complete, err)
	}
	got := map[string]bool{}
	for _, e := range es {
		got[e.Key] = true
	}
	return got
}

// SyncPoint promises that a caller resuming with since = SyncPoint misses
// nothing this store commits, even when the wall clock steps back after
// SyncPoint was given out.
func TestStore_SyncPoint_resumeMissesNothingAfterClockStepsBack(t *testing.T) {
	f := newFixture(t, null.Open(), nil)
	f.apply(put("m", "a", "v", ts(t0, 0, "c1")))
	f.wall.Add(50)
	point := f.s.SyncPoint() // handed to an HTTP client as its resume point
	f.wall.Add(-1000)        // NTP steps the clock back
	f.apply(put("m", "b", "v", ts(t0+1, 0, "c1")))
	if got := sinceKeys(t, f, "m", point); !got["b"] {
		t.Fatalf("Since(SyncPoint %d) = %v: the commit after the clock stepped back is missed", point, got)
	}
}

// Commit times continue past those stored when the store reopens on the
// same data with the wall clock behind them: a client paging through
// Since (resuming at upTo, a stored commit time) across the restart still
// receives the commits made after it.
func TestStore_Since_pagingMissesNothingAfterReopenWithClockBehind(t *testing.T) {
	f := newFixture(t, null.Open(), nil)
	f.apply(put("m", "a", "v", ts(t0, 0, "c1")))
	f.wall.Add(100)
	f.apply(put("m", "b", "v", ts(t0+100, 0, "c1")))
	es, upTo, complete, err := f.s.Since(context.Background(), "m", t0-1, SinceLimits{Records: 1, Bytes: 1 << 20})
	if err != nil || complete || len(es) != 1 {
		t.Fatalf("first page: %d entries, complete %v, %v", len(es), complete, err)
	}
	f.s.Close()
	f.wall.Add(-1000) // the restarted server's clock is behind
	f.open()
	f.apply(put("m", "c", "v", ts(t0+200, 0, "c1")))
	if got := sinceKeys(t, f, "m", upTo); !got["b"] || !got["c"] {
		t.Fatalf("Since(%d) after reopen = %v, want b and c", upTo, got)
	}
}

// The store's clock promises timestamps greater than every one seen
// before, and a restart must not break that: the store reopens on the same
// data with a new clock whose wall clock has not reached a record a
// client stamped ahead of it (within the drift bound), and the clock
// resumes past the stored stamps (server stamps: tags of OR adds, the
// timestamps of SYNC_RESP_ROOT and POST /sync answers).
func TestStore_reopenedClockResumesPastStoredStamps(t *testing.T) {
	f := newFixture(t, null.Open(), nil)
	stored := ts(t0+30_000, 5, "c1") // client clock 30 s ahead
	f.apply(put("m", "k", "v", ts(t0, 0, "c1")))
	f.apply(Op{Map: "o", Key: "k", Kind: OpORAdd, Value: record.IntValue(1), Tag: "t1", Timestamp: stored})
	f.s.Close()
	f.wall.Add(1000)
	f.clock = &testClock{wall: f.wall, drift: 60_000}
	f.opts.Clock = f.clock
	f.open()
	if now := f.s.Clock().Now(); now.Compare(stored) <= 0 {
		t.Fatalf("after reopen the clock stamps %s, not after the stored %s", now, stored)
	}
}

// TOPGUN_TOMBSTONE_TTL is how long deletes are kept for offline clients:
// a remove made offline and sent late (stamped long ago) is kept that long
// from when it reached the server, not collected at the next pass, before
// clients that were away for less than the TTL could learn of it. The
// cut-off clients are told to prune by keeps it too.
func TestStore_tombstoneGC_keepsLateRemoveForTheTTL(t *testing.T) {
	const hour = 3600_000
	f := newFixture(t, null.Open(), func(o *Options) { o.TombstoneTTL = time.Hour })
	f.wall.Store(t0 - 3*hour)
	f.apply(Op{Map: "m", Key: "old", Kind: OpRemove, Timestamp: ts(t0-3*hour, 0, "c1")})
	f.apply(put("m", "k", "v", ts(t0-3*hour, 1, "c1")))
	f.wall.Store(t0)
	// Client c2 removed k two hours ago while offline and sends it now.
	if r := f.apply(Op{Map: "m", Key: "k", Kind: OpRemove, Timestamp: ts(t0-2*hour, 0, "c2")}); !r[0].Changed {
		t.Fatal("the late remove was not applied")
	}
	f.wall.Add(10 * 60_000)
	sub := f.s.Subscribe()
	defer sub.Close()
	if n, err := f.s.CollectTombstones(context.Background()); err != nil || n != 1 {
		t.Fatalf("collected %d tombstones (%v), want only the old one", n, err)
	}
	leaf, _, _ := f.s.Leaf(context.Background(), "m", KindLWW, leafPath("k"))
	if len(leaf) != 1 || !leaf[0].Record.LWW.Value.IsNull() {
		t.Fatalf("the tombstone committed 10 minutes ago is gone: %+v", leaf)
	}
	c := <-sub.C()
	if c.PruneBefore == nil || c.PruneBefore.Millis > t0-2*hour {
		t.Fatalf("clients are told to prune before %+v, which drops the kept tombstone stamped %d", c.PruneBefore, uint64(t0-2*hour))
	}
	// Once it is older than the TTL by its commit time too, it goes.
	f.wall.Add(time.Hour.Milliseconds())
	if n, err := f.s.CollectTombstones(context.Background()); err != nil || n != 1 {
		t.Fatalf("collect after the TTL: n=%d, %v", n, err)
	}
}

// A REMOVE without a record (the server stamps it; TopGun deletes
// unconditionally) is applied even when the stored record's stamp is
// further ahead of the server's clock than the drift bound lets the clock
// follow: here the wall clock stepped back two minutes across a restart.
func TestStore_serverStampedRemoveBeatsRecordAheadOfClock(t *testing.T) {
	f := newFixture(t, null.Open(), nil)
	f.apply(put("m", "k", "v", ts(t0+30_000, 5, "c1")))
	f.s.Close()
	f.wall.Store(t0 - 120_000)
	f.clock = &testClock{wall: f.wall, drift: 60_000}
	f.opts.Clock = f.clock
	f.open()
	r := f.apply(Op{Map: "m", Key: "k", Kind: OpRemove})
	if r[0].Err != nil || !r[0].Changed {
		t.Fatalf("server-stamped remove: %+v (acknowledged but not applied)", r[0])
	}
	if _, ok := f.get("m", "k"); ok {
		t.Fatal("the removed record is still visible")
	}
}

// TOPGUN_TOMBSTONE_TTL is how long deletes are kept: a restart must not
// make every later delete look committed in the future. Here the wall
// clock was a year ahead for one commit (a host that booted with a wrong
// clock before NTP set it) and the server restarted: deletes made after the
// restart are still collected once older than the TTL.
func TestStore_tombstoneGC_collectsAfterReopenOnceClockWasAhead(t *testing.T) {
	const hour = 3600_000
	const year = 365 * 24 * hour
	f := newFixture(t, null.Open(), func(o *Options) { o.TombstoneTTL = time.Hour })
	f.wall.Store(t0 + year)
	f.apply(put("m", "a", "v", ts(t0, 0, "c1")))
	f.s.Close()
	f.wall.Store(t0) // NTP set the clock right; the server restarts
	f.open()
	f.apply(Op{Map: "m", Key: "k", Kind: OpRemove, Timestamp: ts(t0, 1, "c1")})
	f.wall.Add(3 * hour)
	if n, err := f.s.CollectTombstones(context.Background()); err != nil || n != 1 {
		t.Fatalf("collected %d tombstones (%v) three TTLs after the delete, want 1", n, err)
	}
}

// The same without a restart: the wall clock was a year ahead only while
// an HTTP client asked for its SyncPoint (no commit then). Commit times
// stay there, as SyncPoint promises, but tombstone collection must not
// stop for a year because of it.
func TestStore_tombstoneGC_collectsAfterClockWasAheadAtSyncPoint(t *testing.T) {
	const hour = 3600_000
	const year = 365 * 24 * hour
	f := newFixture(t, null.Open(), func(o *Options) { o.TombstoneTTL = time.Hour })
	f.wall.Store(t0 + year)
	f.s.SyncPoint()
	f.wall.Store(t0) // NTP sets the clock right
	f.apply(Op{Map: "m", Key: "k", Kind: OpRemove, Timestamp: ts(t0, 1, "c1")})
	f.wall.Add(3 * hour)
	if n, err := f.s.CollectTombstones(context.Background()); err != nil || n != 1 {
		t.Fatalf("collected %d tombstones (%v) three TTLs after the delete, want 1", n, err)
	}
}

// Since hands out changes in pages by commit time. A store reopened after
// the wall clock was a year ahead for one commit (and set right before the
// restart) must not stamp every later commit with that one time: the
// pages could not split them, and a client paging with small limits would
// get no page at all.
func TestStore_Since_pagesCommitsAfterReopenOnceClockWasAhead(t *testing.T) {
	const year = 365 * 24 * 3600_000
	f := newFixture(t, null.Open(), nil)
	f.wall.Store(t0 + year)
	f.apply(put("other", "a", "v", ts(t0, 0, "c1")))
	f.s.Close()
	f.wall.Store(t0)
	f.open()
	since := f.s.SyncPoint()
	f.wall.Add(10)
	f.apply(put("m", "b", "v", ts(t0+10, 0, "c1")))
	f.wall.Add(10)
	f.apply(put("m", "c", "v", ts(t0+20, 0, "c1")))
	es, upTo, complete, err := f.s.Since(context.Background(), "m", since, SinceLimits{Records: 1, Bytes: 1 << 20})
	if err != nil || complete || len(es) != 1 || es[0].Key != "b" {
		t.Fatalf("first page = %d entries, complete %v, %v; want b alone", len(es), complete, err)
	}
	if got := sinceKeys(t, f, "m", upTo); len(got) != 1 || !got["c"] {
		t.Fatalf("second page = %v, want c", got)
	}
}

// A delete stamped long before the tombstone TTL (a client whose clock
// reads 1970) is kept for the TTL from its arrival, but does not stop the
// collection of every other tombstone for that long: the prune cut-off is
// lowered at most four TTLs back.
func TestStore_tombstoneGC_ancientLateDeleteDoesNotStopCollection(t *testing.T) {
	const hour = 3600_000
	f := newFixture(t, null.Open(), func(o *Options) { o.TombstoneTTL = time.Hour })
	f.wall.Store(t0 - 5*hour)
	f.apply(Op{Map: "m", Key: "old", Kind: OpRemove, Timestamp: ts(t0-5*hour, 0, "c1")})
	f.wall.Store(t0)
	if r := f.apply(Op{Map: "other", Key: "k", Kind: OpRemove, Timestamp: ts(1, 0, "c2")}); !r[0].Changed {
		t.Fatal("the ancient delete was not applied")
	}
	f.wall.Add(10 * 60_000)
	sub := f.s.Subscribe()
	defer sub.Close()
	if n, err := f.s.CollectTombstones(context.Background()); err != nil || n != 1 {
		t.Fatalf("collected %d tombstones (%v), want the old one (not the ancient delete that just arrived)", n, err)
	}
	leaf, _, _ := f.s.Leaf(context.Background(), "other", KindLWW, leafPath("k"))
	if len(leaf) != 1 {
		t.Fatalf("the ancient delete's tombstone is gone after 10 minutes: %+v", leaf)
	}
	c := <-sub.C()
	if floor := uint64(f.wall.Load() - 4*hour); c.PruneBefore == nil || c.PruneBefore.Millis < floor {
		t.Fatalf("prune cut-off %+v: lowered further back than four TTLs (%d)", c.PruneBefore, floor)
	}
}

// A resume point SyncPoint gave out before a restart must hold after it:
// an HTTP client keeps its serverSyncTimestamp across the server's
// restart. Here the point was given out while no commit was made (a
// client polling an idle map), and the server restarts with its wall
// clock behind that point (NTP stepped it back while it was down, or it
// moved to a host whose clock is behind). Before, the commits made after
// the restart were stamped between the last stored commit and the point,
// and Since(point) never returned them: the client missed them for good.
func TestStore_SyncPoint_resumeMissesNothingAfterReopenWithClockBehind(t *testing.T) {
	f := newFixture(t, null.Open(), nil)
	f.apply(put("m", "a", "v", ts(t0, 0, "c1")))
	f.wall.Add(100)
	point := f.s.SyncPoint() // handed to an HTTP client as its resume point
	f.s.Close()
	f.wall.Add(-1000) // the restarted server's clock is behind
	f.open()
	f.apply(put("m", "b", "v", ts(t0+1, 0, "c1")))
	if got := sinceKeys(t, f, "m", point); !got["b"] {
		t.Fatalf("Since(SyncPoint %d given out before the restart) = %v: the commit after the restart is missed", point, got)
	}
}
