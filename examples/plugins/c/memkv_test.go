package c_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-hclog"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/abi/abitest"
	"github.com/topgun-go/topgun/host"
)

// skipMessage is the message of `make wasm` when clang cannot build the
// plugin; the tests skip with the same words.
const skipMessage = "wasm: skipping the C plugin: clang with wasm32-wasi support not found (apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32)"

// build compiles memkv/memkv.c into dir with the flags of memkv/flags.rsp (the ones
// `make wasm` uses) plus -Werror, and returns the .wasm path. It skips when
// clang cannot build even an empty wasm32-wasi reactor, and fails when the
// toolchain works but memkv.c does not compile.
func build(tb testing.TB, dir string) string {
	tb.Helper()
	clang, err := exec.LookPath("clang")
	if err != nil {
		tb.Skip(skipMessage)
	}
	probe := filepath.Join(dir, "probe.c")
	if err := os.WriteFile(probe, []byte("int probe(void) { return 0; }\n"), 0o644); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(clang, "--target=wasm32-wasi", "-mexec-model=reactor", "-o", filepath.Join(dir, "probe.wasm"), probe)
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Skipf("%s\n(clang could not build an empty reactor: %v\n%s)", skipMessage, err, out)
	}
	out := filepath.Join(dir, "memkv.wasm")
	cmd = exec.Command(clang, "@flags.rsp", "-Werror", "-o", out, "memkv.c")
	cmd.Dir = "memkv"
	if msg, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("clang @flags.rsp -Werror memkv.c: %v\n%s", err, msg)
	}
	return out
}

// tbWriter sends each write to t.Logf, for routing an hclog logger into
// the output of a test or of a conformance case.
type tbWriter struct{ t logger }

// logger is what tbWriter needs of a *testing.T or an abitest.TB.
type logger interface {
	Logf(format string, args ...any)
}

