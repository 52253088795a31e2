package redb

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/topgun-go/topgun/abi"
)

// validFile returns the bytes of a closed topgun redb database holding
// enough records to span many pages.
func validFile(t *testing.T) []byte {
	t.Helper()
	batch := &abi.Batch{Now: 1}
	for i := range 3000 {
		batch.Put(fmt.Sprintf("map-%d", i%3), fmt.Sprintf("key-%06d", i), i%5 == 0, make([]byte, 100), int64(i%7))
	}
	return fileWith(t, batch)
}

// smallFile returns the bytes of a closed topgun redb database of 20
// records in map "m", half of them backups, with expiration times: a few
// pages, mostly inline buckets.
func smallFile(t *testing.T) []byte {
	t.Helper()
	batch := &abi.Batch{Now: 1}
	for i := range 20 {
		batch.Put("m", strconv.Itoa(i), i%2 == 0, []byte("value"), int64(i))
	}
	return fileWith(t, batch)
}

// fileWith returns the bytes of a closed topgun redb database holding
// batch, then each of more applied in turn.
func fileWith(t *testing.T, batch *abi.Batch, more ...*abi.Batch) []byte {
	t.Helper()
	return fileAt(t, filepath.Join(t.TempDir(), "db.redb"), batch, more...)
}

// fileAt is fileWith on the file at path (which may exist already).
func fileAt(t *testing.T, path string, batch *abi.Batch, more ...*abi.Batch) []byte {
	t.Helper()
	b, err := Open(context.Background(), path, &Options{NoSync: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	for _, batch := range append([]*abi.Batch{batch}, more...) {
		mustApply(t, b, batch)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// boltFile creates a bbolt file with fn run in one update.
func boltFile(t *testing.T, fn func(tx *bolt.Tx) error) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bolt.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func writeFile(t *testing.T, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "file.redb")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestOpen_notADatabase(t *testing.T) {
	t.Parallel()
	valid := validFile(t)
	rng := rand.New(rand.NewPCG(1, 2))
	garbage := make([]byte, 64<<10)
	for i := range garbage {
		garbage[i] = byte(rng.Uint32())
	}
	badMeta := append([]byte(nil), valid...)
	badMeta[boltPageHeader+4] ^= 0xff      // meta 0 version
	badMeta[4096+boltPageHeader+4] ^= 0xff // meta 1 version (4 KiB pages)
	checksum := append([]byte(nil), valid[:16<<10]...)
	checksum[boltPageHeader+20] ^= 1
	checksum[4096+boltPageHeader+20] ^= 1

	tests := []struct {
		name string
		path func(t *testing.T) string
		code abi.Code
		is   error // a cause errors.Is must find, if not nil
	}{
		{"garbage", func(t *testing.T) string { return writeFile(t, garbage) }, abi.CodeInvalidArgument, bolt.ErrInvalid},
		{"text", func(t *testing.T) string { return writeFile(t, []byte("hello, this is not a database\n")) }, abi.CodeInvalidArgument, bolt.ErrInvalid},
		{"one byte", func(t *testing.T) string { return writeFile(t, []byte{0}) }, abi.CodeInvalidArgument, bolt.ErrInvalid},
		{"bbolt version mismatch", func(t *testing.T) string { return writeFile(t, badMeta) }, abi.CodeInvalidArgument, bolt.ErrVersionMismatch},
		{"bad meta checksums", func(t *testing.T) string { return writeFile(t, checksum) }, abi.CodeInvalidArgument, bolt.ErrChecksum},
		{"directory", func(t *testing.T) string { return t.TempDir() }, abi.CodeInvalidArgument, nil},
		{"missing directory", func(t *testing.T) string { return filepath.Join(t.TempDir(), "no", "such", "dir", "x.redb") }, abi.CodeInvalidArgument, os.ErrNotExist},
		{"parent is a file", func(t *testing.T) string { return filepath.Join(writeFile(t, nil), "x.redb") }, abi.CodeInvalidArgument, nil},
		{"foreign bbolt file", func(t *testing.T) string {
			return boltFile(t, func(tx *bolt.Tx) error {
				b, err := tx.CreateBucket([]byte("widgets"))
				if err != nil {
					return err
				}
				return b.Put([]byte("w1"), []byte("blue"))
			})
		}, abi.CodeInvalidArgument, nil},
		{"malformed marker", func(t *testing.T) string {
			return boltFile(t, func(tx *bolt.Tx) error {
				b, err := tx.CreateBucket(bucketMeta)
				if err != nil {
					return err
				}
				return b.Put(keyFormat, []byte("one"))
			})
		}, abi.CodeInvalidArgument, nil},
		{"marker without data buckets", func(t *testing.T) string {
			return boltFile(t, func(tx *bolt.Tx) error {
				b, err := tx.CreateBucket(bucketMeta)
				if err != nil {
					return err
				}
				return b.Put(keyFormat, []byte("1"))
			})
		}, abi.CodeInvalidArgument, nil},
		{"newer format version", func(t *testing.T) string {
			return boltFile(t, func(tx *bolt.Tx) error {
				if _, err := tx.CreateBucket(bucketExpiry); err != nil {
					return err
				}
				b, err := tx.CreateBucket(bucketMeta)
				if err != nil {
					return err
				}
				return b.Put(keyFormat, []byte("2"))
			})
		}, abi.CodeUnsupported, nil},
	}
	m, err := parseBoltMeta(valid[4096:]) // meta 1 holds the last commit of validFile
	if err != nil {
		t.Fatal(err)
	}
	used := int(m.pgid * m.pageSize)
	for _, size := range []int{100, 4096, 8192, 8193, 16384, 20000, used / 2, used - 4096, used - 1} {
		tests = append(tests, struct {
			name string
			path func(t *testing.T) string
			code abi.Code
			is   error
		}{fmt.Sprintf("truncated to %d", size), func(t *testing.T) string { return writeFile(t, valid[:size]) }, abi.CodeInvalidArgument, nil})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := tc.path(t)
			b, err := Open(context.Background(), path, testOptions(t))
			if err == nil {
				_ = b.Close()
				t.Fatalf("Open(%s) succeeded", tc.name)
			}
			t.Logf("error: %v", err)
			wantCode(t, err, tc.code)
			if !strings.HasPrefix(err.Error(), "redb: ") || !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not start with \"redb: \" and name %s", err, path)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v does not keep cause %v", err, tc.is)
			}
		})
	}
}

