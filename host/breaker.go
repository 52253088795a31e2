package host

import (
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/abi"
)

// Circuit breaker defaults (Options.Breaker*).
const (
	// DefaultBreakerFailures failures within DefaultBreakerWindow open the
	// breaker.
	DefaultBreakerFailures = 5
	DefaultBreakerWindow   = 30 * time.Second
	// DefaultBreakerBackoff is the wait before the first retry of an open
	// breaker; it doubles after each failed retry up to
	// DefaultBreakerMaxBackoff.
	DefaultBreakerBackoff    = time.Second
	DefaultBreakerMaxBackoff = time.Minute
)

type breakerState int

const (
	breakerClosed breakerState = iota
	breakerOpen
	breakerHalfOpen
)

func (s breakerState) String() string {
	switch s {
	case breakerOpen:
		return "open"
	case breakerHalfOpen:
		return "half-open"
	}
	return "closed"
}

// outcome is what a call that the breaker let through came to.
type outcome int

const (
	// outcomeOK: the instance answered (an error code from the plugin
	// counts: the instance is healthy).
	outcomeOK outcome = iota
	// outcomeFailed: the instance was poisoned or could not start.
	outcomeFailed
	// outcomeNeutral: the call never reached an instance (the caller's
	// context ended while it waited, the backend was closed).
	outcomeNeutral
)

// breaker counts failures of a plugin's instances (traps, deadlines, exits,
// malformed results, instances that cannot start). Failures times within
// window open it: calls then fail at once with abi.CodeUnavailable until a
// retry is due; the first call after that is let through as the retry
// (half-open) while the others still fail fast. A retry that reaches a
// working instance closes the breaker; one that fails opens it again with
// the backoff doubled, up to maxBackoff.
type breaker struct {
	failures   int
	window     time.Duration
	backoff    time.Duration
	maxBackoff time.Duration
	now        func() time.Time
	log        hclog.Logger
	prefix     string

	mu      sync.Mutex
	state   breakerState
	recent  []time.Time // failure times within window, while closed
	retryAt time.Time
	delay   time.Duration
	probing bool
	lastErr string

	opened, halfOpened, reclosed, rejected int64
}

func newBreaker(p *plugin) *breaker {
	return &breaker{
		failures:   p.opts.BreakerFailures,
		window:     p.opts.BreakerWindow,
		backoff:    p.opts.BreakerBackoff,
		maxBackoff: p.opts.BreakerMaxBackoff,
		now:        time.Now,
		log:        p.log,
		prefix:     p.prefix,
	}
}

// allow decides whether a call may run. probe is true when the call is the
// retry of an open breaker; the caller must pass it back to done.
func (br *breaker) allow(call abi.WasmCall) (probe bool, err error) {
	if br.failures < 0 {
		return false, nil
	}
	br.mu.Lock()
	defer br.mu.Unlock()
	switch br.state {
	case breakerClosed:
		return false, nil
	case breakerOpen:
		now := br.now()
		if now.Before(br.retryAt) {
			br.rejected++
			return false, br.openError(br.prefix+": "+call.String(), now)
		}
		br.state = breakerHalfOpen
		br.halfOpened++
		br.log.Info("plugin circuit breaker half-open: retrying", "plugin", br.prefix, "after", br.delay)
	}
	if br.probing {
		br.rejected++
		return false, abi.Errorf(abi.CodeUnavailable, "%s: %s: the circuit breaker is open after repeated plugin failures (last: %s) and a retry is in progress; try again shortly",
			br.prefix, call, br.lastErr)
	}
	br.probing = true
	return true, nil
}

// admitStart decides whether a call that is not the retry may start a
// fresh instance: not while the breaker is open or a retry is in progress
// (the call was let through while the breaker was closed, then waited for
// an instance). A refused call counts as rejected.
func (br *breaker) admitStart(call abi.WasmCall) error {
	if br.failures < 0 {
		return nil
	}
	br.mu.Lock()
	defer br.mu.Unlock()
	if br.state == breakerClosed {
		return nil
	}
	br.rejected++
	if now := br.now(); br.state == breakerOpen && now.Before(br.retryAt) {
		return br.openError(br.prefix+": "+call.String(), now)
	}
	return abi.Errorf(abi.CodeUnavailable, "%s: %s: the circuit breaker is open after repeated plugin failures (last: %s) and a retry is due or in progress; try again shortly",
		br.prefix, call, br.lastErr)
}

