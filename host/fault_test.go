package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/plugins/null"
)

// The fault-injection suite: one subtest per adversarial plugin. Each
// checks the promises the sandbox makes to operators:
//
//  1. the failing call (or load) returns a clear error: the plugin's file,
//     the op, what happened, with the right code;
//  2. a built-in backend (null) and a second plugin (wasm null) in the same
//     process keep working while the adversary runs and after;
//  3. nothing already committed is lost (a durable plugin, logstore, holds
//     committed records that are read back after every adversary);
//  4. memory returns to its bound: the adversary's live instances hold no
//     more than a fresh instance does, and the Go heap after GC is back
//     within a margin of what it was before the suite;
//  5. the process survives, and the adversary's next call runs on a fresh
//     instance.

// bystanders are the other backends of the process.
type bystanders struct {
	native  abi.Backend
	wasm    *Backend
	durable *Backend

	mu        sync.Mutex
	committed map[string]string // durable map "committed": key -> value
	batches   int
}

func newBystanders(t *testing.T) *bystanders {
	bs := &bystanders{native: null.Open(), committed: map[string]string{}}
	t.Cleanup(func() { _ = bs.native.Close() })
	bs.wasm = mustLoad(t, nullWasm(t), nil)
	o := testOptions(t)
	o.DataDir = t.TempDir()
	bs.durable = mustLoad(t, logstoreWasm(t), o)
	bs.commit(t, 20)
	return bs
}

func logstoreWasm(t testing.TB) string {
	return buildPlugin(t, "../examples/plugins/logstore/cmd/logstore")
}

// commit adds a batch of n records to the durable plugin and remembers them.
func (bs *bystanders) commit(t *testing.T, n int) {
	t.Helper()
	bs.mu.Lock()
	defer bs.mu.Unlock()
	bs.batches++
	b := &abi.Batch{Now: int64(bs.batches)}
	for i := 0; i < n; i++ {
		k, v := fmt.Sprintf("b%03d-k%03d", bs.batches, i), fmt.Sprintf("value %d of batch %d", i, bs.batches)
		b.Put("committed", k, false, []byte(v), 0)
		bs.committed[k] = v
	}
	if err := bs.durable.Apply(context.Background(), b); err != nil {
		t.Fatalf("bystander logstore: commit: %v", err)
	}
}