func TestOpen_acceptedFiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		path func(t *testing.T) string
	}{
		{"empty file", func(t *testing.T) string { return writeFile(t, nil) }},
		{"bbolt file without buckets", func(t *testing.T) string { return boltFile(t, func(*bolt.Tx) error { return nil }) }},
		{"valid file with an unused tail cut off", func(t *testing.T) string {
			v := validFile(t)
			return writeFile(t, v[:len(v)-4096])
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, err := Open(context.Background(), tc.path(t), testOptions(t))
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer b.Close()
			mustApply(t, b, &abi.Batch{Now: 1, Mutations: []abi.Mutation{{Kind: abi.OpPut, Map: "m", Key: "k"}}})
			checkConsistency(t, b)
		})
	}
}

func TestOpen_unreadableFile(t *testing.T) {
	t.Parallel()
	if os.Geteuid() == 0 {
		t.Skip("root reads files whatever their mode")
	}
	path := writeFile(t, validFile(t))
	if err := os.Chmod(path, 0); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), path, testOptions(t))
	wantCode(t, err, abi.CodeInvalidArgument)
	if !errors.Is(err, os.ErrPermission) {
		t.Errorf("error %v does not keep the permission error", err)
	}
}

// seededRand returns a random source seeded from TOPGUN_REDB_SEED, or at
// random, and logs the seed so that a failure can be replayed.
func seededRand(t *testing.T, stream uint64) *rand.Rand {
	t.Helper()
	seed := rand.Uint64()
	if s := os.Getenv("TOPGUN_REDB_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("TOPGUN_REDB_SEED=%q: %v", s, err)
		}
	}
	t.Logf("seed %d (set TOPGUN_REDB_SEED to replay)", seed)
	return rand.New(rand.NewPCG(seed, stream))
}

// currentMeta returns the meta page bbolt uses in data (4 KiB pages).
func currentMeta(t *testing.T, data []byte) boltMeta {
	t.Helper()
	r := bytes.NewReader(data)
	m0, err0 := readMeta(r, 0)
	m1, err1 := readMeta(r, 4096)
	if err0 != nil || err1 != nil {
		t.Fatalf("meta pages: %v, %v", err0, err1)
	}
	if m1.txid > m0.txid {
		return m1
	}
	return m0
}

