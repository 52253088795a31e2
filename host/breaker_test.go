package host

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/topgun-go/topgun/abi"
)

// fakeClock is a clock a test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// TestBreaker_opensFailsFastAndRecovers drives the breaker of a plugin
// whose list_expired traps: 3 failures open it, calls then fail fast with
// unavailable and Healthy reports it, a failed retry doubles the backoff,
// and a retry that reaches a working instance closes it.
func TestBreaker_opensFailsFastAndRecovers(t *testing.T) {
	t.Parallel()
	o := testOptions(t)
	o.BreakerFailures = 3
	o.BreakerWindow = 10 * time.Second
	o.BreakerBackoff = time.Second
	o.BreakerMaxBackoff = 3 * time.Second
	b := mustLoad(t, "testdata/wat/hostile.wasm", o)
	clock := &fakeClock{now: time.Unix(1_800_000_000, 0)}
	b.breaker.now = clock.Now
	ctx := context.Background()
	trap := func() error { _, err := b.ListExpired(ctx, 1, 1); return err }
	ok := func() error { return b.Apply(ctx, &abi.Batch{Now: 1}) }

	// Two failures, then a window's worth of time: the count starts over.
	for i := 0; i < 2; i++ {
		if err := trap(); !errors.Is(err, abi.ErrInternal) {
			t.Fatalf("trap %d = %v, want internal", i, err)
		}
	}
	clock.Add(11 * time.Second)
	if err := trap(); !errors.Is(err, abi.ErrInternal) {
		t.Fatalf("trap = %v", err)
	}
	if st := b.Stats().Breaker; st.State != "closed" {
		t.Fatalf("breaker %+v after failures spread over more than the window, want closed", st)
	}
	// Two more within the window: 3 failures open it.
	for i := 0; i < 2; i++ {
		if err := trap(); !errors.Is(err, abi.ErrInternal) {
			t.Fatalf("trap = %v", err)
		}
	}
	st := b.Stats()
	if st.Breaker.State != "open" || st.Breaker.Opened != 1 || st.Failures != 5 {
		t.Fatalf("stats %+v, want the breaker open once after 5 failures", st)
	}
	started := st.InstancesStarted
	err := ok()
	if !errors.Is(err, abi.ErrUnavailable) {
		t.Fatalf("Apply with the breaker open = %v, want unavailable", err)
	}
	for _, w := range []string{"plugin hostile.wasm: apply:", "circuit breaker is open", "list_expired: trapped", "next retry in 1s"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("fast failure %q does not mention %q", err, w)
		}
	}
	if err := b.Healthy(); !errors.Is(err, abi.ErrUnavailable) {
		t.Errorf("Healthy with the breaker open = %v, want unavailable", err)
	}
	if st := b.Stats(); st.InstancesStarted != started || st.Breaker.Rejected != 1 {
		t.Errorf("stats %+v: a rejected call must not start an instance", st)
	}

	// The retry is due: Healthy lets it through; it fails and the backoff doubles.
	clock.Add(time.Second)
	if err := b.Healthy(); err != nil {
		t.Errorf("Healthy with a retry due = %v, want nil", err)
	}
	if err := trap(); !errors.Is(err, abi.ErrInternal) {
		t.Fatalf("retry = %v, want the trap", err)
	}
	if st := b.Stats().Breaker; st.State != "open" || st.Opened != 2 || st.HalfOpened != 1 || st.RetryIn != 2*time.Second {
		t.Fatalf("breaker %+v after a failed retry, want open again with a 2s backoff", st)
	}
	clock.Add(time.Second)
	if err := ok(); !errors.Is(err, abi.ErrUnavailable) {
		t.Fatalf("Apply 1s into a 2s backoff = %v, want unavailable", err)
	}
	// Backoff is capped: two more failed retries wait 3s each, not 4s, 8s.
	clock.Add(time.Second)
	if err := trap(); !errors.Is(err, abi.ErrInternal) {
		t.Fatal(err)
	}
	if st := b.Stats().Breaker; st.RetryIn != 3*time.Second {
		t.Fatalf("breaker %+v, want the backoff capped at 3s", st)
	}
	clock.Add(3 * time.Second)
	if err := ok(); err != nil {
		t.Fatalf("retry on a working op = %v, want success", err)
	}
	st = b.Stats()
	if st.Breaker.State != "closed" || st.Breaker.Closed != 1 || b.Healthy() != nil {
		t.Fatalf("stats %+v after a successful retry, want the breaker closed", st)
	}
	if err := ok(); err != nil {
		t.Fatal(err)
	}
	// Closed again: the count starts from zero, so one failure does not reopen it.
	if err := trap(); !errors.Is(err, abi.ErrInternal) {
		t.Fatal(err)
	}
	if err := ok(); err != nil {
		t.Fatalf("one failure after closing reopened the breaker: %v", err)
	}
}

// TestBreaker_oneRetryAtATime checks that while a retry runs, other calls
// fail fast instead of piling onto a plugin that may be crash-looping.
func TestBreaker_oneRetryAtATime(t *testing.T) {
	t.Parallel()
	o := testOptions(t)
	br := &breaker{failures: 1, window: time.Second, backoff: time.Second, maxBackoff: time.Second, log: o.Logger, prefix: "plugin x.wasm"}
	clock := &fakeClock{now: time.Unix(1_800_000_000, 0)}
	br.now = clock.Now
	if probe, err := br.allow(abi.CallGet); probe || err != nil {
		t.Fatalf("allow on a closed breaker = %v, %v", probe, err)
	}
	br.done(false, outcomeFailed, errors.New("boom"))
	clock.Add(time.Second)
	probe, err := br.allow(abi.CallGet)
	if !probe || err != nil {
		t.Fatalf("allow with a retry due = %v, %v; want the retry", probe, err)
	}
	if _, err := br.allow(abi.CallApply); !errors.Is(err, abi.ErrUnavailable) || !strings.Contains(err.Error(), "retry is in progress") {
		t.Errorf("allow during the retry = %v, want unavailable", err)
	}
	if err := br.healthy(); err == nil {
		t.Error("healthy during the retry = nil")
	}
	// A retry that never reached an instance (the caller gave up) leaves
	// the next call to retry.
	br.done(true, outcomeNeutral, nil)
	if probe, err := br.allow(abi.CallGet); !probe || err != nil {
		t.Fatalf("allow after a neutral retry = %v, %v; want another retry", probe, err)
	}
	br.done(true, outcomeOK, nil)
	if st := br.stats(); st.State != "closed" || st.Rejected != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestBreaker_disabled checks that a negative BreakerFailures never opens.
func TestBreaker_disabled(t *testing.T) {
	t.Parallel()
	o := testOptions(t)
	o.BreakerFailures = -1
	b := mustLoad(t, "testdata/wat/hostile.wasm", o)
	for i := 0; i < 8; i++ {
		if _, err := b.ListExpired(context.Background(), 1, 1); !errors.Is(err, abi.ErrInternal) {
			t.Fatalf("call %d = %v, want the trap every time", i, err)
		}
	}
	if st := b.Stats(); st.Breaker.State != "closed" || st.InstancesDiscarded != 8 {
		t.Errorf("stats %+v", st)
	}
}
