package wire

import (
	"strings"
	"testing"
)

// Query.Cost counts what matching one record really visits.
func TestQueryCost(t *testing.T) {
	list := func(n int) []any {
		l := make([]any, n)
		for i := range l {
			l[i] = int64(i)
		}
		return l
	}
	leaf := func(op PredicateOp, v any) *Predicate { return &Predicate{Op: op, Attribute: "a", Value: v} }
	pred := func(p *Predicate) *Query { return &Query{Predicate: p} }
	long := strings.Repeat("x", 10*CostBytesPerUnit)
	for _, c := range []struct {
		name string
		q    *Query
		want int
	}{
		{"nil", nil, 0},
		{"everything", &Query{}, 0},
		{"leaf", pred(leaf(OpEq, int64(1))), 1},
		{"or", pred(&Predicate{Op: OpOr, Children: []*Predicate{leaf(OpEq, 1), leaf(OpGt, 2), nil}}), 4},
		{"not evaluates its first child", pred(&Predicate{Op: OpNot, Children: []*Predicate{leaf(OpEq, 1), leaf(OpEq, 2)}}), 2},
		{"short in is scanned", pred(leaf(OpIn, list(minSetLen-1))), minSetLen},
		{"long in is a set", pred(leaf(OpIn, list(1000))), 1},
		{"containsAny scans its list", pred(leaf(OpContainsAny, list(1000))), 1001},
		{"containsAll with a ValueRef", pred(&Predicate{Op: OpContainsAll, Attribute: "a", ValueRef: "data.b"}), 1},
		{"regex by length", pred(leaf(OpRegex, long)), 11},
		{"regex read from records", pred(&Predicate{Op: OpRegex, Attribute: "a", ValueRef: "data.b"}), 1 + MaxPatternBytes/CostBytesPerUnit},
		{"long attribute", pred(&Predicate{Op: OpIsNull, Attribute: long}), 11},
		{"where", &Query{Where: map[string]any{"a": int64(1), long: map[string]any{"$in": list(3), "$gt": 1}}}, 1 + 11 + 1 + 3 + 1},
		{"where long $in", &Query{Where: map[string]any{"a": map[string]any{"$nin": list(100)}}}, 2},
	} {
		if got := c.q.Cost(MaxQueryCost); got != c.want {
			t.Errorf("%s: cost %d, want %d", c.name, got, c.want)
		}
	}
	// Counting stops past the limit.
	kids := make([]*Predicate, 100000)
	for i := range kids {
		kids[i] = leaf(OpEq, 1)
	}
	if got := pred(&Predicate{Op: OpAnd, Children: kids}).Cost(10); got != 11 {
		t.Errorf("cost past limit %d, want 11", got)
	}
}
