package store

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"weak"

	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/plugins/null"
	"github.com/topgun-go/topgun/server/record"
)

// A commit reported failed that storage did apply, while storage could not
// be read to tell, reaches the change feed once storage can be read again,
// even when no other write arrives. Before, failed commits of unknown
// outcome were settled only at the start of the next commit, so on an
// idle store the applied write was never published.
func TestStore_unknownOutcomeSettledWhenIdle(t *testing.T) {
	be := &lyingBackend{Backend: null.Open()}
	f := newFixture(t, be, nil)
	f.apply(put("m", "k", "one", ts(t0, 0, "c1")))
	sub := f.s.Subscribe()
	defer sub.Close()
	be.lie.Store(true)
	be.down.Store(true)
	if _, err := f.s.Apply(context.Background(), []Op{put("m", "k", "two", ts(t0+1, 0, "c1"))}, 1); err == nil {
		t.Fatal("expected the reported failure")
	}
	be.lie.Store(false)
	be.down.Store(false)
	awaitFeedPut(t, sub, "k", "two", "the applied write of k never reached the change feed while the store was idle")
}

// awaitFeedPut reads the feed until it reports key, which must be a put of
// value; it fails with timedOut if that takes 30 s.
func awaitFeedPut(t *testing.T, sub *Subscription, key, value, timedOut string) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case c, ok := <-sub.C():
			if !ok {
				t.Fatalf("feed closed: %v", sub.Err())
			}
			for _, ch := range c.Changes {
				if ch.Key == key {
					if ch.Kind != ChangePut || ch.Record.LWW.Value.Text() != value {
						t.Fatalf("feed reported %+v for %s", ch, key)
					}
					return
				}
			}
		case <-timeout:
			t.Fatal(timedOut)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for a logger writing from the store's
// goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Close says so when it drops failed commits whose outcome is still
// unknown (storage still cannot be read): if storage applied them, their
// changes are never published, and an operator must be able to tell.
func TestStore_closeWarnsOfDroppedUnsureCommits(t *testing.T) {
	be := &lyingBackend{Backend: null.Open()}
	var logs syncBuffer
	f := newFixture(t, be, func(o *Options) {
		o.Logger = hclog.New(&hclog.LoggerOptions{Output: &logs, JSONFormat: true, Level: hclog.Debug})
	})
	be.lie.Store(true)
	be.down.Store(true)
	if _, err := f.s.Apply(context.Background(), []Op{put("m", "k", "two", ts(t0+1, 0, "c1"))}, 1); err == nil {
		t.Fatal("expected the reported failure")
	}
	f.s.Close()
	t.Log(logs.String())
	sc := bufio.NewScanner(bytes.NewReader([]byte(logs.String())))
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			continue
		}
		if line["@level"] == "warn" && line["commits"] == float64(1) {
			return
		}
	}
	t.Fatal("Close dropped a failed commit of unknown outcome without a warning naming the commits dropped")
}

