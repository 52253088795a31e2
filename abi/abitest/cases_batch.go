package abitest

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/topgun-go/topgun/abi"
)

func testBatchAtomicity(t TB, h Harness) {
	be := open(t, h)
	ctx := ctxOf(t)
	putRecs(t, be, t0,
		rec("atom", "keep", false, "old", t0+50, 0, 0),
		rec("atom", "keep", true, "old backup", 0, 0, 0),
		rec("atom", "victim", false, "victim", 0, 0, 0),
	)
	maps := []string{"atom", "fresh", "fresh2"}
	before := snapshot(t, be, maps)
	tooBig := make([]byte, abi.MaxValueBytes+1)
	put := func(m, k string, v []byte) abi.Mutation {
		return abi.Mutation{Kind: abi.OpPut, Map: m, Key: k, Value: v}
	}
	valid := put("fresh2", "last", []byte("v"))
	for _, tc := range []struct {
		name string
		now  int64
		bad  abi.Mutation
	}{
		{"empty map name", t0 + 10, put("", "k", []byte("v"))},
		{"map name too long", t0 + 10, put(strings.Repeat("m", abi.MaxMapNameBytes+1), "k", nil)},
		{"map name not UTF-8", t0 + 10, put("m\xc3", "k", nil)},
		{"NUL in map name", t0 + 10, put("m\x00n", "k", nil)},
		{"key too long", t0 + 10, put("atom", strings.Repeat("k", abi.MaxKeyBytes+1), nil)},
		{"multi-byte map name too long", t0 + 10, put(strings.Repeat("я", abi.MaxMapNameBytes/2)+"x", "k", nil)},
		{"multi-byte key too long", t0 + 10, put("atom", strings.Repeat("я", abi.MaxKeyBytes/2)+"x", nil)},
		{"key not UTF-8", t0 + 10, put("atom", "bad\xff\xfe", nil)},
		{"NUL in key", t0 + 10, put("atom", "a\x00b", nil)},
		{"value too large", t0 + 10, put("atom", "big", tooBig)},
		{"negative expiration", t0 + 10, abi.Mutation{Kind: abi.OpPut, Map: "atom", Key: "k", ExpirationTime: -1}},
		{"kind 0", t0 + 10, abi.Mutation{Kind: 0, Map: "atom", Key: "k"}},
		{"kind 3", t0 + 10, abi.Mutation{Kind: 3, Map: "atom", Key: "k"}},
		{"delete with empty map name", t0 + 10, abi.Mutation{Kind: abi.OpDelete, Key: "k"}},
		{"delete with NUL in key", t0 + 10, abi.Mutation{Kind: abi.OpDelete, Map: "atom", Key: "\x00"}},
		{"Now is 0", 0, valid},
		{"Now is negative", -t0, valid},
	} {
		b := &abi.Batch{Now: tc.now}
		b.Put("atom", "new1", false, []byte("n"), t0+1)
		b.Put("atom", "keep", false, []byte("overwritten"), 0)
		b.Delete("atom", "victim", false)
		b.Delete("atom", "keep", true)
		b.Put("fresh", "x", true, []byte("backup"), t0+2)
		b.Put("fresh2", "x", false, []byte("primary"), 0)
		b.Mutations = append(b.Mutations, tc.bad)
		err := be.Apply(ctx, b)
		if !errors.Is(err, abi.ErrInvalidArgument) {
			t.Errorf("Apply of a batch with %s = %v; want an error with CodeInvalidArgument", tc.name, err)
		}
		if d := diffState(snapshot(t, be, maps), before); d != "" {
			t.Errorf("Apply of a batch with %s changed the backend (a failed batch must apply nothing): %s", tc.name, d)
			// Later variants would only repeat this failure.
			return
		}
	}
	// A large batch whose last mutation is invalid: a backend that commits
	// a batch in chunks (of SQL statements, of a fixed-size buffer) and
	// validates each chunk on its own has applied the earlier chunks by
	// the time it finds the invalid one.
	n := abi.MaxBatchOps
	if h.Short {
		n = 4*abi.DefaultScanLimit + 1
	}
	big := &abi.Batch{Now: t0 + 10, Mutations: make([]abi.Mutation, 0, n)}
	big.Delete("atom", "victim", false)
	for i := 1; i < n-1; i++ {
		big.Put("atom", fmt.Sprintf("bulk%06d", i), i%2 == 0, []byte("b"), 0)
	}
	big.Mutations = append(big.Mutations, put("", "k", nil))
	if err := be.Apply(ctx, big); !errors.Is(err, abi.ErrInvalidArgument) {
		t.Errorf("Apply of a batch of %d mutations whose last one has an empty map name = %v; want an error with CodeInvalidArgument", n, err)
	}
	if d := diffState(snapshot(t, be, maps), before); d != "" {
		t.Errorf("Apply of a batch of %d mutations whose last one is invalid changed the backend (a failed batch must apply nothing, however large): %s", n, d)
	}
}

