package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/plugins/postgres/pgtest"
)

func recordsEqual(a, b []abi.Record) bool {
	return slices.EqualFunc(a, b, func(x, y abi.Record) bool {
		return x.Map == y.Map && x.Key == y.Key && x.Backup == y.Backup && bytes.Equal(x.Value, y.Value) &&
			(x.Value == nil) == (y.Value == nil) &&
			x.ExpirationTime == y.ExpirationTime && x.CreatedAt == y.CreatedAt && x.UpdatedAt == y.UpdatedAt
	})
}

func TestBackend_Describe(t *testing.T) {
	t.Parallel()
	b, _ := openFresh(t)
	d := b.Describe()
	want := abi.CapDurable | abi.CapShared | abi.CapAtomicBatch | abi.CapExpiryIndex
	if d.Name != "postgres" || d.Capabilities != want || d.ABIMajor != abi.VersionMajor {
		t.Fatalf("Describe = %+v", d)
	}
}

// TestApply_topGunRowFormat checks the columns as TopGun's server writes
// them: created_at kept on conflict; value, expiration_time and updated_at
// replaced.
func TestApply_topGunRowFormat(t *testing.T) {
	t.Parallel()
	b, url := openFresh(t)
	ctx := testCtx(t)
	var b1 abi.Batch
	b1.Now = 1000
	b1.Put("todos", "k", false, []byte{1, 2, 3}, 5000)
	b1.Put("todos", "k", true, []byte{9}, 0)
	apply(t, b, &b1)
	var b2 abi.Batch
	b2.Now = 2000
	b2.Put("todos", "k", false, []byte{4}, 0)
	apply(t, b, &b2)

	var (
		value              []byte
		exp, created, upd  int64
		backupValue        []byte
		backupCreated, bup int64
	)
	conn := sqlConn(t, url)
	err := conn.QueryRow(ctx, `SELECT value, expiration_time, created_at, updated_at FROM topgun_maps WHERE map_name = 'todos' AND key = 'k' AND NOT is_backup`).
		Scan(&value, &exp, &created, &upd)
	if err != nil || !bytes.Equal(value, []byte{4}) || exp != 0 || created != 1000 || upd != 2000 {
		t.Fatalf("primary row = %x exp=%d created=%d updated=%d, %v", value, exp, created, upd, err)
	}
	err = conn.QueryRow(ctx, `SELECT value, created_at, updated_at FROM topgun_maps WHERE map_name = 'todos' AND key = 'k' AND is_backup`).
		Scan(&backupValue, &backupCreated, &bup)
	if err != nil || !bytes.Equal(backupValue, []byte{9}) || backupCreated != 1000 || bup != 1000 {
		t.Fatalf("backup row = %x created=%d updated=%d, %v", backupValue, backupCreated, bup, err)
	}
}

func TestApply_collapsesDuplicatesLastWins(t *testing.T) {
	t.Parallel()
	b, _ := openFresh(t)
	ctx := testCtx(t)
	var seed abi.Batch
	seed.Now = 1
	seed.Put("m", "del-then-put", false, []byte("old"), 0)
	seed.Put("m", "put-then-del", false, []byte("old"), 0)
	apply(t, b, &seed)

	var batch abi.Batch
	batch.Now = 2
	batch.Put("m", "put-put", false, []byte("first"), 10)
	batch.Put("m", "put-put", false, []byte("second"), 0)
	batch.Delete("m", "del-then-put", false)
	batch.Put("m", "del-then-put", false, []byte("new"), 0)
	batch.Put("m", "put-then-del", false, []byte("new"), 0)
	batch.Delete("m", "put-then-del", false)
	batch.Put("m", "new-put-del-put", false, []byte("a"), 0)
	batch.Delete("m", "new-put-del-put", false)
	batch.Put("m", "new-put-del-put", false, nil, 0) // empty value, not NULL
	batch.Delete("m", "never-existed", false)
	apply(t, b, &batch)

	recs, _ := scanAll(t, b, "m", false, 0, 0)
	want := []abi.Record{
		{Map: "m", Key: "del-then-put", Value: []byte("new"), CreatedAt: 2, UpdatedAt: 2}, // a new record
		{Map: "m", Key: "new-put-del-put", Value: []byte{}, CreatedAt: 2, UpdatedAt: 2},
		{Map: "m", Key: "put-put", Value: []byte("second"), CreatedAt: 2, UpdatedAt: 2},
	}
	if !recordsEqual(recs, want) {
		t.Fatalf("scan = %+v\nwant %+v", recs, want)
	}
	if exp, err := b.ListExpired(ctx, 100, 0); err != nil || len(exp) != 0 {
		t.Fatalf("ListExpired = %+v, %v; the overwritten expiry must be gone", exp, err)
	}
}

