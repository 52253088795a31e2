package host

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/internal/testbin"
)

type tenantUnderTest struct {
	name string
	dir  string
	b    *Backend
}

// loadTenants loads n tenants of the tenant test plugin at once through one
// fresh compilation cache, each with its own data directory under base and
// its own logger.
func loadTenants(t *testing.T, n int, base, cache string, logs *testbin.LockedBuffer, adjust func(*Options)) []*tenantUnderTest {
	t.Helper()
	path := buildTestPlugin(t, "tenant")
	root := hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Info, JSONFormat: true})
	ts := make([]*tenantUnderTest, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range ts {
		name := fmt.Sprintf("t%02d", i)
		dir := filepath.Join(base, name)
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		o := DefaultOptions()
		o.CacheDir = cache
		o.DataDir = dir
		o.Config = map[string]string{"tenant": name}
		o.Logger = root.With("tenant", name)
		if adjust != nil {
			adjust(o)
		}
		ts[i] = &tenantUnderTest{name: name, dir: dir}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ts[i].b, errs[i] = Load(context.Background(), path, o)
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("tenant %d: %v", i, err)
		}
		b := ts[i].b
		t.Cleanup(func() { _ = b.Close() })
	}
	return ts
}

func tenantGet(b *Backend, mapName, key string) (string, error) {
	recs, err := b.Get(context.Background(), mapName, false, []string{key})
	if err != nil {
		return "", err
	}
	if len(recs) != 1 {
		return "", fmt.Errorf("%d records", len(recs))
	}
	return string(recs[0].Value), nil
}