func (w tbWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// harness loads the plugin through the host for every case, as
// `topgun plugin test` does. The plugin is not durable, so Reopen is nil.
func harness(t *testing.T, path string) abitest.Harness {
	cache := t.TempDir()
	return abitest.Harness{Open: func(tb abitest.TB) abi.Backend {
		o := host.DefaultOptions()
		o.CacheDir = cache
		// A batch of exactly abi.MaxBatchOps mutations takes seconds in a
		// sandboxed guest on a busy machine.
		o.CallTimeout = time.Minute
		o.Logger = hclog.New(&hclog.LoggerOptions{Name: "topgun", Level: hclog.Debug, Output: tbWriter{tb}, DisableTime: true})
		b, err := host.Load(context.Background(), path, o)
		if err != nil {
			tb.Fatalf("host.Load(%s): %v", path, err)
		}
		return b
	}}
}

// TestPluginTest_core runs what `topgun plugin test --core memkv.wasm`
// runs: the core cases through abitest.Run, each on a freshly loaded
// plugin. Every core case must pass.
func TestPluginTest_core(t *testing.T) {
	t.Parallel()
	path := build(t, t.TempDir())
	core := 0
	for _, c := range abitest.Cases() {
		if c.Core {
			core++
		}
	}
	var out bytes.Buffer
	passed, failed, skipped := abitest.Run(context.Background(), &out, harness(t, path), func(c abitest.Case) bool { return c.Core })
	t.Logf("topgun plugin test --core:\n%s%d passed, %d failed, %d skipped", out.String(), passed, failed, skipped)
	if failed != 0 || skipped != 0 || passed != core {
		t.Errorf("core cases: %d passed, %d failed, %d skipped; want all %d passed", passed, failed, skipped, core)
	}
}

// The C plugin runs metered in sandboxed mode, not under wazero's slower
// fallback: the meter knows every instruction clang emits for it.
func TestInspect_metered(t *testing.T) {
	t.Parallel()
	info, err := host.Inspect(context.Background(), build(t, t.TempDir()), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(info.Deadlines, "metered (") {
		t.Fatalf("deadlines: %q", info.Deadlines)
	}
}

// TestConformance runs every case of the suite. Durability/Reopen skips
// itself: memkv does not declare durable.
func TestConformance(t *testing.T) {
	t.Parallel()
	abitest.RunConformance(t, harness(t, build(t, t.TempDir())))
}

// guest is one instance of the plugin driven through its raw exports, to
// send what the Go host never sends.
type guest struct {
	t      testing.TB
	mod    api.Module
	mem    api.Memory
	call   api.Function
	buffer api.Function
	ptr    uint32 // the scratch buffer
	cap    uint32 // a capacity it is known to have
	logs   []string
}

// runtime compiles the plugin once; newGuest instantiates it.
type runtime struct {
	rt       wazero.Runtime
	compiled wazero.CompiledModule
	current  *guest // the guest whose log calls are being served
}

func newRuntime(tb testing.TB, path string) *runtime {
	tb.Helper()
	ctx := context.Background()
	bin, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	r := &runtime{rt: wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler().WithMemoryLimitPages(4096))}
	tb.Cleanup(func() { _ = r.rt.Close(ctx) })
	wasi_snapshot_preview1.MustInstantiate(ctx, r.rt)
	_, err = r.rt.NewHostModuleBuilder(abi.WasmImportModule).NewFunctionBuilder().
		WithFunc(func(_ context.Context, m api.Module, level, ptr, n uint32) {
			if b, ok := m.Memory().Read(ptr, n); ok && r.current != nil {
				r.current.logs = append(r.current.logs, fmt.Sprintf("%d %s", level, b))
			}
		}).Export(abi.WasmImportLog).Instantiate(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	if r.compiled, err = r.rt.CompileModule(ctx, bin); err != nil {
		tb.Fatal(err)
	}
	return r
}

// newGuest starts an instance as the host does: _initialize, the ABI
// version, topgun_buffer(65536). It does not open it.
func (r *runtime) newGuest(tb testing.TB) *guest {
	tb.Helper()
	return r.newGuestWithBuffer(tb, 64<<10)
}

// newGuestWithBuffer is newGuest with the first topgun_buffer call asking
// for initial bytes.
func (r *runtime) newGuestWithBuffer(tb testing.TB, initial uint32) *guest {
	tb.Helper()
	ctx := context.Background()
	mod, err := r.rt.InstantiateModule(ctx, r.compiled, wazero.NewModuleConfig().WithName("").WithStartFunctions())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = mod.Close(ctx) })
	g := &guest{t: tb, mod: mod, mem: mod.ExportedMemory(abi.WasmExportMemory),
		call: mod.ExportedFunction(abi.WasmExportCall), buffer: mod.ExportedFunction(abi.WasmExportBuffer)}
	r.current = g
	if _, err := mod.ExportedFunction(abi.WasmExportInitialize).Call(ctx); err != nil {
		tb.Fatalf("_initialize: %v", err)
	}
	v, err := mod.ExportedFunction(abi.WasmExportVersion).Call(ctx)
	if err != nil || uint32(v[0]) != abi.PackVersion(1, 0) {
		tb.Fatalf("topgun_abi_version() = %#x, %v; want 0x10000", v, err)
	}
	g.grow(initial)
	return g
}

func (g *guest) grow(n uint32) {
	g.t.Helper()
	res, err := g.buffer.Call(context.Background(), uint64(n))
	if err != nil {
		g.t.Fatalf("topgun_buffer(%d) trapped: %v", n, err)
	}
	ptr := uint32(res[0])
	if ptr == 0 || uint64(ptr)+uint64(n) > uint64(g.mem.Size()) {
		g.t.Fatalf("topgun_buffer(%d) = %d: outside the %d-byte memory", n, ptr, g.mem.Size())
	}
	g.ptr, g.cap = ptr, n
}

// reply is the outcome of one topgun_call.
type reply struct {
	code  abi.Code
	moved bool
	body  []byte
}

func (r reply) String() string {
	if r.code == abi.CodeOK {
		return fmt.Sprintf("ok, %d bytes", len(r.body))
	}
	return fmt.Sprintf("code %d (%s): %s", r.code, r.code, r.body)
}

