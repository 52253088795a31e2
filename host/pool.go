package host

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/topgun-go/topgun/abi"
)

// pool holds a plugin's instances: at most size live ones, idle ones in a
// channel. An acquired instance is used by one goroutine only. A poisoned
// instance is discarded on release and a fresh one is created on demand.
type pool struct {
	p     *plugin
	br    *breaker // nil: no breaker checks
	size  int
	idle  chan *instance
	freed chan struct{} // a slot was freed
	done  chan struct{} // closed by close
	// wake tells close that a slot was freed (close takes instances that
	// come back from idle itself). Only close reads it: a waiting call
	// that takes a signal of freed must not leave close waiting for one
	// that never comes.
	wake chan struct{}

	mu     sync.Mutex
	live   int
	nextID int
	closed bool
	// abandoned: close gave up waiting; instances still in use are
	// discarded when their call returns.
	abandoned bool
	// closing mirrors closed for the fast path of acquire.
	closing atomic.Bool
	// onClosed (the runtime's close) runs once no instance is in use
	// any more: closing the runtime under a running guest would race
	// with its host calls.
	onClosed     func()
	onClosedOnce sync.Once
	// waitEnded, when set (by tests), runs once close's wait has ended,
	// before it counts the instances left live.
	waitEnded func()
	// startFailed, when set (by tests), runs once a fresh instance that
	// failed to start has freed its slot.
	startFailed func()
	// closeStarted, when set (by tests), runs before close's drain calls
	// the plugin's close of an instance, on that close's goroutine.
	closeStarted func()

	calls, failures, discarded atomic.Int64
	// started counts the instances that started (ids are also used by
	// fresh instances that failed to start).
	started atomic.Int64
	// waiting is the number of calls waiting for an instance.
	waiting atomic.Int32
	// memBytes is the linear memory of the live instances, as of the end
	// of their last call.
	memBytes atomic.Int64
}

func newPool(p *plugin, size int, first *instance) *pool {
	pl := &pool{p: p, size: size, idle: make(chan *instance, size), freed: make(chan struct{}, size), done: make(chan struct{}), wake: make(chan struct{}, 1)}
	pl.live, pl.nextID = 1, 1
	pl.started.Store(1)
	first.trackMemory(pl)
	pl.idle <- first
	return pl
}

func (pl *pool) errClosed(call abi.WasmCall) error {
	return abi.Errorf(abi.CodeUnavailable, "%s: %s: backend is closed", pl.p.prefix, call)
}