func TestApply_invalidInputStoresNothing(t *testing.T) {
	t.Parallel()
	b, _ := openFresh(t)
	ctx := testCtx(t)
	cases := []struct {
		name  string
		batch *abi.Batch
	}{
		{"nil", nil},
		{"zero now", &abi.Batch{Mutations: []abi.Mutation{{Kind: abi.OpPut, Map: "m", Key: "k"}}}},
		{"nul key", &abi.Batch{Now: 1, Mutations: []abi.Mutation{{Kind: abi.OpPut, Map: "m", Key: "ok"}, {Kind: abi.OpPut, Map: "m", Key: "a\x00b"}}}},
		{"bad utf8 map", &abi.Batch{Now: 1, Mutations: []abi.Mutation{{Kind: abi.OpPut, Map: "\xff", Key: "k"}}}},
		{"empty map", &abi.Batch{Now: 1, Mutations: []abi.Mutation{{Kind: abi.OpDelete, Map: "", Key: "k"}}}},
		{"unknown kind", &abi.Batch{Now: 1, Mutations: []abi.Mutation{{Kind: 9, Map: "m", Key: "k"}}}},
	}
	for _, c := range cases {
		mustCode(t, b.Apply(ctx, c.batch), abi.ErrInvalidArgument)
	}
	if maps, err := b.ListMaps(ctx); err != nil || len(maps) != 0 {
		t.Fatalf("ListMaps after invalid batches = %v, %v", maps, err)
	}
}

func TestBackend_Get(t *testing.T) {
	t.Parallel()
	b, _ := openFresh(t)
	ctx := testCtx(t)
	var batch abi.Batch
	batch.Now = 5
	for _, k := range []string{"a", "b", "c", "", "ключ"} {
		batch.Put("m", k, false, []byte("v-"+k), 0)
	}
	batch.Put("m", "b", true, []byte("backup"), 0)
	apply(t, b, &batch)

	got, err := b.Get(ctx, "m", false, []string{"c", "missing", "", "a", "c", "ключ"})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, r := range got {
		keys = append(keys, r.Key)
		if string(r.Value) != "v-"+r.Key || r.CreatedAt != 5 || r.Map != "m" || r.Backup {
			t.Errorf("record %+v", r)
		}
	}
	if !slices.Equal(keys, []string{"c", "", "a", "ключ"}) {
		t.Fatalf("Get order = %q", keys)
	}
	if got, err := b.Get(ctx, "m", true, []string{"a", "b"}); err != nil || len(got) != 1 || string(got[0].Value) != "backup" || !got[0].Backup {
		t.Fatalf("backup Get = %+v, %v", got, err)
	}
	if got, err := b.Get(ctx, "other", false, []string{"a"}); err != nil || len(got) != 0 {
		t.Fatalf("Get of another map = %+v, %v", got, err)
	}
	if _, err := abi.GetOne(ctx, b, "m", "zzz", false); !errors.Is(err, abi.ErrNotFound) {
		t.Fatalf("GetOne missing = %v", err)
	}
	_, err = b.Get(ctx, "m", false, []string{"bad\x00"})
	mustCode(t, err, abi.ErrInvalidArgument)
}

