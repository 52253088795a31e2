package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/topgun-go/topgun/abi/abitest"
	"github.com/topgun-go/topgun/host/hosttest"
)

// runT runs the CLI with an environment holding only env, and returns its
// exit code and output.
func runT(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	code = runContext(context.Background(), args, &cli{stdout: &out, stderr: &errOut, lookupEnv: lookup})
	t.Logf("topgun %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out.String(), errOut.String())
	return code, out.String(), errOut.String()
}

func TestRun_usage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string // substring
		wantStderr string // substring
	}{
		{"no command", nil, exitUsage, "", "Usage: topgun COMMAND"},
		{"unknown command", []string{"frobnicate"}, exitUsage, "", `topgun: unknown command "frobnicate"`},
		{"help", []string{"help"}, exitOK, "plugin COMMAND", ""},
		{"-h", []string{"-h"}, exitOK, "plugin COMMAND", ""},
		{"help plugin", []string{"help", "plugin"}, exitOK, "test FILE.wasm", ""},
		{"help unknown", []string{"help", "nope"}, exitUsage, "", `unknown command "nope"`},
		{"plugin without subcommand", []string{"plugin"}, exitUsage, "", "Usage: topgun plugin COMMAND"},
		{"plugin unknown subcommand", []string{"plugin", "run"}, exitUsage, "", `topgun plugin: unknown command "run"`},
		{"plugin test -h", []string{"plugin", "test", "-h"}, exitOK, "Usage: topgun plugin test", ""},
		{"plugin test --help after file", []string{"plugin", "test", "x.wasm", "--help"}, exitOK, "-data-dir", ""},
		{"plugin inspect -h", []string{"plugin", "inspect", "-h"}, exitOK, "Usage: topgun plugin inspect", ""},
		{"test without file", []string{"plugin", "test"}, exitUsage, "", "want one plugin file, got 0 arguments"},
		{"test with two files", []string{"plugin", "test", "a.wasm", "b.wasm"}, exitUsage, "", "got 2 arguments"},
		{"test unknown flag", []string{"plugin", "test", "--bogus", "a.wasm"}, exitUsage, "", "flag provided but not defined: -bogus"},
		{"test flag without value", []string{"plugin", "test", "a.wasm", "--data-dir"}, exitUsage, "", "flag needs an argument"},
		{"test bad -run", []string{"plugin", "test", "-run", "[", "a.wasm"}, exitUsage, "", "is not a regular expression"},
		{"test -run matching nothing", []string{"plugin", "test", "-run", "NoSuchCase", "a.wasm"}, exitUsage, "", "no case matches"},
		{"test bad -log-level", []string{"plugin", "test", "-log-level", "loud", "a.wasm"}, exitUsage, "", `-log-level "loud" is unknown`},
		{"test bad -config", []string{"plugin", "test", "-config", "[1]", "a.wasm"}, exitUsage, "", "TOPGUN_PLUGIN_CONFIG is not a JSON object"},
		{"test reserved -config key", []string{"plugin", "test", "-config", `{"topgun.data_dir":"/etc"}`, "a.wasm"}, exitUsage, "", `key "topgun.data_dir" is reserved`},
		{"test bad -timeout", []string{"plugin", "test", "-timeout", "0s", "a.wasm"}, exitUsage, "", "-timeout 0s must be positive"},
		{"inspect without file", []string{"plugin", "inspect"}, exitUsage, "", "want one plugin file, got 0 arguments"},
		{"inspect unknown flag", []string{"plugin", "inspect", "-x", "a.wasm"}, exitUsage, "", "flag provided but not defined: -x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runT(t, nil, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d", code, tt.wantCode)
			}
			if !strings.Contains(stdout, tt.wantStdout) {
				t.Errorf("stdout does not contain %q", tt.wantStdout)
			}
			if !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("stderr does not contain %q", tt.wantStderr)
			}
			if code == exitUsage && !strings.Contains(stderr, "-h' for usage") && !strings.Contains(stderr, "Usage:") {
				t.Errorf("a usage error does not say how to get help")
			}
		})
	}
}