func testBatchLaterWins(t TB, h Harness) {
	be := open(t, h)
	putRecs(t, be, t0, rec("m", "existing", false, "old", t0+100, 0, 0))
	now := t0 + 10
	b := &abi.Batch{Now: now}
	b.Put("m", "a", false, []byte("1"), 0)
	b.Put("m", "a", false, []byte("2"), 0)
	b.Put("m", "b", false, []byte("1"), 0)
	b.Delete("m", "b", false)
	b.Delete("m", "existing", false)
	b.Put("m", "existing", false, []byte("new"), 0)
	b.Put("m", "c", false, []byte("1"), t0+5)
	b.Put("m", "c", false, []byte("2"), 0)
	b.Put("m", "d", false, []byte("x"), 0)
	b.Put("m", "d", false, []byte("y"), t0+7)
	b.Put("m", "e", true, []byte("b1"), 0)
	b.Put("m", "e", false, []byte("p1"), 0)
	b.Delete("m", "e", true)
	b.Delete("m", "f", false)
	b.Put("m", "f", false, []byte("f1"), 0)
	b.Delete("m", "f", false)
	b.Put("m", "f", false, []byte("f2"), 0)
	apply(t, be, b)
	mustHave(t, be, rec("m", "a", false, "2", 0, now, now))
	mustMiss(t, be, "m", "b", false)
	mustHave(t, be, rec("m", "c", false, "2", 0, now, now))
	mustHave(t, be, rec("m", "d", false, "y", t0+7, now, now))
	mustHave(t, be, rec("m", "e", false, "p1", 0, now, now))
	mustMiss(t, be, "m", "e", true)
	mustHave(t, be, rec("m", "f", false, "f2", 0, now, now))
	// The batch deleted "existing" and then put it again: applied in order,
	// the put is a first insert, so CreatedAt is the batch's Now.
	if r, ok := getOne(t, be, "m", "existing", false); !ok {
		t.Errorf("Get(\"m\", [\"existing\"]) found nothing after a delete then a put in one batch; the later put wins")
	} else if want := rec("m", "existing", false, "new", 0, now, now); !sameRecord(r, want) {
		t.Errorf("after a delete then a put of one key in one batch, Get = %s; want %s (mutations apply in order, so the put re-inserts the record and CreatedAt is the batch's Now)", fmtRec(r), fmtRec(want))
	}
	exp, err := listExpiredAll(ctxOf(t), be, t0+1_000)
	if err != nil {
		t.Fatalf("%v", err)
	}
	if got := keysOf(exp); !equalStrings(got, []string{"d"}) {
		t.Errorf("ListExpired keys = %s; want [\"d\"] (the last put of a key decides its expiration)", qs(got))
	}
	if got := keysOf(scanAll(t, be, "m", false, 0, 0)); !equalStrings(got, []string{"a", "c", "d", "e", "existing", "f"}) {
		t.Errorf("Scan keys = %s; want [a c d e existing f]", qs(got))
	}
	if got := scanAll(t, be, "m", true, 0, 0); len(got) != 0 {
		t.Errorf("Scan of the backup side returned %s; want nothing", fmtRec(got[0]))
	}
}

