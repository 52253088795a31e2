package abitest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/topgun-go/topgun/abi"
)

// The optional interfaces of a backend that several processes share
// (abi.CheckedApplier, abi.Watcher): their cases skip a backend that does
// not implement them. What other processes commit is seen through a second
// backend on the same storage, which Harness.OpenShared opens.

// watchWait bounds the wait for a Watch to report a commit: a liveness
// bound, not a speed goal.
const watchWait = 10 * time.Second

// openShared opens another backend on the storage of be through
// h.OpenShared and makes sure it is closed when the case ends.
func openShared(t TB, h Harness, be abi.Backend) abi.Backend {
	t.Helper()
	nb := h.OpenShared(t, be)
	if nb == nil {
		t.Fatalf("Harness.OpenShared returned a nil backend")
	}
	t.Cleanup(func() { _ = nb.Close() })
	return nb
}

// checkedApplier returns be as an abi.CheckedApplier, or skips the case.
func checkedApplier(t TB, be abi.Backend) abi.CheckedApplier {
	t.Helper()
	ca, ok := be.(abi.CheckedApplier)
	if !ok {
		t.Skipf("the backend does not implement abi.CheckedApplier (optional, for storage several servers share)")
	}
	return ca
}

// watcher returns be as an abi.Watcher, or skips the case; the cases of
// Watch need a second backend on the same storage to commit.
func watcher(t TB, h Harness, be abi.Backend) abi.Watcher {
	t.Helper()
	w, ok := be.(abi.Watcher)
	if !ok {
		t.Skipf("the backend does not implement abi.Watcher (optional, for storage several servers share)")
	}
	if h.OpenShared == nil {
		t.Skipf("Harness.OpenShared is nil: Watch is not tested (set OpenShared for a backend that implements abi.Watcher)")
	}
	return w
}

func present(mapName, key, value string) abi.Expect {
	return abi.Expect{Map: mapName, Key: key, Present: true, Value: []byte(value)}
}

func absent(mapName, key string) abi.Expect { return abi.Expect{Map: mapName, Key: key} }