// raw writes req into the buffer and calls topgun_call(op, reqLen). It
// fails the test on a trap or on a result that breaks WASM.md: reserved
// status bits, a response outside memory, an error message that is not
// UTF-8 text of at most 4096 bytes starting with "memkv: ".
func (g *guest) raw(op abi.WasmCall, req []byte, reqLen uint32) reply {
	g.t.Helper()
	if uint32(len(req)) > g.cap {
		g.grow(uint32(len(req)))
	}
	if !g.mem.Write(g.ptr, req) {
		g.t.Fatalf("request of %d bytes does not fit at %d", len(req), g.ptr)
	}
	res, err := g.call.Call(context.Background(), uint64(op), uint64(reqLen))
	if err != nil {
		g.t.Fatalf("topgun_call(%d, %d bytes) trapped: %v", op, reqLen, err)
	}
	status, n := abi.UnpackResult(res[0])
	if status&^(abi.StatusCodeMask|abi.StatusBufferMoved) != 0 {
		g.t.Fatalf("topgun_call(%d): status %#x has reserved bits set", op, status)
	}
	r := reply{code: abi.Code(status & abi.StatusCodeMask), moved: status&abi.StatusBufferMoved != 0}
	if r.moved {
		g.grow(n)
	}
	body, ok := g.mem.Read(g.ptr, n)
	if !ok {
		g.t.Fatalf("topgun_call(%d): response of %d bytes at %d is outside memory", op, n, g.ptr)
	}
	r.body = bytes.Clone(body)
	if r.code > abi.CodeInternal {
		g.t.Fatalf("topgun_call(%d): unknown code %d", op, r.code)
	}
	if r.code != abi.CodeOK {
		if r.moved || len(r.body) > abi.MaxErrorMessageBytes || !utf8.Valid(r.body) || !bytes.HasPrefix(r.body, []byte("memkv: ")) {
			g.t.Fatalf("topgun_call(%d) error response (moved=%v, %d bytes) %q: want UTF-8 text of at most %d bytes starting with \"memkv: \"",
				op, r.moved, len(r.body), r.body, abi.MaxErrorMessageBytes)
		}
	}
	return r
}

func (g *guest) do(op abi.WasmCall, req []byte) reply {
	g.t.Helper()
	return g.raw(op, req, uint32(len(req)))
}

// must runs op and fails the test unless it succeeds.
func (g *guest) must(op abi.WasmCall, req []byte) []byte {
	g.t.Helper()
	r := g.do(op, req)
	if r.code != abi.CodeOK {
		g.t.Fatalf("%s: %s; want ok", op, r)
	}
	return r.body
}

func openReq(maxResponse uint32, config map[string]string) []byte {
	e := abi.NewEncoder()
	e.OpenRequest(&abi.OpenRequest{Config: config, DataDir: "", MaxResponseBytes: maxResponse, MemoryLimitBytes: 256 << 20})
	return e.Bytes()
}

func (g *guest) open() {
	g.t.Helper()
	g.must(abi.CallOpen, openReq(32<<20, nil))
}

