package store

import (
	"sync"
	"time"
)

// skipWarnEvery is the least time between two warnings of records
// skipped: how many a backend hands the store is its choice.
const skipWarnEvery = 10 * time.Second

// skipLog rate-limits the warnings of records the store skips (an
// undecodable value, a key that is not valid UTF-8), counting those it
// leaves out.
type skipLog struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// warnSkipped logs msg unless a skip was logged within skipWarnEvery, and
// then counts it.
func (s *Store) warnSkipped(msg string, args ...any) {
	l := &s.skips
	l.mu.Lock()
	now := time.Now()
	if !l.last.IsZero() && now.Sub(l.last) < skipWarnEvery {
		l.suppressed++
		l.mu.Unlock()
		return
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	l.mu.Unlock()
	if n > 0 {
		args = append(args, "skipped_since_last_warning", n)
	}
	s.log.Warn(msg, args...)
}