// TestOpen_damagedTreeRefused: a page inside the tree whose structure is
// broken makes Open fail with an error naming the file and the damage,
// before bbolt can follow it outside its memory map (which can stop the
// process: see walk.go).
func TestOpen_damagedTreeRefused(t *testing.T) {
	t.Parallel()
	valid := validFile(t)
	m := currentMeta(t, valid)
	ne := binary.NativeEndian
	root := int(m.root) * 4096 // the root bucket: a leaf page of bucket elements
	if h := ne.Uint16(valid[root+8:]); h != boltLeafPage {
		t.Fatalf("root page flags %#x, want a leaf page", h)
	}
	elem := func(i int) int { return root + boltPageHeader + i*boltElementSize }
	// bucketRoot returns the offset of the root page id in the value of
	// the root bucket's element i (a sub-bucket stored in its own pages).
	bucketRoot := func(data []byte, i int) int {
		e := elem(i)
		if ne.Uint32(data[e:])&boltBucketLeaf == 0 {
			t.Fatalf("element %d of the root page is not a bucket", i)
		}
		v := e + int(ne.Uint32(data[e+4:])) + int(ne.Uint32(data[e+8:]))
		if ne.Uint64(data[v:]) == 0 {
			t.Fatalf("element %d of the root page is an inline bucket", i)
		}
		return v
	}
	fl := int(m.freelist) * 4096
	if ne.Uint16(valid[fl+10:]) == 0 {
		t.Fatal("the test file has an empty freelist")
	}
	for _, tc := range []struct {
		name   string
		damage func(data []byte)
		want   string
	}{
		{"element count", func(d []byte) { ne.PutUint16(d[root+10:], 0xFFFF) }, "claims 65535 elements"},
		{"key past the page", func(d []byte) { ne.PutUint32(d[elem(0)+8:], 1<<30) }, "lie past the end of the page"},
		{"child out of range", func(d []byte) { ne.PutUint64(d[bucketRoot(d, 0):], m.pgid+5) }, "outside the"},
		{"child reached twice", func(d []byte) {
			ne.PutUint64(d[bucketRoot(d, 1):], ne.Uint64(d[bucketRoot(d, 0):]))
		}, "reached twice"},
		{"child names another page", func(d []byte) {
			child := int(ne.Uint64(d[bucketRoot(d, 0):])) * 4096
			ne.PutUint64(d[child:], 3)
		}, "names itself 3"},
		{"free page in use", func(d []byte) { ne.PutUint64(d[fl+boltPageHeader:], m.root) }, "both free and in use"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := append([]byte(nil), valid...)
			tc.damage(data)
			path := writeFile(t, data)
			b, err := Open(context.Background(), path, testOptions(t))
			if err == nil {
				b.Close()
				t.Fatal("Open accepted the damaged file")
			}
			if abi.CodeOf(err) != abi.CodeInvalidArgument || !strings.Contains(err.Error(), path+" is corrupt") ||
				!strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "bbolt check") {
				t.Fatalf("Open = %v; want invalid argument naming the file, %q and the fix", err, tc.want)
			}
		})
	}
	// The undamaged file opens.
	b, err := Open(context.Background(), writeFile(t, valid), testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
}

// TestBackend_randomDamageNeverStopsTheProcess flips, sets and cuts bytes
// of small and large valid files (seeded, bounded). Before Open walked the
// tree, such files made bbolt keep pointers into the Go heap (a fatal
// "found bad pointer in Go heap" that no recover catches) or allocate
// until the process was killed, within a few thousand files. Each file
// must be refused at Open or serve every read without stopping the process.
func TestBackend_randomDamageNeverStopsTheProcess(t *testing.T) {
	t.Parallel()
	rng := seededRand(t, 11)
	small := smallFile(t)
	large := validFile(t)
	dir := t.TempDir()
	deadline := time.Now().Add(15 * time.Second)
	files, opened := 0, 0
	for ; files < 4000 && time.Now().Before(deadline); files++ {
		src := small
		if files%4 == 3 {
			src = large
		}
		data := append([]byte(nil), src...)
		for range 1 + rng.IntN(8) {
			pos := rng.IntN(len(data))
			switch rng.IntN(3) {
			case 0:
				data[pos] = byte(rng.Uint32())
			case 1:
				data[pos] ^= 1 << rng.IntN(8)
			case 2:
				data[pos] = 0xff
			}
		}
		if rng.IntN(4) == 0 {
			data = data[:rng.IntN(len(data))]
		}
		path := filepath.Join(dir, "f.redb")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		b, err := Open(context.Background(), path, &Options{NoSync: true})
		if err != nil {
			// A damaged format version reads as a newer file: refused
			// as unsupported, which is all the server can tell.
			if c := abi.CodeOf(err); c != abi.CodeInvalidArgument && c != abi.CodeUnsupported {
				t.Fatalf("file %d: Open = %v, want invalid argument or unsupported", files, err)
			}
			continue
		}
		opened++
		ctx := context.Background()
		maps, _ := b.ListMaps(ctx)
		for _, m := range append(maps, "m", "map-0") {
			_, _ = b.Scan(ctx, abi.ScanRequest{Map: m, Limit: 100})
			_, _ = b.Scan(ctx, abi.ScanRequest{Map: m, Backup: true, Limit: 100})
			_, _ = b.Get(ctx, m, false, []string{"0", "1", "key-000003"})
		}
		_, _ = b.ListExpired(ctx, 1<<40, 100)
		if err := b.Close(); err != nil {
			t.Logf("file %d: close: %v", files, err)
		}
	}
	t.Logf("%d damaged files, %d opened", files, opened)
}