// mp encodes v with the msgpack library (any values, including the ones
// the host never sends).
func mp(t testing.TB, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const t0 int64 = 1_700_000_000_000

func put(g *guest, m, k string, backup bool, v []byte, exp int64) {
	g.t.Helper()
	b := &abi.Batch{Now: t0}
	b.Put(m, k, backup, v, exp)
	e := abi.NewEncoder()
	e.ApplyRequest(b)
	g.must(abi.CallApply, e.Bytes())
}

func (g *guest) get(m string, backup bool, keys ...string) []abi.Record {
	g.t.Helper()
	e := abi.NewEncoder()
	e.GetRequest(m, backup, keys)
	d := abi.NewDecoder()
	d.Reset(g.must(abi.CallGet, e.Bytes()))
	recs, err := d.Records(m, backup)
	if err == nil {
		err = d.End()
	}
	if err != nil {
		g.t.Fatalf("get response: %v", err)
	}
	return recs
}

func TestABI_describeAndOpen(t *testing.T) {
	t.Parallel()
	r := newRuntime(t, build(t, t.TempDir()))
	// A first topgun_buffer(0) still gets a buffer (grow fails the test on 0).
	r.newGuestWithBuffer(t, 0)
	g := r.newGuest(t)
	want := abi.Description{Name: "memkv", ABIMajor: 1, ABIMinor: 0, Capabilities: abi.CapAtomicBatch}
	check := func(what string, body []byte) {
		t.Helper()
		d := abi.NewDecoder()
		d.Reset(body)
		got, err := d.Description()
		if err == nil {
			err = d.End()
		}
		if err != nil || got != want {
			t.Errorf("%s = %+v, %v; want %+v", what, got, err, want)
		}
	}
	check("describe before open", g.must(abi.CallDescribe, nil))
	for _, op := range []abi.WasmCall{abi.CallApply, abi.CallGet, abi.CallScan, abi.CallListMaps, abi.CallListExpired} {
		if r := g.do(op, nil); r.code != abi.CodeUnavailable {
			t.Errorf("%s before open: %s; want code 4 (unavailable)", op, r)
		}
	}
	if r := g.do(abi.CallOpen, openReq(0, map[string]string{"cache": "1"})); r.code != abi.CodeInvalidArgument || !bytes.Contains(r.body, []byte(`unknown configuration key "cache"`)) {
		t.Errorf("open with a configuration key: %s; want code 2 naming the key", r)
	}
	check("open", g.must(abi.CallOpen, openReq(32<<20, nil)))
	if len(g.logs) != 1 || !strings.HasPrefix(g.logs[0], "2 memkv: opened") {
		t.Errorf("log lines after open = %q; want one debug line", g.logs)
	}
	if r := g.do(abi.CallOpen, openReq(32<<20, nil)); r.code != abi.CodeConflict {
		t.Errorf("open twice: %s; want code 3 (conflict)", r)
	}
	if r := g.do(abi.CallDescribe, []byte{0x90}); r.code != abi.CodeInvalidArgument {
		t.Errorf("describe with a body: %s; want code 2 (its request is 0 bytes)", r)
	}
	for _, op := range []abi.WasmCall{0, 9, 0xffff, 0xffffffff} {
		if r := g.do(op, nil); r.code != abi.CodeUnsupported {
			t.Errorf("op %d: %s; want code 5 (unsupported)", op, r)
		}
	}
	put(g, "m", "k", false, []byte("v"), 0)
	g.must(abi.CallClose, nil)
	g.must(abi.CallClose, nil) // idempotent
	for _, op := range []abi.WasmCall{abi.CallApply, abi.CallGet, abi.CallScan, abi.CallListMaps, abi.CallListExpired} {
		if r := g.do(op, nil); r.code != abi.CodeUnavailable {
			t.Errorf("%s after close: %s; want code 4 (unavailable)", op, r)
		}
	}
	check("describe after close", g.must(abi.CallDescribe, nil))
	if r := g.do(abi.CallOpen, openReq(32<<20, nil)); r.code != abi.CodeConflict {
		t.Errorf("open after close: %s; want code 3 (conflict)", r)
	}
}

// TestABI_liberalDecoding sends well-formed requests in shapes the Go host
// does not produce but WASM.md allows: other integer widths, appended
// fields of every type, str for bin, nil for an empty bin or list.
func TestABI_liberalDecoding(t *testing.T) {
	t.Parallel()
	g := newRuntime(t, build(t, t.TempDir())).newGuest(t)
	// open with fields appended, one of them nested 1000 deep.
	deep := bytes.Repeat([]byte{0x91}, 1000)
	deep = append(deep, 0xc0)
	req := openReq(32<<20, nil)
	req[0] = 0x96 // 6 fields instead of 4
	req = append(append(req, deep...), mp(t, map[string]any{"x": []any{1.5, float32(2), nil, true}})...)
	g.must(abi.CallOpen, req)

	// The example of WASM.md section 4: a get of keys a and b of map todos.
	example := []byte{0x93, 0xa5, 't', 'o', 'd', 'o', 's', 0xc2, 0x92, 0xa1, 'a', 0xa1, 'b'}
	if body := g.must(abi.CallGet, example); !bytes.Equal(body, []byte{0xdd, 0, 0, 0, 0}) && !bytes.Equal(body, []byte{0x90}) {
		t.Errorf("get of the WASM.md example on an empty store = % x; want an empty array", body)
	}

	// apply with the time as int64, kinds as uint8, a value as str and one
	// as nil, expirations in signed formats, and appended fields.
	var b []byte
	b = append(b, 0x93, 0xd3) // [now int64, mutations, extra]
	b = binary.BigEndian.AppendUint64(b, uint64(t0))
	b = append(b, 0x93)
	// put m/a: 7 fields, the value as str, the expiration as int8.
	b = append(b, 0x97, 0xcc, 1, 0xa1, 'm', 0xa1, 'a', 0xc2, 0xa3, 'o', 'n', 'e', 0xd0, 0)
	b = append(b, mp(t, []any{"appended", 1.25})...)
	// put m/b (backup): a nil value, the expiration as int32.
	b = append(b, 0x96, 0xcc, 1, 0xa1, 'm', 0xa1, 'b', 0xc3, 0xc0, 0xd2, 0, 0, 0, 100)
	// put m/c: the map as str8, the key as bin8, the value as bin16, the expiration as uint64.
	b = append(b, 0x96, 0x01, 0xd9, 1, 'm', 0xc4, 1, 'c', 0xc2, 0xc5, 0, 2, 'h', 'i', 0xcf, 0, 0, 0, 0, 0, 0, 0, 0)
	b = append(b, mp(t, map[string]int{"extra": 1})...)
	g.must(abi.CallApply, b)
	want := []abi.Record{
		{Map: "m", Key: "a", Value: []byte("one"), CreatedAt: t0, UpdatedAt: t0},
		{Map: "m", Key: "c", Value: []byte("hi"), CreatedAt: t0, UpdatedAt: t0},
	}
	if got := g.get("m", false, "a", "b", "c"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("get after the apply = %+v; want %+v", got, want)
	}
	if got := g.get("m", true, "b"); len(got) != 1 || len(got[0].Value) != 0 || got[0].ExpirationTime != 100 {
		t.Errorf("get of the backup record put with a nil value = %+v; want one record, 0 bytes, expiration 100", got)
	}

	// get with a nil key list, and with a 5-byte array header.
	if body := g.must(abi.CallGet, []byte{0x93, 0xa1, 'm', 0xc2, 0xc0}); len(body) == 0 {
		t.Errorf("get with a nil key list: empty response; want an empty array")
	}
	if recs := decodeRecords(t, g.must(abi.CallGet, []byte{0x93, 0xa1, 'm', 0xc2, 0xdd, 0, 0, 0, 1, 0xa1, 'a'})); len(recs) != 1 {
		t.Errorf("get with an array32 key list = %d records; want 1", len(recs))
	}
	// scan with a nil cursor, an empty bin cursor, int8 limit and int16 budget.
	for _, c := range [][]byte{{0xc0}, {0xc4, 0}, {0xa0}} {
		req := append([]byte{0x95, 0xa1, 'm', 0xc2}, c...)
		req = append(req, 0xd0, 1, 0xd1, 0x10, 0)
		d := abi.NewDecoder()
		d.Reset(g.must(abi.CallScan, req))
		p, err := d.Page("m", false)
		if err != nil || len(p.Records) != 1 || p.Records[0].Key != "a" || string(p.Cursor) != "ka" {
			t.Errorf("scan(limit 1) with cursor % x = %+v, %v; want record a and cursor \"ka\"", c, p, err)
		}
	}
	// list_expired with limit 0 means the default, not none.
	d := abi.NewDecoder()
	d.Reset(g.must(abi.CallListExpired, []byte{0x92, 0xcf, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00}))
	if exp, err := d.Expired(); err != nil || len(exp) != 1 || exp[0].Key != "b" || !exp[0].Backup {
		t.Errorf("list_expired(now=max, limit=0) = %+v, %v; want the backup record b", exp, err)
	}
}

func decodeRecords(t *testing.T, body []byte) []abi.Record {
	t.Helper()
	d := abi.NewDecoder()
	d.Reset(body)
	recs, err := d.Records("m", false)
	if err == nil {
		err = d.End()
	}
	if err != nil {
		t.Fatalf("records: %v", err)
	}
	return recs
}

// TestABI_badRequests checks that malformed and invalid requests are
// answered with code 2 and change nothing, and never trap.
func TestABI_badRequests(t *testing.T) {
	t.Parallel()
	g := newRuntime(t, build(t, t.TempDir())).newGuest(t)
	g.open()
	put(g, "m", "k", false, []byte("v"), t0+1)
	manyKeys := append([]byte{0x93, 0xa1, 'm', 0xc2, 0xdd}, binary.BigEndian.AppendUint32(nil, abi.MaxGetKeys+1)...)
	manyKeys = append(manyKeys, bytes.Repeat([]byte{0xa0}, abi.MaxGetKeys+1)...)
	manyMutations := append([]byte{0x92, 0x01, 0xdd}, binary.BigEndian.AppendUint32(nil, abi.MaxBatchOps+1)...)
	manyMutations = append(manyMutations, bytes.Repeat([]byte{0x96, 2, 0xa1, 'm', 0xa0, 0xc2, 0xc0, 0}, abi.MaxBatchOps+1)...)
	validApply := func(mutate func(*abi.Batch)) []byte {
		b := &abi.Batch{Now: t0 + 1}
		b.Put("m", "new", false, []byte("x"), 0)
		b.Delete("m", "k", false)
		mutate(b)
		e := abi.NewEncoder()
		e.ApplyRequest(b)
		return e.Bytes()
	}
	tests := []struct {
		name string
		op   abi.WasmCall
		req  []byte
		want string // in the message
	}{
		{"apply: empty body", abi.CallApply, nil, "malformed apply request"},
		{"apply: not an array", abi.CallApply, []byte{0xa1, 'x'}, "malformed"},
		{"apply: too few fields", abi.CallApply, []byte{0x91, 0x01}, "malformed"},
		{"apply: truncated", abi.CallApply, validApply(func(*abi.Batch) {})[:20], "malformed"},
		{"apply: trailing byte", abi.CallApply, append(validApply(func(*abi.Batch) {}), 0xc0), "1 trailing bytes"},
		{"apply: time above int64", abi.CallApply, []byte{0x92, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x90}, "malformed"},
		{"apply: bool for the time", abi.CallApply, []byte{0x92, 0xc3, 0x90}, "malformed"},
		{"apply: array of 2^32-1 mutations", abi.CallApply, []byte{0x92, 0x01, 0xdd, 0xff, 0xff, 0xff, 0xff}, "malformed"},
		{"apply: str longer than the request", abi.CallApply, []byte{0x92, 0x01, 0x91, 0x96, 0x01, 0xdb, 0x7f, 0, 0, 0, 'm'}, "malformed"},
		{"apply: byte 0xc1", abi.CallApply, []byte{0x92, 0x01, 0x91, 0xc1}, "malformed"},
		{"apply: too many mutations", abi.CallApply, manyMutations, "the limit is 100000"},
		{"apply: time 0", abi.CallApply, validApply(func(b *abi.Batch) { b.Now = 0 }), "batch time 0 is not positive"},
		{"apply: negative kind", abi.CallApply, []byte{0x92, 0x01, 0x91, 0x96, 0xff, 0xa1, 'm', 0xa0, 0xc2, 0xc0, 0}, "malformed"},
		{"apply: kind 3", abi.CallApply, validApply(func(b *abi.Batch) { b.Mutations[1].Kind = 3 }), "mutation 1: unknown kind 3"},
		{"apply: empty map", abi.CallApply, validApply(func(b *abi.Batch) { b.Put("", "k", false, nil, 0) }), "mutation 2: map name is empty"},
		{"apply: long key", abi.CallApply, validApply(func(b *abi.Batch) { b.Put("m", strings.Repeat("\xff", 3000), false, nil, 0) }), `key "\xff\xff`},
		{"apply: surrogate in key", abi.CallApply, validApply(func(b *abi.Batch) { b.Put("m", "\xed\xa0\x80", false, nil, 0) }), "not valid UTF-8"},
		{"apply: overlong NUL in map", abi.CallApply, validApply(func(b *abi.Batch) { b.Put("\xc0\x80", "k", false, nil, 0) }), "not valid UTF-8"},
		{"apply: NUL in map", abi.CallApply, validApply(func(b *abi.Batch) { b.Put("a\x00", "k", false, nil, 0) }), "contains a NUL byte"},
		{"apply: value too large", abi.CallApply, validApply(func(b *abi.Batch) { b.Put("m", "big", false, make([]byte, abi.MaxValueBytes+1), 0) }), "the limit is 8388608"},
		{"apply: negative expiration", abi.CallApply, validApply(func(b *abi.Batch) { b.Put("m", "e", false, nil, -5) }), "expiration time -5"},
		{"get: too many keys", abi.CallGet, manyKeys, "get of 100001 keys"},
		{"get: trailing byte", abi.CallGet, []byte{0x93, 0xa1, 'm', 0xc2, 0x90, 0x00}, "trailing"},
		{"get: invalid key", abi.CallGet, []byte{0x93, 0xa1, 'm', 0xc2, 0x92, 0xa1, 'k', 0xa1, 0xfe}, "not valid UTF-8"},
		{"get: empty map", abi.CallGet, []byte{0x93, 0xa0, 0xc2, 0x91, 0xa1, 'k'}, "map name is empty"},
		{"get: int for bool", abi.CallGet, []byte{0x93, 0xa1, 'm', 0x00, 0x90}, "malformed"},
		{"scan: foreign cursor", abi.CallScan, []byte{0x95, 0xa1, 'm', 0xc2, 0xa3, 'x', 'y', 'z', 0, 0}, "not one memkv issued"},
		{"scan: cursor too long", abi.CallScan, append(append([]byte{0x95, 0xa1, 'm', 0xc2, 0xc5, 0x0b, 0xb8, 'k'}, bytes.Repeat([]byte{'z'}, 2999)...), 0, 0), "not one memkv issued"},
		{"scan: 4 fields", abi.CallScan, []byte{0x94, 0xa1, 'm', 0xc2, 0xc0, 0}, "malformed"},
		{"list_maps: a body", abi.CallListMaps, []byte{0x90}, "want 0 bytes"},
		{"list_expired: float limit", abi.CallListExpired, []byte{0x92, 0x01, 0xca, 0, 0, 0, 0}, "malformed"},
		{"close: a body", abi.CallClose, []byte{0xc0}, "want 0 bytes"},
	}
	for _, tt := range tests {
		r := g.do(tt.op, tt.req)
		if r.code != abi.CodeInvalidArgument || !bytes.Contains(r.body, []byte(tt.want)) {
			t.Errorf("%s: %s; want code 2 with %q", tt.name, r, tt.want)
		}
	}
	// A request longer than the buffer the host was given.
	if r := g.raw(abi.CallGet, nil, g.cap+1<<20); r.code != abi.CodeInvalidArgument {
		t.Errorf("req_len beyond the buffer: %s; want code 2", r)
	}
	// Nothing changed: the one record is still there, alone.
	if got := g.get("m", false, "k", "new"); len(got) != 1 || got[0].Key != "k" || string(got[0].Value) != "v" {
		t.Errorf("after the bad requests, get = %+v; want only record k", got)
	}
}

// TestABI_keyValidation checks memkv's UTF-8 and NUL checks against Go's
// (abi.ValidateKey): every boundary of the well-formed ranges, then random
// short byte strings drawn around them (seeded, so a failure reproduces).
func TestABI_keyValidation(t *testing.T) {
	t.Parallel()
	g := newRuntime(t, build(t, t.TempDir())).newGuest(t)
	g.open()
	keys := []string{"", "a", "\x00", "\x7f", "\x80", "\xc1\xbf", "\xc2\x80", "\xdf\xbf", "\xe0\x9f\xbf", "\xe0\xa0\x80",
		"\xed\x9f\xbf", "\xed\xa0\x80", "\xef\xbf\xbf", "\xf0\x8f\xbf\xbf", "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf",
		"\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xe2\x82", "\xe2\x82\xac", "\xc3\x28", "\xff", "a\x00b", "é", "😀"}
	bytesAround := []byte{0x00, 0x01, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff}
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 3000; i++ {
		k := make([]byte, 1+rng.Intn(4))
		for j := range k {
			k[j] = bytesAround[rng.Intn(len(bytesAround))]
		}
		keys = append(keys, string(k))
	}
	for _, k := range keys {
		b := &abi.Batch{Now: t0}
		b.Put("m", k, false, nil, 0)
		e := abi.NewEncoder()
		e.ApplyRequest(b)
		r := g.do(abi.CallApply, e.Bytes())
		goErr := abi.ValidateKey(k)
		if (r.code == abi.CodeOK) != (goErr == nil) || (r.code != abi.CodeOK && r.code != abi.CodeInvalidArgument) {
			t.Errorf("put of key %q: %s; abi.ValidateKey says %v", k, r, goErr)
		}
	}
}

// TestABI_largeResponses checks the buffer-moved status and the response
// limit of open.
func TestABI_largeResponses(t *testing.T) {
	t.Parallel()
	r := newRuntime(t, build(t, t.TempDir()))
	g := r.newGuest(t)
	g.open()
	value := bytes.Repeat([]byte("0123456789abcdef"), 3<<10) // 48 KiB: each apply fits the 64 KiB buffer
	keys := []string{"a", "b", "c", "d", "e"}
	for _, k := range keys {
		put(g, "m", k, false, value, 0)
	}
	before := g.ptr
	e := abi.NewEncoder()
	e.GetRequest("m", false, keys)
	reply := g.do(abi.CallGet, e.Bytes())
	if reply.code != abi.CodeOK || !reply.moved {
		t.Fatalf("get of 240 KiB into a 64 KiB buffer: %s, moved=%v; want ok with the buffer-moved flag", reply, reply.moved)
	}
	if recs := decodeRecords(t, reply.body); len(recs) != len(keys) || !bytes.Equal(recs[4].Value, value) {
		t.Errorf("get after the buffer moved = %d records; want %d with their values", len(recs), len(keys))
	}
	t.Logf("buffer moved from %d to %d", before, g.ptr)
	// The next call uses the new buffer and needs no move.
	if reply := g.do(abi.CallGet, e.Bytes()); reply.code != abi.CodeOK || reply.moved {
		t.Errorf("the same get again: %s, moved=%v; want ok without a move", reply, reply.moved)
	}

	small := r.newGuest(t)
	small.must(abi.CallOpen, openReq(1000, nil))
	put(small, "m", "a", false, make([]byte, 600), 0)
	put(small, "m", "b", false, make([]byte, 600), 0)
	if reply := small.do(abi.CallScan, mp(t, []any{"m", false, nil, 0, 0})); reply.code != abi.CodeResourceExhausted {
		t.Errorf("scan past max_response_bytes: %s; want code 6 (resource exhausted)", reply)
	}
	if reply := small.do(abi.CallScan, mp(t, []any{"m", false, nil, 1, 0})); reply.code != abi.CodeOK {
		t.Errorf("scan of one record under max_response_bytes: %s; want ok", reply)
	}
}

// FuzzCall sends arbitrary bytes as the request of every op to a fresh,
// opened instance holding a few records. No input may trap or break the
// rules of WASM.md (checked by raw); a successful response must decode;
// and the instance must keep working.
func FuzzCall(f *testing.F) {
	r := newRuntime(f, build(f, f.TempDir()))
	e := abi.NewEncoder()
	e.ApplyRequest(&abi.Batch{Now: t0, Mutations: []abi.Mutation{{Kind: abi.OpPut, Map: "m", Key: "k", Value: []byte("v")}, {Kind: abi.OpDelete, Map: "m", Key: "x"}}})
	f.Add(uint8(abi.CallApply), bytes.Clone(e.Bytes()))
	e.Reset(nil)
	e.GetRequest("m", false, []string{"k", "a", "k"})
	f.Add(uint8(abi.CallGet), bytes.Clone(e.Bytes()))
	e.Reset(nil)
	e.ScanRequest(&abi.ScanRequest{Map: "m", Cursor: []byte("ka"), Limit: 1, MaxBytes: 3})
	f.Add(uint8(abi.CallScan), bytes.Clone(e.Bytes()))
	e.Reset(nil)
	e.ListExpiredRequest(t0, 10)
	f.Add(uint8(abi.CallListExpired), bytes.Clone(e.Bytes()))
	f.Add(uint8(abi.CallOpen), openReq(100, map[string]string{"a": "b"}))
	f.Add(uint8(abi.CallListMaps), []byte{})
	f.Add(uint8(abi.CallDescribe), []byte{0x91, 0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, op uint8, req []byte) {
		g := r.newGuest(t)
		g.open()
		put(g, "m", "a", false, []byte("1"), t0+5)
		put(g, "m", "b", true, nil, 0)
		put(g, "n", "", false, []byte("2"), 0)
		call := abi.WasmCall(op % 10)
		reply := g.do(call, req)
		if reply.code == abi.CodeOK {
			d := abi.NewDecoder()
			d.Reset(reply.body)
			var err error
			switch call {
			case abi.CallDescribe, abi.CallOpen:
				_, err = d.Description()
			case abi.CallGet:
				_, err = d.Records("m", false)
			case abi.CallScan:
				_, err = d.Page("m", false)
			case abi.CallListMaps:
				_, err = d.Strings()
			case abi.CallListExpired:
				_, err = d.Expired()
			}
			if err == nil {
				err = d.End()
			}
			if err != nil {
				t.Fatalf("%s: the ok response % x does not decode: %v", call, reply.body, err)
			}
		}
		// The instance still serves a well-formed call (unless the input closed it).
		if call != abi.CallClose {
			if got := g.do(abi.CallListMaps, nil); got.code != abi.CodeOK {
				t.Fatalf("list_maps after %s: %s; want ok", call, got)
			}
		}
	})
}

// BenchmarkMemkv runs the shared benchmarks (abitest.RunBenchmarks)
// against the plugin loaded through the host with the default options
// (sandboxed), as the server loads it.
func BenchmarkMemkv(b *testing.B) {
	path := build(b, b.TempDir())
	cache := b.TempDir()
	abitest.RunBenchmarks(b, func(b *testing.B) abi.Backend {
		o := host.DefaultOptions()
		o.CacheDir = cache
		// BatchPut1000 keeps every record of its b.N batches in the
		// instance's memory: a round of a second holds over a million,
		// more than the default limit.
		o.MemoryLimitMB = 4096
		be, err := host.Load(context.Background(), path, o)
		if err != nil {
			b.Fatalf("host.Load(%s): %v", path, err)
		}
		return be
	})
}
