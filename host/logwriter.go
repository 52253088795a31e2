package host

import (
	"bytes"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
)

// lineWriter turns a guest's stdout or stderr into log entries, one per
// line, each capped at MaxLogLineBytes. Bytes past the cap up to the next
// newline are dropped and the entry is marked truncated.
type lineWriter struct {
	mu        sync.Mutex
	log       hclog.Logger
	limiter   *logLimiter
	level     hclog.Level
	stream    string
	buf       []byte
	truncated bool
	lastLine  string
	// fatal is the last line that reported a crash ("fatal error: ...",
	// "panic: ..."): the useful line of a Go runtime's dying words, which
	// end with a stack trace.
	fatal string
	// said: the guest wrote since forget (lastLine, fatal or buf may be
	// set), so that forget, once per op, takes the lock only after the
	// guest wrote something, and last quotes buf only if it went on since.
	said atomic.Bool
	// stop, when set, fails writes once the call is past its deadline
	// (instance.pastDeadline).
	stop func() bool
}

func newLineWriter(log hclog.Logger, limiter *logLimiter, stream int, name string) *lineWriter {
	level := hclog.Info
	if stream == 1 {
		level = hclog.Warn
	}
	return &lineWriter{log: log, limiter: limiter, level: level, stream: name}
}

func (w *lineWriter) Write(p []byte) (int, error) {
	if w.stop != nil && w.stop() {
		return 0, errPastDeadline
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	if n > 0 {
		w.said.Store(true)
	}
	for len(p) > 0 {
		if w.stop != nil && len(p) < n && w.stop() {
			// Checked at every line, not only per write: one write of a
			// guest's memory of newlines is hundreds of millions of lines.
			return n - len(p), errPastDeadline
		}
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		if room := MaxLogLineBytes - len(w.buf); len(chunk) > room {
			w.buf = append(w.buf, chunk[:room]...)
			w.truncated = true
		} else {
			w.buf = append(w.buf, chunk...)
		}
		if i < 0 {
			break
		}
		w.emit()
		p = p[i+1:]
	}
	return n, nil
}

func (w *lineWriter) emit() {
	line := escapeControls(string(bytes.TrimRight(w.buf, "\r")))
	w.lastLine = line
	if strings.HasPrefix(line, "fatal error: ") || strings.HasPrefix(line, "panic: ") {
		w.fatal = line
	}
	if w.truncated {
		w.limiter.emit(w.log, w.level, line, "stream", w.stream, "truncated", true)
	} else {
		w.limiter.emit(w.log, w.level, line, "stream", w.stream)
	}
	w.buf = w.buf[:0]
	w.truncated = false
}

// flush logs a final line without a newline.
func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.emit()
	}
}

// forget starts a new call: last reports only what is written after it, so
// that a failure does not quote a line of an earlier call.
func (w *lineWriter) forget() {
	if !w.said.Load() {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lastLine, w.fatal = "", ""
	w.said.Store(false)
}

// last returns the last line that reported a crash, or else the last line
// written, since forget.
func (w *lineWriter) last() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fatal != "" {
		return w.fatal
	}
	if len(w.buf) > 0 && w.said.Load() {
		return string(w.buf) // an unended line is this call's once it went on
	}
	return w.lastLine
}
