package host

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/internal/testbin"
)

// loadStubborn loads the stubborn test plugin (its close takes 10s)
// sandboxed, with a pool of size instances, all of them started.
func loadStubborn(t *testing.T, size int, timeout time.Duration) *Backend {
	t.Helper()
	o := testOptions(t)
	o.PoolSize = size
	o.CallTimeout = timeout
	o.BreakerFailures = -1
	b := mustLoad(t, buildTestPlugin(t, "stubborn"), o)
	ctx := context.Background()
	var held []*instance
	for i := 0; i < size; i++ {
		in, _, err := b.pool.acquire(ctx, abi.CallGet, false)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, in)
	}
	for _, in := range held {
		b.pool.release(in)
	}
	if st := b.Stats(); st.Live != size {
		t.Fatalf("stats %+v, want %d live instances", st, size)
	}
	return b
}

// TestBackend_Close_bounded checks that Close finishes within about one
// call timeout however many instances the plugin has and however long
// their close takes. A slow sandboxed close is stopped at the
// call timeout, but Close used to close the instances one after another
// and so took PoolSize call timeouts.
func TestBackend_Close_bounded(t *testing.T) {
	const size, timeout = 6, time.Second
	b := loadStubborn(t, size, timeout)
	start := time.Now()
	err := b.Close()
	took := time.Since(start)
	t.Logf("Close took %s: %v", took, err)
	// One call timeout, with room for a loaded machine; the instances one
	// after another take size call timeouts.
	if took > size*timeout/2 {
		t.Errorf("Close took %s with %d instances and a call timeout of %s, want about one call timeout", took, size, timeout)
	}
	if !errors.Is(err, abi.ErrDeadlineExceeded) {
		t.Errorf("Close = %v, want a deadline error (the plugin's close takes 10s)", err)
	}
	if _, err := b.Get(context.Background(), "m", false, []string{"k"}); !errors.Is(err, abi.ErrUnavailable) {
		t.Errorf("Get after Close = %v, want unavailable", err)
	}
	if err := b.Healthy(); !errors.Is(err, abi.ErrUnavailable) {
		t.Errorf("Healthy after Close = %v, want unavailable", err)
	}
	if err2 := b.Close(); err2 != err {
		t.Errorf("second Close = %v, want the first one's %v", err2, err)
	}
	// The abandoned closes end at their own deadline.
	waitFor(t, "the abandoned instances to be discarded", func() bool { return b.Stats().Live == 0 })
}

// TestBackend_Close_callsInFlight closes a backend while calls run on every
// instance and more keep coming: Close is bounded, every call ends with a
// clean error or none, and calls after Close fail with unavailable. Run it
// with -race.
func TestBackend_Close_callsInFlight(t *testing.T) {
	const size, timeout = 2, time.Second
	b := loadStubborn(t, size, timeout)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for i := 0; i < size; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			batch := &abi.Batch{Now: 1}
			batch.Put("loop", "k", false, []byte("v"), 0)
			errs <- b.Apply(ctx, batch)
		}()
	}
	waitFor(t, "the spinning calls to start", func() bool { return b.Stats().Calls >= size })
	stop := make(chan struct{})
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				select {
				case <-stop:
					return
				default:
				}
				_, err := b.Get(ctx, "m", false, []string{"k"})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	start := time.Now()
	cerr := b.Close()
	took := time.Since(start)
	close(stop)
	wg.Wait()
	close(errs)
	t.Logf("Close took %s: %v", took, cerr)
	if took > 3*timeout {
		t.Errorf("Close took %s, want about one call timeout (%s)", took, timeout)
	}
	for err := range errs {
		if !errors.Is(err, abi.ErrUnavailable) && !errors.Is(err, abi.ErrDeadlineExceeded) && !errors.Is(err, abi.ErrInternal) {
			t.Errorf("a call during Close = %v, want unavailable, a deadline or a discarded instance", err)
		}
	}
	if _, err := b.Get(ctx, "m", false, []string{"k"}); !errors.Is(err, abi.ErrUnavailable) {
		t.Errorf("Get after Close = %v, want unavailable", err)
	}
	waitFor(t, "the instances to be released", func() bool { return b.Stats().Live == 0 })
}