func TestScan_pagesBytesAndOrder(t *testing.T) {
	t.Parallel()
	b, _ := openFresh(t)
	keys := []string{"", " ", "-", "0", "1", "10", "9", "A", "B", "Z", "_", "a", "a b", "aB", "ab", "b", "é", "ß", "中", "😀", "\uffff", "with space:and colon", "a/b"}
	for i := range 100 {
		keys = append(keys, fmt.Sprintf("key-%03d", i))
	}
	var batch abi.Batch
	batch.Now = 3
	for i, k := range keys {
		batch.Put("weird map/ключ", k, false, bytes.Repeat([]byte{byte(i)}, i%17), int64(i%3))
	}
	batch.Put("weird map/ключ", "only-backup", true, []byte("x"), 0)
	apply(t, b, &batch)
	sorted := slices.Clone(keys)
	sort.Strings(sorted)
	sizeOf := map[string]int{}
	for i, k := range keys {
		sizeOf[k] = len(k) + i%17
	}

	for _, c := range []struct{ limit, maxBytes int }{{0, 0}, {1, 0}, {7, 0}, {1000, 1}, {1000, 40}, {3, 25}, {len(keys), 0}, {len(keys) - 1, 0}} {
		t.Run(fmt.Sprintf("limit=%d,bytes=%d", c.limit, c.maxBytes), func(t *testing.T) {
			var cursor []byte
			var got []string
			for pages := 0; ; pages++ {
				if pages > len(keys)+1 {
					t.Fatal("scan does not end")
				}
				page, err := b.Scan(testCtx(t), abi.ScanRequest{Map: "weird map/ключ", Cursor: cursor, Limit: c.limit, MaxBytes: c.maxBytes})
				if err != nil {
					t.Fatal(err)
				}
				limit, maxBytes := c.limit, c.maxBytes
				if limit <= 0 {
					limit = abi.DefaultScanLimit
				}
				if maxBytes <= 0 {
					maxBytes = abi.DefaultScanBytes
				}
				size := 0
				for _, r := range page.Records {
					size += r.Size()
					got = append(got, r.Key)
				}
				if len(page.Records) == 0 || len(page.Records) > limit || (len(page.Records) > 1 && size > maxBytes) {
					t.Fatalf("page of %d records, %d bytes, for limit %d, budget %d", len(page.Records), size, limit, maxBytes)
				}
				if page.Cursor == nil {
					break
				}
				// The budget is used up: the next record would not have fitted.
				if len(page.Records) < limit {
					next := slices.Index(sorted, page.Records[len(page.Records)-1].Key) + 1
					if nextSize := sizeOf[sorted[next]]; size+nextSize <= maxBytes {
						t.Fatalf("page stopped early: %d + %d <= %d", size, nextSize, maxBytes)
					}
				}
				cursor = page.Cursor
			}
			if !slices.Equal(got, sorted) {
				t.Fatalf("scan keys = %q\nwant %q", got, sorted)
			}
		})
	}
	recs, _ := scanAll(t, b, "weird map/ключ", true, 0, 0)
	if len(recs) != 1 || recs[0].Key != "only-backup" || !recs[0].Backup {
		t.Fatalf("backup scan = %+v", recs)
	}
	if recs, _ := scanAll(t, b, "no such map", false, 0, 0); len(recs) != 0 {
		t.Fatalf("scan of a missing map = %+v", recs)
	}
	_, err := b.Scan(testCtx(t), abi.ScanRequest{Map: "m", Cursor: []byte("garbage")})
	mustCode(t, err, abi.ErrInvalidArgument)
}

func TestScan_oversizedRecordComesAlone(t *testing.T) {
	t.Parallel()
	b, _ := openFresh(t)
	var batch abi.Batch
	batch.Now = 1
	batch.Put("m", "a", false, make([]byte, 10), 0)
	batch.Put("m", "b", false, make([]byte, 1<<20), 0)
	batch.Put("m", "c", false, make([]byte, 10), 0)
	apply(t, b, &batch)
	var sizes []int
	var cursor []byte
	for range 10 {
		page, err := b.Scan(testCtx(t), abi.ScanRequest{Map: "m", Cursor: cursor, MaxBytes: 100})
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(page.Records))
		if page.Cursor == nil {
			break
		}
		cursor = page.Cursor
	}
	if !slices.Equal(sizes, []int{1, 1, 1}) {
		t.Fatalf("page sizes = %v, want the 1 MiB record alone", sizes)
	}
}

