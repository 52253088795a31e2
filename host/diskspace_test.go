package host

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/internal/testbin"
)

// fakeSpace replaces statDataFS for one test (not parallel: the variable is
// the package's) with a file system of *free bytes, and counts the looks.
func fakeSpace(t *testing.T, free *atomic.Uint64) *atomic.Int64 {
	var looks atomic.Int64
	old, oldEvery := statDataFS, spaceCheckEvery
	statDataFS = func(string) (uint64, uint64, uint64, bool) {
		looks.Add(1)
		return free.Load(), 1000, 900, true
	}
	t.Cleanup(func() { statDataFS, spaceCheckEvery = old, oldEvery })
	return &looks
}

// failGet makes logstore's next get of m/k fail: the log is cut under it,
// so reading the value fails (CodeInternal), as a read of a failing disk
// would.
func failGet(t *testing.T, b *Backend, dir string) error {
	t.Helper()
	if err := os.Truncate(filepath.Join(dir, "logstore.log"), 0); err != nil {
		t.Fatal(err)
	}
	_, err := b.Get(context.Background(), "m", false, []string{"k"})
	if err == nil {
		t.Fatal("get of a value cut from the log succeeded")
	}
	return err
}

// loadLogstoreWithValue loads the logstore plugin on a fresh data
// directory, logging to logs, and stores one value (key "k" of map "m"),
// so that a failing Get reads the file system; put stores it again. root
// is the directory with its symbolic links resolved, as the host's notes
// name it.
func loadLogstoreWithValue(t *testing.T) (b *Backend, dir, root string, logs *testbin.LockedBuffer, put *abi.Batch) {
	t.Helper()
	logs = &testbin.LockedBuffer{}
	o := testOptions(t)
	o.Logger = hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Debug})
	dir = t.TempDir()
	o.DataDir = dir
	b = mustLoad(t, logstoreWasm(t), o)
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	put = &abi.Batch{Now: 1}
	put.Put("m", "k", false, []byte("value"), 0)
	if err := b.Apply(context.Background(), put); err != nil {
		t.Fatal(err)
	}
	return b, dir, root, logs, put
}

// A wasm plugin cannot tell a full disk (wazero maps ENOSPC to EIO): a
// failed call into a plugin whose data directory's file system is full
// must say so, keeping the plugin's message and code, and the host must
// warn once per episode, looking at the file system at most once per
// spaceCheckEvery.
func TestNoteSpace_fullFileSystemNamedInFailedCall(t *testing.T) {
	var free atomic.Uint64
	free.Store(4096)
	looks := fakeSpace(t, &free)
	spaceCheckEvery = time.Hour // every failure below but the last shares one look
	b, dir, root, logs, put := loadLogstoreWithValue(t)
	ctx := context.Background()
	if looks.Load() != 0 {
		t.Fatalf("the host looked at the file system %d times without a failed call", looks.Load())
	}

	want := fmt.Sprintf("; the file system of the data directory %s is full (4096 bytes free), which a wasm plugin sees as an I/O error; free space there", root)
	for i := 0; i < 2; i++ {
		err := failGet(t, b, dir)
		if abi.CodeOf(err) != abi.CodeInternal || !strings.HasPrefix(err.Error(), "plugin logstore.wasm: get: logstore: read value of key \"k\"") || !strings.HasSuffix(err.Error(), want) {
			t.Fatalf("failed get = %v (code %s); want the plugin's internal error ending with %q", err, abi.CodeOf(err), want)
		}
		if !errors.Is(err, abi.ErrInternal) {
			t.Fatalf("errors.Is(%v, abi.ErrInternal) = false", err)
		}
	}
	if n := looks.Load(); n != 1 {
		t.Fatalf("two failures looked at the file system %d times; want 1", n)
	}
	if n := strings.Count(logs.String(), "the data directory is out of space"); n != 1 {
		t.Fatalf("the episode was warned of %d times; want once:\n%s", n, logs.String())
	}

	// Not a failure a full disk leads to: no look, no note.
	if _, err := b.Get(ctx, "m", false, nil); err != nil && strings.Contains(err.Error(), "is full") {
		t.Fatalf("get of no keys = %v", err)
	}

	// Space again: the next look (on a success, while the episode is on)
	// ends it, and a failure then has no note.
	spaceCheckEvery = 0
	free.Store(1 << 40)
	if err := b.Apply(ctx, put); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "the data directory has space again") {
		t.Fatalf("the end of the episode was not logged:\n%s", logs.String())
	}
	if err := failGet(t, b, dir); strings.Contains(err.Error(), "file system") {
		t.Fatalf("failed get with space left = %v; want no note", err)
	}
	// Full again: a new episode, warned of again.
	free.Store(0)
	if err := failGet(t, b, dir); !strings.Contains(err.Error(), "is full (0 bytes free)") {
		t.Fatalf("failed get on a full file system = %v", err)
	}
	if n := strings.Count(logs.String(), "the data directory is out of space"); n != 2 {
		t.Fatalf("two episodes were warned of %d times; want twice:\n%s", n, logs.String())
	}
}

