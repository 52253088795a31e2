package meter

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

func shapes(t testing.TB) []byte {
	bin, err := os.ReadFile("testdata/shapes.wasm")
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

var errStop = errors.New("stopped by the meter")

var errStack = errors.New("the call stack passed its limit")

// testStackLimit is the stack limit of the tests that do not test it.
const testStackLimit = 1 << 20

// meterHost counts check calls and stops the guest after stopAfter of them
// (never when stopAfter is 0).
type meterHost struct {
	budget     int32
	calls      int
	stopAfter  int
	stackCalls int
}

// instantiate runs bin with the env import of shapes.wat and, for metered
// modules, the check import.
func instantiate(t *testing.T, bin []byte, h *meterHost) api.Module {
	t.Helper()
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler())
	t.Cleanup(func() { rt.Close(ctx) })
	_, err := rt.NewHostModuleBuilder("env").NewFunctionBuilder().
		WithFunc(func(x int32) int32 { return 2 * x }).Export("twice").Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h != nil {
		_, err = rt.NewHostModuleBuilder(ImportModule).NewFunctionBuilder().
			WithFunc(func() int32 {
				h.calls++
				if h.stopAfter > 0 && h.calls >= h.stopAfter {
					panic(errStop)
				}
				return h.budget
			}).Export(ImportName).
			NewFunctionBuilder().WithFunc(func() {
			h.stackCalls++
			panic(errStack)
		}).Export(StackImportName).
			Instantiate(ctx)
		if err != nil {
			t.Fatal(err)
		}
	}
	mod, err := rt.Instantiate(ctx, bin)
	if err != nil {
		t.Fatal(err)
	}
	return mod
}

func call(t *testing.T, mod api.Module, name string, args ...uint64) (uint64, error) {
	t.Helper()
	res, err := mod.ExportedFunction(name).Call(context.Background(), args...)
	if err != nil {
		return 0, err
	}
	if len(res) == 0 {
		return 0, nil
	}
	return res[0], nil
}

func TestInstrument_sameResults(t *testing.T) {
	orig := shapes(t)
	metered, info, err := Instrument(orig, 50, testStackLimit)
	if err != nil {
		t.Fatal(err)
	}
	if info.Functions != 12 || info.Checks < 12+2 {
		t.Fatalf("info %+v: want 12 functions and a check per function plus one per loop", info)
	}
	h := &meterHost{budget: 50}
	a, b := instantiate(t, orig, nil), instantiate(t, metered, h)
	cases := []struct {
		fn   string
		args []uint64
	}{
		{"sumsq", []uint64{0}}, {"sumsq", []uint64{1000}},
		{"fib", []uint64{1}}, {"fib", []uint64{20}},
		{"mix", []uint64{0}}, {"mix", []uint64{1}}, {"mix", []uint64{2}}, {"mix", []uint64{9}},
		{"bulk", nil},
		{"exits", []uint64{0}}, {"exits", []uint64{1}}, {"exits", []uint64{2}}, {"exits", []uint64{3}}, {"exits", []uint64{5}},
	}
	for _, c := range cases {
		want, err := call(t, a, c.fn, c.args...)
		if err != nil {
			t.Fatalf("original %s%v: %v", c.fn, c.args, err)
		}
		got, err := call(t, b, c.fn, c.args...)
		if err != nil {
			t.Fatalf("metered %s%v: %v", c.fn, c.args, err)
		}
		if got != want {
			t.Errorf("%s%v = %d metered, %d original", c.fn, c.args, got, want)
		}
	}
	if h.calls == 0 {
		t.Error("the metered module never called the check function")
	}
}

// Every loop iteration is charged at least one unit, so n iterations with
// a budget of b call the check function at least n/b times.
func TestInstrument_chargesEveryIteration(t *testing.T) {
	const budget, n = 100, 100_000
	metered, _, err := Instrument(shapes(t), budget, testStackLimit)
	if err != nil {
		t.Fatal(err)
	}
	h := &meterHost{budget: budget}
	mod := instantiate(t, metered, h)
	if _, err := call(t, mod, "sumsq", n); err != nil {
		t.Fatal(err)
	}
	if h.calls < n/budget {
		t.Fatalf("%d check calls for %d iterations at budget %d, want at least %d", h.calls, n, budget, n/budget)
	}
	// Calls without loops are charged too: fib(20) makes 21,891 calls.
	h.calls = 0
	if _, err := call(t, mod, "fib", 20); err != nil {
		t.Fatal(err)
	}
	if h.calls < 21891/budget {
		t.Fatalf("%d check calls for 21,891 calls at budget %d", h.calls, budget)
	}
}