// Many tenants of one file, loaded at once through one cache, each see
// only their own configuration and data directory.
func TestTenants_dataIsolation(t *testing.T) {
	base := t.TempDir()
	logs := &testbin.LockedBuffer{}
	ts := loadTenants(t, 8, base, t.TempDir(), logs, nil)
	for _, tn := range ts {
		if got, err := tenantGet(tn.b, "whoami", "k"); err != nil || got != tn.name {
			t.Fatalf("%s: whoami = %q, %v", tn.name, got, err)
		}
		if got, err := tenantGet(tn.b, "write", "/data/secret"); err != nil || got != "ok: " {
			t.Fatalf("%s: write = %q, %v", tn.name, got, err)
		}
	}
	victim, thief := ts[0], ts[1]
	// Links an operator (or a restore) left in the thief's directory.
	for name, target := range map[string]string{
		"up":      "..",
		"victim":  "../" + victim.name,
		"vsecret": filepath.Join(victim.dir, "secret"),
		"abs":     victim.dir,
	} {
		if err := os.Symlink(target, filepath.Join(thief.dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(thief.dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{
		"/data/../" + victim.name + "/secret",
		"/data/sub/../../" + victim.name + "/secret",
		"/" + victim.name + "/secret",
		victim.dir + "/secret",
		"/data/up/" + victim.name + "/secret",
		"/data/victim/secret",
		"/data/vsecret",
		"/data/abs/secret",
		"/data/./up/./" + victim.name + "/secret",
	} {
		got, err := tenantGet(thief.b, "read", p)
		if err != nil {
			t.Fatalf("read %s: %v", p, err)
		}
		if strings.HasPrefix(got, "ok") {
			t.Errorf("thief read %s: %q", p, got)
		}
		got, err = tenantGet(thief.b, "write", p)
		if err != nil {
			t.Fatalf("write %s: %v", p, err)
		}
		if strings.HasPrefix(got, "ok") {
			t.Errorf("thief wrote %s: %q", p, got)
		}
	}
	for _, p := range []string{"/data/..", "/data/up", "/data/victim", "/"} {
		got, err := tenantGet(thief.b, "ls", p)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(got, "ok") && strings.Contains(got, victim.name) {
			t.Errorf("thief listed %s: %q", p, got)
		}
	}
	if b, err := os.ReadFile(filepath.Join(victim.dir, "secret")); err != nil || string(b) != victim.name {
		t.Errorf("victim's file = %q, %v", b, err)
	}
	// Log lines are attributed to their tenant.
	for _, tn := range ts[:4] {
		if _, err := tenantGet(tn.b, "log", "k"); err != nil {
			t.Fatal(err)
		}
	}
	seen := 0
	for _, line := range strings.Split(logs.String(), "\n") {
		if i := strings.Index(line, "hello from tenant "); i >= 0 {
			seen++
			who := line[i+len("hello from tenant ") : i+len("hello from tenant ")+3]
			if !strings.Contains(line, `"tenant":"`+who+`"`) {
				t.Errorf("log line not attributed to its tenant: %s", line)
			}
		}
	}
	if seen != 4 {
		t.Errorf("%d tenants' log lines found, want 4", seen)
	}
	// Closing one tenant leaves the others serving; reloading it works.
	if err := ts[2].b.Close(); err != nil {
		t.Fatal(err)
	}
	for _, tn := range ts[3:] {
		if got, err := tenantGet(tn.b, "whoami", "k"); err != nil || got != tn.name {
			t.Fatalf("%s after another closed: whoami = %q, %v", tn.name, got, err)
		}
	}
	o := DefaultOptions()
	o.CacheDir, o.DataDir = ts[2].b.p.opts.CacheDir, ts[2].dir
	o.Config = map[string]string{"tenant": ts[2].name}
	again := mustLoad(t, buildTestPlugin(t, "tenant"), o)
	if got, err := tenantGet(again, "read", "/data/secret"); err != nil || got != "ok: "+ts[2].name {
		t.Errorf("reloaded tenant reads %q, %v", got, err)
	}
}

// Hostile tenants (a loop, a memory grab, a log flood, giant responses),
// all at once, do not starve the others nor stop their log lines.
func TestTenants_hostileNeighbours(t *testing.T) {
	if testing.Short() {
		t.Skip("loads many plugins")
	}
	base := t.TempDir()
	logs := &testbin.LockedBuffer{}
	ts := loadTenants(t, 10, base, t.TempDir(), logs, func(o *Options) {
		o.CallTimeout = 2 * time.Second
		o.MemoryLimitMB = 64
		o.BreakerFailures = -1
	})
	attacks := []string{"loop", "oom", "flood", "giant", "loop", "oom"}
	hostile, good := ts[:len(attacks)], ts[len(attacks):]
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	for i, tn := range hostile {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < 2; r++ {
				keys := []string{"k"}
				if attacks[i] == "giant" {
					keys = []string{"a", "b", "c", "d", "e"}
				}
				_, _ = tn.b.Get(context.Background(), attacks[i], false, keys)
			}
		}()
	}
	var slowest time.Duration
	for _, tn := range good {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < 2000; r++ {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				got, err := tenantGet(tn.b, "whoami", "k")
				d := time.Since(start)
				mu.Lock()
				slowest = max(slowest, d)
				if err != nil || got != tn.name {
					failures = append(failures, fmt.Sprintf("%s: %q %v", tn.name, got, err))
				}
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	time.Sleep(5 * time.Second)
	close(stop)
	wg.Wait()
	t.Logf("slowest good call: %s", slowest)
	if len(failures) > 0 {
		t.Errorf("%d good calls failed, first: %s", len(failures), failures[0])
	}
	for _, tn := range good {
		if _, err := tenantGet(tn.b, "log", "k"); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(logs.String(), "hello from tenant "+tn.name) {
			t.Errorf("%s's log line was dropped beside a flooding tenant", tn.name)
		}
	}
	var total int64
	for _, tn := range ts {
		st := tn.b.Stats()
		total += st.MemoryBytes
	}
	t.Logf("linear memory of all tenants: %.1f MiB", float64(total)/(1<<20))
	if h := heapAfterGC(); h > uint64(len(ts))*64<<20 {
		t.Errorf("heap %d MiB is over the sum of the limits", h>>20)
	}
}

// The memory a pooled plugin reports is its live instances' memory.
func TestTenants_pooledMemory(t *testing.T) {
	o := testOptions(t)
	o.PoolSize = 6
	b := mustLoad(t, buildTestPlugin(t, "multi"), o)
	one := b.Stats().MemoryBytes
	// Three instances held at once: the pool starts them whatever the
	// machine's load (calls alone may all find the first one idle).
	var held []*instance
	for i := 0; i < 3; i++ {
		in, _, err := b.pool.acquire(context.Background(), abi.CallGet, false)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, in)
	}
	for _, in := range held {
		b.pool.release(in)
	}
	var wg sync.WaitGroup
	for g := 0; g < 12; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				_, _ = b.Get(context.Background(), "whoami", false, []string{"id"})
			}
		}()
	}
	wg.Wait()
	st := b.Stats()
	t.Logf("one instance %d bytes; stats %+v", one, st)
	if st.Live < 2 || st.MemoryBytes < int64(st.Live)*one || st.MemoryBytes > int64(st.Live)*(one+4<<20) {
		t.Errorf("stats %+v: want about %d live instances of %d bytes", st, st.Live, one)
	}
	_ = b.Close()
	if st := b.Stats(); st.Live != 0 || st.MemoryBytes != 0 {
		t.Errorf("after close: stats %+v, want nothing live", st)
	}
}

// Tenants of one file through one cache share its compiled code, not its
// memory limit: each grows to its own limit.
func TestTenants_memoryLimitPerTenant(t *testing.T) {
	cache := t.TempDir()
	reach := func(limitMB int) int64 {
		o := testOptions(t)
		o.CacheDir = cache
		o.MemoryLimitMB = limitMB
		o.BreakerFailures = -1
		b := mustLoad(t, "testdata/wat/leak.wasm", o)
		var most int64
		for i := 0; i < 200; i++ {
			if _, err := b.Get(context.Background(), "evil", false, []string{"k"}); err != nil {
				break
			}
			most = max(most, b.Stats().MemoryBytes)
		}
		return most
	}
	for _, mb := range []int{64, 8, 32} {
		got := reach(mb)
		t.Logf("limit %d MiB: reached %d MiB", mb, got>>20)
		if got > int64(mb)<<20 || got < int64(mb-2)<<20 {
			t.Errorf("limit %d MiB: memory reached %d bytes", mb, got)
		}
	}
}

// One tenant's compile, however long, does not hold up another tenant's
// load of a plugin the cache already holds: before, every load waited for
// every compile in flight in the process.
func TestCompileCache_loadNotHeldByAnotherCompile(t *testing.T) {
	ctx := context.Background()
	cache, err := newCompileCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer cache.wz.Close(ctx)
	loadClose := func(path string) error {
		o := testOptions(t)
		o.DataDir = ""
		b, err := load(ctx, path, o, cache)
		if err == nil {
			_ = b.Close()
		}
		return err
	}
	warm := "testdata/wat/trap.wasm"
	if err := loadClose(warm); err != nil {
		t.Fatal(err)
	}
	// The next compile, the other tenant's, is held until the end.
	var held atomic.Bool
	started, release := make(chan struct{}), make(chan struct{})
	cache.beforeCompile = func() {
		if held.CompareAndSwap(false, true) {
			close(started)
			<-release
		}
	}
	slow := make(chan error, 1)
	go func() { slow <- loadClose("testdata/wat/loop.wasm") }()
	<-started
	loaded := make(chan error, 1)
	go func() { loaded <- loadClose(warm) }()
	select {
	case err := <-loaded:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Error("a load of a cached plugin waited for another module's compile")
	}
	close(release)
	if err := <-slow; err != nil {
		t.Fatal(err)
	}
}

// slowCompile writes a copy of the logstore plugin that the cache does not
// hold (a custom section added), which takes a second or more to compile.
func slowCompile(t *testing.T) string {
	t.Helper()
	bin, err := os.ReadFile(logstoreWasm(t))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "slow.wasm")
	bin = append(bin, 0, 3, 1, 'x', 'y') // custom section "x"
	if err := os.WriteFile(path, bin, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// loggedOptions returns test options with a data directory whose log,
// debug lines included, goes to the returned buffer.
func loggedOptions(t *testing.T) (*Options, *testbin.LockedBuffer) {
	logs := &testbin.LockedBuffer{}
	o := testOptions(t)
	o.Logger = hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Debug})
	o.DataDir = t.TempDir()
	return o, logs
}

