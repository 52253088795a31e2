package main

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/abi/abitest"
	"github.com/topgun-go/topgun/host"
)

// pluginCommands are the subcommands of "topgun plugin".
var pluginCommands = []command{
	{name: "inspect", args: "FILE.wasm", summary: "print a plugin's ABI version, name, capabilities, exports, imports, size and sha256", run: runPluginInspect},
	{name: "test", args: "FILE.wasm", summary: "run the conformance suite against a plugin", run: runPluginTest},
}

func runPlugin(ctx context.Context, c *cli, args []string) int {
	return c.dispatch(ctx, "topgun plugin", pluginCommands, args)
}

// envSettings lists the TOPGUN_PLUGIN_* settings the plugin commands read
// from the environment, as the server does.
const envSettings = `
Like the server, the command reads TOPGUN_PLUGIN_CACHE_DIR, TOPGUN_PLUGIN_SHA256,
TOPGUN_PLUGIN_MEMORY_MB, TOPGUN_PLUGIN_CALL_TIMEOUT, TOPGUN_PLUGIN_MAX_REQUEST_BYTES,
TOPGUN_PLUGIN_MAX_RESPONSE_BYTES, TOPGUN_PLUGIN_POOL_SIZE, TOPGUN_PLUGIN_TRUST,
TOPGUN_PLUGIN_BREAKER_FAILURES, TOPGUN_PLUGIN_BREAKER_WINDOW,
TOPGUN_PLUGIN_BREAKER_BACKOFF, TOPGUN_PLUGIN_BREAKER_MAX_BACKOFF,
TOPGUN_PLUGIN_DATA_MAX_MB and TOPGUN_PLUGIN_DATA_MAX_FILES from the
environment.
`

// hostOptions builds the host options from the environment, without the
// settings the command replaces (names in skip), and a logger writing to
// stderr at level.
func (c *cli) hostOptions(level string, skip ...string) (*host.Options, error) {
	lvl := hclog.LevelFromString(level)
	if lvl == hclog.NoLevel {
		return nil, fmt.Errorf("-log-level %q is unknown; use trace, debug, info, warn, error or off", level)
	}
	lookup := func(name string) (string, bool) {
		for _, s := range skip {
			if name == s {
				return "", false
			}
		}
		return c.lookupEnv(name)
	}
	o, err := host.OptionsFromEnv(lookup)
	if err != nil {
		return nil, err
	}
	o.Logger = hclog.New(&hclog.LoggerOptions{Name: "topgun", Level: lvl, Output: c.stderr})
	return o, nil
}

const pluginTestUsage = `Usage: topgun plugin test [flags] FILE.wasm

Runs the storage conformance suite against the plugin, loaded through the
wasm host exactly as the server loads it, and prints one line per case:

  PASS name (duration)
  FAIL name (duration), followed by the failure messages, indented
  SKIP name: why

then a summary "N passed, N failed, N skipped". Before the cases it calls the
plugin's describe before open, as inspect does, and stops if that fails.
Every case gets a fresh data directory. A plugin that declares the durable
capability is also closed and loaded again on the same directory to check
that its data survives. The exit status is 0 when no case failed, 1
otherwise, 2 for usage errors.
` + envSettings

