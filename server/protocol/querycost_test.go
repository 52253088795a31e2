package protocol

import (
	"strings"
	"testing"

	"github.com/topgun-go/topgun/server/wire"
)

// orOf is an or of n eq leaves: wire.Query.Cost 1 + n.
func orOf(n int) wire.Query {
	kids := make([]*wire.Predicate, n)
	for i := range kids {
		kids[i] = &wire.Predicate{Op: wire.OpEq, Attribute: "n", Value: int64(i)}
	}
	return wire.Query{Predicate: &wire.Predicate{Op: wire.OpOr, Children: kids}}
}

// Every change of a map is matched against each live query of it on the
// one goroutine of the change feed: a QUERY_SUB whose filter costs more
// than wire.MaxQueryCost to match is refused (LIMIT), though it fits the
// query memory budget. Before, an or of hundreds of thousands of leaves
// was accepted and made every write of its map cost that much.
func TestQuery_costBound(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	w := e.dial(t)
	w.write(putOp("1", "m", "k", map[string]any{"n": int64(3)}, cts("w")))
	c := e.dial(t)
	c.send(&wire.QuerySub{QueryID: "big", MapName: "m", Query: orOf(wire.MaxQueryCost)})
	if r := skipUntil[*wire.QueryResp](c); r.Code != "LIMIT" || !strings.Contains(r.Error, "10000") ||
		!strings.Contains(r.Error, "wire.MaxQueryCost") || len(r.Results) != 0 {
		t.Fatalf("query of %d nodes: %+v", 1+wire.MaxQueryCost, r)
	}
	c.send(&wire.QuerySub{QueryID: "ok", MapName: "m", Query: orOf(wire.MaxQueryCost - 1)})
	if r := skipUntil[*wire.QueryResp](c); r.Error != "" || len(r.Results) != 1 {
		t.Fatalf("query of %d nodes: %+v", wire.MaxQueryCost, r)
	}
	// The refused one was not kept: a write reaches the accepted one only.
	w.write(putOp("2", "m", "k2", map[string]any{"n": int64(4)}, cts("w")))
	if u := skipUntil[*wire.QueryUpdate](c); u.QueryID != "ok" || u.Key != "k2" {
		t.Fatalf("update %+v", u)
	}
	// Counted with the other refusals (topgun_queries_refused_total).
	if n := e.srv.Stats().QueriesRefused; n != 1 {
		t.Fatalf("QueriesRefused = %d, want 1", n)
	}
}

// POST /sync filters share the bound: a where-clause of more fields than
// it allows gets 413.
func TestHTTPSync_queryCostBound(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	e.postSync(t, &wire.HTTPSyncRequest{ClientID: "c", ClientHLC: cts("h"), Operations: []wire.ClientOp{
		putOp("1", "m", "k", map[string]any{"f0": int64(0)}, cts("h")),
	}}, "")
	where := func(n int) map[string]any {
		m := map[string]any{}
		for i := 0; i < n; i++ {
			m["f"+itoa(i)] = map[string]any{"$exists": i == 0}
		}
		return m
	}
	// Each field and its one operator count 1 each.
	resp := e.postSync(t, &wire.HTTPSyncRequest{ClientID: "c", ClientHLC: cts("h"), Queries: []wire.HTTPQuery{
		{QueryID: "big", MapName: "m", Filter: where(wire.MaxQueryCost/2 + 1)},
		{QueryID: "ok", MapName: "m", Filter: where(wire.MaxQueryCost / 2)},
	}}, "")
	if len(resp.Errors) != 1 || resp.Errors[0].Code != 413 || resp.Errors[0].Context != "big" ||
		!strings.Contains(resp.Errors[0].Message, "wire.MaxQueryCost") {
		t.Fatalf("errors %+v", resp.Errors)
	}
	if len(resp.QueryResults) != 1 || resp.QueryResults[0].QueryID != "ok" || len(resp.QueryResults[0].Results) != 1 {
		t.Fatalf("results %+v", resp.QueryResults)
	}
}

// A long in list is a hash set for its scalars only: one of arrays is
// scanned for every change of the map, and costs accordingly (as does
// equality with a large array).
func TestQuery_costBoundScannedValues(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	c := e.dial(t)
	list := make([]any, wire.MaxQueryCost)
	for i := range list {
		list[i] = []any{int64(i)}
	}
	c.send(&wire.QuerySub{QueryID: "in", MapName: "m", Query: wire.Query{Predicate: &wire.Predicate{Op: wire.OpIn, Attribute: "a", Value: list}}})
	if r := skipUntil[*wire.QueryResp](c); r.QueryID != "in" || r.Code != "LIMIT" || !strings.Contains(r.Error, "wire.MaxQueryCost") {
		t.Fatalf("in of %d arrays: %+v", len(list), r)
	}
	c.send(&wire.QuerySub{QueryID: "eq", MapName: "m", Query: wire.Query{Where: map[string]any{"a": list}}})
	if r := skipUntil[*wire.QueryResp](c); r.QueryID != "eq" || r.Code != "LIMIT" || !strings.Contains(r.Error, "wire.MaxQueryCost") {
		t.Fatalf("where equal to %d arrays: %+v", len(list), r)
	}
}