// TestScan_exactlyOnceUnderWrites pages through a map while another
// backend inserts and deletes other keys: every key present for the whole
// scan is seen exactly once.
func TestScan_exactlyOnceUnderWrites(t *testing.T) {
	t.Parallel()
	b, url := openFresh(t)
	other := openURL(t, url)
	var batch abi.Batch
	batch.Now = 1
	for i := range 300 {
		batch.Put("m", fmt.Sprintf("stable-%04d", i), false, []byte("v"), 0)
	}
	apply(t, b, &batch)
	var cursor []byte
	seen := map[string]int{}
	for i := 0; ; i++ {
		if i > 1000 {
			t.Fatal("scan does not end")
		}
		page, err := b.Scan(testCtx(t), abi.ScanRequest{Map: "m", Cursor: cursor, Limit: 17})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Records {
			seen[r.Key]++
		}
		var w abi.Batch
		w.Now = int64(i + 2)
		w.Put("m", fmt.Sprintf("stable-%04d-x%d", i*7%300, i), false, []byte("v"), 0)
		w.Put("m", fmt.Sprintf("a-before-%d", i), false, []byte("v"), 0)
		w.Delete("m", fmt.Sprintf("stable-%04d-x%d", (i-1)*7%300, i-1), false)
		apply(t, other, &w)
		if page.Cursor == nil {
			break
		}
		cursor = page.Cursor
	}
	for i := range 300 {
		if k := fmt.Sprintf("stable-%04d", i); seen[k] != 1 {
			t.Fatalf("%s seen %d times", k, seen[k])
		}
	}
	for k, n := range seen {
		if n != 1 {
			t.Fatalf("%s seen %d times", k, n)
		}
	}
}

func TestBackend_ListMaps(t *testing.T) {
	t.Parallel()
	b, _ := openFresh(t)
	ctx := testCtx(t)
	if maps, err := b.ListMaps(ctx); err != nil || len(maps) != 0 {
		t.Fatalf("ListMaps on an empty table = %v, %v", maps, err)
	}
	var batch abi.Batch
	batch.Now = 1
	for _, m := range []string{"zeta", "alpha", "Beta", "todo-items", "ключ", "a b"} {
		for i := range 3 {
			batch.Put(m, fmt.Sprint(i), false, nil, 0)
		}
	}
	batch.Put("backup-only", "k", true, nil, 0)
	batch.Put("emptied", "k", false, nil, 0)
	apply(t, b, &batch)
	var del abi.Batch
	del.Now = 2
	del.Delete("emptied", "k", false)
	apply(t, b, &del)
	maps, err := b.ListMaps(ctx)
	want := []string{"Beta", "a b", "alpha", "todo-items", "zeta", "ключ"}
	if err != nil || !slices.Equal(maps, want) {
		t.Fatalf("ListMaps = %q, %v; want %q", maps, err, want)
	}
}

