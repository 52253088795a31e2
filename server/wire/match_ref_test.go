package wire

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// A like/regex leaf whose pattern is read from the record (ValueRef) can
// meet a different pattern in every record. Before, the node cached only
// the last pattern, so records alternating between two patterns compiled
// one per record, and a hostile 4 KB pattern (\w repeated) took ~70 MB of
// allocation and a tenth of a second to compile, per record. Now a node
// keeps a few recent patterns, and a regex that would compile to more
// than MaxRefPatternSize matches nothing, refused before the work of
// compiling it. Not parallel: it counts compilations and allocations
// process-wide.
func TestPredicate_Eval_valueRefPatternBounded(t *testing.T) {
	t.Run("few patterns compile once", func(t *testing.T) {
		for _, op := range []PredicateOp{OpRegex, OpLike} {
			p := &Predicate{Op: op, Attribute: "s", ValueRef: "data.p"}
			pats := []string{"^a", "b%", "c", "^d"}
			if op == OpLike {
				pats = []string{"a%", "%b", "c_", "d"}
			}
			before := patternCompiles.Load()
			for i := range 40 {
				pat := pats[i%len(pats)]
				rec := map[string]any{"s": "xx", "p": pat}
				if p.Eval(rec, nil) {
					t.Fatalf("%s %q matched xx", op, pat)
				}
			}
			if got := patternCompiles.Load() - before; got != uint64(len(pats)) {
				t.Errorf("%s: 40 records taking turns with %d patterns compiled %d times, want %d", op, len(pats), got, len(pats))
			}
		}
	})

	t.Run("hostile patterns bounded", func(t *testing.T) {
		hostile := map[string]string{
			`\w repeated`:      strings.Repeat(`\w`, 2040),
			`\pL repeated`:     strings.Repeat(`\pL`, 1360),
			`a{1000} repeated`: strings.Repeat(`a{1000}`, 580),
		}
		p := &Predicate{Op: OpRegex, Attribute: "s", ValueRef: "data.p"}
		for name, pat := range hostile {
			const records = 6
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			before := ms.TotalAlloc
			for i := range records {
				// A different pattern in each record: no cache helps.
				rec := map[string]any{"s": "abc", "p": pat + fmt.Sprintf("x%d", i)}
				if p.Eval(rec, nil) {
					t.Errorf("%s: matched, want no match for a pattern over MaxRefPatternSize", name)
				}
			}
			runtime.ReadMemStats(&ms)
			// Translating a 4 KB pattern may take a few hundred KB; compiling
			// one took 20 to 70 MB.
			if per := (ms.TotalAlloc - before) / records; per > 2<<20 {
				t.Errorf("%s: %d bytes allocated per record, want at most 2 MiB", name, per)
			}
		}
	})

	t.Run("ordinary patterns keep their meaning", func(t *testing.T) {
		email := `^\w+([.-]?\w+)*@\w+([.-]?\w+)*(\.\w{2,3})+$`
		cases := []struct {
			op     PredicateOp
			pat, s string
			want   bool
		}{
			{OpRegex, email, "jane.doe@example.com", true},
			{OpRegex, email, "jane.doe@", false},
			{OpRegex, `\d{3}-\d{4}`, "call 555-1234", true},
			{OpRegex, strings.Repeat("a", 1000), strings.Repeat("a", 1000), true},
			{OpRegex, `(?i)ÉTÉ`, "un été", true},
			{OpLike, strings.Repeat("%a", 2000), strings.Repeat("a", 2000), true},
			{OpLike, "j_ne%", "JANE DOE", true},
		}
		for _, c := range cases {
			p := &Predicate{Op: c.op, Attribute: "s", ValueRef: "data.p"}
			if got := p.Eval(map[string]any{"s": c.s, "p": c.pat}, nil); got != c.want {
				t.Errorf("%s %.40q on %.40q = %v, want %v", c.op, c.pat, c.s, got, c.want)
			}
			// The same pattern as a Value means the same.
			v := &Predicate{Op: c.op, Attribute: "s", Value: c.pat}
			if got := v.Eval(map[string]any{"s": c.s}, nil); got != c.want {
				t.Errorf("Value %s %.40q on %.40q = %v, want %v", c.op, c.pat, c.s, got, c.want)
			}
		}
	})
}

// regexSize counts the runes of a literal once: each of its instructions
// holds a one-rune window on the literal's array. Counting every window's
// cap made a 4,000-rune literal 32 MB instead of about 180 KB, which
// refused ordinary queries as over the connection's memory budget, and
// would refuse a literal pattern read through a ValueRef.
func TestRegexSize_literalCountedOnce(t *testing.T) {
	t.Parallel()
	lit := strings.Repeat("a", MaxPatternBytes)
	n, ok := regexSize(lit, 1<<40)
	if !ok || n > MaxRefPatternSize {
		t.Errorf("regexSize of a %d-rune literal = %d, %v; want at most MaxRefPatternSize (%d)", len(lit), n, ok, MaxRefPatternSize)
	}
	if m, size := compilePatternSize(OpRegex, lit, MaxRefPatternSize); m == nil || size > MaxRefPatternSize {
		t.Errorf("a %d-rune literal regex read through a ValueRef does not compile (size %d)", len(lit), size)
	}
}