// TestRun_process runs the entry point main uses with the process's
// environment.
func TestRun_process(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	if code := run([]string{"plugin", "-h"}, &out, &errOut); code != exitOK || !strings.Contains(out.String(), "inspect FILE.wasm") || errOut.Len() != 0 {
		t.Fatalf("run(plugin -h) = %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	}
}

func TestRun_badEnvironment(t *testing.T) {
	t.Parallel()
	code, _, stderr := runT(t, map[string]string{"TOPGUN_PLUGIN_MEMORY_MB": "lots"}, "plugin", "test", "a.wasm")
	if code != exitUsage || !strings.Contains(stderr, "TOPGUN_PLUGIN_MEMORY_MB") {
		t.Fatalf("exit %d, stderr %q; want a usage error naming TOPGUN_PLUGIN_MEMORY_MB", code, stderr)
	}
	// The server's data directory setting is not used by the test command.
	code, _, stderr = runT(t, map[string]string{"TOPGUN_PLUGIN_DATA_DIR": "/nonexistent/dir"}, "plugin", "test", "missing.wasm")
	if code != exitFail || strings.Contains(stderr, "TOPGUN_PLUGIN_DATA_DIR") {
		t.Fatalf("exit %d, stderr %q; want a load failure that ignores TOPGUN_PLUGIN_DATA_DIR", code, stderr)
	}
}

func TestPluginCommands_badFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	text := filepath.Join(dir, "notes.wasm")
	if err := os.WriteFile(text, []byte("this is not wasm\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, file, want string
	}{
		{"not wasm", text, "not a wasm binary module"},
		{"missing", filepath.Join(dir, "missing.wasm"), "no such file"},
		{"directory", dir, "is a directory"},
	}
	for _, tt := range tests {
		for _, sub := range []string{"test", "inspect"} {
			t.Run(tt.name+"/"+sub, func(t *testing.T) {
				t.Parallel()
				code, stdout, stderr := runT(t, nil, "plugin", sub, tt.file)
				if code != exitFail {
					t.Errorf("exit code %d, want %d", code, exitFail)
				}
				if !strings.Contains(stderr, tt.want) || !strings.HasPrefix(stderr, "topgun plugin "+sub+": ") {
					t.Errorf("stderr %q does not report %q with the command's name", stderr, tt.want)
				}
				if strings.Contains(stdout, "passed") {
					t.Errorf("a plugin that does not load printed a summary: %q", stdout)
				}
			})
		}
	}
}

// countCases returns the number of cases, or of core cases.
func countCases(core bool) int {
	n := 0
	for _, c := range abitest.Cases() {
		if !core || c.Core {
			n++
		}
	}
	return n
}

func TestPluginTest_null(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a plugin for wasip1; skipped in -short mode")
	}
	t.Parallel()
	wasm := hosttest.BuildPlugin(t, "../../examples/plugins/null")
	code, stdout, _ := runT(t, nil, "plugin", "test", "-core", wasm)
	if code != exitOK {
		t.Fatalf("exit code %d, want 0", code)
	}
	n := countCases(true)
	if !strings.Contains(stdout, fmt.Sprintf("\n%d passed, 0 failed, 0 skipped\n", n)) {
		t.Errorf("stdout lacks the summary %q", fmt.Sprintf("%d passed, 0 failed, 0 skipped", n))
	}
	if !strings.HasPrefix(stdout, "plugin null.wasm (sha256 ") || !strings.Contains(stdout, `name "null", ABI 1.1, capabilities atomic_batch`) {
		t.Errorf("stdout does not start with the plugin's identity")
	}
	for _, c := range abitest.Cases() {
		if c.Core && !strings.Contains(stdout, "\nPASS "+c.Name+" (") {
			t.Errorf("no PASS line for core case %s", c.Name)
		}
	}
}

// TestPluginTest_notDurable checks that the durability case of a plugin
// that does not declare durable is skipped for that reason, in words a user
// of the command understands (not "Harness.Reopen is nil").
func TestPluginTest_notDurable(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a plugin for wasip1; skipped in -short mode")
	}
	t.Parallel()
	wasm := hosttest.BuildPlugin(t, "../../examples/plugins/null")
	code, stdout, _ := runT(t, nil, "plugin", "test", "-run", "^Durability/Reopen$", wasm)
	if code != exitOK {
		t.Fatalf("exit code %d, want 0", code)
	}
	for _, want := range []string{"\nSKIP Durability/Reopen: the backend does not declare CapDurable\n", "\n0 passed, 0 failed, 1 skipped\n"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q", want)
		}
	}
}

// TestPluginTest_logstore runs cases of the durable example plugin with
// -data-dir, where every case leaves its data directory, and checks that the
// plugin is reopened for the durability case. (The whole suite runs against
// this plugin in its own package.)
func TestPluginTest_logstore(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a plugin for wasip1; skipped in -short mode")
	}
	t.Parallel()
	wasm := hosttest.BuildPlugin(t, "../../examples/plugins/logstore/cmd/logstore")
	data := filepath.Join(t.TempDir(), "data")
	// A slow machine (and the race detector) must not fail a case on the
	// host's default 10s call deadline.
	env := map[string]string{"TOPGUN_PLUGIN_CALL_TIMEOUT": "2m"}
	code, stdout, _ := runT(t, env, "plugin", "test", wasm, "--data-dir", data, "-run", "^(Describe|Put/Get|Scan/Paging|Durability/Reopen)$")
	if code != exitOK {
		t.Fatalf("exit code %d, want 0", code)
	}
	if !strings.Contains(stdout, "capabilities durable, atomic_batch, expiry_index") {
		t.Errorf("stdout does not show the plugin's capabilities")
	}
	if !strings.Contains(stdout, "\nPASS Durability/Reopen (") {
		t.Errorf("the durability case did not pass: a durable plugin must be reopened")
	}
	if !strings.Contains(stdout, "\n4 passed, 0 failed, 0 skipped\n") {
		t.Errorf("stdout lacks the summary \"4 passed, 0 failed, 0 skipped\"")
	}
	entries, err := os.ReadDir(data)
	if err != nil {
		t.Fatal(err)
	}
	var reopen bool
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "Durability-Reopen-") {
			if _, err := os.Stat(filepath.Join(data, e.Name(), "logstore.log")); err == nil {
				reopen = true
			}
		}
	}
	if !reopen {
		t.Errorf("-data-dir %s has no Durability-Reopen-* directory holding the plugin's log; entries: %v", data, entries)
	}
}

