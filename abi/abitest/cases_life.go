package abitest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/topgun-go/topgun/abi"
)

func testListExpired(t TB, h Harness) {
	be := open(t, h)
	ctx := ctxOf(t)
	if exp, err := listExpiredAll(ctx, be, math.MaxInt64); err != nil || len(exp) != 0 {
		t.Fatalf("ListExpired of an empty backend = %d records, %v; want none", len(exp), err)
	}
	putRecs(t, be, t0,
		rec("m", "past-early", false, "v", 100, 0, 0),
		rec("m", "past", false, "v", t0-1_000, 0, 0),
		rec("m", "at-now", false, "v", t0, 0, 0),
		rec("m", "future", false, "v", t0+1_000_000, 0, 0),
		rec("m", "never", false, "v", 0, 0, 0),
		rec("m", "backup", true, "v", 200, 0, 0),
		rec("other", "p", false, "v", t0-500, 0, 0),
	)
	meta := func(m, k string, backup bool, exp int64) abi.Record {
		return abi.Record{Map: m, Key: k, Backup: backup, ExpirationTime: exp, CreatedAt: t0, UpdatedAt: t0}
	}
	pastEarly, past, atNow := meta("m", "past-early", false, 100), meta("m", "past", false, t0-1_000), meta("m", "at-now", false, t0)
	future, bk, other := meta("m", "future", false, t0+1_000_000), meta("m", "backup", true, 200), meta("other", "p", false, t0-500)
	check := func(now int64, what string, want ...abi.Record) {
		t.Helper()
		got, err := be.ListExpired(ctx, now, allExpired)
		if err != nil {
			t.Fatalf("ListExpired(now=%d) = %v; want nil", now, err)
		}
		// The records here have distinct expiration times, so the order is
		// fully determined.
		if d := diffRecords(got, want); d != "" {
			t.Errorf("ListExpired(now=%d) %s: %s (records with 0 < expiration <= now, ascending, backup included, without values)", now, what, d)
		}
	}
	check(99, "before any expiration")
	check(100, "at the first expiration", pastEarly)
	check(t0-1, "just before now", pastEarly, bk, past, other)
	check(t0, "at now", pastEarly, bk, past, other, atNow)
	check(math.MaxInt64, "at the end of time", pastEarly, bk, past, other, atNow, future)

	b := &abi.Batch{Now: t0 + 1}
	b.Put("m", "past-early", false, []byte("v2"), 0)      // no longer expires
	b.Put("m", "past", false, []byte("v2"), t0+2_000_000) // expires later
	b.Put("m", "never", false, []byte("v2"), t0-10)       // now expires
	b.Delete("other", "p", false)                         // deleted
	b.Put("m", "backup", true, []byte("v2"), 200)         // same expiration, new UpdatedAt
	apply(t, be, b)
	never := abi.Record{Map: "m", Key: "never", ExpirationTime: t0 - 10, CreatedAt: t0, UpdatedAt: t0 + 1}
	bk.UpdatedAt = t0 + 1
	check(t0, "after updates and a delete", bk, never, atNow)
	past.ExpirationTime, past.UpdatedAt = t0+2_000_000, t0+1
	check(math.MaxInt64, "at the end of time, after updates", bk, never, atNow, future, past)

	// Expirations far in the future are stored exactly: the server writes
	// 2^62 for a record whose ttlMs (any u64 from a client) would pass it,
	// and any value up to MaxInt64 is valid. A backend that keeps them in
	// a date type, a float or fewer bits fails or loses the record.
	const far = int64(1) << 62
	b = &abi.Batch{Now: t0 + 2}
	b.Put("m", "far", false, []byte("far"), far)
	b.Put("m", "max", true, []byte("max"), math.MaxInt64)
	apply(t, be, b)
	mustHave(t, be, rec("m", "far", false, "far", far, t0+2, t0+2))
	mustHave(t, be, rec("m", "max", true, "max", math.MaxInt64, t0+2, t0+2))
	farRec := abi.Record{Map: "m", Key: "far", ExpirationTime: far, CreatedAt: t0 + 2, UpdatedAt: t0 + 2}
	maxRec := abi.Record{Map: "m", Key: "max", Backup: true, ExpirationTime: math.MaxInt64, CreatedAt: t0 + 2, UpdatedAt: t0 + 2}
	check(far-1, "just before 2^62", bk, never, atNow, future, past)
	check(far, "at 2^62", bk, never, atNow, future, past, farRec)
	check(math.MaxInt64, "at the end of time, with expirations at 2^62 and MaxInt64", bk, never, atNow, future, past, farRec, maxRec)
}

