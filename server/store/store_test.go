package store

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/plugins/null"
	"github.com/topgun-go/topgun/server/record"
)

// testClock is a minimal HLC over a settable wall clock, with a drift bound.
type testClock struct {
	mu    sync.Mutex
	wall  *atomic.Int64
	last  record.Timestamp
	drift uint64
}

func (c *testClock) Now() record.Timestamp {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := uint64(c.wall.Load())
	if w > c.last.Millis {
		c.last = record.Timestamp{Millis: w, NodeID: "server"}
	} else {
		c.last.Counter++
	}
	return c.last
}

func (c *testClock) NodeID() string { return "server" }

func (c *testClock) Update(ts record.Timestamp) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := uint64(c.wall.Load())
	if ts.Millis > w+c.drift {
		return fmt.Errorf("timestamp %s is more than %d ms ahead of the server clock", ts, c.drift)
	}
	if ts.Millis > c.last.Millis {
		c.last = record.Timestamp{Millis: ts.Millis, Counter: ts.Counter, NodeID: "server"}
	}
	return nil
}

type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

func testLogger(t testing.TB) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "store", Output: logWriter{t}, Level: hclog.Debug})
}

type fixture struct {
	t     *testing.T
	be    abi.Backend
	s     *Store
	wall  *atomic.Int64
	clock *testClock
	opts  Options
}

func newFixture(t *testing.T, be abi.Backend, mod func(*Options)) *fixture {
	t.Helper()
	wall := &atomic.Int64{}
	wall.Store(t0)
	return newFixtureOn(t, be, wall, mod)
}

// newFixtureOn opens a store on be whose wall clock is wall (shared by
// the stores of one test that stand for several servers).
func newFixtureOn(t *testing.T, be abi.Backend, wall *atomic.Int64, mod func(*Options)) *fixture {
	t.Helper()
	f := &fixture{t: t, be: be, wall: wall, clock: &testClock{wall: wall, drift: 60_000}}
	f.opts = Options{
		Clock:        f.clock,
		WallClock:    func() time.Time { return time.UnixMilli(wall.Load()) },
		ReapInterval: time.Hour, // tests drive housekeeping by hand
		GCInterval:   time.Hour,
		GCStartDelay: time.Hour,
		Logger:       testLogger(t),
	}
	if mod != nil {
		mod(&f.opts)
	}
	f.open()
	t.Cleanup(func() { f.s.Close() })
	return f
}

func (f *fixture) open() {
	f.t.Helper()
	s, err := Open(context.Background(), f.be, &f.opts)
	if err != nil {
		f.t.Fatalf("open: %v", err)
	}
	f.s = s
}

func (f *fixture) apply(ops ...Op) []Result {
	f.t.Helper()
	res, err := f.s.Apply(context.Background(), ops, 1)
	if err != nil {
		f.t.Fatalf("apply: %v", err)
	}
	return res
}

// mergeSignal returns a channel that receives (without blocking the
// store) when a request has been merged into the next commit.
func (f *fixture) mergeSignal() <-chan struct{} {
	merged := make(chan struct{}, 1)
	f.s.mergedHook = func() {
		select {
		case merged <- struct{}{}:
		default:
		}
	}
	return merged
}

func ts(ms uint64, c uint32, node string) record.Timestamp {
	return record.Timestamp{Millis: ms, Counter: c, NodeID: node}
}

func put(m, k, v string, t record.Timestamp) Op {
	return Op{Map: m, Key: k, Kind: OpPut, Value: record.StringValue(v), Timestamp: t}
}

func (f *fixture) get(m, k string) (string, bool) {
	f.t.Helper()
	e, ok, err := f.s.Get(context.Background(), m, k)
	if err != nil {
		f.t.Fatalf("get: %v", err)
	}
	if !ok {
		return "", false
	}
	return e.Record.LWW.Value.Text(), true
}

const t0 = 1_700_000_000_000

func TestStore_LWW_newerWinsOlderIgnored(t *testing.T) {
	f := newFixture(t, null.Open(), nil)
	r := f.apply(put("todo-items", "a", "one", ts(t0, 0, "c1")))
	if !r[0].Changed || r[0].Err != nil {
		t.Fatalf("first put: %+v", r[0])
	}
	r = f.apply(put("todo-items", "a", "old", ts(t0-5, 0, "c2")))
	if r[0].Changed {
		t.Fatalf("an older write changed the record")
	}
	if v, _ := f.get("todo-items", "a"); v != "one" {
		t.Fatalf("value %q, want one", v)
	}
	r = f.apply(put("todo-items", "a", "two", ts(t0, 1, "c2")))
	if !r[0].Changed {
		t.Fatalf("newer write ignored")
	}
	if v, _ := f.get("todo-items", "a"); v != "two" {
		t.Fatalf("value %q, want two", v)
	}
}

// TestStore_LWW_tieWinnerAsClient: two clients write one key with the same
// millis and counter. TopGun's TypeScript clients keep the write whose node
// id is greater by localeCompare ("Bob" > "alice"), and refuse the other as
// older; the server keeps client timestamps, so it must keep that write too,
// in either arrival order, or the client that wrote it never converges.
func TestStore_LWW_tieWinnerAsClient(t *testing.T) {
	for _, order := range [][2]string{{"alice", "Bob"}, {"Bob", "alice"}} {
		f := newFixture(t, null.Open(), nil)
		for _, node := range order {
			f.apply(put("m", "k", "from "+node, ts(t0, 0, node)))
		}
		if v, _ := f.get("m", "k"); v != "from Bob" {
			t.Errorf("writes from %q then %q: value %q, the clients keep %q", order[0], order[1], v, "from Bob")
		}
	}
}

func TestStore_LWW_resentOpIsNoOp(t *testing.T) {
	f := newFixture(t, null.Open(), nil)
	op := put("m", "k", "v", ts(t0, 0, "c1"))
	f.apply(op)
	root := f.s.Root("m", KindLWW)
	sub := f.s.Subscribe()
	defer sub.Close()
	for i := 0; i < 3; i++ {
		if r := f.apply(op); r[0].Changed {
			t.Fatalf("re-sent op changed the store")
		}
	}
	if got := f.s.Root("m", KindLWW); got != root {
		t.Fatalf("root changed from %d to %d by a re-sent op", root, got)
	}
	select {
	case c := <-sub.C():
		t.Fatalf("re-sent op published a commit: %+v", c)
	default:
	}
}

func TestStore_LWW_removeKeepsTombstone(t *testing.T) {
	f := newFixture(t, null.Open(), nil)
	f.apply(put("m", "k", "v", ts(t0, 0, "c1")))
	before := f.s.Root("m", KindLWW)
	f.apply(Op{Map: "m", Key: "k", Kind: OpRemove, Timestamp: ts(t0+1, 0, "c1")})
	if _, ok := f.get("m", "k"); ok {
		t.Fatalf("removed key still visible")
	}
	after := f.s.Root("m", KindLWW)
	if after == 0 || after == before {
		t.Fatalf("tombstone not in the Merkle index: root %d -> %d", before, after)
	}
	if want := lwwRootOf(map[string]record.Timestamp{"k": ts(t0+1, 0, "c1")}); after != want {
		t.Fatalf("root %d, want %d (tombstone hashed like a record)", after, want)
	}
	// The tombstone is durable and served in leaves with a null value.
	path := leafPath("k")
	es, ok, err := f.s.Leaf(context.Background(), "m", KindLWW, path)
	if err != nil || !ok || len(es) != 1 || !es[0].Record.LWW.Value.IsNull() {
		t.Fatalf("leaf %s: %+v ok=%v err=%v", path, es, ok, err)
	}
	// An older put does not resurrect it.
	f.apply(put("m", "k", "zombie", ts(t0, 5, "c2")))
	if _, ok := f.get("m", "k"); ok {
		t.Fatalf("older put resurrected a removed key")
	}
}

