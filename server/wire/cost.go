package wire

import (
	"math/bits"
	"regexp/syntax"
	"strconv"
	"strings"
	"unicode"
)

// MaxQueryCost bounds Query.Cost for the queries a server accepts: it
// bounds the work of matching one change against a live query, which the
// server does for every write to the query's map (on a goroutine per
// connection, which falls behind and is closed if its queries are too
// slow to match). The memory budgets of
// queries alone allow a predicate of hundreds of thousands of nodes. A
// real query costs a few dozen units; TopGun sets no such bound (its
// only one is the decoder's depth, Limits.MaxDepth). It does not bound
// the length of the strings a like or regex node is matched with, which
// it reads whole: about 20 ms per MiB for a regex without a literal
// prefix (Go's regexp runs its NFA on long texts), whatever its cost.
const MaxQueryCost = 10000

// CostBytesPerUnit is how many bytes of a string a node reads or hashes
// for every record (an attribute path, a where-clause field, a ValueRef,
// a like/regex pattern) count one unit of Query.Cost.
const CostBytesPerUnit = 64

// Cost estimates the work of matching one record against the query's
// filter (Match) in units of about one predicate node visited: every node
// of the Predicate tree counts 1 (not counts its first child only, as it
// evaluates), plus one per CostBytesPerUnit bytes of its attribute and
// ValueRef, a like/regex pattern one per CostBytesPerUnit bytes or, for a
// regex, compiled instructions (MaxPatternBytes for one read from
// records), an in list one per element when it is scanned (under 16
// elements) and, when looked up in a hash set, one per element that is
// not a number, string, boolean or nil (those the set still scans), and
// a containsAll/containsAny list one per element; an array or map the
// record's value is compared with (eq, neq, in and contains elements, or
// an in/contains operand that is not a list)
// one more per element, nested; without a Predicate, each Where field
// and each operator of it counts likewise. Comparing with a value read
// from the record costs what the record's size allows and counts nothing
// more. Ordering a record by the Sort fields counts too (sortCost).
// Counting stops as soon as the total passes limit; the count returned is
// then past limit.
func (q *Query) Cost(limit int) int {
	if q == nil {
		return 0
	}
	n := q.sortCost(limit)
	if n > limit {
		return n
	}
	if q.Predicate != nil {
		q.Predicate.cost(&n, limit, 0)
		return n
	}
	for field, want := range q.Where {
		n += 1 + len(field)/CostBytesPerUnit
		ops, ok := operatorObject(want)
		if !ok {
			literalCost(want, &n, limit, 0)
			if n > limit {
				return n
			}
			continue
		}
		for op, arg := range ops {
			n++
			switch op {
			case "$like", "$regex":
				if s, ok := arg.(string); ok {
					n += patternCost(patternOps[op], s)
				}
			case "$in", "$nin":
				if list, ok := arg.([]any); ok {
					listCost(list, &n, limit)
				}
			case "$eq", "$ne", "$neq":
				literalCost(arg, &n, limit, 0)
			}
		}
		if n > limit {
			return n
		}
	}
	return n
}

// sortCost is the cost of ordering one record by the query's Sort fields:
// each comparison looks every field up in both records (1 each, plus one
// per CostBytesPerUnit bytes of its path), and a change of a limited
// query's map takes up to 2 comparisons per level of the heap of its
// result and 2 more, a record of an unlimited one about 32 as its first
// read sorts it. Without it a QUERY_SUB of hundreds of thousands of sort
// fields cost nothing, and every change of its map took a quarter of a
// second of the feed.
func (q *Query) sortCost(limit int) int {
	if len(q.Sort) == 0 {
		return 0
	}
	compares := 32
	if q.Limit != nil {
		compares = 2*bits.Len32(*q.Limit) + 2
	}
	n := 0
	for _, f := range q.Sort {
		if n += 2 * compares * (1 + len(f.Field)/CostBytesPerUnit); n > limit {
			return n
		}
	}
	return n
}

