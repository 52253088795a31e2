package hlc

import (
	"bytes"
	"errors"
	"math"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/server/record"
)

// testWriter sends log lines to t.Log (and keeps them when buf is set).
type testWriter struct {
	t   testing.TB
	mu  sync.Mutex
	buf *bytes.Buffer
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	if w.buf != nil {
		w.mu.Lock()
		w.buf.Write(p)
		w.mu.Unlock()
	}
	return len(p), nil
}

func testLogger(t testing.TB, buf *bytes.Buffer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "hlc", Output: &testWriter{t: t, buf: buf}, Level: hclog.Trace})
}

// fakeWall is a wall clock the test moves by hand.
type fakeWall struct{ ms atomic.Int64 }

func (f *fakeWall) now() time.Time { return time.UnixMilli(f.ms.Load()) }
func (f *fakeWall) set(ms int64)   { f.ms.Store(ms) }

func newTestClock(t *testing.T, opts *Options) (*Clock, *fakeWall) {
	t.Helper()
	w := &fakeWall{}
	if opts == nil {
		opts = DefaultOptions()
	}
	opts.WallClock = w.now
	if opts.Logger == nil {
		opts.Logger = testLogger(t, nil)
	}
	c, err := New("node-a", opts)
	if err != nil {
		t.Fatal(err)
	}
	return c, w
}

func ts(millis uint64, counter uint32, node string) record.Timestamp {
	return record.Timestamp{Millis: millis, Counter: counter, NodeID: node}
}

// TestClock_vectors walks the rules of reference §2.1 step by step.
func TestClock_vectors(t *testing.T) {
	t.Parallel()
	c, w := newTestClock(t, nil)
	type step struct {
		name   string
		wall   int64
		remote *record.Timestamp // Update(remote) before Now, when set
		want   record.Timestamp  // the Now that follows
	}
	r := func(m uint64, c uint32) *record.Timestamp { x := ts(m, c, "node-z"); return &x }
	steps := []step{
		{"first Now takes the wall clock", 1000, nil, ts(1000, 0, "node-a")},
		{"same millisecond bumps the counter", 1000, nil, ts(1000, 1, "node-a")},
		{"wall clock behind keeps counting", 999, nil, ts(1000, 2, "node-a")},
		{"wall clock ahead resets the counter", 1001, nil, ts(1001, 0, "node-a")},
		// Update: m == last == remote → max counter + 1 (6), then Now bumps (7).
		{"remote equal to last: max counter + 1", 1001, r(1001, 5), ts(1001, 7, "node-a")},
		// m == last only → last counter + 1 (8), Now → 9.
		{"remote behind: last counter + 1", 1001, r(1000, 50), ts(1001, 9, "node-a")},
		// m == remote only → remote counter + 1 (4), Now with wall behind → 5.
		{"remote ahead: remote counter + 1", 1001, r(1050, 3), ts(1050, 5, "node-a")},
		// m == wall → counter 0, Now in the same millisecond → 1.
		{"wall ahead of both: counter 0", 2000, r(1500, 1), ts(2000, 1, "node-a")},
		// m == remote == wall, ahead of last → remote counter + 1 (8), Now → 9.
		{"remote equal to wall, ahead of last", 3000, r(3000, 7), ts(3000, 9, "node-a")},
	}
	for _, s := range steps {
		w.set(s.wall)
		if s.remote != nil {
			if err := c.Update(*s.remote); err != nil {
				t.Fatalf("%s: Update: %v", s.name, err)
			}
		}
		if got := c.Now(); got != s.want {
			t.Fatalf("%s: Now = %v, want %v", s.name, got, s.want)
		}
	}
}