// acquire returns an instance for one call, creating one when none is idle
// and fewer than size are live, or waiting for one. startFailed reports
// that err is a fresh instance that failed to start: a failure of the
// plugin, which acquire has told the breaker (as done with probe) before
// freeing the slot, so that a call waiting for the slot sees the breaker as
// this failure left it. A call that is not the breaker's retry (probe) does
// not start a fresh instance while the breaker is open: it may have been
// let through while the breaker was closed and waited for an instance
// since. The retry starts a fresh instance when a slot is free
// (as it all but always is: the failure that opened the breaker freed
// one, and nothing else starts while it is open), even with instances
// idle: it is to find out whether the plugin works again, which an
// instance that survived the failures does not show (fresh instances may
// be what fails), and a success resets the backoff.
func (pl *pool) acquire(ctx context.Context, call abi.WasmCall, probe bool) (in *instance, startFailed bool, err error) {
	for {
		// A closed pool hands out no instance, not even one still idle
		// that close has yet to close.
		if pl.closing.Load() {
			return nil, false, pl.errClosed(call)
		}
		if !probe {
			select {
			case in := <-pl.idle:
				return in, false, nil
			default:
			}
		}
		pl.mu.Lock()
		if pl.closed {
			pl.mu.Unlock()
			return nil, false, pl.errClosed(call)
		}
		if pl.live < pl.size {
			if !probe && pl.br != nil {
				if err := pl.br.admitStart(call); err != nil {
					pl.mu.Unlock()
					// The free slot is left to others: wake the next
					// waiter, which may be the retry.
					pl.signalFreed()
					return nil, false, err
				}
			}
			pl.live++
			id := pl.nextID
			pl.nextID++
			pl.mu.Unlock()
			mark := pl.p.quotaMark()
			in, desc, err := pl.p.newInstance(ctx, id)
			if err == nil && desc.ABIMajor != abi.VersionMajor {
				in.discard(ctx)
				err = abi.Errorf(abi.CodeInternal, "%s: a new instance describes storage ABI %d.%d", pl.p.prefix, desc.ABIMajor, desc.ABIMinor)
			}
			if err != nil {
				pl.failures.Add(1)
				pl.p.log.Warn("plugin instance failed to start", "plugin", pl.p.file, "op", call.String(), "error", err)
				code := abi.CodeOf(err)
				switch code {
				case abi.CodeInvalidArgument, abi.CodeNotFound, abi.CodeUnsupported:
					// Not about the call's request, as these codes say
					// (the server rejects a write so refused for good):
					// its open refused the plugin's state or setup.
					code = abi.CodeUnavailable
				}
				err = pl.p.noteSpace(abi.Wrap(code, err, "%s: %s: cannot start a fresh instance", pl.p.prefix, call), 0, mark)
				if pl.br != nil {
					// Before the slot is freed, as Backend.finish does
					// for a failed call.
					pl.br.done(probe, outcomeFailed, err)
				}
				pl.slotFreed()
				if pl.startFailed != nil {
					pl.startFailed()
				}
				return nil, true, err
			}
			pl.started.Add(1)
			in.trackMemory(pl)
			pl.p.log.Debug("plugin instance started", "instance", id)
			return in, false, nil
		}
		pl.mu.Unlock()
		pl.waiting.Add(1)
		select {
		case in := <-pl.idle:
			pl.waiting.Add(-1)
			if pl.closing.Load() {
				pl.release(in)
				return nil, false, pl.errClosed(call)
			}
			return in, false, nil
		case <-pl.freed:
			pl.waiting.Add(-1)
		case <-pl.done:
			pl.waiting.Add(-1)
			return nil, false, pl.errClosed(call)
		case <-ctx.Done():
			pl.waiting.Add(-1)
			err := abi.FromContext(ctx.Err())
			return nil, false, abi.Wrap(abi.CodeOf(err), ctx.Err(), "%s: %s: waiting for a plugin instance: %s", pl.p.prefix, call, ctx.Err())
		}
	}
}

func (pl *pool) slotFreed() {
	pl.mu.Lock()
	pl.live--
	last := pl.abandoned && pl.live == 0
	pl.mu.Unlock()
	pl.signalFreed()
	if last {
		pl.onClosedOnce.Do(pl.onClosed)
	}
}

// signalFreed wakes a call waiting for a slot, if any, and close.
func (pl *pool) signalFreed() {
	select {
	case pl.freed <- struct{}{}:
	default:
	}
	pl.signalClose()
}

// signalClose wakes close, if it waits.
func (pl *pool) signalClose() {
	select {
	case pl.wake <- struct{}{}:
	default:
	}
}

// release returns an instance after a call, discarding it when poisoned
// or when close has given up waiting for it.
func (pl *pool) release(in *instance) {
	if !in.poisoned {
		in.trackMemory(pl)
		pl.mu.Lock()
		if !pl.abandoned {
			// Under the lock, so that abandon cannot miss it; the
			// channel holds every live instance, so this never blocks.
			pl.idle <- in
			pl.mu.Unlock()
			return
		}
		pl.mu.Unlock()
	}
	pl.discarded.Add(1)
	pl.memBytes.Add(-in.memBytes)
	in.memBytes = 0
	in.discard(context.Background())
	pl.slotFreed()
}