func TestInstrument_stopsRunawayCode(t *testing.T) {
	metered, _, err := Instrument(shapes(t), 1000, testStackLimit)
	if err != nil {
		t.Fatal(err)
	}
	h := &meterHost{budget: 1000, stopAfter: 50}
	mod := instantiate(t, metered, h)
	_, err = call(t, mod, "spin")
	if err == nil || !strings.Contains(err.Error(), errStop.Error()) {
		t.Fatalf("spin: err = %v, want the check function's panic", err)
	}
	if h.calls != 50 {
		t.Fatalf("spin: %d check calls, want 50", h.calls)
	}
}

// Unbounded recursion stops at the stack limit, where the check alone
// would let it run (the budget is never used up), and shallow recursion
// passes.
func TestInstrument_boundsTheStack(t *testing.T) {
	const limit = 64 << 10
	metered, _, err := Instrument(shapes(t), 1<<30, limit)
	if err != nil {
		t.Fatal(err)
	}
	h := &meterHost{budget: 1 << 30}
	mod := instantiate(t, metered, h)
	_, err = call(t, mod, "deep", 0)
	if err == nil || !strings.Contains(err.Error(), errStack.Error()) {
		t.Fatalf("deep: err = %v, want the stack function's panic", err)
	}
	if h.stackCalls != 1 {
		t.Fatalf("%d stack calls, want 1", h.stackCalls)
	}
	// Shallow recursion passes.
	mod = instantiate(t, metered, h)
	if got, err := call(t, mod, "fib", 15); err != nil || got != 610 {
		t.Fatalf("fib(15) = %d, %v", got, err)
	}
}

// Every way out of a body gives its frame back: thousands of calls
// through each of them stay within a limit a few frames fit in.
func TestInstrument_stackReturnsToZero(t *testing.T) {
	metered, _, err := Instrument(shapes(t), 1<<30, 8<<10)
	if err != nil {
		t.Fatal(err)
	}
	h := &meterHost{budget: 1 << 30}
	mod := instantiate(t, metered, h)
	for i := 0; i < 10_000; i++ {
		for _, k := range []uint64{0, 1, 2, 3, 5} {
			if _, err := call(t, mod, "exits", k); err != nil {
				t.Fatalf("call %d of exits(%d): %v", i, k, err)
			}
		}
		if _, err := call(t, mod, "mix", uint64(i%3)); err != nil {
			t.Fatalf("call %d of mix: %v", i, err)
		}
	}
	if _, err := call(t, mod, "fib", 10); err != nil {
		t.Fatalf("fib after 60,000 calls: %v", err)
	}
}

// Names follow their functions through the renumbering.
func TestInstrument_keepsNames(t *testing.T) {
	metered, _, err := Instrument(shapes(t), 1000, testStackLimit)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	cm, err := rt.CompileModule(ctx, metered)
	if err != nil {
		t.Fatal(err)
	}
	for export, name := range map[string]string{"fib": "fib", "deep": "deep"} {
		if got := cm.ExportedFunctions()[export].Name(); got != name {
			t.Errorf("export %s is named %q, want %q", export, got, name)
		}
	}
	imports := cm.ImportedFunctions()
	if len(imports) != 3 {
		t.Fatalf("%d imported functions, want env.twice, the check and the stack function", len(imports))
	}
	if m, n, _ := imports[1].Import(); m != ImportModule || n != ImportName {
		t.Fatalf("second import is %s.%s", m, n)
	}
	if m, n, _ := imports[2].Import(); m != ImportModule || n != StackImportName {
		t.Fatalf("third import is %s.%s", m, n)
	}
}

// A module with an instruction the meter does not know is refused, so the
// host can fall back to another mechanism.
func TestInstrument_unsupported(t *testing.T) {
	// (module (func)) with the body "0xfb 0x00 end" (a GC instruction).
	bin := []byte("\x00asm\x01\x00\x00\x00" +
		"\x01\x04\x01\x60\x00\x00" + // type section: () -> ()
		"\x03\x02\x01\x00" + // function section
		"\x0a\x06\x01\x04\x00\xfb\x00\x0b") // code section
	_, _, err := Instrument(bin, 1000, testStackLimit)
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("err = %v, want ErrUnsupported", err)
	}
}

