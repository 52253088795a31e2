package wire

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// refPatternsFor returns n distinct short patterns of op, such as records
// holding per-record rules carry.
func refPatternsFor(op PredicateOp, n int) []string {
	pats := make([]string, n)
	for i := range pats {
		if op == OpLike {
			pats[i] = fmt.Sprintf("user-%d%%", i)
		} else {
			pats[i] = fmt.Sprintf(`^user-%d\d*$`, i)
		}
	}
	return pats
}

// checkRefCache fails unless what p keeps is within both bounds and its
// map and list agree.
func checkRefCache(t *testing.T, p *Predicate) {
	t.Helper()
	cur := p.refs.Load()
	if cur == nil {
		return
	}
	total := 0
	for _, c := range cur.order {
		total += c.cost
		if cur.byPattern[c.pattern] != c {
			t.Fatalf("pattern %q is in the cache's list but not its map", c.pattern)
		}
	}
	if len(cur.order) > refPatternCache || len(cur.byPattern) != len(cur.order) {
		t.Fatalf("cache keeps %d patterns (map %d), want at most %d", len(cur.order), len(cur.byPattern), refPatternCache)
	}
	if total > refCacheBytes {
		t.Fatalf("cache keeps %d bytes of patterns, want at most refCacheBytes (%d)", total, refCacheBytes)
	}
	if held := heldRefPatterns(p); held > refCacheBytes {
		t.Fatalf("cache holds %d bytes of compiled patterns, over what CompileLimit counts (%d)", held, refCacheBytes)
	}
}

// A like/regex leaf with a ValueRef reads its pattern from each record.
// It kept only the last four it compiled, so records cycling through 16
// patterns (rules stored with the data) compiled one per record. It now
// keeps up to refPatternCache of them within refCacheBytes: each of the 16
// compiles once, a stream of new patterns or of large ones stays within
// both bounds, and every record matches as with a freshly compiled
// pattern. Not parallel: it counts compilations process-wide.
func TestPredicate_Eval_valueRefPatternCache(t *testing.T) {
	texts := []string{"user-3", "user-31", "USER-3x", "user-", "x"}

	// want gives the result of each (pattern, text) with a pattern
	// compiled for it alone, before compilations are counted.
	want := func(op PredicateOp, pats []string) map[[2]string]bool {
		w := map[[2]string]bool{}
		for _, pat := range pats {
			m := compilePattern(op, pat)
			for _, s := range texts {
				w[[2]string{pat, s}] = m != nil && m.MatchString(s)
			}
		}
		return w
	}
	run := func(t *testing.T, p *Predicate, pats []string, records int, w map[[2]string]bool) {
		t.Helper()
		for i := range records {
			pat, s := pats[i%len(pats)], texts[i%len(texts)]
			if got := p.Eval(map[string]any{"s": s, "p": pat}, nil); got != w[[2]string{pat, s}] {
				t.Fatalf("%s %q on %q = %v, want %v", p.Op, pat, s, got, !got)
			}
			checkRefCache(t, p)
		}
	}

	t.Run("sixteen patterns compile once each", func(t *testing.T) {
		for _, op := range []PredicateOp{OpRegex, OpLike} {
			pats := refPatternsFor(op, 16)
			w := want(op, pats)
			p := &Predicate{Op: op, Attribute: "s", ValueRef: "data.p"}
			before := patternCompiles.Load()
			run(t, p, pats, 10*len(pats), w)
			if got := patternCompiles.Load() - before; got != uint64(len(pats)) {
				t.Errorf("%s: %d records cycling through %d patterns compiled %d times, want %d", op, 10*len(pats), len(pats), got, len(pats))
			}
		}
	})

	t.Run("a stream of new patterns stays within the count", func(t *testing.T) {
		for _, op := range []PredicateOp{OpRegex, OpLike} {
			pats := refPatternsFor(op, 10*refPatternCache)
			if op == OpRegex {
				for i := range pats { // small enough that the count binds first
					pats[i] = fmt.Sprintf("^user-%d", i)
				}
			}
			p := &Predicate{Op: op, Attribute: "s", ValueRef: "data.p"}
			run(t, p, pats, len(pats), want(op, pats))
			if n := len(p.refs.Load().order); n != refPatternCache {
				t.Errorf("%s: cache keeps %d short patterns after %d distinct ones, want %d", op, n, len(pats), refPatternCache)
			}
		}
	})

	t.Run("large patterns stay within the bytes", func(t *testing.T) {
		// \w compiles to about 14 KB of rune ranges: four fit.
		pats := make([]string, 16)
		for i := range pats {
			pats[i] = fmt.Sprintf(`^\w+-%d`, i)
		}
		p := &Predicate{Op: OpRegex, Attribute: "s", ValueRef: "data.p"}
		run(t, p, pats, 3*len(pats), want(OpRegex, pats))
		if n := len(p.refs.Load().order); n < 2 || n > 5 {
			t.Errorf("cache keeps %d patterns holding \\w, want the 2 to 5 that fit in %d bytes", n, refCacheBytes)
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		// More patterns than the cache keeps, so entries come and go
		// while other goroutines read them.
		pats := refPatternsFor(OpRegex, refPatternCache+8)
		w := want(OpRegex, pats)
		p := &Predicate{Op: OpRegex, Attribute: "s", ValueRef: "data.p"}
		var wg sync.WaitGroup
		errs := make(chan string, 4)
		for g := range 4 {
			wg.Go(func() {
				for i := range 4 * len(pats) {
					pat, s := pats[(i+g*7)%len(pats)], texts[i%len(texts)]
					if got := p.Eval(map[string]any{"s": s, "p": pat}, nil); got != w[[2]string{pat, s}] {
						errs <- fmt.Sprintf("%q on %q = %v", pat, s, got)
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Error(e)
		}
		checkRefCache(t, p)
	})

	t.Run("a pattern kept for another op is not reused", func(t *testing.T) {
		p := &Predicate{Op: OpRegex, Attribute: "s", ValueRef: "data.p"}
		rec := map[string]any{"s": "AB", "p": "a_"}
		if p.Eval(rec, nil) {
			t.Fatal(`regex "a_" matched "AB"`)
		}
		p.Op = OpLike
		if !p.Eval(rec, nil) {
			t.Fatal(`like "a_" did not match "AB" after the node's op changed`)
		}
		checkRefCache(t, p)
		if n := len(p.refs.Load().order); n != 1 {
			t.Errorf("cache keeps %d entries for one pattern, want 1", n)
		}
	})
}

// BenchmarkPredicate_Eval_valueRef matches records whose regex pattern is
// read from the record (ValueRef), cycling through 16 distinct patterns,
// against the baseline of one pattern shared by every record, measured in
// the same run. Kept four at a time, 16 compiled one per record
// (compiles/op 1, about 100 times the baseline's ns/op); kept 32 at a
// time, each compiles once. 64 patterns, more than the cache keeps, are
// the worst case: a compilation per record, as before.
func BenchmarkPredicate_Eval_valueRef(b *testing.B) {
	for _, n := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("patterns=%d", n), func(b *testing.B) {
			pats := refPatternsFor(OpRegex, n)
			recs := make([]map[string]any, len(pats))
			for i, pat := range pats {
				recs[i] = map[string]any{"s": "user-" + strings.Repeat("7", 8), "p": pat}
			}
			p := &Predicate{Op: OpRegex, Attribute: "s", ValueRef: "data.p"}
			before := patternCompiles.Load()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				p.Eval(recs[i%len(recs)], nil)
				i++
			}
			b.ReportMetric(float64(patternCompiles.Load()-before)/float64(i), "compiles/op")
		})
	}
}
