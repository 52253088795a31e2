package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// replacingWriter collects the command's stderr and, at the first line
// saying a plugin loaded (the probe), replaces the plugin file: a rebuild
// landing while the suite runs.
type replacingWriter struct {
	mu       sync.Mutex
	buf      bytes.Buffer
	replaced bool
	replace  func()
}

func (w *replacingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.replaced && bytes.Contains(p, []byte("plugin loaded")) {
		w.replaced = true
		w.replace()
	}
	return w.buf.Write(p)
}

// TestPluginTest_fileReplacedDuringRun: every case loads the plugin file
// again, so a file replaced after the first load must not have its results
// reported under the sha256 the run printed for the first one.
func TestPluginTest_fileReplacedDuringRun(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "plugin.wasm")
	first, err := os.ReadFile("../../host/testdata/wat/trap.wasm")
	if err != nil {
		t.Fatal(err)
	}
	other, err := os.ReadFile("../../host/testdata/wat/minormix.wasm")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, first, 0o600); err != nil {
		t.Fatal(err)
	}
	stderr := &replacingWriter{replace: func() {
		if err := os.WriteFile(path+".new", other, 0o600); err != nil {
			t.Error(err)
		}
		if err := os.Rename(path+".new", path); err != nil {
			t.Error(err)
		}
	}}
	env := map[string]string{"TOPGUN_PLUGIN_CACHE_DIR": t.TempDir()}
	var stdout bytes.Buffer
	c := &cli{stdout: &stdout, stderr: stderr, lookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
	code := runContext(context.Background(), []string{"plugin", "test", "-log-level", "debug", "-run", "^Describe$", path}, c)
	t.Logf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.buf.String())
	if !stderr.replaced {
		t.Fatal("the file was not replaced: no \"plugin loaded\" line on stderr")
	}
	if code != exitFail || strings.Contains(stdout.String(), "PASS") {
		t.Errorf("exit code %d; want %d and no PASS: the cases ran another file than the one whose sha256 the run printed", code, exitFail)
	}
	if !strings.Contains(stdout.String(), "changed during the run") {
		t.Errorf("stdout does not say the plugin file changed during the run")
	}
}
