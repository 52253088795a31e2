package host

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/tetratelabs/wazero"

	"github.com/topgun-go/topgun/internal/testbin"
)

// A damaged entry in the compilation cache (wazero finds it by its
// checksum) does not stop the plugin from loading: it is compiled again
// without the cache, with a warning.
func TestLoad_damagedCacheEntryRecompiles(t *testing.T) {
	t.Parallel()
	path := "testdata/wat/trap.wasm" // small: compiles in milliseconds
	ctx := context.Background()
	dir := t.TempDir()
	loadWith := func(o *Options) (*Backend, error) {
		cache, err := wazero.NewCompilationCacheWithDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cache.Close(ctx) })
		return load(ctx, path, o, cache)
	}
	b, err := loadWith(testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	damaged := 0
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		data[len(data)/2] ^= 0xff // inside the compiled code, which the checksum covers
		damaged++
		return os.WriteFile(p, data, 0o600)
	})
	if err != nil || damaged == 0 {
		t.Fatalf("damaging the cache in %s: %v (%d files)", dir, err, damaged)
	}
	var logs testbin.LockedBuffer
	o := testOptions(t)
	o.Logger = hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Debug})
	b, err = loadWith(o)
	if err != nil {
		t.Fatalf("load with a damaged cache entry: %v", err)
	}
	defer b.Close()
	if _, err := b.Get(ctx, "m", false, []string{"k"}); err != nil {
		t.Fatalf("Get: %v", err)
	}
	if !strings.Contains(logs.String(), "damaged entry") {
		t.Fatalf("no warning about the damaged entry in:\n%s", logs.String())
	}
}

// The server runs the native code in the cache directory, so it refuses a
// directory other users may write to or that belongs to another user.
func TestSharedCache_refusesADirectoryOthersCanWrite(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "cache")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := sharedCache(dir); err != nil {
		t.Fatalf("private directory: %v", err)
	}
	open := filepath.Join(t.TempDir(), "open")
	if err := os.Mkdir(open, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := sharedCache(open); err == nil || !strings.Contains(err.Error(), "other users may write") {
		t.Fatalf("world-writable directory: %v", err)
	}
	o := testOptions(t)
	o.CacheDir = open
	if _, err := Load(context.Background(), "testdata/wat/trap.wasm", o); err == nil || !strings.Contains(err.Error(), "TOPGUN_PLUGIN_CACHE_DIR") {
		t.Fatalf("Load with a world-writable cache: %v", err)
	}
	if os.Getuid() != 0 {
		t.Log("not root: the ownership check is not exercised")
		return
	}
	theirs := filepath.Join(t.TempDir(), "theirs")
	if err := os.Mkdir(theirs, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(theirs, 12345, 12345); err != nil {
		t.Fatal(err)
	}
	if _, err := sharedCache(theirs); err == nil || !strings.Contains(err.Error(), "belongs to user 12345") {
		t.Fatalf("directory of another user: %v", err)
	}
}