func TestStore_driftRejected(t *testing.T) {
	f := newFixture(t, null.Open(), nil)
	res := f.apply(put("m", "k", "v", ts(t0+120_000, 0, "c1")), put("m", "k2", "v", ts(t0+1000, 0, "c1")))
	var rej *RejectError
	if !errors.As(res[0].Err, &rej) {
		t.Fatalf("op 2 min ahead not rejected: %+v", res[0])
	}
	if res[1].Err != nil || !res[1].Changed {
		t.Fatalf("op within drift: %+v", res[1])
	}
	if _, ok := f.get("m", "k"); ok {
		t.Fatalf("rejected op was stored")
	}
}

func TestStore_invalidOpsRejectedOthersApplied(t *testing.T) {
	f := newFixture(t, null.Open(), nil)
	big := make([]byte, abi.MaxValueBytes+1)
	res := f.apply(
		put("", "k", "v", ts(t0, 0, "c")),
		Op{Map: "m", Key: "big", Kind: OpPut, Value: record.BytesValue(big), Timestamp: ts(t0, 0, "c")},
		put("m", "ok", "v", ts(t0, 0, "c")),
	)
	if res[0].Err == nil || res[1].Err == nil {
		t.Fatalf("invalid ops not rejected: %+v", res)
	}
	if res[2].Err != nil {
		t.Fatalf("valid op rejected: %v", res[2].Err)
	}
	if _, ok := f.get("m", "ok"); !ok {
		t.Fatalf("valid op of a batch with rejected ops not stored")
	}
}

func TestStore_OR_addRemoveSemantics(t *testing.T) {
	f := newFixture(t, null.Open(), nil)
	add := func(tag, v string, at record.Timestamp) Op {
		return Op{Map: "tags", Key: "k", Kind: OpORAdd, Value: record.StringValue(v), Timestamp: at, Tag: tag}
	}
	f.apply(add("t1", "a", ts(t0, 0, "c1")), add("t2", "b", ts(t0, 1, "c1")))
	if r := f.apply(add("t1", "a", ts(t0, 0, "c1"))); r[0].Changed {
		t.Fatalf("re-sent OR add created a duplicate")
	}
	f.apply(Op{Map: "tags", Key: "k", Kind: OpORRemove, Tag: "t1"})
	// A stale re-send of the removed add must not bring it back.
	if r := f.apply(add("t1", "a", ts(t0, 0, "c1"))); r[0].Changed {
		t.Fatalf("re-sent add of a removed tag was applied")
	}
	e, ok, err := f.s.Get(context.Background(), "tags", "k")
	if err != nil || !ok {
		t.Fatalf("get: %v %v", ok, err)
	}
	if n := len(e.Record.ORMap.Records); n != 1 || e.Record.ORMap.Records[0].Tag != "t2" {
		t.Fatalf("records %+v, want only t2", e.Record.ORMap.Records)
	}
	if ts := e.Record.ORMap.Tombstones; len(ts) != 1 || ts[0] != "t1" {
		t.Fatalf("tombstones %v, want [t1]", ts)
	}
	// Kinds do not mix on one key.
	if r := f.apply(put("tags", "k", "x", ts(t0+5, 0, "c1"))); r[0].Err == nil {
		t.Fatalf("LWW put on an OR key not rejected")
	}
}