func testListExpiredLimit(t TB, h Harness) {
	be := open(t, h)
	ctx := ctxOf(t)
	const n = 40
	var all []abi.Record
	b := &abi.Batch{Now: t0}
	for i := 0; i < n; i++ {
		r := abi.Record{Map: []string{"a", "b"}[i%2], Key: fmt.Sprintf("k%02d", i), Backup: i%3 == 0,
			ExpirationTime: t0 - 100 + int64(i%10), CreatedAt: t0, UpdatedAt: t0} // 4 records per time
		all = append(all, r)
		b.Put(r.Map, r.Key, r.Backup, []byte("v"), r.ExpirationTime)
	}
	b.Put("a", "future", false, []byte("v"), t0+100)
	apply(t, be, b)
	sortExpired(all)
	id := func(r abi.Record) string { return fmt.Sprintf("%q/%v/%q", r.Map, r.Backup, r.Key) }
	byID := map[string]abi.Record{}
	for _, r := range all {
		byID[id(r)] = r
	}
	for _, tc := range []struct {
		now   int64
		limit int
	}{{t0, 1}, {t0, 3}, {t0, 4}, {t0, 5}, {t0, 17}, {t0, n}, {t0, 1000}, {t0 - 100 + 4, 1000}, {t0 - 100 + 4, 7}, {t0 - 101, 10}} {
		var eligible []abi.Record
		for _, r := range all {
			if r.ExpirationTime <= tc.now {
				eligible = append(eligible, r)
			}
		}
		wantN := min(tc.limit, len(eligible))
		got, err := be.ListExpired(ctx, tc.now, tc.limit)
		if err != nil {
			t.Fatalf("ListExpired(now=%d, limit=%d) = %v; want nil", tc.now, tc.limit, err)
		}
		desc := fmt.Sprintf("ListExpired(now=%d, limit=%d)", tc.now, tc.limit)
		if len(got) != wantN {
			t.Errorf("%s returned %d records; want %d", desc, len(got), wantN)
			continue
		}
		seen := map[string]bool{}
		for i, r := range got {
			want, ok := byID[id(r)]
			switch {
			case !ok || !sameRecord(r, want):
				t.Errorf("%s returned %s, which is not an expired record", desc, fmtRec(r))
			case seen[id(r)]:
				t.Errorf("%s returned %s twice", desc, fmtRec(r))
			case r.ExpirationTime != eligible[i].ExpirationTime:
				t.Errorf("%s record %d has expiration %d; want %d (the earliest expirations first)", desc, i, r.ExpirationTime, eligible[i].ExpirationTime)
			}
			seen[id(r)] = true
		}
	}
	// A limit <= 0 means DefaultScanLimit: with more records eligible than
	// that, exactly DefaultScanLimit come back, the earliest first.
	more := &abi.Batch{Now: t0}
	for i := 0; i <= abi.DefaultScanLimit; i++ {
		more.Put("c", fmt.Sprintf("k%04d", i), i%2 == 0, nil, t0-50)
	}
	apply(t, be, more)
	for _, limit := range []int{0, -1} {
		got, err := be.ListExpired(ctx, t0, limit)
		if err != nil {
			t.Fatalf("ListExpired(now=%d, limit=%d) = %v; want nil", t0, limit, err)
		}
		if len(got) != abi.DefaultScanLimit {
			t.Errorf("ListExpired(now=%d, limit=%d) with %d records eligible returned %d; want %d (a limit <= 0 means DefaultScanLimit)", t0, limit, n+abi.DefaultScanLimit+1, len(got), abi.DefaultScanLimit)
			continue
		}
		earliest := 0
		for i, r := range got {
			if r.ExpirationTime == 0 || r.ExpirationTime > t0 || (i > 0 && r.ExpirationTime < got[i-1].ExpirationTime) {
				t.Errorf("ListExpired(now=%d, limit=%d) record %d is %s; want expired records in ascending expiration order", t0, limit, i, fmtRec(r))
				break
			}
			if r.ExpirationTime < t0-50 {
				earliest++
			}
		}
		if earliest != n {
			t.Errorf("ListExpired(now=%d, limit=%d) returned %d of the %d earliest-expiring records; want all of them (earliest first)", t0, limit, earliest, n)
		}
	}
	// A limit above DefaultScanLimit is not capped at it either.
	eligible := n + abi.DefaultScanLimit + 1
	if got, err := be.ListExpired(ctx, t0, 2*abi.DefaultScanLimit); err != nil || len(got) != eligible {
		t.Errorf("ListExpired(now=%d, limit=%d) with %d records eligible = %d records, %v; want all %d (min(limit, eligible))", t0, 2*abi.DefaultScanLimit, eligible, len(got), err, eligible)
	}
}

