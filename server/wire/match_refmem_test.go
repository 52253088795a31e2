package wire

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

// heldRefPatterns estimates what the like/regex leaves with a ValueRef of
// a predicate tree hold compiled: the patterns they keep to reuse.
func heldRefPatterns(p *Predicate) int {
	if p == nil {
		return 0
	}
	n := 0
	for _, c := range p.Children {
		n += heldRefPatterns(c)
	}
	if cache := p.refs.Load(); cache != nil {
		for _, c := range cache.order {
			if c.m == nil {
				continue
			}
			if c.op == OpLike {
				n += likeOverhead + likeBytesPerPatternByte*len(c.pattern)
				continue
			}
			gp, err := translateRegex(c.pattern)
			if err != nil {
				continue
			}
			size, _ := regexSize(gp, math.MaxInt)
			n += size
		}
	}
	return n
}

// CompileLimit counts what a query's patterns take in memory, and a server
// holding live queries bounds them by it (TOPGUN_MAX_MESSAGE_BYTES: "the
// live queries of one connection may take at most 8 times this much
// memory ... counting ... regex and like patterns"). A like/regex leaf
// with a ValueRef compiles the patterns it reads from records and keeps
// the last few: what it keeps must be within what CompileLimit counted.
// Before, such leaves counted nothing and each kept up to four patterns
// of up to MaxRefPatternSize: a query of 100 such leaves over records with
// a 250 KB pattern (twenty \w, an ordinary-looking regex) held 100 MB
// and counted 0.
func TestQuery_CompileLimit_countsValueRefPatterns(t *testing.T) {
	t.Parallel()
	const leaves = 100
	for _, op := range []PredicateOp{OpRegex, OpLike} {
		root := &Predicate{Op: OpOr}
		for range leaves {
			root.Children = append(root.Children, &Predicate{Op: op, Attribute: "s", ValueRef: "data.p"})
		}
		q := &Query{Predicate: root}
		counted, ok := q.CompileLimit(math.MaxInt)
		if !ok {
			t.Fatalf("%s: CompileLimit refused an unlimited query", op)
		}
		for i := range 6 {
			pat := strings.Repeat(`\w`, 20) + fmt.Sprintf("x%d", i)
			if op == OpLike {
				pat = strings.Repeat("%a", 1800) + fmt.Sprintf("x%d", i)
			}
			if q.Match(map[string]any{"s": "-", "p": pat}) {
				t.Fatalf("%s: %.20q matched %q", op, pat, "-")
			}
		}
		if held := heldRefPatterns(root); held > counted {
			t.Errorf("%s: %d ValueRef leaves hold %d bytes of compiled patterns; CompileLimit counted %d", op, leaves, held, counted)
		}
	}
}
