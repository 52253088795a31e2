//go:build unix

package main

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBinary_redbPathNotAFileFailsAtStart checks that a TOPGUN_REDB_PATH
// naming a FIFO is refused at start with a clear error and exit 1. Opening
// a FIFO blocks until a writer comes, so the server used to hang before
// printing anything, and SIGTERM (caught for a graceful stop) could not
// end it.
func TestBinary_redbPathNotAFileFailsAtStart(t *testing.T) {
	t.Parallel()
	fifo := filepath.Join(t.TempDir(), "data.redb")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	p := launch(t, map[string]string{"STORAGE_BACKEND": "redb", "TOPGUN_REDB_PATH": fifo})
	select {
	case <-p.exited:
	case <-time.After(startTimeout):
		t.Fatalf("server still starting after %s on a FIFO as TOPGUN_REDB_PATH; want a prompt error", startTimeout)
	}
	if p.code != exitFailed {
		t.Errorf("exit code = %d, want %d", p.code, exitFailed)
	}
	lines := p.logLines(t, "cannot open storage")
	if len(lines) != 1 {
		t.Fatalf("%d \"cannot open storage\" log lines, want 1", len(lines))
	}
	if e, _ := lines[0]["error"].(string); !strings.Contains(e, fifo) || !strings.Contains(e, "not a regular file") {
		t.Errorf("error %q does not say that %s is not a regular file", e, fifo)
	}
}
