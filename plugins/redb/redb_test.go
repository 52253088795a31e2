package redb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/topgun-go/topgun/abi"
)

func TestOptions_Validate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts *Options
		ok   bool
	}{
		{"nil", nil, true},
		{"defaults", DefaultOptions(), true},
		{"zero value", &Options{}, true},
		{"no sync", &Options{NoSync: true}, true},
		{"negative timeout", &Options{Timeout: -time.Second}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.opts.Validate()
			if tc.ok && err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if !tc.ok {
				wantCode(t, err, abi.CodeInvalidArgument)
				if _, err := Open(context.Background(), filepath.Join(t.TempDir(), "x.redb"), tc.opts); abi.CodeOf(err) != abi.CodeInvalidArgument {
					t.Fatalf("Open with invalid options: %v", err)
				}
			}
		})
	}
}

func TestOpen_createsFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "new.redb")
	b, err := Open(context.Background(), path, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer b.Close()
	if b.Path() != path {
		t.Errorf("Path() = %q, want %q", b.Path(), path)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Errorf("file mode = %v, want 0600", perm)
	}
}

func TestOpen_emptyPath(t *testing.T) {
	t.Parallel()
	_, err := Open(context.Background(), "", nil)
	wantCode(t, err, abi.CodeInvalidArgument)
}

func TestOpen_canceled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Open(ctx, filepath.Join(t.TempDir(), "x.redb"), nil)
	wantCode(t, err, abi.CodeCanceled)
}

func TestOpen_lockedInProcess(t *testing.T) {
	t.Parallel()
	b := openTemp(t)
	start := time.Now()
	_, err := Open(context.Background(), b.Path(), &Options{Timeout: 100 * time.Millisecond})
	wantCode(t, err, abi.CodeUnavailable)
	if !strings.Contains(err.Error(), b.Path()) {
		t.Errorf("error %q does not name the file", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Open waited %v", d)
	}
	// A context deadline shorter than the timeout ends the wait early.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = Open(ctx, b.Path(), &Options{Timeout: time.Minute})
	wantCode(t, err, abi.CodeDeadlineExceeded)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Open waited %v past the context deadline", d)
	}
}

