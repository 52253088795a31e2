package store

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/plugins/postgres"
	"github.com/topgun-go/topgun/plugins/postgres/pgtest"
	"github.com/topgun-go/topgun/server/record"
)

// sharedPair opens two stores (two processes' worth: separate backends and
// pools) on one PostgreSQL schema, sharing a wall clock.
func sharedPair(t *testing.T, mod func(*Options)) (a, b *fixture) {
	t.Helper()
	a, b, _ = sharedPairURL(t, mod)
	return a, b
}

// sharedPairURL is sharedPair, also returning the database URL.
func sharedPairURL(t *testing.T, mod func(*Options)) (a, b *fixture, url string) {
	t.Helper()
	url = pgtest.FreshSchema(t)
	wall := &atomic.Int64{}
	wall.Store(t0)
	mk := func() *fixture {
		be, err := postgres.Open(context.Background(), url, nil)
		if err != nil {
			t.Fatalf("postgres open: %v", err)
		}
		t.Cleanup(func() { be.Close() })
		return newFixtureOn(t, be, wall, mod)
	}
	return mk(), mk(), url
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

// until polls cond for up to 10 s.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 10s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// nextChange returns the next change on sub within 10 s.
func nextChange(t *testing.T, sub *Subscription) Change {
	t.Helper()
	for {
		select {
		case c, ok := <-sub.C():
			if !ok {
				t.Fatalf("feed closed: %v", sub.Err())
			}
			if len(c.Changes) > 0 {
				if len(c.Changes) != 1 {
					t.Fatalf("commit of %d changes, want 1: %+v", len(c.Changes), c.Changes)
				}
				return c.Changes[0]
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no change within 10s")
		}
	}
}

// What A commits reaches B: its index (so Merkle sync from B includes it)
// and its change feed (so B's clients get SERVER_EVENTs), for LWW writes
// and removes and for OR adds and removes.
func TestShared_BHearsAsCommits(t *testing.T) {
	a, b := sharedPair(t, nil)
	sub := b.s.Subscribe()
	defer sub.Close()

	a.apply(put("m", "k", "v", ts(t0, 0, "c1")))
	if c := nextChange(t, sub); c.Map != "m" || c.Key != "k" || c.Kind != ChangePut || c.Record.LWW.Value.Text() != "v" || c.Origin != 0 {
		t.Fatalf("B's feed: %+v", c)
	}
	until(t, "B's Merkle root matches A's", func() bool { return a.s.Root("m", KindLWW) == b.s.Root("m", KindLWW) })
	if v, ok := b.get("m", "k"); !ok || v != "v" {
		t.Fatalf("B reads %q %v", v, ok)
	}
	a.apply(Op{Map: "m", Key: "k", Kind: OpRemove, Timestamp: ts(t0+1, 0, "c1")})
	if c := nextChange(t, sub); c.Key != "k" || c.Kind != ChangeRemove {
		t.Fatalf("B's feed: %+v", c)
	}

	a.apply(Op{Map: "o", Key: "k", Kind: OpORAdd, Value: record.StringValue("x"), Timestamp: ts(t0, 0, "c"), Tag: "t1"})
	if c := nextChange(t, sub); c.Map != "o" || c.Kind != ChangeORAdd || c.Tag != "t1" || c.Entry.Value.Text() != "x" {
		t.Fatalf("B's feed: %+v", c)
	}
	until(t, "B's OR root matches A's", func() bool { return a.s.Root("o", KindOR) == b.s.Root("o", KindOR) })
	a.apply(Op{Map: "o", Key: "k", Kind: OpORRemove, Tag: "t1"})
	if c := nextChange(t, sub); c.Kind != ChangeORRemove || c.Tag != "t1" {
		t.Fatalf("B's feed: %+v", c)
	}
	until(t, "B's OR root matches A's after the remove", func() bool { return a.s.Root("o", KindOR) == b.s.Root("o", KindOR) })

	// B's own writes are not heard back as other processes' commits.
	b.apply(put("m", "mine", "v", ts(t0+2, 0, "c2")))
	if c := nextChange(t, sub); c.Key != "mine" {
		t.Fatalf("B's feed: %+v", c)
	}
	select {
	case c := <-sub.C():
		t.Fatalf("an echo of B's own commit: %+v", c.Changes)
	case <-time.After(300 * time.Millisecond):
	}
}

// After the listener reconnects, everything is re-read: a commit B could
// not hear (made without a notification) is found, and a record deleted
// meanwhile leaves B's index.
func TestShared_reReadAfterMissedCommits(t *testing.T) {
	a, b, url := sharedPairURL(t, nil)
	a.apply(put("m", "gone", "v", ts(t0, 0, "c1")))
	until(t, "B indexed A's first write", func() bool { return a.s.Root("m", KindLWW) == b.s.Root("m", KindLWW) })
	rv := record.NewLWW(record.StringValue("quiet"), ts(t0+5, 0, "c9"))
	enc, err := record.Encode(nil, &rv)
	if err != nil {
		t.Fatal(err)
	}
	// Written and deleted behind the backends' backs: no notification.
	pgtest.Exec(t, url, `INSERT INTO topgun_maps (map_name, key, value, expiration_time, is_backup, created_at, updated_at) VALUES ('m', 'quiet', $1, 0, false, 1, 1)`, enc)
	pgtest.Exec(t, url, `DELETE FROM topgun_maps WHERE key = 'gone'`)
	sub := b.s.Subscribe()
	defer sub.Close()
	b.s.watchq.add(abi.Changed{All: true}) // what the listener reports after reconnecting
	if c := nextChange(t, sub); c.Key != "quiet" || c.Record.LWW.Value.Text() != "quiet" {
		t.Fatalf("B's feed: %+v", c)
	}
	until(t, "B's index holds what storage holds", func() bool {
		b.s.mu.RLock()
		defer b.s.mu.RUnlock()
		_, hasGone := b.s.maps["m"].lww.get("gone")
		_, hasQuiet := b.s.maps["m"].lww.get("quiet")
		return !hasGone && hasQuiet
	})
}

// Concurrent OR adds to one key through A and B: every acknowledged add is
// stored (checked commits merge again after a conflict), and both stores'
// indexes end up matching storage.
func TestShared_concurrentORAddsAllKept(t *testing.T) {
	a, b := sharedPair(t, nil)
	var wg sync.WaitGroup
	acked := make(chan string, 400)
	for _, f := range []*fixture{a, b} {
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func(f *fixture, w int) {
				defer wg.Done()
				for i := 0; i < 25; i++ {
					tag := fmt.Sprintf("%p-%d-%d", f, w, i)
					res, err := f.s.Apply(context.Background(), []Op{{Map: "m", Key: "k", Kind: OpORAdd, Value: record.StringValue(tag), Timestamp: ts(t0, 0, "c"), Tag: tag}}, 1)
					if err == nil && res[0].Err == nil {
						acked <- tag
					}
				}
			}(f, w)
		}
	}
	wg.Wait()
	close(acked)
	recs, err := a.be.Get(context.Background(), "m", false, []string{"k"})
	if err != nil || len(recs) != 1 {
		t.Fatalf("get: %v %d", err, len(recs))
	}
	rv, _ := record.Decode(recs[0].Value)
	have := map[string]bool{}
	for _, e := range rv.ORMap.Records {
		have[e.Tag] = true
	}
	lost, n := 0, 0
	for tag := range acked {
		n++
		if !have[tag] {
			lost++
		}
	}
	if lost > 0 || n < 100 {
		t.Errorf("%d of %d acknowledged OR adds lost (of 200 sent)", lost, n)
	}
	until(t, "both OR roots match", func() bool { return a.s.Root("m", KindOR) == b.s.Root("m", KindOR) })
}

// Concurrent LWW writes to one key through A and B: storage ends with the
// newest acknowledged write, and both stores agree with it.
func TestShared_concurrentLWWNewestWins(t *testing.T) {
	a, b := sharedPair(t, nil)
	var wg sync.WaitGroup
	var newest atomic.Uint64
	for fi, f := range []*fixture{a, b} {
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func(f *fixture, w int) {
				defer wg.Done()
				for i := 0; i < 25; i++ {
					ms := t0 + uint64(1+(i*8+w*2+fi)*3)
					res, err := f.s.Apply(context.Background(), []Op{put("m", "k", fmt.Sprint(ms), ts(ms, 0, "c"))}, 1)
					if err == nil && res[0].Err == nil && res[0].Changed {
						for {
							cur := newest.Load()
							if ms <= cur || newest.CompareAndSwap(cur, ms) {
								break
							}
						}
					}
				}
			}(f, w)
		}
	}
	wg.Wait()
	want := fmt.Sprint(newest.Load())
	if v, _ := storedLWW(t, a, "m", "k"); v != want {
		t.Fatalf("storage holds %q, the newest acknowledged write is %q", v, want)
	}
	until(t, "both stores read the newest write", func() bool {
		av, _ := a.get("m", "k")
		bv, _ := b.get("m", "k")
		return av == want && bv == want && a.s.Root("m", KindLWW) == b.s.Root("m", KindLWW)
	})
}