// opResult is the outcome of one call made by callAll.
type opResult struct {
	name     string
	err      error
	elapsed  time.Duration
	returned bool
}

// contextOps calls every I/O method of be with ctx, each in its own
// goroutine, and waits at most wait for each.
func contextOps(ctx context.Context, be abi.Backend, wait time.Duration) []opResult {
	b := &abi.Batch{Now: t0 + 5}
	b.Put("m", "new", false, []byte("v"), t0)
	b.Delete("m", "k", false)
	ops := []struct {
		name string
		f    func() error
	}{
		{"Apply", func() error { return be.Apply(ctx, b) }},
		{"Get", func() error { _, err := be.Get(ctx, "m", false, []string{"k"}); return err }},
		{"Scan", func() error { _, err := be.Scan(ctx, abi.ScanRequest{Map: "m"}); return err }},
		{"ListMaps", func() error { _, err := be.ListMaps(ctx); return err }},
		{"ListExpired", func() error { _, err := be.ListExpired(ctx, math.MaxInt64, 10); return err }},
	}
	out := make([]opResult, 0, len(ops))
	for _, op := range ops {
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- op.f() }()
		r := opResult{name: op.name}
		select {
		case r.err = <-done:
			r.returned = true
		case <-time.After(wait):
		}
		r.elapsed = time.Since(start)
		out = append(out, r)
	}
	return out
}

func testContextDone(t TB, h Harness, ctx context.Context, what string, ok func(error) bool, want string) {
	be := open(t, h)
	putRecs(t, be, t0, rec("m", "k", false, "v", t0+1, 0, 0))
	before := snapshot(t, be, []string{"m"})
	for _, r := range contextOps(ctx, be, 5*time.Second) {
		switch {
		case !r.returned:
			t.Errorf("%s with %s did not return within %v", r.name, what, r.elapsed.Round(time.Millisecond))
		case r.elapsed > time.Second:
			t.Errorf("%s with %s took %v; want a prompt return (under 1s)", r.name, what, r.elapsed.Round(time.Millisecond))
		}
		if r.returned && !ok(r.err) {
			t.Errorf("%s with %s = %v; want %s", r.name, what, r.err, want)
		}
	}
	if d := diffState(snapshot(t, be, []string{"m"}), before); d != "" {
		t.Errorf("calls with %s changed the backend: %s", what, d)
	}
}

func testContextCanceled(t TB, h Harness) {
	ctx, cancel := context.WithCancel(ctxOf(t))
	cancel()
	testContextDone(t, h, ctx, "a cancelled context", isCanceled, "an error matching context.Canceled or abi.ErrCanceled")
}

func testContextDeadline(t TB, h Harness) {
	ctx, cancel := context.WithDeadline(ctxOf(t), time.Now().Add(-time.Second))
	defer cancel()
	testContextDone(t, h, ctx, "a context past its deadline", isDeadline, "an error matching context.DeadlineExceeded or abi.ErrDeadlineExceeded")
}

func testUseAfterClose(t TB, h Harness) {
	be := open(t, h)
	putRecs(t, be, t0, rec("m", "k", false, "v", t0+1, 0, 0))
	d := be.Describe()
	if err := be.Close(); err != nil {
		t.Fatalf("Close() = %v; want nil", err)
	}
	for _, r := range contextOps(ctxOf(t), be, 5*time.Second) {
		switch {
		case !r.returned:
			t.Errorf("%s after Close did not return within %v", r.name, r.elapsed.Round(time.Millisecond))
		case !errors.Is(r.err, abi.ErrUnavailable):
			t.Errorf("%s after Close = %v; want an error with CodeUnavailable", r.name, r.err)
		}
	}
	// Calls with nothing to do fail too: a caller learns the backend is
	// closed from whatever it calls.
	ctx := ctxOf(t)
	if err := be.Apply(ctx, &abi.Batch{Now: t0 + 5}); !errors.Is(err, abi.ErrUnavailable) {
		t.Errorf("Apply of a batch without mutations after Close = %v; want an error with CodeUnavailable", err)
	}
	if _, err := be.Get(ctx, "m", false, nil); !errors.Is(err, abi.ErrUnavailable) {
		t.Errorf("Get with no keys after Close = %v; want an error with CodeUnavailable", err)
	}
	if err := be.Close(); err != nil {
		t.Errorf("second Close() = %v; want nil (Close is idempotent)", err)
	}
	if d2 := be.Describe(); d2 != d {
		t.Errorf("Describe() after Close = %+v; want %+v (Describe stays valid)", d2, d)
	}
}