func TestBackend_ListExpired(t *testing.T) {
	t.Parallel()
	b, _ := openFresh(t)
	ctx := testCtx(t)
	var batch abi.Batch
	batch.Now = 1
	batch.Put("m", "late", false, []byte("v"), 300)
	batch.Put("m", "early", false, []byte("v"), 100)
	batch.Put("m", "early", true, []byte("v"), 100)
	batch.Put("a", "early", false, []byte("v"), 100)
	batch.Put("m", "never", false, []byte("v"), 0)
	batch.Put("m", "mid", false, []byte("v"), 200)
	apply(t, b, &batch)

	got, err := b.ListExpired(ctx, 200, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []abi.Record{
		{Map: "a", Key: "early", ExpirationTime: 100, CreatedAt: 1, UpdatedAt: 1},
		{Map: "m", Key: "early", ExpirationTime: 100, CreatedAt: 1, UpdatedAt: 1},
		{Map: "m", Key: "early", Backup: true, ExpirationTime: 100, CreatedAt: 1, UpdatedAt: 1},
		{Map: "m", Key: "mid", ExpirationTime: 200, CreatedAt: 1, UpdatedAt: 1},
	}
	if !recordsEqual(got, want) {
		t.Fatalf("ListExpired = %+v\nwant %+v", got, want)
	}
	if got, err := b.ListExpired(ctx, 1000, 2); err != nil || len(got) != 2 || got[1].Key != "early" {
		t.Fatalf("ListExpired limit 2 = %+v, %v", got, err)
	}
	if got, err := b.ListExpired(ctx, 99, 0); err != nil || len(got) != 0 {
		t.Fatalf("ListExpired before any expiry = %+v, %v", got, err)
	}
}

func TestBackend_closed(t *testing.T) {
	t.Parallel()
	b, _ := openFresh(t)
	ctx := testCtx(t)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	var batch abi.Batch
	batch.Now = 1
	batch.Put("m", "k", false, nil, 0)
	mustCode(t, b.Apply(ctx, &batch), abi.ErrUnavailable)
	_, err := b.Get(ctx, "m", false, []string{"k"})
	mustCode(t, err, abi.ErrUnavailable)
	_, err = b.Scan(ctx, abi.ScanRequest{Map: "m"})
	mustCode(t, err, abi.ErrUnavailable)
	_, err = b.ListMaps(ctx)
	mustCode(t, err, abi.ErrUnavailable)
	_, err = b.ListExpired(ctx, 1, 1)
	mustCode(t, err, abi.ErrUnavailable)
	if b.Describe().Name != Name {
		t.Fatal("Describe after Close")
	}
}

func TestBackend_contextErrors(t *testing.T) {
	t.Parallel()
	b, _ := openFresh(t)
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := b.ListMaps(canceled)
	mustCode(t, err, abi.ErrCanceled)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("%v is not context.Canceled", err)
	}
	// A statement that outlives its deadline is interrupted.
	short, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	start := time.Now()
	_, err = b.pool.Exec(short, `SELECT pg_sleep(5)`)
	mustCode(t, b.mapErr(short, "sleep", err), abi.ErrDeadlineExceeded)
	if time.Since(start) > 3*time.Second {
		t.Fatalf("deadline took %s to stop the statement", time.Since(start))
	}
}

func TestBackend_sharedBetweenBackends(t *testing.T) {
	t.Parallel()
	b1, url := openFresh(t)
	b2 := openURL(t, url)
	ctx := testCtx(t)
	var w1 abi.Batch
	w1.Now = 10
	w1.Put("shared", "from-1", false, []byte("one"), 0)
	apply(t, b1, &w1)
	var w2 abi.Batch
	w2.Now = 20
	w2.Put("shared", "from-2", false, []byte("two"), 0)
	w2.Put("shared", "from-1", false, []byte("one, updated by 2"), 0)
	apply(t, b2, &w2)
	for i, b := range []*Backend{b1, b2} {
		recs, _ := scanAll(t, b, "shared", false, 0, 0)
		want := []abi.Record{
			{Map: "shared", Key: "from-1", Value: []byte("one, updated by 2"), CreatedAt: 10, UpdatedAt: 20},
			{Map: "shared", Key: "from-2", Value: []byte("two"), CreatedAt: 20, UpdatedAt: 20},
		}
		if !recordsEqual(recs, want) {
			t.Fatalf("backend %d sees %+v", i+1, recs)
		}
	}
	// Concurrent overlapping batches from both backends must not deadlock
	// or fail.
	errs := make(chan error, 2)
	for n, b := range []*Backend{b1, b2} {
		go func() {
			for round := range 20 {
				var w abi.Batch
				w.Now = int64(100 + round)
				for i := range 50 {
					k := i
					if n == 1 {
						k = 49 - i
					}
					w.Put("hot", fmt.Sprint(k), false, []byte{byte(n)}, 0)
				}
				if err := b.Apply(ctx, &w); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent Apply: %v", err)
		}
	}
}

func TestOpen_badURLs(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	for _, u := range []string{"", "   ", "postgres://user:s3cret-pw@127.0.0.1:notaport/db", "host=127.0.0.1 password=s3cret-pw port=x"} {
		_, err := Open(ctx, u, nil)
		mustCode(t, err, abi.ErrInvalidArgument)
		if strings.Contains(err.Error(), "s3cret-pw") {
			t.Fatalf("error leaks the password: %v", err)
		}
	}
	_, err := Open(ctx, "postgres://127.0.0.1/db", &Options{MaxConns: -1})
	mustCode(t, err, abi.ErrInvalidArgument)
	_, err = Open(ctx, "postgres://127.0.0.1/db", &Options{ConnectTimeout: -time.Second})
	mustCode(t, err, abi.ErrInvalidArgument)
}

func unusedPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	return port
}

