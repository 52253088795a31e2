package wire

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// pairwiseContains is containsAll/containsAny as valuesEqual defines them:
// every element of one list compared with every element of the other.
func pairwiseContains(have, want []any, all bool) bool {
	contains := func(x any) bool {
		return slices.ContainsFunc(have, func(h any) bool { return valuesEqual(h, x) })
	}
	if all {
		for _, w := range want {
			if !contains(w) {
				return false
			}
		}
		return true
	}
	return slices.ContainsFunc(want, contains)
}

// indexedContains is containsMatch on its indexed path whatever the sizes.
func indexedContains(have, want []any, all bool) bool {
	return containsEach(want, all, newContainsIndex(have).contains)
}

// containsAtoms are numbers where valuesEqual is subtle (across kinds,
// beyond 2^53 where it is not transitive, NaN, -0, infinities) and the
// other scalar kinds.
var containsAtoms = func() []any {
	const p53, p60 = 1 << 53, 1 << 60
	return []any{
		nil, true, false, "", "a", "b", []byte{}, []byte("a"), []byte(nil),
		int64(0), 0.0, math.Copysign(0, -1), int64(1), 1.0, float32(1), uint8(1), -1.0, 1.5, math.NaN(),
		math.Inf(1), math.Inf(-1),
		int64(p53 - 1), int64(p53), int64(p53 + 1), int64(p53 + 2), float64(p53), float64(p53 + 2),
		int64(-p53), int64(-p53 - 1), -float64(p53),
		int64(p60), int64(p60 + 1), int64(p60 + 2), int64(p60 + 255), uint64(p60 + 1), float64(p60), float64(p60 + 256),
		int64(-p60 - 1), -float64(p60),
		int64(math.MaxInt64), int64(math.MaxInt64 - 1), uint64(1 << 63), uint64(1<<63 + 1), float64(1 << 63),
		int64(math.MinInt64), int64(math.MinInt64 + 1), float64(math.MinInt64),
		uint64(math.MaxUint64), uint64(math.MaxUint64 - 1), float64(math.MaxUint64),
		struct{}{}, []string{"a"}, // outside the value model: equal to nothing
		// A string that is not valid UTF-8 equals its bytes.
		"\xff", []byte{0xff}, "a\xff", []byte("a\xff"),
	}
}()

// containsNear are numbers around 2^53 and 2^60 that valuesEqual
// finds equal across kinds but not always within one.
var containsNear = []any{
	int64(1<<53 - 1), int64(1 << 53), int64(1<<53 + 1), float64(1 << 53), -float64(1 << 53), int64(-1<<53 - 1),
	int64(1 << 60), int64(1<<60 + 1), float64(1 << 60), uint64(1<<60 + 1),
}

// genValue builds a value from a byte source: atoms, small numbers,
// arrays and maps of them, and arrays nested around maxEvalDepth.
func genValue(next func() byte, depth int) any {
	switch k := next() % 16; {
	case k < 3:
		return containsNear[int(next())%len(containsNear)]
	case k < 6:
		return containsAtoms[int(next())%len(containsAtoms)]
	case k < 8:
		return int64(next()%8) - 4
	case k == 8:
		return float64(int(next()%8)-4) / 2
	case k < 12 && depth < 4:
		a := make([]any, next()%4)
		for i := range a {
			a[i] = genValue(next, depth+1)
		}
		return a
	case k < 15 && depth < 4:
		m := map[string]any{}
		for _, key := range []string{"a", "b", "c"} {
			if next()%2 == 0 {
				m[key] = genValue(next, depth+1)
			}
		}
		return m
	case k == 15 && depth == 0:
		// Nested so that a comparison reaches depth maxEvalDepth-2 to
		// maxEvalDepth+2, around an atom or an empty array.
		var v any = []any{}
		if next()%2 == 0 {
			v = int64(1)
		}
		for range maxEvalDepth - 2 + int(next()%5) {
			v = []any{v}
		}
		return v
	}
	return int64(next() % 3)
}

// genLists draws two lists from a small pool of values and fresh ones, so
// that equal elements, repeats and near misses are common.
func genLists(next func() byte) (a, b []any) {
	pool := make([]any, 1+next()%12)
	for i := range pool {
		pool[i] = genValue(next, 0)
	}
	list := func() []any {
		l := make([]any, next()%40)
		for i := range l {
			var v any
			if next()%4 == 0 {
				v = genValue(next, 0)
			} else {
				v = pool[int(next())%len(pool)]
			}
			// Scalars are looked up in a valueSet, the rest by hash.
			switch next() % 6 {
			case 0, 1:
				v = []any{v}
			case 2:
				v = map[string]any{"a": v}
			}
			l[i] = v
		}
		return l
	}
	return list(), list()
}

func checkContains(t *testing.T, a, b []any) {
	t.Helper()
	for _, lists := range [][2][]any{{a, b}, {b, a}} {
		have, want := lists[0], lists[1]
		ix := newContainsIndex(have)
		for _, w := range want {
			exp := slices.ContainsFunc(have, func(h any) bool { return valuesEqual(h, w) })
			if got := ix.contains(w); got != exp {
				t.Fatalf("contains(%v): indexed %v, pairwise %v\nhave %v", w, got, exp, have)
			}
		}
		for _, all := range []bool{false, true} {
			exp := pairwiseContains(have, want, all)
			if got := indexedContains(have, want, all); got != exp {
				t.Fatalf("all=%v: indexed %v, pairwise %v\nhave %v\nwant %v", all, got, exp, have, want)
			}
			if got := containsMatch(have, want, all); got != exp {
				t.Fatalf("all=%v: containsMatch %v, pairwise %v\nhave %v\nwant %v", all, got, exp, have, want)
			}
		}
	}
}