// Tail calls are refused too (the host's runtime does not enable them).
func TestInstrument_refusesTailCalls(t *testing.T) {
	bin, err := os.ReadFile("testdata/tailcall.wasm")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Instrument(bin, 1000, testStackLimit); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "tail call") {
		t.Fatalf("err = %v, want ErrUnsupported for the tail call", err)
	}
}

// Every prefix of a module either fails to parse or meters to a module the
// runtime accepts exactly when it accepts the original.
func TestInstrument_truncated(t *testing.T) {
	bin := shapes(t)
	for n := 0; n < len(bin); n++ {
		checkAgainstRuntime(t, bin[:n])
	}
}

func checkAgainstRuntime(t *testing.T, bin []byte) {
	t.Helper()
	if Precheck(bin) != nil {
		// Refused before the runtime sees it (the runtime could allocate
		// gigabytes for such a module).
		return
	}
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer rt.Close(ctx)
	origErr := compile(rt, bin)
	// Capping tables keeps a valid module valid, unless it refuses it.
	if capped, err := CapTables(bin); err == nil && origErr == nil {
		if err := compile(rt, capped); err != nil {
			t.Fatalf("the runtime accepts the original of %d bytes but not its capped tables: %v", len(bin), err)
		}
	}
	metered, _, err := Instrument(bin, 1000, testStackLimit)
	if err != nil {
		if origErr == nil && !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrFrameTooLarge) {
			t.Fatalf("the runtime accepts a module of %d bytes the meter calls malformed: %v", len(bin), err)
		}
		return
	}
	metErr := compile(rt, metered)
	if origErr == nil && metErr != nil {
		t.Fatalf("the runtime accepts the original of %d bytes but not its metered form: %v", len(bin), metErr)
	}
	if origErr != nil && metErr == nil {
		// What the meter adds (globals, a local, a label, types) must not
		// be reachable from the module's own code.
		t.Fatalf("the runtime refuses the original of %d bytes (%v) but accepts its metered form", len(bin), origErr)
	}
}

// Invalid modules that reach what the meter adds stay invalid: a write to
// its globals would switch off the deadline and the stack bound.
func TestInstrument_keepsInvalidModulesInvalid(t *testing.T) {
	files, _ := filepath.Glob("testdata/invalid/*.wasm")
	if len(files) < 7 {
		t.Fatalf("%d invalid modules found, want 7", len(files))
	}
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer rt.Close(ctx)
	for _, f := range files {
		bin, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if compile(rt, bin) == nil {
			t.Fatalf("%s: the runtime accepts it; the test needs an invalid module", f)
		}
		checkAgainstRuntime(t, bin)
		if _, _, err := Instrument(bin, 1000, testStackLimit); err == nil {
			t.Errorf("%s: the meter accepts it", f)
		}
	}
}

// compile compiles bin, turning a panic of the runtime (wazero panics on
// some malformed modules; the host recovers the same way) into an error.
// wazero v1.12 refuses a valid module whose last section is an empty
// custom section (reading its 0 bytes at the end of the file gives EOF);
// that refusal is not taken for the module's: the module is compiled
// again with a non-empty custom section after it, which changes nothing
// else.
func compile(rt wazero.Runtime, bin []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("runtime panic: %v", r)
		}
	}()
	_, err = rt.CompileModule(context.Background(), bin)
	if err != nil && strings.Contains(err.Error(), "failed to read custom section") && errors.Is(err, io.EOF) {
		_, err = rt.CompileModule(context.Background(), append(bytes.Clone(bin), 0x00, 0x03, 0x01, 'y', 0x00))
	}
	return err
}

// The modules of the host's own tests all meter to valid modules.
func TestInstrument_hostTestdata(t *testing.T) {
	files, _ := filepath.Glob("../../testdata/wat/*.wasm")
	if len(files) == 0 {
		t.Fatal("no host test modules found")
	}
	for _, f := range files {
		bin, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		checkAgainstRuntime(t, bin)
	}
}

func FuzzInstrument(f *testing.F) {
	f.Add(shapes(f))
	files, _ := filepath.Glob("../../testdata/wat/*.wasm")
	for _, file := range files {
		if bin, err := os.ReadFile(file); err == nil && len(bin) < 1<<16 {
			f.Add(bin)
		}
	}
	f.Fuzz(func(t *testing.T, bin []byte) {
		checkAgainstRuntime(t, bin)
	})
}

// vec is a section of count copies of item.
func vec(id byte, count int, item []byte) []byte {
	body := binary.AppendUvarint(nil, uint64(count))
	for i := 0; i < count; i++ {
		body = append(body, item...)
	}
	out := append([]byte{id}, binary.AppendUvarint(nil, uint64(len(body)))...)
	return append(out, body...)
}

