// Package sparselog rate-limits log lines of events that someone outside
// the server (a client, a plugin, a failing storage met per message)
// causes at the rate it chooses: each kind is logged at its level at most
// once per Every, with the count of the others since, and the others at
// debug.
package sparselog

import (
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Every is the least time between two lines of a Log at its level.
const Every = 10 * time.Second

// Log is one kind of event. The zero value is ready to use.
type Log struct {
	mu    sync.Mutex
	last  time.Time
	quiet int
	// Now is the clock (tests); nil: time.Now.
	Now func() time.Time
}

// Log logs msg at level unless l logged at its level within Every; then
// at debug, counted in the next line at level as at_debug_since_last.
func (l *Log) Log(log hclog.Logger, level hclog.Level, msg string, args ...any) {
	l.mu.Lock()
	now := time.Now()
	if l.Now != nil {
		now = l.Now()
	}
	if !l.last.IsZero() && now.Sub(l.last) < Every {
		l.quiet++
		l.mu.Unlock()
		log.Debug(msg, args...)
		return
	}
	n := l.quiet
	l.last, l.quiet = now, 0
	l.mu.Unlock()
	if n > 0 {
		args = append(args, "at_debug_since_last", n)
	}
	log.Log(level, msg, args...)
}

// Warn is Log at warn.
func (l *Log) Warn(log hclog.Logger, msg string, args ...any) {
	l.Log(log, hclog.Warn, msg, args...)
}

// ByMessage is a Log per message: each message a constant of the code, so
// they are few. The zero value is ready to use.
type ByMessage struct {
	mu sync.Mutex
	m  map[string]*Log
}

// Warn logs msg at warn through msg's Log.
func (ls *ByMessage) Warn(log hclog.Logger, msg string, args ...any) {
	ls.mu.Lock()
	l := ls.m[msg]
	if l == nil {
		if ls.m == nil {
			ls.m = map[string]*Log{}
		}
		l = &Log{}
		ls.m[msg] = l
	}
	ls.mu.Unlock()
	l.Warn(log, msg, args...)
}