func TestClock_counterOverflow(t *testing.T) {
	t.Parallel()
	const W = 5000
	t.Run("now carries into the next millisecond", func(t *testing.T) {
		t.Parallel()
		c, w := newTestClock(t, nil)
		w.set(W)
		if err := c.Update(ts(W, math.MaxUint32-1, "x")); err != nil { // m == remote only → MaxUint32
			t.Fatal(err)
		}
		if got := c.Now(); got != ts(W+1, 0, "node-a") {
			t.Fatalf("Now after counter MaxUint32 = %v, want %v", got, ts(W+1, 0, "node-a"))
		}
		if got := c.Now(); got != ts(W+1, 1, "node-a") {
			t.Fatalf("next Now = %v", got)
		}
	})
	t.Run("update from a remote at MaxUint32", func(t *testing.T) {
		t.Parallel()
		c, w := newTestClock(t, nil)
		w.set(W)
		if err := c.Update(ts(W, math.MaxUint32, "x")); err != nil { // remote only
			t.Fatal(err)
		}
		if got := c.Now(); got != ts(W+1, 1, "node-a") {
			t.Fatalf("Now = %v, want %v", got, ts(W+1, 1, "node-a"))
		}
	})
	t.Run("update with both at the same millisecond", func(t *testing.T) {
		t.Parallel()
		c, w := newTestClock(t, nil)
		w.set(W)
		c.Now() // last = (W, 0)
		if err := c.Update(ts(W, math.MaxUint32, "x")); err != nil {
			t.Fatal(err)
		}
		if got := c.Now(); got != ts(W+1, 1, "node-a") {
			t.Fatalf("Now = %v, want %v", got, ts(W+1, 1, "node-a"))
		}
	})
	t.Run("update when last is at MaxUint32", func(t *testing.T) {
		t.Parallel()
		c, w := newTestClock(t, nil)
		w.set(W)
		if err := c.Update(ts(W, math.MaxUint32-1, "x")); err != nil {
			t.Fatal(err)
		}
		// last = (W, MaxUint32); a remote behind → last counter + 1 overflows.
		if err := c.Update(ts(1, 0, "x")); err != nil {
			t.Fatal(err)
		}
		if got := c.Now(); got != ts(W+1, 1, "node-a") {
			t.Fatalf("Now = %v, want %v", got, ts(W+1, 1, "node-a"))
		}
	})
	t.Run("saturates at the end of time instead of wrapping", func(t *testing.T) {
		t.Parallel()
		c, w := newTestClock(t, &Options{AllowDrift: true})
		w.set(W)
		if err := c.Update(ts(math.MaxUint64, math.MaxUint32, "x")); err != nil {
			t.Fatal(err)
		}
		got := c.Now()
		if got.Millis != math.MaxUint64 || got.Counter != math.MaxUint32 {
			t.Fatalf("Now = %v", got)
		}
	})
}

func TestClock_drift(t *testing.T) {
	t.Parallel()
	const W = 1_700_000_000_000
	t.Run("at the limit is accepted", func(t *testing.T) {
		t.Parallel()
		c, w := newTestClock(t, nil)
		w.set(W)
		if err := c.Update(ts(W+60_000, 0, "x")); err != nil {
			t.Fatal(err)
		}
		if got := c.Now(); got != ts(W+60_000, 2, "node-a") {
			t.Fatalf("Now = %v", got)
		}
	})
	t.Run("beyond the limit is refused and changes nothing", func(t *testing.T) {
		t.Parallel()
		c, w := newTestClock(t, nil)
		w.set(W)
		remote := ts(W+60_001, 0, "bad-clock")
		err := c.Update(remote)
		if !errors.Is(err, ErrClockDrift) {
			t.Fatalf("Update error = %v, want ErrClockDrift", err)
		}
		var de *DriftError
		if !errors.As(err, &de) || de.Remote != remote || de.Wall != W || de.MaxDrift != DefaultMaxDrift {
			t.Fatalf("DriftError = %+v", de)
		}
		if !strings.HasPrefix(err.Error(), "hlc: ") || !strings.Contains(err.Error(), "60001ms ahead") {
			t.Fatalf("message = %q", err)
		}
		if got := c.Now(); got != ts(W, 0, "node-a") {
			t.Fatalf("Now after a refused update = %v, want the wall clock", got)
		}
		if err := c.CheckDrift(remote); !errors.Is(err, ErrClockDrift) {
			t.Fatalf("CheckDrift = %v", err)
		}
		if err := c.CheckDrift(ts(W+1000, 0, "x")); err != nil {
			t.Fatalf("CheckDrift within bounds = %v", err)
		}
	})
	t.Run("far behind is fine", func(t *testing.T) {
		t.Parallel()
		c, w := newTestClock(t, nil)
		w.set(W)
		if err := c.Update(ts(0, 0, "x")); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("custom max drift", func(t *testing.T) {
		t.Parallel()
		c, w := newTestClock(t, &Options{MaxDrift: 5 * time.Second})
		w.set(W)
		if err := c.Update(ts(W+5000, 0, "x")); err != nil {
			t.Fatal(err)
		}
		if err := c.Update(ts(W+5001, 0, "x")); !errors.Is(err, ErrClockDrift) {
			t.Fatalf("Update = %v, want ErrClockDrift", err)
		}
	})
	t.Run("allow drift accepts with a warning", func(t *testing.T) {
		t.Parallel()
		var logs bytes.Buffer
		c, w := newTestClock(t, &Options{AllowDrift: true, Logger: testLogger(t, &logs)})
		w.set(W)
		if err := c.Update(ts(W+120_000, 4, "x")); err != nil {
			t.Fatal(err)
		}
		if got := c.Now(); got != ts(W+120_000, 6, "node-a") {
			t.Fatalf("Now = %v", got)
		}
		if !strings.Contains(logs.String(), "clock drift") || !strings.Contains(logs.String(), "drift_ms=120000") {
			t.Fatalf("no drift warning logged: %q", logs.String())
		}
	})
}

// TestClock_concurrent: timestamps from one clock are unique and increase
// per goroutine, under concurrent Now and Update, with the real wall clock.
func TestClock_concurrent(t *testing.T) {
	t.Parallel()
	c, err := New("node-c", nil)
	if err != nil {
		t.Fatal(err)
	}
	const workers, perWorker = 8, 5000
	results := make([][]record.Timestamp, workers)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var updates sync.WaitGroup
	updates.Add(1)
	go func() { // a peer feeding slightly-ahead timestamps
		defer updates.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			now := uint64(time.Now().UnixMilli())
			if err := c.Update(ts(now+uint64(i%3), uint32(i%5), "peer")); err != nil {
				t.Error(err)
				return
			}
			if i > 100_000 {
				return
			}
		}
	}()
	for g := 0; g < workers; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			out := make([]record.Timestamp, perWorker)
			for i := range out {
				out[i] = c.Now()
			}
			results[g] = out
		}(g)
	}
	wg.Wait()
	close(stop)
	updates.Wait()
	var all []record.Timestamp
	for g, out := range results {
		for i := 1; i < len(out); i++ {
			if out[i-1].Compare(out[i]) >= 0 {
				t.Fatalf("worker %d: %v then %v is not increasing", g, out[i-1], out[i])
			}
		}
		all = append(all, out...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Compare(all[j]) < 0 })
	for i := 1; i < len(all); i++ {
		if all[i-1] == all[i] {
			t.Fatalf("duplicate timestamp %v", all[i])
		}
	}
}