// ttlMs is any u64 on the wire: one so large that the expiry would wrap
// means "never", for LWW records and OR entries alike, hidden by no read
// and reaped by no pass.
func TestStore_TTL_hugeNeverExpires(t *testing.T) {
	f := newFixture(t, null.Open(), nil)
	for i, ttl := range []uint64{1 << 62, 1 << 63, ^uint64(0), 0} {
		at := uint64(f.wall.Load())
		if ttl == 0 {
			ttl = ^uint64(0) - at + 2 // at+ttl wraps to 1
		}
		lww := put("m", "k", "v", ts(at, 0, "c1"))
		lww.TTLMs = ttl
		or := Op{Map: "o", Key: "k", Kind: OpORAdd, Value: record.IntValue(1), Tag: "t" + strconv.Itoa(i), Timestamp: ts(at, 0, "c1"), TTLMs: ttl}
		// A short-lived entry beside it, so the reaper visits the key.
		short := Op{Map: "o", Key: "k", Kind: OpORAdd, Value: record.IntValue(2), Tag: "s" + strconv.Itoa(i), Timestamp: ts(at, 1, "c1"), TTLMs: 1}
		f.apply(lww, or, short)
		f.wall.Add(10)
		if _, err := f.s.ReapExpired(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, ok := f.get("m", "k"); !ok {
			t.Fatalf("ttl %d: the LWW record expired", ttl)
		}
		e, ok, err := f.s.Get(context.Background(), "o", "k")
		if err != nil || !ok || len(e.Record.ORMap.Records) != 1 || e.Record.ORMap.Records[0].Tag != "t"+strconv.Itoa(i) {
			t.Fatalf("ttl %d: OR entries %+v (%v %v), want only the entry t%d", ttl, e.Record.ORMap, ok, err, i)
		}
		f.apply(Op{Map: "m", Key: "k", Kind: OpRemove, Timestamp: ts(at+100, 0, "c1")}, Op{Map: "o", Key: "k", Kind: OpORRemove, Tag: "t" + strconv.Itoa(i)})
		f.wall.Add(1000)
	}
}

// A tombstone lifetime longer than the time since 1970 ("keep them") does
// not wrap the cut-off into the future and collect every tombstone.
func TestStore_tombstoneTTLLongerThanTime(t *testing.T) {
	f := newFixture(t, null.Open(), func(o *Options) { o.TombstoneTTL = 500_000 * time.Hour })
	f.apply(Op{Map: "m", Key: "gone", Kind: OpRemove, Timestamp: ts(t0, 0, "c1")})
	if n, err := f.s.CollectTombstones(context.Background()); err != nil || n != 0 {
		t.Fatalf("collected %d fresh tombstones (%v)", n, err)
	}
}

// The tombstone of an expired record is stamped at its expiry, not when
// the pass runs: a write stamped after the expiry that arrives after a
// late pass still wins.
func TestStore_TTL_laterWriteBeatsLateReap(t *testing.T) {
	f := newFixture(t, null.Open(), nil)
	op := put("m", "k", "v", ts(t0, 0, "c1"))
	op.TTLMs = 1000
	f.apply(op)
	f.wall.Add(60_000) // the pass runs a minute late
	if n, err := f.s.ReapExpired(context.Background()); err != nil || n != 1 {
		t.Fatalf("reap: %d %v", n, err)
	}
	if r := f.apply(put("m", "k", "offline", ts(t0+30_000, 0, "c2"))); !r[0].Changed {
		t.Fatal("a write stamped after the expiry lost to the expiry's tombstone")
	}
	if v, _ := f.get("m", "k"); v != "offline" {
		t.Fatalf("k = %q", v)
	}
}

// A write stamped after a TTL record but before its expiry replaces it
// under LWW, whether it reaches the server before or after the expiry pass:
// the pass must not turn the expiry into a delete stamped later than that
// write.
func TestStore_TTL_writeBeforeExpiryArrivingAfterReapWins(t *testing.T) {
	for _, reapFirst := range []bool{false, true} {
		f := newFixture(t, null.Open(), nil)
		op := put("m", "k", "v", ts(t0, 0, "c1"))
		op.TTLMs = 1000
		f.apply(op)
		late := put("m", "k", "late", ts(t0+500, 0, "c2")) // made offline before the expiry, no TTL
		f.wall.Add(2000)
		if !reapFirst {
			f.apply(late)
		}
		if _, err := f.s.ReapExpired(context.Background()); err != nil {
			t.Fatal(err)
		}
		if reapFirst {
			f.apply(late)
		}
		if v, ok := f.get("m", "k"); !ok || v != "late" {
			t.Errorf("reap first %v: k = %q (present %v), want the acknowledged write %q", reapFirst, v, ok, "late")
		}
	}
}

// Expired rows the server cannot decode are deleted rather than left at
// the head of every listing, where they stopped the pass before the
// records behind them.
func TestStore_TTL_undecodableExpiredRowsDoNotStall(t *testing.T) {
	be := null.Open()
	f := newFixture(t, be, nil)
	b := &abi.Batch{Now: t0}
	for i := range reapBatch + 10 {
		b.Put("m", fmt.Sprintf("bad%05d", i), false, []byte{0xc1}, t0-1000)
	}
	if err := be.Apply(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	op := put("m", "k", "v", ts(t0, 0, "c1"))
	op.TTLMs = 1
	f.apply(op)
	f.wall.Add(10)
	if _, err := f.s.ReapExpired(context.Background()); err != nil {
		t.Fatal(err)
	}
	leaf, _, _ := f.s.Leaf(context.Background(), "m", KindLWW, leafPath("k"))
	if len(leaf) != 1 || !leaf[0].Record.LWW.Value.IsNull() {
		t.Fatalf("the record behind the undecodable rows was not reaped: %+v", leaf)
	}
	if recs, _ := be.ListExpired(context.Background(), f.wall.Load(), 10); len(recs) != 0 {
		t.Fatalf("%d expired rows left", len(recs))
	}
}

func TestStore_TTL_hiddenThenReaped(t *testing.T) {
	f := newFixture(t, null.Open(), nil)
	op := put("m", "k", "v", ts(t0, 0, "c1"))
	op.TTLMs = 1000
	f.apply(op)
	if _, ok := f.get("m", "k"); !ok {
		t.Fatalf("record hidden before it expired")
	}
	leaf, _, _ := f.s.Leaf(context.Background(), "m", KindLWW, leafPath("k"))
	if len(leaf) != 1 || leaf[0].TTLMs() != 1000 {
		t.Fatalf("leaf does not carry ttlMs 1000: %+v", leaf)
	}
	f.wall.Add(1000)
	if _, ok := f.get("m", "k"); ok {
		t.Fatalf("expired record still visible")
	}
	sub := f.s.Subscribe()
	defer sub.Close()
	n, err := f.s.ReapExpired(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("reap: n=%d err=%v", n, err)
	}
	c := <-sub.C()
	if len(c.Changes) != 1 || c.Changes[0].Kind != ChangeExpired || !c.Changes[0].Record.LWW.Value.IsNull() {
		t.Fatalf("reap published %+v", c)
	}
	// The tombstone replaces the record in the index (newer timestamp).
	leaf, _, _ = f.s.Leaf(context.Background(), "m", KindLWW, leafPath("k"))
	if len(leaf) != 1 || !leaf[0].Record.LWW.Value.IsNull() || leaf[0].Record.LWW.Timestamp.Compare(op.Timestamp) <= 0 {
		t.Fatalf("leaf after reap: %+v", leaf)
	}
	if n, _ := f.s.ReapExpired(context.Background()); n != 0 {
		t.Fatalf("second reap changed %d records", n)
	}
}

func TestStore_tombstoneGC(t *testing.T) {
	f := newFixture(t, null.Open(), func(o *Options) { o.TombstoneTTL = time.Hour })
	f.apply(put("m", "k", "v", ts(t0, 0, "c1")), Op{Map: "m", Key: "gone", Kind: OpRemove, Timestamp: ts(t0, 0, "c1")})
	sub := f.s.Subscribe()
	defer sub.Close()
	if n, _ := f.s.CollectTombstones(context.Background()); n != 0 {
		t.Fatalf("young tombstone collected")
	}
	// The first pass announces its cut-off although it collected nothing
	// (see PruneBefore): below the young tombstone.
	if c := <-sub.C(); len(c.Changes) != 0 || c.PruneBefore == nil || c.PruneBefore.Millis != uint64(t0-time.Hour.Milliseconds()) {
		t.Fatalf("first pass published %+v", c)
	}
	f.wall.Add(2 * time.Hour.Milliseconds())
	n, err := f.s.CollectTombstones(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("collect: n=%d err=%v", n, err)
	}
	c := <-sub.C()
	if c.PruneBefore == nil || c.PruneBefore.Millis != uint64(f.wall.Load()-time.Hour.Milliseconds()) {
		t.Fatalf("no prune cut-off published: %+v", c)
	}
	if want := lwwRootOf(map[string]record.Timestamp{"k": ts(t0, 0, "c1")}); f.s.Root("m", KindLWW) != want {
		t.Fatalf("root still counts the collected tombstone")
	}
	recs, _ := f.be.Get(context.Background(), "m", false, []string{"gone"})
	if len(recs) != 0 {
		t.Fatalf("collected tombstone still in storage")
	}
}

func TestStore_rebuildFromBackend(t *testing.T) {
	be := null.Open()
	f := newFixture(t, be, nil)
	for i := 0; i < 500; i++ {
		f.apply(put("m", fmt.Sprintf("k%03d", i), "v", ts(t0, uint32(i), "c1")))
	}
	f.apply(Op{Map: "m", Key: "k007", Kind: OpRemove, Timestamp: ts(t0+1, 0, "c1")})
	f.apply(Op{Map: "o", Key: "x", Kind: OpORAdd, Value: record.IntValue(1), Tag: "t", Timestamp: ts(t0, 0, "c1")})
	root, orRoot := f.s.Root("m", KindLWW), f.s.Root("o", KindOR)
	f.s.Close()
	f.opts.ScanBytes = 1000 // many pages
	f.open()
	if got := f.s.Root("m", KindLWW); got != root {
		t.Fatalf("LWW root after rebuild %d, want %d", got, root)
	}
	if got := f.s.Root("o", KindOR); got != orRoot || got == 0 {
		t.Fatalf("OR root after rebuild %d, want %d", got, orRoot)
	}
	if r := f.apply(put("m", "k001", "old", ts(t0-1, 0, "c9"))); r[0].Changed {
		t.Fatalf("rebuilt index lost the timestamp of k001")
	}
}

// countingBackend counts Apply calls and can be made to fail.
type countingBackend struct {
	abi.Backend
	applies atomic.Int64
	fail    atomic.Bool
	delay   time.Duration
}

func (b *countingBackend) Apply(ctx context.Context, batch *abi.Batch) error {
	b.applies.Add(1)
	if b.delay > 0 {
		time.Sleep(b.delay)
	}
	if b.fail.Load() {
		return abi.Errorf(abi.CodeUnavailable, "test: backend down")
	}
	return b.Backend.Apply(ctx, batch)
}

func TestStore_groupCommit(t *testing.T) {
	be := &countingBackend{Backend: null.Open(), delay: 2 * time.Millisecond}
	f := newFixture(t, be, nil)
	const writers, each = 32, 20
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				res, err := f.s.Apply(context.Background(), []Op{put("m", fmt.Sprintf("w%d-%d", w, i), "v", ts(t0, uint32(i), fmt.Sprint("c", w)))}, uint64(w))
				if err != nil || res[0].Err != nil {
					t.Errorf("apply: %v %+v", err, res)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	n := be.applies.Load()
	if n >= writers*each/2 {
		t.Fatalf("%d backend batches for %d concurrent writes: no group commit", n, writers*each)
	}
	recs, err := be.Backend.ListMaps(context.Background())
	if err != nil || len(recs) != 1 {
		t.Fatalf("maps %v %v", recs, err)
	}
	t.Logf("%d writes in %d backend batches", writers*each, n)
}

func TestStore_backendFailureAppliesNothing(t *testing.T) {
	be := &countingBackend{Backend: null.Open()}
	f := newFixture(t, be, nil)
	f.apply(put("m", "k", "one", ts(t0, 0, "c1")))
	root := f.s.Root("m", KindLWW)
	sub := f.s.Subscribe()
	defer sub.Close()
	be.fail.Store(true)
	if _, err := f.s.Apply(context.Background(), []Op{put("m", "k", "two", ts(t0+1, 0, "c1"))}, 1); !errors.Is(err, abi.ErrUnavailable) {
		t.Fatalf("apply on a failing backend: %v", err)
	}
	if f.s.Root("m", KindLWW) != root {
		t.Fatalf("index changed by a failed commit")
	}
	be.fail.Store(false)
	if v, _ := f.get("m", "k"); v != "one" {
		t.Fatalf("value %q after failed commit", v)
	}
	// The same op succeeds once the backend is back.
	if r := f.apply(put("m", "k", "two", ts(t0+1, 0, "c1"))); !r[0].Changed {
		t.Fatalf("retry after failure did not apply")
	}
	c := <-sub.C()
	if len(c.Changes) != 1 || c.Changes[0].Record.LWW.Value.Text() != "two" {
		t.Fatalf("feed: %+v", c)
	}
}

// OnCommit sees every backend batch: its records, and its error.
func TestStore_onCommit(t *testing.T) {
	type seen struct {
		records int
		err     error
	}
	var mu sync.Mutex
	var got []seen
	be := &countingBackend{Backend: null.Open()}
	f := newFixture(t, be, func(o *Options) {
		o.OnCommit = func(records int, took time.Duration, err error) {
			if took < 0 {
				t.Errorf("commit took %s", took)
			}
			mu.Lock()
			got = append(got, seen{records, err})
			mu.Unlock()
		}
	})
	f.apply(put("m", "a", "1", ts(t0, 0, "c1")), put("m", "b", "2", ts(t0, 0, "c1")))
	be.fail.Store(true)
	if _, err := f.s.Apply(context.Background(), []Op{put("m", "c", "3", ts(t0, 0, "c1"))}, 1); err == nil {
		t.Fatal("apply on a failing backend succeeded")
	}
	be.fail.Store(false)
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0].records != 2 || got[0].err != nil || got[1].records != 1 || !errors.Is(got[1].err, abi.ErrUnavailable) {
		t.Fatalf("OnCommit saw %+v", got)
	}
}

func TestStore_feedOrderAndLag(t *testing.T) {
	f := newFixture(t, null.Open(), func(o *Options) { o.FeedBuffer = 4 })
	fast := f.s.Subscribe()
	slow := f.s.Subscribe()
	defer fast.Close()
	defer slow.Close()
	var got []uint64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for c := range fast.C() {
			got = append(got, c.Seq)
			if len(got) == 20 {
				return
			}
		}
	}()
	for i := 0; i < 20; i++ {
		f.apply(put("m", fmt.Sprint(i), "v", ts(t0, uint32(i), "c")))
	}
	<-done
	for i := 1; i < len(got); i++ {
		if got[i] != got[i-1]+1 {
			t.Fatalf("commits out of order: %v", got)
		}
	}
	for range slow.C() {
	}
	if !errors.Is(slow.Err(), ErrLagged) {
		t.Fatalf("slow subscriber: %v, want ErrLagged", slow.Err())
	}
}

func TestStore_closed(t *testing.T) {
	f := newFixture(t, null.Open(), nil)
	f.s.Close()
	if _, err := f.s.Apply(context.Background(), []Op{put("m", "k", "v", ts(t0, 0, "c"))}, 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("apply after close: %v", err)
	}
	if _, _, err := f.s.Get(context.Background(), "m", "k"); !errors.Is(err, ErrClosed) {
		t.Fatalf("get after close: %v", err)
	}
	f.s.Close()
}

// lyingBackend applies a batch and then reports it failed, as a networked
// backend does when the connection breaks after the commit was sent.
type lyingBackend struct {
	abi.Backend
	lie  atomic.Bool
	down atomic.Bool // reads fail, as while the connection is down
}

func (b *lyingBackend) Get(ctx context.Context, m string, backup bool, keys []string) ([]abi.Record, error) {
	if b.down.Load() {
		return nil, abi.Errorf(abi.CodeUnavailable, "test: connection down")
	}
	return b.Backend.Get(ctx, m, backup, keys)
}

func (b *lyingBackend) Apply(ctx context.Context, batch *abi.Batch) error {
	err := b.Backend.Apply(ctx, batch)
	if err == nil && b.lie.Load() {
		return abi.Errorf(abi.CodeUnavailable, "test: connection lost after commit")
	}
	return err
}

func TestStore_unknownOutcomeRepairsIndex(t *testing.T) {
	be := &lyingBackend{Backend: null.Open()}
	f := newFixture(t, be, nil)
	f.apply(put("m", "k", "one", ts(t0, 0, "c1")))
	be.lie.Store(true)
	if _, err := f.s.Apply(context.Background(), []Op{put("m", "k", "two", ts(t0+1, 0, "c1"))}, 1); err == nil {
		t.Fatalf("expected the reported failure")
	}
	be.lie.Store(false)
	// The next commit re-reads k: the index must now hold the stored write,
	// so an op older than it is ignored and the root is the stored state's.
	f.apply(put("m", "other", "x", ts(t0, 0, "c1")))
	if r := f.apply(put("m", "k", "older", ts(t0, 5, "c2"))); r[0].Changed {
		t.Fatalf("index not repaired: an op older than the stored write was applied")
	}
	want := lwwRootOf(map[string]record.Timestamp{"k": ts(t0+1, 0, "c1"), "other": ts(t0, 0, "c1")})
	if got := f.s.Root("m", KindLWW); got != want {
		t.Fatalf("root %d, want %d", got, want)
	}
}

// When the re-read after an unclear commit fails too, the keys stay
// unknown: writes to them read storage, not the index, and the re-read is
// tried again before later commits. Before, the index kept the older
// state and an older write replaced the newer stored one.
func TestStore_unknownOutcomeRepairRetried(t *testing.T) {
	be := &lyingBackend{Backend: null.Open()}
	f := newFixture(t, be, nil)
	f.apply(put("m", "k", "one", ts(t0, 0, "c1")))
	be.lie.Store(true)
	be.down.Store(true)
	if _, err := f.s.Apply(context.Background(), []Op{put("m", "k", "three", ts(t0+10, 0, "c1"))}, 1); err == nil {
		t.Fatal("expected the reported failure")
	}
	be.lie.Store(false)
	be.down.Store(false)
	if r := f.apply(put("m", "k", "two", ts(t0+5, 0, "c2"))); r[0].Changed {
		t.Fatal("an op older than the stored write was applied")
	}
	if v, _ := f.get("m", "k"); v != "three" {
		t.Fatalf("k = %q, want the stored %q", v, "three")
	}
	// The repair was retried: the index holds the stored write.
	f.apply(put("m", "other", "x", ts(t0, 0, "c1")))
	want := lwwRootOf(map[string]record.Timestamp{"k": ts(t0+10, 0, "c1"), "other": ts(t0, 0, "c1")})
	if got := f.s.Root("m", KindLWW); got != want {
		t.Fatalf("root %d, want %d", got, want)
	}
}

// A reader that read storage before a key's cache entry was removed
// cannot put what it read back: removal voids older fills as a write does.
func TestCache_removeVoidsOlderFills(t *testing.T) {
	c := newCache(1 << 20)
	k := cacheKey{"m", "k"}
	gen := c.generation() // a reader starts, reads storage...
	c.remove(k)           // ...a failed commit forgets k...
	c.fill(k, &entryValue{present: true}, gen)
	if _, ok := c.get(k); ok {
		t.Fatal("a fill from before the removal was kept")
	}
}

func TestStore_Since_byCommitTime(t *testing.T) {
	f := newFixture(t, null.Open(), nil)
	f.apply(put("m", "early", "v", ts(t0-5000, 0, "c1")))
	since := f.wall.Load()
	f.wall.Add(10)
	// A late write stamped long ago (an offline client) is new to others.
	f.apply(put("m", "late", "v", ts(t0-9000, 0, "c2")), Op{Map: "m", Key: "gone", Kind: OpRemove, Timestamp: ts(t0-9000, 1, "c2")})
	es, _, complete, err := f.s.Since(context.Background(), "m", since, SinceLimits{Records: 100, Bytes: 1 << 20})
	if err != nil || !complete {
		t.Fatal(complete, err)
	}
	got := map[string]bool{}
	for _, e := range es {
		got[e.Key] = true
	}
	if len(got) != 2 || !got["late"] || !got["gone"] {
		t.Fatalf("Since returned %v, want the late write and the tombstone", got)
	}
}

// Since bounded by records and bytes hands out the changes in pages, the
// oldest first, each page ending at a whole millisecond; resuming from
// upTo delivers every change, and a millisecond that alone passes the
// bounds is reported rather than cut, or returned whole with WholeFirst.
func TestStore_Since_pages(t *testing.T) {
	f := newFixture(t, null.Open(), nil)
	ctx := context.Background()
	start := f.wall.Load()
	want := map[string]bool{}
	// 40 commits of 1-3 changes each, one ms apart, keys out of commit
	// order so key order and commit order differ. commitOf recovers a
	// key's commit (7 and 40 are coprime).
	commitOf := map[string]int{}
	for i := range 40 {
		var ops []Op
		for j := range 1 + i%3 {
			k := fmt.Sprintf("k%02d-%d", (i*7)%40, j)
			ops = append(ops, put("m", k, "v", ts(t0+uint64(i), uint32(j), "c1")))
			want[k] = true
			commitOf[k] = i
		}
		f.apply(ops...)
		f.wall.Add(1)
	}
	for _, bounds := range []struct {
		records int
		bytes   int64
	}{{5, 1 << 20}, {3, 1 << 20}, {100, 400}} {
		got := map[string]bool{}
		since, pages := start-1, 0
		for {
			es, upTo, complete, err := f.s.Since(ctx, "m", since, SinceLimits{Records: bounds.records, Bytes: bounds.bytes})
			if err != nil {
				t.Fatal(err)
			}
			var bytes int64
			perCommit := map[int]int{}
			for _, e := range es {
				got[e.Key] = true
				bytes += int64(e.Size)
				perCommit[commitOf[e.Key]]++
			}
			for i, n := range perCommit {
				if n != 1+i%3 {
					t.Fatalf("bounds %+v: the page holds %d of the %d changes of commit %d", bounds, n, 1+i%3, i)
				}
			}
			if len(es) > bounds.records || bytes > bounds.bytes || (len(es) > 0 && es[0].Size == 0) {
				t.Fatalf("bounds %+v: a page of %d records, %d bytes", bounds, len(es), bytes)
			}
			if complete {
				break
			}
			if len(es) == 0 || upTo <= since {
				t.Fatalf("bounds %+v: no progress from %d (upTo %d)", bounds, since, upTo)
			}
			since = upTo
			if pages++; pages > 100 {
				t.Fatalf("bounds %+v: more than 100 pages", bounds)
			}
		}
		if len(got) != len(want) || pages < 2 {
			t.Fatalf("bounds %+v: %d of %d changes delivered in %d pages", bounds, len(got), len(want), pages+1)
		}
	}
	// Three changes committed in one millisecond do not fit in two.
	es, _, complete, err := f.s.Since(ctx, "m", start+1, SinceLimits{Records: 2, Bytes: 1 << 20})
	if err != nil || complete || len(es) != 0 {
		t.Fatalf("a millisecond over the bounds: %d entries, complete %v, %v", len(es), complete, err)
	}
	// With WholeFirst they come whole, and the next page resumes after.
	es, upTo, complete, err := f.s.Since(ctx, "m", start+1, SinceLimits{Records: 2, Bytes: 1 << 20, WholeFirst: true})
	if err != nil || complete || len(es) != 3 || upTo != start+2 {
		t.Fatalf("WholeFirst: %d entries, upTo %d (want %d), complete %v, %v", len(es), upTo, start+2, complete, err)
	}
	// The last commit, alone and whole, completes.
	if es, _, complete, err := f.s.Since(ctx, "m", start+38, SinceLimits{Records: 1, Bytes: 1, WholeFirst: true}); err != nil || !complete || len(es) != 1 {
		t.Fatalf("WholeFirst on the last millisecond: %d entries, complete %v, %v", len(es), complete, err)
	}
}

// SyncPoint is the last whole millisecond, before a commit still being
// applied (its changes may not be visible to a scan yet), and not past the
// latest commit time (see TestStore_SyncPoint_resumeMissesNothingAfterReopenWithClockBehind);
// further back on storage other processes share.
func TestStore_SyncPoint(t *testing.T) {
	be := &gateBackend{Backend: null.Open(), entered: make(chan struct{}), release: make(chan bool)}
	f := newFixture(t, be, nil)
	if p := f.s.SyncPoint(); p != 0 {
		t.Fatalf("idle, nothing committed: SyncPoint %d, want 0", p)
	}
	first := make(chan error, 1)
	go func() {
		_, err := f.s.Apply(context.Background(), []Op{put("m", "j", "v", ts(t0, 0, "c1"))}, 1)
		first <- err
	}()
	<-be.entered
	be.release <- false
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	f.wall.Add(100)
	now := f.wall.Load()
	done := make(chan error, 1)
	go func() {
		_, err := f.s.Apply(context.Background(), []Op{put("m", "k", "v", ts(t0, 0, "c1"))}, 1)
		done <- err
	}()
	<-be.entered // stamped at now, not yet applied
	f.wall.Add(50)
	if p := f.s.SyncPoint(); p != now-100 {
		t.Fatalf("during a commit stamped %d: SyncPoint %d, want the commit before it, %d", now, p, now-100)
	}
	be.release <- false
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if p := f.s.SyncPoint(); p != now {
		t.Fatalf("after the commit: SyncPoint %d, want its commit time %d", p, now)
	}
	// A wall clock stepping back does not take SyncPoint below a commit
	// time or a SyncPoint already given out.
	f.wall.Add(-1000)
	if p := f.s.SyncPoint(); p != now {
		t.Fatalf("clock stepped back: SyncPoint %d, want %d", p, now)
	}

	shared := newFixture(t, sharedBackend{null.Open()}, nil)
	if p, want := shared.s.SyncPoint(), shared.wall.Load()-1-SharedSyncAllowance; p != want {
		t.Fatalf("shared storage: SyncPoint %d, want %d", p, want)
	}
}

// sharedBackend declares that other processes use the same storage.
type sharedBackend struct{ abi.Backend }

func (b sharedBackend) Describe() abi.Description {
	d := b.Backend.Describe()
	d.Capabilities |= abi.CapShared
	return d
}

// sizeBackend holds its first Apply until hold is closed and records the
// value bytes of every batch.
type sizeBackend struct {
	abi.Backend
	entered chan struct{}
	hold    chan struct{}
	once    sync.Once
	mu      sync.Mutex
	largest int
}

func (b *sizeBackend) Apply(ctx context.Context, batch *abi.Batch) error {
	b.once.Do(func() { b.entered <- struct{}{}; <-b.hold })
	n := 0
	for i := range batch.Mutations {
		n += len(batch.Mutations[i].Value)
	}
	b.mu.Lock()
	b.largest = max(b.largest, n)
	b.mu.Unlock()
	return b.Backend.Apply(ctx, batch)
}

// heldFirstCommit opens a store on be (mod, when set, changes it), counts
// its merges in merged, and starts a first write whose commit be holds:
// what arrives then is gathered into the next group commit. first gets
// the first write's result.
func heldFirstCommit(t *testing.T, be *sizeBackend, mod func(*Store)) (f *fixture, merged *atomic.Int64, first chan error) {
	f = newFixture(t, be, nil)
	if mod != nil {
		mod(f.s)
	}
	merged = &atomic.Int64{}
	f.s.mergedHook = func() { merged.Add(1) }
	first = make(chan error, 1)
	go func() {
		_, err := f.s.Apply(context.Background(), []Op{put("m", "first", "v", ts(t0, 0, "c"))}, 1)
		first <- err
	}()
	<-be.entered // the applier is busy: what arrives now is gathered
	return f, merged, first
}

// A group commit gathers at most maxCommitBytes of records, plus one
// request: writers of large values arriving during a slow commit no
// longer make one batch of them all.
func TestStore_groupCommitBoundedInBytes(t *testing.T) {
	be := &sizeBackend{Backend: null.Open(), entered: make(chan struct{}, 1), hold: make(chan struct{})}
	f, merged, first := heldFirstCommit(t, be, func(s *Store) { s.maxCommitBytes = 1 << 20 })
	const writers = 40
	big := strings.Repeat("x", 256<<10)
	errs := make(chan error, writers)
	for i := range writers {
		go func() {
			_, err := f.s.Apply(context.Background(), []Op{put("m", "k"+strconv.Itoa(i), big, ts(t0, 0, "c"))}, uint64(i+2))
			errs <- err
		}()
	}
	// The committer takes requests until the txn passes the bound, then
	// waits for the applier; give it time to take more if it would.
	for deadline := time.Now().Add(5 * time.Second); merged.Load() < 5 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	close(be.hold)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if limit := 1<<20 + 2*len(big); be.largest > limit {
		t.Fatalf("a batch held %d value bytes, over the bound of %d plus a request", be.largest, 1<<20)
	}
}

// gateBackend holds each Apply until released and fails it when told to.
type gateBackend struct {
	abi.Backend
	entered chan struct{}
	release chan bool // true: fail this Apply
}

func (b *gateBackend) Apply(ctx context.Context, batch *abi.Batch) error {
	b.entered <- struct{}{}
	if <-b.release {
		return abi.Errorf(abi.CodeUnavailable, "test: commit failed")
	}
	return b.Backend.Apply(ctx, batch)
}

// TestStore_pipelineDependentFails: a write merged while an earlier commit
// is in flight, on top of its state, fails with it instead of being
// applied on a state that never became durable.
func TestStore_pipelineDependentFails(t *testing.T) {
	be := &gateBackend{Backend: null.Open(), entered: make(chan struct{}), release: make(chan bool)}
	f := newFixture(t, be, nil)
	first := make(chan error, 1)
	go func() {
		_, err := f.s.Apply(context.Background(), []Op{put("m", "k", "one", ts(t0, 0, "c1"))}, 1)
		first <- err
	}()
	<-be.entered // the first commit is in flight
	merged := f.mergeSignal()
	second := make(chan []Result, 1)
	secondErr := make(chan error, 1)
	go func() {
		// Older than "one": it is a no-op only because of the in-flight write.
		res, err := f.s.Apply(context.Background(), []Op{put("m", "k", "older", ts(t0-1, 0, "c2"))}, 2)
		second <- res
		secondErr <- err
	}()
	<-merged // merged on top of the in-flight write, which now fails
	be.release <- true
	if err := <-first; err == nil {
		t.Fatalf("first write: want the commit failure")
	}
	select {
	case <-be.entered: // a dependent commit must not reach the backend
		t.Fatalf("the dependent write was sent to the backend")
	case err := <-secondErr:
		<-second
		if err == nil {
			t.Fatalf("dependent write acknowledged although its basis failed")
		}
	}
	// Retried, the older write now applies: nothing else holds the key.
	go func() { <-be.entered; be.release <- false }()
	if r := f.apply(put("m", "k", "older", ts(t0-1, 0, "c2"))); !r[0].Changed {
		t.Fatalf("retry after the failure was not applied")
	}
	if v, _ := f.get("m", "k"); v != "older" {
		t.Fatalf("value %q", v)
	}
	go func() {
		for range be.entered {
			be.release <- false
		}
	}()
}

// Close leaves no goroutine behind: a process opening and closing many
// stores (one per tenant) does not grow.
func TestStore_closeLeavesNoGoroutine(t *testing.T) {
	open := func() {
		f := newFixture(t, null.Open(), nil)
		f.apply(put("m", "k", "v", ts(t0, 0, "c")))
		f.s.Close()
	}
	open() // the first may start lasting runtime goroutines
	before := runtime.NumGoroutine()
	for range 20 {
		open()
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after opening and closing 20 stores, %d before", runtime.NumGoroutine(), before)
		}
		time.Sleep(10 * time.Millisecond)
	}
	f := newFixture(t, null.Open(), nil)
	f.s.Close()
	if _, err := f.s.Apply(context.Background(), []Op{put("m", "k", "v", ts(t0, 0, "c"))}, 1); err != ErrClosed {
		t.Fatalf("Apply after Close: %v, want ErrClosed", err)
	}
}