// TestPluginTest_failure runs a plugin that claims durability it lacks:
// the durability case fails, the others pass, and the exit code is 1.
func TestPluginTest_failure(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a plugin for wasip1; skipped in -short mode")
	}
	t.Parallel()
	wasm := hosttest.BuildPlugin(t, "testdata/fakedurable")
	code, stdout, _ := runT(t, nil, "plugin", "test", "-run", "^(Describe|Put/Get|Durability/Reopen)$", wasm)
	if code != exitFail {
		t.Fatalf("exit code %d, want %d", code, exitFail)
	}
	for _, want := range []string{"\nPASS Describe (", "\nPASS Put/Get (", "\nFAIL Durability/Reopen (", "\n    after Reopen", "\n2 passed, 1 failed, 0 skipped\n"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q", want)
		}
	}
}

// TestPluginInspect checks the fields inspect prints, as text and as JSON,
// against the plugin file and what the plugin declares.
func TestPluginInspect(t *testing.T) {
	if testing.Short() {
		t.Skip("builds plugins for wasip1; skipped in -short mode")
	}
	t.Parallel()
	tests := []struct {
		pkg, name string
		caps      []string
		imports   string // one import the plugin must show
	}{
		{"../../examples/plugins/null", "null", []string{"atomic_batch"}, "wasi_snapshot_preview1.random_get(i32, i32) -> (i32)"},
		{"../../examples/plugins/logstore/cmd/logstore", "logstore", []string{"durable", "atomic_batch", "expiry_index"}, "topgun_v1.log(i32, i32, i32) -> ()"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wasm := hosttest.BuildPlugin(t, tt.pkg)
			bin, err := os.ReadFile(wasm)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(bin)
			wantSum := hex.EncodeToString(sum[:])

			code, stdout, _ := runT(t, nil, "plugin", "inspect", wasm)
			if code != exitOK {
				t.Fatalf("exit code %d, want 0", code)
			}
			for _, want := range []string{
				fmt.Sprintf("(%d bytes)", len(bin)),
				"sha256:       " + wantSum,
				"name:         " + tt.name,
				"abi:          1.1",
				"capabilities: " + strings.Join(tt.caps, ", "),
				"topgun_call(i32, i32) -> (i64)",
				tt.imports,
			} {
				if !strings.Contains(stdout, want) {
					t.Errorf("text output lacks %q", want)
				}
			}

			code, stdout, _ = runT(t, nil, "plugin", "inspect", "-json", wasm)
			if code != exitOK {
				t.Fatalf("-json: exit code %d, want 0", code)
			}
			var got inspectJSON
			if err := json.Unmarshal([]byte(stdout), &got); err != nil {
				t.Fatalf("-json output is not JSON: %v", err)
			}
			if got.Size != int64(len(bin)) || got.SHA256 != wantSum || got.Name != tt.name || got.ABIMajor != 1 ||
				strings.Join(got.Capabilities, ",") != strings.Join(tt.caps, ",") ||
				!slices.Contains(got.Exports, "topgun_buffer(i32) -> (i32)") || !slices.Contains(got.Imports, tt.imports) ||
				got.InitialMemoryPages == 0 {
				t.Errorf("-json output = %+v; want size %d, sha256 %s, name %s, ABI 1, capabilities %v, the ABI exports, import %s, memory", got, len(bin), wantSum, tt.name, tt.caps, tt.imports)
			}
		})
	}
}

// TestPluginInspect_jsonListsAreArrays checks that -json gives every list
// as an array, also when it is empty: a plugin that imports nothing (a
// minimal reactor in wat, C or Rust) must show "imports": [], not null, as
// capabilities already do, or `jq '.imports[]'` fails on it.
func TestPluginInspect_jsonListsAreArrays(t *testing.T) {
	t.Parallel()
	// minormix.wasm imports nothing.
	code, stdout, _ := runT(t, nil, "plugin", "inspect", "-json", "../../host/testdata/wat/minormix.wasm")
	if code != exitOK {
		t.Fatalf("exit code %d, want 0", code)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("-json output is not JSON: %v", err)
	}
	for _, k := range []string{"capabilities", "exports", "imports"} {
		if _, ok := got[k].([]any); !ok {
			t.Errorf("%q = %#v, want a JSON array", k, got[k])
		}
	}
}