// The note tracks the failed request: a batch larger than half the free
// space counts the file system as full, and a plugin without a data
// directory gets no look.
func TestSpaceNote(t *testing.T) {
	t.Parallel()
	f := spaceFacts{ok: true, free: 100 << 20, files: 10, filesFree: 5}
	if n := spaceNote("/d", f, 1<<20); n != "" {
		t.Fatalf("100 MiB free, 1 MiB request: %q", n)
	}
	if n := spaceNote("/d", f, 60<<20); !strings.Contains(n, "/d is full (104857600 bytes free)") {
		t.Fatalf("100 MiB free, 60 MiB request: %q", n)
	}
	f.filesFree = 0
	if n := spaceNote("/d", f, 0); !strings.Contains(n, "no free inodes") {
		t.Fatalf("no inodes: %q", n)
	}
	f = spaceFacts{ok: false, limit: 1 << 20, largest: 1<<20 - 10, largestPath: "/d/log"}
	if n := spaceNote("/d", f, 0); !strings.Contains(n, "/d/log holds 1048566 bytes and the server's file size limit (RLIMIT_FSIZE, ulimit -f) is 1048576 bytes") {
		t.Fatalf("file size limit: %q", n)
	}
	f.largest = 1000
	if n := spaceNote("/d", f, 0); n != "" {
		t.Fatalf("small file under a file size limit: %q", n)
	}
	p := &plugin{}
	if err := p.noteSpace(abi.Errorf(abi.CodeUnavailable, "x"), 0, 0); err.Error() != "x" {
		t.Fatalf("without a data directory: %v", err)
	}
}

// An open that fails (here logstore's, whose log is a directory) is a
// failed call too: Load's error carries the note.
func TestNoteSpace_loadFailure(t *testing.T) {
	var free atomic.Uint64
	fakeSpace(t, &free)
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "logstore.log"), 0o755); err != nil {
		t.Fatal(err)
	}
	o := testOptions(t)
	o.DataDir = dir
	_, err := Load(context.Background(), logstoreWasm(t), o)
	if abi.CodeOf(err) != abi.CodeUnavailable || !strings.Contains(err.Error(), "plugin logstore.wasm: open: logstore: open /data/logstore.log") ||
		!strings.Contains(err.Error(), "is full (0 bytes free)") {
		t.Fatalf("Load on a full file system = %v (code %s); want logstore's unavailable error with the note", err, abi.CodeOf(err))
	}
}

