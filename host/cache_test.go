package host

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/tetratelabs/wazero"

	"github.com/topgun-go/topgun/internal/testbin"
)

// cacheLoader loads a plugin through a fresh cache object on dir each
// time, as a new server process would, logging into a buffer.
type cacheLoader struct {
	t    *testing.T
	dir  string
	path string
	logs *testbin.LockedBuffer
}

func newCacheLoader(t *testing.T, path string) *cacheLoader {
	return &cacheLoader{t: t, dir: t.TempDir(), path: path}
}

func (l *cacheLoader) load() *Backend {
	l.t.Helper()
	ctx := context.Background()
	cache, err := newCompileCache(l.dir)
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { cache.wz.Close(ctx) })
	l.logs = &testbin.LockedBuffer{}
	o := testOptions(l.t)
	o.Logger = hclog.New(&hclog.LoggerOptions{Output: l.logs, Level: hclog.Debug})
	b, err := load(ctx, l.path, o, cache)
	if err != nil {
		l.t.Fatalf("load: %v", err)
	}
	l.t.Cleanup(func() { b.Close() })
	if _, err := b.Get(ctx, "m", false, []string{"k"}); err != nil {
		l.t.Fatalf("Get: %v", err)
	}
	return b
}

// entry returns the path of the one cache entry.
func (l *cacheLoader) entry() string {
	l.t.Helper()
	c := &compileCache{entries: filepath.Join(l.dir, "wazero-"+wazeroVersion()+"-"+runtime.GOARCH+"-"+runtime.GOOS)}
	es := c.listEntries()
	if len(es) != 1 {
		l.t.Fatalf("want one cache entry in %s, have %v", c.entries, es)
	}
	return filepath.Join(c.entries, es[0])
}

// recordsDir is where the host keeps its records of the entries of this
// build's wazero in the cache directory dir.
func recordsDir(dir string) string {
	return filepath.Join(dir, sumsDirName, "wazero-"+wazeroVersion()+"-"+runtime.GOARCH+"-"+runtime.GOOS)
}

// damage applies f to the cache entry's bytes.
func (l *cacheLoader) damage(f func([]byte)) {
	l.t.Helper()
	p := l.entry()
	data, err := os.ReadFile(p)
	if err != nil {
		l.t.Fatal(err)
	}
	f(data)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		l.t.Fatal(err)
	}
}

// loadQuietly loads and checks that no entry was removed: the entry the
// last load wrote was recorded and is intact.
func (l *cacheLoader) loadQuietly() {
	l.t.Helper()
	l.load()
	if strings.Contains(l.logs.String(), "removing") {
		l.t.Fatalf("an entry was removed:\n%s", l.logs.String())
	}
}

func (l *cacheLoader) wantLog(s string) {
	l.t.Helper()
	if !strings.Contains(l.logs.String(), s) {
		l.t.Fatalf("no %q in the log:\n%s", s, l.logs.String())
	}
}

// The host records the sum of the entry wazero writes, in the
// directory where wazero really writes it.
func TestCompileCache_recordsTheEntryItWrote(t *testing.T) {
	t.Parallel()
	l := newCacheLoader(t, "testdata/wat/trap.wasm")
	l.load()
	entry := l.entry()
	sum, err := fileSum(entry)
	if err != nil {
		t.Fatal(err)
	}
	var records []string
	des, err := os.ReadDir(recordsDir(l.dir))
	for _, d := range des {
		if isHexName(d.Name()) {
			records = append(records, d.Name())
		}
	}
	if err != nil || len(records) != 1 {
		t.Fatalf("records: %v %v", records, err)
	}
	rec, err := os.ReadFile(filepath.Join(recordsDir(l.dir), records[0]))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Base(entry) + " " + sum + "\n"; string(rec) != want {
		t.Fatalf("record = %q, want %q", rec, want)
	}
	// A second start reads the entry, writing nothing new.
	l.loadQuietly()
	if l.entry() != entry {
		t.Fatalf("entry changed")
	}
}