// traffic runs puts and gets on the bystanders until stop is closed (at
// most 20,000 rounds or 2 minutes) and returns the rounds done and the
// first error.
func (bs *bystanders) traffic(stop <-chan struct{}) (wait func() (int, error)) {
	done := make(chan struct{})
	var n int
	var err error
	go func() {
		defer close(done)
		ctx := context.Background()
		deadline := time.Now().Add(2 * time.Minute)
		for ; n < 20_000 && time.Now().Before(deadline); n++ {
			select {
			case <-stop:
				return
			default:
			}
			key := fmt.Sprintf("t%03d", n%100)
			for _, be := range []abi.Backend{bs.native, bs.wasm} {
				b := &abi.Batch{Now: int64(n + 1)}
				b.Put("traffic", key, false, []byte(key), 0)
				if err = be.Apply(ctx, b); err != nil {
					return
				}
				recs, gerr := be.Get(ctx, "traffic", false, []string{key})
				if gerr != nil || len(recs) != 1 || string(recs[0].Value) != key {
					err = fmt.Errorf("%s: get %s = %v, %v", be.Describe().Name, key, recs, gerr)
					return
				}
			}
			if _, err = bs.durable.Get(ctx, "committed", false, []string{"b001-k000"}); err != nil {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	return func() (int, error) { <-done; return n, err }
}

// check reads back everything committed to the durable plugin, then
// commits one more batch: nothing committed is lost and writes go on.
func (bs *bystanders) check(t *testing.T) {
	t.Helper()
	bs.mu.Lock()
	keys := make([]string, 0, len(bs.committed))
	for k := range bs.committed {
		keys = append(keys, k)
	}
	bs.mu.Unlock()
	recs, err := bs.durable.Get(context.Background(), "committed", false, keys)
	if err != nil {
		t.Fatalf("bystander logstore: get committed records: %v", err)
	}
	if len(recs) != len(keys) {
		t.Fatalf("bystander logstore: %d of %d committed records found", len(recs), len(keys))
	}
	for _, r := range recs {
		if string(r.Value) != bs.committed[r.Key] {
			t.Fatalf("bystander logstore: %s = %q, committed %q", r.Key, r.Value, bs.committed[r.Key])
		}
	}
	bs.commit(t, 5)
	if st := bs.wasm.Stats(); st.Failures != 0 || st.InstancesStarted != 1 {
		t.Errorf("bystander wasm null: stats %+v, want no failure on its one instance", st)
	}
}

func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// adversary is one hostile plugin and how it attacks.
type adversary struct {
	name string
	// file returns the plugin's path.
	file func(t *testing.T) string
	// opts adjusts the options it is loaded with.
	opts func(t *testing.T, o *Options)
	// attack runs the hostile call on the loaded plugin and returns its
	// error; nil attack: the attack is Load itself, which must fail.
	attack func(t *testing.T, b *Backend) error
	// code and want: the error's code and what its message must say
	// (nil code: the attack must not fail, e.g. a log flood).
	code *abi.Error
	want []string
	// kept: the failure leaves the instance alive (a panic the SDK
	// recovers); otherwise the instance must have been discarded.
	kept bool
	// after, when set, checks the adversary's own state after recovery.
	after func(t *testing.T, b *Backend)
}

func wat(name string) func(*testing.T) string {
	return func(*testing.T) string { return "testdata/wat/" + name + ".wasm" }
}

// rawModule writes a module that no WAT can express (it is malformed) to a
// temporary file.
func rawModule(name, bin string) func(*testing.T) string {
	return func(t *testing.T) string {
		path := filepath.Join(t.TempDir(), name+".wasm")
		if err := os.WriteFile(path, []byte(bin), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
}

func goPlugin(name string) func(*testing.T) string {
	return func(t *testing.T) string { return buildTestPlugin(t, name) }
}

// getEvil asks a WAT adversary to misbehave (see testdata/wat/*.wat).
func getEvil(key string) func(*testing.T, *Backend) error {
	return func(t *testing.T, b *Backend) error {
		_, err := b.Get(context.Background(), "evil", false, []string{key})
		return err
	}
}

func applyTo(mapName string) func(*testing.T, *Backend) error {
	return func(t *testing.T, b *Backend) error {
		batch := &abi.Batch{Now: 1}
		batch.Put(mapName, "k", false, []byte("v"), 0)
		return b.Apply(context.Background(), batch)
	}
}

// TestFault runs every adversary in turn beside the same bystanders.
func TestFault(t *testing.T) {
	if testing.Short() {
		t.Skip("the fault-injection suite builds and loads many plugins; skipped in -short mode")
	}
	bs := newBystanders(t)
	// Warm up the bystanders and the plugins every adversary shares the
	// build of, then measure the heap the suite must come back to.
	for _, f := range []string{"hostile", "snoop", "crashstore"} {
		buildTestPlugin(t, f)
	}
	stop := make(chan struct{})
	close(stop)
	bs.traffic(stop)()
	baseline := heapAfterGC()
	t.Logf("heap after GC before the adversaries: %.1f MiB", float64(baseline)/(1<<20))
	// An adversary may hold its live instance and the compiled code of one
	// plugin; a leaked 128 MiB memory limit would be far over this.
	const heapMargin = 48 << 20

	for _, a := range adversaries() {
		t.Run(a.name, func(t *testing.T) {
			ctx := context.Background()
			o := testOptions(t)
			o.CallTimeout = 2 * time.Second
			o.MemoryLimitMB = 128
			if a.opts != nil {
				a.opts(t, o)
			}
			path := a.file(t)
			stop := make(chan struct{})
			wait := bs.traffic(stop)
			var b *Backend
			var err error
			var before Stats
			if a.attack == nil {
				start := time.Now()
				b, err = Load(ctx, path, o)
				if err == nil {
					_ = b.Close()
					close(stop)
					wait()
					t.Fatalf("Load(%s) succeeded, want it refused", path)
				}
				b = nil
				if d := time.Since(start); d > 20*time.Second {
					t.Errorf("Load took %s to fail", d)
				}
			} else {
				b = mustLoad(t, path, o)
				before = b.Stats()
				start := time.Now()
				err = a.attack(t, b)
				if d := time.Since(start); d > 20*time.Second {
					t.Errorf("the attack took %s", d)
				}
			}
			close(stop)
			rounds, terr := wait()
			t.Logf("bystander traffic during the attack: %d rounds", rounds)

			// 1. A clear error.
			switch {
			case a.attack != nil && a.code == nil && err != nil:
				t.Errorf("error %v, want none", err)
			case a.code != nil && !errors.Is(err, a.code):
				t.Errorf("error %v, want code %v", err, a.code.Code)
			}
			if err != nil {
				t.Logf("error: %v", err)
				if a.attack != nil && !a.kept && !strings.Contains(err.Error(), "the instance was discarded") {
					t.Errorf("error %q does not say the instance was discarded", err)
				}
				for _, w := range a.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
			}
			// 2. The other backends kept working.
			if terr != nil {
				t.Errorf("bystander traffic failed during the attack: %v", terr)
			}
			// 5. The adversary recovers: a fresh instance serves the next call.
			if b != nil {
				if a.code != nil {
					st := b.Stats()
					if a.kept {
						if st.InstancesDiscarded != before.InstancesDiscarded {
							t.Errorf("stats %+v: the instance was discarded, want it kept", st)
						}
					} else if st.InstancesDiscarded <= before.InstancesDiscarded || st.Failures <= before.Failures {
						t.Errorf("stats %+v (before %+v): want the instance discarded and the failure counted", st, before)
					}
				}
				if _, err := b.Get(ctx, "other", false, []string{"k"}); err != nil {
					t.Errorf("the next call on %s failed: %v", filepath.Base(path), err)
				}
				if a.after != nil {
					a.after(t, b)
				}
				// 4. Its memory is back to what a fresh instance holds.
				st := b.Stats()
				if st.Live != 1 || st.MemoryBytes > before.MemoryBytes+4<<20 {
					t.Errorf("stats %+v: want 1 live instance holding about %d bytes, as a fresh one", st, before.MemoryBytes)
				}
			}
			// 3. Nothing committed is lost, and writes go on.
			bs.check(t)
			// 4. The Go heap is back within its bound.
			if b != nil {
				_ = b.Close()
			}
			if h := heapAfterGC(); h > baseline+heapMargin {
				t.Errorf("heap after GC is %.1f MiB, %.1f MiB over the %.1f MiB before the suite (bound %d MiB)",
					float64(h)/(1<<20), float64(h-baseline)/(1<<20), float64(baseline)/(1<<20), heapMargin>>20)
			}
		})
	}
}

// TestREADME_countsEveryAdversary keeps the README's promise ("holds that
// promise against N hostile plugins") in step with the suite, so an
// adversary added here is also counted, and listed, there.
func TestREADME_countsEveryAdversary(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatalf("read README.md: %v", err)
	}
	want := fmt.Sprintf("`host/fault_test.go` holds that promise against %d hostile", len(adversaries()))
	if !strings.Contains(strings.Join(strings.Fields(string(readme)), " "), want) {
		t.Errorf("README.md does not say %q", want)
	}
}

func adversaries() []adversary {
	return []adversary{
		// Time.
		{name: "InfiniteLoopInCall", file: wat("loop"), attack: getEvil("k"),
			opts: func(t *testing.T, o *Options) { o.CallTimeout = 300 * time.Millisecond },
			code: abi.ErrDeadlineExceeded, want: []string{"plugin loop.wasm: get:", "did not finish within 300ms", "instance was discarded"}},
		{name: "InfiniteLoopInGoCall", file: goPlugin("hostile"), attack: applyTo("loop"),
			opts: func(t *testing.T, o *Options) { o.CallTimeout = time.Second },
			code: abi.ErrDeadlineExceeded, want: []string{"plugin hostile.wasm: apply_runs:", "did not finish within 1s"}},
		{name: "BulkInstructionLoop", file: wat("fillloop"), attack: getEvil("k"),
			opts: func(t *testing.T, o *Options) { o.CallTimeout = 300 * time.Millisecond },
			code: abi.ErrDeadlineExceeded, want: []string{"plugin fillloop.wasm: get:", "did not finish within 300ms"}},
		{name: "HostCallOverTerabytes", file: wat("iovec"), attack: getEvil("k"),
			opts: func(t *testing.T, o *Options) { o.CallTimeout = 300 * time.Millisecond },
			code: abi.ErrDeadlineExceeded, want: []string{"plugin iovec.wasm: get:", "did not finish within 300ms"}},
		{name: "InitializeNeverReturns", file: wat("initloop"),
			opts: func(t *testing.T, o *Options) { o.CallTimeout = 300 * time.Millisecond },
			want: []string{"plugin initloop.wasm: initialize:", "did not finish within 300ms"}},
		{name: "StartFunctionNeverReturns", file: wat("startloop"),
			opts: func(t *testing.T, o *Options) { o.CallTimeout = 300 * time.Millisecond },
			want: []string{"plugin startloop.wasm: instantiate:", "did not finish within 300ms"}},

		// Memory.
		{name: "MemoryBomb", file: wat("bomb"), attack: getEvil("k"),
			code: abi.ErrInternal, want: []string{"plugin bomb.wasm: get:", "trapped", "unreachable"}},
		{name: "GoMemoryBomb", file: goPlugin("hostile"), attack: applyTo("oom"),
			opts: func(t *testing.T, o *Options) { o.MemoryLimitMB = 64; o.CallTimeout = 10 * time.Second },
			code: abi.ErrInternal, want: []string{"plugin hostile.wasm: apply_runs:"}},
		{name: "TableGrowth", file: wat("tablegrow"), attack: getEvil("k")}, // traps if a grow succeeds
		{name: "DeepRecursion", file: wat("recurse"), attack: getEvil("k"),
			code: abi.ErrInternal, want: []string{"plugin recurse.wasm: get:", "call stack passed the limit of 16 MiB", "instance was discarded"}},
		{name: "SlowGrowthAcrossCalls", file: wat("leak"), attack: slowGrowth,
			code: abi.ErrInternal, want: []string{"plugin leak.wasm: get:", "trapped", "unreachable"}},

		// Crashes.
		{name: "TrapMidCall", file: wat("trap"), attack: getEvil("k"),
			code: abi.ErrInternal, want: []string{"plugin trap.wasm: get:", "trapped", "unreachable", "instance was discarded"}},
		{name: "GoPanicMidCall", file: goPlugin("hostile"), attack: applyTo("panic"), kept: true,
			code: abi.ErrInternal, want: []string{"plugin hostile.wasm: apply_runs:", "hostile: asked to panic"}},
		{name: "GoExitMidCall", file: goPlugin("hostile"), attack: applyTo("exit"),
			code: abi.ErrInternal, want: []string{"plugin hostile.wasm: apply_runs:", "exited with code 3"}},
		{name: "TrapMidBatch", file: goPlugin("crashstore"), attack: trapMidBatch, after: checkMidBatch,
			opts: func(t *testing.T, o *Options) { o.DataDir = t.TempDir() },
			code: abi.ErrInternal, want: []string{"plugin crashstore.wasm: apply_runs: trapped", "fatal error: sync: unlock of unlocked mutex", "instance was discarded"}},

		// Responses that lie.
		{name: "TruncatedResponse", file: wat("liar"), attack: getEvil("t"),
			code: abi.ErrInternal, want: []string{"plugin liar.wasm: get:", "malformed"}},
		{name: "OversizedResponse", file: wat("liar"), attack: getEvil("b"),
			code: abi.ErrInternal, want: []string{"plugin liar.wasm: get:", "malformed result", "exceeds the limit", "TOPGUN_PLUGIN_MAX_RESPONSE_BYTES"}},
		{name: "InvalidMsgpack", file: wat("liar"), attack: getEvil("j"),
			code: abi.ErrInternal, want: []string{"plugin liar.wasm: get:", "malformed response"}},
		{name: "WrongStatusCode", file: wat("liar"), attack: getEvil("c"),
			code: abi.ErrInternal, want: []string{"plugin liar.wasm: get:", "status code 99 is not an error code"}},
		{name: "ReservedStatusBits", file: wat("liar"), attack: getEvil("r"),
			code: abi.ErrInternal, want: []string{"plugin liar.wasm: get:", "reserved bits"}},
		{name: "ClaimsMoreRecordsThanSent", file: wat("liar"), attack: getEvil("m"),
			code: abi.ErrInternal, want: []string{"plugin liar.wasm: get:", "malformed response"}},
		{name: "DeeplyNestedResponse", file: wat("liar"), attack: getEvil("n"),
			code: abi.ErrInternal, want: []string{"plugin liar.wasm: get:", "malformed response", "values still to skip"}},
		{name: "LengthPastItsMemory", file: wat("liar"), attack: getEvil("p"),
			code: abi.ErrInternal, want: []string{"plugin liar.wasm: get:", "outside its memory"}},

		// Logs.
		{name: "LogFlood", file: wat("flood"), attack: logFlood, opts: captureLogs},

		// Reaching out of the sandbox.
		{name: "EscapeAttempts", file: goPlugin("snoop"), attack: escapeAttempts, opts: escapeSetup},

		// Not a plugin of this server.
		{name: "WrongABIVersionExport", file: wat("v2export"),
			want: []string{"plugin v2export.wasm was built for storage ABI 2.3", "implements 1.1", "rebuild the plugin"}},
		{name: "WrongABIVersionImport", file: wat("v2import"),
			want: []string{"plugin v2import.wasm was built for storage ABI 2", "topgun_v2.log", "implements 1.1"}},
		{name: "MissingExports", file: wat("noexports"),
			want: []string{"plugin noexports.wasm:", "missing exports", "topgun_abi_version", "topgun_buffer", "topgun_call"}},
		{name: "UnknownHostImports", file: wat("badimport"),
			want: []string{"plugin badimport.wasm:", "topgun_v1.http_get", "does not provide", "env.abort", "may import only"}},
		{name: "WrongImportSignatures", file: wat("badimportsig"),
			want: []string{"plugin badimportsig.wasm: not a storage plugin:",
				"topgun_v1.log with signature (i32, i32) -> (), want (i32, i32, i32) -> ()",
				"wasi_snapshot_preview1.fd_write with signature (i32) -> (), want (i32, i32, i32, i32) -> (i32)",
				"wasi_snapshot_preview1.sock_listen, which WASI preview 1 does not define"}},
		// Invalid as written; metered, its global 0 would be the meter's
		// budget, refilled in a loop the deadline could then not stop.
		{name: "WritesTheMetersGlobal", file: wat("metglobal"),
			want: []string{"plugin metglobal.wasm: invalid wasm module:", "global index"}},
		{name: "InitializeTraps", file: wat("inittrap"),
			want: []string{"plugin inittrap.wasm: initialize:", "trapped", "unreachable"}},
		// A name section of 15 bytes claiming 4,294,967,295 function names:
		// wazero would allocate ~100 GiB for them and the process would die.
		{name: "ClaimsBillionsOfNames", file: rawModule("namebomb", "\x00asm\x01\x00\x00\x00"+
			"\x00\x10\x04name\x01\x09\xff\xff\xff\xff\x0f\x00\x00\x00\x00"),
			want: []string{"plugin namebomb.wasm: invalid wasm module:", "claims 4294967295 elements"}},
		// Function 0 calls function 1, whose type index 5 does not exist:
		// wazero's validator panics on it.
		{name: "RuntimePanicsOnModule", file: rawModule("badcall", "\x00asm\x01\x00\x00\x00"+
			"\x01\x04\x01\x60\x00\x00"+ // one type, () -> ()
			"\x03\x03\x02\x00\x05"+ // functions of types 0 and 5
			"\x0a\x09\x02\x04\x00\x10\x01\x0b\x02\x00\x0b"), // call 1; an empty body
			want: []string{"plugin badcall.wasm: invalid wasm module:"}},
		{name: "NotWasm", file: wat("notwasm"),
			want: []string{"plugin notwasm.wasm:", "not a wasm binary module"}},
		{name: "HugeFile", file: hugeFile,
			want: []string{"plugin huge.wasm:", "the limit is 268435456"}},
	}
}

// slowGrowth calls the leaking get until the plugin hits the memory limit
// (128 MiB: about 125 calls of 1 MiB each), checking that memory grows
// call by call on the way.
func slowGrowth(t *testing.T, b *Backend) error {
	last := b.Stats().MemoryBytes
	for i := 0; i < 1000; i++ {
		if err := getEvil("k")(t, b); err != nil {
			t.Logf("failed after %d calls, at %d MiB", i, last>>20)
			if i < 100 {
				t.Errorf("the leak failed after %d calls, want about 125 (1 MiB each up to 128 MiB)", i)
			}
			return err
		}
		m := b.Stats().MemoryBytes
		if m <= last {
			t.Fatalf("call %d: memory %d bytes, not more than %d: the leak is not counted", i, m, last)
		}
		last = m
	}
	t.Fatal("1000 leaking calls did not reach the memory limit")
	return nil
}

// trapMidBatch commits a batch to the durable crashstore, then sends one
// that crashes the instance in the middle of apply.
func trapMidBatch(t *testing.T, b *Backend) error {
	ctx := context.Background()
	good := &abi.Batch{Now: 1}
	for i := 0; i < 10; i++ {
		good.Put("m", fmt.Sprintf("good-%02d", i), false, []byte("committed"), 0)
	}
	if err := b.Apply(ctx, good); err != nil {
		t.Fatalf("commit before the crash: %v", err)
	}
	bad := &abi.Batch{Now: 2}
	for i := 0; i < 5; i++ {
		bad.Put("m", fmt.Sprintf("bad-%02d", i), false, []byte("must not be applied"), 0)
	}
	bad.Delete("m", "good-00", false)
	bad.Put("trap", "k", false, []byte("x"), 0)
	bad.Put("m", "bad-99", false, []byte("must not be applied"), 0)
	return b.Apply(ctx, bad)
}

// checkMidBatch reads the crashstore back through the fresh instance,
// which reopened the store from disk.
func checkMidBatch(t *testing.T, b *Backend) {
	page, err := b.Scan(context.Background(), abi.ScanRequest{Map: "m", Limit: 100})
	if err != nil {
		t.Fatalf("scan after the crash: %v", err)
	}
	var keys []string
	for _, r := range page.Records {
		keys = append(keys, r.Key)
	}
	if got := strings.Join(keys, ","); got != "good-00,good-01,good-02,good-03,good-04,good-05,good-06,good-07,good-08,good-09" {
		t.Errorf("after a crash mid-batch the store holds %s; want exactly the committed batch, nothing of the crashed one", got)
	}
	if st := b.Stats(); st.InstancesStarted < 2 {
		t.Errorf("stats %+v: want the store reopened by a fresh instance", st)
	}
}

// logCounter counts the lines a logger writes and keeps a few of them.
type logCounter struct {
	mu      sync.Mutex
	lines   int
	longest int
	dropped []string
}

func (c *logCounter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range bytes.Split(bytes.TrimRight(p, "\n"), []byte("\n")) {
		c.lines++
		c.longest = max(c.longest, len(l))
		if bytes.Contains(l, []byte("dropped by the rate limit")) {
			c.dropped = append(c.dropped, string(l))
		}
	}
	return len(p), nil
}

var floodLogs sync.Map // test name -> *logCounter

func captureLogs(t *testing.T, o *Options) {
	c := &logCounter{}
	floodLogs.Store(t.Name(), c)
	o.Logger = hclog.New(&hclog.LoggerOptions{Output: c, Level: hclog.Trace, DisableTime: true})
}

// logFlood makes 100,000 log calls of 10,000 bytes, twice: the host lets
// through at most its burst, caps each line, reports the dropped lines,
// and the calls stay fast.
func logFlood(t *testing.T, b *Backend) error {
	v, _ := floodLogs.Load(t.Name())
	c := v.(*logCounter)
	start := time.Now()
	if err := getEvil("k")(t, b); err != nil {
		return err
	}
	t.Logf("100,000 log calls took %s", time.Since(start))
	time.Sleep(100 * time.Millisecond) // refills about 20 lines of budget
	if err := getEvil("k")(t, b); err != nil {
		return err
	}
	elapsed := time.Since(start)
	c.mu.Lock()
	defer c.mu.Unlock()
	t.Logf("200,000 log calls in %s gave %d log lines, the longest %d bytes; %d reports of dropped lines, the first %q",
		elapsed, c.lines, c.longest, len(c.dropped), c.dropped[0:min(1, len(c.dropped))])
	// The burst, the refill over the elapsed time, and one report of the
	// dropped lines before each line let through after a drop.
	if bound := logBurst + 2*int(logLinesPerSecond*elapsed.Seconds()+1) + 10; c.lines > bound {
		t.Errorf("%d lines logged in %s, want at most %d (the burst of %d and the refill at %d a second)", c.lines, elapsed, bound, logBurst, logLinesPerSecond)
	}
	if c.longest > MaxLogLineBytes+200 {
		t.Errorf("a line of %d bytes was logged, want at most %d and the logger's prefix", c.longest, MaxLogLineBytes)
	}
	if len(c.dropped) == 0 {
		t.Error("the dropped lines were not reported")
	}
	return nil
}

// escapeSetup grants the snoop plugin a data directory holding a symlink
// to a file outside it, and the address of a listening socket.
func escapeSetup(t *testing.T, o *Options) {
	t.Setenv("TOPGUN_TEST_SECRET", "do-not-leak")
	root := t.TempDir()
	dir := filepath.Join(root, "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "outside.txt"), []byte("secret outside"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "outside.txt"), filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan struct{}, 1)
	go func() {
		if c, err := l.Accept(); err == nil {
			accepted <- struct{}{}
			c.Close()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		select {
		case <-accepted:
			t.Error("the plugin connected to a socket")
		default:
		}
	})
	o.DataDir = dir
	o.Config = map[string]string{"dial": l.Addr().String()}
}

// escapeAttempts reads what the snoop plugin managed to do when it opened.
func escapeAttempts(t *testing.T, b *Backend) error {
	for _, k := range []string{"read_etc_passwd", "read_escape", "read_symlink", "make_symlink", "read_dotdot", "write_dotdot", "write_symlink", "dial"} {
		got := snoopGet(t, b, k)
		if !strings.HasPrefix(got, "error:") {
			t.Errorf("%s = %q, want an error", k, got)
		}
		if strings.Contains(got, "secret") || strings.Contains(got, "root:") {
			t.Errorf("%s leaked %q", k, got)
		}
	}
	for _, k := range []string{"env", "getenv"} {
		if got := snoopGet(t, b, k); got != "" {
			t.Errorf("%s = %q, want no environment", k, got)
		}
	}
	// A listener is emulated inside the guest; it is no socket of the host.
	if addr := snoopGet(t, b, "listen_addr"); addr != "" {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("the plugin's listener %s accepts connections from the host", addr)
		}
	}
	if got := snoopGet(t, b, "write_data"); got != "ok" {
		t.Errorf("write inside the data directory: %s", got)
	}
	dir := b.p.opts.DataDir
	if data, err := os.ReadFile(filepath.Join(filepath.Dir(dir), "outside.txt")); err != nil || string(data) != "secret outside" {
		t.Errorf("the file outside the data directory is now %q, %v", data, err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "written.txt")); err == nil {
		t.Error("the plugin wrote a file outside its data directory")
	}
	return nil
}

// hugeFile is a sparse file past MaxPluginFileBytes that starts like wasm.
func hugeFile(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "huge.wasm")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(wasmMagic); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(MaxPluginFileBytes + 1<<20); err != nil {
		t.Fatal(err)
	}
	return path
}