// emptyFunctions is a module of n functions () -> () with empty bodies.
func emptyFunctions(n int) []byte {
	bin := []byte("\x00asm\x01\x00\x00\x00")
	bin = append(bin, vec(1, 1, []byte{0x60, 0x00, 0x00})...)
	bin = append(bin, vec(3, n, []byte{0x00})...)
	return append(bin, vec(10, n, []byte{0x02, 0x00, 0x0b})...)
}

// A module of more function bodies than MaxFunctions is refused before it
// is metered: the metered copy of an empty body is many times its size.
func TestPrecheck_functionCount(t *testing.T) {
	if err := Precheck(emptyFunctions(10)); err != nil {
		t.Fatalf("10 functions: %v", err)
	}
	err := Precheck(emptyFunctions(MaxFunctions + 1))
	if err == nil || !strings.Contains(err.Error(), "the limit is 1000000") {
		t.Fatalf("%d functions: err = %v, want the limit", MaxFunctions+1, err)
	}
}

// A module of more sections than MaxSections is refused while it is
// parsed: millions of empty custom sections in a file within the 256 MiB
// limit would otherwise cost gigabytes to parse and decode.
func TestPrecheck_sectionCount(t *testing.T) {
	custom := func(n int) []byte {
		bin := emptyFunctions(1)
		for i := 0; i < n; i++ {
			bin = append(bin, 0x00, 0x02, 0x01, 'y') // custom section "y", empty
		}
		return bin
	}
	if err := Precheck(custom(100)); err != nil {
		t.Fatalf("100 custom sections: %v", err)
	}
	err := Precheck(custom(MaxSections))
	if err == nil || !strings.Contains(err.Error(), "more than 10000 sections") {
		t.Fatalf("%d custom sections: err = %v, want the limit", MaxSections, err)
	}
}

// A name section claiming four billion names is refused even when a part
// of the module the meter does not understand comes after it: the runtime
// decodes the name section (and allocates ~100 GiB for it) before it
// reaches that part.
func TestPrecheck_bombBeforeWhatTheMeterDoesNotKnow(t *testing.T) {
	bomb := "\x00asm\x01\x00\x00\x00" + "\x00\x10\x04name\x01\x09\xff\xff\xff\xff\x0f\x00\x00\x00\x00"
	for name, tail := range map[string]string{
		"unknown section":  "\x7f\x00",
		"rec group type":   "\x01\x05\x01\x4e\x01\x60\x00", // (rec (func)), then cut short
		"tag import":       "\x02\x07\x01\x01m\x01t\x04\x00",
		"element flags 8+": "\x09\x02\x01\x08",
	} {
		// The host passes a module refused as unsupported to the runtime.
		if err := Precheck([]byte(bomb + tail)); err == nil || errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: err = %v, want the module refused", name, err)
		}
	}
}

// The globals, segments and elements the runtime allocates for each
// instance, outside its memory limit, are capped.
func TestPrecheck_perInstanceCounts(t *testing.T) {
	section := func(id byte, count int, prefix []byte, item ...byte) []byte {
		body := binary.AppendUvarint(append([]byte(nil), prefix...), uint64(count))
		for i := 0; i < count; i++ {
			body = append(body, item...)
		}
		return append(append([]byte{id}, binary.AppendUvarint(nil, uint64(len(body)))...), body...)
	}
	header := []byte("\x00asm\x01\x00\x00\x00")
	for _, c := range []struct {
		name string
		ok   []byte
		over []byte
		want string
	}{
		{"globals", section(6, MaxGlobals, nil, 0x7f, 0x00, 0x41, 0x00, 0x0b), section(6, MaxGlobals+1, nil, 0x7f, 0x00, 0x41, 0x00, 0x0b), "globals, the limit is 100000"},
		{"data segments", section(11, MaxSegments, nil, 0x01, 0x00), section(11, MaxSegments+1, nil, 0x01, 0x00), "data and element segments"},
		{"element segments", section(9, MaxSegments, nil, 0x01, 0x00, 0x00), section(9, MaxSegments+1, nil, 0x01, 0x00, 0x00), "data and element segments"},
		{"elements", section(9, MaxElements, []byte{0x01, 0x01, 0x00}, 0x00), section(9, MaxElements+1, []byte{0x01, 0x01, 0x00}, 0x00), "elements in element segments"},
	} {
		if err := Precheck(append(append([]byte(nil), header...), c.ok...)); err != nil {
			t.Errorf("%s at the limit: %v", c.name, err)
		}
		if err := Precheck(append(append([]byte(nil), header...), c.over...)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s over the limit: err = %v, want %q", c.name, err, c.want)
		}
	}
}