// TestBackend_Close_trustedCallInFlight closes a trusted plugin during a
// call that takes longer than the call timeout (trusted code is not
// interrupted): Close returns at the call timeout, the call runs to
// completion on its instance (the runtime is closed after it, not under
// it: that would race with the guest's host calls), and calls after Close
// fail cleanly.
func TestBackend_Close_trustedCallInFlight(t *testing.T) {
	o := testOptions(t)
	o.Trust = TrustTrusted
	o.CallTimeout = 200 * time.Millisecond
	b := mustLoad(t, buildTestPlugin(t, "stubborn"), o)
	ctx := context.Background()
	done := make(chan error, 1)
	go func() {
		batch := &abi.Batch{Now: 1}
		batch.Put("slow", "k", false, []byte("v"), 0) // spins for 3s
		done <- b.Apply(ctx, batch)
	}()
	waitFor(t, "the slow call to start", func() bool { return b.Stats().Calls >= 1 })
	cerr := b.Close()
	t.Logf("Close: %v", cerr)
	if !errors.Is(cerr, abi.ErrDeadlineExceeded) {
		t.Errorf("Close = %v, want a deadline error naming the abandoned call", cerr)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("the call in flight = %v, want it run to completion", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the call in flight did not return")
	}
	if _, err := b.Get(ctx, "m", false, []string{"k"}); !errors.Is(err, abi.ErrUnavailable) {
		t.Errorf("Get after Close = %v, want unavailable", err)
	}
	waitFor(t, "the abandoned instance to be discarded", func() bool { return b.Stats().Live == 0 })
}

// TestBackend_Close_lastCloseEndsAsTheWaitDoes: when the plugin's own
// close ends just as Close's wait does, no instance is left busy, and
// Close must say what happened (the close's own error), not that 0
// instances were abandoned. The test holds Close at the end of its wait
// until the close has ended, which otherwise happens only by timing.
func TestBackend_Close_lastCloseEndsAsTheWaitDoes(t *testing.T) {
	b := loadStubborn(t, 1, time.Second) // its close is stopped at 1s
	ctx := context.Background()
	b.pool.waitEnded = func() {
		waitFor(t, "the plugin's close to end", func() bool { return b.Stats().Live == 0 })
	}
	closed := false
	// Half the plugin's close: long enough for the drain to have taken the
	// idle instance under any load, short enough to end first.
	err := b.pool.close(ctx, 500*time.Millisecond, func() { closed = true; b.p.close(ctx) })
	t.Logf("close: %v", err)
	if err == nil || strings.Contains(err.Error(), "still busy") {
		t.Errorf("close = %v, want the plugin's close's error and no instance busy", err)
	}
	if !errors.Is(err, abi.ErrDeadlineExceeded) || !strings.Contains(err.Error(), "plugin stubborn.wasm: close: did not finish within 1s") {
		t.Errorf("close = %v, want the deadline of the plugin's close", err)
	}
	if !closed {
		t.Error("the runtime was not closed, with no instance left")
	}
}

// TestBackend_Close_callEndsAsTheWaitDoes: an instance whose call returns
// just after Close's wait ended is discarded without the plugin's close;
// Close says so, and does not count it as busy.
func TestBackend_Close_callEndsAsTheWaitDoes(t *testing.T) {
	b := loadStubborn(t, 1, time.Second)
	ctx := context.Background()
	in, _, err := b.pool.acquire(ctx, abi.CallGet, false) // a call in flight
	if err != nil {
		t.Fatal(err)
	}
	b.pool.waitEnded = func() { b.pool.release(in) }
	err = b.pool.close(ctx, time.Millisecond, func() { b.p.close(ctx) })
	t.Logf("close: %v", err)
	if !errors.Is(err, abi.ErrDeadlineExceeded) || strings.Contains(err.Error(), "still busy") ||
		!strings.Contains(err.Error(), "1 instance(s) came back from a call after 1ms") {
		t.Errorf("close = %v, want the instance discarded without the plugin's close, none busy", err)
	}
	if st := b.Stats(); st.Live != 0 {
		t.Errorf("stats %+v, want no instance live", st)
	}
}

// TestBackend_Close_keepsThePluginsCloseErrors: when Close gives up with an
// instance left (busy, or back from its call too late for the plugin's
// close), its error says so with its deadline code, and still carries the
// errors the plugin's closes of the other instances returned. The test holds
// Close at the end of its wait until the other instance's close (stopped at
// the call timeout) has ended.
func TestBackend_Close_keepsThePluginsCloseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		back       bool // the held instance comes back as the wait ends
	}{
		{"StillBusy", "1 instance(s) still busy after 1s", false},
		{"BackTooLate", "1 instance(s) came back from a call after 1s", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := loadStubborn(t, 2, time.Second)
			ctx := context.Background()
			in, _, err := b.pool.acquire(ctx, abi.CallGet, false) // a call in flight
			if err != nil {
				t.Fatal(err)
			}
			b.pool.waitEnded = func() {
				waitFor(t, "the other instance's close to end", func() bool { return b.Stats().Live == 1 })
				if tc.back {
					b.pool.release(in)
				}
			}
			var closed atomic.Bool
			err = b.pool.close(ctx, time.Second, func() { closed.Store(true); b.p.close(ctx) })
			t.Logf("close: %v", err)
			if abi.CodeOf(err) != abi.CodeDeadlineExceeded || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("close = %v (code %s), want a deadline error saying %q", err, abi.CodeOf(err), tc.want)
			}
			if err == nil || !strings.Contains(err.Error(), "plugin stubborn.wasm: close: did not finish within 1s") {
				t.Errorf("close = %v, want it to carry the error of the other instance's close", err)
			}
			if !tc.back {
				b.pool.release(in) // the call returns: discarded, the last
			}
			waitFor(t, "the runtime to be closed", closed.Load)
		})
	}
}

