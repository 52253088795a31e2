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
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

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
	timeout := time.After(30 * time.Second)
	for {
		select {
		case c, ok := <-sub.C():
			if !ok {
				t.Fatalf("feed closed: %v", sub.Err())
			}
			for _, ch := range c.Changes {
				if ch.Key == "k" {
					if ch.Kind != ChangePut || ch.Record.LWW.Value.Text() != "two" {
						t.Fatalf("feed reported %+v for k", ch)
					}
					return
				}
			}
		case <-timeout:
			t.Fatal("the applied write of k never reached the change feed while the store was idle")
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
