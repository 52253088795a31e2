//go:build linux || darwin || freebsd || openbsd || netbsd || dragonfly

package host

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/topgun-go/topgun/abi"
)

// Two loads on one data directory would write over each other's data
// (wasip1 has no file locks, so the plugin cannot keep the second off): the
// second Load is refused, naming the setting, while the first is open,
// also through another path to the directory, and allowed once it is
// closed.
func TestLoad_dataDirLocked(t *testing.T) {
	wasm := nullWasm(t)
	dir := t.TempDir()
	o := testOptions(t)
	o.DataDir = dir
	first := mustLoad(t, wasm, o)

	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dir, link} {
		o2 := testOptions(t)
		o2.DataDir = d
		b, err := Load(context.Background(), wasm, o2)
		if err == nil {
			b.Close()
			t.Fatalf("a second Load on data directory %s while the first is open succeeded", d)
		}
		if !errors.Is(err, abi.ErrUnavailable) || !strings.Contains(err.Error(), "TOPGUN_PLUGIN_DATA_DIR") ||
			!strings.Contains(err.Error(), d) || !strings.Contains(err.Error(), "plugin null.wasm:") {
			t.Fatalf("second Load on %s: %v; want CodeUnavailable naming the plugin, the directory and TOPGUN_PLUGIN_DATA_DIR", d, err)
		}
	}
	// Another directory is not affected.
	o3 := testOptions(t)
	o3.DataDir = t.TempDir()
	mustLoad(t, wasm, o3)

	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again := mustLoad(t, wasm, o)
	if err := again.Close(); err != nil {
		t.Fatal(err)
	}
}

// A load that fails after taking the lock (here: the plugin's
// _initialize traps) releases it.
func TestLoad_dataDirUnlockedAfterFailedLoad(t *testing.T) {
	o := testOptions(t)
	o.DataDir = t.TempDir()
	if b, err := Load(context.Background(), "testdata/wat/inittrap.wasm", o); err == nil {
		b.Close()
		t.Fatal("inittrap.wasm loaded")
	}
	mustLoad(t, nullWasm(t), o)
}

// A plugin that declares abi.CapShared says several processes may use its
// storage at once: its data directory is not held locked.
func TestLoad_sharedPluginDataDirNotLocked(t *testing.T) {
	bin, err := os.ReadFile("testdata/wat/loop.wasm")
	if err != nil {
		t.Fatal(err)
	}
	// loop.wat's description [name "loop", 1, 0, capabilities 4]: declare
	// shared (2) as well.
	desc := []byte("\x94\xa4loop\x01\x00\x04")
	if bytes.Count(bin, desc) != 1 {
		t.Fatal("loop.wasm does not hold its description once")
	}
	shared := append(desc[:len(desc)-1:len(desc)-1], byte(abi.CapAtomicBatch|abi.CapShared))
	path := filepath.Join(t.TempDir(), "sharedloop.wasm")
	if err := os.WriteFile(path, bytes.Replace(bin, desc, shared, 1), 0o600); err != nil {
		t.Fatal(err)
	}
	o := testOptions(t)
	o.DataDir = t.TempDir()
	first := mustLoad(t, path, o)
	if !first.Describe().Capabilities.Has(abi.CapShared) {
		t.Fatalf("capabilities %v, want shared", first.Describe().Capabilities.Names())
	}
	mustLoad(t, path, o)
}

// LockDataDir refuses a directory a loaded plugin holds, and while it is
// held no plugin loads on the directory.
func TestLockDataDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	release, err := LockDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LockDataDir(dir); !errors.Is(err, abi.ErrUnavailable) {
		t.Fatalf("a second LockDataDir of a held directory: err = %v, want CodeUnavailable", err)
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	release, err = LockDataDir(dir)
	if err != nil {
		t.Fatalf("LockDataDir after release: %v", err)
	}
	_ = release()
}