// A count the runtime allocates for is checked even inside a part of the
// module the meter does not understand, which the runtime decodes all the
// same (recursive type groups, typed references, exnref): each module here
// claims four billion items in a few bytes, which makes wazero allocate 4
// to 96 GiB (8 bytes per parameter or local, 24 per element, 1 per byte)
// before it fails. None may be refused as merely unsupported (the host
// passes those to the runtime).
func TestPrecheck_bombInsideWhatTheMeterDoesNotKnow(t *testing.T) {
	sec := func(id byte, body string) string {
		return string(id) + string(binary.AppendUvarint(nil, uint64(len(body)))) + body
	}
	const huge = "\xff\xff\xff\xff\x0f"
	for name, m := range map[string]string{
		// (rec (func (param ×4G)))
		"params in a rec group": sec(1, "\x01\x4e\x01\x60"+huge+"\x7f"),
		// (rec (func)) (func (param ×4G))
		"params after a rec group": sec(1, "\x02\x4e\x01\x60\x00\x00\x60"+huge+"\x7f"),
		// (func (param exnref)) (func (param ×4G))
		"params after an exnref": sec(1, "\x02\x60\x01\x69\x00\x60"+huge+"\x7f"),
		// (func (param (ref func))) (func (param ×4G))
		"params after a typed reference": sec(1, "\x02\x60\x01\x64\x70\x00\x60"+huge+"\x7f"),
		// a table import of type (ref 0), then an import module name of 4 GiB
		"import after a typed table": sec(2, "\x02\x01m\x01t\x01\x64\x00\x00\x05"+huge+"\x00\x00\x00"),
		// (elem funcref (ref.null exn)), then a segment of 4G function indices
		"elements after ref.null exn": sec(9, "\x02\x05\x70\x01\xd0\x69\x0b\x01\x00"+huge+"\x00"),
		// an element segment of type (ref func) claiming 4G expressions
		"elements of a typed reference": sec(9, "\x01\x05\x64\x70"+huge+"\xd2\x00\x0b"),
		// a data segment at offset (ref.null exn), then one of 4 GiB
		"data after ref.null exn": sec(11, "\x02\x00\xd0\x69\x0b\x00\x01"+huge+"\x00"),
		// locals (ref func) ×1 and i32 ×(4G-1): 32 GiB written
		"locals after a typed reference": sec(10, "\x01\x0b\x02\x01\x64\x70\xfe\xff\xff\xff\x0f\x7f\x0b"),
	} {
		if err := Precheck([]byte("\x00asm\x01\x00\x00\x00" + m)); err == nil || errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: err = %v, want the module refused", name, err)
		}
	}
}

// Precheck reads what the runtime decodes the way it decodes it: modules
// the runtime accepts are not refused, whether the meter can rewrite them
// or not.
func TestPrecheck_acceptsWhatTheRuntimeAccepts(t *testing.T) {
	sec := func(id byte, body string) string {
		return string(id) + string(binary.AppendUvarint(nil, uint64(len(body)))) + body
	}
	fn := sec(3, "\x01\x00") + sec(10, "\x01\x02\x00\x0b")
	for name, m := range map[string]string{
		"rec group":               sec(1, "\x01\x4e\x01\x60\x00\x00") + fn,
		"exnref parameter":        sec(1, "\x02\x60\x00\x00\x60\x01\x69\x00") + fn,
		"typed reference":         sec(1, "\x02\x60\x00\x00\x60\x01\x64\x70\x00") + fn,
		"typed reference local":   sec(1, "\x01\x60\x00\x00") + sec(3, "\x01\x00") + sec(10, "\x01\x05\x01\x01\x63\x70\x0b"),
		"typed element segment":   sec(1, "\x01\x60\x00\x00") + sec(3, "\x01\x00") + sec(9, "\x01\x05\x64\x70\x01\xd2\x00\x0b") + sec(10, "\x01\x02\x00\x0b"),
		"data at imported global": sec(2, "\x01\x01m\x01g\x03\x7f\x00") + sec(5, "\x01\x00\x01") + sec(11, "\x01\x00\x23\x00\x0b\x00"),
	} {
		bin := []byte("\x00asm\x01\x00\x00\x00" + m)
		rt := wazero.NewRuntime(context.Background())
		_, werr := rt.CompileModule(context.Background(), bin)
		_ = rt.Close(context.Background())
		if werr != nil {
			t.Fatalf("%s: the runtime refuses the module: %v", name, werr)
		}
		if err := Precheck(bin); err != nil && !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: Precheck refuses a module the runtime accepts: %v", name, err)
		}
	}
}

