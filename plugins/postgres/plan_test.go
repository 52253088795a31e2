package postgres

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/topgun-go/topgun/abi"
)

// planNodes flattens an EXPLAIN (FORMAT JSON) plan into "Node Type[ on
// index]" strings.
func planNodes(node map[string]any, out *[]string) {
	s, _ := node["Node Type"].(string)
	if idx, ok := node["Index Name"].(string); ok {
		s += " on " + idx
	}
	*out = append(*out, s)
	if kids, ok := node["Plans"].([]any); ok {
		for _, k := range kids {
			if m, ok := k.(map[string]any); ok {
				planNodes(m, out)
			}
		}
	}
}

// TestQueries_useIndexes checks that every query is served by the index
// meant for it, without sorting: scans walk the primary key in key order,
// ListExpired the partial expiry index, ListMaps the map index. Sequential
// scans are disabled so that the small test table does not hide a query
// that no index can serve.
func TestQueries_useIndexes(t *testing.T) {
	t.Parallel()
	b, url := openFresh(t)
	ctx := testCtx(t)
	for m := range 3 {
		var batch abi.Batch
		batch.Now = 1
		for i := range 1000 {
			exp := int64(0)
			if i%50 == 0 {
				exp = int64(1000 + i)
			}
			batch.Put(fmt.Sprint("map", m), fmt.Sprintf("key-%05d", i), i%10 == 0, []byte("value"), exp)
		}
		apply(t, b, &batch)
	}
	conn := sqlConn(t, url)
	for _, s := range []string{`ANALYZE topgun_maps`, `SET enable_seqscan = off`} {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	scanFirstSQL, scanAfterSQL := scanSQL("")
	cases := []struct {
		name      string
		sql       string
		args      []any
		wantIndex string
		sortOK    bool // an incremental sort on top of the index order
	}{
		{"scan first", scanFirstSQL, []any{"map1", false, int64(100), int64(1 << 20)}, "topgun_maps_pkey", false},
		{"scan after", scanAfterSQL, []any{"map1", false, int64(100), int64(1 << 20), "key-00500"}, "topgun_maps_pkey", false},
		{"get", getSQL, []any{"map1", false, []string{"key-00001", "key-00002"}}, "topgun_maps_pkey", false},
		{"delete", deleteSQL, []any{[]string{"map1"}, []string{"key-00001"}, []bool{false}}, "topgun_maps_pkey", false},
		{"list expired", listExpiredSQL, []any{int64(1500), int64(10)}, "topgun_maps_expiry", true},
		{"list maps", listMapsSQL, nil, "idx_topgun_maps_map", false},
	}
	for _, c := range cases {
		var raw []byte
		if err := conn.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+c.sql, c.args...).Scan(&raw); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var plan []map[string]any
		if err := json.Unmarshal(raw, &plan); err != nil || len(plan) == 0 {
			t.Fatalf("%s: plan %s: %v", c.name, raw, err)
		}
		var nodes []string
		planNodes(plan[0]["Plan"].(map[string]any), &nodes)
		if !slices.ContainsFunc(nodes, func(n string) bool { return strings.HasSuffix(n, " on "+c.wantIndex) }) {
			t.Errorf("%s: plan %q does not use %s", c.name, nodes, c.wantIndex)
		}
		if slices.Contains(nodes, "Sort") || (!c.sortOK && slices.Contains(nodes, "Incremental Sort")) {
			t.Errorf("%s: plan %q sorts", c.name, nodes)
		}
	}
}
