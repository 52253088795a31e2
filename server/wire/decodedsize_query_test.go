package wire

import (
	"testing"
)

// A QUERY_SUB's predicate tree and sort fields are held for as long as its
// live query runs, and the server bounds the memory of a connection's live
// queries by their decoded size (Limits.DecodeSize). So DecodeSize must
// count them: a node {"op": "eq"} is 7 bytes on the wire and a
// 100-byte-plus Predicate once decoded, a sort field {"k": "asc"} about 6
// bytes and a 32-byte SortField with its key. Before, neither was counted:
// a 1.7 MB QUERY_SUB of 250,000 predicates took 39 MB and was counted as
// 0.5 MB, so a connection could hold about 80 times its query budget.
func TestLimits_decodedSizeCountsQueryStructures(t *testing.T) {
	// Not parallel: it measures the heap's TotalAlloc.
	const n = 250_000
	const nSort = 60_000
	kids := make([]*Predicate, n)
	for i := range kids {
		kids[i] = &Predicate{Op: OpEq}
	}
	sort := make([]SortField, nSort)
	for i := range sort {
		sort[i] = SortField{Field: itoa(i), Direction: Asc}
	}
	cases := map[string]*QuerySub{
		"predicates":  {QueryID: "q", MapName: "m", Query: Query{Predicate: &Predicate{Op: OpOr, Children: kids}}},
		"sort fields": {QueryID: "q", MapName: "m", Query: Query{Sort: sort}},
	}
	for name, m := range cases {
		raw, err := Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		if len(raw) > DefaultMaxMessageBytes {
			t.Fatalf("%s: frame of %d bytes is over the limit", name, len(raw))
		}
		var size int
		got := allocated(func() { _, size, err = DefaultLimits().DecodeSize(raw) })
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Logf("%s: frame %d KiB, decoded size %d KiB, allocated %d KiB", name, len(raw)>>10, size>>10, got>>10)
		if uint64(size) < got/2 {
			t.Errorf("%s: decoded size %d, but decoding allocated %d", name, size, got)
		}
	}
}