// TestBackend_corruptPages damages pages inside valid files (seeded, bounded)
// and runs every operation: each either works or returns an error; none
// panics or kills the process, and once bbolt has failed on a file, writes
// are refused.
func TestBackend_corruptPages(t *testing.T) {
	t.Parallel()
	valid := validFile(t)
	rng := seededRand(t, 7)
	pages := len(valid) / 4096
	const rounds = 40
	failures := 0
	for round := range rounds {
		data := append([]byte(nil), valid...)
		switch round % 3 {
		case 0: // one page of random bytes
			p := 2 + rng.IntN(pages-2)
			for i := range 4096 {
				data[p*4096+i] = byte(rng.Uint32())
			}
		case 1: // a few flipped bytes anywhere after the meta pages
			for range 8 {
				data[8192+rng.IntN(len(data)-8192)] ^= byte(1 + rng.IntN(255))
			}
		case 2: // a zeroed page
			p := 2 + rng.IntN(pages-2)
			clear(data[p*4096 : (p+1)*4096])
		}
		path := writeFile(t, data)
		start := time.Now()
		b, err := Open(context.Background(), path, testOptions(t))
		if err != nil {
			failures++
			t.Logf("round %d: open: %v", round, err)
			continue
		}
		errs := exercise(b)
		if len(errs) > 0 {
			failures++
			t.Logf("round %d: %d operations failed, first: %v", round, len(errs), errs[0])
		}
		for _, err := range errs {
			if c := abi.CodeOf(err); c != abi.CodeInternal && c != abi.CodeInvalidArgument {
				t.Errorf("round %d: unexpected code %v: %v", round, c, err)
			}
		}
		if b.damaged.Load() {
			// Once bbolt failed on the file, writes are refused.
			err := b.Apply(context.Background(), &abi.Batch{Now: 3, Mutations: []abi.Mutation{{Kind: abi.OpPut, Map: "m", Key: "k"}}})
			if abi.CodeOf(err) != abi.CodeInternal {
				t.Errorf("round %d: Apply on a damaged file = %v, want CodeInternal", round, err)
			}
		}
		if err := b.Close(); err != nil {
			t.Logf("round %d: close: %v", round, err)
		}
		if d := time.Since(start); d > time.Second {
			st, _ := os.Stat(path)
			t.Logf("round %d took %v; file now %d bytes", round, d, st.Size())
		}
	}
	t.Logf("%d of %d damaged files gave errors", failures, rounds)
}

