//go:build unix

package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPluginCommands_refuseNonRegularFile checks that inspect and test
// refuse a plugin path that is not a regular file (here a FIFO) with a
// clear message and exit 1, instead of blocking forever on the read (or,
// for a device such as /dev/zero, reading without end past the 256 MiB
// limit that README promises is checked before the file is read).
func TestPluginCommands_refuseNonRegularFile(t *testing.T) {
	t.Parallel()
	fifo := filepath.Join(t.TempDir(), "plugin.wasm")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	for _, sub := range []string{"inspect", "test"} {
		type result struct {
			code           int
			stdout, stderr string
		}
		done := make(chan result, 1)
		go func() {
			code, stdout, stderr := runT(t, nil, "plugin", sub, fifo)
			done <- result{code, stdout, stderr}
		}()
		select {
		case r := <-done:
			if r.code != exitFail {
				t.Errorf("%s: exit code %d, want %d", sub, r.code, exitFail)
			}
			if !strings.Contains(r.stderr, "not a regular file") {
				t.Errorf("%s: stderr %q does not say the file is not a regular file", sub, r.stderr)
			}
		case <-time.After(30 * time.Second): // a hang guard: the refusal is a stat
			// Unblock the reader so that the goroutine ends.
			if w, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
				w.Close()
			}
			<-done
			t.Errorf("%s: still reading the FIFO after 30s; want a prompt error", sub)
		}
	}
}