// emptyCursorBackend ends every scan with an empty, non-nil cursor where
// the contract wants nil.
type emptyCursorBackend struct{ *null.Backend }

func (b emptyCursorBackend) Scan(ctx context.Context, req abi.ScanRequest) (abi.Page, error) {
	p, err := b.Backend.Scan(ctx, req)
	if err == nil && p.Cursor == nil {
		p.Cursor = []byte{}
	}
	return p, err
}

// A backend that ends its last scan page with an empty cursor instead of
// nil must not make the store read the map from its start again, forever:
// the index rebuild at open ends, and so do reads of a whole map.
func TestStore_emptyCursorEndsAScan(t *testing.T) {
	t.Parallel()
	be := emptyCursorBackend{null.Open()}
	f := newFixture(t, be, nil)
	f.apply(put("m", "a", "1", ts(t0, 0, "n")), put("m", "b", "2", ts(t0, 0, "n")))
	f.s.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.open()
		entries, _, _, err := f.s.Since(context.Background(), "m", 0, SinceLimits{Records: 10, Bytes: 1 << 20})
		if err != nil || len(entries) != 2 {
			t.Errorf("Since after reopen = %d entries, %v; want the 2 records", len(entries), err)
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the store still scanning after 30 s: an empty cursor restarted the scan")
	}
}

