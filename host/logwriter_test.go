package host

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

func TestLineWriter(t *testing.T) {
	c := &logCapture{t: t}
	log := hclog.New(&hclog.LoggerOptions{Output: c, Level: hclog.Trace, DisableTime: true})
	w := newLineWriter(log, newLogLimiter(), 1, "stderr")
	_, _ = w.Write([]byte("first li"))
	_, _ = w.Write([]byte("ne\nsecond\r\n" + strings.Repeat("y", 3*MaxLogLineBytes) + "\npartial"))
	w.flush()
	if l := c.find("first line"); !strings.Contains(l, "[WARN]") || !strings.Contains(l, "stream=stderr") {
		t.Errorf("first line: %q", l)
	}
	if c.find("second") == "" || strings.Contains(c.find("second"), "\r") {
		t.Errorf("second line: %q", c.find("second"))
	}
	if l := c.find("yyy"); !strings.Contains(l, "truncated=true") || strings.Count(l, "y") != MaxLogLineBytes {
		t.Errorf("long line: %d bytes of y, want %d and truncated", strings.Count(l, "y"), MaxLogLineBytes)
	}
	if c.find("partial") == "" {
		t.Error("flush did not log the partial last line")
	}
	if w.last() != "partial" {
		t.Errorf("last() = %q", w.last())
	}
}

func TestLogLimiter(t *testing.T) {
	c := &logCapture{t: t}
	log := hclog.New(&hclog.LoggerOptions{Output: c, Level: hclog.Trace, DisableTime: true})
	l := newLogLimiter()
	clock := l.last
	l.now = func() time.Time { return clock }
	for i := 0; i < logBurst+500; i++ {
		l.emit(log, hclog.Info, "spam")
	}
	if n := len(c.lines); n != logBurst {
		t.Errorf("%d lines logged from a burst of %d, want about %d", n, logBurst+500, logBurst)
	}
	clock = clock.Add(time.Second / logLinesPerSecond)
	l.emit(log, hclog.Info, "after")
	if d := c.find("dropped"); d == "" {
		t.Error("no line reports the dropped lines")
	}
}