func testBatchEmpty(t TB, h Harness) {
	be := open(t, h)
	ctx := ctxOf(t)
	putRecs(t, be, t0, rec("m", "k", false, "v", 0, 0, 0))
	before := snapshot(t, be, []string{"m"})
	if err := be.Apply(ctx, &abi.Batch{Now: t0 + 1}); err != nil {
		t.Errorf("Apply of a batch without mutations = %v; want nil", err)
	}
	if err := be.Apply(ctx, nil); !errors.Is(err, abi.ErrInvalidArgument) {
		t.Errorf("Apply(nil) = %v; want an error with CodeInvalidArgument", err)
	}
	if err := be.Apply(ctx, &abi.Batch{}); !errors.Is(err, abi.ErrInvalidArgument) {
		t.Errorf("Apply of an empty batch with Now 0 = %v; want an error with CodeInvalidArgument", err)
	}
	if d := diffState(snapshot(t, be, []string{"m"}), before); d != "" {
		t.Errorf("empty batches changed the backend: %s", d)
	}
}

func testBatchLimits(t TB, h Harness) {
	be := open(t, h)
	ctx := ctxOf(t)
	putRecs(t, be, t0, rec("m", "k", false, "v", 0, 0, 0))
	before := snapshot(t, be, []string{"m"})
	b := &abi.Batch{Now: t0 + 1, Mutations: make([]abi.Mutation, 0, abi.MaxBatchOps+1)}
	b.Delete("m", "k", false)
	for i := 1; i <= abi.MaxBatchOps; i++ {
		b.Delete("m", "absent-"+strconv.Itoa(i), false)
	}
	if err := be.Apply(ctx, b); !errors.Is(err, abi.ErrInvalidArgument) {
		t.Errorf("Apply of %d mutations = %v; want an error with CodeInvalidArgument (the limit is %d)", len(b.Mutations), err, abi.MaxBatchOps)
	}
	if d := diffState(snapshot(t, be, []string{"m"}), before); d != "" {
		t.Errorf("a batch over MaxBatchOps changed the backend: %s", d)
	}
	// A large batch applies every mutation, and a get of many keys and a
	// scan with the default limit answer all of them: a backend that
	// keeps a batch, a get or a page in a fixed-size array would otherwise
	// lose records silently.
	n := abi.MaxBatchOps
	if h.Short {
		n = 4*abi.DefaultScanLimit + 1
	}
	big := &abi.Batch{Now: t0 + 1, Mutations: make([]abi.Mutation, 0, n)}
	big.Delete("m", "k", false)
	keys := make([]string, 0, n-1)
	want := make([]abi.Record, 0, n-1)
	for i := 1; i < n; i++ {
		k := fmt.Sprintf("p%06d", i)
		keys = append(keys, k)
		big.Put("big", k, false, []byte(k), 0)
		want = append(want, abi.Record{Map: "big", Key: k, Value: []byte(k), CreatedAt: t0 + 1, UpdatedAt: t0 + 1})
	}
	if err := be.Apply(ctx, big); err != nil {
		t.Fatalf("Apply of %d mutations = %v; want nil (the limit is %d)", n, err, abi.MaxBatchOps)
	}
	mustMiss(t, be, "m", "k", false)
	if d := diffRecords(get(t, be, "big", false, keys...), want); d != "" {
		t.Errorf("Get of the %d keys a batch of %d mutations put: %s (every mutation of a batch applies, and a get answers every key found)", len(keys), n, d)
	}
	if d := diffRecords(scanAll(t, be, "big", false, 0, 0), want); d != "" {
		t.Errorf("Scan of the %d records a batch of %d mutations put: %s", len(keys), n, d)
	}
}
