package wire

import (
	"fmt"
	"testing"
)

// A short list matched against a long array is compared element by
// element, as before the index: building a hash index of the record's
// whole array for one or two values took 10 to 40 times as long as the
// scan and allocated about 70 bytes per element, for every record, on the
// goroutine that feeds every client.
func TestContainsMatch_shortListScans(t *testing.T) {
	have := make([]any, 10000)
	for i := range have {
		have[i] = fmt.Sprint("tag", i)
	}
	rec := map[string]any{"tags": have, "one": []any{"nope"}}
	for _, p := range []*Predicate{
		leaf(OpContainsAny, "tags", []any{"nope"}),
		leaf(OpContainsAll, "tags", []any{"tag1", "tag9999", "nope"}),
		{Op: OpContainsAny, Attribute: "tags", ValueRef: "data.one"},
		{Op: OpContainsAny, Attribute: "one", ValueRef: "data.tags"},
	} {
		if p.Eval(rec, nil) {
			t.Errorf("%v %s: matched", p.Op, p.Attribute)
		}
		if allocs := testing.AllocsPerRun(5, func() { p.Eval(rec, nil) }); allocs != 0 {
			t.Errorf("%v %s: %v allocations per match, want 0", p.Op, p.Attribute, allocs)
		}
	}
}