func testDurability(t TB, h Harness) {
	if h.Reopen == nil {
		t.Skipf("Harness.Reopen is nil: durability is not tested (set Reopen for a backend that declares CapDurable)")
	}
	be := open(t, h)
	d := be.Describe()
	if !d.Capabilities.Has(abi.CapDurable) {
		t.Skipf("the backend does not declare CapDurable")
	}
	longMap := strings.Repeat("я", abi.MaxMapNameBytes/2)
	maps := []string{"m", "ключ/😀", "gone", "backup-only", longMap}
	b := &abi.Batch{Now: t0}
	b.Put("m", "a", false, []byte("a1"), 0)
	b.Put("m", "b", false, []byte("b1"), t0+10)
	b.Put("m", "c", false, nil, t0-5)
	b.Put("m", "big", false, pattern(100<<10, 7), 0)
	b.Put("m", "a", true, []byte("a backup"), 300)
	b.Put("ключ/😀", "", false, []byte("empty key"), 0)
	b.Put("gone", "x", false, []byte("x"), 50)
	b.Put("backup-only", "x", true, []byte("x"), 0)
	b.Put(longMap, strings.Repeat("k", abi.MaxKeyBytes), false, []byte("long"), 0)
	apply(t, be, b)
	b = &abi.Batch{Now: t0 + 10}
	b.Put("m", "a", false, []byte("a2"), t0+20) // overwrite: CreatedAt t0, UpdatedAt t0+10
	b.Delete("m", "b", false)
	b.Delete("gone", "x", false)
	apply(t, be, b)
	// One record written several times in a batch: what storage keeps
	// (a log replayed at open, say) must apply the mutations in order.
	b = &abi.Batch{Now: t0 + 15}
	b.Put("m", "c", false, []byte("c2"), 0)
	b.Delete("m", "c", false) // put then delete: gone
	b.Put("m", "tmp", false, []byte("t"), t0+1)
	b.Delete("m", "tmp", false) // a new record put then deleted: never there
	b.Delete("m", "big", false)
	b.Put("m", "big", false, []byte("big2"), 0) // delete then put: CreatedAt t0+15
	b.Put("m", "twice", false, []byte("1"), t0+1)
	b.Put("m", "twice", false, []byte("2"), 0) // the later put wins
	b.Put("m", "a", true, []byte("a backup 2"), 0)
	b.Delete("m", "a", true)
	b.Put("m", "a", true, []byte("a backup 3"), 400)
	apply(t, be, b)
	bad := &abi.Batch{Now: t0 + 20}
	bad.Put("m", "never", false, []byte("x"), 0)
	bad.Put("", "invalid", false, nil, 0)
	if err := be.Apply(ctxOf(t), bad); !errors.Is(err, abi.ErrInvalidArgument) {
		t.Fatalf("Apply of an invalid batch = %v; want an error with CodeInvalidArgument", err)
	}
	before := snapshot(t, be, maps)
	be = reopen(t, h, be)
	if d2 := be.Describe(); d2.Name != d.Name || d2.Capabilities != d.Capabilities {
		t.Errorf("Describe() after Reopen = %+v; want %+v", d2, d)
	}
	if diff := diffState(snapshot(t, be, maps), before); diff != "" {
		t.Fatalf("after Reopen the backend differs from before: %s", diff)
	}
	mustMiss(t, be, "m", "never", false)
	// Writes after a reopen build on the reopened state.
	putRecs(t, be, t0+30, rec("m", "a", false, "a3", 0, 0, 0), rec("m", "new", false, "n", 0, 0, 0))
	mustHave(t, be, rec("m", "a", false, "a3", 0, t0, t0+30))
	before = snapshot(t, be, maps)
	be = reopen(t, h, be)
	if diff := diffState(snapshot(t, be, maps), before); diff != "" {
		t.Errorf("after a second Reopen the backend differs from before: %s", diff)
	}
}