func (p *Predicate) cost(n *int, limit, depth int) {
	if *n > limit {
		return
	}
	*n++
	if p == nil || depth > maxEvalDepth {
		return
	}
	*n += (len(p.Attribute) + len(p.ValueRef)) / CostBytesPerUnit
	switch p.Op {
	case OpAnd, OpOr:
		for _, c := range p.Children {
			if c.cost(n, limit, depth+1); *n > limit {
				return
			}
		}
	case OpNot:
		if len(p.Children) > 0 {
			p.Children[0].cost(n, limit, depth+1)
		}
	case OpLike, OpRegex:
		if p.ValueRef != "" {
			*n += MaxPatternBytes / CostBytesPerUnit
		} else if s, ok := p.Value.(string); ok {
			*n += patternCost(p.Op, s)
		}
	case OpEq, OpNeq:
		if p.ValueRef == "" {
			literalCost(p.Value, n, limit, 0)
		}
	case OpIn:
		if p.ValueRef != "" {
			return
		}
		if list, ok := p.Value.([]any); ok {
			listCost(list, n, limit)
		} else {
			// Compared with each element of the record's array.
			literalCost(p.Value, n, limit, 0)
		}
	case OpContainsAll, OpContainsAny:
		if p.ValueRef != "" {
			return
		}
		list, ok := p.Value.([]any)
		if !ok {
			// A list of this one value.
			literalCost(p.Value, n, limit, 0)
			return
		}
		for _, v := range list {
			if *n++; *n > limit {
				return
			}
			if literalCost(v, n, limit, 1); *n > limit {
				return
			}
		}
	}
}

// patternCost is the cost of matching a like or regex pattern, one per
// CostBytesPerUnit bytes or, for a regex, compiled instructions, whichever
// is more: matching a text steps through up to all of a regex's
// instructions for each of its bytes, and a short pattern can compile to
// thousands of them ([a-z]{1000}: 1000).
func patternCost(op PredicateOp, pattern string) int {
	n := len(pattern)
	if op == OpRegex && len(pattern) <= MaxPatternBytes {
		if goPattern, err := translateRegex(pattern); err == nil && len(goPattern) <= maxTranslatedPatternBytes {
			if re, err := syntax.Parse(withoutTables(goPattern), syntax.Perl); err == nil {
				n = max(n, minInsts(re, 0))
			}
		}
	}
	return n / CostBytesPerUnit
}

// withoutTables is goPattern with each Unicode table it names (\pL,
// \p{Greek}, \P{..}) replaced by a rune, which compiles to as many
// instructions: parsing copies the tables, which takes a pattern of them
// (a translated \w names five) a tenth of a second to parse. Each gets a
// private-use rune of its own: with one letter for all, the parser would
// factor out of alternatives what only looks shared (\pL[a-z]{1000}|
// \pN[a-z]{1000} would count 1001 instructions, not 2002). A pattern within
// maxTranslatedPatternBytes names fewer tables than there are such runes.
func withoutTables(goPattern string) string {
	var b []byte
	last := 0
	next := rune(0xF0000) // planes 15 and 16 are private use
	for i := 0; i < len(goPattern); i++ {
		if goPattern[i] != '\\' || i+1 >= len(goPattern) {
			continue
		}
		start := i
		i++
		if c := goPattern[i]; c != 'p' && c != 'P' || i+1 >= len(goPattern) {
			continue
		}
		end := i + 1 // the one-letter name
		if goPattern[i+1] == '{' {
			close := strings.IndexByte(goPattern[i+1:], '}')
			if close < 0 {
				continue
			}
			end = i + 1 + close
		}
		b = append(b, goPattern[last:start]...)
		b = append(strconv.AppendInt(append(b, `\x{`...), int64(next), 16), '}')
		next = min(next+1, unicode.MaxRune)
		last = end + 1
		i = end
	}
	if b == nil {
		return goPattern
	}
	return string(append(b, goPattern[last:]...))
}

// literalCost adds what comparing a query's literal value v with a
// record's value (valuesEqual) may visit beyond the comparison itself:
// one per element of its arrays and maps, at any depth (equality of two
// arrays or maps visits at most the elements of either).
func literalCost(v any, n *int, limit, depth int) {
	if depth > maxEvalDepth {
		return
	}
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			if *n++; *n > limit {
				return
			}
			if literalCost(e, n, limit, depth+1); *n > limit {
				return
			}
		}
	case map[string]any:
		for _, e := range x {
			if *n++; *n > limit {
				return
			}
			if literalCost(e, n, limit, depth+1); *n > limit {
				return
			}
		}
	}
}

// listCost adds the cost of an in, $in or $nin list: one per element
// (and its literalCost) when it is scanned, under minSetLen elements;
// a longer one is looked up in a hash set (valueSet), which still scans
// its elements that are not numbers, strings, booleans or nil.
func listCost(list []any, n *int, limit int) {
	hashed := len(list) >= minSetLen
	for _, v := range list {
		if hashed && setScalar(v) {
			continue
		}
		if *n++; *n > limit {
			return
		}
		if literalCost(v, n, limit, 1); *n > limit {
			return
		}
	}
}
