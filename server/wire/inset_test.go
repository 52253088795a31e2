package wire

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// edgeValue draws from values where equality is subtle: integers and floats
// that compare equal across kinds, integers beyond 2^53 that round to the
// same float64, NaN, -0, other Go numeric kinds, and non-scalars.
func edgeValue(r *rand.Rand) any {
	const p53 = 1 << 53
	pool := []any{
		nil, true, false, "", "a", "b", "1",
		int64(0), int64(1), int64(-1), 0.0, math.Copysign(0, -1), 1.0, -1.0, 1.5, math.NaN(),
		math.Inf(1), math.Inf(-1),
		int64(p53), int64(p53 + 1), int64(p53 + 2), int64(-p53 - 1), float64(p53), float64(p53 + 2), -float64(p53),
		int64(math.MaxInt64), int64(math.MinInt64), float64(math.MaxInt64), float64(math.MinInt64),
		uint64(math.MaxUint64), uint64(math.MaxUint64 - 1), float64(math.MaxUint64), uint64(1) << 63,
		int32(5), int64(5), float32(5), uint8(5), 5.0, int(7), int64(7),
		[]byte{1}, []byte{}, []any{int64(1)}, []any{1.0}, map[string]any{"a": int64(1)}, map[string]any{"a": 1.0},
		[]any(nil),
		"\xff", []byte{0xff}, "a\xff", []byte("a\xff"), []byte("a"), []any{"\xff"}, []any{[]byte{0xff}},
	}
	if r.IntN(4) == 0 {
		return int64(r.IntN(40) - 20)
	}
	if r.IntN(4) == 0 {
		return float64(r.IntN(40)-20) / 2
	}
	return pool[r.IntN(len(pool))]
}

// A valueSet answers exactly what the scan it replaces answers, on random
// lists of scalars and non-scalars with every subtle equality case.
func TestValueSet_containsEqualsLinearScan(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 7))
	for i := 0; i < 3000; i++ {
		list := make([]any, r.IntN(60))
		for j := range list {
			list[j] = edgeValue(r)
		}
		set := newValueSet(list)
		for k := 0; k < 40; k++ {
			v := edgeValue(r)
			want := slices.ContainsFunc(list, func(x any) bool { return valuesEqual(v, x) })
			if got := set.contains(v); got != want {
				t.Fatalf("seed %d: contains(%#v) = %v, scan says %v; list %#v", seed, v, got, want, list)
			}
		}
	}
}

// in, $in and $nin give the same results with and without their sets, and
// long lists get a set: from Compile for a Where clause, on first use for a
// predicate node.
func TestQuery_Match_inUsesSet(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	list := make([]any, 500)
	for i := range list {
		list[i] = edgeValue(r)
	}
	for _, op := range []string{"$in", "$nin"} {
		q := &Query{Where: map[string]any{"v": map[string]any{op: list}}}
		plain := *q
		q.Compile()
		if len(q.sets) != 1 {
			t.Fatalf("%s: Compile built %d sets, want 1", op, len(q.sets))
		}
		p := leaf(OpIn, "v", list)
		for i := 0; i < 2000; i++ {
			rec := map[string]any{"v": edgeValue(r)}
			want := plain.Match(rec) // no sets: the scan
			if got := q.Match(rec); got != want {
				t.Fatalf("%s %#v: compiled %v, scan %v", op, rec["v"], got, want)
			}
			if op == "$in" && p.Eval(rec, nil) != want {
				t.Fatalf("in %#v: predicate %v, scan %v", rec["v"], !want, want)
			}
		}
		if op == "$in" && p.set.Load() == nil {
			t.Error("the in predicate built no set")
		}
	}
	// A new list in the node is seen, not the old set.
	p := leaf(OpIn, "v", []any{"x", "y", "z", "w", "a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9", "b1", "b2", "b3"})
	if !p.Eval(map[string]any{"v": "x"}, nil) {
		t.Fatal("x not in the list")
	}
	p.Value = []any{"q", "y", "z", "w", "a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9", "b1", "b2", "b3"}
	if p.Eval(map[string]any{"v": "x"}, nil) || !p.Eval(map[string]any{"v": "q"}, nil) {
		t.Error("a replaced in list was not used")
	}
}

// BenchmarkQuery_Match_in matches one record against a $in list of 1M
// integers (a 2 MiB frame holds about 2M), compiled (hash set) and not
// (the linear scan it replaces, the baseline in the same run).
func BenchmarkQuery_Match_in(b *testing.B) {
	for _, n := range []int{16, 1000, 1_000_000} {
		list := make([]any, n)
		for i := range list {
			list[i] = int64(i * 2)
		}
		rec := map[string]any{"v": int64(-1)} // absent: the worst case of a scan
		q := &Query{Where: map[string]any{"v": map[string]any{"$in": list}}}
		b.Run(fmt.Sprintf("n=%d/scan", n), func(b *testing.B) {
			for b.Loop() {
				q.Match(rec)
			}
		})
		q.Compile()
		b.Run(fmt.Sprintf("n=%d/set", n), func(b *testing.B) {
			for b.Loop() {
				q.Match(rec)
			}
		})
	}
}