// Damage wazero's checksum covers (the compiled code) and damage it does
// not (the function offsets stored before the code) are both found before
// wazero reads the entry: the plugin is compiled again and serves calls.
func TestCompileCache_damagedEntryIsCompiledAgain(t *testing.T) {
	t.Parallel()
	for name, f := range map[string]func([]byte){
		"code":    func(b []byte) { b[len(b)/2] ^= 0xff },
		"offsets": func(b []byte) { b[6+1+len(wazeroVersion())+4] ^= 0x40 }, // first function's offset
		"cut":     func(b []byte) { clear(b[len(b)-64:]) },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			l := newCacheLoader(t, "testdata/wat/trap.wasm")
			l.load()
			l.damage(f)
			l.load()
			l.wantLog("does not match its checksum")
			// The entry written again is recorded and read quietly next time.
			l.loadQuietly()
		})
	}
}

// An entry no record covers (a crash between wazero's write and the
// record, or a server from before the records) is not run: it is removed
// and compiled again.
func TestCompileCache_unrecordedEntryIsRemoved(t *testing.T) {
	t.Parallel()
	l := newCacheLoader(t, "testdata/wat/trap.wasm")
	l.load()
	if err := os.RemoveAll(filepath.Join(l.dir, sumsDirName)); err != nil {
		t.Fatal(err)
	}
	l.damage(func(b []byte) { b[6+1+len(wazeroVersion())+4] ^= 0x40 })
	l.load()
	l.wantLog("has no checksum record")
	l.loadQuietly()
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
	// CheckCacheDir tells before any Load.
	if err := CheckCacheDir(open); err == nil || !strings.Contains(err.Error(), "compilation cache "+open) {
		t.Fatalf("CheckCacheDir of a world-writable directory: %v", err)
	}
	for _, ok := range []string{dir, "-"} {
		if err := CheckCacheDir(ok); err != nil {
			t.Fatalf("CheckCacheDir(%q): %v", ok, err)
		}
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

// The directories the host keeps inside the cache directory are checked
// too: one left writable from before the directory was made private, or a
// symbolic link, would let others plant what the server runs (a metered
// copy, a compiled entry).
func TestCompileCache_refusesSubdirectoriesOthersCanWrite(t *testing.T) {
	t.Parallel()
	for _, sub := range []string{meteredDirName, sumsDirName} {
		dir := t.TempDir()
		if err := os.Mkdir(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, sub), 0o777); err != nil {
			t.Fatal(err)
		}
		if _, err := newCompileCache(dir); err == nil || !strings.Contains(err.Error(), "other users may write") {
			t.Errorf("%s world-writable: %v", sub, err)
		}
		linked := t.TempDir()
		if err := os.Symlink(t.TempDir(), filepath.Join(linked, sub)); err != nil {
			t.Fatal(err)
		}
		if _, err := newCompileCache(linked); err == nil || !strings.Contains(err.Error(), "symbolic link") {
			t.Errorf("%s a symbolic link: %v", sub, err)
		}
	}
}

// Modules compiled at once through one cache (tenants starting together)
// all end up recorded: a sweep never removes an entry whose compile is
// still in flight, so the next start finds every entry intact and quiet.
func TestCompileCache_concurrentCompilesAllRecorded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	files := []string{"trap", "loop", "flood", "leak", "bigmem", "hostile"}
	compileAll := func(parallel int) string {
		c, err := newCompileCache(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer c.wz.Close(ctx)
		var logs testbin.LockedBuffer
		log := hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Debug})
		var wg sync.WaitGroup
		for _, f := range files {
			bin, err := os.ReadFile("testdata/wat/" + f + ".wasm")
			if err != nil {
				t.Fatal(err)
			}
			for range parallel {
				wg.Go(func() {
					rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler().WithCompilationCache(c.wz))
					defer rt.Close(ctx)
					if _, err := c.compile(ctx, rt, bin, log); err != nil {
						t.Errorf("%s: %v", f, err)
					}
				})
			}
		}
		wg.Wait()
		if n := len(c.listEntries()); n != len(files) {
			t.Fatalf("%d entries, want %d", n, len(files))
		}
		return logs.String()
	}
	compileAll(3)
	if logs := compileAll(1); strings.Contains(logs, "removing") {
		t.Fatalf("an entry was removed at the second start:\n%s", logs)
	}
}

