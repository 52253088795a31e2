package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// TestPluginInspect_exportNameCannotForgeOutput inspects a plugin exporting
// a function whose name holds a newline, a forged "capabilities:" line and
// terminal escapes. inspect is how an operator looks at a third-party
// file before running it: its text must show one line per export, with no
// byte of the name reaching the terminal as a control character.
func TestPluginInspect_exportNameCannotForgeOutput(t *testing.T) {
	t.Parallel()
	const wasm = "testdata/wat/ctrlexport.wasm"
	const evil = "x\ncapabilities: durable, shared\x1b[2J\x1b[31m() -> (i32)"
	env := map[string]string{"TOPGUN_PLUGIN_CACHE_DIR": t.TempDir()}
	code, stdout, _ := runT(t, env, "plugin", "inspect", wasm)
	if code != exitOK {
		t.Fatalf("exit code %d, want 0", code)
	}
	if i := strings.IndexFunc(stdout, func(r rune) bool { return r < ' ' && r != '\n' || r == 0x7f }); i >= 0 {
		t.Errorf("stdout holds control character %q at byte %d", stdout[i], i)
	}
	var caps []string
	for _, line := range strings.Split(stdout, "\n") {
		if strings.HasPrefix(line, "capabilities:") {
			caps = append(caps, line)
		}
	}
	if len(caps) != 1 || caps[0] != "capabilities: atomic_batch" {
		t.Errorf("capabilities lines %q; want only %q", caps, "capabilities: atomic_batch")
	}
	if !strings.Contains(stdout, "              "+`"x\ncapabilities: durable, shared\x1b[2J\x1b[31m() -> (i32)"`+"\n") {
		t.Errorf("stdout does not show the odd export quoted on its own line")
	}

	// JSON escapes by itself: -json keeps the name as the file has it.
	code, stdout, _ = runT(t, env, "plugin", "inspect", "-json", wasm)
	if code != exitOK {
		t.Fatalf("-json: exit code %d, want 0", code)
	}
	var got inspectJSON
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("-json output is not JSON: %v", err)
	}
	if !slices.Contains(got.Exports, evil) {
		t.Errorf("-json exports %q lack %q", got.Exports, evil)
	}
}

// TestPluginInspect_describedABIMajor inspects a plugin whose
// topgun_abi_version says 1.0 while its description says ABI 2.0: the
// server refuses it at load (as does plugin test), so inspect must fail
// too, naming both versions, rather than print "abi: 1.0" and exit 0.
func TestPluginInspect_describedABIMajor(t *testing.T) {
	t.Parallel()
	const wasm = "testdata/wat/descv2.wasm"
	env := map[string]string{"TOPGUN_PLUGIN_CACHE_DIR": t.TempDir()}
	for _, sub := range [][]string{{"inspect"}, {"inspect", "-json"}, {"test", "-core"}} {
		code, stdout, stderr := runT(t, env, append(append([]string{"plugin"}, sub...), wasm)...)
		if code != exitFail {
			t.Errorf("%s: exit code %d, want %d", sub, code, exitFail)
		}
		if !strings.Contains(stderr, "storage ABI 2.0") || !strings.Contains(stderr, "implements 1.") {
			t.Errorf("%s: stderr %q does not name both ABI versions", sub, stderr)
		}
		if stdout != "" {
			t.Errorf("%s: stdout %q; want nothing for a plugin the server refuses", sub, stdout)
		}
	}
}

// TestPluginCommands_importNameCannotForgeOutput loads a module importing
// a function whose name holds a newline, a forged line and a terminal
// escape: the refusal naming the import must stay one line of printable
// text on stderr.
func TestPluginCommands_importNameCannotForgeOutput(t *testing.T) {
	t.Parallel()
	const wasm = "testdata/wat/ctrlimport.wasm"
	env := map[string]string{"TOPGUN_PLUGIN_CACHE_DIR": t.TempDir()}
	for _, sub := range []string{"inspect", "test"} {
		code, _, stderr := runT(t, env, "plugin", sub, wasm)
		if code != exitFail {
			t.Errorf("%s: exit code %d, want %d", sub, code, exitFail)
		}
		if !strings.Contains(stderr, `it imports "env.x\ntopgun plugin inspect: ok\x1b[2J"; plugins may import only from`) {
			t.Errorf("%s: stderr does not name the import quoted", sub)
		}
		if msg := strings.TrimSuffix(stderr, "\n"); strings.IndexFunc(msg, func(r rune) bool { return r < ' ' || r == 0x7f }) >= 0 {
			t.Errorf("%s: stderr %q holds control characters besides its final newline", sub, stderr)
		}
	}
}

// TestPluginTest_describeBeforeOpen tests a plugin that answers open but
// traps in describe, which the server never calls and inspect calls before
// open: certifying it would pass a plugin that inspect cannot show.
func TestPluginTest_describeBeforeOpen(t *testing.T) {
	t.Parallel()
	const wasm = "testdata/wat/nodescribe.wasm"
	env := map[string]string{"TOPGUN_PLUGIN_CACHE_DIR": t.TempDir()}
	code, stdout, stderr := runT(t, env, "plugin", "test", "-log-level", "off", "-run", "^Describe$", wasm)
	if code != exitFail {
		t.Errorf("exit code %d, want %d", code, exitFail)
	}
	if !strings.Contains(stderr, "describe before open") || !strings.Contains(stderr, "trapped") {
		t.Errorf("stderr %q does not report the describe that traps", stderr)
	}
	if strings.Contains(stdout, "passed") {
		t.Errorf("stdout %q; want no summary for a plugin inspect cannot describe", stdout)
	}
}
