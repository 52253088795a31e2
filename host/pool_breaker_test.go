package host

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
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