// The index answers what comparing every pair answers, for both ops and
// both orders, on lists with every subtle case of valuesEqual.
func TestContainsMatch_equalsPairwise(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 11))
	next := func() byte { return byte(r.Uint32()) }
	for range 3000 {
		a, b := genLists(next)
		checkContains(t, a, b)
	}
}

func FuzzContainsMatch(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{3, 20, 0, 5, 1, 9, 2, 4, 1, 0, 3, 30, 7, 7, 7, 1, 2})
	f.Add([]byte{5, 1, 33, 1, 34, 1, 36, 1, 38, 20, 1, 0, 1, 1, 1, 2, 1, 3, 20, 1, 0, 1, 1, 1, 2, 1, 3})
	f.Add([]byte{2, 15, 0, 2, 15, 1, 4, 8, 1, 0, 1, 1, 1, 0, 8, 0, 1, 0, 1, 1, 1, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		i := 0
		next := func() byte {
			if i >= len(data) {
				return 0
			}
			i++
			return data[i-1]
		}
		a, b := genLists(next)
		checkContains(t, a, b)
	})
}

// containsRecord is the record of two lists a and b the predicate
// compares, both read from it (ValueRef data.b).
func containsRecord(a, b []any) map[string]any { return map[string]any{"a": a, "b": b} }

// Matching two long lists read from the record (ValueRef) does not compare
// every pair: the 20000 x 20000 case made 4e8 comparisons (4 s) for a
// query of Cost 1. Repeats on both sides, and near misses between integers
// beyond 2^53 that round to the same float64, cost no more.
func TestContainsMatch_notQuadratic(t *testing.T) {
	const n = 20000
	list := func(f func(i int) any) []any {
		l := make([]any, n)
		for i := range l {
			l[i] = f(i)
		}
		return l
	}
	const p60, p63 = 1 << 60, uint64(1) << 63
	for _, c := range []struct {
		name     string
		a, b     []any
		any, all bool
	}{
		{"ints", list(func(i int) any { return int64(i) }), list(func(i int) any { return int64(n + i) }), false, false},
		{"ints and floats", list(func(i int) any { return int64(i) }), list(func(i int) any { return float64(n - 1 - i) }), true, true},
		{"strings", list(func(i int) any { return fmt.Sprint(i) }), list(func(i int) any { return fmt.Sprint(-i - 1) }), false, false},
		{"arrays", list(func(i int) any { return []any{int64(i), "x"} }), list(func(i int) any { return []any{float64(i), "y"} }), false, false},
		{"maps", list(func(i int) any { return map[string]any{"k": int64(i), "s": "v"} }),
			list(func(i int) any { return map[string]any{"s": "v", "k": float64(n - 1 - i)} }), true, true},
		{"repeats", list(func(int) any { return []any{int64(1), "x"} }), list(func(int) any { return []any{int64(1), "y"} }), false, false},
		{"repeats equal", list(func(int) any { return []any{int64(1), "x"} }), list(func(int) any { return []any{1.0, "x"} }), true, true},
		{"big ints", list(func(i int) any { return []any{int64(p60 + i*1024)} }),
			list(func(i int) any { return []any{int64(p60 + i*1024 + 1)} }), false, false},
		{"big repeats", list(func(int) any { return []any{int64(p60 + 1)} }), list(func(int) any { return []any{int64(p60 + 2)} }), false, false},
		{"big float repeats", list(func(int) any { return []any{int64(p60 + 1)} }), list(func(int) any { return []any{float64(p60 + 1024)} }), false, false},
		// Distinct integers that all round to 2^63, against others or
		// against one float repeated.
		{"big ints one image", list(func(i int) any { return []any{p63 + uint64(i%1000), p63 + uint64(i/1000)} }),
			list(func(i int) any { return []any{p63 + uint64(i%1000), p63 + 20 + uint64(i/1000)} }), false, false},
		{"big repeats one image", list(func(int) any { return []any{p63 + 1, float64(p63), p63 + 1} }),
			list(func(i int) any { return []any{p63 + 2 + uint64(i%1000), float64(p63), p63 + 2 + uint64(i/1000)} }), false, false},
		{"big float one image", list(func(i int) any { return []any{p63 + uint64(i%1000), p63 + uint64(i/1000)} }),
			list(func(i int) any { return []any{float64(p63), p63 + 500} }), false, false},
	} {
		rec := containsRecord(c.a, c.b)
		for _, op := range []PredicateOp{OpContainsAny, OpContainsAll} {
			p := &Predicate{Op: op, Attribute: "a", ValueRef: "data.b"}
			before := containsCompares.Load()
			got := p.Eval(rec, nil)
			compares := containsCompares.Load() - before
			want := c.any
			if op == OpContainsAll {
				want = c.all
			}
			if got != want {
				t.Errorf("%s %v: %v, want %v", c.name, op, got, want)
			}
			if compares > 3*n {
				t.Errorf("%s %v: %d comparisons of elements, want at most %d", c.name, op, compares, 3*n)
			}
		}
	}
}
