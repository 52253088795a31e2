package redb

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
// batch.
func fileWith(t *testing.T, batch *abi.Batch) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "db.redb")
	b, err := Open(context.Background(), path, &Options{NoSync: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, b, batch)
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
