package host

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/topgun-go/topgun/abi"
)

// The load errors are the user interface of a plugin problem, so these
// tests check that each names the facts the user needs (the file, both
// versions, the missing exports, both hashes), not just that Load failed.

func TestLoad_errors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		file string
		opts func(o *Options)
		want []string
	}{
		{"NotWasm", "testdata/wat/notwasm.wasm", nil, []string{"plugin notwasm.wasm", "not a wasm binary module"}},
		{"MissingFile", "testdata/wat/nope.wasm", nil, []string{"plugin nope.wasm", "no such file"}},
		{"MissingExports", "testdata/wat/noexports.wasm", nil, []string{"plugin noexports.wasm", "missing exports", "topgun_abi_version", "topgun_buffer", "topgun_call"}},
		{"Command", "testdata/wat/command.wasm", nil, []string{"command module", "-buildmode=c-shared", "_initialize"}},
		{"RustCdylib", "testdata/wat/rustcdylib.wasm", nil, []string{"plugin rustcdylib.wasm", "missing exports _initialize"}},
		{"WrongMajorImport", "testdata/wat/v2import.wasm", nil, []string{"plugin v2import.wasm", "storage ABI 2", "topgun_v2.log", "implements 1.1"}},
		{"WrongMajorExport", "testdata/wat/v2export.wasm", nil, []string{"plugin v2export.wasm", "storage ABI 2.3", "implements 1.1"}},
		{"BadSignature", "testdata/wat/badsig.wasm", nil, []string{"topgun_call", "signature (i32) -> (i32)", "want (i32, i32) -> (i64)"}},
		{"ExceptionHandling", "testdata/wat/exceptions.wasm", nil, []string{"plugin exceptions.wasm: invalid wasm module", "exception-handling"}},
		{"TailCall", "testdata/wat/tailcall.wasm", nil, []string{"plugin tailcall.wasm: invalid wasm module", "tail-call"}},
		{"InitTrap", "testdata/wat/inittrap.wasm", nil, []string{"plugin inittrap.wasm", "initialize", "trapped", "unreachable"}},
		{"InitNeverReturns", "testdata/wat/initloop.wasm", func(o *Options) { o.CallTimeout = 300 * time.Millisecond }, []string{"plugin initloop.wasm", "initialize", "did not finish within 300ms"}},
		{"MemoryLimitAtInit", "testdata/wat/bigmem.wasm", nil, []string{"plugin bigmem.wasm", "limit of 256 MiB", "TOPGUN_PLUGIN_MEMORY_MB"}},
		{"FrameOverTheStackLimit", "testdata/wat/hugeframe.wasm", nil, []string{"plugin hugeframe.wasm", "frame is estimated at", "over the call stack limit", "TOPGUN_PLUGIN_TRUST=trusted"}},
		{"BadOptions", "testdata/wat/noexports.wasm", func(o *Options) { o.Trust = "yolo"; o.MemoryLimitMB = -1 }, []string{"TOPGUN_PLUGIN_TRUST", "TOPGUN_PLUGIN_MEMORY_MB"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := testOptions(t)
			if tc.opts != nil {
				tc.opts(o)
			}
			start := time.Now()
			b, err := Load(context.Background(), tc.file, o)
			if err == nil {
				b.Close()
				t.Fatalf("Load(%s) succeeded, want an error", tc.file)
			}
			if time.Since(start) > 20*time.Second {
				t.Errorf("Load took %s", time.Since(start))
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Load(%s) error %q does not mention %q", tc.file, err, w)
				}
			}
		})
	}
}

func TestLoad_sha256Pin(t *testing.T) {
	t.Parallel()
	path := nullWasm(t)
	bin, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(bin)
	good := hex.EncodeToString(sum[:])
	bad := strings.Repeat("ab", 32)

	o := testOptions(t)
	o.SHA256 = bad
	if _, err := Load(context.Background(), path, o); err == nil {
		t.Fatal("Load with a wrong sha256 pin succeeded")
	} else if !strings.Contains(err.Error(), good) || !strings.Contains(err.Error(), bad) {
		t.Errorf("sha256 mismatch error %q does not name both hashes", err)
	}

	o.SHA256 = strings.ToUpper(good)
	b := mustLoad(t, path, o)
	if b.SHA256() != good {
		t.Errorf("SHA256() = %s, want %s", b.SHA256(), good)
	}
}