// A load beside another compile in the same process still removes an old
// entry no record covers, and spares the entry the other compile writes.
func TestCompileCache_sweepBesideACompile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	loadWith := func(path string) string {
		t.Helper()
		cache, err := newCompileCache(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer cache.wz.Close(ctx)
		o, logs := loggedOptions(t)
		b, err := load(ctx, path, o, cache)
		if err != nil {
			t.Fatalf("load %s: %v", path, err)
		}
		_ = b.Close()
		return logs.String()
	}
	small, slow := "testdata/wat/trap.wasm", slowCompile(t)
	loadWith(small)
	// The small module's entry loses its record, as after a crash long ago.
	if err := os.RemoveAll(filepath.Join(dir, sumsDirName)); err != nil {
		t.Fatal(err)
	}
	c := &compileCache{entries: filepath.Join(dir, "wazero-"+wazeroVersion()+"-"+runtime.GOARCH+"-"+runtime.GOOS)}
	old := time.Now().Add(-time.Hour)
	for _, e := range c.listEntries() {
		if err := os.Chtimes(filepath.Join(c.entries, e), old, old); err != nil {
			t.Fatal(err)
		}
	}

	cache, err := newCompileCache(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer cache.wz.Close(ctx)
	o, logs := loggedOptions(t)
	done := make(chan error, 1)
	go func() {
		b, err := load(ctx, slow, o, cache)
		if err == nil {
			_ = b.Close()
		}
		done <- err
	}()
	time.Sleep(300 * time.Millisecond) // the slow compile is under way
	so := *o
	so.DataDir = ""
	b, err := load(ctx, small, &so, cache)
	if err != nil {
		t.Fatal(err)
	}
	_ = b.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "has no checksum record") {
		t.Errorf("the old unrecorded entry was not removed:\n%s", logs.String())
	}
	// Both entries are now recorded: a new process removes neither.
	for _, p := range []string{small, slow} {
		if l := loadWith(p); strings.Contains(l, "removing") {
			t.Errorf("load of %s removed an entry:\n%s", p, l)
		}
	}
}