func testConcurrency(t TB, h Harness) {
	be := open(t, h)
	writers, batches, readers := 16, 40, 2
	if h.Short {
		writers, batches = 4, 15
	}
	const ownKeys, sharedKeys = 10, 8
	ctx, cancel := context.WithTimeout(ctxOf(t), 2*time.Minute)
	defer cancel()
	shared := make([]string, sharedKeys)
	for i := range shared {
		shared[i] = fmt.Sprintf("shared/%d", i)
	}
	start, writersDone := make(chan struct{}), make(chan struct{})
	errs := make(chan error, writers+readers)
	for g := 0; g < writers; g++ {
		go func() {
			<-start
			for i := 0; i < batches; i++ {
				v := []byte(fmt.Sprintf("%d:%d", g, i))
				b := &abi.Batch{Now: t0 + int64(i) + 1}
				b.Put("conc", fmt.Sprintf("w%02d/k%d", g, i%ownKeys), false, v, 0)
				// Every batch writes every shared key, in the same order,
				// with the same value: atomic batches leave them equal.
				for _, k := range shared {
					b.Put("conc", k, false, v, 0)
				}
				if i%2 == 0 {
					b.Put("conc", fmt.Sprintf("w%02d/tmp", g), true, v, t0)
				} else {
					b.Delete("conc", fmt.Sprintf("w%02d/tmp", g), true)
				}
				if err := be.Apply(ctx, b); err != nil {
					errs <- fmt.Errorf("writer %d batch %d: Apply = %v; want nil", g, i, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for r := 0; r < readers; r++ {
		go func() {
			<-start
			for i := 0; i < 100_000; i++ {
				select {
				case <-writersDone:
					errs <- nil
					return
				default:
				}
				recs, err := be.Get(ctx, "conc", false, shared)
				if err != nil {
					errs <- fmt.Errorf("reader %d: Get = %v; want nil", r, err)
					return
				}
				if len(recs) != 0 && len(recs) != sharedKeys {
					errs <- fmt.Errorf("reader %d: one Get saw %d of the %d shared keys, which are always written together; a batch must be visible all at once", r, len(recs), sharedKeys)
					return
				}
				for j := 1; j < len(recs); j++ {
					if rc := recs[j]; string(rc.Value) != string(recs[0].Value) {
						errs <- fmt.Errorf("reader %d: one Get saw shared keys from different batches (%s and %s); a batch must be visible all at once", r, fmtRec(recs[0]), fmtRec(rc))
						return
					}
				}
				if i%8 != 0 {
					continue // mostly Gets: they are what can see a torn batch
				}
				if _, err := scanChecked(ctx, be, "conc", false, scanOpts{limit: 7, maxPages: 1000}); err != nil {
					errs <- fmt.Errorf("reader %d: %v", r, err)
					return
				}
				if _, err := be.ListMaps(ctx); err != nil {
					errs <- fmt.Errorf("reader %d: ListMaps = %v; want nil", r, err)
					return
				}
			}
			errs <- nil
		}()
	}
	close(start) // all goroutines start together, so that their calls overlap
	for g := 0; g < writers; g++ {
		if err := <-errs; err != nil {
			t.Errorf("%v", err)
		}
	}
	close(writersDone)
	for r := 0; r < readers; r++ {
		if err := <-errs; err != nil {
			t.Errorf("%v", err)
		}
	}
	if t.Failed() {
		return
	}
	// Each writer's own keys hold its last write of each.
	for g := 0; g < writers; g++ {
		for j := 0; j < ownKeys && j < batches; j++ {
			last := batches - 1 - ((batches - 1 - j) % ownKeys)
			mustHave(t, be, rec("conc", fmt.Sprintf("w%02d/k%d", g, j), false, fmt.Sprintf("%d:%d", g, last), 0, t0+int64(j)+1, t0+int64(last)+1))
		}
		if batches%2 == 0 {
			mustMiss(t, be, "conc", fmt.Sprintf("w%02d/tmp", g), true)
		}
	}
	// The shared keys all hold the value of one writer's last batch.
	recs := get(t, be, "conc", false, shared...)
	if len(recs) != sharedKeys {
		t.Fatalf("Get of the shared keys returned %d records; want %d", len(recs), sharedKeys)
	}
	var g, i int
	if _, err := fmt.Sscanf(string(recs[0].Value), "%d:%d", &g, &i); err != nil || i != batches-1 {
		t.Errorf("shared key holds %s; want the value of some writer's last batch (\"<writer>:%d\")", fmtRec(recs[0]), batches-1)
	}
	for _, r := range recs[1:] {
		if string(r.Value) != string(recs[0].Value) {
			t.Errorf("shared keys hold values of different batches: %s and %s; concurrent batches must each apply as a whole", fmtRec(recs[0]), fmtRec(r))
		}
	}
	all := scanAll(t, be, "conc", false, 0, 0)
	if want := writers*min(ownKeys, batches) + sharedKeys; len(all) != want {
		t.Errorf("Scan after the concurrent writes returned %d records; want %d", len(all), want)
	}
	if !sort.SliceIsSorted(all, func(i, j int) bool { return all[i].Key < all[j].Key }) {
		t.Errorf("Scan after the concurrent writes is not in key order")
	}
}