// A module of more exports than MaxExports is refused: wazero allocates 28
// times the size of an export section of empty names before it finds the
// duplicates (7 GiB for a file within the 256 MiB limit).
func TestPrecheck_exportCount(t *testing.T) {
	exports := func(n int) []byte {
		body := binary.AppendUvarint(nil, uint64(n))
		for i := 0; i < n; i++ {
			body = append(body, 0x00, 0x00, 0x00)
		}
		bin := append([]byte("\x00asm\x01\x00\x00\x00\x07"), binary.AppendUvarint(nil, uint64(len(body)))...)
		return append(bin, body...)
	}
	if err := Precheck(exports(10)); err != nil {
		t.Fatalf("10 exports: %v", err)
	}
	err := Precheck(exports(MaxExports + 1))
	if err == nil || !strings.Contains(err.Error(), "exports, the limit is 1000000") {
		t.Fatalf("%d exports: err = %v, want the limit", MaxExports+1, err)
	}
}

// A function type of more than MaxParams parameters or results is refused:
// wazero builds each type's key by appending the name of one value at a
// time, quadratic in their number (a type of 32,768 parameters, a file of
// 32 KiB, makes it allocate 1.7 GB; one of a million, 1.6 TB).
func TestPrecheck_typeParams(t *testing.T) {
	sec := func(id byte, body []byte) []byte {
		return append(append([]byte{id}, binary.AppendUvarint(nil, uint64(len(body)))...), body...)
	}
	values := func(n int) []byte {
		return append(binary.AppendUvarint(nil, uint64(n)), bytes.Repeat([]byte{0x7f}, n)...)
	}
	module := func(group bool, params, results int) []byte {
		ft := append(append([]byte{0x60}, values(params)...), values(results)...)
		body := []byte{0x01}
		if group {
			body = append(body, 0x4e, 0x01)
		}
		return append([]byte("\x00asm\x01\x00\x00\x00"), sec(1, append(body, ft...))...)
	}
	for _, group := range []bool{false, true} {
		if err := Precheck(module(group, MaxParams, MaxParams)); err != nil {
			t.Errorf("rec group %v, %d parameters and results: %v", group, MaxParams, err)
		}
		for _, m := range [][]byte{module(group, MaxParams+1, 0), module(group, 0, MaxParams+1)} {
			err := Precheck(m)
			if err == nil || !strings.Contains(err.Error(), "the limit is 1000") {
				t.Errorf("rec group %v, %d values: err = %v, want the limit", group, MaxParams+1, err)
			}
		}
	}
}

// A module of more types than MaxTypes, members of recursive type groups
// included, is refused: wazero keeps 96 bytes per type of 3 in the file
// and allocates about 200 times the section's size while it appends them.
func TestPrecheck_typeCount(t *testing.T) {
	types := func(n int, group bool) []byte {
		body := []byte{0x01, 0x4e}
		if !group {
			body = nil
		}
		body = binary.AppendUvarint(body, uint64(n))
		body = append(body, bytes.Repeat([]byte{0x60, 0x00, 0x00}, n)...)
		bin := append([]byte("\x00asm\x01\x00\x00\x00\x01"), binary.AppendUvarint(nil, uint64(len(body)))...)
		return append(bin, body...)
	}
	for _, group := range []bool{false, true} {
		if err := Precheck(types(10, group)); err != nil {
			t.Fatalf("rec group %v, 10 types: %v", group, err)
		}
		err := Precheck(types(MaxTypes+1, group))
		if err == nil || !strings.Contains(err.Error(), "types, the limit is 1000000") {
			t.Errorf("rec group %v, %d types: err = %v, want the limit", group, MaxTypes+1, err)
		}
	}
}