// The directory a plugin's instances use is the one Load locked: a fresh
// instance (after a failure) must not follow the configured path to
// another directory, where a second load may hold the lock. Here the
// path is a link switched to another directory, on which a second tenant
// then loads; the first tenant's fresh instance must still see its own
// files, and nothing of it may reach the second's directory.
func TestLoad_freshInstanceKeepsTheLockedDataDir(t *testing.T) {
	path := buildTestPlugin(t, "tenant")
	first, second := t.TempDir(), t.TempDir()
	link := filepath.Join(t.TempDir(), "data")
	if err := os.Symlink(first, link); err != nil {
		t.Fatal(err)
	}
	o := testOptions(t)
	o.DataDir = link
	o.CallTimeout = 300 * time.Millisecond
	o.Config = map[string]string{"tenant": "a"}
	a := mustLoad(t, path, o)
	if got, err := tenantGet(a, "write", "/data/owner"); err != nil || got != "ok: " {
		t.Fatalf("write = %q, %v", got, err)
	}

	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(second, link); err != nil {
		t.Fatal(err)
	}
	o2 := testOptions(t)
	o2.DataDir = second
	o2.Config = map[string]string{"tenant": "b"}
	mustLoad(t, path, o2)

	// A failure discards a's instance; the next call starts a fresh one.
	if _, err := tenantGet(a, "loop", "k"); !errors.Is(err, abi.ErrDeadlineExceeded) {
		t.Fatalf("loop: err = %v, want deadline exceeded", err)
	}
	if got, err := tenantGet(a, "read", "/data/owner"); err != nil || got != "ok: a" {
		t.Errorf("a's fresh instance reads its file as %q, %v; want \"ok: a\" (from %s)", got, err, first)
	}
	if _, err := tenantGet(a, "write", "/data/stray"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(second, "stray")); err == nil {
		t.Errorf("a's fresh instance wrote into %s, the data directory b holds", second)
	}
}

// A data directory moved away and replaced by another at its path is no
// longer the one Load locked: a fresh instance refuses to start rather
// than use the new one.
func TestLoad_freshInstanceRefusesAReplacedDataDir(t *testing.T) {
	path := buildTestPlugin(t, "tenant")
	base := t.TempDir()
	dir := filepath.Join(base, "data")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	o := testOptions(t)
	o.DataDir = dir
	o.CallTimeout = 300 * time.Millisecond
	o.Config = map[string]string{"tenant": "a"}
	a := mustLoad(t, path, o)
	if err := os.Rename(dir, filepath.Join(base, "moved")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := tenantGet(a, "loop", "k"); !errors.Is(err, abi.ErrDeadlineExceeded) {
		t.Fatalf("loop: err = %v, want deadline exceeded", err)
	}
	_, err := tenantGet(a, "write", "/data/stray")
	if err == nil || !strings.Contains(err.Error(), "moved or replaced") {
		t.Errorf("a call needing a fresh instance: err = %v, want it refused as the data directory was moved or replaced", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "stray")); err == nil {
		t.Errorf("a's fresh instance wrote into the directory now at %s", dir)
	}
}

// A data directory a fresh instance cannot stat for another reason than
// its being gone (permissions, I/O) is reported with that reason, not as
// moved or replaced, which would send the operator after the wrong cause.
func TestLoad_freshInstanceReportsDataDirStatError(t *testing.T) {
	path := buildTestPlugin(t, "tenant")
	o := testOptions(t)
	o.DataDir = t.TempDir()
	o.CallTimeout = 300 * time.Millisecond
	o.Config = map[string]string{"tenant": "a"}
	a := mustLoad(t, path, o)
	// Not parallel: the variable is the package's.
	t.Cleanup(func() { statDataRoot = os.Stat })
	statDataRoot = func(name string) (os.FileInfo, error) {
		return nil, &os.PathError{Op: "stat", Path: name, Err: syscall.EACCES}
	}
	if _, err := tenantGet(a, "loop", "k"); !errors.Is(err, abi.ErrDeadlineExceeded) {
		t.Fatalf("loop: err = %v, want deadline exceeded", err)
	}
	_, err := tenantGet(a, "write", "/data/stray")
	if !errors.Is(err, os.ErrPermission) || strings.Contains(err.Error(), "moved or replaced") {
		t.Fatalf("a call needing a fresh instance: err = %v, want the stat's permission error", err)
	}
	t.Log(err)
}