// exercise runs every read over the whole database, then a write (which is
// refused if a read found damaged pages).
func exercise(b *Backend) []error {
	ctx := context.Background()
	var errs []error
	maps, err := b.ListMaps(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	maps = append(maps, "map-0", "map-1", "map-2")
	for _, m := range maps {
		for _, backup := range []bool{false, true} {
			var cursor []byte
			for range 100 {
				p, err := b.Scan(ctx, abi.ScanRequest{Map: m, Backup: backup, Cursor: cursor})
				if err != nil {
					errs = append(errs, err)
					break
				}
				if p.Cursor == nil {
					break
				}
				cursor = p.Cursor
			}
			if _, err := b.Get(ctx, m, backup, []string{"key-000001", "key-001500", "key-002999"}); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if _, err := b.ListExpired(ctx, 1<<40, 10000); err != nil {
		errs = append(errs, err)
	}
	batch := &abi.Batch{Now: 2}
	for i := 0; i < 3000; i += 7 {
		batch.Put(fmt.Sprintf("map-%d", i%3), fmt.Sprintf("key-%06d", i), false, []byte("new"), 0)
		batch.Delete(fmt.Sprintf("map-%d", i%3), fmt.Sprintf("key-%06d", i+1), true)
	}
	if err := b.Apply(ctx, batch); err != nil {
		errs = append(errs, err)
	}
	return errs
}

// A backend that found damage refuses writes while reads may still
// answer: Healthy reports it, so readiness probes fail too.
func TestBackend_healthyReportsDamage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, err := Open(ctx, filepath.Join(t.TempDir(), "test.redb"), testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close() // no consistency check: the file is damaged on purpose
	if err := b.Healthy(); err != nil {
		t.Fatalf("fresh backend: %v", err)
	}
	batch := &abi.Batch{Now: 1}
	batch.Put("m", "k", false, []byte("v"), 0)
	if err := b.Apply(ctx, batch); err != nil {
		t.Fatal(err)
	}
	// Damage the stored record's checksum; the read that finds it marks
	// the backend damaged.
	if err := b.db.Update(func(tx *bolt.Tx) error {
		mb := tx.Bucket([]byte("p:m"))
		v := append([]byte(nil), mb.Get([]byte("k"))...)
		v[len(v)-1] ^= 1
		return mb.Put([]byte("k"), v)
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, "m", false, []string{"k"}); abi.CodeOf(err) != abi.CodeInternal {
		t.Fatalf("Get of the damaged record: %v", err)
	}
	if _, err := b.Get(ctx, "other", false, []string{"x"}); err != nil {
		t.Fatalf("reads elsewhere still answer: %v", err)
	}
	if err := b.Healthy(); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("Healthy after damage: %v", err)
	}
}

// TestOpen_damagedFreelistRefused: a freelist that lists a page twice,
// lists its own page, or whose overflow pages cover a page of the tree
// passed the walk, and the first write then made bbolt hand one page to
// two nodes or free a page in use: the batch was acknowledged, the tree
// was corrupted and the next start refused the file. Open must refuse
// such a file, naming the damage, before anything is written.
func TestOpen_damagedFreelistRefused(t *testing.T) {
	t.Parallel()
	ne := binary.NativeEndian
	batch := &abi.Batch{Now: 1}
	for i := range 3000 {
		batch.Put("m", fmt.Sprintf("key-%06d", i), false, make([]byte, 100), 0)
	}
	large := fileWith(t, batch)
	// churned: the same records, then a few single-record commits, which
	// leave the freelist page amid tree pages.
	var commits []*abi.Batch
	for i := range 3 {
		commits = append(commits, &abi.Batch{Now: 2})
		commits[i].Put("m", fmt.Sprintf("key-%06d", 1000*i+1), false, []byte("y"), 0)
	}
	churned := fileWith(t, batch, commits...)
	freelist := func(data []byte) (m boltMeta, fl int, ids []uint64) {
		m = currentMeta(t, data)
		fl = int(m.freelist) * 4096
		for i := range int(ne.Uint16(data[fl+10:])) {
			ids = append(ids, ne.Uint64(data[fl+boltPageHeader+8*i:]))
		}
		return m, fl, ids
	}
	for _, tc := range []struct {
		name   string
		src    []byte
		damage func(t *testing.T, d []byte)
		want   string
	}{
		{"page listed twice", large, func(t *testing.T, d []byte) {
			_, fl, ids := freelist(d)
			if len(ids) < 2 {
				t.Fatalf("freelist %v has fewer than 2 pages", ids)
			}
			ne.PutUint64(d[fl+boltPageHeader+8:], ids[0])
		}, "holds page"},
		{"freelist lists its own page", large, func(t *testing.T, d []byte) {
			m, fl, ids := freelist(d)
			if len(ids) < 2 {
				t.Fatalf("freelist %v has fewer than 2 pages", ids)
			}
			ne.PutUint64(d[fl+boltPageHeader+8:], m.freelist)
		}, "its own page"},
		{"freelist overflow covers a tree page", churned, func(t *testing.T, d []byte) {
			// Move the freelist to the first free page whose next
			// page is in the tree, and make it claim that page as
			// its overflow.
			m, fl, ids := freelist(d)
			free := map[uint64]bool{m.freelist: true}
			for _, id := range ids {
				free[id] = true
			}
			to := -1
			for i, id := range ids {
				next := id + 1
				if next < m.pgid && !free[next] && ne.Uint64(d[next*4096:]) == next && ne.Uint16(d[next*4096+8:])&(boltLeafPage|boltBranchPage) != 0 {
					to = i
					break
				}
			}
			if to < 0 {
				t.Fatalf("no free page in %v is followed by a tree page", ids)
			}
			nf := ids[to]
			dst := d[nf*4096 : (nf+1)*4096]
			copy(dst, d[fl:fl+4096])
			ne.PutUint64(dst, nf)
			ne.PutUint32(dst[12:], 1)
			ne.PutUint64(dst[boltPageHeader+8*to:], m.freelist) // the old freelist page is free now
			for _, off := range []int{0, 4096} {
				meta := d[off+boltPageHeader : off+boltPageHeader+boltMetaLen]
				if ne.Uint64(meta[48:]) != m.txid {
					continue
				}
				ne.PutUint64(meta[32:], nf)
				h := fnv.New64a()
				h.Write(meta[:boltMetaSumLen])
				ne.PutUint64(meta[56:], h.Sum64())
			}
			if currentMeta(t, d).freelist != nf {
				t.Fatal("the meta page was not rewritten")
			}
		}, "part of the freelist page"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := append([]byte(nil), tc.src...)
			tc.damage(t, data)
			path := writeFile(t, data)
			b, err := Open(context.Background(), path, testOptions(t))
			if err == nil {
				// Show what the file turns into: the write is
				// acknowledged and the tree is damaged.
				batch := &abi.Batch{Now: 2}
				for i := 0; i < 3000; i += 50 {
					batch.Put("m", fmt.Sprintf("key-%06d", i), false, make([]byte, 200), 0)
				}
				aerr := b.Apply(context.Background(), batch)
				_ = b.Close()
				_, rerr := Open(context.Background(), path, testOptions(t))
				t.Fatalf("Open accepted the damaged file; Apply = %v, then reopening = %v", aerr, rerr)
			}
			if abi.CodeOf(err) != abi.CodeInvalidArgument || !strings.Contains(err.Error(), path+" is corrupt") ||
				!strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open = %v; want invalid argument naming the file and %q", err, tc.want)
			}
		})
	}
}

// TestOpen_branchChildMismatchRefused: bbolt finds a page through the key
// its parent branch page holds for it, which it keeps equal to the page's
// first key and above every key of the page before; a page a branch points
// to is never empty. A damaged branch key (here one byte shorter) or an
// emptied child page passed the walk (the records of an emptied page just
// went missing), and the first write into that page made bbolt add a
// second branch element instead of replacing the first: the old one kept
// pointing to a page bbolt had freed. The batch was acknowledged, and the
// next start refused the file. A last key above the next page's breaks the
// binary search the same way. Open must refuse such files first.
func TestOpen_branchChildMismatchRefused(t *testing.T) {
	t.Parallel()
	valid := validFile(t)
	m := currentMeta(t, valid)
	ne := binary.NativeEndian
	branch := -1
	for id := 2; id < int(m.pgid); id++ {
		p := valid[id*4096:]
		if ne.Uint64(p) != uint64(id) || ne.Uint16(p[8:]) != boltBranchPage || ne.Uint16(p[10:]) < 2 {
			continue
		}
		// Element 1 of a map's branch page, not the expiry index's.
		e := p[boltPageHeader+boltElementSize:]
		if pos := ne.Uint32(e); bytes.HasPrefix(e[pos:], []byte("key-")) {
			branch = id
			break
		}
	}
	if branch < 0 {
		t.Fatal("the test file has no branch page of a map")
	}
	e := branch*4096 + boltPageHeader + boltElementSize // element 1
	pos, ksize, child := int(ne.Uint32(valid[e:])), int(ne.Uint32(valid[e+4:])), int(ne.Uint64(valid[e+8:]))
	key := string(valid[e+pos : e+pos+ksize])
	var i int
	if _, err := fmt.Sscanf(key, "key-%d", &i); err != nil {
		t.Fatalf("branch key %q: %v", key, err)
	}
	for _, tc := range []struct {
		name   string
		damage func(d []byte)
		want   string
	}{
		{"branch key one byte short", func(d []byte) { ne.PutUint32(d[e+4:], uint32(ksize-1)) }, "parent branch page holds"},
		{"child page emptied", func(d []byte) { ne.PutUint16(d[child*4096+10:], 0) }, "is empty but a branch page points to it"},
		{"last key of the page before above the branch key", func(d []byte) {
			// The last key of element 0's page, still last in its page,
			// now sorts after element 1's key.
			before := int(ne.Uint64(d[e-boltElementSize+8:])) * 4096
			last := before + boltPageHeader + (int(ne.Uint16(d[before+10:]))-1)*boltElementSize
			k := last + int(ne.Uint32(d[last+4:]))
			if !bytes.HasPrefix(d[k:], []byte("key-")) {
				t.Fatalf("the last key of page %d is %q", before/4096, d[k:k+10])
			}
			d[k+4] = '9'
		}, "does not sort below"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := append([]byte(nil), valid...)
			tc.damage(data)
			path := writeFile(t, data)
			b, err := Open(context.Background(), path, testOptions(t))
			if err == nil {
				// Rewrite the record the branch key leads to (validFile
				// puts key i in map i%3, a backup when i%5 == 0).
				batch := &abi.Batch{Now: 2}
				batch.Put(fmt.Sprintf("map-%d", i%3), key, i%5 == 0, []byte("new"), 0)
				aerr := b.Apply(context.Background(), batch)
				_ = b.Close()
				_, rerr := Open(context.Background(), path, testOptions(t))
				t.Fatalf("Open accepted the damaged file; Apply(put %q) = %v, then reopening = %v", key, aerr, rerr)
			}
			if abi.CodeOf(err) != abi.CodeInvalidArgument || !strings.Contains(err.Error(), path+" is corrupt") ||
				!strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open = %v; want invalid argument naming the file and %q", err, tc.want)
			}
		})
	}
}