// A commit reported failed that storage did apply (the unknown outcome a
// backend may report) is still a commit: once the re-read finds it, the
// change feed reports it, before the commits after it. Before, the feed
// never did, and a client's re-send was a no-op, so live queries never
// heard of the write.
func TestStore_unknownOutcomeCommitReachesFeed(t *testing.T) {
	be := &lyingBackend{Backend: null.Open()}
	f := newFixture(t, be, nil)
	f.apply(put("m", "k", "one", ts(t0, 0, "c1")))
	sub := f.s.Subscribe()
	defer sub.Close()
	be.lie.Store(true)
	if _, err := f.s.Apply(context.Background(), []Op{put("m", "k", "two", ts(t0+1, 0, "c1"))}, 1); err == nil {
		t.Fatal("expected the reported failure")
	}
	be.lie.Store(false)
	f.apply(put("m", "other", "x", ts(t0, 0, "c1")))
	for {
		c := <-sub.C()
		for _, ch := range c.Changes {
			if ch.Key == "k" {
				if ch.Kind != ChangePut || ch.Record.LWW.Value.Text() != "two" {
					t.Fatalf("feed reported %+v for k", ch)
				}
				return
			}
			if ch.Key == "other" {
				t.Fatal("the applied write of k never reached the change feed")
			}
		}
	}
}