// An operator that loads its tenants from one Options, changing Config
// (and DataDir) between loads, gives each tenant the configuration it had
// at its load: a fresh instance, started after a failure, opens with that
// configuration, not with whatever the map holds later.
func TestTenants_configSnapshotAtLoad(t *testing.T) {
	path := buildTestPlugin(t, "tenant")
	base := t.TempDir()
	o := testOptions(t)
	o.Logger = hclog.NewNullLogger()
	o.CallTimeout = 300 * time.Millisecond
	o.BreakerFailures = -1
	o.Config = map[string]string{}
	var ts []*Backend
	for _, name := range []string{"alice", "bob"} {
		o.Config["tenant"] = name
		o.DataDir = filepath.Join(base, name)
		if err := os.Mkdir(o.DataDir, 0o700); err != nil {
			t.Fatal(err)
		}
		ts = append(ts, mustLoad(t, path, o))
	}
	alice := ts[0]
	if got, err := tenantGet(alice, "whoami", "k"); err != nil || got != "alice" {
		t.Fatalf("whoami = %q, %v", got, err)
	}
	// Alice's instance is discarded; her next call starts a fresh one.
	if _, err := alice.Get(context.Background(), "loop", false, []string{"k"}); err == nil {
		t.Fatal("loop returned")
	}
	if got, err := tenantGet(alice, "whoami", "k"); err != nil || got != "alice" {
		t.Errorf("alice's fresh instance: whoami = %q, %v; want alice", got, err)
	}
}

// Closing a tenant releases its plugin's compiled code once a few other
// modules have been closed since. Every load through the compilation cache
// compiles into one wazero engine, which holds a module's native code until
// each load that compiled it closes it, and closing the runtime did not:
// every plugin build a process had loaded (tenants coming and going, a
// tenant's upgrades) stayed in memory for good, about 7 MiB of heap and
// 14 MiB of code for a Go plugin. Whether the process still holds a
// module's code shows when its cache entries are gone: a load then
// compiles it again, and writes an entry, unless the code is in memory.
func TestTenants_closeReleasesCompiledCode(t *testing.T) {
	ctx := context.Background()
	cache, err := newCompileCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer cache.wz.Close(ctx)
	bin, err := os.ReadFile("testdata/wat/trap.wasm")
	if err != nil {
		t.Fatal(err)
	}
	// Builds of one plugin: the same code with a custom section of their
	// own, so each is a module of its own to the engine.
	builds := make([]string, keptModules+2)
	for i := range builds {
		builds[i] = filepath.Join(t.TempDir(), "build.wasm")
		if err := os.WriteFile(builds[i], append(append([]byte(nil), bin...), 0, 3, 1, 'v', byte('a'+i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// loadClose loads a build as a tenant, closes it and reports whether
	// the load compiled the module.
	loadClose := func(path string) bool {
		t.Helper()
		before := len(cache.listEntries())
		o := testOptions(t)
		o.DataDir = ""
		b, err := load(ctx, path, o, cache)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Get(ctx, "m", false, []string{"k"}); err != nil {
			t.Fatal(err)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		return len(cache.listEntries()) > before
	}
	for _, path := range builds {
		if !loadClose(path) {
			t.Fatal("a first load wrote no cache entry")
		}
	}
	for _, e := range cache.listEntries() {
		if err := os.Remove(filepath.Join(cache.entries, e)); err != nil {
			t.Fatal(err)
		}
	}
	if loadClose(builds[len(builds)-1]) {
		t.Error("the module closed last was compiled again: a reload should find it in memory")
	}
	if !loadClose(builds[0]) {
		t.Errorf("the first build's code was still in memory after it was closed and %d other builds were loaded and closed", len(builds)-1)
	}
}