// TestBackend_damagedMapNameIsAnError: the record checksum covers the key
// and the record, not the map, so one damaged byte of a bucket name ("p:m"
// read as "p:n") moved every record of map "m" to a map "n" without an
// error: ListMaps listed "n", Get and Scan of "n" returned m's records,
// and m's expiring records were never listed. A read that reaches such a
// bucket must fail instead, and mark the backend damaged. Buckets of files
// written before the name checksum (sequence 0) still read.
func TestBackend_damagedMapNameIsAnError(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	data := smallFile(t)
	i := bytes.Index(data, []byte("p:m"))
	if i < 0 || bytes.Index(data[i+1:], []byte("p:m")) >= 0 {
		t.Fatal("the bucket name p:m is not in the file once")
	}
	data[i+2] = 'n'
	b, err := Open(ctx, writeFile(t, data), testOptions(t))
	if err != nil {
		t.Fatalf("Open: %v", err) // the page structure is sound
	}
	defer b.Close()
	if maps, err := b.ListMaps(ctx); abi.CodeOf(err) != abi.CodeInternal {
		t.Errorf("ListMaps = %q, %v; want CodeInternal", maps, err)
	}
	if got, err := b.Get(ctx, "n", false, []string{"1"}); abi.CodeOf(err) != abi.CodeInternal {
		t.Errorf("Get(n) = %v, %v; want CodeInternal", got, err)
	}
	if p, err := b.Scan(ctx, abi.ScanRequest{Map: "n"}); abi.CodeOf(err) != abi.CodeInternal {
		t.Errorf("Scan(n) = %v, %v; want CodeInternal", p.Records, err)
	}
	if err := b.Healthy(); err == nil {
		t.Error("Healthy after reading a damaged bucket name: nil")
	}

	// A bucket without a name checksum, as older servers wrote them.
	b2 := openTemp(t)
	batch := &abi.Batch{Now: 1}
	batch.Put("m", "k", false, []byte("v"), 5)
	mustApply(t, b2, batch)
	if err := b2.db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("p:m")).SetSequence(0) }); err != nil {
		t.Fatal(err)
	}
	if got, err := b2.Get(ctx, "m", false, []string{"k"}); err != nil || len(got) != 1 {
		t.Fatalf("Get from a bucket without a name checksum = %v, %v", got, err)
	}
	if maps, err := b2.ListMaps(ctx); err != nil || len(maps) != 1 {
		t.Fatalf("ListMaps = %q, %v", maps, err)
	}
	if got, err := b2.ListExpired(ctx, 10, 10); err != nil || len(got) != 1 {
		t.Fatalf("ListExpired = %v, %v", got, err)
	}
	batch = &abi.Batch{Now: 2}
	batch.Put("m", "k2", false, []byte("v"), 0)
	mustApply(t, b2, batch)
}