func runPluginTest(ctx context.Context, c *cli, args []string) int {
	const prog = "topgun plugin test"
	fs := newFlagSet(prog, pluginTestUsage)
	dataDir := fs.String("data-dir", "", "keep each case's data in a new subdirectory of this directory (created if needed; locked, like a server's plugin data directory, while the test runs) instead of a temporary directory removed at the end")
	config := fs.String("config", "", "the plugin configuration, a JSON object like TOPGUN_PLUGIN_CONFIG (default: $TOPGUN_PLUGIN_CONFIG)")
	runExpr := fs.String("run", "", "run only the cases whose name matches this regular expression")
	core := fs.Bool("core", false, "run only the core cases: the basic semantics, quick on every backend")
	short := fs.Bool("short", false, "trim the heaviest cases (fewer random steps and goroutines, no values at the size limits)")
	timeout := fs.Duration("timeout", 30*time.Minute, "stop the run after this long; the cases not run are reported as skipped")
	logLevel := fs.String("log-level", "warn", "level of the host's and the plugin's log lines on stderr: trace, debug, info, warn, error or off")
	pos, code, done := c.parseFlags(fs, args)
	if done {
		return code
	}
	if len(pos) != 1 {
		return c.usageError(prog, "want one plugin file, got %d arguments", len(pos))
	}
	path := pos[0]
	var re *regexp.Regexp
	if *runExpr != "" {
		var err error
		if re, err = regexp.Compile(*runExpr); err != nil {
			return c.usageError(prog, "-run %q is not a regular expression: %v", *runExpr, err)
		}
	}
	if *timeout <= 0 {
		return c.usageError(prog, "-timeout %s must be positive", *timeout)
	}
	skip := []string{"TOPGUN_PLUGIN_DATA_DIR"}
	if *config != "" {
		skip = append(skip, "TOPGUN_PLUGIN_CONFIG")
	}
	opts, err := c.hostOptions(*logLevel, skip...)
	if err != nil {
		return c.usageError(prog, "%v", err)
	}
	if *config != "" {
		if opts.Config, err = host.ParseConfig(*config); err != nil {
			return c.usageError(prog, "-config: %v", err)
		}
		// hostOptions validated the environment's configuration; this one
		// replaces it, so check it too (reserved keys) as a usage error
		// rather than a load failure.
		if err := opts.Validate(); err != nil {
			return c.usageError(prog, "-config: %v", err)
		}
	}
	filter := func(tc abitest.Case) bool {
		return (!*core || tc.Core) && (re == nil || re.MatchString(tc.Name))
	}
	n := 0
	var names []string
	for _, tc := range abitest.Cases() {
		if filter(tc) {
			n++
		}
		names = append(names, tc.Name)
	}
	if n == 0 {
		return c.usageError(prog, "no case matches -run %q (and -core=%v); the cases are %s", *runExpr, *core, strings.Join(names, ", "))
	}

	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	base := *dataDir
	if base == "" {
		if base, err = os.MkdirTemp("", "topgun-plugin-test-"); err != nil {
			return c.fail(prog, err)
		}
		defer os.RemoveAll(base)
	} else {
		if err := os.MkdirAll(base, 0o755); err != nil {
			return c.fail(prog, fmt.Errorf("-data-dir: %w", err))
		}
		// The cases' directories go inside base: never inside the data
		// directory of a running server's plugin, and no server may load
		// one on it while they are there.
		release, err := host.LockDataDir(base)
		if err != nil {
			return c.fail(prog, fmt.Errorf("-data-dir: %w; give the test a directory of its own", err))
		}
		defer release()
	}

	pt := &pluginTester{path: path, opts: opts, base: base, ctx: ctx, dirs: map[abi.Backend]string{}}
	probe, err := pt.load("probe")
	if err != nil {
		return c.fail(prog, err)
	}
	desc := probe.Describe()
	fmt.Fprintf(c.stdout, "plugin %s (sha256 %s): name %q, ABI %d.%d, capabilities %s\n",
		probe.File(), probe.SHA256(), desc.Name, desc.ABIMajor, desc.ABIMinor, capNames(desc.Capabilities))
	if err := probe.Close(); err != nil {
		return c.fail(prog, fmt.Errorf("close after the first load: %w", err))
	}
	// Every case loads the file again: the results printed under this
	// sha256 must be those of this file, not of one rebuilt meanwhile.
	pt.sum = probe.SHA256()
	// The server keeps the description open returns and never calls
	// describe, which `topgun plugin inspect` calls before open (WASM.md):
	// without this, a plugin could pass every case and fail inspect.
	// A file replaced since the probe is not judged here: the cases
	// report the change.
	info, err := host.Inspect(ctx, path, opts)
	if err == nil && info.SHA256 == pt.sum && info.Name != desc.Name {
		err = fmt.Errorf("describe names the plugin %q, open names it %q; the two must agree", info.Name, desc.Name)
	}
	if err != nil && info.SHA256 == pt.sum {
		return c.fail(prog, fmt.Errorf("describe before open (as topgun plugin inspect calls it): %w", err))
	}

	// Reopen is always set: the durability case skips a plugin that does not
	// declare durable, saying so, rather than naming the harness field.
	h := abitest.Harness{Open: pt.open, Reopen: pt.reopen, Short: *short}
	passed, failed, skipped := abitest.Run(ctx, c.stdout, h, filter)
	fmt.Fprintf(c.stdout, "%d passed, %d failed, %d skipped\n", passed, failed, skipped)
	if err := ctx.Err(); err != nil {
		fmt.Fprintf(c.stderr, "%s: run stopped early: %v\n", prog, context.Cause(ctx))
		return exitFail
	}
	if failed > 0 {
		return exitFail
	}
	return exitOK
}

func capNames(c abi.Capability) string {
	if names := c.Names(); len(names) > 0 {
		return strings.Join(names, ", ")
	}
	return "none"
}

// pluginTester loads the plugin for the conformance cases, each backend on
// its own data directory under base.
type pluginTester struct {
	path string
	opts *host.Options
	base string
	ctx  context.Context
	sum  string // the file's sha256 at the first load; later loads must match

	mu   sync.Mutex
	dirs map[abi.Backend]string
}

// load loads the plugin on a new data directory named after name.
func (pt *pluginTester) load(name string) (*host.Backend, error) {
	dir, err := os.MkdirTemp(pt.base, dirName(name)+"-")
	if err != nil {
		return nil, err
	}
	return pt.loadIn(dir)
}

func (pt *pluginTester) loadIn(dir string) (*host.Backend, error) {
	o := *pt.opts
	o.DataDir = dir
	b, err := host.Load(pt.ctx, pt.path, &o)
	if err != nil {
		return nil, err
	}
	if pt.sum != "" && b.SHA256() != pt.sum {
		_ = b.Close()
		return nil, fmt.Errorf("%s changed during the run: it has sha256 %s, the run began with %s", pt.path, b.SHA256(), pt.sum)
	}
	pt.mu.Lock()
	pt.dirs[b] = dir
	pt.mu.Unlock()
	return b, nil
}

func (pt *pluginTester) open(t abitest.TB) abi.Backend {
	b, err := pt.load(t.Name())
	if err != nil {
		t.Fatalf("load the plugin: %v", err)
	}
	return b
}

func (pt *pluginTester) reopen(t abitest.TB, b abi.Backend) abi.Backend {
	pt.mu.Lock()
	dir, ok := pt.dirs[b]
	delete(pt.dirs, b)
	pt.mu.Unlock()
	if !ok {
		t.Fatalf("Reopen of a backend this harness did not open")
	}
	if err := b.Close(); err != nil {
		t.Fatalf("close before reopening: %v", err)
	}
	nb, err := pt.loadIn(dir)
	if err != nil {
		t.Fatalf("load the plugin again on the same data directory: %v", err)
	}
	return nb
}

// dirName turns a case name like "Durability/Reopen" into a directory name.
func dirName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '-'
	}, s)
}
