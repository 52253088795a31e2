package wire

import (
	"fmt"
	"testing"
)

// As on TopGun's server, containsAll/containsAny take a value that is not
// an array as a list of that one value, and in with a value that is not
// an array tests whether the attribute's array holds it.
func TestPredicate_Eval_scalarOperand(t *testing.T) {
	t.Parallel()
	rec := map[string]any{
		"tags":  []any{"vip", int64(3), []any{"x"}},
		"name":  "vip",
		"want":  "vip",
		"empty": []any{},
	}
	tests := []struct {
		name string
		p    *Predicate
		want bool
	}{
		{"containsAny scalar", leaf(OpContainsAny, "tags", "vip"), true},
		{"containsAny scalar miss", leaf(OpContainsAny, "tags", "gold"), false},
		{"containsAll scalar", leaf(OpContainsAll, "tags", 3.0), true},
		{"containsAll scalar miss", leaf(OpContainsAll, "tags", "gold"), false},
		{"containsAll map", leaf(OpContainsAll, "tags", map[string]any{"x": "y"}), false},
		{"containsAny scalar on empty", leaf(OpContainsAny, "empty", "vip"), false},
		{"containsAny scalar on non-array", leaf(OpContainsAny, "name", "vip"), false},
		{"containsAny valueRef scalar", &Predicate{Op: OpContainsAny, Attribute: "tags", ValueRef: "data.want"}, true},
		{"in array holds value", leaf(OpIn, "tags", "vip"), true},
		{"in array holds number", leaf(OpIn, "tags", int64(3)), true},
		{"in array misses value", leaf(OpIn, "tags", "gold"), false},
		{"in scalar vs scalar", leaf(OpIn, "name", "vip"), false},
		{"in array in list", leaf(OpIn, "tags", []any{"vip"}), false},
		{"in valueRef scalar", &Predicate{Op: OpIn, Attribute: "tags", ValueRef: "data.want"}, true},
	}
	for _, tc := range tests {
		if got := tc.p.Eval(rec, nil); got != tc.want {
			t.Errorf("%s: Eval = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// A literal operand that is not a list is compared with every element of
// the attribute's array: Cost counts it as eq counts its value.
func TestQueryCost_scalarContainsOperand(t *testing.T) {
	t.Parallel()
	big := make(map[string]any, 200)
	for i := range 200 {
		big[fmt.Sprint(i)] = int64(i)
	}
	for _, op := range []PredicateOp{OpContainsAll, OpContainsAny, OpIn} {
		q := &Query{Predicate: leaf(op, "tags", big)}
		if got := q.Cost(MaxQueryCost); got < 200 {
			t.Errorf("%v with a 200-entry map: Cost %d, want at least 200", op, got)
		}
	}
}
