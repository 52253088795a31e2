package host

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

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

	mu     sync.Mutex
	live   int
	nextID int
	closed bool

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
	pl := &pool{p: p, size: size, idle: make(chan *instance, size), freed: make(chan struct{}, size), done: make(chan struct{})}
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
// that err is a fresh instance that failed to start (a failure of the
// plugin, which the breaker counts). A call that is not the breaker's retry
// (probe) does not start a fresh instance while the breaker is open: it may
// have been let through while the breaker was closed and waited for an
// instance since.
func (pl *pool) acquire(ctx context.Context, call abi.WasmCall, probe bool) (in *instance, startFailed bool, err error) {
	for {
		select {
		case in := <-pl.idle:
			return in, false, nil
		default:
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
			in, desc, err := pl.p.newInstance(ctx, id)
			if err == nil && desc.ABIMajor != abi.VersionMajor {
				in.discard(ctx)
				err = abi.Errorf(abi.CodeInternal, "%s: a new instance describes storage ABI %d.%d", pl.p.prefix, desc.ABIMajor, desc.ABIMinor)
			}
			if err != nil {
				pl.slotFreed()
				pl.failures.Add(1)
				pl.p.log.Warn("plugin instance failed to start", "plugin", pl.p.file, "op", call.String(), "error", err)
				return nil, true, abi.Wrap(abi.CodeOf(err), err, "%s: %s: cannot start a fresh instance", pl.p.prefix, call)
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
	pl.mu.Unlock()
	pl.signalFreed()
}

// signalFreed wakes a call waiting for a slot, if any.
func (pl *pool) signalFreed() {
	select {
	case pl.freed <- struct{}{}:
	default:
	}
}

// release returns an instance after a call, discarding it when poisoned.
func (pl *pool) release(in *instance) {
	if in.poisoned {
		pl.discarded.Add(1)
		pl.memBytes.Add(-in.memBytes)
		in.memBytes = 0
		in.discard(context.Background())
		pl.slotFreed()
		return
	}
	in.trackMemory(pl)
	pl.idle <- in
}

// close stops new calls, waits for the live instances and closes them.
func (pl *pool) close(ctx context.Context) error {
	pl.mu.Lock()
	if pl.closed {
		pl.mu.Unlock()
		return nil
	}
	pl.closed = true
	close(pl.done)
	pl.mu.Unlock()
	var errs []error
	for {
		pl.mu.Lock()
		live := pl.live
		pl.mu.Unlock()
		if live == 0 {
			return errors.Join(errs...)
		}
		select {
		case in := <-pl.idle:
			if err := in.close(ctx); err != nil {
				errs = append(errs, err)
			}
			pl.memBytes.Add(-in.memBytes)
			pl.mu.Lock()
			pl.live--
			pl.mu.Unlock()
		case <-pl.freed:
		}
	}
}
