package host

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/topgun-go/topgun/abi"
)

// waitFor polls cond (bounded in count and time) and fails the test when it
// never holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 20000; i++ {
		if cond() {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestBreaker_openStopsWaitingCallsFromStartingInstances checks the promise
// of the circuit breaker (doc.go, "Circuit breaker"): once it is open, calls
// fail at once with unavailable and only the one retry after the backoff
// runs on a fresh instance. Calls that were admitted while the breaker was
// closed but are still waiting for an instance when it opens must not each
// start a fresh instance of a plugin that keeps failing.
func TestBreaker_openStopsWaitingCallsFromStartingInstances(t *testing.T) {
	t.Parallel()
	o := testOptions(t)
	o.DataDir = t.TempDir()
	o.BreakerFailures = 1
	o.BreakerBackoff = time.Hour
	o.BreakerMaxBackoff = time.Hour
	b := mustLoad(t, "testdata/wat/trap.wasm", o)
	ctx := context.Background()

	// Hold the only instance, so the calls below wait for it.
	in, _, err := b.pool.acquire(ctx, abi.CallGet, false)
	if err != nil {
		t.Fatal(err)
	}
	const n = 4
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- b.Apply(ctx, &abi.Batch{Now: 1})
		}()
	}
	waitFor(t, "the calls to wait for an instance", func() bool { return b.pool.waiting.Load() == n })

	// The data directory goes away: fresh instances cannot start. The held
	// instance fails (as a trap would) and opens the breaker.
	if err := os.RemoveAll(o.DataDir); err != nil {
		t.Fatal(err)
	}
	started := b.Stats().InstancesStarted
	err = in.RoundTrip(ctx, abi.CallGet, evilGetRequest(t), func(abi.Code, []byte) error { return nil })
	if !errors.Is(err, abi.ErrInternal) || !in.poisoned {
		t.Fatalf("get of map evil = %v, want the trap", err)
	}
	b.pool.calls.Add(1)
	b.finish(in, false, err)
	if st := b.Stats().Breaker; st.State != "open" {
		t.Fatalf("breaker %+v, want open", st)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, abi.ErrUnavailable) || !strings.Contains(err.Error(), "circuit breaker is open") {
			t.Errorf("call waiting when the breaker opened = %v, want unavailable (the breaker is open)", err)
		}
	}
	st := b.Stats()
	if tried := st.InstancesStarted - started; tried != 0 {
		t.Errorf("%d fresh instances tried while the breaker was open and no retry was due, want 0", tried)
	}
	if st.Breaker.Rejected != n {
		t.Errorf("breaker %+v: want the %d waiting calls counted as rejected", st.Breaker, n)
	}
}

// evilGetRequest is the request of a get of key "k" in map "evil", on which the
// testdata/wat/*.wasm adversaries misbehave.
func evilGetRequest(t *testing.T) []byte {
	t.Helper()
	var req []byte
	rt := roundTripFunc(func(_ context.Context, _ abi.WasmCall, r []byte, _ func(abi.Code, []byte) error) error {
		req = append([]byte(nil), r...)
		return nil
	})
	if _, err := abi.NewCaller(rt, "test").Get(context.Background(), "evil", false, []string{"k"}); err != nil {
		t.Fatal(err)
	}
	return req
}

type roundTripFunc func(context.Context, abi.WasmCall, []byte, func(abi.Code, []byte) error) error

func (f roundTripFunc) RoundTrip(ctx context.Context, call abi.WasmCall, req []byte, handle func(abi.Code, []byte) error) error {
	return f(ctx, call, req, handle)
}

// TestStats_failedStartsAreNotInstancesStarted checks Stats against what
// happened: InstancesStarted counts instances started (doc.go, Stats), so
// fresh instances that cannot start do not count, and the started ones
// less the discarded ones are the live ones.
func TestStats_failedStartsAreNotInstancesStarted(t *testing.T) {
	t.Parallel()
	o := testOptions(t)
	o.DataDir = t.TempDir()
	o.BreakerFailures = -1
	b := mustLoad(t, "testdata/wat/trap.wasm", o)
	ctx := context.Background()
	if _, err := b.Get(ctx, "evil", false, []string{"k"}); !errors.Is(err, abi.ErrInternal) {
		t.Fatalf("Get(evil) = %v, want the trap", err)
	}
	if err := os.RemoveAll(o.DataDir); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := b.Apply(ctx, &abi.Batch{Now: 1}); err == nil || !strings.Contains(err.Error(), "cannot start a fresh instance") {
			t.Fatalf("Apply without a data directory = %v, want a failed start", err)
		}
	}
	st := b.Stats()
	if st.InstancesStarted != 1 || st.InstancesDiscarded != 1 || st.Live != 0 {
		t.Errorf("stats %+v, want 1 instance started, 1 discarded, none live (3 fresh instances failed to start)", st)
	}
	if st.InstancesStarted-st.InstancesDiscarded != int64(st.Live) {
		t.Errorf("stats %+v: started - discarded != live", st)
	}
}

