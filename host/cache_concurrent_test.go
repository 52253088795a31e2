package host

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/internal/testbin"
)

// cacheTrouble returns the lines of a load's log that tell of a failed
// load or of an entry removed (compiled again) or taken for damaged.
func cacheTrouble(logs string) []string {
	var bad []string
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, "removing") || strings.Contains(line, "does not match") ||
			strings.Contains(line, "[WARN]") || strings.Contains(line, "FAILED") {
			bad = append(bad, line)
		}
	}
	return bad
}

// buildCacheLoad builds testdata/cacheload, a program that loads plugins
// through a cache directory as a server process does. Built with go
// build, it carries wazero's real version, where a test binary's build
// information has none (wazero calls it "dev").
func buildCacheLoad(t *testing.T) string {
	t.Helper()
	return testbin.Build(t, "./testdata/cacheload")
}

// runCacheLoad runs the cacheload program on dir and returns its log.
func runCacheLoad(t *testing.T, bin, dir string, rounds int, plugins ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out testbin.LockedBuffer
	cmd := exec.CommandContext(ctx, bin, append([]string{dir, strconv.Itoa(rounds)}, plugins...)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Errorf("cacheload: %v\n%s", err, out.String())
	}
	return out.String()
}

// Servers of two builds (here a test binary and a real one, whose wazero
// versions differ) sharing one cache directory: each keeps its entries in
// its own wazero directory, under the same names, and neither takes the
// other's for damaged ones.
func TestCompileCache_sharedWithAnotherWazeroBuild(t *testing.T) {
	t.Parallel()
	bin := buildCacheLoad(t)
	dir := t.TempDir()
	plugin := "testdata/wat/trap.wasm"
	loadHere := func() string {
		c, err := newCompileCache(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer c.wz.Close(context.Background())
		var logs testbin.LockedBuffer
		o := testOptions(t)
		o.Logger = hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Debug})
		b, err := load(context.Background(), plugin, o, c)
		if err != nil {
			t.Fatalf("load: %v", err)
		}
		b.Close()
		return logs.String()
	}
	var logs []string
	logs = append(logs, runCacheLoad(t, bin, dir, 1, plugin))
	des, _ := os.ReadDir(dir)
	var wazeroDirs []string
	for _, d := range des {
		if strings.HasPrefix(d.Name(), "wazero-") {
			wazeroDirs = append(wazeroDirs, d.Name())
		}
	}
	if len(wazeroDirs) != 1 || wazeroDirs[0] == filepath.Base(recordsDir(dir)) {
		t.Skipf("the program's wazero directory %v is this test's: no other version to share with", wazeroDirs)
	}
	logs = append(logs, loadHere())
	logs = append(logs, runCacheLoad(t, bin, dir, 1, plugin))
	logs = append(logs, loadHere())
	for i, l := range logs {
		if bad := cacheTrouble(l); len(bad) > 0 {
			t.Errorf("load %d (%s):\n%s", i+1, []string{"program", "test"}[i%2], strings.Join(bad, "\n"))
		}
	}
}

// Server processes sharing one cache directory (several servers on one
// machine, a test suite) load the same plugins at once: every load
// succeeds, and none removes an entry another has just written (which
// would cost a compile) or takes one for damaged.
func TestCompileCache_sharedByConcurrentProcesses(t *testing.T) {
	t.Parallel()
	bin := buildCacheLoad(t)
	dir := t.TempDir()
	plugins := []string{"testdata/wat/trap.wasm", "testdata/wat/loop.wasm", "testdata/wat/flood.wasm"}
	const processes, rounds = 4, 40
	logs := make([]string, processes)
	var wg sync.WaitGroup
	for i := range processes {
		// Each starts with another plugin, so compiles and sweeps overlap.
		ps := append(append([]string{}, plugins[i%len(plugins):]...), plugins[:i%len(plugins)]...)
		wg.Go(func() { logs[i] = runCacheLoad(t, bin, dir, rounds, ps...) })
	}
	wg.Wait()
	for i, l := range logs {
		if bad := cacheTrouble(l); len(bad) > 0 {
			t.Errorf("process %d: %d lines, e.g.:\n%s", i, len(bad), strings.Join(bad[:min(len(bad), 5)], "\n"))
		}
	}
}

// The same within one test process: separate cache objects on one
// directory stand for separate processes (each has its own in-process
// locks and wazero cache).
func TestCompileCache_sharedByConcurrentServers(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	files := []string{"testdata/wat/trap.wasm", "testdata/wat/loop.wasm", "testdata/wat/flood.wasm"}
	const servers, rounds = 4, 100
	deadline := time.Now().Add(60 * time.Second)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var bad []string
	for s := range servers {
		wg.Go(func() {
			for r := range rounds {
				if time.Now().After(deadline) {
					return
				}
				cache, err := newCompileCache(dir)
				if err != nil {
					t.Error(err)
					return
				}
				var logs testbin.LockedBuffer
				o := testOptions(t)
				o.Logger = hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Debug})
				f := files[(s+r)%len(files)]
				b, err := load(ctx, f, o, cache)
				if err != nil {
					t.Errorf("server %d round %d: load %s: %v", s, r, f, err)
				} else {
					if _, err := b.Get(ctx, "m", false, []string{"k"}); err != nil {
						t.Errorf("Get: %v", err)
					}
					b.Close()
				}
				cache.wz.Close(ctx)
				mu.Lock()
				bad = append(bad, cacheTrouble(logs.String())...)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(bad) > 0 {
		t.Fatalf("%d removals/warnings under contention, e.g.:\n%s", len(bad), strings.Join(bad[:min(len(bad), 10)], "\n"))
	}
}

// A process that holds the cache lock and does not let go (stopped in a
// debugger, say) delays other loads by lockWait at most: they then load
// without the lock, with a warning.
func TestCompileCache_heldLockDoesNotStopLoads(t *testing.T) {
	// Not parallel: it shortens lockWait for its run.
	defer func(w time.Duration) { lockWait = w }(lockWait)
	lockWait = 200 * time.Millisecond
	l := newCacheLoader(t, "testdata/wat/trap.wasm")
	c, err := newCompileCache(l.dir)
	if err != nil {
		t.Fatal(err)
	}
	c.wz.Close(context.Background())
	release, err := lockFile(context.Background(), c.lock, true)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	l.load()
	if runtime.GOOS == "linux" {
		l.wantLog("cannot lock the compilation cache")
	}
}

// TestMain removes the child programs testbin built.
func TestMain(m *testing.M) {
	code := m.Run()
	testbin.Cleanup()
	os.Exit(code)
}