// A commit of another server heard while this store's own commit of the
// same key is in flight: the refresh skips the key ("their checked commit
// settles them"), but the checked commit says nothing of writes made after
// it, so the index keeps this store's value while storage holds the
// other's, and nothing ever re-reads it.
func TestShared_heardDuringOwnCommitLeavesIndexStale(t *testing.T) {
	var hook atomic.Pointer[func()]
	n := 0
	a, b := sharedPair(t, func(o *Options) {
		n++
		if n == 2 {
			o.OnCommit = func(int, time.Duration, error) {
				if h := hook.Load(); h != nil {
					(*h)()
				}
			}
		}
	})
	var once sync.Once
	h := func() {
		once.Do(func() {
			// B's commit is durable; before B indexes it, A writes over it.
			if r := a.apply(put("m", "k", "fromA", ts(t0+10, 0, "c1"))); !r[0].Changed {
				t.Error("A's put not applied")
			}
			time.Sleep(500 * time.Millisecond) // B hears it meanwhile
		})
	}
	hook.Store(&h)
	if r := b.apply(put("m", "k", "fromB", ts(t0, 0, "c2"))); !r[0].Changed {
		t.Fatal("B's put not applied")
	}
	if v, _ := storedLWW(t, a, "m", "k"); v != "fromA" {
		t.Fatalf("storage holds %q", v)
	}
	until(t, "B's Merkle root matches A's (storage)", func() bool { return a.s.Root("m", KindLWW) == b.s.Root("m", KindLWW) })
}

