package abitest

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"
)

// stopGrace is how long Run waits for a running case to stop after ctx is
// done before it gives up on it.
const stopGrace = 5 * time.Second

// Run runs the cases whose names match filter (nil: all), in the order of
// Cases, outside go test: the plugin CLI uses it. For each case it writes one
// line to w:
//
//	PASS name (dur)
//	FAIL name (dur)
//	    message
//	SKIP name: why
//
// A failed case lists its log and error messages, indented. A case that
// panics fails with the panic value and stack; the other cases still run.
// Cases see ctx (through a Context method on their TB), so cancelling it
// makes backend calls return promptly; the cases not yet started are then
// reported as skipped. A case that has not stopped stopGrace after ctx is
// done is reported as failed and left running.
func Run(ctx context.Context, w io.Writer, h Harness, filter func(Case) bool) (passed, failed, skipped int) {
	if h.Open == nil {
		fmt.Fprintln(w, "FAIL harness (0s)\n    abitest: Harness.Open is nil; set it to a function that opens a fresh, empty backend")
		return 0, 1, 0
	}
	for _, c := range Cases() {
		if filter != nil && !filter(c) {
			continue
		}
		if err := ctx.Err(); err != nil {
			fmt.Fprintf(w, "SKIP %s: not run: %v\n", c.Name, err)
			skipped++
			continue
		}
		r := runCase(ctx, c, h)
		switch {
		case r.failed:
			failed++
			fmt.Fprintf(w, "FAIL %s (%s)\n", c.Name, fmtDuration(r.dur))
			for _, m := range r.msgs {
				fmt.Fprintln(w, indent(m, "    "))
			}
		case r.skipped:
			skipped++
			fmt.Fprintf(w, "SKIP %s: %s\n", c.Name, firstLine(r.skipMsg))
		default:
			passed++
			fmt.Fprintf(w, "PASS %s (%s)\n", c.Name, fmtDuration(r.dur))
		}
	}
	return passed, failed, skipped
}

type caseResult struct {
	failed, skipped bool
	skipMsg         string
	msgs            []string
	dur             time.Duration
}

func runCase(ctx context.Context, c Case, h Harness) caseResult {
	t := &runT{name: c.Name, ctx: ctx}
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if r := recover(); r != nil {
				t.fail(fmt.Sprintf("panic: %v\n%s", r, debug.Stack()))
			}
		}()
		defer t.runCleanups()
		c.Run(t, h)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		select {
		case <-done:
		case <-time.After(stopGrace):
			t.fail(fmt.Sprintf("abitest: the case did not stop within %v after the run was interrupted (%v); it was left running", stopGrace, ctx.Err()))
		}
	}
	dur := time.Since(start)
	t.mu.Lock()
	defer t.mu.Unlock()
	return caseResult{failed: t.failed, skipped: t.skipped, skipMsg: t.skipMsg, msgs: append([]string(nil), t.msgs...), dur: dur}
}

// runT is the TB of Run. Its Context method gives cases the run's context.
type runT struct {
	name string
	ctx  context.Context

	mu       sync.Mutex
	failed   bool
	skipped  bool
	skipMsg  string
	msgs     []string
	cleanups []func()
}

var _ TB = (*runT)(nil)

func (t *runT) Helper()                  {}
func (t *runT) Name() string             { return t.name }
func (t *runT) Context() context.Context { return t.ctx }

func (t *runT) Logf(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.msgs = append(t.msgs, fmt.Sprintf(format, args...))
}

func (t *runT) fail(msg string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failed = true
	t.msgs = append(t.msgs, msg)
}

func (t *runT) Errorf(format string, args ...any) { t.fail(fmt.Sprintf(format, args...)) }

func (t *runT) Fatalf(format string, args ...any) {
	t.fail(fmt.Sprintf(format, args...))
	runtime.Goexit()
}

func (t *runT) FailNow() {
	t.mu.Lock()
	t.failed = true
	t.mu.Unlock()
	runtime.Goexit()
}

func (t *runT) Skipf(format string, args ...any) {
	t.mu.Lock()
	t.skipped = true
	t.skipMsg = fmt.Sprintf(format, args...)
	t.mu.Unlock()
	runtime.Goexit()
}

func (t *runT) Failed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed
}

func (t *runT) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}

// runCleanups calls the cleanups, last registered first, each in its own
// goroutine so that one that panics or calls Fatalf does not stop the rest.
func (t *runT) runCleanups() {
	for {
		t.mu.Lock()
		n := len(t.cleanups)
		if n == 0 {
			t.mu.Unlock()
			return
		}
		f := t.cleanups[n-1]
		t.cleanups = t.cleanups[:n-1]
		t.mu.Unlock()
		done := make(chan struct{})
		go func() {
			defer close(done)
			defer func() {
				if r := recover(); r != nil {
					t.fail(fmt.Sprintf("panic in cleanup: %v\n%s", r, debug.Stack()))
				}
			}()
			f()
		}()
		<-done
	}
}

func fmtDuration(d time.Duration) string {
	if d < time.Millisecond {
		return d.Round(time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+prefix)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