func fmtExpects(expect []abi.Expect) string {
	parts := make([]string, len(expect))
	for i, e := range expect {
		if e.Present {
			parts[i] = fmt.Sprintf("%s %s = %s", q(e.Map), q(e.Key), fmtValue(e.Value))
		} else {
			parts[i] = fmt.Sprintf("%s %s absent", q(e.Map), q(e.Key))
		}
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func testApplyChecked(t TB, h Harness) {
	be := open(t, h)
	ca := checkedApplier(t, be)
	ctx := ctxOf(t)
	putRecs(t, be, t0,
		rec("m", "a", false, "a1", 0, 0, 0),
		rec("m", "b", false, "b1", t0+100, 0, 0),
		rec("m", "empty", false, "", 0, 0, 0),
		rec("m", "bk", true, "backup only", 0, 0, 0),
	)
	maps := []string{"m", "n"}
	// The batch of every step writes records the expects name and others.
	batch := func(now int64, v string) *abi.Batch {
		b := &abi.Batch{Now: now}
		b.Put("m", "a", false, []byte("a:"+v), 0)
		b.Put("m", "x", false, []byte("x:"+v), t0+200)
		b.Delete("m", "b", false)
		b.Put("n", "y", false, []byte("y:"+v), 0)
		return b
	}
	conflict := func(what string, b *abi.Batch, expect []abi.Expect) {
		t.Helper()
		before := snapshot(t, be, maps)
		if err := ca.ApplyChecked(ctx, b, expect); !errors.Is(err, abi.ErrConflict) {
			t.Errorf("ApplyChecked(%s, expect %s) with %s = %v; want an error with CodeConflict", fmtBatch(b), fmtExpects(expect), what, err)
		}
		if d := diffState(snapshot(t, be, maps), before); d != "" {
			t.Fatalf("ApplyChecked with %s changed the backend (a conflict applies nothing): %s", what, d)
		}
	}
	for _, tc := range []struct {
		name   string
		expect []abi.Expect
	}{
		{"a present record expected absent", []abi.Expect{absent("m", "a")}},
		{"an absent record expected present", []abi.Expect{present("m", "x", "x")}},
		{"another value expected", []abi.Expect{present("m", "a", "a0")}},
		{"a prefix of the value expected", []abi.Expect{present("m", "a", "a")}},
		{"a longer value expected", []abi.Expect{present("m", "a", "a1+")}},
		{"an empty value expected over a value", []abi.Expect{present("m", "a", "")}},
		{"a value expected over an empty value", []abi.Expect{present("m", "empty", "e")}},
		{"a backup record's value expected of its primary", []abi.Expect{present("m", "bk", "backup only")}},
		{"a record of another map expected present", []abi.Expect{present("n", "a", "a1")}},
		{"the last of several expects failing", []abi.Expect{present("m", "a", "a1"), absent("m", "x"), present("m", "b", "b1"), absent("n", "y"), present("m", "b", "b0")}},
		{"the first of several expects failing", []abi.Expect{absent("m", "b"), present("m", "a", "a1"), absent("m", "x")}},
	} {
		conflict(tc.name, batch(t0+10, "c"), tc.expect)
	}
	conflict("a failing expect and no mutations", &abi.Batch{Now: t0 + 10}, []abi.Expect{absent("m", "a")})

	// Every expect holds: the whole batch applies, as Apply would. The
	// expects are checked before the batch, which writes their records.
	expect := []abi.Expect{
		present("m", "a", "a1"), present("m", "b", "b1"), absent("m", "x"), absent("n", "y"),
		{Map: "m", Key: "empty", Present: true}, // nil and empty values are the same
		absent("m", "bk"),                       // only its backup record is present
		absent("other", "never"),
	}
	b := batch(t0+10, "1")
	if err := ca.ApplyChecked(ctx, b, expect); err != nil {
		t.Fatalf("ApplyChecked(%s, expect %s) = %v; want nil (every expect holds)", fmtBatch(b), fmtExpects(expect), err)
	}
	mustHave(t, be, rec("m", "a", false, "a:1", 0, t0, t0+10))
	mustHave(t, be, rec("m", "x", false, "x:1", t0+200, t0+10, t0+10))
	mustMiss(t, be, "m", "b", false)
	mustHave(t, be, rec("n", "y", false, "y:1", 0, t0+10, t0+10))
	mustHave(t, be, rec("m", "bk", true, "backup only", 0, t0, t0))
	// Without expects it is Apply; with expects and no mutations it
	// applies nothing and succeeds.
	b = &abi.Batch{Now: t0 + 20}
	b.Put("m", "b", false, []byte("b2"), 0)
	if err := ca.ApplyChecked(ctx, b, nil); err != nil {
		t.Fatalf("ApplyChecked(%s) without expects = %v; want nil", fmtBatch(b), err)
	}
	mustHave(t, be, rec("m", "b", false, "b2", 0, t0+20, t0+20))
	if err := ca.ApplyChecked(ctx, &abi.Batch{Now: t0 + 21}, []abi.Expect{present("m", "b", "b2")}); err != nil {
		t.Errorf("ApplyChecked of no mutations whose expect holds = %v; want nil", err)
	}

	// A large batch whose expects hold applies whole, and one whose expect
	// fails applies nothing: a backend that commits a large batch in
	// chunks must check every expect once, before the first chunk.
	n := abi.MaxBatchOps
	if h.Short {
		n = 4*abi.DefaultScanLimit + 1
	}
	big := &abi.Batch{Now: t0 + 30, Mutations: make([]abi.Mutation, 0, n)}
	big.Put("m", "a", false, []byte("a:big"), 0)
	for i := 1; i < n; i++ {
		big.Put("bulk", fmt.Sprintf("k%06d", i), false, []byte("v"), 0)
	}
	conflict(fmt.Sprintf("a batch of %d mutations and a failing expect", n), big, []abi.Expect{present("m", "a", "a:1"), present("m", "x", "x:0")})
	if err := ca.ApplyChecked(ctx, big, []abi.Expect{present("m", "a", "a:1"), absent("bulk", fmt.Sprintf("k%06d", n-1))}); err != nil {
		t.Fatalf("ApplyChecked of a batch of %d mutations whose expects hold = %v; want nil", n, err)
	}
	mustHave(t, be, rec("m", "a", false, "a:big", 0, t0, t0+30))
	if got := scanAll(t, be, "bulk", false, 0, 0); len(got) != n-1 {
		t.Errorf("after ApplyChecked of a batch of %d mutations, Scan of its map returned %d records; want %d (the whole batch applies)", n, len(got), n-1)
	}

	// An invalid batch is refused as by Apply, whatever the expects.
	before := snapshot(t, be, maps)
	bad := batch(t0+40, "bad")
	bad.Put("", "k", false, nil, 0)
	if err := ca.ApplyChecked(ctx, bad, []abi.Expect{present("m", "a", "a:big")}); !errors.Is(err, abi.ErrInvalidArgument) {
		t.Errorf("ApplyChecked of a batch with an empty map name = %v; want an error with CodeInvalidArgument", err)
	}
	if err := ca.ApplyChecked(ctx, nil, nil); !errors.Is(err, abi.ErrInvalidArgument) {
		t.Errorf("ApplyChecked(nil batch) = %v; want an error with CodeInvalidArgument", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := ca.ApplyChecked(cctx, batch(t0+40, "canceled"), []abi.Expect{present("m", "a", "a:big")}); !isCanceled(err) {
		t.Errorf("ApplyChecked with a cancelled context = %v; want an error matching context.Canceled or abi.ErrCanceled", err)
	}
	if d := diffState(snapshot(t, be, maps), before); d != "" {
		t.Fatalf("a refused ApplyChecked changed the backend: %s", d)
	}

	// Storage, not what this backend wrote, is what expects are checked
	// against: another process's commit in between is a conflict.
	if h.OpenShared != nil {
		other := openShared(t, h, be)
		putRecs(t, other, t0+50, rec("m", "a", false, "a:other", 0, 0, 0))
		conflict("a record another backend on the same storage wrote since", batch(t0+60, "stale"), []abi.Expect{present("m", "a", "a:big")})
		if err := ca.ApplyChecked(ctx, batch(t0+60, "2"), []abi.Expect{present("m", "a", "a:other")}); err != nil {
			t.Errorf("ApplyChecked expecting what another backend on the same storage wrote = %v; want nil", err)
		}
		mustHave(t, other, rec("m", "a", false, "a:2", 0, t0, t0+60))
	}

	if err := be.Close(); err != nil {
		t.Fatalf("Close() = %v; want nil", err)
	}
	if err := ca.ApplyChecked(ctx, batch(t0+70, "closed"), nil); !errors.Is(err, abi.ErrUnavailable) {
		t.Errorf("ApplyChecked after Close = %v; want an error with CodeUnavailable", err)
	}
}

// testApplyCheckedWriters has writers increment one counter by reading it
// and writing it back with ApplyChecked, retrying on conflicts, on backends
// of their own when the harness opens them: no increment may be lost, so
// the check and the batch must be one step. Each increment's first read
// waits until every writer has made it, so that each round has writers
// apply what they read before the round's first commit: however the
// goroutines are scheduled, all but one of them expect a stale value.
func testApplyCheckedWriters(t TB, h Harness) {
	be := open(t, h)
	checkedApplier(t, be)
	writers, incs := 4, 25
	if h.Short {
		writers, incs = 3, 10
	}
	const maxTries = 200 // per increment: conflicts are expected, not endless ones
	const bigBatch = 2 * abi.DefaultScanLimit
	bes := []abi.Backend{be}
	if h.OpenShared != nil {
		bes = append(bes, openShared(t, h, be))
	}
	ctx, cancel := context.WithTimeout(ctxOf(t), 2*time.Minute)
	defer cancel()
	start := make(chan struct{})
	errs := make(chan error, writers)
	var conflicts atomic.Int64
	// read[i] is closed once every writer has read the counter for its
	// increment i; quit once a writer has given up, so none waits for it.
	read := make([]chan struct{}, incs)
	for i := range read {
		read[i] = make(chan struct{})
	}
	reads := make([]atomic.Int32, incs)
	quit := make(chan struct{})
	var quitOnce sync.Once
	fail := func(err error) {
		errs <- err
		quitOnce.Do(func() { close(quit) })
	}
	for g := 0; g < writers; g++ {
		wb := bes[g%len(bes)]
		ca, ok := wb.(abi.CheckedApplier)
		if !ok {
			t.Fatalf("the backend Harness.OpenShared opened does not implement abi.CheckedApplier; the one Harness.Open opened does")
		}
		go func() {
			<-start
			for i := 0; i < incs; i++ {
				for try := 0; ; try++ {
					if try == maxTries {
						fail(fmt.Errorf("writer %d: increment %d conflicted %d times in a row", g, i, maxTries))
						return
					}
					recs, err := wb.Get(ctx, "ctr", false, []string{"n"})
					if err != nil {
						fail(fmt.Errorf("writer %d: Get = %v; want nil", g, err))
						return
					}
					n, expect := 0, absent("ctr", "n")
					if len(recs) == 1 {
						if _, err := fmt.Sscanf(string(recs[0].Value), "%d", &n); err != nil {
							fail(fmt.Errorf("writer %d: the counter holds %s; want a number", g, fmtRec(recs[0])))
							return
						}
						expect = present("ctr", "n", string(recs[0].Value))
					}
					if try == 0 {
						if reads[i].Add(1) == int32(writers) {
							close(read[i])
						}
						select {
						case <-read[i]:
						case <-quit:
							errs <- nil // the writer that gave up reports
							return
						}
					}
					b := &abi.Batch{Now: t0 + int64(n) + 1}
					b.Put("ctr", "n", false, []byte(fmt.Sprint(n+1)), 0)
					b.Put("ctr", fmt.Sprintf("w%d", g), false, []byte(fmt.Sprint(i+1)), 0)
					if g == 0 {
						// One writer's batches are large: a backend may
						// guard those otherwise than small ones.
						for j := 0; j < bigBatch; j++ {
							b.Put("pad", fmt.Sprintf("k%04d", j), false, []byte(fmt.Sprint(i)), 0)
						}
					}
					err = ca.ApplyChecked(ctx, b, []abi.Expect{expect})
					if errors.Is(err, abi.ErrConflict) {
						conflicts.Add(1)
						continue
					}
					if err != nil {
						fail(fmt.Errorf("writer %d: ApplyChecked(%s, expect %s) = %v; want nil or a conflict", g, fmtBatch(b), fmtExpects([]abi.Expect{expect}), err))
						return
					}
					break
				}
			}
			errs <- nil
		}()
	}
	close(start)
	for g := 0; g < writers; g++ {
		if err := <-errs; err != nil {
			t.Errorf("%v", err)
		}
	}
	if t.Failed() {
		return
	}
	want := writers * incs
	recs := get(t, be, "ctr", false, "n")
	if len(recs) != 1 || string(recs[0].Value) != fmt.Sprint(want) {
		got := "nothing"
		if len(recs) == 1 {
			got = fmtRec(recs[0])
		}
		t.Errorf("after %d writers each applied %d increments with ApplyChecked (%d conflicts retried, on %d backends), the counter holds %s; want %d (an increment was lost: a write came between another's check and its batch)", writers, incs, conflicts.Load(), len(bes), got, want)
	}
}

// heard collects what a Watch reports. It counts the calls of fn that
// overlap (fn is called from one goroutine at a time) and those that begin
// once ended is set (the Watch must have stopped).
type heard struct {
	mu      sync.Mutex
	changes []abi.Changed
	wake    chan struct{}

	busy, overlaps, late atomic.Int32
	ended                atomic.Bool
}

func newHeard() *heard { return &heard{wake: make(chan struct{}, 1)} }

func (w *heard) fn(c abi.Changed) {
	if w.ended.Load() {
		w.late.Add(1)
	}
	if w.busy.Add(1) > 1 {
		w.overlaps.Add(1)
	}
	// A moment inside fn, so that a call made beside this one, from
	// another goroutine, overlaps it.
	time.Sleep(time.Millisecond)
	c.Keys = slices.Clone(c.Keys)
	w.mu.Lock()
	w.changes = append(w.changes, c)
	w.mu.Unlock()
	w.busy.Add(-1)
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// reset forgets what was heard.
func (w *heard) reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.changes = nil
}

// missing returns the keys of mapName that no report covers: one naming
// the key, all of its map (Keys nil) or everything (All).
func (w *heard) missing(mapName string, keys []string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, k := range keys {
		covered := false
		for _, c := range w.changes {
			if c.All || (c.Map == mapName && (c.Keys == nil || slices.Contains(c.Keys, k))) {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, k)
		}
	}
	return out
}

func (w *heard) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	parts := make([]string, 0, len(w.changes))
	for i, c := range w.changes {
		if i == 8 {
			parts = append(parts, fmt.Sprintf("… %d more", len(w.changes)-i))
			break
		}
		switch {
		case c.All:
			parts = append(parts, "all")
		case c.Keys == nil:
			parts = append(parts, q(c.Map)+": all keys")
		default:
			parts = append(parts, q(c.Map)+": "+qs(c.Keys))
		}
	}
	return "[" + strings.Join(parts, "; ") + "]"
}

// waitFor waits, at most watchWait, until the Watch has reported every key
// of mapName, and stops the case otherwise.
func (w *heard) waitFor(t TB, what, mapName string, keys ...string) {
	t.Helper()
	timer := time.NewTimer(watchWait)
	defer timer.Stop()
	for {
		miss := w.missing(mapName, keys)
		if len(miss) == 0 {
			return
		}
		select {
		case <-w.wake:
		case <-timer.C:
			t.Fatalf("Watch did not report %s within %v: keys %s of map %s not reported (heard %s)", what, watchWait, qs(miss), q(mapName), w)
		case <-ctxOf(t).Done():
			t.Fatalf("Watch did not report %s before the run was interrupted: keys %s of map %s not reported", what, qs(miss), q(mapName))
		}
	}
}

func testWatch(t TB, h Harness) {
	be := open(t, h)
	w := watcher(t, h, be)
	other := openShared(t, h, be)
	putRecs(t, other, t0, rec("d", "x", false, "x", 0, 0, 0), rec("m", "k2", false, "old", 0, 0, 0))
	ctx, cancel := context.WithCancel(ctxOf(t))
	defer cancel()
	got := newHeard()
	if err := w.Watch(ctx, got.fn); err != nil {
		t.Fatalf("Watch() = %v; want nil", err)
	}
	// Committed as soon as Watch returned, which it does once it listens.
	b := &abi.Batch{Now: t0 + 1}
	b.Put("m", "k1", false, []byte("v"), 0)
	b.Put("m", "k2", false, []byte("v"), t0+5)
	b.Put("m", "kb", true, []byte("backup"), 0)
	b.Put("ключ/😀", "with space:and colon", false, []byte("v"), 0)
	b.Delete("d", "x", false)
	apply(t, other, b)
	got.waitFor(t, "another backend's put", "m", "k1", "k2")
	got.waitFor(t, "another backend's put", "ключ/😀", "with space:and colon")
	got.waitFor(t, "another backend's delete", "d", "x")

	// Every commit is reported, each as it comes, those of ApplyChecked
	// (the server's commits on shared storage) too.
	got.reset()
	const commits = 5
	for i := 0; i < commits; i++ {
		b := &abi.Batch{Now: t0 + 2 + int64(i)}
		b.Put("seq", fmt.Sprintf("k%d", i), false, []byte("v"), 0)
		b.Put(fmt.Sprintf("seq%d", i), "k", false, []byte("v"), 0)
		apply(t, other, b)
	}
	for i := 0; i < commits; i++ {
		got.waitFor(t, fmt.Sprintf("commit %d of %d made one after another", i+1, commits), "seq", fmt.Sprintf("k%d", i))
		got.waitFor(t, fmt.Sprintf("commit %d of %d made one after another", i+1, commits), fmt.Sprintf("seq%d", i), "k")
	}
	if ca, ok := other.(abi.CheckedApplier); ok {
		got.reset()
		b := &abi.Batch{Now: t0 + 10}
		b.Put("m", "k1", false, []byte("v2"), 0)
		b.Delete("m", "k2", false)
		if err := ca.ApplyChecked(ctx, b, []abi.Expect{present("m", "k1", "v"), present("m", "k2", "v")}); err != nil {
			t.Fatalf("ApplyChecked(%s) = %v; want nil", fmtBatch(b), err)
		}
		got.waitFor(t, "another backend's ApplyChecked", "m", "k1", "k2")
	}
	if n := got.overlaps.Load(); n != 0 {
		t.Errorf("Watch called fn while a call of it was running, %d times; fn is called from one goroutine at a time", n)
	}
	got.mu.Lock()
	defer got.mu.Unlock()
	for _, c := range got.changes {
		if !c.All && c.Map == "" {
			t.Errorf("Watch reported %+v: a change names its map, or has All set", c)
		}
	}
}

func testWatchStop(t TB, h Harness) {
	be := open(t, h)
	w := watcher(t, h, be)
	writer, observer := openShared(t, h, be), openShared(t, h, be)
	ow, ok := observer.(abi.Watcher)
	if !ok {
		t.Fatalf("the backend Harness.OpenShared opened does not implement abi.Watcher; the one Harness.Open opened does")
	}
	seen := newHeard()
	if err := ow.Watch(ctxOf(t), seen.fn); err != nil {
		t.Fatalf("Watch() of a second backend = %v; want nil", err)
	}
	commit := func(key string) {
		t.Helper()
		putRecs(t, writer, t0, rec("stop", key, false, "v", 0, 0, 0))
		seen.waitFor(t, fmt.Sprintf("the put of %s to a backend watching the same storage", q(key)), "stop", key)
	}
	ctx, cancel := context.WithCancel(ctxOf(t))
	defer cancel()
	canceled, closed := newHeard(), newHeard()
	if err := w.Watch(ctx, canceled.fn); err != nil {
		t.Fatalf("Watch() = %v; want nil", err)
	}
	if err := w.Watch(ctxOf(t), closed.fn); err != nil {
		t.Fatalf("a second Watch() of the backend = %v; want nil", err)
	}
	commit("before")
	canceled.waitFor(t, "a commit before its context was cancelled", "stop", "before")
	closed.waitFor(t, "a commit before Close", "stop", "before")

	// A Watch stops when its ctx is done; the backend's other Watch goes on.
	cancel()
	canceled.ended.Store(true)
	commit("after-cancel")
	closed.waitFor(t, "a commit after another Watch of the backend was cancelled", "stop", "after-cancel")
	if n := canceled.late.Load(); n != 0 {
		t.Errorf("Watch called fn %d times after its context was cancelled (heard %s); it stops when ctx is done", n, canceled)
	}

	// Every Watch stops at Close.
	if err := be.Close(); err != nil {
		t.Fatalf("Close() = %v; want nil", err)
	}
	closed.ended.Store(true)
	commit("after-close")
	commit("after-close-2")
	if n := closed.late.Load(); n != 0 {
		t.Errorf("Watch called fn %d times after Close returned (heard %s); it stops when the backend closes", n, closed)
	}
	if err := w.Watch(ctxOf(t), newHeard().fn); !errors.Is(err, abi.ErrUnavailable) {
		t.Errorf("Watch() after Close = %v; want an error with CodeUnavailable", err)
	}
}
