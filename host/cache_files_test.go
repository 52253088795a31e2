//go:build unix

package host

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// A FIFO where the cache keeps a file (an entry, a record, a metered copy)
// is never opened: opening a FIFO for reading blocks until a writer comes,
// so the load, and the server's start, would hang for good (SIGTERM does
// not end it). The sweep already removes what is not a regular file under
// an entry's name; the check before it must not open it first.
func TestCompileCache_fifoIsNotOpened(t *testing.T) {
	t.Parallel()
	only := func(t *testing.T, dir string, keep func(string) bool) string {
		t.Helper()
		des, err := os.ReadDir(dir)
		var names []string
		for _, d := range des {
			if keep(d.Name()) {
				names = append(names, d.Name())
			}
		}
		if err != nil || len(names) != 1 {
			t.Fatalf("want one file in %s: %v %v", dir, names, err)
		}
		return filepath.Join(dir, names[0])
	}
	for name, where := range map[string]func(t *testing.T, l *cacheLoader) string{
		"entry":  func(t *testing.T, l *cacheLoader) string { return l.entry() },
		"record": func(t *testing.T, l *cacheLoader) string { return only(t, recordsDir(l.dir), isHexName) },
		"metered copy": func(t *testing.T, l *cacheLoader) string {
			return only(t, filepath.Join(l.dir, meteredDirName), isHexName)
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			l := newCacheLoader(t, "testdata/wat/trap.wasm")
			l.load()
			p := where(t, l)
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Mkfifo(p, 0o600); err != nil {
				t.Skipf("mkfifo: %v", err)
			}
			ctx := context.Background()
			cache, err := newCompileCache(l.dir)
			if err != nil {
				t.Fatal(err)
			}
			defer cache.wz.Close(ctx)
			done := make(chan error, 1)
			go func() {
				b, err := load(ctx, l.path, testOptions(t), cache)
				if err == nil {
					err = b.Close()
				}
				done <- err
			}()
			// A writer opens a FIFO without blocking only while a reader
			// has it open: each time one does, the load is waiting on the
			// FIFO; closing the writer lets it go on.
			opened := false
			for {
				select {
				case err := <-done:
					if err != nil {
						t.Fatalf("load: %v", err)
					}
					if opened {
						t.Errorf("the load opened the FIFO %s and waited for a writer", p)
					}
					return
				default:
				}
				if w, err := os.OpenFile(p, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
					if st, err := w.Stat(); err == nil && st.Mode()&os.ModeNamedPipe != 0 {
						opened = true
					}
					w.Close()
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
}

// A compilation cache that cannot be read or written once it is open (its
// directory deleted while the server runs, as the host's own warning
// about a damaged entry suggests, or a full disk) costs the plugin its
// cached code, not its load: the load compiles it without the cache, as
// for a damaged entry, instead of failing with "invalid wasm module".
func TestCompileCache_unusableCacheStillLoads(t *testing.T) {
	t.Parallel()
	for name, spoil := range map[string]func(t *testing.T, dir string, c *compileCache){
		"cache directory deleted": func(t *testing.T, dir string, c *compileCache) {
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
		},
		"entry directory not a directory": func(t *testing.T, dir string, c *compileCache) {
			if err := os.RemoveAll(c.entries); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(c.entries, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			dir := filepath.Join(t.TempDir(), "cache")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			c, err := newCompileCache(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer c.wz.Close(ctx)
			spoil(t, dir, c)
			b, err := load(ctx, "testdata/wat/trap.wasm", testOptions(t), c)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			defer b.Close()
			if _, err := b.Get(ctx, "m", false, []string{"k"}); err != nil {
				t.Fatalf("Get: %v", err)
			}
		})
	}
}
