package host

import (
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Log rate limit per loaded plugin (all its instances and streams share
// it), so a plugin that logs in a loop cannot flood the server's log.
const (
	logLinesPerSecond = 200
	logBurst          = 1000
)

// logLimiter is a token bucket over log lines. Lines over the limit are
// dropped and counted; the count is logged with the next line let through.
type logLimiter struct {
	mu      sync.Mutex
	tokens  float64
	last    time.Time
	dropped int
	now     func() time.Time
}

func newLogLimiter() *logLimiter {
	return &logLimiter{tokens: logBurst, last: time.Now(), now: time.Now}
}

// allow reports whether a line may be logged, and how many were dropped
// since the last line that was.
func (l *logLimiter) allow() (ok bool, dropped int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.tokens += now.Sub(l.last).Seconds() * logLinesPerSecond
	if l.tokens > logBurst {
		l.tokens = logBurst
	}
	l.last = now
	if l.tokens < 1 {
		l.dropped++
		return false, 0
	}
	l.tokens--
	dropped, l.dropped = l.dropped, 0
	return true, dropped
}

// shown reports whether log writes lines of level: a line it filters out
// must not spend the limit, or a plugin chatting at debug would have its
// warnings dropped at the default level.
func shown(log hclog.Logger, level hclog.Level) bool {
	return level >= log.GetLevel()
}

// emit logs one plugin line at level under the limit.
func (l *logLimiter) emit(log hclog.Logger, level hclog.Level, msg string, args ...any) {
	if !shown(log, level) {
		return
	}
	ok, dropped := l.allow()
	if !ok {
		return
	}
	write(log, level, dropped, msg, args...)
}

// write logs a line allow let through, after the count of the lines
// dropped before it.
func write(log hclog.Logger, level hclog.Level, dropped int, msg string, args ...any) {
	if dropped > 0 {
		log.Warn("plugin log lines dropped by the rate limit", "dropped", dropped, "limit_per_second", logLinesPerSecond)
	}
	log.Log(level, msg, args...)
}
