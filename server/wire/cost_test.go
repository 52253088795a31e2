package wire

import (
	"regexp/syntax"
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
		// Each comparison looks every sort field up in both records: a
		// limited query's change takes 2 per level of its heap and 2 more
		// (limit 50: 6 levels, 14), an unlimited query's read 32 a record.
		{"sort, limited", &Query{Sort: []SortField{{"a", Asc}, {"b", Desc}}, Limit: u32p(50)}, 2 * 2 * 14},
		{"sort, limit 0", &Query{Sort: []SortField{{long, Asc}}, Limit: u32p(0)}, 2 * 2 * 11},
		{"sort, unlimited", &Query{Sort: []SortField{{"a", Asc}}}, 2 * 32},
		{"sort and filter", &Query{Sort: []SortField{{"a", Asc}}, Where: map[string]any{"a": int64(1)}}, 2*32 + 1},
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

// Sort fields are looked up in both records of every comparison, on the
// feed's goroutine for a limited query: a QUERY_SUB of one 2 MB frame
// could name 340,000 of them (map form, "a": "asc" repeated), and each
// change of its map then took about 0.25 s to place. Its cost used to
// be 0, whatever the filter.
func TestQueryCost_sortFields(t *testing.T) {
	sort := make([]SortField, 340000)
	for i := range sort {
		sort[i] = SortField{Field: "a", Direction: Asc}
	}
	q := &Query{Sort: sort, Limit: u32p(1000)}
	if got := q.Cost(MaxQueryCost); got <= MaxQueryCost {
		t.Errorf("cost of %d sort fields %d, within MaxQueryCost", len(sort), got)
	}
	// A real query's sort costs little.
	q = &Query{Sort: sort[:3], Limit: u32p(1000), Where: map[string]any{"a": map[string]any{"$gt": 1}}}
	if got := q.Cost(MaxQueryCost); got > 200 {
		t.Errorf("cost of a 3-field sort %d", got)
	}
}

// A cheap-looking filter must not cost more to match than Cost says: a
// long in list is looked up in a hash set only for its scalars (bytes,
// arrays and maps are scanned, valueSet.rest), and equality with an
// array or map literal visits its elements.
func TestQueryCost_scannedValues(t *testing.T) {
	arrays := func(n int) []any {
		l := make([]any, n)
		for i := range l {
			l[i] = []any{int64(i)} // one element each: scanned, 2 apiece
		}
		return l
	}
	blobs := make([]any, 1000)
	for i := range blobs {
		blobs[i] = []byte{byte(i), byte(i >> 8)}
	}
	big := make([]any, 1000)
	for i := range big {
		big[i] = int64(i)
	}
	obj := map[string]any{}
	for i := 0; i < 1000; i++ {
		obj["k"+string(rune('a'+i%26))+string(rune('a'+i/26))] = int64(i)
	}
	for _, c := range []struct {
		name string
		q    *Query
		want int
	}{
		{"in of arrays, hashed list", &Query{Predicate: &Predicate{Op: OpIn, Attribute: "a", Value: arrays(1000)}}, 1 + 2000},
		{"in of bytes, hashed list", &Query{Predicate: &Predicate{Op: OpIn, Attribute: "a", Value: blobs}}, 1 + 1000},
		{"eq of a long array", &Query{Predicate: &Predicate{Op: OpEq, Attribute: "a", Value: big}}, 1 + 1000},
		{"neq of a large object", &Query{Predicate: &Predicate{Op: OpNeq, Attribute: "a", Value: obj}}, 1 + 1000},
		{"containsAny of arrays", &Query{Predicate: &Predicate{Op: OpContainsAny, Attribute: "a", Value: arrays(10)}}, 1 + 20},
		{"where $in of arrays", &Query{Where: map[string]any{"a": map[string]any{"$in": arrays(1000)}}}, 2 + 2000},
		{"where $nin of bytes", &Query{Where: map[string]any{"a": map[string]any{"$nin": blobs}}}, 2 + 1000},
		{"where plain long array", &Query{Where: map[string]any{"a": big}}, 1 + 1000},
		{"where $eq of a large object", &Query{Where: map[string]any{"a": map[string]any{"$eq": obj}}}, 2 + 1000},
	} {
		if got := c.q.Cost(MaxQueryCost); got != c.want {
			t.Errorf("%s: cost %d, want %d", c.name, got, c.want)
		}
	}
	// Counting stops past the limit inside a value too.
	if got := (&Query{Predicate: &Predicate{Op: OpEq, Attribute: "a", Value: arrays(100000)}}).Cost(10); got != 11 {
		t.Errorf("cost past limit %d, want 11", got)
	}
}

// Matching a regex steps through up to all its compiled instructions for
// each byte of the text: a short pattern of a large program costs by its
// program ([a-z]{1000}! is 1001 instructions: 15 units), not its 12 bytes.
func TestQueryCost_regexProgram(t *testing.T) {
	const pat = "[a-z]{1000}!"
	for _, c := range []struct {
		name string
		q    *Query
		want int
	}{
		{"predicate", &Query{Predicate: &Predicate{Op: OpRegex, Attribute: "s", Value: pat}}, 1 + 1001/CostBytesPerUnit},
		{"where", &Query{Where: map[string]any{"s": map[string]any{"$regex": pat}}}, 2 + 1001/CostBytesPerUnit},
		{"like is linear in its pattern", &Query{Predicate: &Predicate{Op: OpLike, Attribute: "s", Value: pat}}, 1},
		{"invalid regex matches nothing", &Query{Predicate: &Predicate{Op: OpRegex, Attribute: "s", Value: "(" + pat}}, 1},
	} {
		if got := c.q.Cost(MaxQueryCost); got != c.want {
			t.Errorf("%s: cost %d, want %d", c.name, got, c.want)
		}
	}
}

// The Unicode tables of a regex are left out of the parse that counts its
// instructions, but not so that alternatives beginning with different
// tables look alike: the parser factors out what alternatives share, so
// \pL[a-z]{1000}|\pN[a-z]{1000}|... stands for 1001 instructions a branch
// when the tables differ, not 1001 in all (117 such branches, 3 KB,
// counted 42 and took 28 s to match against 10 KB).
func TestQueryCost_regexTablesNotFactored(t *testing.T) {
	var branches []string
	for _, table := range []string{`\pL`, `\pN`, `\pP`, `\pS`, `\pZ`, `\pC`, `\pM`, `\p{Greek}`} {
		branches = append(branches, table+`[a-z]{1000}`)
	}
	pat := strings.Join(branches, "|")
	goPattern, err := translateRegex(pat)
	if err != nil {
		t.Fatal(err)
	}
	re, err := syntax.Parse(goPattern, syntax.Perl)
	if err != nil {
		t.Fatal(err)
	}
	insts := minInsts(re, 0)
	if insts < 8*1001 {
		t.Fatalf("the pattern compiles to at least %d instructions, want at least %d", insts, 8*1001)
	}
	q := &Query{Predicate: &Predicate{Op: OpRegex, Attribute: "s", Value: pat}}
	if got, want := q.Cost(MaxQueryCost), 1+insts/CostBytesPerUnit; got < want {
		t.Errorf("cost %d, want at least %d (%d instructions)", got, want, insts)
	}
}