// Whether a tombstone was committed within the TTL is judged against now
// minus the TTL, not against the prune cut-off as lowered by the recent
// tombstones checked before it. Before, a late delete committed ten days
// ago (TTL seven) counted as recent once a recent tombstone stamped before
// its commit had been checked, so it was kept (and lowered the cut-off)
// or collected depending on the order the index was walked in.
func TestStore_tombstoneGC_recentByCommitTimeNotByLoweredCutoff(t *testing.T) {
	const day = 24 * 3600_000
	f := newFixture(t, null.Open(), nil) // TombstoneTTL: 7 days
	now := int64(t0 + 60*day)
	// A hundred late deletes stamped 25 days back reach the server 10
	// days ago. (Many, as the index is walked in random order.)
	f.wall.Store(now - 10*day)
	var ops []Op
	for i := range 100 {
		ops = append(ops, Op{Map: "m", Key: "b" + strconv.Itoa(i), Kind: OpRemove, Timestamp: ts(uint64(now-25*day), 0, "c1")})
	}
	f.apply(ops...)
	// Late deletes stamped 20 days back reach it a day ago.
	f.wall.Store(now - day)
	ops = ops[:0]
	for i := range 5 {
		ops = append(ops, Op{Map: "m", Key: "a" + strconv.Itoa(i), Kind: OpRemove, Timestamp: ts(uint64(now-20*day), 0, "c2")})
	}
	f.apply(ops...)
	f.wall.Store(now)
	sub := f.s.Subscribe()
	defer sub.Close()
	// The a tombstones are kept (committed a day ago), which holds the
	// cut-off at their stamp; the b tombstones are older than that and
	// were committed more than the TTL ago: all go.
	if n, err := f.s.CollectTombstones(context.Background()); err != nil || n != 100 {
		t.Fatalf("collected %d tombstones (%v), want the 100 committed 10 days ago", n, err)
	}
	c := <-sub.C()
	if c.PruneBefore == nil || c.PruneBefore.Millis != uint64(now-20*day) {
		t.Fatalf("prune cut-off %+v, want the stamp of the kept tombstone (%d)", c.PruneBefore, now-20*day)
	}
	kept := map[string]record.Timestamp{}
	for i := range 5 {
		kept["a"+strconv.Itoa(i)] = ts(uint64(now-20*day), 0, "c2")
	}
	if got, want := f.s.Root("m", KindLWW), lwwRootOf(kept); got != want {
		t.Fatalf("root %d, want %d: the index is not the 5 tombstones committed a day ago", got, want)
	}
}

// heapHeld returns the heap bytes that the value built by f keeps alive.
func heapHeld(f func() *record.RecordValue) (int, *record.RecordValue) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	rv := f()
	runtime.GC()
	runtime.ReadMemStats(&after)
	return int(after.HeapAlloc) - int(before.HeapAlloc), rv
}

// The value cache counts a record as at least the memory it holds once
// decoded, so TOPGUN_CACHE_MB bounds the cache's memory. Before, a value
// was counted 32 bytes per element where a decoded element takes 80, and
// a cache of arrays or maps of small values grew to about twice and a half
// its bound.
func TestCache_sizeCoversDecodedMemory(t *testing.T) {
	ints := make([]record.Value, 100_000)
	for i := range ints {
		ints[i] = record.IntValue(int64(i % 100))
	}
	fields := make([]record.Field, 100_000)
	for i := range fields {
		fields[i] = record.Field{Key: strconv.Itoa(i), Value: record.BoolValue(true)}
	}
	entries := make([]record.ORMapEntry, 20_000)
	for i := range entries {
		entries[i] = record.ORMapEntry{Value: record.ArrayValue(record.IntValue(1), record.IntValue(2)), Tag: strconv.Itoa(i), Timestamp: ts(t0, uint32(i), "c")}
	}
	for _, tc := range []struct {
		name string
		rv   record.RecordValue
	}{
		{"array of small ints", record.NewLWW(record.ArrayValue(ints...), ts(t0, 0, "c"))},
		{"map of bools", record.NewLWW(record.MapValue(fields...), ts(t0, 0, "c"))},
		{"OR entries of arrays", record.NewORMap(entries, nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enc, err := record.Encode(nil, &tc.rv)
			if err != nil {
				t.Fatal(err)
			}
			held, rv := heapHeld(func() *record.RecordValue {
				rv, err := record.Decode(enc)
				if err != nil {
					t.Fatal(err)
				}
				return &rv
			})
			counted := (&entryValue{rv: *rv, present: true}).size()
			runtime.KeepAlive(rv)
			// A little slack for what the runtime allocates meanwhile.
			if counted < held*9/10 {
				t.Fatalf("a cached record holding %d heap bytes counts as %d", held, counted)
			}
		})
	}
}

// The housekeeping passes, like every operation, fail with ErrClosed after
// Close, without touching the backend (which the caller closes next).
// Before, a pass that found nothing to do reported success, and read the
// backend to find it out.
func TestStore_housekeepingAfterClose(t *testing.T) {
	t.Parallel()
	f := newFixture(t, null.Open(), nil)
	f.apply(put("m", "k", "v", ts(t0, 0, "c")))
	f.s.Close()
	if _, err := f.s.ReapExpired(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("ReapExpired after Close: %v, want ErrClosed", err)
	}
	if _, err := f.s.CollectTombstones(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("CollectTombstones after Close: %v, want ErrClosed", err)
	}
}