func TestOpen_unreachableFailsPromptly(t *testing.T) {
	t.Parallel()
	u := fmt.Sprintf("postgres://postgres:s3cret-pw@127.0.0.1:%d/test?sslmode=disable", unusedPort(t))
	start := time.Now()
	_, err := Open(context.Background(), u, &Options{ConnectTimeout: 2 * time.Second, Logger: testLogger(t)})
	mustCode(t, err, abi.ErrUnavailable)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Open took %s to fail", d)
	}
	if strings.Contains(err.Error(), "s3cret-pw") {
		t.Fatalf("error leaks the password: %v", err)
	}
	t.Logf("error: %v", err)

	// A server that accepts TCP but never answers is bounded by the
	// connect timeout.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	start = time.Now()
	_, err = Open(context.Background(), "postgres://postgres@"+l.Addr().String()+"/test?sslmode=disable", &Options{ConnectTimeout: 500 * time.Millisecond, Logger: testLogger(t)})
	mustCode(t, err, abi.ErrUnavailable)
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Open on a silent server took %s to fail", d)
	}
}

func TestOpen_authFailureIsNotUnavailable(t *testing.T) {
	t.Parallel()
	base := pgtest.URL(t)
	u := strings.Replace(base, "/test?", "/topgun_no_such_database_x?", 1)
	if u == base {
		t.Skip("cannot derive a URL with another database name")
	}
	_, err := Open(testCtx(t), u, testOptions(t))
	mustCode(t, err, abi.ErrInvalidArgument)
	t.Logf("error: %v", err)
}

// TestApply_largeBatchIsSplit lowers the per-statement value budget so that
// a batch is applied as several statements of one transaction, and checks
// the result and its atomicity.
func TestApply_largeBatchIsSplit(t *testing.T) {
	t.Parallel()
	b, url := openFresh(t)
	b.maxStatementBytes = 1000
	ctx := testCtx(t)
	var batch abi.Batch
	batch.Now = 9
	for i := range 100 {
		batch.Put("big", fmt.Sprintf("k%03d", i), false, bytes.Repeat([]byte{byte(i)}, 90+i), 0)
	}
	batch.Put("big", "huge", false, make([]byte, 5000), 0) // alone in its statement
	apply(t, b, &batch)
	recs, _ := scanAll(t, b, "big", false, 0, 0)
	if len(recs) != 101 {
		t.Fatalf("%d records, want 101", len(recs))
	}
	if recs[0].Key != "huge" || len(recs[0].Value) != 5000 {
		t.Fatalf("record huge = %q with %d bytes", recs[0].Key, len(recs[0].Value))
	}
	for i, r := range recs[1:] {
		if r.Key != fmt.Sprintf("k%03d", i) || !bytes.Equal(r.Value, bytes.Repeat([]byte{byte(i)}, 90+i)) || r.CreatedAt != 9 {
			t.Fatalf("record %d = %q (%d bytes, created %d)", i, r.Key, len(r.Value), r.CreatedAt)
		}
	}

	// A failure in a later statement undoes the earlier ones.
	conn := sqlConn(t, url)
	if _, err := conn.Exec(ctx, `ALTER TABLE topgun_maps ADD CONSTRAINT test_no_k099 CHECK (key <> 'k099' OR created_at < 10)`); err != nil {
		t.Fatal(err)
	}
	var bad abi.Batch
	bad.Now = 10
	bad.Delete("big", "huge", false)
	for i := range 100 {
		bad.Put("big", fmt.Sprintf("k%03d", i), false, []byte("new"), 0)
		bad.Put("big", fmt.Sprintf("n%03d", i), false, bytes.Repeat([]byte{1}, 100), 0)
	}
	bad.Delete("big", "k099", false)
	bad.Put("big", "k099", false, []byte("recreated, violates the check"), 0)
	if err := b.Apply(ctx, &bad); err == nil {
		t.Fatal("batch violating a check succeeded")
	}
	after, _ := scanAll(t, b, "big", false, 0, 0)
	if !recordsEqual(after, recs) {
		t.Fatal("a failed multi-statement batch left changes")
	}
}