// A fresh instance that cannot start after a trap (here logstore's open
// fails: its log became a directory) is a failed call too: its error
// carries the note, as a failed call and a failed Load do.
func TestNoteSpace_freshInstanceStartFailure(t *testing.T) {
	var free atomic.Uint64
	fakeSpace(t, &free)
	dir := t.TempDir()
	o := testOptions(t)
	o.DataDir = dir
	b := mustLoad(t, buildTestPlugin(t, "crashstore"), o)
	ctx := context.Background()
	trap := &abi.Batch{Now: 1}
	trap.Put("trap", "k", false, []byte("x"), 0)
	if err := b.Apply(ctx, trap); !errors.Is(err, abi.ErrInternal) {
		t.Fatalf("apply to map trap = %v, want the instance trapped", err)
	}
	log := filepath.Join(dir, "logstore.log")
	if err := os.Remove(log); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(log, 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := b.Get(ctx, "m", false, []string{"k"})
	if err == nil || !strings.Contains(err.Error(), "cannot start a fresh instance") || !strings.Contains(err.Error(), "open /data/logstore.log") ||
		!strings.HasSuffix(err.Error(), "is full (0 bytes free), which a wasm plugin sees as an I/O error; free space there") {
		t.Fatalf("call whose fresh instance cannot start = %v (code %s); want logstore's open error with the note", err, abi.CodeOf(err))
	}
}

// fakeProbe replaces probeDataWrite for one test (not parallel: the
// variable is the package's) with one answering *errno, and counts the
// probes.
func fakeProbe(t *testing.T, errno *atomic.Pointer[error]) *atomic.Int64 {
	var probes atomic.Int64
	old := probeDataWrite
	probeDataWrite = func(string) error {
		probes.Add(1)
		return *errno.Load()
	}
	t.Cleanup(func() { probeDataWrite = old })
	return &probes
}

// statfs knows nothing of quotas: a failed call into a plugin whose data
// directory is over a file system quota (a write there fails with EDQUOT,
// which wazero hands the plugin as EIO) must say so, as it says a full
// file system, and one whose file system has no block to give though its
// figures show room must be named full.
func TestNoteSpace_quotaNamedInFailedCall(t *testing.T) {
	var free atomic.Uint64
	free.Store(1 << 40)
	fakeSpace(t, &free)
	var errno atomic.Pointer[error]
	answer := func(err error) { errno.Store(&err) }
	answer(errQuota)
	probes := fakeProbe(t, &errno)
	spaceCheckEvery = 0
	b, dir, root, logs, put := loadLogstoreWithValue(t)
	ctx := context.Background()
	if probes.Load() != 0 {
		t.Fatalf("the host probed the file system %d times without a failed call", probes.Load())
	}

	want := fmt.Sprintf("; the data directory %s is over a file system quota (disk quota exceeded, EDQUOT), which a wasm plugin sees as an I/O error; raise the quota of the server's user, group or project there, or free space", root)
	err := failGet(t, b, dir)
	if abi.CodeOf(err) != abi.CodeInternal || !strings.HasPrefix(err.Error(), "plugin logstore.wasm: get: logstore: read value of key \"k\"") || !strings.HasSuffix(err.Error(), want) {
		t.Fatalf("failed get = %v (code %s); want the plugin's internal error ending with %q", err, abi.CodeOf(err), want)
	}
	if n := strings.Count(logs.String(), "the data directory is out of space"); n != 1 {
		t.Fatalf("the quota was warned of %d times; want once:\n%s", n, logs.String())
	}

	// Under the quota again: the next look ends the episode.
	answer(nil)
	if err := b.Apply(ctx, put); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "the data directory has space again") {
		t.Fatalf("the end of the episode was not logged:\n%s", logs.String())
	}
	if err := failGet(t, b, dir); strings.Contains(err.Error(), "data directory") {
		t.Fatalf("failed get under the quota = %v; want no note", err)
	}

	// No block to write though statfs shows room.
	answer(errNoSpace)
	if err := failGet(t, b, dir); !strings.Contains(err.Error(), "is full (a write of one block fails with no space left on device, though it reports 1099511627776 bytes free)") {
		t.Fatalf("failed get on a file system with no block left = %v", err)
	}

	// A file system statfs finds full is not written to.
	free.Store(0)
	before := probes.Load()
	if err := failGet(t, b, dir); !strings.Contains(err.Error(), "is full (0 bytes free)") {
		t.Fatalf("failed get on a full file system = %v", err)
	}
	if probes.Load() != before {
		t.Errorf("the host probed a file system statfs finds full")
	}
}

// The probe itself writes to a file the plugin never sees: a directory
// with room takes the block and is left as it was.
func TestProbeWrite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := probeWrite(dir); err != nil {
		t.Fatalf("probe of a directory with room = %v", err)
	}
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
		t.Fatalf("the probe left %v (%v) in the directory", ents, err)
	}
}
