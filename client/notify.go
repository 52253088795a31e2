package client

import (
	"sync"
	"sync/atomic"

	"github.com/topgun-go/topgun/internal/goroutine"
)

// notifier runs the user's callbacks (Options.OnStateChange and
// OnServerError) on a goroutine of its own, one at a time, in the order
// they were queued. push never blocks, so neither the connection's
// goroutine nor a lock holder waits for user code, and a callback may call
// any Client method, Close included.
type notifier struct {
	mu      sync.Mutex
	queue   []func()
	stopped bool          // stop was called: nothing more is queued
	limited int           // callbacks queued by pushLimited, not yet run
	wake    chan struct{} // capacity 1: something was queued
	done    chan struct{} // closed when the goroutine has run all and exited
	// goroutine is the id of the goroutine running the callbacks, so
	// that Close called from one does not wait for itself. (A flag set
	// while a callback runs also let a Close on another goroutine return
	// before the callbacks still queued had run.)
	goroutine atomic.Uint64
}

func newNotifier() *notifier {
	n := &notifier{wake: make(chan struct{}, 1), done: make(chan struct{})}
	go n.run()
	return n
}

// push queues f. Callers push under Client.mu, so the queue order is the
// order of the state changes.
func (n *notifier) push(f func()) {
	n.mu.Lock()
	if !n.stopped {
		n.queue = append(n.queue, f)
	}
	n.mu.Unlock()
	n.poke()
}

// stop lets the goroutine exit once the queued callbacks have run.
func (n *notifier) stop() {
	n.mu.Lock()
	n.stopped = true
	n.mu.Unlock()
	n.poke()
}

func (n *notifier) poke() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

func (n *notifier) run() {
	defer close(n.done)
	n.goroutine.Store(goroutine.ID())
	for range n.wake {
		for {
			n.mu.Lock()
			if len(n.queue) == 0 {
				stopped := n.stopped
				n.mu.Unlock()
				if stopped {
					return
				}
				break
			}
			f := n.queue[0]
			n.queue = n.queue[1:]
			n.mu.Unlock()
			f()
		}
	}
}

// wait returns once every queued callback has run (after stop). Called from
// a callback it returns at once: the callback cannot wait for itself.
func (n *notifier) wait() {
	select {
	case <-n.done:
		return
	default:
	}
	if id := goroutine.ID(); id != 0 && id == n.goroutine.Load() {
		return
	}
	<-n.done
}

// maxLimitedNotes bounds the callbacks of pushLimited waiting to run: a
// callback may block, and the server decides how many ERRORs it sends.
const maxLimitedNotes = 1024

// pushLimited queues f unless maxLimitedNotes callbacks it queued are
// waiting already; then f is dropped and pushLimited reports false.
func (n *notifier) pushLimited(f func()) bool {
	n.mu.Lock()
	if n.limited >= maxLimitedNotes {
		n.mu.Unlock()
		return false
	}
	if !n.stopped {
		n.limited++
		n.queue = append(n.queue, func() {
			n.mu.Lock()
			n.limited--
			n.mu.Unlock()
			f()
		})
	}
	n.mu.Unlock()
	n.poke()
	return true
}
