package host

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/topgun-go/topgun/abi"
)

// A plugin whose topgun_abi_version says 1.0 gets no apply_runs (an ABI
// 1.1 op), even when its description claims 1.1: WASM.md promises that
// the host never sends an op newer than the plugin's minor, and a plugin
// written from the checklist (topgun_abi_version = 0x00010000) may still
// describe itself with the minor of the document's title.
func TestLoad_minorIsTheLowerOfBothReports(t *testing.T) {
	t.Parallel()
	b := mustLoad(t, "testdata/wat/minormix.wasm", nil)
	batch := &abi.Batch{Now: 1}
	batch.Put("m", "k", false, []byte("v"), 0)
	if err := b.Apply(context.Background(), batch); err != nil {
		t.Fatalf("Apply: %v (the host sent an op the plugin's topgun_abi_version does not offer)", err)
	}
}

// A plugin reporting 1.1 in both places but answering apply_runs
// unsupported (built with the 1.0 ops only) would have every write
// refused: Load refuses it, naming the op and the minor.
func TestLoad_minorOneWithoutApplyRuns(t *testing.T) {
	t.Parallel()
	bin, err := os.ReadFile("testdata/wat/minormix.wasm")
	if err != nil {
		t.Fatal(err)
	}
	// topgun_abi_version 0x10001; the description already says 1.1.
	bad := bytes.Replace(bin, []byte("\x00\x41\x80\x80\x04\x0b"), []byte("\x00\x41\x81\x80\x04\x0b"), 1)
	if bytes.Equal(bad, bin) {
		t.Fatal("minormix.wasm does not hold its version where expected")
	}
	path := filepath.Join(t.TempDir(), "minorone.wasm")
	if err := os.WriteFile(path, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := Load(context.Background(), path, testOptions(t))
	if err == nil {
		batch := &abi.Batch{Now: 1}
		batch.Put("m", "k", false, []byte("v"), 0)
		err := b.Apply(context.Background(), batch)
		_ = b.Close()
		t.Fatalf("Load succeeded; then Apply: %v", err)
	}
	t.Log(err)
	for _, w := range []string{"plugin minorone.wasm", "storage ABI 1.1", "apply_runs", "unsupported", "report minor 0"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
}

// The other way round: topgun_abi_version says 1.1 (as every Go SDK
// plugin's does) while the description says 1.0 (a Go backend whose
// Describe sets ABIMajor but not ABIMinor). The host speaks 1.0 with it,
// so plugin test (which prints Describe) and inspect must both say 1.0,
// not the 1.1 the server does not use.
func TestLoad_describedMinorLowerThanExport(t *testing.T) {
	t.Parallel()
	bin, err := os.ReadFile("testdata/wat/minormix.wasm")
	if err != nil {
		t.Fatal(err)
	}
	// Same lengths, so the module stays valid: the body of
	// topgun_abi_version (no locals, i32.const 0x10000, end) and the
	// description [name "mixed", 1, 1, 4].
	bad := bytes.Replace(bin, []byte("\x00\x41\x80\x80\x04\x0b"), []byte("\x00\x41\x81\x80\x04\x0b"), 1)
	bad = bytes.Replace(bad, []byte("\xa5mixed\x01\x01\x04"), []byte("\xa5mixed\x01\x00\x04"), 1)
	if bytes.Count(bad, []byte("\x41\x81\x80\x04")) != 1 || !bytes.Contains(bad, []byte("\xa5mixed\x01\x00")) {
		t.Fatal("minormix.wasm does not hold its version and description where expected")
	}
	path := filepath.Join(t.TempDir(), "minorlow.wasm")
	if err := os.WriteFile(path, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	info, err := Inspect(context.Background(), path, testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	if info.ABIMajor != 1 || info.ABIMinor != 0 {
		t.Errorf("Inspect says ABI %d.%d, want 1.0, the version the server speaks", info.ABIMajor, info.ABIMinor)
	}
	b := mustLoad(t, path, nil)
	if d := b.Describe(); d.ABIMajor != 1 || d.ABIMinor != 0 {
		t.Errorf("Describe says ABI %d.%d, want 1.0", d.ABIMajor, d.ABIMinor)
	}
	// The minor reported for a plugin exporting 1.0 and describing 1.1.
	if d := mustLoad(t, "testdata/wat/minormix.wasm", nil).Describe(); d.ABIMinor != 0 {
		t.Errorf("minormix: Describe says ABI %d.%d, want 1.0, the version the server speaks", d.ABIMajor, d.ABIMinor)
	}
}

// stage makes the liar (testdata/wat/liar.wasm) answer its next call with
// the given status, length and body.
func stage(t *testing.T, b *Backend, status, length uint32, body []byte) {
	t.Helper()
	in, _, err := b.pool.acquire(context.Background(), abi.CallGet, false)
	if err != nil {
		t.Fatalf("acquire: %v", err)
	}
	defer b.pool.release(in)
	var result [8]byte
	for i := range result {
		result[i] = byte(abi.PackResult(status, length) >> (8 * i))
	}
	if !in.mem.Write(16, result[:]) || !in.mem.WriteUint32Le(24, 1) || !in.mem.Write(0x20000, body) {
		t.Fatal("staging outside the liar's memory")
	}
}

// The answers WASM.md section 3.2 describes beyond the malformed ones of
// TestFault: an error message over 4096 bytes is cut, not malformed; the
// buffer-moved flag is followed with an error code too; a non-empty
// success response of apply is malformed.
func TestRoundTrip_documentedAnswers(t *testing.T) {
	t.Parallel()
	o := testOptions(t)
	o.BreakerFailures = -1
	b := mustLoad(t, "testdata/wat/liar.wasm", o)
	ctx := context.Background()
	apply := func() error { return b.Apply(ctx, &abi.Batch{Now: 1}) }

	long := make([]byte, 5000)
	for i := range long {
		long[i] = 'x'
	}
	stage(t, b, uint32(abi.CodeConflict)|abi.StatusBufferMoved, uint32(len(long)), long)
	err := apply()
	if !errors.Is(err, abi.ErrConflict) || abi.IsMalformed(err) {
		t.Fatalf("error message of 5000 bytes with a moved buffer: %v, want a conflict", err)
	}
	if msg := err.Error(); !strings.HasSuffix(msg, ": "+string(long[:abi.MaxErrorMessageBytes])) {
		t.Errorf("message of %d bytes, want the plugin's cut at %d", len(msg), abi.MaxErrorMessageBytes)
	}
	if st := b.Stats(); st.InstancesDiscarded != 0 {
		t.Errorf("an error answer discarded the instance: %+v", st)
	}

	stage(t, b, 0, 1, []byte{0x90})
	if err := apply(); !abi.IsMalformed(err) {
		t.Fatalf("apply answered with a body: %v, want a malformed response", err)
	}
	if err := apply(); err != nil {
		t.Fatalf("the call after a malformed answer: %v", err)
	}
}

// WASM.md section 3.3: a get answered with a record of a key it did not
// ask for is malformed whatever the count, and discards the instance;
// records of asked keys pass in any order.
func TestRoundTrip_getOfKeysNotAsked(t *testing.T) {
	t.Parallel()
	// Records answering a get: each [key, bin "v", 0, 0, 0].
	records := func(keys ...string) []byte {
		b := []byte{0x90 | byte(len(keys))}
		for _, k := range keys {
			b = append(b, 0x95, 0xa0|byte(len(k)))
			b = append(b, k...)
			b = append(b, 0xc4, 1, 'v', 0, 0, 0)
		}
		return b
	}
	for _, tc := range []struct {
		name   string
		keys   []string
		answer []byte
		ok     bool
	}{
		{"another key", []string{"k"}, records("x"), false},
		{"no key asked", nil, records("k"), false},
		{"one asked, one not", []string{"a", "b"}, records("a", "c"), false},
		{"asked keys", []string{"a", "b", "c"}, records("a", "c"), true},
		{"asked keys out of order", []string{"a", "b"}, records("b", "a"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := testOptions(t)
			o.BreakerFailures = -1
			b := mustLoad(t, "testdata/wat/liar.wasm", o)
			stage(t, b, 0, uint32(len(tc.answer)), tc.answer)
			recs, err := b.Get(context.Background(), "m", false, tc.keys)
			discarded := b.Stats().InstancesDiscarded
			if tc.ok {
				if err != nil || len(recs) != bytes.Count(tc.answer, []byte{0x95}) || discarded != 0 {
					t.Fatalf("Get(%q) = %d records, %v (%d instances discarded), want the answer taken", tc.keys, len(recs), err, discarded)
				}
				return
			}
			if !errors.Is(err, abi.ErrInternal) || !abi.IsMalformed(err) || !strings.Contains(err.Error(), "did not ask for") || discarded != 1 {
				t.Fatalf("Get(%q) = %d records, %v (%d instances discarded), want a malformed response discarding the instance", tc.keys, len(recs), err, discarded)
			}
			t.Log(err)
		})
	}
}

// WASM.md section 3.1: a topgun_buffer that answers 0 keeps its old
// buffer, so the op that needed more fails with code 6 and the instance
// is kept (the liar's buffer never grows past 64 KiB).
func TestRoundTrip_bufferThatCannotGrow(t *testing.T) {
	t.Parallel()
	b := mustLoad(t, "testdata/wat/liar.wasm", nil)
	ctx := context.Background()
	batch := &abi.Batch{Now: 1}
	batch.Put("m", "k", false, make([]byte, 100<<10), 0)
	if err := b.Apply(ctx, batch); !errors.Is(err, abi.ErrResourceExhausted) || abi.IsMalformed(err) {
		t.Fatalf("apply of a request over the buffer the plugin can grow: %v, want resource exhausted", err)
	}
	if err := b.Apply(ctx, &abi.Batch{Now: 1}); err != nil {
		t.Fatalf("the call after: %v", err)
	}
	if st := b.Stats(); st.InstancesDiscarded != 0 || st.InstancesStarted != 1 {
		t.Errorf("a buffer that cannot grow cost the instance: %+v", st)
	}
}

// WASM.md section 6: a plugin's stdout and stderr are no terminal.
// fd_fdstat_get reports them as block devices (WASI file type 1), not
// character devices (2), so wasi-libc's isatty is false and its stdio
// buffers a C plugin's stdout fully: the document tells C authors to ask
// for line buffering, flush, or log otherwise.
func TestSandbox_stdioIsNoTerminal(t *testing.T) {
	t.Parallel()
	b := mustLoad(t, "testdata/wat/stdiotype.wasm", nil)
	got, err := b.ListMaps(context.Background())
	if err != nil {
		t.Fatalf("ListMaps: %v", err)
	}
	if len(got) != 1 || got[0] != "11" {
		t.Fatalf("WASI file types of stdout and stderr: %q, want block devices (\"11\") as WASM.md says", got)
	}
}

// A plugin built against a newer minor of the ABI (both reports say 1.2)
// loads, and the host speaks its own minor with it: plugin test (through
// Describe) and inspect report that one, not the plugin's 1.2, which the
// server does not speak.
func TestLoad_newerMinorReportsTheHostsMinor(t *testing.T) {
	t.Parallel()
	bin, err := os.ReadFile("testdata/wat/minormix.wasm")
	if err != nil {
		t.Fatal(err)
	}
	// topgun_abi_version 0x10002 and the description [name "mixed", 1, 2, 4],
	// same lengths as in TestLoad_describedMinorLowerThanExport.
	newer := bytes.Replace(bin, []byte("\x00\x41\x80\x80\x04\x0b"), []byte("\x00\x41\x82\x80\x04\x0b"), 1)
	newer = bytes.Replace(newer, []byte("\xa5mixed\x01\x01\x04"), []byte("\xa5mixed\x01\x02\x04"), 1)
	// A 1.2 plugin has apply_runs: op 9 answers i64.const 0 (padded to
	// the length of the unsupported status it replaces).
	newer = bytes.Replace(newer, []byte("\x42\x8a\x80\x80\x80\xd0\x00"), []byte("\x42\x80\x80\x80\x80\x80\x00"), 1)
	if !bytes.Contains(newer, []byte("\x00\x41\x82\x80\x04\x0b")) || !bytes.Contains(newer, []byte("\xa5mixed\x01\x02\x04")) ||
		!bytes.Contains(newer, []byte("\x42\x80\x80\x80\x80\x80\x00")) {
		t.Fatal("minormix.wasm does not hold its version, description and apply_runs status where expected")
	}
	path := filepath.Join(t.TempDir(), "minornewer.wasm")
	if err := os.WriteFile(path, newer, 0o644); err != nil {
		t.Fatal(err)
	}
	info, err := Inspect(context.Background(), path, testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	if info.ABIMinor != abi.VersionMinor {
		t.Errorf("Inspect says ABI %d.%d, want %d.%d, the version the server speaks", info.ABIMajor, info.ABIMinor, abi.VersionMajor, abi.VersionMinor)
	}
	if d := mustLoad(t, path, nil).Describe(); d.ABIMinor != abi.VersionMinor {
		t.Errorf("Describe says ABI %d.%d, want %d.%d, the version the server speaks", d.ABIMajor, d.ABIMinor, abi.VersionMajor, abi.VersionMinor)
	}
}