// A module of more imports than MaxImports is refused: wazero sizes a
// slice of 112-byte imports by the claimed count, 44 times the bytes of
// imports with empty names.
func TestPrecheck_importCount(t *testing.T) {
	imports := func(n int) []byte {
		body := binary.AppendUvarint(nil, uint64(n))
		body = append(body, bytes.Repeat([]byte{0x01, 'm', 0x00, 0x00, 0x00}, n)...)
		bin := append([]byte("\x00asm\x01\x00\x00\x00\x01\x04\x01\x60\x00\x00\x02"), binary.AppendUvarint(nil, uint64(len(body)))...)
		return append(bin, body...)
	}
	if err := Precheck(imports(10)); err != nil {
		t.Fatalf("10 imports: %v", err)
	}
	err := Precheck(imports(MaxImports + 1))
	if err == nil || !strings.Contains(err.Error(), "imports, the limit is 1000000") {
		t.Fatalf("%d imports: err = %v, want the limit", MaxImports+1, err)
	}
}

// A module whose functions times its exports and local-name entries pass
// MaxDefinitionScan is refused: wazero scans every export and local-name
// entry for each function when it builds their definitions, which the host
// asks for right after compiling (16,384 functions and as many exports, a
// file of 200 KB, take 0.3 s; a million of each, hours).
func TestPrecheck_definitionScan(t *testing.T) {
	sec := func(id byte, body []byte) []byte {
		return append(append([]byte{id}, binary.AppendUvarint(nil, uint64(len(body)))...), body...)
	}
	const funcs = 1 << 17 // imported functions "a" "" of type 0
	module := func(exports, localNames int) []byte {
		bin := []byte("\x00asm\x01\x00\x00\x00")
		bin = append(bin, sec(1, []byte{0x01, 0x60, 0x00, 0x00})...)
		imports := binary.AppendUvarint(nil, funcs)
		bin = append(bin, sec(2, append(imports, bytes.Repeat([]byte{0x01, 'a', 0x00, 0x00, 0x00}, funcs)...))...)
		ex := binary.AppendUvarint(nil, uint64(exports))
		for i := 0; i < exports; i++ {
			name := fmt.Sprint(i)
			ex = append(append(append(ex, byte(len(name))), name...), 0x00, 0x00)
		}
		bin = append(bin, sec(7, ex)...)
		locals := binary.AppendUvarint(nil, uint64(localNames))
		locals = append(locals, bytes.Repeat([]byte{0x00, 0x00}, localNames)...) // function 0, no names
		names := append(append([]byte("\x04name\x02"), binary.AppendUvarint(nil, uint64(len(locals)))...), locals...)
		return append(bin, sec(0, names)...)
	}
	for _, c := range []struct{ exports, localNames int }{{MaxDefinitionScan / funcs, 0}, {0, MaxDefinitionScan / funcs}, {10, MaxDefinitionScan/funcs - 10}} {
		if err := Precheck(module(c.exports, c.localNames)); err != nil {
			t.Errorf("%d exports and %d local-name entries at the limit: %v", c.exports, c.localNames, err)
		}
		for _, m := range [][]byte{module(c.exports+1, c.localNames), module(c.exports, c.localNames+1)} {
			if err := Precheck(m); err == nil || !strings.Contains(err.Error(), "local-name entries, the limit is") {
				t.Errorf("%d exports and %d local-name entries over the limit: err = %v, want the limit", c.exports, c.localNames, err)
			}
		}
	}
}

// A module whose function bodies declare more than MaxModuleLocals locals
// in all is refused: wazero keeps 8 bytes for each local a body declares
// in 3 bytes, so 5,000 bodies of MaxLocals locals each, a file of 40 KB,
// made it hold 1.9 GiB, and a file of a few megabytes took the process
// down.
func TestPrecheck_moduleLocals(t *testing.T) {
	sec := func(id byte, body []byte) []byte {
		return append(append([]byte{id}, binary.AppendUvarint(nil, uint64(len(body)))...), body...)
	}
	// functions () -> () declaring locals[i] i32 each
	module := func(locals ...int) []byte {
		code := binary.AppendUvarint(nil, uint64(len(locals)))
		for _, k := range locals {
			body := append(append([]byte{0x01}, binary.AppendUvarint(nil, uint64(k))...), 0x7f, 0x0b)
			code = append(append(code, byte(len(body))), body...)
		}
		fs := append(binary.AppendUvarint(nil, uint64(len(locals))), make([]byte, len(locals))...)
		bin := []byte("\x00asm\x01\x00\x00\x00")
		bin = append(bin, sec(1, []byte{0x01, 0x60, 0x00, 0x00})...)
		return append(append(bin, sec(3, fs)...), sec(10, code)...)
	}
	full := make([]int, MaxModuleLocals/MaxLocals)
	for i := range full {
		full[i] = MaxLocals
	}
	rest := MaxModuleLocals % MaxLocals
	if err := Precheck(module(append(full, rest)...)); err != nil {
		t.Fatalf("%d locals: %v", MaxModuleLocals, err)
	}
	err := Precheck(module(append(full, rest+1)...))
	if err == nil || !strings.Contains(err.Error(), "locals in all, the limit is") {
		t.Errorf("%d locals: err = %v, want the limit", MaxModuleLocals+1, err)
	}
}

