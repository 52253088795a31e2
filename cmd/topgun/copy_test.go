package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/host"
	"github.com/topgun-go/topgun/host/hosttest"
	"github.com/topgun-go/topgun/plugins/postgres"
	"github.com/topgun-go/topgun/plugins/postgres/pgtest"
	"github.com/topgun-go/topgun/plugins/redb"
)

// copyRecords is a data set of several maps: primary and backup records,
// the empty key, an empty value, records with an expiration time (one
// already past), non-ASCII names.
func copyRecords(maps, perMap int) []abi.Record {
	var recs []abi.Record
	for m := 0; m < maps; m++ {
		name := fmt.Sprintf("map-%03d", m)
		if m == 1 {
			name = "ключ/with space:and colon"
		}
		for k := 0; k < perMap; k++ {
			r := abi.Record{Map: name, Key: fmt.Sprintf("key-%05d", k), Value: []byte(fmt.Sprintf("value %d of %s", k, name))}
			switch k % 5 {
			case 1:
				r.ExpirationTime = time.Now().Add(time.Hour).UnixMilli() + int64(k)
			case 2:
				r.ExpirationTime = 1 // long past: copied as is
			case 3:
				r.Value = []byte{}
			}
			recs = append(recs, r)
		}
		recs = append(recs, abi.Record{Map: name, Key: "", Value: []byte("the empty key")})
		recs = append(recs, abi.Record{Map: name, Key: "key-00000", Backup: true, Value: []byte("a backup"), ExpirationTime: 42})
	}
	return recs
}

// applyAll writes recs to b stamped now, in batches.
func applyAll(t *testing.T, b abi.Backend, recs []abi.Record, now int64) {
	t.Helper()
	for len(recs) > 0 {
		n := min(len(recs), 500)
		batch := &abi.Batch{Now: now}
		for _, r := range recs[:n] {
			batch.Put(r.Map, r.Key, r.Backup, r.Value, r.ExpirationTime)
		}
		if err := b.Apply(context.Background(), batch); err != nil {
			t.Fatalf("seed: %v", err)
		}
		recs = recs[n:]
	}
}