// TestBreaker_retryStartsAFreshInstance checks the retry's promise (doc.go,
// "Circuit breaker"): after the backoff the retry runs on a fresh instance,
// even when an instance that survived the failures is idle. Fresh
// instances may be what fails: here the data directory is gone, so none
// can start, and the surviving instance answering the retry would close
// the breaker on a plugin that cannot start one.
func TestBreaker_retryStartsAFreshInstance(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		removeDir bool
	}{{"FreshStarts", false}, {"FreshCannotStart", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := testOptions(t)
			o.DataDir = t.TempDir()
			o.PoolSize = 2
			o.BreakerFailures = 1
			o.BreakerBackoff = time.Second
			o.BreakerMaxBackoff = time.Minute
			b := mustLoad(t, "testdata/wat/evil.wasm", o) // multi_instance
			clock := &fakeClock{now: time.Unix(1_800_000_000, 0)}
			b.breaker.now = clock.Now
			ctx := context.Background()

			// The first instance is held while a second one traps: the
			// breaker opens with the first one left, idle once released.
			survivor, _, err := b.pool.acquire(ctx, abi.CallGet, false)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := b.Get(ctx, "evil", false, []string{"t"}); !errors.Is(err, abi.ErrInternal) {
				t.Fatalf("get of a trapping key = %v, want the trap", err)
			}
			b.pool.release(survivor)
			st := b.Stats()
			if st.Breaker.State != "open" || st.Live != 1 {
				t.Fatalf("stats %+v, want the breaker open and the survivor live", st)
			}
			if tc.removeDir {
				if err := os.RemoveAll(o.DataDir); err != nil {
					t.Fatal(err)
				}
			}
			clock.Add(time.Second)
			err = b.Apply(ctx, &abi.Batch{Now: 1}) // the retry
			after := b.Stats()
			if tc.removeDir {
				if err == nil || !strings.Contains(err.Error(), "cannot start a fresh instance") {
					t.Errorf("retry = %v, want a fresh instance that cannot start", err)
				}
				if after.Breaker.State != "open" || after.Breaker.Opened != 2 || after.Breaker.RetryIn != 2*time.Second {
					t.Errorf("breaker %+v, want it open again, the wait doubled", after.Breaker)
				}
				return
			}
			if err != nil {
				t.Fatalf("retry = %v", err)
			}
			if after.InstancesStarted != st.InstancesStarted+1 || after.Live != 2 || after.Breaker.State != "closed" {
				t.Errorf("stats %+v after the retry (before: %+v), want it run on a fresh instance and the breaker closed", after, st)
			}
		})
	}
}

// TestBreaker_failedStartsOpenItBeforeTheirSlotIsFreed: with
// BreakerFailures n, n fresh instances that fail to start open the breaker
// (doc.go, "Circuit breaker"), and a call waiting for the slot the nth
// failure frees must find it open, not start an (n+1)th instance. The test
// holds each failed start after its slot is freed until the next waiting
// call has either started an instance or been refused, which otherwise
// happens only by timing.
func TestBreaker_failedStartsOpenItBeforeTheirSlotIsFreed(t *testing.T) {
	t.Parallel()
	const n = 3
	o := testOptions(t)
	o.DataDir = t.TempDir()
	o.BreakerFailures = n
	o.BreakerBackoff = time.Hour
	o.BreakerMaxBackoff = time.Hour
	b := mustLoad(t, "testdata/wat/trap.wasm", o) // one instance
	b.breaker.now = (&fakeClock{now: time.Unix(1_800_000_000, 0)}).Now
	ctx := context.Background()
	attempts := func() int {
		b.pool.mu.Lock()
		defer b.pool.mu.Unlock()
		return b.pool.nextID - 1 // the first instance is id 0
	}

	// Hold the only instance, so the calls below wait for its slot.
	in, _, err := b.pool.acquire(ctx, abi.CallGet, false)
	if err != nil {
		t.Fatal(err)
	}
	const calls = n + 1
	var failed atomic.Int32
	b.pool.startFailed = func() { // on a call's goroutine: no t.Fatal
		k := int(failed.Add(1))
		for i := 0; k < calls && attempts()+int(b.Stats().Breaker.Rejected) <= k; i++ {
			if i == 20000 {
				t.Errorf("the next waiting call neither started an instance nor was refused after failed start %d", k)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	errs := make(chan error, calls)
	var wg sync.WaitGroup
	for i := 0; i < calls; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- b.Apply(ctx, &abi.Batch{Now: 1})
		}()
	}
	waitFor(t, "the calls to wait for an instance", func() bool { return b.pool.waiting.Load() == calls })

	// The data directory goes away, so fresh instances cannot start, and
	// the held instance is discarded (not a failure): each waiting call in
	// turn gets the freed slot.
	if err := os.RemoveAll(o.DataDir); err != nil {
		t.Fatal(err)
	}
	in.poisoned = true
	b.pool.release(in)
	wg.Wait()
	close(errs)
	var startErrs, fastErrs int
	for err := range errs {
		switch {
		case errors.Is(err, abi.ErrUnavailable) && strings.Contains(err.Error(), "circuit breaker is open"):
			fastErrs++ // (its message quotes the last failed start)
		case err != nil && strings.Contains(err.Error(), "cannot start a fresh instance"):
			startErrs++
		default:
			t.Errorf("call = %v, want a failed start or the breaker open", err)
		}
	}
	st := b.Stats()
	if got := attempts(); got != n || startErrs != n || fastErrs != 1 {
		t.Errorf("%d fresh instances tried, %d calls failed to start one, %d failed fast; want %d, %d and 1 (the breaker open after %d failures)",
			got, startErrs, fastErrs, n, n, n)
	}
	if st.Breaker.State != "open" || st.Breaker.Opened != 1 || st.Breaker.Rejected != 1 {
		t.Errorf("breaker %+v, want it opened once and the last call rejected", st.Breaker)
	}
}
