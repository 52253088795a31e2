package wire

import (
	"bytes"
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

func leaf(op PredicateOp, attr string, v any) *Predicate {
	return &Predicate{Op: op, Attribute: attr, Value: v}
}

func TestPredicate_Eval(t *testing.T) {
	t.Parallel()
	rec := map[string]any{
		"name":  "Alice",
		"age":   int64(30),
		"score": 99.5,
		"big":   uint64(math.MaxUint64),
		"tags":  []any{"a", "b", int64(3)},
		"addr":  map[string]any{"city": "Oslo", "zip": int64(150)},
		"nil":   nil,
		"bin":   []byte{1, 2},
		"ok":    true,
		"dot.k": "literal",
	}
	auth := map[string]any{"sub": "Alice", "roles": []any{"admin"}}
	tests := []struct {
		name string
		p    *Predicate
		want bool
	}{
		{"eq string", leaf(OpEq, "name", "Alice"), true},
		{"eq int vs float", leaf(OpEq, "age", 30.0), true},
		{"eq float vs int", leaf(OpEq, "score", int64(99)), false},
		{"eq uint64 max exact", leaf(OpEq, "big", uint64(math.MaxUint64)), true},
		{"eq uint64 max vs max-1", leaf(OpEq, "big", uint64(math.MaxUint64-1)), false},
		{"eq nested path", leaf(OpEq, "addr.city", "Oslo"), true},
		{"eq literal dotted key", leaf(OpEq, "dot.k", "literal"), true},
		{"eq missing attribute", leaf(OpEq, "nope", "x"), false},
		{"eq bytes", leaf(OpEq, "bin", []byte{1, 2}), true},
		{"eq array", leaf(OpEq, "tags", []any{"a", "b", 3.0}), true},
		{"eq map", leaf(OpEq, "addr", map[string]any{"zip": 150.0, "city": "Oslo"}), true},
		{"eq bool", leaf(OpEq, "ok", true), true},
		{"eq nil value never matches", leaf(OpEq, "nil", nil), false},
		{"eq no attribute", &Predicate{Op: OpEq, Value: "x"}, false},
		{"neq", leaf(OpNeq, "name", "Bob"), true},
		{"neq same", leaf(OpNeq, "name", "Alice"), false},
		{"gt int", leaf(OpGt, "age", int64(18)), true},
		{"gt equal", leaf(OpGt, "age", int64(30)), false},
		{"gte equal", leaf(OpGte, "age", int64(30)), true},
		{"lt cross type", leaf(OpLt, "age", 30.5), true},
		{"lte", leaf(OpLte, "score", 99.5), true},
		{"gt string", leaf(OpGt, "name", "Aaron"), true},
		{"gt across kinds is false", leaf(OpGt, "name", int64(1)), false},
		{"gt negative", leaf(OpGt, "age", int64(-5)), true},
		{"like prefix", leaf(OpLike, "name", "ali%"), true},
		{"like underscore", leaf(OpLike, "name", "A_ice"), true},
		{"like anchored", leaf(OpLike, "name", "lic"), false},
		{"like escapes regex", leaf(OpLike, "name", "A.*"), false},
		{"like non-string", leaf(OpLike, "age", "%"), false},
		{"regex", leaf(OpRegex, "name", "^Al"), true},
		{"regex case-sensitive", leaf(OpRegex, "name", "^al"), false},
		{"regex inline flag", leaf(OpRegex, "name", "(?i)^al"), true},
		{"regex invalid", leaf(OpRegex, "name", "(a"), false},
		{"in", leaf(OpIn, "age", []any{int64(1), 30.0}), true},
		{"in miss", leaf(OpIn, "age", []any{int64(1)}), false},
		{"in not array", leaf(OpIn, "age", int64(30)), false},
		{"between", leaf(OpBetween, "age", []any{int64(18), int64(30)}), true},
		{"between out", leaf(OpBetween, "age", []any{int64(31), int64(40)}), false},
		{"between bad arity", leaf(OpBetween, "age", []any{int64(1)}), false},
		{"containsAll", leaf(OpContainsAll, "tags", []any{"a", 3.0}), true},
		{"containsAll miss", leaf(OpContainsAll, "tags", []any{"a", "z"}), false},
		{"containsAny", leaf(OpContainsAny, "tags", []any{"z", "b"}), true},
		{"containsAny miss", leaf(OpContainsAny, "tags", []any{"z"}), false},
		{"startsWith", leaf(OpStartsWith, "name", "Al"), true},
		{"endsWith", leaf(OpEndsWith, "name", "ce"), true},
		{"endsWith miss", leaf(OpEndsWith, "name", "Al"), false},
		{"isNull missing", &Predicate{Op: OpIsNull, Attribute: "nope"}, true},
		{"isNull nil", &Predicate{Op: OpIsNull, Attribute: "nil"}, true},
		{"isNull set", &Predicate{Op: OpIsNull, Attribute: "name"}, false},
		{"isNotNull", &Predicate{Op: OpIsNotNull, Attribute: "name"}, true},
		{"and", &Predicate{Op: OpAnd, Children: []*Predicate{leaf(OpGte, "age", int64(18)), leaf(OpEq, "ok", true)}}, true},
		{"and one false", &Predicate{Op: OpAnd, Children: []*Predicate{leaf(OpGte, "age", int64(18)), leaf(OpEq, "ok", false)}}, false},
		{"and empty", &Predicate{Op: OpAnd}, true},
		{"or", &Predicate{Op: OpOr, Children: []*Predicate{leaf(OpEq, "name", "Bob"), leaf(OpEq, "name", "Alice")}}, true},
		{"or empty", &Predicate{Op: OpOr}, false},
		{"not", &Predicate{Op: OpNot, Children: []*Predicate{leaf(OpEq, "name", "Bob")}}, true},
		{"not empty", &Predicate{Op: OpNot}, true},
		{"valueRef data", &Predicate{Op: OpEq, Attribute: "name", ValueRef: "data.name"}, true},
		{"valueRef auth", &Predicate{Op: OpEq, Attribute: "name", ValueRef: "auth.sub"}, true},
		{"valueRef auth array", &Predicate{Op: OpContainsAny, Attribute: "tags", ValueRef: "auth.roles"}, false},
		{"valueRef unknown namespace", &Predicate{Op: OpEq, Attribute: "name", ValueRef: "env.x"}, false},
		{"valueRef missing", &Predicate{Op: OpEq, Attribute: "name", ValueRef: "auth.nope"}, false},
	}
	for _, tc := range tests {
		if got := tc.p.Eval(rec, auth); got != tc.want {
			t.Errorf("%s: Eval = %v, want %v", tc.name, got, tc.want)
		}
	}
	// Without an auth context auth references never match.
	if (&Query{Predicate: &Predicate{Op: OpEq, Attribute: "name", ValueRef: "auth.sub"}}).Match(rec) {
		t.Error("auth reference matched without auth")
	}
	// Non-map values match only an unfiltered query.
	if leaf(OpEq, "x", int64(1)).Eval("scalar", nil) || !(&Query{}).Match("scalar") {
		t.Error("non-map value handling")
	}
	if (&Query{Where: map[string]any{}}).Match(int64(5)) {
		t.Error("where on a non-map value matched")
	}
}

func TestQuery_Match_where(t *testing.T) {
	t.Parallel()
	rec := map[string]any{"status": "active", "age": int64(30), "tags": []any{"x"}, "addr": map[string]any{"city": "Oslo"}}
	tests := []struct {
		name  string
		where map[string]any
		want  bool
	}{
		{"empty", map[string]any{}, true},
		{"equal", map[string]any{"status": "active"}, true},
		{"equal number across kinds", map[string]any{"age": 30.0}, true},
		{"not equal", map[string]any{"status": "gone"}, false},
		{"all fields", map[string]any{"status": "active", "age": int64(31)}, false},
		{"missing field", map[string]any{"nope": nil}, false},
		{"dotted path", map[string]any{"addr.city": "Oslo"}, true},
		{"$gt", map[string]any{"age": map[string]any{"$gt": int64(18)}}, true},
		{"$gt and $lt", map[string]any{"age": map[string]any{"$gt": int64(18), "$lt": int64(30)}}, false},
		{"$gte $lte", map[string]any{"age": map[string]any{"$gte": int64(30), "$lte": 30.0}}, true},
		{"$ne", map[string]any{"status": map[string]any{"$ne": "gone"}}, true},
		{"$in", map[string]any{"status": map[string]any{"$in": []any{"a", "active"}}}, true},
		{"$nin", map[string]any{"status": map[string]any{"$nin": []any{"active"}}}, false},
		{"$like", map[string]any{"status": map[string]any{"$like": "act%"}}, true},
		{"$regex", map[string]any{"status": map[string]any{"$regex": "^a.*e$"}}, true},
		{"$exists true", map[string]any{"age": map[string]any{"$exists": true}}, true},
		{"$exists false on missing", map[string]any{"nope": map[string]any{"$exists": false}}, true},
		{"$exists false on present", map[string]any{"age": map[string]any{"$exists": false}}, false},
		{"operator on missing field", map[string]any{"nope": map[string]any{"$ne": 1}}, false},
		{"unknown operator", map[string]any{"age": map[string]any{"$near": 1}}, false},
		{"map without $ keys is equality", map[string]any{"addr": map[string]any{"city": "Oslo"}}, true},
		{"mixed keys are equality", map[string]any{"addr": map[string]any{"$gt": 1, "city": "Oslo"}}, false},
	}
	for _, tc := range tests {
		q := &Query{Where: tc.where}
		if got := q.Match(rec); got != tc.want {
			t.Errorf("%s: Match = %v, want %v", tc.name, got, tc.want)
		}
	}
	// A predicate takes precedence over where.
	q := &Query{Where: map[string]any{"status": "gone"}, Predicate: leaf(OpEq, "status", "active")}
	if !q.Match(rec) {
		t.Error("predicate did not take precedence over where")
	}
}

func TestQuery_Apply(t *testing.T) {
	t.Parallel()
	entries := []QueryResult{
		{Key: "a", Value: map[string]any{"n": int64(3), "s": "x"}},
		{Key: "b", Value: map[string]any{"n": 1.5, "s": "y"}},
		{Key: "c", Value: map[string]any{"s": "z"}}, // no n
		{Key: "d", Value: map[string]any{"n": int64(3), "s": "w"}},
		{Key: "e", Value: "not a map"},
		{Key: "f", Value: map[string]any{"n": "text", "s": "v"}},
	}
	keys := func(rs []QueryResult) []string {
		out := []string{}
		for _, r := range rs {
			out = append(out, r.Key)
		}
		return out
	}
	limit := uint32(2)
	tests := []struct {
		name string
		q    *Query
		want []string
	}{
		{"no filter sorts by key", &Query{}, []string{"a", "b", "c", "d", "e", "f"}},
		{"nil query", nil, []string{"a", "b", "c", "d", "e", "f"}},
		{"asc: numbers, then strings, missing last, ties by key", &Query{Where: map[string]any{}, Sort: []SortField{{"n", Asc}}}, []string{"b", "a", "d", "f", "c"}},
		{"desc reverses kinds, missing still last", &Query{Where: map[string]any{}, Sort: []SortField{{"n", Desc}}}, []string{"f", "a", "d", "b", "c"}},
		{"second field breaks ties", &Query{Where: map[string]any{}, Sort: []SortField{{"n", Desc}, {"s", Asc}}}, []string{"f", "d", "a", "b", "c"}},
		{"filter and limit", &Query{Predicate: leaf(OpGte, "n", int64(1)), Sort: []SortField{{"n", Asc}}, Limit: &limit}, []string{"b", "a"}},
	}
	for _, tc := range tests {
		if got := keys(tc.q.Apply(entries)); !slices.Equal(got, tc.want) {
			t.Errorf("%s: Apply = %v, want %v", tc.name, got, tc.want)
		}
	}
	if entries[0].Key != "a" || entries[5].Key != "f" {
		t.Error("Apply modified its input")
	}
}

func TestPredicate_patternCache(t *testing.T) {
	t.Parallel()
	p := leaf(OpLike, "s", "a%")
	v := map[string]any{"s": "abc"}
	if !p.Eval(v, nil) {
		t.Fatal("like a% did not match abc")
	}
	// Changing the pattern recompiles.
	p.Value = "b%"
	if p.Eval(v, nil) {
		t.Fatal("stale compiled pattern")
	}
	// Concurrent evaluation is safe (run with -race).
	p = leaf(OpRegex, "s", "^a")
	done := make(chan bool)
	for i := 0; i < 4; i++ {
		go func() {
			ok := true
			for j := 0; j < 100; j++ {
				ok = ok && p.Eval(v, nil)
			}
			done <- ok
		}()
	}
	for i := 0; i < 4; i++ {
		if !<-done {
			t.Error("concurrent Eval mismatched")
		}
	}
}

// TestQuery_Compare_totalOrder checks that Compare is a total order on
// random values of mixed kinds (antisymmetric and transitive), so sorting
// is well defined.
func TestQuery_Compare_totalOrder(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	g := gen{rand.New(rand.NewPCG(seed, 3))}
	q := &Query{Sort: []SortField{{"v", Asc}, {"w", Desc}}}
	rs := make([]QueryResult, 60)
	for i := range rs {
		v := map[string]any{}
		if !g.chance(5) {
			v["v"] = g.value(3)
		}
		if g.bool() {
			v["w"] = []any{int64(1), 2.5, "s", true, math.NaN()}[g.r.IntN(5)]
		}
		rs[i] = QueryResult{Key: g.str(), Value: v}
	}
	sign := func(c int) int { return cmp.Compare(c, 0) }
	for _, a := range rs {
		for _, b := range rs {
			if sign(q.Compare(a, b)) != -sign(q.Compare(b, a)) {
				t.Fatalf("seed %d: not antisymmetric: %v vs %v", seed, a, b)
			}
			for _, c := range rs {
				if q.Compare(a, b) <= 0 && q.Compare(b, c) <= 0 && q.Compare(a, c) > 0 {
					t.Fatalf("seed %d: not transitive: %v <= %v <= %v but a > c", seed, a, b, c)
				}
			}
		}
	}
	// Integers past 2^53 against floats: rounded to float64, 2^60-1 and
	// 2^60+1 both equal 2^60.0, and the key made c < b < a < c.
	big := []QueryResult{
		{Key: "k3", Value: map[string]any{"v": int64(1<<60 - 1)}},
		{Key: "k2", Value: map[string]any{"v": float64(1 << 60)}},
		{Key: "k1", Value: map[string]any{"v": int64(1<<60 + 1)}},
		{Key: "k0", Value: map[string]any{"v": uint64(math.MaxUint64)}},
		{Key: "k4", Value: map[string]any{"v": float64(1 << 64)}},
		{Key: "k5", Value: map[string]any{"v": int64(math.MinInt64 + 1)}},
		{Key: "k6", Value: map[string]any{"v": float64(math.MinInt64)}},
	}
	want := []string{"k6", "k5", "k3", "k2", "k1", "k0", "k4"}
	for i := range big {
		for j := range big {
			a, b := big[i], big[j]
			ia, ib := slices.Index(want, a.Key), slices.Index(want, b.Key)
			if got := sign(q.Compare(a, b)); got != cmp.Compare(ia, ib) {
				t.Errorf("Compare(%v, %v) = %d, want %d", a.Value, b.Value, got, cmp.Compare(ia, ib))
			}
		}
	}
}

// A where-clause $like or $regex is compiled once, not once per record a
// query reads: matching a compiled query allocates nothing.
func TestQuery_Match_wherePatternCompiledOnce(t *testing.T) {
	q := &Query{Where: map[string]any{"name": map[string]any{"$regex": "^user-[0-9]+$"}}}
	q.Compile()
	v := map[string]any{"name": "user-42"}
	if !q.Match(v) {
		t.Fatal("$regex ^user-[0-9]+$ did not match user-42")
	}
	if n := testing.AllocsPerRun(100, func() { q.Match(v) }); n > 0 {
		t.Fatalf("matching a record allocates %.0f times: its pattern is compiled again", n)
	}
}

// Patterns are bounded: one longer than MaxPatternBytes matches nothing, in
// a predicate and in a where-clause, while one at the limit still matches.
func TestMatch_patternOverLimitMatchesNothing(t *testing.T) {
	t.Parallel()
	text := strings.Repeat("a", MaxPatternBytes+1)
	v := map[string]any{"s": text}
	for _, tc := range []struct {
		pattern string
		want    bool
	}{
		{strings.Repeat("a", MaxPatternBytes-1) + "%", true},
		{strings.Repeat("a", MaxPatternBytes) + "%", false},
	} {
		if got := leaf(OpLike, "s", tc.pattern).Eval(v, nil); got != tc.want {
			t.Errorf("like pattern of %d bytes: %v, want %v", len(tc.pattern), got, tc.want)
		}
		q := &Query{Where: map[string]any{"s": map[string]any{"$like": tc.pattern}}}
		if got := q.Match(v); got != tc.want {
			t.Errorf("$like pattern of %d bytes: %v, want %v", len(tc.pattern), got, tc.want)
		}
	}
}

// A ValueRef naming a field that holds null compares with the null, as
// TopGun's evaluate_leaf does (its resolve_value_ref yields Some(Nil)):
// neq holds for a non-null attribute, eq for a null one. Before, any leaf
// whose reference resolved to null was false, so such a neq query dropped
// every record a TopGun server returns.
func TestPredicate_valueRefToNullComparesWithNull(t *testing.T) {
	t.Parallel()
	rec := map[string]any{"owner": "ann", "reviewer": nil, "deleted": nil}
	tests := []struct {
		name string
		p    *Predicate
		want bool
	}{
		{"neq non-null vs null ref", &Predicate{Op: OpNeq, Attribute: "owner", ValueRef: "data.reviewer"}, true},
		{"eq null vs null ref", &Predicate{Op: OpEq, Attribute: "deleted", ValueRef: "data.reviewer"}, true},
		{"eq non-null vs null ref", &Predicate{Op: OpEq, Attribute: "owner", ValueRef: "data.reviewer"}, false},
		{"gt vs null ref", &Predicate{Op: OpGt, Attribute: "owner", ValueRef: "data.reviewer"}, false},
		{"in vs null ref", &Predicate{Op: OpIn, Attribute: "owner", ValueRef: "data.reviewer"}, false},
		{"missing ref", &Predicate{Op: OpNeq, Attribute: "owner", ValueRef: "data.nope"}, false},
		{"absent value", &Predicate{Op: OpNeq, Attribute: "owner"}, false},
	}
	for _, tc := range tests {
		if got := tc.p.Eval(rec, nil); got != tc.want {
			t.Errorf("%s: Eval = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// Where-clause patterns cost one compilation per query, however many
// queries with distinct patterns take turns on the records (as the queries
// of one POST /sync request do while they share a read of their map).
// Before, a process-wide cache of 256 patterns, emptied when full, was
// cleared over and over by 300 such queries, and every record compiled
// every pattern again. Not parallel: it counts compilations process-wide.
func TestQuery_Compile_patternsOncePerQuery(t *testing.T) {
	const nQueries, nRecords = 300, 20
	qs := make([]*Query, nQueries)
	for i := range qs {
		op := "$regex"
		if i%2 == 0 {
			op = "$like"
		}
		qs[i] = &Query{Where: map[string]any{
			"name": map[string]any{op: fmt.Sprintf("user-%d", i)},
			"tag":  map[string]any{"$like": "t%", "$regex": "^t"}, // the same in every query
		}}
	}
	before := patternCompiles.Load()
	for _, q := range qs {
		q.Compile()
	}
	matched := 0
	for r := 0; r < nRecords; r++ {
		v := map[string]any{"name": fmt.Sprintf("user-%d", r), "tag": "t1"}
		for _, q := range qs {
			c := *q // the server matches with a copy of the decoded query
			if c.Match(v) {
				matched++
			}
		}
	}
	if got, want := patternCompiles.Load()-before, uint64(3*nQueries); got != want {
		t.Errorf("%d queries of 3 patterns over %d records compiled %d patterns, want %d (once per query)", nQueries, nRecords, got, want)
	}
	// user-r matches $regex user-r (and user-1r...) and $like user-r.
	want := 0
	for r := 0; r < nRecords; r++ {
		name := fmt.Sprintf("user-%d", r)
		for i := 0; i < nQueries; i++ {
			p := fmt.Sprintf("user-%d", i)
			if (i%2 == 0 && name == p) || (i%2 == 1 && strings.Contains(name, p)) {
				want++
			}
		}
	}
	if matched != want {
		t.Errorf("matched %d (record, query) pairs, want %d", matched, want)
	}
	// A pattern Compile has not seen (Where changed since) still matches.
	q := qs[1]
	q.Where["name"] = map[string]any{"$like": "USER-1"}
	if !q.Match(map[string]any{"name": "user-1", "tag": "t"}) {
		t.Error("a pattern added after Compile did not match")
	}
}

// A query string that is not valid UTF-8 is bytes to TopGun's server (its
// MsgPack decoder gives such a string to the predicate as binary), so the
// string operators never hold for it, even where its bytes would compare.
func TestPredicate_Eval_invalidUTF8(t *testing.T) {
	t.Parallel()
	rec := map[string]any{"name": "€uro", "n": "b"}
	tests := []struct {
		name string
		p    *Predicate
		want bool
	}{
		{"gt", leaf(OpGt, "n", "a\xff"), false},
		{"gte", leaf(OpGte, "n", "a\xff"), false},
		{"lt", leaf(OpLt, "n", "\xff"), false},
		{"lte", leaf(OpLte, "n", "\xff"), false},
		{"between", leaf(OpBetween, "n", []any{"a", "\xff"}), false},
		{"startsWith a split rune", leaf(OpStartsWith, "name", "\xe2\x82"), false},
		{"endsWith a split rune", leaf(OpEndsWith, "name", "\x82\xacuro"), false},
		{"eq", leaf(OpEq, "n", "b\xff"), false},
		{"neq", leaf(OpNeq, "n", "b\xff"), true},
		// Valid strings still compare byte-wise.
		{"valid gt", leaf(OpGt, "n", "a"), true},
		{"valid startsWith", leaf(OpStartsWith, "name", "€"), true},
	}
	for _, tc := range tests {
		if got := tc.p.Eval(rec, nil); got != tc.want {
			t.Errorf("%s: Eval = %v, want %v", tc.name, got, tc.want)
		}
	}
	// The where clause's operators agree.
	for _, op := range []string{"$gt", "$gte", "$lt", "$lte"} {
		bound := "\xff"
		if op == "$gt" || op == "$gte" {
			bound = "a\xff"
		}
		q := &Query{Where: map[string]any{"n": map[string]any{op: bound}}}
		if q.Match(rec) {
			t.Errorf("where %s %q matched %q", op, bound, rec["n"])
		}
	}
}

// TopGun's server decodes a query string that is not valid UTF-8 as bytes
// (rmp-serde falls back to bytes, rmpv keeps them as Binary), and its
// values_equal then finds it equal to a record's bytes, at any depth: eq,
// neq, in, containsAll/containsAny and the where clause hold or fail as
// for a binary operand. Such a string never equalled the record's bytes
// here. A valid string still equals no bytes (TopGun: a String is not a
// Binary), and the ordering and string operators stay false.
func TestPredicate_Eval_invalidUTF8StringIsBytes(t *testing.T) {
	t.Parallel()
	// What a JS string with a lone surrogate becomes in MsgPack.
	const bad = "\xed\xa0\x80"
	long := func(v any) []any { // a list long enough to be looked up in a set
		l := []any{v}
		for i := range minSetLen {
			l = append(l, fmt.Sprintf("x%d", i), []byte{byte(i)})
		}
		return l
	}
	many := make([]any, 300) // contains over an index, not pairwise
	for i := range many {
		many[i] = fmt.Sprintf("t%d", i)
	}
	many[150] = []byte(bad)
	rec := map[string]any{
		"b":    []byte(bad),
		"ab":   []byte("ab"),
		"s":    "ab",
		"tags": []any{"vip", []byte(bad)},
		"many": many,
		"doc":  map[string]any{"k": []any{[]byte(bad)}},
	}
	wantMany := make([]any, 20)
	for i := range wantMany {
		wantMany[i] = fmt.Sprintf("w%d", i)
	}
	wantMany[19] = bad
	allMany := slices.Clone(many[140:160])
	allMany[10] = bad
	tests := []struct {
		name string
		p    *Predicate
		want bool
	}{
		{"eq", leaf(OpEq, "b", bad), true},
		{"neq", leaf(OpNeq, "b", bad), false},
		{"eq other bytes", leaf(OpEq, "b", bad+"x"), false},
		{"in", leaf(OpIn, "b", []any{"vip", bad}), true},
		{"in a set", leaf(OpIn, "b", long(bad)), true},
		{"in a set, bytes", leaf(OpIn, "b", long([]byte(bad))), true},
		{"in an array attribute", leaf(OpIn, "tags", bad), true},
		{"containsAny", leaf(OpContainsAny, "tags", []any{bad}), true},
		{"containsAll", leaf(OpContainsAll, "tags", []any{"vip", bad}), true},
		{"containsAll indexed", leaf(OpContainsAll, "many", allMany), true},
		{"containsAny indexed", leaf(OpContainsAny, "many", wantMany), true},
		{"nested", leaf(OpEq, "doc", map[string]any{"k": []any{bad}}), true},
		// Valid strings are strings, never bytes.
		{"valid eq bytes", leaf(OpEq, "ab", "ab"), false},
		{"valid in bytes", leaf(OpIn, "ab", long("ab")), false},
		{"bad eq string", leaf(OpEq, "s", "a\xff"), false},
		// Bytes do not order.
		{"gte", leaf(OpGte, "b", bad), false},
		{"startsWith", leaf(OpStartsWith, "b", bad), false},
	}
	for _, tc := range tests {
		if got := tc.p.Eval(rec, nil); got != tc.want {
			t.Errorf("%s: Eval = %v, want %v", tc.name, got, tc.want)
		}
		q := &Query{Predicate: tc.p}
		q.CompileLimit(math.MaxInt)
		if got := q.Match(rec); got != tc.want {
			t.Errorf("%s compiled: Match = %v, want %v", tc.name, got, tc.want)
		}
	}
	for _, where := range []map[string]any{
		{"b": bad},
		{"b": map[string]any{"$eq": bad}},
		{"b": map[string]any{"$in": long(bad)}},
		{"ab": map[string]any{"$nin": long("ab")}},
	} {
		q := &Query{Where: where}
		q.Compile()
		if !q.Match(rec) {
			t.Errorf("where %q did not match", where)
		}
	}

	// As a client sends it: a str of those bytes in a QUERY_SUB.
	frame, err := Encode(&QuerySub{QueryID: "q", MapName: "m", Query: Query{Predicate: leaf(OpEq, "b", bad)}})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(frame, append([]byte{0xa0 | byte(len(bad))}, bad...)) {
		t.Fatalf("the frame does not hold %q as a MsgPack str: % x", bad, frame)
	}
	m, err := Decode(frame)
	if err != nil {
		t.Fatal(err)
	}
	if q := m.(*QuerySub).Query; !q.Match(rec) {
		t.Error("a decoded QUERY_SUB comparing with a str that is not valid UTF-8 did not match the record's bytes")
	}
}
