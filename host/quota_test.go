package host

import (
	"context"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/topgun-go/topgun/abi"
)

// dirUsage returns the bytes of the regular files under dir and its
// entries.
func dirUsage(t *testing.T, dir string) (bytes int64, entries int) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		entries++
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			bytes += info.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return bytes, entries
}

func quotaOptions(t *testing.T, maxMB, maxFiles int) (*Options, string) {
	o := testOptions(t)
	o.DataDir = t.TempDir()
	o.DataMaxMB, o.DataMaxFiles = maxMB, maxFiles
	root, err := filepath.EvalSymlinks(o.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	return o, root
}

func bytesNote(root string, mb int) string {
	return fmt.Sprintf("; the data directory %s is at its quota (TOPGUN_PLUGIN_DATA_MAX_MB=%d), so a write failed, which a wasm plugin sees as an I/O error; remove data there or raise the quota", root, mb)
}

func filesNote(root string, n int) string {
	return fmt.Sprintf("; the data directory %s holds as many files and directories as its limit allows (TOPGUN_PLUGIN_DATA_MAX_FILES=%d), so creating one failed, which a wasm plugin sees as an I/O error; remove files there or raise the limit", root, n)
}

// putFile writes a file of n bytes through the filer plugin.
func putFile(b interface {
	Apply(context.Context, *abi.Batch) error
}, name string, n int) error {
	batch := &abi.Batch{Now: 1}
	batch.Put("file", name, false, make([]byte, n), 0)
	return b.Apply(context.Background(), batch)
}

// A plugin writing past TOPGUN_PLUGIN_DATA_MAX_MB gets an error naming the
// quota, the directory never holds more, and every batch acknowledged
// before is still there after a reload.
func TestDataQuota_bytesRefusedNothingLost(t *testing.T) {
	o, root := quotaOptions(t, 1, 0)
	wasm := logstoreWasm(t)
	b := mustLoad(t, wasm, o)
	ctx := context.Background()
	value := strings.Repeat("v", 60<<10)
	stored := 0
	var err error
	for i := 0; i < 40; i++ {
		batch := &abi.Batch{Now: int64(i + 1)}
		batch.Put("m", fmt.Sprintf("k%03d", i), false, []byte(value), 0)
		if err = b.Apply(ctx, batch); err != nil {
			break
		}
		stored++
	}
	if err == nil {
		t.Fatalf("40 batches of 60 KiB were all stored under a quota of 1 MiB")
	}
	if !strings.HasSuffix(err.Error(), bytesNote(root, 1)) {
		t.Fatalf("write past the quota failed with %q, want it to end with %q", err, bytesNote(root, 1))
	}
	if used, _ := dirUsage(t, root); used > 1<<20 {
		t.Errorf("the data directory holds %d bytes, over its quota of %d", used, 1<<20)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	o.DataMaxMB = 0
	b = mustLoad(t, wasm, o)
	for i := 0; i < stored; i++ {
		k := fmt.Sprintf("k%03d", i)
		recs, err := b.Get(ctx, "m", false, []string{k})
		if err != nil || len(recs) != 1 || string(recs[0].Value) != value {
			t.Fatalf("acknowledged record %s after the refusal: %d records, %v", k, len(recs), err)
		}
	}
	t.Logf("%d batches stored before the quota refused one", stored)
}

// Deleting files frees quota: once the directory is measured again, writes
// succeed.
func TestDataQuota_deleteFreesQuota(t *testing.T) {
	o, root := quotaOptions(t, 1, 0)
	b := mustLoad(t, buildTestPlugin(t, "filer"), o)
	var err error
	n := 0
	for ; n < 16; n++ {
		if err = putFile(b, fmt.Sprintf("f%02d", n), 128<<10); err != nil {
			break
		}
	}
	if err == nil || !strings.HasSuffix(err.Error(), bytesNote(root, 1)) {
		t.Fatalf("file %d past the quota: %v, want an error ending with %q", n, err, bytesNote(root, 1))
	}
	if n != 8 {
		t.Errorf("%d files of 128 KiB fit a quota of 1 MiB, want 8", n)
	}
	del := &abi.Batch{Now: 2}
	del.Delete("file", "f00", false)
	del.Delete("file", "f01", false)
	if err := b.Apply(context.Background(), del); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := putFile(b, fmt.Sprintf("again%d", i), 128<<10); err != nil {
			t.Fatalf("write %d after deleting 256 KiB under the quota: %v", i, err)
		}
	}
	if err := putFile(b, "more", 128<<10); err == nil {
		t.Fatal("a write past the quota succeeded after the freed space was used")
	}
}

// Creating files or directories past TOPGUN_PLUGIN_DATA_MAX_FILES fails
// with an error naming the limit; a file that exists can still be opened
// for writing, and a delete makes room for one more.
func TestDataQuota_fileCap(t *testing.T) {
	o, root := quotaOptions(t, 0, 10)
	b := mustLoad(t, buildTestPlugin(t, "filer"), o)
	ctx := context.Background()
	mk := &abi.Batch{Now: 1}
	mk.Put("dir", "d", false, nil, 0)
	if err := b.Apply(ctx, mk); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 9; i++ {
		if err := putFile(b, fmt.Sprintf("f%d", i), 10); err != nil {
			t.Fatalf("file %d of 10 entries: %v", i, err)
		}
	}
	for _, what := range []string{"file", "dir"} {
		batch := &abi.Batch{Now: 1}
		batch.Put(what, "one-more", false, nil, 0)
		err := b.Apply(ctx, batch)
		if err == nil || !strings.HasSuffix(err.Error(), filesNote(root, 10)) {
			t.Fatalf("%s past the limit: %v, want an error ending with %q", what, err, filesNote(root, 10))
		}
	}
	if _, n := dirUsage(t, root); n != 10 {
		t.Errorf("the data directory holds %d entries, want 10", n)
	}
	if err := putFile(b, "f0", 20); err != nil {
		t.Errorf("rewriting an existing file at the limit: %v", err)
	}
	del := &abi.Batch{Now: 2}
	del.Delete("file", "f1", false)
	if err := b.Apply(ctx, del); err != nil {
		t.Fatal(err)
	}
	if err := putFile(b, "after-delete", 10); err != nil {
		t.Errorf("creating a file after a delete under the limit: %v", err)
	}
}

// The quota counts every instance of a plugin together: two instances of
// one pool cannot each fill it.
func TestDataQuota_perPluginAcrossInstances(t *testing.T) {
	o, root := quotaOptions(t, 1, 0)
	o.PoolSize = 2
	b := mustLoad(t, buildTestPlugin(t, "filer"), o)
	ctx := context.Background()
	var callers []*abi.Caller
	for i := 0; i < 2; i++ {
		in, _, err := b.pool.acquire(ctx, abi.CallApply, false)
		if err != nil {
			t.Fatal(err)
		}
		defer b.pool.release(in)
		callers = append(callers, abi.NewCaller(in, b.p.prefix))
	}
	if err := putFile(callers[0], "a", 768<<10); err != nil {
		t.Fatal(err)
	}
	if err := putFile(callers[1], "b", 512<<10); err == nil {
		t.Fatal("a second instance wrote 512 KiB past the first's 768 KiB under a quota of 1 MiB")
	}
	if used, _ := dirUsage(t, root); used > 1<<20 {
		t.Errorf("the data directory holds %d bytes, over its quota of %d", used, 1<<20)
	}
}

// Without a quota (TOPGUN_PLUGIN_DATA_MAX_MB 0, the default) nothing
// bounds the bytes, and a negative file limit bounds nothing at all.
func TestDataQuota_zeroChangesNothing(t *testing.T) {
	for _, files := range []int{0, -1} {
		o, root := quotaOptions(t, 0, files)
		b := mustLoad(t, buildTestPlugin(t, "filer"), o)
		if files < 0 && b.p.quota != nil {
			t.Errorf("DataMaxFiles %d: the plugin has a quota", files)
		}
		for i := 0; i < 3; i++ {
			if err := putFile(b, fmt.Sprintf("f%d", i), 1<<20); err != nil {
				t.Fatalf("DataMaxFiles %d: write %d of 1 MiB without a quota: %v", files, i, err)
			}
		}
		if used, _ := dirUsage(t, root); used != 3<<20 {
			t.Errorf("DataMaxFiles %d: the data directory holds %d bytes, want %d", files, used, 3<<20)
		}
	}
}

// TOPGUN_PLUGIN_DATA_MAX_MB takes 0 (no quota, the default);
// TOPGUN_PLUGIN_DATA_MAX_FILES defaults to DefaultDataMaxFiles, takes a
// negative number for no limit, but not with a byte quota.
func TestOptionsFromEnv_dataQuota(t *testing.T) {
	for _, c := range []struct {
		name      string
		env       map[string]string
		mb, files int
		problem   string
	}{
		{"unset", nil, 0, 0, ""},
		{"zero quota", map[string]string{"TOPGUN_PLUGIN_DATA_MAX_MB": "0"}, 0, 0, ""},
		{"both", map[string]string{"TOPGUN_PLUGIN_DATA_MAX_MB": "64", "TOPGUN_PLUGIN_DATA_MAX_FILES": "500"}, 64, 500, ""},
		{"no file limit", map[string]string{"TOPGUN_PLUGIN_DATA_MAX_FILES": "-1"}, 0, -1, ""},
		{"quota without file limit", map[string]string{"TOPGUN_PLUGIN_DATA_MAX_MB": "64", "TOPGUN_PLUGIN_DATA_MAX_FILES": "-1"}, 0, 0, "TOPGUN_PLUGIN_DATA_MAX_MB needs a limit on the files"},
		{"negative quota", map[string]string{"TOPGUN_PLUGIN_DATA_MAX_MB": "-5"}, 0, 0, "TOPGUN_PLUGIN_DATA_MAX_MB -5 is out of range"},
		{"zero files", map[string]string{"TOPGUN_PLUGIN_DATA_MAX_FILES": "0"}, 0, 0, "TOPGUN_PLUGIN_DATA_MAX_FILES=0 is out of range"},
		{"not a number", map[string]string{"TOPGUN_PLUGIN_DATA_MAX_MB": "1G"}, 0, 0, `TOPGUN_PLUGIN_DATA_MAX_MB="1G" is not an integer`},
	} {
		t.Run(c.name, func(t *testing.T) {
			o, err := OptionsFromEnv(func(k string) (string, bool) { v, ok := c.env[k]; return v, ok })
			if c.problem != "" {
				if err == nil || !strings.Contains(err.Error(), c.problem) {
					t.Fatalf("error %v, want one saying %q", err, c.problem)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.DataMaxMB != c.mb || o.DataMaxFiles != c.files {
				t.Errorf("DataMaxMB %d, DataMaxFiles %d, want %d and %d", o.DataMaxMB, o.DataMaxFiles, c.mb, c.files)
			}
			if d := o.withDefaults(); c.files == 0 && d.DataMaxFiles != DefaultDataMaxFiles {
				t.Errorf("default DataMaxFiles %d, want %d", d.DataMaxFiles, DefaultDataMaxFiles)
			}
		})
	}
}

// A write past the end of a file grows it by the gap too: one byte written
// far past the end (pwrite, or a seek and a write) is refused when the
// file would then pass the quota, as filling it would be.
func TestDataQuota_writePastEndCountsTheGap(t *testing.T) {
	for _, how := range []string{"hole", "seekhole"} {
		t.Run(how, func(t *testing.T) {
			o, root := quotaOptions(t, 1, 0)
			b := mustLoad(t, buildTestPlugin(t, "filer"), o)
			batch := &abi.Batch{Now: 1}
			batch.Put(how, "sparse", false, []byte(fmt.Sprint(64<<20)), 0)
			err := b.Apply(context.Background(), batch)
			if used, _ := dirUsage(t, root); used > 1<<20 {
				t.Errorf("one byte written at 64 MiB (%v): the data directory holds %d bytes, over its quota of %d", err, used, 1<<20)
			}
			if err == nil || !strings.HasSuffix(err.Error(), bytesNote(root, 1)) {
				t.Errorf("write at 64 MiB under a quota of 1 MiB: %v, want an error ending with %q", err, bytesNote(root, 1))
			}
		})
	}
}

// A file the plugin deleted but keeps open still takes its space: writes
// to it count until it is closed, and are refused past the quota.
func TestDataQuota_deletedOpenFileCounts(t *testing.T) {
	o, root := quotaOptions(t, 1, 0)
	o.PoolSize = 1 // one instance, which keeps the file open across calls
	b := mustLoad(t, buildTestPlugin(t, "filer"), o)
	ctx := context.Background()
	put := func() error {
		batch := &abi.Batch{Now: 1}
		batch.Put("keep", "held", false, make([]byte, 256<<10), 0)
		return b.Apply(ctx, batch)
	}
	if err := put(); err != nil {
		t.Fatal(err)
	}
	del := &abi.Batch{Now: 2}
	del.Delete("file", "held", false)
	if err := b.Apply(ctx, del); err != nil {
		t.Fatal(err)
	}
	written := 256 << 10
	var err error
	for i := 0; i < 32 && err == nil; i++ {
		if err = put(); err == nil {
			written += 256 << 10
		}
	}
	if written > 2<<20 {
		t.Errorf("the plugin wrote %d bytes to a file it deleted and keeps open, under a quota of %d", written, 1<<20)
	}
	if err == nil || !strings.HasSuffix(err.Error(), bytesNote(root, 1)) {
		t.Errorf("write past the quota to a deleted open file: %v, want an error ending with %q", err, bytesNote(root, 1))
	}
}

// Directories keep the blocks their entries took after the entries are
// deleted (ext4 never shrinks one): emptied directories must not hold far
// more than the quota.
func TestDataQuota_emptiedDirectoriesCount(t *testing.T) {
	o, root := quotaOptions(t, 1, 2000)
	b := mustLoad(t, buildTestPlugin(t, "filer"), o)
	ctx := context.Background()
	long := strings.Repeat("n", 200)
	var err error
	for d := 0; d < 8 && err == nil; d++ {
		mk, del := &abi.Batch{Now: 1}, &abi.Batch{Now: 2}
		mk.Put("dir", fmt.Sprint("d", d), false, nil, 0)
		for i := 0; i < 1000; i++ {
			name := fmt.Sprintf("d%d/%s%04d", d, long, i)
			mk.Put("file", name, false, nil, 0)
			del.Delete("file", name, false)
		}
		if err = b.Apply(ctx, mk); err == nil {
			err = b.Apply(ctx, del)
		}
	}
	var dirBytes int64
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && p != root {
			if info, err := d.Info(); err == nil {
				dirBytes += info.Size()
			}
		}
		return err
	})
	if dirBytes > 2<<20 {
		t.Errorf("emptied directories hold %d bytes under a quota of %d (last error %v)", dirBytes, 1<<20, err)
	}
}

// A write far past the end on a file system that allows huge sparse files
// (tmpfs, xfs, btrfs) grows the file by almost 2^63: counting it must not
// overflow the count, which would leave the quota open from then on.
func TestDataQuota_hugeGapDoesNotOverflow(t *testing.T) {
	shm, err := os.MkdirTemp("/dev/shm", "quota")
	if err != nil {
		t.Skip("no /dev/shm:", err)
	}
	t.Cleanup(func() { os.RemoveAll(shm) })
	probe := filepath.Join(shm, "probe")
	if f, err := os.Create(probe); err != nil {
		t.Skip(err)
	} else {
		_, err = f.WriteAt([]byte{1}, math.MaxInt64-1)
		f.Close()
		os.Remove(probe)
		if err != nil {
			t.Skip("this file system refuses a write at 2^63-2:", err)
		}
	}
	o, _ := quotaOptions(t, 1, 0)
	o.DataDir = shm
	b := mustLoad(t, buildTestPlugin(t, "filer"), o)
	batch := &abi.Batch{Now: 1}
	batch.Put("hole", "sparse", false, []byte(fmt.Sprint(int64(math.MaxInt64-1))), 0)
	if err := b.Apply(context.Background(), batch); err == nil {
		t.Errorf("one byte written at 2^63-2 under a quota of 1 MiB succeeded")
	}
	if err := putFile(b, "big", 4<<20); err == nil {
		t.Errorf("a write of 4 MiB under a quota of 1 MiB succeeded after a write at 2^63-2")
	}
}

// A hard link adds a directory entry as any creation does, on top of the
// size of the file it names again (which the walk counts once per name).
func TestDataQuota_linkCountsItsEntry(t *testing.T) {
	o, root := quotaOptions(t, 1, 0)
	if err := os.WriteFile(filepath.Join(root, "f"), make([]byte, 100), 0o644); err != nil {
		t.Fatal(err)
	}
	var moves sync.RWMutex
	fsys, err := newConfinedFS(root, nil, &moves)
	if err != nil {
		t.Fatal(err)
	}
	fsys.quota = newDataQuota(root, o, &moves, hclog.NewNullLogger())
	counted := fsys.quota.bytes.Load()
	f, e := fsys.OpenFile("created", experimentalsys.O_CREAT|experimentalsys.O_RDWR, 0o644)
	if e != 0 {
		t.Fatal(e)
	}
	f.Close()
	if got, want := fsys.quota.bytes.Load()-counted, entryBytes("created", false); got != want {
		t.Fatalf("creating a file counted %d bytes, want %d", got, want)
	}
	counted = fsys.quota.bytes.Load()
	if e := fsys.Link("f", "linked"); e != 0 {
		t.Fatal(e)
	}
	if got, want := fsys.quota.bytes.Load()-counted, 100+entryBytes("linked", false); got != want {
		t.Fatalf("a hard link to a file of 100 bytes counted %d bytes, want %d", got, want)
	}
}