// close stops new calls, waits for the live instances and closes them
// (calling the plugin's close), then runs onClosed. It gives up after wait:
// the instances still in use, by calls in flight or by their own close, are
// abandoned (each is discarded when its call returns, and the last one runs
// onClosed) and close returns an error saying so. When none is busy by
// then (the last closes ended as the wait did), it returns what the
// plugin's closes returned, or that instances back from their calls too
// late for the plugin's close were discarded without it. Either error is
// followed by the errors the plugin's closes returned by then; a close
// ending later is logged with its error.
func (pl *pool) close(ctx context.Context, wait time.Duration, onClosed func()) error {
	pl.mu.Lock()
	if pl.closed {
		pl.mu.Unlock()
		return nil
	}
	pl.onClosed = onClosed
	pl.closed = true
	pl.closing.Store(true)
	close(pl.done)
	pl.mu.Unlock()
	giveUp := make(chan struct{})
	drained := make(chan struct{})
	errs := closeErrors{late: func(err error) {
		pl.p.log.Warn("the plugin's close of an instance ended after Close had returned", "error", err)
	}}
	go func() {
		pl.drain(ctx, giveUp, &errs)
		close(drained)
	}()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-drained:
		pl.onClosedOnce.Do(pl.onClosed)
		return errs.join()
	case <-timer.C:
	}
	close(giveUp)
	// drain returns at once now; once it has, no instance is between idle
	// and its release by drain, where abandon would count it as busy.
	<-drained
	if pl.waitEnded != nil {
		pl.waitEnded()
	}
	busy, skipped := pl.abandon()
	if busy == 0 {
		pl.onClosedOnce.Do(pl.onClosed)
		if skipped == 0 {
			// Every instance's close returned, its error recorded before
			// its slot was freed.
			return errs.join()
		}
		return errs.joinAfter(abi.Errorf(abi.CodeDeadlineExceeded, "%s: close: %d instance(s) came back from a call after %s (%s), too late for the plugin's close, and were discarded without it",
			pl.p.prefix, skipped, wait, pl.p.opts.setting("TOPGUN_PLUGIN_CALL_TIMEOUT")))
	}
	return errs.joinAfter(abi.Errorf(abi.CodeDeadlineExceeded, "%s: close: %d instance(s) still busy after %s (%s) were abandoned; each is discarded when its call returns",
		pl.p.prefix, busy, wait, pl.p.opts.setting("TOPGUN_PLUGIN_CALL_TIMEOUT")))
}

// closeErrors collects the errors of the plugin's closes, which run on
// goroutines of their own. A close still running when close gives up ends
// after close has returned its error: late gets that close's error, which
// would otherwise be lost.
type closeErrors struct {
	mu       sync.Mutex
	errs     []error
	returned bool
	late     func(error)
}

func (e *closeErrors) add(err error) {
	e.mu.Lock()
	if e.returned {
		e.mu.Unlock()
		if e.late != nil {
			e.late(err)
		}
		return
	}
	e.errs = append(e.errs, err)
	e.mu.Unlock()
}

func (e *closeErrors) join() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.returned = true
	return errors.Join(e.errs...)
}

// joinAfter returns first followed by the errors collected so far. first
// leads, so its code is the one abi.CodeOf finds (errors.As walks a joined
// error's errors in order).
func (e *closeErrors) joinAfter(first error) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.returned = true
	if len(e.errs) == 0 {
		return first
	}
	return errors.Join(append([]error{first}, e.errs...)...)
}

// drain closes the live instances as they come back, each on its own
// goroutine (so that one slow close does not eat the others' time), until
// none is live or giveUp is closed. The closes' errors go to errs, each
// before its instance's slot is freed.
func (pl *pool) drain(ctx context.Context, giveUp <-chan struct{}, errs *closeErrors) {
	for {
		pl.mu.Lock()
		live := pl.live
		pl.mu.Unlock()
		if live == 0 {
			return
		}
		select {
		case in := <-pl.idle:
			select {
			case <-giveUp:
				// Too late for the plugin's close: abandon, or
				// release once abandoned, discards it.
				pl.release(in)
				return
			default:
			}
			go func() {
				if pl.closeStarted != nil {
					pl.closeStarted()
				}
				err := in.close(ctx)
				pl.memBytes.Add(-in.memBytes)
				in.memBytes = 0
				if err != nil {
					errs.add(err)
				}
				pl.slotFreed()
			}()
		case <-pl.wake:
		case <-giveUp:
			return
		}
	}
}

// abandon makes release discard the instances still in use, discards the
// idle ones (without the plugin's close) and returns the number of
// instances left live and of idle ones discarded.
func (pl *pool) abandon() (busy, skipped int) {
	pl.mu.Lock()
	pl.abandoned = true
	var idle []*instance
	for more := true; more; {
		select {
		case in := <-pl.idle:
			idle = append(idle, in)
		default:
			more = false
		}
	}
	pl.live -= len(idle)
	live := pl.live
	pl.mu.Unlock()
	for _, in := range idle {
		pl.discarded.Add(1)
		pl.memBytes.Add(-in.memBytes)
		in.memBytes = 0
		in.discard(context.Background())
	}
	return live, len(idle)
}