// A regex costs by its compiled program, which a short pattern can make
// large: an or of 700 leaves of [a-z]{1000}! (one shared program of 1001
// instructions, a few hundred bytes of memory per leaf) steps through
// about 1000 instructions per byte of every string it is matched with.
func TestQuery_costBoundRegexProgram(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	c := e.dial(t)
	kids := make([]*wire.Predicate, 700)
	for i := range kids {
		kids[i] = &wire.Predicate{Op: wire.OpRegex, Attribute: "s", Value: "[a-z]{1000}!"}
	}
	c.send(&wire.QuerySub{QueryID: "re", MapName: "m", Query: wire.Query{Predicate: &wire.Predicate{Op: wire.OpOr, Children: kids}}})
	if r := skipUntil[*wire.QueryResp](c); r.QueryID != "re" || r.Code != "LIMIT" || !strings.Contains(r.Error, "wire.MaxQueryCost") {
		t.Fatalf("or of %d regex leaves: %+v", len(kids), r)
	}
	// One such leaf is fine.
	c.send(&wire.QuerySub{QueryID: "one", MapName: "m", Query: wire.Query{Predicate: kids[0]}})
	if r := skipUntil[*wire.QueryResp](c); r.QueryID != "one" || r.Error != "" {
		t.Fatalf("one regex leaf: %+v", r)
	}
}

// A limited query's sort places every change of its map on the feed's
// goroutine, looking each sort field up in both records of each
// comparison: a QUERY_SUB of thousands of sort fields (hundreds of
// thousands fit one frame) is refused like a costly filter. It was
// accepted at cost 0.
func TestQuery_costBoundSortFields(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	w := e.dial(t)
	w.write(putOp("1", "m", "k", map[string]any{"a": int64(1)}, cts("w")))
	c := e.dial(t)
	sort := make([]wire.SortField, 5000)
	for i := range sort {
		sort[i] = wire.SortField{Field: "a", Direction: wire.Asc}
	}
	limit := uint32(1000)
	c.send(&wire.QuerySub{QueryID: "sort", MapName: "m", Query: wire.Query{Sort: sort, Limit: &limit}})
	if r := skipUntil[*wire.QueryResp](c); r.QueryID != "sort" || r.Code != "LIMIT" || !strings.Contains(r.Error, "wire.MaxQueryCost") {
		t.Fatalf("sort of %d fields: %+v", len(sort), r)
	}
	// A real sort is fine.
	c.send(&wire.QuerySub{QueryID: "ok", MapName: "m", Query: wire.Query{Sort: sort[:3], Limit: &limit}})
	if r := skipUntil[*wire.QueryResp](c); r.QueryID != "ok" || r.Error != "" || len(r.Results) != 1 {
		t.Fatalf("sort of 3 fields: %+v", r)
	}
}

// The feed projects the value of every update it sends on the query's
// fields: a QUERY_SUB naming thousands of them (hundreds of thousands fit
// one frame, 33 ms of the feed per update) is refused like a costly
// filter. It was accepted at cost 0.
func TestQuery_costBoundFields(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	w := e.dial(t)
	w.write(putOp("1", "m", "k", map[string]any{"a": int64(1), "b": int64(2)}, cts("w")))
	c := e.dial(t)
	fields := make([]string, wire.MaxQueryCost+1)
	for i := range fields {
		fields[i] = "a"
	}
	c.send(&wire.QuerySub{QueryID: "fields", MapName: "m", Fields: fields})
	if r := skipUntil[*wire.QueryResp](c); r.QueryID != "fields" || r.Code != "LIMIT" || !strings.Contains(r.Error, "wire.MaxQueryCost") {
		t.Fatalf("%d fields: %+v", len(fields), r)
	}
	// A real projection is fine.
	c.send(&wire.QuerySub{QueryID: "ok", MapName: "m", Fields: fields[:2]})
	r := skipUntil[*wire.QueryResp](c)
	if v, _ := r.Results[0].Value.(map[string]any); r.QueryID != "ok" || r.Error != "" || len(r.Results) != 1 || len(v) != 1 || v["a"] != int64(1) {
		t.Fatalf("2 fields: %+v", r)
	}
}