// A commit of another server that makes this store's commit conflict is
// never published on this store's feed: the failed commit's keys are
// re-read into the index without announcing what changed, and the refresh
// (skipped while the key was in flight, or later finding the index equal)
// announces nothing either.
func TestShared_conflictingCommitNeverOnFeed(t *testing.T) {
	a, b := sharedPair(t, nil)
	sub := b.s.Subscribe()
	defer sub.Close()
	orAdd := func(tag string) Op {
		return Op{Map: "o", Key: "k", Kind: OpORAdd, Value: record.StringValue(tag), Timestamp: ts(t0, 0, "c"), Tag: tag}
	}
	var once sync.Once
	b.s.mergedHook = func() {
		once.Do(func() { a.apply(orAdd("a")) }) // between B's read and B's commit
	}
	if r := b.apply(orAdd("b")); !r[0].Changed {
		t.Fatal("B's add not applied")
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case c := <-sub.C():
			for _, ch := range c.Changes {
				if ch.Kind == ChangeORAdd && ch.Tag == "a" {
					return
				}
			}
		case <-deadline:
			t.Fatal("A's OR add (tag a) never reached B's change feed")
		}
	}
}

// A write merged on top of an in-flight expiry reads the expiry's state
// before the applier encodes it: its checked commit expects a nil value
// and fails with a conflict no other process caused (and the committer's
// read of st.enc races with the applier's write of it).
func TestShared_writeOverInFlightExpiryConflicts(t *testing.T) {
	var conflicts atomic.Int64
	n := 0
	_, b := sharedPair(t, func(o *Options) {
		n++
		if n == 2 {
			o.OnCommit = func(_ int, _ time.Duration, err error) {
				if abi.CodeOf(err) == abi.CodeConflict {
					conflicts.Add(1)
				}
			}
		}
	})
	b.apply(Op{Map: "m", Key: "k", Kind: OpPut, Value: record.StringValue("v"), Timestamp: ts(t0, 0, "c"), TTLMs: 1000})
	b.wall.Add(5000)
	b.s.stampMu.Lock() // the applier stops before encoding the expiry
	reaped := make(chan error, 1)
	go func() { _, err := b.s.ReapExpired(context.Background()); reaped <- err }()
	time.Sleep(300 * time.Millisecond) // the expiry is in flight
	merged := make(chan struct{})
	var once sync.Once
	b.s.mergedHook = func() { once.Do(func() { close(merged) }) }
	done := make(chan error, 1)
	go func() {
		_, err := b.s.Apply(context.Background(), []Op{put("m", "k", "new", ts(t0+6000, 0, "c"))}, 1)
		done <- err
	}()
	<-merged
	b.s.stampMu.Unlock()
	if err := <-reaped; err != nil {
		t.Fatalf("reap: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("apply: %v", err)
	}
	if v, _ := storedLWW(t, b, "m", "k"); v != "new" {
		t.Fatalf("storage holds %q", v)
	}
	if c := conflicts.Load(); c != 0 {
		t.Errorf("%d conflicts on one server with no other writer", c)
	}
}

// The listener's connection is killed: it connects again and B re-reads
// everything, finding a commit it could not hear.
func TestShared_listenerReconnects(t *testing.T) {
	a, b, url := sharedPairURL(t, nil)
	a.apply(put("m", "k", "v1", ts(t0, 0, "c1")))
	until(t, "B indexed A's write", func() bool { return a.s.Root("m", KindLWW) == b.s.Root("m", KindLWW) })
	// Only this schema's listeners: other tests share the database.
	pgtest.Exec(t, url, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = $1`,
		"LISTEN "+pgx.Identifier{b.be.(*postgres.Backend).Channel()}.Sanitize())
	rv := record.NewLWW(record.StringValue("quiet"), ts(t0+5, 0, "c9"))
	enc, _ := record.Encode(nil, &rv)
	pgtest.Exec(t, url, `UPDATE topgun_maps SET value = $1 WHERE key = 'k'`, enc)
	until(t, "B re-read after reconnecting", func() bool {
		b.s.mu.RLock()
		defer b.s.mu.RUnlock()
		m, ok := b.s.maps["m"].lww.get("k")
		return ok && m.millis == t0+5
	})
}

// The watch queue holds at most maxQueuedKeys keys: past that, it asks
// for everything to be re-read instead of growing.
func TestWatchQueue_bounded(t *testing.T) {
	q := newWatchQueue()
	keys := make([]string, 1000)
	for i := 0; i*len(keys) < maxQueuedKeys; i++ {
		for j := range keys {
			keys[j] = fmt.Sprintf("k%d-%d", i, j)
		}
		q.add(abi.Changed{Map: "m", Keys: keys})
		if i == 0 {
			q.add(abi.Changed{Map: "m", Keys: keys}) // duplicates count once
		}
	}
	if all, maps := q.take(); all || len(maps["m"]) != maxQueuedKeys {
		t.Fatalf("all %v, %d keys queued, want %d", all, len(maps["m"]), maxQueuedKeys)
	}
	for i := 0; i*len(keys) <= maxQueuedKeys; i++ {
		for j := range keys {
			keys[j] = fmt.Sprintf("k%d-%d", i, j)
		}
		q.add(abi.Changed{Map: fmt.Sprint("m", i%3), Keys: keys})
	}
	if all, maps := q.take(); !all || len(maps) != 0 {
		t.Fatalf("past the bound: all %v, %d maps queued", all, len(maps))
	}
	if all, maps := q.take(); all || len(maps) != 0 {
		t.Fatalf("after take: all %v, %d maps", all, len(maps))
	}
}

// Close returns while the refresher is re-reading: its requests end with
// the store instead of waiting for a committer that stopped.
func TestShared_closeDuringRefresh(t *testing.T) {
	for i := 0; i < 10; i++ {
		x, y := sharedPair(t, nil)
		ops := make([]Op, 200)
		for j := range ops {
			ops[j] = put(fmt.Sprint("m", j%5), fmt.Sprint("k", j), "v", ts(t0+uint64(j), 0, "c"))
		}
		x.apply(ops...)
		y.s.watchq.add(abi.Changed{All: true})
		time.Sleep(time.Duration(i) * time.Millisecond)
		closed := make(chan struct{})
		go func() { y.s.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(30 * time.Second):
			t.Fatal("Close hung while the refresher was re-reading")
		}
	}
}

// checkedHook runs before, once, the first checked commit of its store.
type checkedHook struct {
	*postgres.Backend
	once   sync.Once
	before func()
}

func (b *checkedHook) ApplyChecked(ctx context.Context, batch *abi.Batch, expect []abi.Expect) error {
	b.once.Do(b.before)
	return b.Backend.ApplyChecked(ctx, batch, expect)
}

// Two servers reap the same expired record at once: the one whose commit
// comes second conflicts. Its pass failed (a warning, and the rest of its
// pass waited a ReapInterval), as did every pass that shared a group
// commit with a client write another server's conflicted with; it merges
// again instead, as a write does, and finds the record reaped.
func TestShared_bothServersReapOneRecord(t *testing.T) {
	url := pgtest.FreshSchema(t)
	wall := &atomic.Int64{}
	wall.Store(t0)
	open := func() *postgres.Backend {
		be, err := postgres.Open(context.Background(), url, nil)
		if err != nil {
			t.Fatalf("postgres open: %v", err)
		}
		t.Cleanup(func() { be.Close() })
		return be
	}
	a := newFixtureOn(t, open(), wall, nil)
	hb := &checkedHook{Backend: open()}
	b := newFixtureOn(t, hb, wall, nil)
	a.apply(Op{Map: "m", Key: "k", Kind: OpPut, Value: record.StringValue("v"), Timestamp: ts(t0, 0, "c"), TTLMs: 1000})
	until(t, "B indexed A's write", func() bool { return a.s.Root("m", KindLWW) == b.s.Root("m", KindLWW) })
	wall.Add(5000)
	hb.before = func() { // B has merged its expiry of k: A reaps k first
		if n, err := a.s.ReapExpired(context.Background()); n != 1 || err != nil {
			t.Errorf("A reaped %d, %v", n, err)
		}
	}
	if _, err := b.s.ReapExpired(context.Background()); err != nil {
		t.Errorf("B's expiry pass failed: %v", err)
	}
	if v, ok := storedLWW(t, a, "m", "k"); ok {
		t.Errorf("storage holds %q after both passes", v)
	}
}