func (br *breaker) openError(prefix string, now time.Time) error {
	return abi.Errorf(abi.CodeUnavailable, "%s: the circuit breaker is open after repeated plugin failures (last: %s); calls fail until the next retry in %s (at %s)",
		prefix, br.lastErr, br.retryAt.Sub(now).Round(time.Millisecond), br.retryAt.UTC().Format(time.RFC3339))
}

// done records the outcome of a call allow let through.
func (br *breaker) done(probe bool, o outcome, cause error) {
	if br.failures < 0 {
		return
	}
	br.mu.Lock()
	defer br.mu.Unlock()
	if probe {
		br.probing = false
	}
	switch o {
	case outcomeNeutral:
		return
	case outcomeOK:
		if probe && br.state == breakerHalfOpen {
			br.state = breakerClosed
			br.recent = br.recent[:0]
			br.reclosed++
			br.log.Info("plugin circuit breaker closed: the retry succeeded", "plugin", br.prefix)
			br.delay = 0
		}
		return
	}
	now := br.now()
	msg := "unknown"
	if cause != nil {
		msg = cause.Error()
		if len(msg) > 300 {
			msg = msg[:300] + "..."
		}
	}
	br.lastErr = msg
	switch {
	case probe && br.state == breakerHalfOpen:
		br.delay *= 2
		if br.delay > br.maxBackoff {
			br.delay = br.maxBackoff
		}
		br.openLocked(now, "the retry failed")
	case br.state == breakerClosed:
		cut := now.Add(-br.window)
		keep := br.recent[:0]
		for _, t := range br.recent {
			if t.After(cut) {
				keep = append(keep, t)
			}
		}
		br.recent = append(keep, now)
		if len(br.recent) >= br.failures {
			br.delay = br.backoff
			br.recent = br.recent[:0]
			br.openLocked(now, fmt.Sprintf("%d failures within %s", br.failures, br.window))
		}
	}
}

func (br *breaker) openLocked(now time.Time, why string) {
	br.state = breakerOpen
	br.retryAt = now.Add(br.delay)
	br.opened++
	br.log.Error("plugin circuit breaker open: calls fail until the retry", "plugin", br.prefix, "reason", why,
		"retry_in", br.delay, "last_error", br.lastErr)
}

// healthy returns nil when calls may run: the breaker is closed, or a retry
// is due and none is in progress (the next call is that retry).
func (br *breaker) healthy() error {
	br.mu.Lock()
	defer br.mu.Unlock()
	now := br.now()
	switch {
	case br.state == breakerOpen && now.Before(br.retryAt):
		return br.openError(br.prefix, now)
	case br.state == breakerHalfOpen && br.probing:
		return abi.Errorf(abi.CodeUnavailable, "%s: the circuit breaker is open after repeated plugin failures (last: %s) and a retry is in progress",
			br.prefix, br.lastErr)
	}
	return nil
}

// BreakerStats are the counters of the circuit breaker.
type BreakerStats struct {
	// State is "closed", "open" or "half-open".
	State string
	// Opened counts openings, re-openings after a failed retry included.
	Opened int64
	// HalfOpened counts retries started; Closed counts retries that
	// succeeded and closed the breaker.
	HalfOpened, Closed int64
	// Rejected counts calls that failed fast because the breaker was open.
	Rejected int64
	// RetryIn is the time until the next retry while open.
	RetryIn time.Duration
}

func (br *breaker) stats() BreakerStats {
	br.mu.Lock()
	defer br.mu.Unlock()
	s := BreakerStats{State: br.state.String(), Opened: br.opened, HalfOpened: br.halfOpened, Closed: br.reclosed, Rejected: br.rejected}
	if br.state == breakerOpen {
		if d := br.retryAt.Sub(br.now()); d > 0 {
			s.RetryIn = d
		}
	}
	return s
}