// TestOpen_metaPageSizeMismatchRefused: bbolt addresses pages with the
// page size of meta page 0 when that page is valid, even when it then uses
// meta page 1. A file whose meta page 1 (the newer) claims another page
// size was walked with that size, so the walk checked other bytes than the
// ones bbolt reads, and bbolt then panicked inside bolt.Open (recovered,
// leaving its memory map behind) or could follow unchecked pages. Open must
// refuse the file before bbolt reads it.
func TestOpen_metaPageSizeMismatchRefused(t *testing.T) {
	t.Parallel()
	ne := binary.NativeEndian
	// A valid file of 8 KiB pages.
	path := filepath.Join(t.TempDir(), "big-pages.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{PageSize: 8192})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	batch := &abi.Batch{Now: 1}
	for i := range 3000 {
		batch.Put("m", fmt.Sprintf("key-%06d", i), false, make([]byte, 100), 5)
	}
	data := fileAt(t, path, batch)
	cur := append([]byte(nil), data[boltPageHeader:boltMetaReadSize]...)
	if m1 := data[8192+boltPageHeader : 8192+boltMetaReadSize]; ne.Uint64(m1[48:]) > ne.Uint64(cur[48:]) {
		cur = append(cur[:0], m1...)
	}
	seal := func(m []byte) {
		h := fnv.New64a()
		h.Write(m[:boltMetaSumLen])
		ne.PutUint64(m[56:], h.Sum64())
	}
	// Meta page 0: valid, 4 KiB pages, transaction 0.
	m0 := data[boltPageHeader:boltMetaReadSize]
	copy(m0, cur)
	ne.PutUint32(m0[8:], 4096)
	ne.PutUint64(m0[48:], 0)
	seal(m0)
	// Meta page 1 at 4 KiB: the file's current meta (8 KiB pages), newer.
	p1 := data[4096:8192]
	clear(p1)
	ne.PutUint64(p1, 1)
	ne.PutUint16(p1[8:], 0x04) // meta page
	m1 := p1[boltPageHeader:boltMetaReadSize]
	copy(m1, cur)
	ne.PutUint64(m1[48:], ne.Uint64(cur[48:])+1)
	seal(m1)

	path = writeFile(t, data)
	b, err := Open(context.Background(), path, testOptions(t))
	if err == nil {
		_ = b.Close()
		t.Fatal("Open accepted the file")
	}
	if abi.CodeOf(err) != abi.CodeInvalidArgument || !strings.Contains(err.Error(), "disagree on the page size") {
		t.Fatalf("Open = %v; want invalid argument saying the meta pages disagree on the page size", err)
	}
}

// TestOpen_keyOutOfOrderRefused: bbolt finds keys by binary search, so one
// damaged byte that moves a record key out of order ("key-000903" read as
// "key-900903") made Get of intact records next to it return nothing, with
// no error and a healthy backend (a put of them would store a second
// copy). The record checksum only guards the damaged record. Open must
// refuse the file, saying where.
func TestOpen_keyOutOfOrderRefused(t *testing.T) {
	t.Parallel()
	data := validFile(t)
	i := bytes.Index(data, []byte("key-000903"))
	if i < 0 {
		t.Fatal("key-000903 is not in the file")
	}
	data[i+4] = '9'
	path := writeFile(t, data)
	b, err := Open(context.Background(), path, testOptions(t))
	if err == nil {
		defer b.Close()
		// validFile puts key-%06d i in map i%3, a backup when i%5 == 0.
		var missing []string
		for k := 0; k < 3000; k += 3 {
			key := fmt.Sprintf("key-%06d", k)
			if k%5 == 0 || k == 903 {
				continue
			}
			if got, err := b.Get(context.Background(), "map-0", false, []string{key}); err != nil || len(got) != 1 {
				missing = append(missing, key)
			}
		}
		t.Fatalf("Open accepted the file; intact records Get does not find: %q; Healthy = %v", missing, b.Healthy())
	}
	if abi.CodeOf(err) != abi.CodeInvalidArgument || !strings.Contains(err.Error(), path+" is corrupt") ||
		!strings.Contains(err.Error(), "does not sort after") {
		t.Fatalf("Open = %v; want invalid argument naming the file and the key out of order", err)
	}
}

// A topgun database cut short (a partial copy or restore) must be reported
// as corrupt, to be restored from a backup: before, it was called "not a
// topgun redb database" with the advice to move it away, which leads an
// operator to start afresh on an empty file.
func TestOpen_truncatedFileIsCorrupt(t *testing.T) {
	t.Parallel()
	valid := validFile(t)
	m, err := parseBoltMeta(valid[4096:])
	if err != nil {
		t.Fatal(err)
	}
	used := int(m.pgid * m.pageSize)
	for _, size := range []int{4096 + boltMetaReadSize, 8192, 20000, used / 2, used - 1} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			t.Parallel()
			_, err := Open(context.Background(), writeFile(t, valid[:size]), testOptions(t))
			wantCode(t, err, abi.CodeInvalidArgument)
			if !errors.Is(err, errDamaged) {
				t.Errorf("Open of a topgun database truncated to %d of %d bytes = %v; want it reported as damaged", size, used, err)
			}
		})
	}
}