// A server restarted more often than GCInterval still collects tombstones:
// the first collection runs GCStartDelay (jittered) after Open. Before,
// the first one came a whole GCInterval (1h) after Open, so a server
// redeployed hourly never collected and its tombstones grew for good.
func TestStore_housekeeping_firstCollectionSoonAfterOpen(t *testing.T) {
	const day = 24 * 3600_000
	be := null.Open()
	f := newFixture(t, be, nil)
	f.apply(Op{Map: "m", Key: "gone", Kind: OpRemove, Timestamp: ts(t0, 0, "c1")})
	f.s.Close()
	f.wall.Store(t0 + 8*day) // past the 7-day TTL
	newFixtureOn(t, be, f.wall, func(o *Options) {
		o.GCInterval = time.Hour
		o.GCStartDelay = time.Millisecond
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		recs, err := be.Get(context.Background(), "m", false, []string{"gone"})
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no tombstone collection ran soon after Open (GCInterval is an hour)")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestGCStartDelay(t *testing.T) {
	t.Parallel()
	d := DefaultOptions()
	if d.GCStartDelay <= 0 || d.GCStartDelay > d.GCInterval/10 {
		t.Fatalf("default GCStartDelay %v: the first collection must come well before GCInterval %v", d.GCStartDelay, d.GCInterval)
	}
	seen := map[time.Duration]bool{}
	for range 200 {
		got := gcStartDelay(time.Minute, time.Hour)
		if got < time.Minute || got >= 2*time.Minute {
			t.Fatalf("gcStartDelay(1m, 1h) = %v, want in [1m, 2m)", got)
		}
		seen[got] = true
		if got := gcStartDelay(time.Hour, time.Minute); got != time.Minute {
			t.Fatalf("gcStartDelay(1h, 1m) = %v, want the interval", got)
		}
	}
	if len(seen) < 100 {
		t.Fatalf("gcStartDelay is not jittered: %d distinct delays in 200", len(seen))
	}
}

// Expired primary records sorted behind a full listing of expired backup
// rows (which a topgun_maps table TopGun's server wrote may hold, and
// which this server never changes) are still reaped. Before, every pass
// saw a listing of backup rows only and stopped: those records were never
// replaced by tombstones.
func TestStore_ReapExpired_pastExpiredBackupRows(t *testing.T) {
	be := null.Open()
	f := newFixture(t, be, nil)
	lww := put("m", "k", "v", ts(t0, 0, "c1"))
	lww.TTLMs = 1000
	or := Op{Map: "o", Key: "k", Kind: OpORAdd, Value: record.IntValue(1), Tag: "t1", Timestamp: ts(t0, 0, "c1"), TTLMs: 1000}
	f.apply(lww, or)
	// Backup rows that expired before them, enough to fill two listings.
	bv := record.NewLWW(record.StringValue("b"), ts(t0, 0, "c1"))
	val, err := record.Encode(nil, &bv)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2*reapBatch; i += 500 {
		b := &abi.Batch{Now: t0}
		for j := i; j < i+500; j++ {
			b.Put("a", strconv.Itoa(j), true, val, t0-1)
		}
		if err := be.Apply(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	f.wall.Store(t0 + 5000)
	if n, err := f.s.ReapExpired(context.Background()); err != nil || n != 2 {
		t.Fatalf("reaped %d records (%v), want the 2 expired primary records", n, err)
	}
	recs, err := be.Get(context.Background(), "m", false, []string{"k"})
	if err != nil || len(recs) != 1 || recs[0].ExpirationTime != 0 {
		t.Fatalf("stored LWW record %+v (%v), want a tombstone without expiry", recs, err)
	}
	if rv, err := record.Decode(recs[0].Value); err != nil || !rv.LWW.Value.IsNull() {
		t.Fatalf("stored LWW record %+v (%v), want a tombstone", rv, err)
	}
	recs, err = be.Get(context.Background(), "o", false, []string{"k"})
	if err != nil || len(recs) != 1 || recs[0].ExpirationTime != 0 {
		t.Fatalf("stored OR record %+v (%v), want one without expiry", recs, err)
	}
	if rv, err := record.Decode(recs[0].Value); err != nil || len(rv.ORMap.Records) != 0 || len(rv.ORMap.Tombstones) != 1 {
		t.Fatalf("stored OR record %+v (%v), want the expired entry's tag as a tombstone", rv, err)
	}
	f.s.mu.RLock()
	for name, ms := range f.s.maps {
		if len(ms.exp) != 0 {
			t.Errorf("map %s: the index still holds expiries %v", name, ms.exp)
		}
	}
	f.s.mu.RUnlock()
	// The backup rows are left alone.
	if left, err := be.ListExpired(context.Background(), t0+5000, 3*reapBatch); err != nil || len(left) != 2*reapBatch {
		t.Fatalf("%d expired rows left (%v), want the %d backup rows", len(left), err, 2*reapBatch)
	}
}

// weakGetBackend tracks, through weak pointers, the values of the records
// its Get returned, so a test can tell how many of them the caller still
// holds at its next read.
type weakGetBackend struct {
	abi.Backend
	mu      sync.Mutex
	values  []weak.Pointer[byte]
	maxLive int // the most earlier values alive at one Get
}

func (b *weakGetBackend) Get(ctx context.Context, m string, backup bool, keys []string) ([]abi.Record, error) {
	runtime.GC()
	b.mu.Lock()
	live := 0
	for _, w := range b.values {
		if w.Value() != nil {
			live++
		}
	}
	b.maxLive = max(b.maxLive, live)
	b.mu.Unlock()
	recs, err := b.Backend.Get(ctx, m, backup, keys)
	b.mu.Lock()
	for i := range recs {
		if len(recs[i].Value) > 0 {
			b.values = append(b.values, weak.Make(&recs[i].Value[0]))
		}
	}
	b.mu.Unlock()
	return recs, err
}

// A collection over many tombstones reads their commit times in bounded
// chunks, with the same result: a tombstone committed within the TTL holds
// the cut-off at its stamp, across chunks. Before, every victim's stored
// record of a map was held at once.
func TestStore_CollectTombstones_boundedReads(t *testing.T) {
	const day = 24 * 3600_000
	be := &weakGetBackend{Backend: null.Open()}
	f := newFixture(t, be, nil) // TombstoneTTL: 7 days
	now := int64(t0 + 60*day)
	removes := func(prefix string, n int, stamp int64, node string) {
		for i := 0; i < n; i += 1000 {
			var ops []Op
			for j := i; j < min(n, i+1000); j++ {
				ops = append(ops, Op{Map: "m", Key: prefix + strconv.Itoa(j), Kind: OpRemove, Timestamp: ts(uint64(stamp), 0, node)})
			}
			f.apply(ops...)
		}
	}
	// Old deletes committed 10 days ago: c stamped 25 days back (collected),
	// b stamped 15 days back (kept: after the cut-off the a deletes hold).
	f.wall.Store(now - 10*day)
	removes("c", 4000, now-25*day, "c1")
	removes("b", 3000, now-15*day, "c1")
	// Late deletes stamped 20 days back, committed a day ago.
	f.wall.Store(now - day)
	removes("a", 5, now-20*day, "c2")
	f.wall.Store(now)
	sub := f.s.Subscribe()
	defer sub.Close()
	be.mu.Lock()
	be.values, be.maxLive = nil, 0
	be.mu.Unlock()
	if n, err := f.s.CollectTombstones(context.Background()); err != nil || n != 4000 {
		t.Fatalf("collected %d tombstones (%v), want the 4000 stamped before the kept ones", n, err)
	}
	var prune *record.Timestamp
	for prune == nil {
		c := <-sub.C()
		prune = c.PruneBefore
	}
	if prune.Millis != uint64(now-20*day) {
		t.Fatalf("prune cut-off %+v, want the stamp of the late deletes (%d)", prune, now-20*day)
	}
	be.mu.Lock()
	maxLive := be.maxLive
	be.mu.Unlock()
	// The last chunk's records may still be held while the next is read.
	if maxLive > 2*gcReadChunk {
		t.Fatalf("%d stored records read earlier were held at one read, want at most two chunks (%d each)", maxLive, gcReadChunk)
	}
}

// ListExpired fails while down, and counts its calls.
type downListBackend struct {
	abi.Backend
	down  atomic.Bool
	calls atomic.Int64
}

func (b *downListBackend) ListExpired(ctx context.Context, now int64, limit int) ([]abi.Record, error) {
	b.calls.Add(1)
	if b.down.Load() {
		return nil, abi.Errorf(abi.CodeUnavailable, "test: connection down")
	}
	return b.Backend.ListExpired(ctx, now, limit)
}

// While storage is down, the expiry pass (every ReapInterval, 1 s by
// default) warns at its first failure and then at most once a minute, with
// the count, and says when it recovers. Before, it warned at every pass.
func TestStore_housekeeping_reapFailuresWarnedRarely(t *testing.T) {
	be := &downListBackend{Backend: null.Open()}
	var logs syncBuffer
	f := newFixture(t, be, func(o *Options) {
		o.ReapInterval = time.Millisecond
		o.Logger = hclog.New(&hclog.LoggerOptions{Output: &logs, JSONFormat: true, Level: hclog.Debug})
	})
	waitCalls := func(n int64) {
		t.Helper()
		target := be.calls.Load() + n
		deadline := time.Now().Add(30 * time.Second)
		for be.calls.Load() < target {
			if time.Now().After(deadline) {
				t.Fatalf("the expiry pass did not run %d more times", n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	lines := func(level, msg string) []map[string]any {
		var out []map[string]any
		sc := bufio.NewScanner(bytes.NewReader([]byte(logs.String())))
		for sc.Scan() {
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) == nil && line["@level"] == level && line["@message"] == msg {
				out = append(out, line)
			}
		}
		return out
	}
	be.down.Store(true)
	waitCalls(30)
	if w := lines("warn", "expiry pass failed"); len(w) != 1 {
		t.Fatalf("%d warnings for 30 failed passes within a minute, want 1:\n%s", len(w), logs.String())
	}
	f.wall.Add(61_000)
	waitCalls(3)
	w := lines("warn", "expiry pass failed")
	if len(w) != 2 || w[1]["failures"].(float64) < 30 {
		t.Fatalf("after a minute: warnings %v, want a second one counting the failures", w)
	}
	be.down.Store(false)
	deadline := time.Now().Add(30 * time.Second)
	for len(lines("info", "expiry pass recovered")) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("no info when the expiry pass recovered:\n%s", logs.String())
		}
		time.Sleep(time.Millisecond)
	}
}

// The store remembers the greatest cut-off it has published, for the
// protocol to tell clients that were offline when it was published; the
// first pass after a restart publishes one even when it collects nothing
// (everything old went before the restart), so that it is known again.
func TestStore_PruneBefore(t *testing.T) {
	const day = 24 * 3600_000
	f := newFixture(t, null.Open(), nil) // TombstoneTTL: 7 days
	ctx := context.Background()
	if _, ok := f.s.PruneBefore(); ok {
		t.Fatal("PruneBefore known before any collection")
	}
	now := int64(t0 + 60*day)
	f.wall.Store(now - 30*day)
	f.apply(Op{Map: "m", Key: "old", Kind: OpRemove, Timestamp: ts(uint64(now-30*day), 0, "c1")})
	f.wall.Store(now)
	if n, err := f.s.CollectTombstones(ctx); err != nil || n != 1 {
		t.Fatalf("collected %d (%v), want 1", n, err)
	}
	first, ok := f.s.PruneBefore()
	if want := uint64(now - 7*day); !ok || first.Millis != want {
		t.Fatalf("PruneBefore = %v, %v; want %d", first, ok, want)
	}

	// Deletes stamped long ago arrive after that pass: one stamped 21
	// days back now, one stamped 20 days back 5 days later. The next pass
	// collects the first and keeps the second (committed within the TTL),
	// which lowers its cut-off, but not what PruneBefore reports: a
	// client connected throughout pruned by the greater one.
	f.apply(Op{Map: "m", Key: "late1", Kind: OpRemove, Timestamp: ts(uint64(now-21*day), 0, "c2")})
	f.wall.Store(now + 5*day)
	f.apply(Op{Map: "m", Key: "late2", Kind: OpRemove, Timestamp: ts(uint64(now-20*day), 0, "c2")})
	f.wall.Store(now + 8*day)
	sub := f.s.Subscribe()
	if n, err := f.s.CollectTombstones(ctx); err != nil || n != 1 {
		t.Fatalf("collected %d (%v), want 1", n, err)
	}
	if c := <-sub.C(); c.PruneBefore == nil || c.PruneBefore.Millis != uint64(now-20*day) {
		t.Fatalf("published cut-off %+v, want %d (the stamp of the kept delete)", c.PruneBefore, now-20*day)
	}
	sub.Close()
	if got, _ := f.s.PruneBefore(); got != first {
		t.Fatalf("PruneBefore = %v after a lower cut-off, want %v", got, first)
	}

	// After a restart nothing is known until the first pass, which
	// publishes its cut-off although it collects nothing.
	f.s.Close()
	f.open()
	if _, ok := f.s.PruneBefore(); ok {
		t.Fatal("PruneBefore known after a restart before any collection")
	}
	f.wall.Store(now + 30*day) // late2 was committed 25 days ago: collected
	if n, err := f.s.CollectTombstones(ctx); err != nil || n != 1 {
		t.Fatalf("collected %d (%v), want late2", n, err)
	}
	f.wall.Store(now + 31*day)
	f.s.Close()
	f.open()
	sub = f.s.Subscribe()
	defer sub.Close()
	if n, err := f.s.CollectTombstones(ctx); err != nil || n != 0 {
		t.Fatalf("collected %d (%v), want nothing", n, err)
	}
	want := uint64(now + 24*day)
	if c := <-sub.C(); c.PruneBefore == nil || c.PruneBefore.Millis != want {
		t.Fatalf("first pass after a restart published %+v, want a cut-off of %d", c.PruneBefore, want)
	}
	if got, ok := f.s.PruneBefore(); !ok || got.Millis != want {
		t.Fatalf("PruneBefore = %v, %v; want %d", got, ok, want)
	}
	// Later passes that collect nothing publish nothing.
	f.wall.Store(now + 32*day)
	if _, err := f.s.CollectTombstones(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-sub.C():
		t.Fatalf("a pass that collected nothing published %+v", c)
	case <-time.After(50 * time.Millisecond):
	}
}

// The collection's walk of the index lets go of the read lock every
// gcWalkChunk keys or so. Before, it held it across every key of every
// map: a commit (installed under the write lock) and, behind it, every
// read of the index (sync, writes' merges) waited for the whole walk,
// hourly, for as long as walking millions of keys takes.
func TestStore_CollectTombstones_walkLetsCommitsIn(t *testing.T) {
	f := newFixture(t, null.Open(), func(o *Options) { o.TombstoneTTL = time.Hour })
	const n = 3 * gcWalkChunk
	for i := 0; i < n; i += 1000 {
		var ops []Op
		for j := i; j < min(n, i+1000); j++ {
			ops = append(ops, Op{Map: "m", Key: "k" + strconv.Itoa(j), Kind: OpRemove, Timestamp: ts(t0, 0, "c1")})
		}
		f.apply(ops...)
	}
	f.wall.Add(2 * time.Hour.Milliseconds())
	var found, foundWhenLocked atomic.Int64
	locked := make(chan struct{})
	f.s.gcWalkHook = func() {
		if found.Add(1) != 1 {
			return
		}
		// A writer (the applier installing a commit) comes to the lock
		// while the walk holds it.
		go func() {
			f.s.mu.Lock()
			foundWhenLocked.Store(found.Load())
			f.s.mu.Unlock()
			close(locked)
		}()
		for i := 0; i < 10_000; i++ {
			if !f.s.mu.TryRLock() {
				return // the writer waits
			}
			f.s.mu.RUnlock()
			time.Sleep(time.Millisecond)
		}
		t.Error("the writer never came to the lock")
	}
	if c, err := f.s.CollectTombstones(context.Background()); err != nil || c != n {
		t.Fatalf("collected %d (%v), want %d", c, err, n)
	}
	<-locked
	if w := foundWhenLocked.Load(); w >= 2*gcWalkChunk {
		t.Errorf("a writer waited for the walk of %d of %d tombstones, want fewer than %d", w, n, 2*gcWalkChunk)
	}
}
