package store

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/topgun-go/topgun/plugins/postgres"
	"github.com/topgun-go/topgun/plugins/postgres/pgtest"
	"github.com/topgun-go/topgun/server/record"
)

// sharedPair opens two stores (two processes' worth: separate backends and
// pools) on one PostgreSQL schema, sharing a wall clock.
func sharedPair(t *testing.T, mod func(*Options)) (a, b *fixture) {
	t.Helper()
	url := pgtest.FreshSchema(t)
	wall := &atomic.Int64{}
	wall.Store(t0)
	mk := func(node string) *fixture {
		be, err := postgres.Open(context.Background(), url, nil)
		if err != nil {
			t.Fatalf("postgres open: %v", err)
		}
		t.Cleanup(func() { be.Close() })
		f := &fixture{t: t, be: be, wall: wall, clock: &testClock{wall: wall, drift: 60_000}}
		f.opts = Options{
			Clock:        f.clock,
			WallClock:    func() time.Time { return time.UnixMilli(wall.Load()) },
			ReapInterval: time.Hour,
			GCInterval:   time.Hour,
			Logger:       testLogger(t),
		}
		if mod != nil {
			mod(&f.opts)
		}
		f.open()
		t.Cleanup(func() { f.s.Close() })
		return f
	}
	return mk("a"), mk("b")
}

// stored reads a key's LWW value as storage holds it, through a fresh store.
func storedLWW(t *testing.T, f *fixture, m, k string) (string, bool) {
	t.Helper()
	recs, err := f.be.Get(context.Background(), m, false, []string{k})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) == 0 {
		return "", false
	}
	rv, err := record.Decode(recs[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	return rv.LWW.Value.Text(), !rv.LWW.Value.IsNull()
}

// A write acknowledged by A, stamped newer, is overwritten by an older
// write that B merges against its own (stale) index.
func TestShared_olderWriteOnBOverwritesNewerOnA(t *testing.T) {
	a, b := sharedPair(t, nil)
	if r := a.apply(put("m", "k", "new", ts(t0+10, 0, "c1"))); !r[0].Changed {
		t.Fatal("A's put not applied")
	}
	b.apply(put("m", "k", "old", ts(t0, 0, "c2")))
	if v, _ := storedLWW(t, a, "m", "k"); v != "new" {
		t.Errorf("storage holds %q after an older write on B; A's acknowledged newer write %q is lost", v, "new")
	}
	av, _ := a.get("m", "k")
	bv, _ := b.get("m", "k")
	if av != bv {
		t.Errorf("stores diverge: A reads %q, B reads %q", av, bv)
	}
}

// An OR add acknowledged by A is dropped when B adds to the same key from
// its cached copy of the record.
func TestShared_ORAddOnALostByBsAdd(t *testing.T) {
	a, b := sharedPair(t, nil)
	orAdd := func(f *fixture, tag string) {
		if r := f.apply(Op{Map: "m", Key: "k", Kind: OpORAdd, Value: record.StringValue(tag), Timestamp: ts(t0, 0, "c"), Tag: tag}); !r[0].Changed {
			t.Fatalf("add %s not applied: %+v", tag, r[0])
		}
	}
	orAdd(b, "t1")
	orAdd(a, "t2") // acknowledged
	orAdd(b, "t3")
	recs, err := a.be.Get(context.Background(), "m", false, []string{"k"})
	if err != nil || len(recs) != 1 {
		t.Fatalf("get: %v %d", err, len(recs))
	}
	rv, _ := record.Decode(recs[0].Value)
	tags := map[string]bool{}
	for _, e := range rv.ORMap.Records {
		tags[e.Tag] = true
	}
	if !tags["t2"] {
		t.Errorf("storage holds tags %v: A's acknowledged add t2 is lost", tags)
	}
}

// B's tombstone collector deletes a live record A wrote over B's old
// tombstone.
func TestShared_GConBDeletesAsLiveWrite(t *testing.T) {
	a, b := sharedPair(t, func(o *Options) { o.TombstoneTTL = time.Hour })
	b.apply(Op{Map: "m", Key: "k", Kind: OpRemove, Timestamp: ts(t0, 0, "c2")})
	a.wall.Add(2 * time.Hour.Milliseconds())
	a.apply(put("m", "k", "alive", record.Timestamp{})) // server-stamped, acknowledged
	if _, err := b.s.CollectTombstones(context.Background()); err != nil {
		t.Fatal(err)
	}
	if v, ok := storedLWW(t, a, "m", "k"); !ok || v != "alive" {
		t.Errorf("storage holds %q (present %v): A's acknowledged write was deleted by B's tombstone GC", v, ok)
	}
}