// TopGun's own server writes a redb-format file at the same default path;
// README and doc.go promise that Open says it cannot read it, rather than
// calling it garbage.
func TestOpen_topGunRedbFile(t *testing.T) {
	t.Parallel()
	data := make([]byte, 3*4096)
	copy(data, redbMagic[:])
	data[len(redbMagic)] = 2                           // god byte
	binary.LittleEndian.PutUint32(data[12:], 4096)     // page size
	copy(data[4096:], []byte("map__todos\x00records")) // something like a table
	_, err := Open(context.Background(), writeFile(t, data), testOptions(t))
	wantCode(t, err, abi.CodeInvalidArgument)
	if !errors.Is(err, errTopGunRedb) {
		t.Errorf("Open of a redb file of TopGun's server = %v; want it named as such", err)
	}
}

// TestOpen_fileSystemErrors: a file (or its directory) on a read-only
// mount is a setting to fix, as an unwritable file is, and a full disk
// while bbolt writes a new file's first pages is a lack of space, neither
// a storage that is unavailable for now. Making such a mount needs
// privileges, so the test gives openError what bbolt's open returns there.
func TestOpen_fileSystemErrors(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "db.redb")
	for _, tc := range []struct {
		name  string
		cause error
		code  abi.Code
	}{
		{"read-only", &fs.PathError{Op: "open", Path: path, Err: syscall.EROFS}, abi.CodeInvalidArgument},
		{"full", &fs.PathError{Op: "write", Path: path, Err: syscall.ENOSPC}, abi.CodeResourceExhausted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := openError(path, tc.cause)
			wantCode(t, err, tc.code)
			if !errors.Is(err, tc.cause) {
				t.Errorf("error %v does not keep its cause", err)
			}
		})
	}
}

// A TOPGUN_REDB_PATH that is a symbolic link to a file in a directory that
// does not exist names the link's target: the link's own directory exists,
// so "its directory does not exist" alone would send the operator looking
// in the wrong place.
func TestOpen_danglingSymlinkNamesTarget(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	target := filepath.Join(dir, "missing", "data.redb")
	path := filepath.Join(dir, "link.redb")
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), path, testOptions(t))
	wantCode(t, err, abi.CodeInvalidArgument)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "symbolic link to "+target) {
		t.Errorf("error %v does not name the link's target %s", err, target)
	}
}

// A file that cannot be created because its directory is not writable has
// no permissions to fix: the error points at the directory (or, through a
// symbolic link, at the target). Root creates files anywhere, so the test
// gives openError what opening returns there.
func TestOpen_unwritableDirectoryNamed(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	target := filepath.Join(dir, "read-only", "data.redb")
	link := filepath.Join(dir, "link.redb")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path, want string
	}{
		{"new file", filepath.Join(dir, "new.redb"), "its directory is not writable"},
		{"link to a new file", link, "symbolic link to " + target + ", whose directory is not writable"},
		{"existing file", writeFile(t, nil), "fix its permissions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := openError(tc.path, &fs.PathError{Op: "open", Path: tc.path, Err: syscall.EACCES})
			wantCode(t, err, abi.CodeInvalidArgument)
			if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v; want it to keep the permission error and say %q", err, tc.want)
			}
		})
	}
}
