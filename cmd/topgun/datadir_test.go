//go:build linux || darwin || freebsd || openbsd || netbsd || dragonfly

package main

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/topgun-go/topgun/host"
)

// TestPluginTest_dataDirInUse runs plugin test with a -data-dir that a
// loaded plugin holds, as a running server's TOPGUN_PLUGIN_DATA_DIR: the
// command must refuse it rather than put its cases' data in the live
// plugin's directory.
func TestPluginTest_dataDirInUse(t *testing.T) {
	t.Parallel()
	const wasm = "../../host/testdata/wat/trap.wasm"
	dir := t.TempDir()
	o := host.DefaultOptions()
	o.DataDir = dir
	o.CacheDir = t.TempDir()
	server, err := host.Load(context.Background(), wasm, o)
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()

	code, stdout, stderr := runT(t, map[string]string{"TOPGUN_PLUGIN_CACHE_DIR": o.CacheDir}, "plugin", "test", "-core", "--data-dir", dir, wasm)
	if code != exitFail {
		t.Errorf("exit code %d, want %d", code, exitFail)
	}
	if !strings.Contains(stderr, "in use") || strings.Contains(stdout, "PASS") {
		t.Errorf("stderr %q does not say the directory is in use, or cases ran", stderr)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("the command wrote into the live plugin's data directory: %v", entries)
	}
}
