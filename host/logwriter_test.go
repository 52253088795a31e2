package host

import (
	"context"
	"errors"
	"github.com/topgun-go/topgun/abi"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

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

// TestFailure_stderrLineIsFromTheFailingCall checks that the stderr line a
// failure quotes ("its stderr said: ...") was written by the call that
// failed: a line an earlier, successful call wrote, ended or not, says
// nothing about the failure and points the operator at the wrong cause.
func TestFailure_stderrLineIsFromTheFailingCall(t *testing.T) {
	ctx := context.Background()
	put := func(mapName string) *abi.Batch {
		batch := &abi.Batch{Now: 1}
		batch.Put(mapName, "k", false, []byte("v"), 0)
		return batch
	}
	// "log" writes "hello from stderr"; "partial" writes "half a line
	// from stderr" without a newline. Both succeed.
	for _, earlier := range []string{"log", "partial"} {
		b := mustLoad(t, hostileWasm(t), nil)
		if err := b.Apply(ctx, put(earlier)); err != nil {
			t.Fatal(err)
		}
		// "exit" exits with code 3 and writes nothing to stderr.
		err := b.Apply(ctx, put("exit"))
		if !errors.Is(err, abi.ErrInternal) || !strings.Contains(err.Error(), "exited with code 3") {
			t.Fatalf("Apply(exit) = %v, want the exit", err)
		}
		if strings.Contains(err.Error(), "from stderr") {
			t.Errorf("Apply(exit) after %q = %q: it quotes a stderr line an earlier call wrote", earlier, err)
		}
	}
}

// The same at the writer: forget drops what was written before it,
// including an unended line, from what last reports, but not from the log.
func TestLineWriter_forgetUnendedLine(t *testing.T) {
	c := &logCapture{t: t}
	log := hclog.New(&hclog.LoggerOptions{Output: c, Level: hclog.Trace, DisableTime: true})
	w := newLineWriter(log, newLogLimiter(), 1, "stderr")
	_, _ = w.Write([]byte("done\nhalf"))
	w.forget()
	if l := w.last(); l != "" {
		t.Errorf("last() after forget = %q, want nothing", l)
	}
	_, _ = w.Write([]byte(" ended\n"))
	if l := w.last(); l != "half ended" {
		t.Errorf("last() = %q, want the line this call ended", l)
	}
	_, _ = w.Write([]byte("again"))
	w.forget()
	_, _ = w.Write([]byte(" more"))
	if l := w.last(); l != "again more" {
		t.Errorf("last() = %q, want the line this call went on with", l)
	}
	if c.find("half ended") == "" {
		t.Error("the line begun before forget was not logged whole")
	}
}

// Lines below the logger's level are never shown, so they must not spend
// the plugin's log budget: a plugin chatting at debug (logstore logs at
// debug) would otherwise have its warnings and errors dropped at the
// default level, info, and the server would warn about "dropped" lines
// that it would not have shown anyway.
func TestLogging_filteredLinesSpareTheRateLimit(t *testing.T) {
	c := &logCapture{t: t}
	o := DefaultOptions()
	o.Logger = hclog.New(&hclog.LoggerOptions{Output: c, Level: hclog.Info, DisableTime: true})
	b := mustLoad(t, hostileWasm(t), o)
	batch := &abi.Batch{Now: 1}
	batch.Put("chatty", "k", false, nil, 0) // 2000 debug lines, then an error
	if err := b.Apply(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	if c.find("the error after the chatter") == "" {
		t.Error("the plugin's error line was dropped by the rate limit its debug lines used up")
	}
	if l := c.find("dropped"); l != "" {
		t.Errorf("debug lines the logger filters out were counted as dropped: %q", l)
	}
}

// The same for stdout and stderr: stdout lines (info) of a server logging
// at warn spend nothing.
func TestLogLimiter_filteredLinesSpareTheLimit(t *testing.T) {
	c := &logCapture{t: t}
	log := hclog.New(&hclog.LoggerOptions{Output: c, Level: hclog.Warn, DisableTime: true})
	l := newLogLimiter()
	clock := l.last
	l.now = func() time.Time { return clock }
	for i := 0; i < 2*logBurst; i++ {
		l.emit(log, hclog.Info, "stdout chatter")
	}
	l.emit(log, hclog.Warn, "a warning")
	if c.find("a warning") == "" {
		t.Error("the warning was dropped by the rate limit filtered lines used up")
	}
	if d := c.find("dropped"); d != "" {
		t.Errorf("filtered lines counted as dropped: %q", d)
	}
}

// A plugin's output and log lines reach the server's log with their
// control characters escaped: a carriage return or a terminal escape
// (clear the screen, move the cursor) would overwrite or hide what an
// operator's terminal shows of the log.
func TestLineWriter_controlCharactersEscaped(t *testing.T) {
	c := &logCapture{t: t}
	log := hclog.New(&hclog.LoggerOptions{Output: c, Level: hclog.Trace, DisableTime: true})
	w := newLineWriter(log, newLogLimiter(), 2, "stderr")
	_, _ = w.Write([]byte("marker\x1b[2J\x1b[1A over\rwritten\x00\x7f\u009b\tok\n"))
	l := c.find("marker")
	if l == "" {
		t.Fatal("the line was not logged")
	}
	if i := strings.IndexFunc(strings.TrimSuffix(l, "\n"), isControl); i >= 0 {
		t.Errorf("logged line %q holds a control character at byte %d", l, i)
	}
	if !strings.Contains(l, `marker\x1b[2J\x1b[1A over\rwritten\x00\x7f\u009b`+"\tok") {
		t.Errorf("logged line %q does not show the escapes", l)
	}
	if got := escapeControls("plain text\twith tab, ünïcode"); got != "plain text\twith tab, ünïcode" {
		t.Errorf("escapeControls changed a line without control characters: %q", got)
	}
}

// A byte that is not UTF-8 is escaped too: a lone 0x9b is CSI to a
// terminal reading 8-bit controls (the Linux console outside UTF-8 mode),
// and it passed through raw in a line with no other control character
// (and became U+FFFD, its value lost, in a line with one).
func TestLineWriter_invalidUTF8Escaped(t *testing.T) {
	for _, in := range []string{"marker\x9b2J hidden", "marker\x9b2J\x1b[1A hidden"} {
		c := &logCapture{t: t}
		log := hclog.New(&hclog.LoggerOptions{Output: c, Level: hclog.Trace, DisableTime: true})
		w := newLineWriter(log, newLogLimiter(), 2, "stderr")
		_, _ = w.Write([]byte(in + "\n"))
		l := c.find("marker")
		if l == "" {
			t.Fatal("the line was not logged")
		}
		if !utf8.ValidString(l) || !strings.Contains(l, `marker\x9b2J`) {
			t.Errorf("logged line %q for %q: want the byte 0x9b escaped as \\x9b", l, in)
		}
	}
}

// Unicode's line and paragraph separators end a line in viewers that
// follow Unicode (and in JavaScript), and its bidirectional controls
// reorder what a terminal or a viewer with bidi support shows of the rest
// of the line (U+202E shows "evil" as "live"): a plugin line holding them
// could pass for several lines, or hide what it says. They are escaped as
// the server's own fields are; other characters, joiners included, are not.
func TestLineWriter_unicodeBreaksAndBidiEscaped(t *testing.T) {
	c := &logCapture{t: t}
	log := hclog.New(&hclog.LoggerOptions{Output: c, Level: hclog.Trace, DisableTime: true})
	w := newLineWriter(log, newLogLimiter(), 2, "stderr")
	_, _ = w.Write([]byte("marker a\u2028b\u2029c\u202eevil\u202c\u2066d\u2069\u200f e 👩\u200d💻\n"))
	l := c.find("marker")
	if l == "" {
		t.Fatal("the line was not logged")
	}
	if !strings.Contains(l, `marker a\u2028b\u2029c\u202eevil\u202c\u2066d\u2069\u200f e 👩`+"\u200d💻") {
		t.Errorf("logged line %q: want the separators and bidi controls escaped, the joiner kept", l)
	}
}