// Group commit never builds a backend batch over abi.MaxBatchOps: a large
// request (TOPGUN_MAX_BATCH_OPS may be up to that limit) arriving while a
// smaller one waits for the next commit goes into a commit of its own.
// Before, both went into one batch, the backend refused it as invalid, and
// both callers' valid writes failed.
func TestStore_groupCommitWithinBatchLimit(t *testing.T) {
	be := &gateBackend{Backend: null.Open(), entered: make(chan struct{}), release: make(chan bool)}
	f := newFixture(t, be, nil)
	errs := make(chan error, 2)
	go func() {
		_, err := f.s.Apply(context.Background(), []Op{put("m", "first", "v", ts(t0, 0, "c1"))}, 1)
		errs <- err
	}()
	<-be.entered // the first commit is in flight
	merged := f.mergeSignal()
	go func() {
		_, err := f.s.Apply(context.Background(), []Op{put("m", "small", "v", ts(t0, 0, "c1"))}, 2)
		errs <- err
	}()
	<-merged // waits for the next commit
	big := make([]Op, abi.MaxBatchOps)
	for i := range big {
		big[i] = put("big", strconv.Itoa(i), "v", ts(t0, 0, "c1"))
	}
	// Queued as Apply queues it; wait until the committer took it (merged
	// into the waiting txn, or held for the next one).
	req := &request{ops: big, origin: 3, results: make([]Result, len(big)), done: make(chan error, 1)}
	f.s.reqs <- req
	for deadline := time.Now().Add(30 * time.Second); len(f.s.reqs) > 0; { // a hang guard
		if time.Now().After(deadline) {
			t.Fatal("the large request was never taken")
		}
		runtime.Gosched()
	}
	go func() {
		for range be.entered {
			be.release <- false
		}
	}()
	be.release <- false // let the first commit through
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("valid writes failed: %v", err)
		}
	}
	if err := <-req.done; err != nil {
		t.Fatalf("the large request failed: %v", err)
	}
	if recs, err := f.be.Get(context.Background(), "big", false, []string{"0", strconv.Itoa(abi.MaxBatchOps - 1)}); err != nil || len(recs) != 2 {
		t.Fatalf("large request not stored: %d records, %v", len(recs), err)
	}
}