// seedRedb creates a redb file at path holding recs.
func seedRedb(t *testing.T, path string, recs []abi.Record, now int64) {
	t.Helper()
	b, err := redb.Open(context.Background(), path, &redb.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	applyAll(t, b, recs, now)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

// dump reads every record of b (primary and backup) keyed by map, backup
// flag and key.
func dump(t *testing.T, b abi.Backend) map[string]abi.Record {
	t.Helper()
	ctx := context.Background()
	maps, err := b.ListMaps(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]abi.Record{}
	for _, m := range maps {
		for _, backup := range []bool{false, true} {
			err := scanAll(ctx, b, m, backup, 1000, 1<<20, func(r *abi.Record) error {
				r.Map, r.Backup = m, backup
				out[fmt.Sprintf("%s\x00%t\x00%s", m, backup, r.Key)] = *r
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	return out
}

// checkCopied checks that dst holds exactly want's records, values and
// expiration times, each updated after every record of want.
func checkCopied(t *testing.T, want, got map[string]abi.Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("destination holds %d records, the source %d", len(got), len(want))
	}
	var srcMax int64
	for _, r := range want {
		srcMax = max(srcMax, r.UpdatedAt)
	}
	for id, w := range want {
		g, ok := got[id]
		if !ok {
			t.Errorf("record %q missing from the destination", id)
			continue
		}
		if !bytes.Equal(g.Value, w.Value) || g.ExpirationTime != w.ExpirationTime {
			t.Errorf("record %q: value %d bytes, expiration %d; want %d bytes, expiration %d", id, len(g.Value), g.ExpirationTime, len(w.Value), w.ExpirationTime)
		}
		if g.UpdatedAt <= srcMax {
			t.Errorf("record %q: updated_at %d is not after the source's last update %d", id, g.UpdatedAt, srcMax)
		}
	}
}

// openRedbT opens an existing redb file read-only, as the copy's source
// is opened, so that the copy may read it too.
func openRedbT(t *testing.T, path string) abi.Backend {
	t.Helper()
	b, err := redb.Open(context.Background(), path, &redb.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func openPostgresT(t *testing.T, url string) abi.Backend {
	t.Helper()
	b, err := postgres.Open(context.Background(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(data)
}

func TestCopy_redbToRedb(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src.redb"), filepath.Join(dir, "dst.redb")
	recs := copyRecords(40, 30)
	// Values at the size limit, in maps of their own and beside small ones.
	big := bytes.Repeat([]byte{0xA5}, abi.MaxValueBytes)
	recs = append(recs,
		abi.Record{Map: "big", Key: strings.Repeat("k", abi.MaxKeyBytes), Value: big, ExpirationTime: time.Now().Add(time.Hour).UnixMilli()},
		abi.Record{Map: "big", Key: "b", Value: big[1:]},
		abi.Record{Map: "map-000", Key: "zz-big", Value: big})
	seedRedb(t, src, recs, time.Now().UnixMilli())
	before := fileSum(t, src)

	code, stdout, _ := runT(t, nil, "copy", "--from", "redb:"+src, "--to", "redb:"+dst, "--batch-records", "97")
	if code != exitOK {
		t.Fatalf("exit %d, want 0", code)
	}
	if !strings.Contains(stdout, "copied 41 maps, ") || !strings.Contains(stdout, "; verified") {
		t.Errorf("summary %q", stdout)
	}
	if fileSum(t, src) != before {
		t.Errorf("the source file changed")
	}
	s := openRedbT(t, src)
	d := openRedbT(t, dst)
	checkCopied(t, dump(t, s), dump(t, d))
}

func TestCopy_redbToPostgres(t *testing.T) {
	t.Parallel()
	url := pgtest.FreshSchema(t)
	src := filepath.Join(t.TempDir(), "src.redb")
	seedRedb(t, src, copyRecords(5, 50), time.Now().UnixMilli())
	code, _, _ := runT(t, nil, "copy", "--from", "redb:"+src, "--to", "postgres:"+url, "--batch-records", "64")
	if code != exitOK {
		t.Fatalf("exit %d, want 0", code)
	}
	checkCopied(t, dump(t, openRedbT(t, src)), dump(t, openPostgresT(t, url)))
}

func TestCopy_postgresToRedb(t *testing.T) {
	t.Parallel()
	url := pgtest.FreshSchema(t)
	p := openPostgresT(t, url)
	applyAll(t, p, copyRecords(5, 50), time.Now().UnixMilli())
	dst := filepath.Join(t.TempDir(), "dst.redb")
	// "postgres" alone reads DATABASE_URL.
	code, _, _ := runT(t, map[string]string{"DATABASE_URL": url}, "copy", "--from", "postgres", "--to", "redb:"+dst)
	if code != exitOK {
		t.Fatalf("exit %d, want 0", code)
	}
	checkCopied(t, dump(t, p), dump(t, openRedbT(t, dst)))
}

func TestCopy_pluginToRedb(t *testing.T) {
	t.Parallel()
	wasm := hosttest.BuildPlugin(t, "../../examples/plugins/logstore/cmd/logstore")
	data := t.TempDir()
	env := map[string]string{"TOPGUN_PLUGIN_CACHE_DIR": t.TempDir()}
	o, err := host.OptionsFromEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	o.DataDir = data
	b, err := host.Load(context.Background(), wasm, o)
	if err != nil {
		t.Fatal(err)
	}
	applyAll(t, b, copyRecords(4, 40), time.Now().UnixMilli())
	want := dump(t, b)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "dst.redb")
	code, _, _ := runT(t, env, "copy", "--from", wasm, "--from-data-dir", data, "--to", "redb:"+dst)
	if code != exitOK {
		t.Fatalf("exit %d, want 0", code)
	}
	checkCopied(t, want, dump(t, openRedbT(t, dst)))

	// And back into a plugin: a new data directory, batches within the
	// plugin's request limit.
	data2 := t.TempDir()
	code, _, _ = runT(t, env, "copy", "--from", "redb:"+dst, "--to", wasm, "--to-data-dir", data2, "--to-config", "{}")
	if code != exitOK {
		t.Fatalf("exit %d, want 0", code)
	}
	o.DataDir = data2
	b2, err := host.Load(context.Background(), wasm, o)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	got := dump(t, b2)
	if len(got) != len(want) {
		t.Errorf("the plugin holds %d records after the copy back, want %d", len(got), len(want))
	}
	for id, w := range want {
		if g := got[id]; !bytes.Equal(g.Value, w.Value) || g.ExpirationTime != w.ExpirationTime {
			t.Errorf("record %q differs after the copy back", id)
		}
	}
}

// A source whose records were updated after this machine's clock (another
// host's clock ahead, or this one stepped back) gets its copy stamped after
// them all: an HTTP client that synced from the source up to its last
// update must get the copied records again, not miss those stamped earlier.
func TestCopy_sourceUpdatedAheadOfClock(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src.redb"), filepath.Join(dir, "dst.redb")
	recs := copyRecords(3, 10)
	seedRedb(t, src, recs[:len(recs)/2], time.Now().UnixMilli())
	seedRedb(t, src, recs[len(recs)/2:], time.Now().Add(time.Hour).UnixMilli())
	code, _, stderr := runT(t, nil, "copy", "--from", "redb:"+src, "--to", "redb:"+dst, "--batch-records", "7")
	if code != exitOK {
		t.Fatalf("exit %d, want 0", code)
	}
	if !strings.Contains(stderr, "writing the records again") {
		t.Errorf("stderr does not say the records were stamped again")
	}
	checkCopied(t, dump(t, openRedbT(t, src)), dump(t, openRedbT(t, dst)))
}

func TestCopy_refusals(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := filepath.Join(dir, "src.redb")
	seedRedb(t, src, copyRecords(2, 3), time.Now().UnixMilli())
	full := filepath.Join(dir, "full.redb")
	seedRedb(t, full, []abi.Record{{Map: "other", Key: "k", Value: []byte("v")}}, time.Now().UnixMilli())
	empty := filepath.Join(dir, "empty.redb")
	seedRedb(t, empty, nil, time.Now().UnixMilli())
	link := filepath.Join(dir, "link.redb")
	if err := os.Symlink(src, link); err != nil {
		t.Fatal(err)
	}
	held := filepath.Join(dir, "held.redb")
	seedRedb(t, held, copyRecords(1, 1), time.Now().UnixMilli())
	// A server holding the file: its lock is taken the same way.
	hb, err := redb.Open(context.Background(), held, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hb.Close() })
	heldDst := filepath.Join(dir, "held-dst.redb")
	hd, err := redb.Open(context.Background(), heldDst, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hd.Close() })

	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     string
	}{
		{"non-empty destination", []string{"--from", "redb:" + src, "--to", "redb:" + full}, exitFail, `already holds records (1 maps, the first "other"); a copy never merges`},
		{"same file", []string{"--from", "redb:" + src, "--to", "redb:" + src}, exitFail, "name the same file"},
		{"same file through a link", []string{"--from", "redb:" + src, "--to", "redb:" + link}, exitFail, "name the same file"},
		{"source held by a server", []string{"--from", "redb:" + held, "--to", "redb:" + filepath.Join(dir, "n1.redb")}, exitFail, "is locked by another process"},
		{"destination held by a server", []string{"--from", "redb:" + src, "--to", "redb:" + heldDst}, exitFail, "is locked by another process"},
		{"null source", []string{"--from", "null", "--to", "redb:" + filepath.Join(dir, "n2.redb")}, exitUsage, "null backend holds nothing to copy"},
		{"null destination", []string{"--from", "redb:" + src, "--to", "null"}, exitUsage, "keeps nothing copied"},
		{"missing source", []string{"--from", "redb:" + filepath.Join(dir, "nope.redb"), "--to", "redb:" + filepath.Join(dir, "n3.redb")}, exitFail, "does not exist"},
		{"empty source", []string{"--from", "redb:" + empty, "--to", "redb:" + filepath.Join(dir, "n4.redb")}, exitFail, "holds no record: nothing to copy"},
		{"no --to", []string{"--from", "redb:" + src}, exitUsage, "--to is required"},
		{"bare URL", []string{"--from", "postgres://u:secret@h/db", "--to", "redb:x"}, exitUsage, "is a URL, not a SPEC"},
		{"bare URL of another scheme", []string{"--from", "postgresql+psycopg://u:secret@h/db", "--to", "redb:x"}, exitUsage, "is a URL, not a SPEC"},
		{"postgres: with another scheme's URL", []string{"--from", "redb:x", "--to", "postgres:mysql://u:secret@h/db"}, exitUsage, "the database URL is not valid"},
		{"unknown spec", []string{"--from", "sqlite:x", "--to", "redb:x"}, exitUsage, "is not a SPEC"},
		{"data dir of a redb side", []string{"--from", "redb:" + src, "--to", "redb:x", "--to-data-dir", dir}, exitUsage, "--to-data-dir is for a plugin"},
		{"postgres without DATABASE_URL", []string{"--from", "postgres", "--to", "redb:x"}, exitUsage, "DATABASE_URL, which is not set"},
		{"batch records over the limit", []string{"--from", "redb:" + src, "--to", "redb:x", "--batch-records", "100001"}, exitUsage, "--batch-records 100001"},
		{"batch bytes over the limit", []string{"--from", "redb:" + src, "--to", "redb:x", "--batch-bytes", "268435457"}, exitUsage, "--batch-bytes 268435457: use 1 to 268435456"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runT(t, nil, append([]string{"copy", "--no-progress"}, tt.args...)...)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d", code, tt.wantCode)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr does not say %q", tt.want)
			}
			if strings.Contains(stderr, "secret") {
				t.Errorf("stderr shows the password")
			}
		})
	}
	// Nothing was written to the non-empty destination.
	if got := dump(t, openRedbT(t, full)); len(got) != 1 {
		t.Errorf("the refused destination holds %d records, want its 1", len(got))
	}
}

func TestCopy_refusesSamePostgresTable(t *testing.T) {
	t.Parallel()
	url := pgtest.FreshSchema(t)
	applyAll(t, openPostgresT(t, url), copyRecords(1, 3), time.Now().UnixMilli())
	// The same table under another spelling of its URL.
	other := url + "&application_name=copy"
	code, _, stderr := runT(t, nil, "copy", "--from", "postgres:"+url, "--to", "postgres:"+other)
	if code != exitFail || !strings.Contains(stderr, "are the same table") {
		t.Errorf("exit %d, want %d saying the same table", code, exitFail)
	}
}

// An interrupted copy (SIGINT ends the CLI's context) stops, says the
// destination is incomplete and exits 1.
func TestCopy_interrupted(t *testing.T) {
	// Not parallel: it sets copyAfterApply.
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src.redb"), filepath.Join(dir, "dst.redb")
	seedRedb(t, src, copyRecords(3, 100), time.Now().UnixMilli())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	applied := 0
	copyAfterApply = func() {
		applied++
		if applied == 2 {
			cancel()
		}
	}
	defer func() { copyAfterApply = nil }()
	var out, errOut bytes.Buffer
	code := runContext(ctx, []string{"copy", "--from", "redb:" + src, "--to", "redb:" + dst, "--batch-records", "10"}, &cli{stdout: &out, stderr: &errOut, lookupEnv: func(string) (string, bool) { return "", false }})
	t.Logf("stdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
	if code != exitFail {
		t.Errorf("exit %d, want %d", code, exitFail)
	}
	for _, want := range []string{"the copy was interrupted after 20 records", "is incomplete", `map "map-000"`} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("stderr does not say %q", want)
		}
	}
	if strings.Contains(out.String(), "verified") {
		t.Errorf("stdout claims a verified copy")
	}
	if got := dump(t, openRedbT(t, dst)); len(got) != 20 {
		t.Errorf("destination holds %d records, want the 20 applied before the interruption", len(got))
	}
}

// The verification reads both sides again: a destination record that
// differs from the source's, or one missing, fails it.
func TestCopy_verifyFindsDifferences(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "src.redb")
	seedRedb(t, src, copyRecords(2, 5), time.Now().UnixMilli())
	s := openRedbT(t, src)
	for _, tc := range []struct {
		name   string
		change func(b *abi.Batch)
		want   string
	}{
		{"value", func(b *abi.Batch) { b.Put("map-000", "key-00004", false, []byte("other"), 0) }, `map "map-000" differs`},
		{"expiration", func(b *abi.Batch) { b.Put("map-000", "key-00004", false, []byte("value 4 of map-000"), 5) }, `map "map-000" differs`},
		{"missing record", func(b *abi.Batch) { b.Delete("map-000", "key-00004", false) }, `map "map-000" has 6 records in the destination, 7 in the source`},
		{"missing backup", func(b *abi.Batch) { b.Delete("map-000", "key-00000", true) }, `map "map-000" has 6 records`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := redb.Open(ctx, filepath.Join(t.TempDir(), "dst.redb"), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			cp := &copier{src: &copySide{kind: redb.Name, target: src}, dst: &copySide{kind: redb.Name, target: "dst"},
				srcB: s, dstB: d, batchRecords: 3, batchBytes: 1 << 20}
			if err := cp.check(ctx); err != nil {
				t.Fatal(err)
			}
			if err := cp.checkSource(ctx); err != nil {
				t.Fatal(err)
			}
			if err := cp.copy(ctx); err != nil {
				t.Fatal(err)
			}
			if err := cp.verify(ctx); err != nil {
				t.Fatalf("verify after a copy: %v", err)
			}
			b := &abi.Batch{Now: cp.lastNow + 1}
			tc.change(b)
			if err := d.Apply(ctx, b); err != nil {
				t.Fatal(err)
			}
			err = cp.verify(ctx)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("verify: %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

// A plugin that does not declare durable (the null example keeps its
// records in memory) keeps nothing copied into it: refused, as null is.
func TestCopy_refusesNonDurableDestination(t *testing.T) {
	t.Parallel()
	wasm := hosttest.BuildPlugin(t, "../../examples/plugins/null")
	src := filepath.Join(t.TempDir(), "src.redb")
	seedRedb(t, src, copyRecords(1, 2), time.Now().UnixMilli())
	code, _, stderr := runT(t, map[string]string{"TOPGUN_PLUGIN_CACHE_DIR": "-"}, "copy", "--from", "redb:"+src, "--to", wasm)
	if code != exitFail || !strings.Contains(stderr, "does not declare the durable capability") {
		t.Errorf("exit %d, want %d saying the destination is not durable", code, exitFail)
	}
}

// Two schemas of one database are two tables: the copy between them is
// allowed (and the same-table check does not confuse them).
func TestCopy_postgresToPostgres(t *testing.T) {
	t.Parallel()
	src, dst := pgtest.FreshSchema(t), pgtest.FreshSchema(t)
	p := openPostgresT(t, src)
	applyAll(t, p, copyRecords(3, 20), time.Now().UnixMilli())
	code, _, _ := runT(t, nil, "copy", "--from", "postgres:"+src, "--to", "postgres:"+dst)
	if code != exitOK {
		t.Fatalf("exit %d, want 0", code)
	}
	checkCopied(t, dump(t, p), dump(t, openPostgresT(t, dst)))
}

// TestCopy_postgresSourceRecordsNotReached: a table TopGun's server wrote
// can hold records no scan reaches (a map named past the name limit, which
// ListMaps skips, or one with backup records only). The copy must not call
// itself complete and verified while they stay behind.
func TestCopy_postgresSourceRecordsNotReached(t *testing.T) {
	t.Parallel()
	url := pgtest.FreshSchema(t)
	applyAll(t, openPostgresT(t, url), copyRecords(2, 5), time.Now().UnixMilli())
	for _, m := range []struct {
		name   string
		backup bool
	}{{strings.Repeat("x", abi.MaxMapNameBytes+1), false}, {"only-backup", true}} {
		pgtest.Exec(t, url, `INSERT INTO topgun_maps (map_name, key, value, is_backup, created_at, updated_at) VALUES ($1, 'k', '\x01', $2, 1, 1)`, m.name, m.backup)
	}
	dst := filepath.Join(t.TempDir(), "dst.redb")
	code, stdout, stderr := runT(t, nil, "copy", "--no-progress", "--from", "postgres:"+url, "--to", "redb:"+dst)
	if code != exitFail || strings.Contains(stdout, "verified") {
		t.Fatalf("exit %d, stdout %q: want a failure", code, stdout)
	}
	if !strings.Contains(stderr, "2 records") {
		t.Errorf("stderr does not count the 2 records left behind")
	}
}

// repeatingScan is a backend whose scan never advances: every page is the
// same record with a cursor, as a faulty plugin may answer.
type repeatingScan struct{ abi.Backend }

func (repeatingScan) Scan(ctx context.Context, req abi.ScanRequest) (abi.Page, error) {
	return abi.Page{Records: []abi.Record{{Map: req.Map, Key: "a", Value: []byte{1}}}, Cursor: abi.KeyCursor("a")}, nil
}

// TestCopy_scanThatDoesNotAdvance: a source whose pages repeat a key is
// refused rather than read forever (and its records copied again and again).
func TestCopy_scanThatDoesNotAdvance(t *testing.T) {
	t.Parallel()
	const bound = 1000
	calls := 0
	errLooped := fmt.Errorf("still reading after %d records", bound)
	err := scanAll(context.Background(), repeatingScan{}, "m", false, 10, 1<<20, func(*abi.Record) error {
		if calls++; calls > bound {
			return errLooped
		}
		return nil
	})
	var se *scanError
	if err == nil || err == errLooped || !errors.As(err, &se) {
		t.Fatalf("scanAll = %v, want a scan error after the repeated key", err)
	}
}

// TestCopy_postgresDestinationWithBackupRecordsOnly: a table holding only
// backup records lists no map, but it is not empty: a copy never merges.
func TestCopy_postgresDestinationWithBackupRecordsOnly(t *testing.T) {
	t.Parallel()
	url := pgtest.FreshSchema(t)
	openPostgresT(t, url) // creates the table
	pgtest.Exec(t, url, `INSERT INTO topgun_maps (map_name, key, value, is_backup, created_at, updated_at) VALUES ('m', 'k', '\x01', true, 1, 1)`)
	src := filepath.Join(t.TempDir(), "src.redb")
	seedRedb(t, src, copyRecords(2, 5), time.Now().UnixMilli())
	code, _, stderr := runT(t, nil, "copy", "--no-progress", "--from", "redb:"+src, "--to", "postgres:"+url)
	if code != exitFail || !strings.Contains(stderr, "already holds records") {
		t.Fatalf("exit %d, stderr %q: want the destination refused", code, stderr)
	}
}