func TestNew_nodeIDs(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"a:b", ":", "\xff", strings.Repeat("x", MaxNodeIDBytes+1)} {
		if _, err := New(bad, nil); err == nil || !strings.HasPrefix(err.Error(), "hlc: ") {
			t.Errorf("New(%q) error = %v, want an hlc error", bad, err)
		}
	}
	for _, good := range []string{"topgun-server-node", "ключ", "a b", strings.Repeat("x", MaxNodeIDBytes)} {
		c, err := New(good, nil)
		if err != nil {
			t.Errorf("New(%q): %v", good, err)
			continue
		}
		if c.NodeID() != good || c.Now().NodeID != good {
			t.Errorf("node id %q not used", good)
		}
	}
	c, err := New("", nil)
	if err != nil || ValidateNodeID(c.NodeID()) != nil {
		t.Fatalf("New(\"\") = %v, %v", c, err)
	}
}

func TestDefaultNodeID(t *testing.T) {
	t.Parallel()
	a, b := DefaultNodeID(), DefaultNodeID()
	if err := ValidateNodeID(a); err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatalf("two default node ids are equal: %q", a)
	}
	if len(a) > 48+9 {
		t.Fatalf("default node id %q is too long", a)
	}
}

func TestNodeIDFromEnv(t *testing.T) {
	t.Parallel()
	env := func(m map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	if id, err := NodeIDFromEnv(env(map[string]string{EnvNodeID: "node-7"})); err != nil || id != "node-7" {
		t.Fatalf("set: %q, %v", id, err)
	}
	if id, err := NodeIDFromEnv(env(nil)); err != nil || ValidateNodeID(id) != nil {
		t.Fatalf("unset: %q, %v", id, err)
	}
	if id, err := NodeIDFromEnv(env(map[string]string{EnvNodeID: ""})); err != nil || id == "" {
		t.Fatalf("empty: %q, %v", id, err)
	}
	_, err := NodeIDFromEnv(env(map[string]string{EnvNodeID: "a:b"}))
	if err == nil || !strings.Contains(err.Error(), EnvNodeID) {
		t.Fatalf("invalid: %v", err)
	}
}

func TestOptions_Validate(t *testing.T) {
	t.Parallel()
	if err := DefaultOptions().Validate(); err != nil {
		t.Fatal(err)
	}
	if err := (&Options{}).Validate(); err != nil {
		t.Fatal(err)
	}
	for _, d := range []time.Duration{-time.Second, time.Microsecond} {
		if _, err := New("n", &Options{MaxDrift: d}); err == nil || !strings.HasPrefix(err.Error(), "hlc: ") {
			t.Errorf("MaxDrift %s: error = %v", d, err)
		}
	}
}