// TestHostile_malformedResults loads a hand-written plugin whose data ops
// return garbage, oversized lengths, reserved status bits or trap: each
// call fails with CodeInternal naming the plugin and op, the instance is
// replaced, and the next call works.
func TestHostile_malformedResults(t *testing.T) {
	t.Parallel()
	b := mustLoad(t, "testdata/wat/hostile.wasm", nil)
	ctx := context.Background()
	apply := func() {
		t.Helper()
		if err := b.Apply(ctx, &abi.Batch{Now: 1}); err != nil {
			t.Fatalf("Apply after a failure: %v", err)
		}
	}
	apply()
	ops := []struct {
		op   string
		call func() error
	}{
		{"get", func() error { _, err := b.Get(ctx, "m", false, []string{"k"}); return err }},
		{"scan", func() error { _, err := b.Scan(ctx, abi.ScanRequest{Map: "m"}); return err }},
		{"list_maps", func() error { _, err := b.ListMaps(ctx); return err }},
		{"list_expired", func() error { _, err := b.ListExpired(ctx, 1, 1); return err }},
	}
	for i, o := range ops {
		err := o.call()
		if !errors.Is(err, abi.ErrInternal) {
			t.Errorf("%s: err = %v, want CodeInternal", o.op, err)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "plugin hostile.wasm: "+o.op+": ") {
			t.Errorf("%s: error %q does not start with the plugin and op", o.op, err)
		}
		apply()
		st := b.Stats()
		if st.InstancesStarted != int64(i+2) || st.InstancesDiscarded != int64(i+1) || st.Failures != int64(i+1) || st.Live != 1 {
			t.Errorf("after %s: stats %+v, want %d started, %d discarded and failed, 1 live (a fresh instance after each failure)", o.op, st, i+2, i+1)
		}
	}
}

func hostileWasm(t testing.TB) string { return buildTestPlugin(t, "hostile") }

func buildTestPlugin(t testing.TB, name string) string {
	t.Helper()
	return buildPlugin(t, filepath.Join("testdata", "plugins", name))
}

// A plugin's name goes into logs and a metric label (which must be valid
// UTF-8, or the metrics library panics): a description whose name is not
// valid UTF-8 is a malformed result, and the plugin does not load.
func TestLoad_badName(t *testing.T) {
	t.Parallel()
	bin, err := os.ReadFile("testdata/wat/loop.wasm")
	if err != nil {
		t.Fatal(err)
	}
	// loop.wasm describes itself as "loop" (the str "\xa4loop" in a data
	// segment); same length, so the module stays valid.
	bad := bytes.Replace(bin, []byte("\xa4loop"), []byte("\xa4lo\xffp"), 1)
	if bytes.Equal(bad, bin) {
		t.Fatal("loop.wasm does not hold its name where expected")
	}
	path := filepath.Join(t.TempDir(), "badname.wasm")
	if err := os.WriteFile(path, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := Load(context.Background(), path, testOptions(t))
	if err == nil {
		b.Close()
		t.Fatal("a plugin named with invalid UTF-8 loaded")
	}
	for _, w := range []string{"plugin badname.wasm", "malformed", "not valid UTF-8"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
}

// A custom section means nothing to the runtime, but wazero refuses a
// module whose last section is an empty one when it keeps custom sections
// (debug info, on for unmetered code). A plugin ending in such sections
// loads in both trust modes, from the compilation cache too, its pin and
// SHA256 being those of the file as given; Inspect reads it as well.
func TestLoad_trailingEmptyCustomSections(t *testing.T) {
	t.Parallel()
	bin, err := os.ReadFile("testdata/wat/evil.wasm")
	if err != nil {
		t.Fatal(err)
	}
	// Two custom sections named "x" with no payload, then one named "y".
	bin = append(bytes.Clone(bin), 0x00, 0x02, 0x01, 'x', 0x00, 0x02, 0x01, 'x', 0x00, 0x02, 0x01, 'y')
	path := filepath.Join(t.TempDir(), "tail.wasm")
	if err := os.WriteFile(path, bin, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(bin)
	pin := hex.EncodeToString(sum[:])
	cacheDir := t.TempDir()
	ctx := context.Background()
	for _, trust := range []Trust{TrustTrusted, TrustSandboxed} {
		for _, round := range []string{"compiled", "cached"} {
			o := testOptions(t)
			o.Trust, o.CacheDir, o.SHA256 = trust, cacheDir, pin
			b, err := Load(ctx, path, o)
			if err != nil {
				t.Fatalf("%s, %s: Load: %v", trust, round, err)
			}
			if err := b.Apply(ctx, &abi.Batch{Now: 1}); err != nil {
				t.Errorf("%s, %s: Apply: %v", trust, round, err)
			}
			if b.SHA256() != pin {
				t.Errorf("%s, %s: SHA256() = %s, want the file's %s", trust, round, b.SHA256(), pin)
			}
			b.Close()
		}
		o := testOptions(t)
		o.Trust = trust
		if info, err := Inspect(ctx, path, o); err != nil || info.SHA256 != pin {
			t.Errorf("%s: Inspect = %+v, %v; want the plugin with the file's hash", trust, info, err)
		}
	}
}