// The function section's count is capped like the code section's: wazero
// allocates for it before it meets the code section, 4 bytes per byte of
// the file.
func TestPrecheck_functionSectionCount(t *testing.T) {
	module := func(n int) []byte {
		bin := []byte("\x00asm\x01\x00\x00\x00")
		bin = append(bin, vec(1, 1, []byte{0x60, 0x00, 0x00})...)
		return append(bin, vec(3, n, []byte{0x00})...)
	}
	if err := Precheck(module(MaxFunctions)); err != nil {
		t.Fatalf("%d functions: %v", MaxFunctions, err)
	}
	err := Precheck(module(MaxFunctions + 1))
	if err == nil || !strings.Contains(err.Error(), "functions, the limit is 1000000") {
		t.Fatalf("%d functions: err = %v, want the limit", MaxFunctions+1, err)
	}
}

// A function body over MaxBodySize is refused: wazero's compiler takes
// about 85 times a body's size at its peak.
func TestPrecheck_bodySize(t *testing.T) {
	module := func(size int) []byte {
		body := append(append([]byte{0x00}, bytes.Repeat([]byte{0x01}, size-2)...), 0x0b) // no locals, nops, end
		code := append(append([]byte{0x01}, binary.AppendUvarint(nil, uint64(len(body)))...), body...)
		bin := []byte("\x00asm\x01\x00\x00\x00")
		bin = append(bin, vec(1, 1, []byte{0x60, 0x00, 0x00})...)
		bin = append(bin, vec(3, 1, []byte{0x00})...)
		return append(append(append(bin, 10), binary.AppendUvarint(nil, uint64(len(code)))...), code...)
	}
	if err := Precheck(module(MaxBodySize)); err != nil {
		t.Fatalf("a body of %d bytes: %v", MaxBodySize, err)
	}
	err := Precheck(module(MaxBodySize + 1))
	if err == nil || !strings.Contains(err.Error(), "bytes, the limit is 7654321") {
		t.Fatalf("a body of %d bytes: err = %v, want the limit", MaxBodySize+1, err)
	}
}

// A name section of more than MaxNames entries is refused: wazero keeps 24
// to 32 bytes for each entry of 2 bytes while it loads the module.
func TestPrecheck_names(t *testing.T) {
	subsection := func(id byte, body []byte) []byte {
		return append(append([]byte{id}, binary.AppendUvarint(nil, uint64(len(body)))...), body...)
	}
	// functionNames entries of function 0 with an empty name, then one
	// function with localNames empty local names.
	module := func(functionNames, localNames int) []byte {
		fn := append(binary.AppendUvarint(nil, uint64(functionNames)), bytes.Repeat([]byte{0x00, 0x00}, functionNames)...)
		ln := append([]byte{0x01, 0x00}, binary.AppendUvarint(nil, uint64(localNames))...)
		ln = append(ln, bytes.Repeat([]byte{0x00, 0x00}, localNames)...)
		names := append([]byte("\x04name"), subsection(1, fn)...)
		names = append(names, subsection(2, ln)...)
		return append(append([]byte("\x00asm\x01\x00\x00\x00\x00"), binary.AppendUvarint(nil, uint64(len(names)))...), names...)
	}
	// The local-name subsection's one function counts as an entry.
	for _, c := range []struct{ functionNames, localNames int }{{MaxNames - 1, 0}, {0, MaxNames - 1}, {MaxNames / 2, MaxNames/2 - 1}} {
		if err := Precheck(module(c.functionNames, c.localNames)); err != nil {
			t.Errorf("%d function names and %d local names: %v", c.functionNames, c.localNames, err)
		}
		for _, m := range [][]byte{module(c.functionNames+1, c.localNames), module(c.functionNames, c.localNames+1)} {
			if err := Precheck(m); err == nil || !strings.Contains(err.Error(), "more than 4194304 entries") {
				t.Errorf("%d function names and %d local names, one more: err = %v, want the limit", c.functionNames, c.localNames, err)
			}
		}
	}
}