// The error saying that Close gave up leads the plugin's close errors, so
// that abi.CodeOf (errors.As, which walks a joined error in order) finds its
// deadline code and not theirs.
func TestCloseErrors_joinAfterKeepsTheLeadingCode(t *testing.T) {
	var errs closeErrors
	errs.add(abi.Errorf(abi.CodeInternal, "close: trapped"))
	err := errs.joinAfter(abi.Errorf(abi.CodeDeadlineExceeded, "close: gave up"))
	if abi.CodeOf(err) != abi.CodeDeadlineExceeded || err.Error() != "close: gave up\nclose: trapped" {
		t.Errorf("joinAfter = %q (code %s), want the deadline first and both errors", err, abi.CodeOf(err))
	}
}

// TestBackend_Close_logsACloseEndingLate: a plugin's close still running
// when Close gives up can end, with an error of its own, after Close has
// returned; that error is logged then rather than lost.
func TestBackend_Close_logsACloseEndingLate(t *testing.T) {
	// Close's wait starts with its drain, so on a loaded machine it can
	// end before the drain has taken the idle instance, which is then
	// discarded without the plugin's close; such a try is made again with
	// a longer wait.
	for wait := time.Millisecond; ; wait *= 4 {
		if closeEndingLate(t, wait) {
			return
		}
		if wait > 10*time.Second {
			t.Fatalf("the drain never took the idle instance within Close's wait (last %s)", wait)
		}
	}
}

// closeEndingLate closes a backend whose plugin's close is held until
// Close has given up with wait, and checks that close's error is logged.
// It reports false when the wait ended before the plugin's close began.
func closeEndingLate(t *testing.T, wait time.Duration) bool {
	var logs testbin.LockedBuffer
	o := testOptions(t)
	o.Logger = hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Debug})
	o.CallTimeout = time.Minute
	o.BreakerFailures = -1
	o.Config = map[string]string{"close_spin": "1ms", "close_error": "flush failed"}
	b := mustLoad(t, buildTestPlugin(t, "stubborn"), o)
	ctx := context.Background()
	started, hold := make(chan struct{}), make(chan struct{})
	release := sync.OnceFunc(func() { close(hold) })
	defer release()
	b.pool.closeStarted = func() {
		close(started)
		<-hold
	}
	var closed atomic.Bool
	err := b.pool.close(ctx, wait, func() { closed.Store(true); b.p.close(ctx) })
	t.Logf("close after %s: %v", wait, err)
	if err != nil && strings.Contains(err.Error(), "1 instance(s) came back from a call after") {
		return false // the plugin's close never began
	}
	if err == nil || !strings.Contains(err.Error(), "1 instance(s) still busy") || strings.Contains(err.Error(), "flush failed") {
		t.Fatalf("close = %v, want the closing instance counted busy", err)
	}
	<-started
	release()
	waitFor(t, "the runtime to be closed", closed.Load)
	if out := logs.String(); !strings.Contains(out, "ended after Close had returned") || !strings.Contains(out, "flush failed") {
		t.Errorf("log = %q, want the late close's error", out)
	}
	return true
}
