package sparselog

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Within Every of a line at its level, a Log writes at debug; its next
// line at its level says how many it wrote at debug meanwhile.
func TestLog_countsTheQuietOnes(t *testing.T) {
	var b strings.Builder
	log := hclog.New(&hclog.LoggerOptions{Output: &b, Level: hclog.Info})
	now := time.Unix(1000, 0)
	l := &Log{Now: func() time.Time { return now }}
	for range 4 {
		l.Log(log, hclog.Info, "event")
	}
	if n := strings.Count(b.String(), "[INFO]"); n != 1 {
		t.Fatalf("%d lines at info within Every, want 1:\n%s", n, b.String())
	}
	now = now.Add(Every)
	b.Reset()
	l.Log(log, hclog.Info, "event")
	if !strings.Contains(b.String(), "[INFO]") || !strings.Contains(b.String(), "at_debug_since_last=3") {
		t.Errorf("line after Every %q does not count the 3 logged at debug", b.String())
	}
}

// ByMessage limits each message on its own.
func TestByMessage_perMessage(t *testing.T) {
	var b strings.Builder
	log := hclog.New(&hclog.LoggerOptions{Output: &b, Level: hclog.Info})
	var ls ByMessage
	for range 3 {
		ls.Warn(log, "a")
		ls.Warn(log, "b")
	}
	if n := strings.Count(b.String(), "[WARN]"); n != 2 {
		t.Errorf("%d warnings for two messages sent three times each, want 2:\n%s", n, b.String())
	}
}