// largestWrite records the largest write made on connections it dialed:
// pgx sends a statement's messages in one write.
type largestWrite struct {
	net.Conn
	max *atomic.Int64
}

func (c largestWrite) Write(p []byte) (int, error) {
	for n := int64(len(p)); ; {
		m := c.max.Load()
		if n <= m || c.max.CompareAndSwap(m, n) {
			break
		}
	}
	return c.Conn.Write(p)
}

// The statement budget counts keys, map names and notifications, not only
// values. A valid batch of long keys in a map whose name JSON escapes
// (notifications of about 6 KB a record) could make a statement over the
// 1 GiB pgx and PostgreSQL take: pgx failed it as safe to retry, so each
// retry built it again, closed and fenced a connection, and the batch
// ended, long after, as "database unavailable". Here the budget is
// lowered and the largest message sent measured, for Apply (one statement
// or a transaction) and ApplyChecked (whose expect list was sent in one
// statement whatever its length).
func TestApply_statementBudgetCountsKeysAndNotices(t *testing.T) {
	t.Parallel()
	b, url := openFresh(t)
	ctx := testCtx(t)
	var largest atomic.Int64
	cfg := b.pool.Config()
	cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return largestWrite{Conn: c, max: &largest}, nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	b.pool.Close()
	b.pool = pool
	const budget = 64 << 10
	b.maxStatementBytes = budget
	other := openURL(t, url)
	heard := watchInto(t, other)

	m := strings.Repeat("\x01", abi.MaxMapNameBytes)
	for round, write := range []func(*abi.Batch) error{
		func(bt *abi.Batch) error { return b.Apply(ctx, bt) },
		func(bt *abi.Batch) error {
			bt.Delete(m, "k0", false) // deleted and put again: a transaction
			bt.Put(m, "k0", false, []byte("again"), 0)
			return b.Apply(ctx, bt)
		},
		func(bt *abi.Batch) error {
			// Each record of the batch expected absent: the expected
			// records' names also pass the budget.
			expect := []abi.Expect{{Map: m, Key: "absent"}}
			for _, mu := range bt.Mutations {
				expect = append(expect, abi.Expect{Map: mu.Map, Key: mu.Key})
			}
			return b.ApplyChecked(ctx, bt, expect)
		},
	} {
		largest.Store(0)
		bt := &abi.Batch{Now: int64(round + 1)}
		var keys []string
		for i := range 60 {
			k := fmt.Sprintf("%d-%d-%s", round, i, strings.Repeat("<", abi.MaxKeyBytes-10))
			keys = append(keys, k)
			bt.Put(m, k, false, []byte("v"), 0)
		}
		if err := write(bt); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		// The fixed parameters and the statement's other messages are
		// far under 4 KiB.
		if n := largest.Load(); n > budget+4<<10 {
			t.Fatalf("round %d: a write of %d bytes, over the budget of %d", round, n, budget)
		}
		recs, err := b.Get(ctx, m, false, keys)
		if err != nil || len(recs) != len(keys) {
			t.Fatalf("round %d: %d of %d records stored (%v)", round, len(recs), len(keys), err)
		}
		var got []string
		for len(got) < len(keys) {
			c := nextChanged(t, heard)
			if c.Map != m || c.Keys == nil {
				t.Fatalf("round %d: heard %v for map %q, not keys", round, c.All, c.Map)
			}
			got = append(got, slices.DeleteFunc(c.Keys, func(k string) bool { return k == "k0" })...)
		}
		slices.Sort(got)
		slices.Sort(keys)
		if !slices.Equal(got, keys) {
			t.Fatalf("round %d: heard %d keys, not the %d written", round, len(got), len(keys))
		}
	}
}