// What cannot be recorded is not kept: with the records' directory
// unusable, the entry a compile wrote is removed (the next start compiles
// again) rather than left for a sweep that another record might pass.
func TestCompileCache_unrecordableEntryIsRemoved(t *testing.T) {
	t.Parallel()
	l := newCacheLoader(t, "testdata/wat/trap.wasm")
	sums := filepath.Join(l.dir, sumsDirName)
	if err := os.MkdirAll(sums, 0o700); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := newCompileCache(l.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.wz.Close(ctx)
	// A file where the records' directory was: no record can be written.
	if err := os.RemoveAll(sums); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sums, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var logs testbin.LockedBuffer
	o := testOptions(t)
	o.Logger = hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Debug})
	b, err := load(ctx, l.path, o, c)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	defer b.Close()
	if es := c.listEntries(); len(es) != 0 {
		t.Fatalf("unrecorded entries kept: %v", es)
	}
	if !strings.Contains(logs.String(), "cannot record the checksum") {
		t.Fatalf("no warning in:\n%s", logs.String())
	}
}

// The sweep removes what has no business in the cache: a symbolic link
// under an entry's name (wazero would follow it), records whose entries
// are gone, and temporary files a crash left an hour ago, but not one a
// writer may still be filling.
func TestCompileCache_sweepRemovesLeftovers(t *testing.T) {
	t.Parallel()
	l := newCacheLoader(t, "testdata/wat/trap.wasm")
	l.load()
	entries := filepath.Dir(l.entry())
	sums := recordsDir(l.dir)
	hexName := strings.Repeat("ab", 32)
	link := filepath.Join(entries, hexName)
	if err := os.Symlink(l.entry(), link); err != nil {
		t.Fatal(err)
	}
	staleRecord := filepath.Join(sums, strings.Repeat("cd", 32))
	if err := os.WriteFile(staleRecord, []byte(strings.Repeat("ef", 32)+" 1 00000000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	old, fresh := filepath.Join(entries, "x.123.tmp"), filepath.Join(entries, "y.456.tmp")
	for _, p := range []string{old, fresh} {
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chtimes(old, time.Now().Add(-2*time.Hour), time.Now().Add(-2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	l.load()
	for _, p := range []string{link, staleRecord, old} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s was not removed (%v)", p, err)
		}
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("a recent temporary file was removed: %v", err)
	}
	l.entry() // the real entry stays
}

// A start with a warm cache uses the metered copy of the plugin the first
// start cached, instead of metering it again; a damaged copy is removed
// and the plugin metered again.
func TestCompileCache_meteredCopy(t *testing.T) {
	t.Parallel()
	l := newCacheLoader(t, "testdata/wat/trap.wasm")
	first := l.load()
	l.wantLog("cached=false")
	second := l.load()
	l.wantLog("cached=true")
	if !second.p.metered || second.p.deadlines != first.p.deadlines {
		t.Fatalf("with the cached copy: metered %v, %q; first start: %q", second.p.metered, second.p.deadlines, first.p.deadlines)
	}
	copies, err := os.ReadDir(filepath.Join(l.dir, meteredDirName))
	if err != nil || len(copies) != 1 {
		t.Fatalf("metered copies: %v %v", copies, err)
	}
	path := filepath.Join(l.dir, meteredDirName, copies[0].Name())
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x40
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	third := l.load()
	l.wantLog("cached=false")
	if !third.p.metered || third.p.deadlines != first.p.deadlines {
		t.Fatalf("after damage: metered %v, %q", third.p.metered, third.p.deadlines)
	}
	if again, err := os.ReadFile(path); err != nil || string(again) == string(data) {
		t.Fatalf("the damaged copy was not replaced (%v)", err)
	}
}