// stuckScanBackend pages a map the way a faulty plugin might: the same
// records again and again, or empty pages that never end.
type stuckScanBackend struct {
	abi.Backend
	empty bool
	calls atomic.Int64
}

func (b *stuckScanBackend) Scan(ctx context.Context, req abi.ScanRequest) (abi.Page, error) {
	if b.calls.Add(1) > 10_000 {
		return abi.Page{}, errors.New("test: scan never ended")
	}
	page, err := b.Backend.Scan(ctx, abi.ScanRequest{Map: req.Map, Limit: 1, MaxBytes: req.MaxBytes})
	if b.empty {
		page.Records = nil
	}
	page.Cursor = []byte("again")
	return page, err
}

// A backend whose scan makes no progress (a faulty plugin) fails Open and
// Scan with an error instead of looping forever over its pages.
func TestStore_scanWithoutProgressFails(t *testing.T) {
	for _, empty := range []bool{false, true} {
		inner := null.Open()
		f := newFixture(t, inner, nil)
		f.apply(put("m", "a", "1", ts(t0, 0, "c1")), put("m", "b", "2", ts(t0, 0, "c1")))
		f.s.Close()
		be := &stuckScanBackend{Backend: inner, empty: empty}
		s, err := Open(context.Background(), be, &f.opts)
		if err == nil {
			s.Close()
			t.Fatalf("empty pages %v: Open succeeded over a scan that never ends", empty)
		}
		if n := be.calls.Load(); n > 10 {
			t.Fatalf("empty pages %v: Open read %d pages of a stuck scan before failing: %v", empty, n, err)
		}
	}
}

// While storage cannot be read, the failed commits kept to find out
// whether they were applied are bounded in bytes, not only in number: a
// long outage under heavy writes must not fill memory with them.
func TestStore_unsureCommitsBoundedInBytes(t *testing.T) {
	be := &lyingBackend{Backend: null.Open()}
	f := newFixture(t, be, nil)
	be.lie.Store(true)
	be.down.Store(true)
	big := strings.Repeat("x", 7<<20)
	for i := range 24 { // 168 MiB of failed commits
		_, _ = f.s.Apply(context.Background(), []Op{put("m", "k"+strconv.Itoa(i), big, ts(t0, uint32(i), "c1"))}, 1)
	}
	// Read on the applier's side once it is idle: a commit that succeeds
	// runs settleUnsure first, which cannot read storage yet.
	be.lie.Store(false)
	f.apply(put("m", "probe", "v", ts(t0, 99, "c1")))
	if n := f.s.unsureBytes; n > maxUnsureBytes+(8<<20) {
		t.Fatalf("%d MiB of failed commits kept, over the %d MiB bound", n>>20, maxUnsureBytes>>20)
	}
}

// An OR remove of several tags (one ORMAP_PUSH_DIFF entry's tombstones)
// merges as the same removes one by one would: known tombstones and
// repeated tags add nothing, tombstoned records go, a later add of a
// removed tag is suppressed, and each new tag is announced once.
func TestStore_OR_removeOfManyTagsMergesLikeOneByOne(t *testing.T) {
	f := newFixture(t, null.Open(), nil)
	sub := f.s.Subscribe()
	defer sub.Close()
	add := func(tag string, at record.Timestamp) Op {
		return Op{Map: "tags", Key: "k", Kind: OpORAdd, Value: record.StringValue(tag), Timestamp: at, Tag: tag}
	}
	f.apply(add("t1", ts(t0, 0, "c1")), add("t2", ts(t0, 1, "c1")), Op{Map: "tags", Key: "k", Kind: OpORRemove, Tag: "old"})
	<-sub.C()
	r := f.apply(Op{Map: "tags", Key: "k", Kind: OpORRemove, Tags: []string{"old", "t1", "x", "t1", "x"}})
	if !r[0].Changed || r[0].Err != nil {
		t.Fatalf("remove of many tags: %+v", r[0])
	}
	cm := <-sub.C()
	var announced []string
	for _, ch := range cm.Changes {
		if ch.Kind == ChangeORRemove && ch.Tag != "" {
			announced = append(announced, ch.Tag)
		} else if ch.Kind == ChangeORRemove {
			announced = append(announced, ch.Tags...)
		}
	}
	if !slices.Equal(announced, []string{"t1", "x"}) {
		t.Fatalf("announced removes %v, want [t1 x]", announced)
	}
	if r := f.apply(add("x", ts(t0, 2, "c1"))); r[0].Changed {
		t.Fatalf("add of a tag removed by a many-tag remove was applied")
	}
	if r := f.apply(Op{Map: "tags", Key: "k", Kind: OpORRemove, Tags: []string{"x", "t1"}}); r[0].Changed {
		t.Fatalf("re-sent many-tag remove changed the key")
	}
	if r := f.apply(Op{Map: "tags", Key: "k", Kind: OpORRemove, Tags: []string{"y", ""}}); r[0].Err == nil {
		t.Fatalf("many-tag remove with an empty tag not rejected")
	}
	e, ok, err := f.s.Get(context.Background(), "tags", "k")
	if err != nil || !ok {
		t.Fatalf("get: %v %v", ok, err)
	}
	if n := len(e.Record.ORMap.Records); n != 1 || e.Record.ORMap.Records[0].Tag != "t2" {
		t.Fatalf("records %+v, want only t2", e.Record.ORMap.Records)
	}
	if tombs := e.Record.ORMap.Tombstones; !slices.Equal(tombs, []string{"old", "t1", "x"}) {
		t.Fatalf("tombstones %v, want [old t1 x]", tombs)
	}
}