// TopGun's server puts no limit on key length (only PostgreSQL's index row
// limit of about 2.7 KB applies), so a table it wrote may hold keys longer
// than abi.MaxKeyBytes. Scans return them, and must then accept the cursor
// they issued after such a key: before, the next page failed with "scan
// cursor is not one this backend issued", so no scan of the map (queries,
// HTTP sync) got past that key.
func TestScan_pagesPastLongKeyOfTopGunTable(t *testing.T) {
	t.Parallel()
	b, url := openFresh(t)
	ctx := testCtx(t)
	long := strings.Repeat("b", abi.MaxKeyBytes+100)
	conn := sqlConn(t, url)
	if _, err := conn.Exec(ctx, `INSERT INTO topgun_maps (map_name, key, value, created_at, updated_at)
		SELECT 'todos', k, '\x01', 1, 1 FROM unnest($1::text[]) AS k`, []string{"a", long, "c"}); err != nil {
		t.Fatal(err)
	}
	for _, limit := range []int{1, 2, 0} {
		recs, _ := scanAll(t, b, "todos", false, limit, 0)
		var got []string
		for _, r := range recs {
			got = append(got, r.Key)
		}
		if !slices.Equal(got, []string{"a", long, "c"}) {
			t.Fatalf("limit %d: scan returned %d keys, want 3", limit, len(got))
		}
	}
	// A cursor that is not text is still refused.
	_, err := b.Scan(ctx, abi.ScanRequest{Map: "todos", Cursor: abi.KeyCursor("a\x00")})
	mustCode(t, err, abi.ErrInvalidArgument)
	_, err = b.Scan(ctx, abi.ScanRequest{Map: "todos", Cursor: abi.KeyCursor("a\xff")})
	mustCode(t, err, abi.ErrInvalidArgument)
}

// TopGun's server checks no map name on PostgreSQL, so its table may hold
// maps whose names no operation of the contract takes (longer than
// abi.MaxMapNameBytes, or empty). ListMaps must not name them: the server
// scans every listed map at start, and the refused scan stopped it from
// starting on such a database.
func TestListMaps_skipsNamesNoOperationTakes(t *testing.T) {
	t.Parallel()
	b, url := openFresh(t)
	ctx := testCtx(t)
	long := strings.Repeat("m", abi.MaxMapNameBytes+100)
	conn := sqlConn(t, url)
	if _, err := conn.Exec(ctx, `INSERT INTO topgun_maps (map_name, key, value, created_at, updated_at)
		SELECT m, 'k', '\x01', 1, 1 FROM unnest($1::text[]) AS m`, []string{"", "todos", long}); err != nil {
		t.Fatal(err)
	}
	names, err := b.ListMaps(ctx)
	if err != nil {
		t.Fatalf("ListMaps: %v", err)
	}
	for _, name := range names {
		if _, err := b.Scan(ctx, abi.ScanRequest{Map: name}); err != nil {
			t.Errorf("ListMaps listed a map of %d bytes that Scan refuses: %v", len(name), err)
		}
	}
	if !slices.Equal(names, []string{"todos"}) {
		t.Errorf("ListMaps = %d names; want only \"todos\"", len(names))
	}
}

// TestOpen_forcesUTF8ClientEncoding asks for another client encoding in
// the URL (as a role's or database's settings may): keys must still be
// stored as their UTF-8 bytes, which TopGun's server and other servers
// read, not taken for LATIN1 and stored doubly encoded.
func TestOpen_forcesUTF8ClientEncoding(t *testing.T) {
	t.Parallel()
	url := pgtest.FreshSchema(t)
	for _, u := range []string{
		withURLParam(t, url, "client_encoding", "LATIN1"),
		// Startup options; url already has a query (search_path).
		url + "&options=-c%20client_encoding%3DLATIN1",
	} {
		checkStoredUTF8(t, url, openURL(t, u))
	}
}

func checkStoredUTF8(t *testing.T, url string, b *Backend) {
	t.Helper()
	var batch abi.Batch
	batch.Now = 10
	batch.Put("карта", "ключ", false, []byte("v"), 0)
	batch.Put("карта", "é", false, []byte("v"), 0)
	apply(t, b, &batch)
	rows, err := sqlConn(t, url).Query(testCtx(t), `SELECT map_name || '/' || key FROM topgun_maps ORDER BY key`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"карта/é", "карта/ключ"}; !slices.Equal(got, want) {
		t.Fatalf("a UTF-8 connection reads %q; want %q", got, want)
	}
}
