package store

import (
	"errors"
	"sync"
)

// ErrLagged is returned by Subscription.Err when the subscriber fell so far
// behind that its buffer filled up: it missed commits and must resync.
var ErrLagged = errors.New("store: change feed subscriber fell behind and must resync")

// errFeedClosed is Subscription.Err after the store closed.
var errFeedClosed = errors.New("store: closed")

// feed fans committed changes out to subscribers in commit order. Publishing
// never blocks: a subscriber whose buffer is full is cut off with ErrLagged,
// so a slow consumer can never stall writers.
type feed struct {
	mu     sync.Mutex
	subs   map[*Subscription]struct{}
	closed bool
}

// Subscription receives every commit after it was created, in order.
type Subscription struct {
	f    *feed
	ch   chan *Commit
	once sync.Once
	mu   sync.Mutex
	err  error
}

// C delivers commits. It is closed when the subscription ends; then Err
// says why (nil after Close, ErrLagged when the subscriber fell behind).
func (s *Subscription) C() <-chan *Commit { return s.ch }

// Err reports why C was closed.
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close ends the subscription. It is idempotent.
func (s *Subscription) Close() {
	s.f.mu.Lock()
	delete(s.f.subs, s)
	s.f.mu.Unlock()
	s.end(nil)
}

func (s *Subscription) end(err error) {
	s.once.Do(func() {
		s.mu.Lock()
		s.err = err
		s.mu.Unlock()
		close(s.ch)
	})
}

func newFeed() *feed { return &feed{subs: map[*Subscription]struct{}{}} }

func (f *feed) subscribe(buffer int) *Subscription {
	if buffer <= 0 {
		buffer = 1024
	}
	s := &Subscription{f: f, ch: make(chan *Commit, buffer)}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		s.end(errFeedClosed)
		return s
	}
	f.subs[s] = struct{}{}
	return s
}

// publish is called by the single committer goroutine, so commits reach
// every subscriber in commit order.
func (f *feed) publish(c *Commit) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for s := range f.subs {
		select {
		case s.ch <- c:
		default:
			delete(f.subs, s)
			s.end(ErrLagged)
		}
	}
}

func (f *feed) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for s := range f.subs {
		delete(f.subs, s)
		s.end(errFeedClosed)
	}
}