func TestBackend_Describe(t *testing.T) {
	t.Parallel()
	b := openTemp(t)
	d := b.Describe()
	want := abi.CapDurable | abi.CapAtomicBatch | abi.CapExpiryIndex
	if d.Name != Name || d.ABIMajor != abi.VersionMajor || d.ABIMinor != abi.VersionMinor || d.Capabilities != want {
		t.Errorf("Describe() = %+v, want name %q caps %v", d, Name, want.Names())
	}
	ns, err := Open(context.Background(), filepath.Join(t.TempDir(), "nosync.redb"), &Options{NoSync: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if ns.Describe().Capabilities.Has(abi.CapDurable) {
		t.Error("a NoSync backend declares CapDurable")
	}
}

// weirdNames are map names and keys that must all work.
var (
	weirdMaps = []string{"todo-items", "a/b", "ключ", "with space:and colon", "a", "a\x01b", strings.Repeat("m", abi.MaxMapNameBytes), "🙂", "__backup"}
	weirdKeys = []string{"", "k", "a/b", "ключ", " ", "x:y", "with space:and colon", "\x01", "r", strings.Repeat("k", abi.MaxKeyBytes), "🙂"}
)

func TestBackend_weirdNames(t *testing.T) {
	t.Parallel()
	b := openTemp(t)
	ctx := context.Background()
	batch := &abi.Batch{Now: 1000}
	for i, m := range weirdMaps {
		for j, k := range weirdKeys {
			batch.Put(m, k, i%2 == 0, fmt.Appendf(nil, "v-%d-%d", i, j), 0)
		}
	}
	mustApply(t, b, batch)
	check := func(b *Backend) {
		t.Helper()
		var wantMaps []string
		for i, m := range weirdMaps {
			backup := i%2 == 0
			if !backup {
				wantMaps = append(wantMaps, m)
			}
			recs, err := b.Get(ctx, m, backup, weirdKeys)
			if err != nil {
				t.Fatalf("Get(%q): %v", m, err)
			}
			if len(recs) != len(weirdKeys) {
				t.Fatalf("Get(%q) returned %d records, want %d", m, len(recs), len(weirdKeys))
			}
			for j, r := range recs {
				if r.Key != weirdKeys[j] || r.Map != m || r.Backup != backup || string(r.Value) != fmt.Sprintf("v-%d-%d", i, j) {
					t.Errorf("Get(%q)[%d] = %q/%q/%q", m, j, r.Map, r.Key, r.Value)
				}
			}
			got := scanAll(t, b, m, backup, 3, 0)
			keys := make([]string, len(got))
			for j, r := range got {
				keys[j] = r.Key
			}
			want := slices.Clone(weirdKeys)
			slices.Sort(want)
			if !slices.Equal(keys, want) {
				t.Errorf("scan of %q: keys %q, want %q", m, keys, want)
			}
			// The other kind (backup vs primary) of the same map is empty.
			if recs, err := b.Get(ctx, m, !backup, weirdKeys); err != nil || len(recs) != 0 {
				t.Errorf("Get(%q, backup=%t) = %d records, %v; want none", m, !backup, len(recs), err)
			}
		}
		slices.Sort(wantMaps)
		maps, err := b.ListMaps(ctx)
		if err != nil || !slices.Equal(maps, wantMaps) {
			t.Errorf("ListMaps() = %q, %v; want %q", maps, err, wantMaps)
		}
	}
	check(b)
	check(reopen(t, b))
}

func TestApply_recordTimes(t *testing.T) {
	t.Parallel()
	b := openTemp(t)
	ctx := context.Background()
	mustApply(t, b, &abi.Batch{Now: 100, Mutations: []abi.Mutation{{Kind: abi.OpPut, Map: "m", Key: "k", Value: []byte("one")}}})
	mustApply(t, b, &abi.Batch{Now: 200, Mutations: []abi.Mutation{{Kind: abi.OpPut, Map: "m", Key: "k", Value: []byte("two"), ExpirationTime: 900}}})
	r, err := abi.GetOne(ctx, b, "m", "k", false)
	if err != nil {
		t.Fatal(err)
	}
	if r.CreatedAt != 100 || r.UpdatedAt != 200 || r.ExpirationTime != 900 || string(r.Value) != "two" {
		t.Errorf("record = %+v, want created 100 updated 200 expiration 900 value two", r)
	}
	// Delete and put again: a new record with a new CreatedAt.
	mustApply(t, b, &abi.Batch{Now: 300, Mutations: []abi.Mutation{{Kind: abi.OpDelete, Map: "m", Key: "k"}, {Kind: abi.OpPut, Map: "m", Key: "k", Value: []byte("three")}}})
	r, err = abi.GetOne(ctx, b, "m", "k", false)
	if err != nil {
		t.Fatal(err)
	}
	if r.CreatedAt != 300 || r.UpdatedAt != 300 || r.ExpirationTime != 0 {
		t.Errorf("record after delete+put = %+v, want created 300", r)
	}
	if exp, err := b.ListExpired(ctx, 1<<62, 0); err != nil || len(exp) != 0 {
		t.Errorf("ListExpired = %v, %v; want none", exp, err)
	}
}

func TestApply_laterMutationWins(t *testing.T) {
	t.Parallel()
	b := openTemp(t)
	ctx := context.Background()
	batch := &abi.Batch{Now: 10}
	batch.Put("m", "a", false, []byte("1"), 50)
	batch.Put("m", "a", false, []byte("2"), 60)
	batch.Put("m", "b", false, []byte("1"), 0)
	batch.Delete("m", "b", false)
	batch.Delete("m", "c", false) // missing: not an error
	batch.Delete("gone", "x", true)
	mustApply(t, b, batch)
	recs, err := b.Get(ctx, "m", false, []string{"a", "b", "c", "a"})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || string(recs[0].Value) != "2" || recs[0].ExpirationTime != 60 {
		t.Fatalf("Get = %+v, want only a=2 expiring at 60", recs)
	}
	exp, err := b.ListExpired(ctx, 100, 10)
	if err != nil || len(exp) != 1 || exp[0].ExpirationTime != 60 || exp[0].Value != nil {
		t.Fatalf("ListExpired = %+v, %v; want a at 60 without value", exp, err)
	}
}

func TestApply_invalidBatchAppliesNothing(t *testing.T) {
	t.Parallel()
	b := openTemp(t)
	ctx := context.Background()
	tests := []struct {
		name string
		bad  abi.Mutation
	}{
		{"empty map", abi.Mutation{Kind: abi.OpPut, Map: "", Key: "k"}},
		{"NUL in key", abi.Mutation{Kind: abi.OpPut, Map: "m", Key: "a\x00b"}},
		{"invalid UTF-8 map", abi.Mutation{Kind: abi.OpDelete, Map: "\xff", Key: "k"}},
		{"long key", abi.Mutation{Kind: abi.OpPut, Map: "m", Key: strings.Repeat("k", abi.MaxKeyBytes+1)}},
		{"negative expiration", abi.Mutation{Kind: abi.OpPut, Map: "m", Key: "k", ExpirationTime: -1}},
		{"unknown kind", abi.Mutation{Kind: 9, Map: "m", Key: "k"}},
	}
	for _, tc := range tests {
		batch := &abi.Batch{Now: 1}
		batch.Put("m", "good", false, []byte("v"), 5)
		batch.Mutations = append(batch.Mutations, tc.bad)
		wantCode(t, b.Apply(ctx, batch), abi.CodeInvalidArgument)
	}
	wantCode(t, b.Apply(ctx, nil), abi.CodeInvalidArgument)
	wantCode(t, b.Apply(ctx, &abi.Batch{Now: 0}), abi.CodeInvalidArgument)
	if maps, err := b.ListMaps(ctx); err != nil || len(maps) != 0 {
		t.Fatalf("ListMaps after invalid batches = %q, %v; want none", maps, err)
	}
	mustApply(t, b, &abi.Batch{Now: 1}) // empty batch is fine
}

// flakyCtx is live for its first n calls to Err, then canceled: it cancels
// an operation in the middle.
type flakyCtx struct {
	context.Context
	mu sync.Mutex
	n  int
}

func (c *flakyCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n > 0 {
		c.n--
		return nil
	}
	return context.Canceled
}

func TestBackend_canceled(t *testing.T) {
	t.Parallel()
	b := openTemp(t)
	seed := &abi.Batch{Now: 1}
	for i := range 1000 {
		seed.Put("m", fmt.Sprintf("k%04d", i), false, []byte("v"), int64(i+1))
	}
	mustApply(t, b, seed)

	done, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := b.Get(done, "m", false, []string{"k0001"})
	wantCode(t, err, abi.CodeCanceled)
	_, err = b.Scan(done, abi.ScanRequest{Map: "m"})
	wantCode(t, err, abi.CodeCanceled)
	_, err = b.ListMaps(done)
	wantCode(t, err, abi.CodeCanceled)
	_, err = b.ListExpired(done, 10, 10)
	wantCode(t, err, abi.CodeCanceled)
	wantCode(t, b.Apply(done, seed), abi.CodeCanceled)

	// Canceled in the middle of a batch: nothing of it is applied.
	batch := &abi.Batch{Now: 2}
	for i := range 1000 {
		batch.Delete("m", fmt.Sprintf("k%04d", i), false)
	}
	err = b.Apply(&flakyCtx{Context: context.Background(), n: 2}, batch)
	wantCode(t, err, abi.CodeCanceled)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("errors.Is(%v, context.Canceled) = false", err)
	}
	if got := scanAll(t, b, "m", false, 0, 0); len(got) != 1000 {
		t.Fatalf("after a canceled batch %d records remain, want 1000", len(got))
	}
	// Canceled in the middle of a scan page and of an expiry walk.
	_, err = b.Scan(&flakyCtx{Context: context.Background(), n: 1}, abi.ScanRequest{Map: "m"})
	wantCode(t, err, abi.CodeCanceled)
	_, err = b.ListExpired(&flakyCtx{Context: context.Background(), n: 1}, 1<<40, 1000)
	wantCode(t, err, abi.CodeCanceled)
}

func TestScan_paging(t *testing.T) {
	t.Parallel()
	b := openTemp(t)
	ctx := context.Background()
	batch := &abi.Batch{Now: 7}
	for i := range 100 {
		batch.Put("m", fmt.Sprintf("k%03d", i), false, make([]byte, i), 0)
	}
	mustApply(t, b, batch)
	all := scanAll(t, b, "m", false, 0, 0)
	if len(all) != 100 {
		t.Fatalf("full scan returned %d records", len(all))
	}
	for _, tc := range []struct{ limit, maxBytes int }{{1, 0}, {7, 0}, {100, 0}, {101, 0}, {0, 1}, {0, 50}, {3, 120}, {1000, 4950 + 400}} {
		t.Run(fmt.Sprintf("limit=%d,bytes=%d", tc.limit, tc.maxBytes), func(t *testing.T) {
			var cursor []byte
			var got []abi.Record
			for {
				p, err := b.Scan(ctx, abi.ScanRequest{Map: "m", Cursor: cursor, Limit: tc.limit, MaxBytes: tc.maxBytes})
				if err != nil {
					t.Fatal(err)
				}
				size := 0
				for _, r := range p.Records {
					size += r.Size()
				}
				if tc.limit > 0 && len(p.Records) > tc.limit {
					t.Fatalf("page of %d records, limit %d", len(p.Records), tc.limit)
				}
				if tc.maxBytes > 0 && size > tc.maxBytes && len(p.Records) > 1 {
					t.Fatalf("page of %d bytes in %d records, budget %d", size, len(p.Records), tc.maxBytes)
				}
				got = append(got, p.Records...)
				if p.Cursor == nil {
					break
				}
				cursor = p.Cursor
			}
			if !recordsEqual(got, all) {
				t.Fatalf("paged scan differs from the full scan (%d vs %d records)", len(got), len(all))
			}
		})
	}
	// A page that ends exactly at the last record has no cursor.
	p, err := b.Scan(ctx, abi.ScanRequest{Map: "m", Limit: 100})
	if err != nil || len(p.Records) != 100 || p.Cursor != nil {
		t.Fatalf("Scan limit 100 = %d records, cursor %q, %v", len(p.Records), p.Cursor, err)
	}
	_, err = b.Scan(ctx, abi.ScanRequest{Map: "m", Cursor: []byte("zzz")})
	wantCode(t, err, abi.CodeInvalidArgument)
	p, err = b.Scan(ctx, abi.ScanRequest{Map: "missing"})
	if err != nil || len(p.Records) != 0 || p.Cursor != nil {
		t.Fatalf("Scan of a missing map = %+v, %v", p, err)
	}
	// Resuming after a key that was deleted continues after it.
	mustApply(t, b, &abi.Batch{Now: 8, Mutations: []abi.Mutation{{Kind: abi.OpDelete, Map: "m", Key: "k050"}}})
	p, err = b.Scan(ctx, abi.ScanRequest{Map: "m", Cursor: abi.KeyCursor("k050"), Limit: 1})
	if err != nil || len(p.Records) != 1 || p.Records[0].Key != "k051" {
		t.Fatalf("Scan after a deleted key = %+v, %v", p.Records, err)
	}
}

func TestListMaps(t *testing.T) {
	t.Parallel()
	b := openTemp(t)
	ctx := context.Background()
	batch := &abi.Batch{Now: 1}
	batch.Put("zeta", "k", false, nil, 0)
	batch.Put("alpha", "k", false, nil, 0)
	batch.Put("backup-only", "k", true, nil, 0)
	batch.Put("emptied", "k", false, nil, 0)
	mustApply(t, b, batch)
	mustApply(t, b, &abi.Batch{Now: 2, Mutations: []abi.Mutation{{Kind: abi.OpDelete, Map: "emptied", Key: "k"}}})
	maps, err := b.ListMaps(ctx)
	if want := []string{"alpha", "zeta"}; err != nil || !slices.Equal(maps, want) {
		t.Fatalf("ListMaps() = %q, %v; want %q", maps, err, want)
	}
}

func TestListExpired(t *testing.T) {
	t.Parallel()
	b := openTemp(t)
	ctx := context.Background()
	batch := &abi.Batch{Now: 1}
	batch.Put("m", "late", false, nil, 300)
	batch.Put("m", "early", false, nil, 100)
	batch.Put("m", "tie", true, nil, 200)
	batch.Put("a", "tie", false, nil, 200)
	batch.Put("m", "tie", false, nil, 200)
	batch.Put("m", "never", false, nil, 0)
	batch.Put("m", "moved", false, nil, 50)
	mustApply(t, b, batch)
	// Moving an expiration moves its index entry; clearing it removes it.
	batch = &abi.Batch{Now: 2}
	batch.Put("m", "moved", false, []byte("x"), 250)
	batch.Put("m", "late", false, nil, 0)
	mustApply(t, b, batch)

	got, err := b.ListExpired(ctx, 250, 0)
	if err != nil {
		t.Fatal(err)
	}
	type id struct {
		m, k   string
		backup bool
		exp    int64
	}
	var ids []id
	for _, r := range got {
		ids = append(ids, id{r.Map, r.Key, r.Backup, r.ExpirationTime})
		if r.Value != nil || r.CreatedAt != 1 {
			t.Errorf("expired record %+v has a value or wrong CreatedAt", r)
		}
	}
	want := []id{{"m", "early", false, 100}, {"a", "tie", false, 200}, {"m", "tie", false, 200}, {"m", "tie", true, 200}, {"m", "moved", false, 250}}
	if !slices.Equal(ids, want) {
		t.Fatalf("ListExpired(250) = %v, want %v", ids, want)
	}
	if got, err := b.ListExpired(ctx, 250, 2); err != nil || len(got) != 2 {
		t.Fatalf("ListExpired limit 2 = %d records, %v", len(got), err)
	}
	if got, err := b.ListExpired(ctx, 99, 10); err != nil || len(got) != 0 {
		t.Fatalf("ListExpired(99) = %d records, %v", len(got), err)
	}
	mustApply(t, b, &abi.Batch{Now: 3, Mutations: []abi.Mutation{{Kind: abi.OpDelete, Map: "m", Key: "early"}}})
	if got, err := b.ListExpired(ctx, 100, 10); err != nil || len(got) != 0 {
		t.Fatalf("ListExpired after delete = %d records, %v", len(got), err)
	}
}

func TestBackend_closed(t *testing.T) {
	t.Parallel()
	b := openTemp(t)
	ctx := context.Background()
	mustApply(t, b, &abi.Batch{Now: 1, Mutations: []abi.Mutation{{Kind: abi.OpPut, Map: "m", Key: "k"}}})
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	wantCode(t, b.Apply(ctx, &abi.Batch{Now: 1, Mutations: []abi.Mutation{{Kind: abi.OpPut, Map: "m", Key: "k"}}}), abi.CodeUnavailable)
	_, err := b.Get(ctx, "m", false, []string{"k"})
	wantCode(t, err, abi.CodeUnavailable)
	_, err = b.Scan(ctx, abi.ScanRequest{Map: "m"})
	wantCode(t, err, abi.CodeUnavailable)
	_, err = b.ListMaps(ctx)
	wantCode(t, err, abi.CodeUnavailable)
	_, err = b.ListExpired(ctx, 1, 1)
	wantCode(t, err, abi.CodeUnavailable)
	if b.Describe().Name != Name {
		t.Error("Describe after Close changed")
	}
	// The file is released: it opens again with its data.
	b2, err := Open(ctx, b.Path(), testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	if _, err := abi.GetOne(ctx, b2, "m", "k", false); err != nil {
		t.Fatal(err)
	}
}

// TestBackend_concurrent runs writers, readers and a Close at the same time;
// with -race it checks the locking, and every operation either works or
// reports CodeUnavailable once closed.
func TestBackend_concurrent(t *testing.T) {
	t.Parallel()
	b := openTemp(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	deadline := time.Now().Add(3 * time.Second)
	for w := range 2 {
		wg.Go(func() {
			for i := 0; i < 30 && time.Now().Before(deadline); i++ {
				batch := &abi.Batch{Now: int64(i + 1)}
				for j := range 20 {
					batch.Put(fmt.Sprintf("m%d", w), fmt.Sprintf("k%d", j), j%2 == 0, []byte{byte(i)}, int64(j))
				}
				if err := b.Apply(ctx, batch); err != nil {
					t.Errorf("Apply: %v", err)
					return
				}
			}
		})
	}
	for range 2 {
		wg.Go(func() {
			for i := 0; i < 200 && time.Now().Before(deadline); i++ {
				if _, err := b.Get(ctx, "m0", false, []string{"k1", "k3"}); err != nil {
					t.Errorf("Get: %v", err)
					return
				}
				if _, err := b.Scan(ctx, abi.ScanRequest{Map: "m1", Limit: 5}); err != nil {
					t.Errorf("Scan: %v", err)
					return
				}
				if _, err := b.ListExpired(ctx, 10, 10); err != nil {
					t.Errorf("ListExpired: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	checkConsistency(t, b)

	// Close while readers run: they see results or CodeUnavailable.
	var rg sync.WaitGroup
	for range 2 {
		rg.Go(func() {
			for i := 0; i < 1000; i++ {
				_, err := b.ListMaps(ctx)
				if err != nil {
					wantCode(t, err, abi.CodeUnavailable)
					return
				}
			}
		})
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	rg.Wait()
}

func TestBackend_reopen(t *testing.T) {
	t.Parallel()
	b := openTemp(t)
	ctx := context.Background()
	batch := &abi.Batch{Now: 5}
	batch.Put("m", "k", false, []byte("v"), 77)
	batch.Put("m", "b", true, []byte("w"), 0)
	mustApply(t, b, batch)
	b = reopen(t, b)
	r, err := abi.GetOne(ctx, b, "m", "k", false)
	if err != nil || string(r.Value) != "v" || r.ExpirationTime != 77 || r.CreatedAt != 5 {
		t.Fatalf("after reopen: %+v, %v", r, err)
	}
	if exp, err := b.ListExpired(ctx, 100, 0); err != nil || len(exp) != 1 {
		t.Fatalf("ListExpired after reopen = %v, %v", exp, err)
	}
	if _, err := abi.GetOne(ctx, b, "m", "b", true); err != nil {
		t.Fatal(err)
	}
	if _, err := abi.GetOne(ctx, b, "m", "missing", false); !errors.Is(err, abi.ErrNotFound) {
		t.Fatalf("GetOne of a missing key: %v", err)
	}
}

// A TOPGUN_REDB_PATH that is a symbolic link to a file not created yet:
// the new file's directory entry is in the target's directory, which must
// be synced for the creation to survive a power loss.
func TestOpen_createdThroughSymlinkSyncsTargetDir(t *testing.T) {
	// Not parallel: it replaces syncDir.
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	if err := os.Mkdir(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.redb")
	if err := os.Symlink(filepath.Join("data", "db.redb"), link); err != nil {
		t.Fatal(err)
	}
	var synced []string
	orig := syncDir
	syncDir = func(d string) error {
		synced = append(synced, d)
		return orig(d)
	}
	defer func() { syncDir = orig }()
	b, err := Open(context.Background(), link, testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	_ = b.Close()
	want, err := filepath.EvalSymlinks(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(synced, want) {
		t.Errorf("synced directories %q; want the target's directory %s, which holds the new file's entry", synced, want)
	}
}