// A commit writes each key once, with its last state: ops of one request
// on one key used to add a mutation (a full copy of the record) each.
func TestStore_commitWritesEachKeyOnce(t *testing.T) {
	var mu sync.Mutex
	var batches []int
	f := newFixture(t, null.Open(), func(o *Options) {
		o.OnCommit = func(records int, _ time.Duration, err error) {
			mu.Lock()
			batches = append(batches, records)
			mu.Unlock()
		}
	})
	var ops []Op
	for i := 0; i < 50; i++ {
		tag := "t" + strconv.Itoa(i)
		ops = append(ops, Op{Map: "tags", Key: "k", Kind: OpORAdd, Value: record.StringValue(tag), Timestamp: ts(t0, uint32(i), "c1"), Tag: tag, TTLMs: uint64(1000 + i)})
		if i%3 == 0 {
			ops = append(ops, Op{Map: "tags", Key: "k", Kind: OpORRemove, Tag: tag})
		}
		ops = append(ops, put("m", "lww", strconv.Itoa(i), ts(t0, uint32(i), "c1")))
	}
	for _, r := range f.apply(ops...) {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	mu.Lock()
	got := slices.Clone(batches)
	mu.Unlock()
	if !slices.Equal(got, []int{2}) {
		t.Fatalf("commits wrote %v records, want one commit of 2 (one per key)", got)
	}
	e, ok, err := f.s.Get(context.Background(), "tags", "k")
	if err != nil || !ok || len(e.Record.ORMap.Records) != 33 || len(e.Record.ORMap.Tombstones) != 17 {
		t.Fatalf("k: %v %v %d records %d tombstones", ok, err, len(e.Record.ORMap.Records), len(e.Record.ORMap.Tombstones))
	}
	if e.ExpirationTime != int64(t0+1001) { // t1 (ttl 1001) is the earliest live entry
		t.Fatalf("expiration %d, want %d", e.ExpirationTime, t0+1001)
	}
	if v, _ := f.get("m", "lww"); v != "49" {
		t.Fatalf("lww %q, want 49", v)
	}
}

// A commit reported failed that storage applied, settled only after a
// later commit overwrote one of its keys (reads of storage were down in
// between), still reaches the feed for its other keys: each key is settled
// on its own, and one a known commit overwrote is settled by that commit.
// Before, the overwritten key no longer matched, the whole commit counted
// as not applied, and its write of b was never published.
func TestStore_unknownOutcomeSettledPerKey(t *testing.T) {
	be := &lyingBackend{Backend: null.Open()}
	f := newFixture(t, be, nil)
	f.apply(put("m", "a", "one", ts(t0, 0, "c1")), put("m", "b", "one", ts(t0, 0, "c1")))
	sub := f.s.Subscribe()
	defer sub.Close()
	be.lie.Store(true)
	be.down.Store(true)
	if _, err := f.s.Apply(context.Background(), []Op{put("m", "a", "two", ts(t0+1, 0, "c1")), put("m", "b", "two", ts(t0+1, 0, "c1"))}, 1); err == nil {
		t.Fatal("expected the reported failure")
	}
	be.lie.Store(false)
	be.down.Store(false)
	// The overwrite of a is merged while storage can be read; reads fail
	// again before it commits, so the failed commit is not settled first.
	var arm atomic.Bool
	arm.Store(true)
	f.s.mergedHook = func() {
		if arm.CompareAndSwap(true, false) {
			be.down.Store(true)
		}
	}
	f.apply(put("m", "a", "three", ts(t0+2, 0, "c1")))
	be.down.Store(false)
	f.apply(put("m", "other", "x", ts(t0, 0, "c1")))
	got := map[string]string{}
	for len(got) < 3 {
		c := <-sub.C()
		for _, ch := range c.Changes {
			if ch.Key == "other" && got["b"] == "" {
				t.Fatalf("the applied write of b never reached the change feed (feed so far %v)", got)
			}
			got[ch.Key] = ch.Record.LWW.Value.Text()
		}
	}
	if got["a"] != "three" || got["b"] != "two" || got["other"] != "x" {
		t.Fatalf("feed reported %v, want a=three b=two other=x", got)
	}
	if v, _ := f.get("m", "b"); v != "two" {
		t.Fatalf("b = %q, want the stored %q", v, "two")
	}
	want := lwwRootOf(map[string]record.Timestamp{"a": ts(t0+2, 0, "c1"), "b": ts(t0+1, 0, "c1"), "other": ts(t0, 0, "c1")})
	if got := f.s.Root("m", KindLWW); got != want {
		t.Fatalf("root %d, want %d", got, want)
	}
}

// largeExpiringORKeys writes OR keys k0... of a 256 KiB entry and one
// expiring at t0+1s each, and lowers the store's commit byte bound to
// 1 MiB, which four of them pass.
func largeExpiringORKeys(t *testing.T, f *fixture, keys int) {
	big := record.StringValue(strings.Repeat("x", 256<<10))
	for i := range keys {
		k := "k" + strconv.Itoa(i)
		f.apply(
			Op{Map: "m", Key: k, Kind: OpORAdd, Value: big, Timestamp: ts(t0, 0, "c"), Tag: k + "-kept"},
			Op{Map: "m", Key: k, Kind: OpORAdd, Value: record.StringValue("v"), Timestamp: ts(t0, 1, "c"), Tag: k + "-gone", TTLMs: 1000},
		)
	}
	f.s.maxCommitBytes = 1 << 20
}

// checkExpiredORKeys checks each key of largeExpiringORKeys kept its large
// entry and holds a tombstone of the one expired.
func checkExpiredORKeys(t *testing.T, f *fixture, keys int) {
	t.Helper()
	for i := range keys {
		e, ok, err := f.s.Get(context.Background(), "m", "k"+strconv.Itoa(i))
		if err != nil || !ok || len(e.Record.ORMap.Records) != 1 || len(e.Record.ORMap.Tombstones) != 1 {
			t.Fatalf("k%d after the pass: %d entries, %d tombstones, found %v, %v", i, len(e.Record.ORMap.Records), len(e.Record.ORMap.Tombstones), ok, err)
		}
	}
}

// An expiry pass commits at most about maxCommitBytes of records at once:
// expired OR keys keep their other entries, and a thousand large ones made
// one batch of gigabytes, held in memory twice.
func TestStore_ReapExpired_boundedInBytes(t *testing.T) {
	be := &sizeBackend{Backend: null.Open(), entered: make(chan struct{}, 1), hold: make(chan struct{})}
	close(be.hold)
	f := newFixture(t, be, nil)
	const keys = 8
	largeExpiringORKeys(t, f, keys)
	be.mu.Lock()
	be.largest = 0
	be.mu.Unlock()
	f.wall.Add(5000)
	n, err := f.s.ReapExpired(context.Background())
	if err != nil || n != keys {
		t.Fatalf("reaped %d, %v; want %d", n, err, keys)
	}
	if limit := 1<<20 + 2*(256<<10); be.largest > limit {
		t.Fatalf("an expiry batch held %d value bytes, over the bound of %d plus a record", be.largest, 1<<20)
	}
	checkExpiredORKeys(t, f, keys)
}

// getSizeBackend is shared storage that records the value bytes of its
// largest Get once armed.
type getSizeBackend struct {
	sharedBackend
	armed   atomic.Bool
	mu      sync.Mutex
	largest int
}

func (b *getSizeBackend) Get(ctx context.Context, mapName string, backup bool, keys []string) ([]abi.Record, error) {
	recs, err := b.sharedBackend.Get(ctx, mapName, backup, keys)
	if b.armed.Load() {
		n := 0
		for i := range recs {
			n += len(recs[i].Value)
		}
		b.mu.Lock()
		b.largest = max(b.largest, n)
		b.mu.Unlock()
	}
	return recs, err
}

// On shared storage an expiry pass reads the records it merges against
// (prefetch): read all at once, the listed OR keys a commit stops short of
// (at maxCommitBytes) were held all the same, a thousand large ones
// gigabytes, and read again by every commit of the pass.
func TestStore_ReapExpired_sharedReadsBoundedInBytes(t *testing.T) {
	be := &getSizeBackend{sharedBackend: sharedBackend{null.Open()}}
	f := newFixture(t, be, nil)
	const keys = 8
	largeExpiringORKeys(t, f, keys)
	f.wall.Add(5000)
	be.armed.Store(true)
	n, err := f.s.ReapExpired(context.Background())
	if err != nil || n != keys {
		t.Fatalf("reaped %d, %v; want %d", n, err, keys)
	}
	if limit := 1<<20 + 2*(256<<10); be.largest > limit {
		t.Fatalf("an expiry commit read %d value bytes at once, over the bound of %d plus a record", be.largest, 1<<20)
	}
	checkExpiredORKeys(t, f, keys)
}
