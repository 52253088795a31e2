package protocol

import (
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/topgun-go/topgun/server/record"
	"github.com/topgun-go/topgun/server/wire"
)

// liveSub returns the server's subscription of query id on map mapName.
func (e *env) liveSub(t *testing.T, mapName, id string) *subscription {
	t.Helper()
	e.srv.mu.Lock()
	defer e.srv.mu.Unlock()
	for sub := range e.srv.byMap[mapName] {
		if sub.id == id {
			return sub
		}
	}
	t.Fatalf("no live query %q on map %q", id, mapName)
	return nil
}

// countCompares makes sub count the comparisons it makes from now on.
func countCompares(sub *subscription) *atomic.Int64 {
	var n atomic.Int64
	sub.mu.Lock()
	defer sub.mu.Unlock()
	orig := sub.compare
	counting := func(a, b wire.QueryResult) int {
		n.Add(1)
		return orig(a, b)
	}
	sub.compare = counting // and so in the result sets of later resyncs
	sub.members.cmp = counting
	return &n
}

// A full window of a limited query costs O(log n) comparisons per change
// of the map, not a scan of the window: the feed loop applies every change
// to every live query, and a connection may hold a million records in its
// windows.
func TestQuery_limitedWindowCostIsLogarithmic(t *testing.T) {
	t.Parallel()
	const window = 4096
	e := newEnv(t, envConfig{})
	w := e.dial(t)
	// window+1 records: the window holds s = 0..window-1 and is not
	// complete.
	ops := make([]wire.ClientOp, 0, window+1)
	for i := 0; i <= window; i++ {
		ops = append(ops, putOp(itoa(i), "m", fmt.Sprint("k", i), map[string]any{"s": int64(i)}, cts("w")))
	}
	w.write(ops...)
	c := e.dial(t)
	lim := uint32(window)
	q := wire.Query{Sort: []wire.SortField{{Field: "s", Direction: wire.Asc}}, Limit: &lim}
	c.send(&wire.QuerySub{QueryID: "top", MapName: "m", Query: q})
	resp := skipUntil[*wire.QueryResp](c) // SERVER_EVENTs of the writes may come first
	if len(resp.Results) != window || resp.HasMore == nil || !*resp.HasMore {
		t.Fatalf("QUERY_RESP: %d results, hasMore %v; want %d, true", len(resp.Results), resp.HasMore, window)
	}
	rows := map[string]any{}
	for _, r := range resp.Results {
		rows[r.Key] = r.Value
	}
	apply := func(u *wire.QueryUpdate) {
		if u.ChangeType == wire.Leave {
			delete(rows, u.Key)
		} else {
			rows[u.Key] = u.Value
		}
	}
	// The feed may still be delivering the writes above: count from the
	// ENTER of a record written after them.
	w.write(putOp("first", "m", "first", map[string]any{"s": int64(-1 << 40)}, cts("w")))
	for {
		u := skipUntil[*wire.QueryUpdate](c)
		apply(u)
		if u.Key == "first" {
			break
		}
	}
	calls := countCompares(e.liveSub(t, "m", "top"))

	// Each round: a record that sorts after the window (no update), an
	// update of a member in the middle (UPDATE), and a record that sorts
	// first (it ENTERs, the worst member LEAVEs).
	const rounds = 50
	for j := range rounds {
		w.write(
			putOp(fmt.Sprint("far", j), "m", fmt.Sprint("far", j), map[string]any{"s": int64(10*window + j)}, cts("w")),
			putOp(fmt.Sprint("mid", j), "m", fmt.Sprint("k", 100+j), map[string]any{"s": float64(100+j) + 0.5}, cts("w")),
			putOp(fmt.Sprint("new", j), "m", fmt.Sprint("new", j), map[string]any{"s": int64(-1 - j)}, cts("w")),
		)
	}
	// The feed applies changes in commit order: once the last ENTER is
	// here, every change has been applied.
	for n := 0; n < 3*rounds; {
		switch m := c.next().(type) {
		case *wire.QueryUpdate:
			n++
			apply(m)
		case *wire.ServerEvent:
		default:
			t.Fatalf("unexpected %s", m.Type())
		}
	}
	changes := int64(3 * rounds)
	perChange := int64(4*bits.Len(window) + 8) // a heap's sift down and up, and a few
	t.Logf("%d comparisons for %d changes to a window of %d", calls.Load(), changes, window)
	if got := calls.Load(); got > changes*perChange {
		t.Fatalf("%d comparisons for %d changes to a window of %d (%.0f per change), want at most %d per change",
			got, changes, window, float64(got)/float64(changes), perChange)
	}

	fresh := e.dial(t)
	fresh.send(&wire.QuerySub{QueryID: "fresh", MapName: "m", Query: q})
	want := map[string]any{}
	for _, r := range skipUntil[*wire.QueryResp](fresh).Results {
		want[r.Key] = r.Value
	}
	if !reflect.DeepEqual(rows, want) {
		t.Fatalf("live result differs from a fresh query:\n  live  %s\n  fresh %s", sortedRows(rows), sortedRows(want))
	}
}

// The result set's worst member is the one a scan of every member finds,
// through random puts, updates and deletes, for orders with several
// fields, both directions, missing fields, mixed kinds and NaN.
func TestResultSet_worstMatchesLinearScan(t *testing.T) {
	t.Parallel()
	queries := []wire.Query{
		{Sort: []wire.SortField{{Field: "s", Direction: wire.Asc}}},
		{Sort: []wire.SortField{{Field: "s", Direction: wire.Desc}, {Field: "n", Direction: wire.Asc}}},
		{Sort: []wire.SortField{{Field: "missing", Direction: wire.Desc}}}, // the key decides
	}
	for qi, q := range queries {
		seed := uint64(time.Now().UnixNano()) + uint64(qi)
		t.Run(fmt.Sprint("query", qi, "_seed_", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, seed))
			value := func() any {
				switch rng.IntN(8) {
				case 0:
					return "not a map"
				case 1:
					return map[string]any{"n": int64(rng.IntN(3))}
				case 2:
					return map[string]any{"s": math.NaN(), "n": int64(rng.IntN(3))}
				case 3:
					return map[string]any{"s": fmt.Sprint("v", rng.IntN(5))}
				case 4:
					return map[string]any{"s": rng.IntN(2) == 0}
				case 5:
					return map[string]any{"s": float64(rng.IntN(10)) + 0.5, "n": int64(rng.IntN(3))}
				}
				return map[string]any{"s": int64(rng.IntN(10)), "n": int64(rng.IntN(3))}
			}
			rs := newResultSet(q.Compare, 0)
			model := map[string]member{}
			for step := range 3000 {
				k := fmt.Sprint("k", rng.IntN(60))
				if rng.IntN(4) == 0 {
					rs.Delete(k)
					delete(model, k)
				} else {
					m := member{ts: record.Timestamp{Millis: uint64(step)}, value: value()}
					rs.Put(k, m)
					model[k] = m
				}
				var wk string
				var wm member
				for k, m := range model {
					if wk == "" || q.Compare(wire.QueryResult{Key: k, Value: m.value}, wire.QueryResult{Key: wk, Value: wm.value}) > 0 {
						wk, wm = k, m
					}
				}
				gk, gm, ok := rs.Worst()
				if rs.Len() != len(model) || ok != (len(model) > 0) || gk != wk || !reflect.DeepEqual(gm, wm) {
					t.Fatalf("step %d: worst %q %+v (len %d), want %q %+v (len %d)", step, gk, gm, rs.Len(), wk, wm, len(model))
				}
				for k, m := range model {
					if got, ok := rs.Get(k); !ok || !reflect.DeepEqual(got, m) {
						t.Fatalf("step %d: Get(%q) = %+v, %v; want %+v", step, k, got, ok, m)
					}
				}
			}
		})
	}
}

// When the member that sorts last in a limited query's incomplete result
// changes but still sorts before every record outside the result, the
// result is right as it is: the map is not read again. When it may sort
// after one, the map is read again and the result refills.
func TestQuery_limitedWorstUpdateKeptWithoutResync(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	w := e.dial(t)
	for i := range 5 {
		w.write(putOp(itoa(i), "m", fmt.Sprint("k", i), map[string]any{"s": int64(i)}, cts("w")))
	}
	c := e.dial(t)
	lim := uint32(3)
	q := wire.Query{Sort: []wire.SortField{{Field: "s", Direction: wire.Asc}}, Limit: &lim}
	c.send(&wire.QuerySub{QueryID: "top", MapName: "m", Query: q})
	rows := map[string]any{}
	for _, r := range skipUntil[*wire.QueryResp](c).Results {
		rows[r.Key] = r.Value
	}
	sub := e.liveSub(t, "m", "top")
	update := func() *wire.QueryUpdate {
		t.Helper()
		u := skipUntil[*wire.QueryUpdate](c)
		if u.ChangeType == wire.Leave {
			delete(rows, u.Key)
		} else {
			rows[u.Key] = u.Value
		}
		return u
	}
	// applied waits until the change whose update the client read has
	// been applied in full (a resync it needs is queued by then).
	applied := func() int64 {
		sub.mu.Lock()
		defer sub.mu.Unlock()
		return e.srv.resyncsQueued.Load()
	}
	base := applied()

	// k2 is the last of k0..k2 and stays before k3: nothing to read.
	w.write(putOp("a", "m", "k2", map[string]any{"s": 2.5}, cts("w")))
	if u := update(); u.Key != "k2" || u.ChangeType != wire.Update {
		t.Fatalf("update %+v, want k2 UPDATE", u)
	}
	if n := applied() - base; n != 0 {
		t.Fatalf("%d resyncs queued for a last member that still sorts first, want 0", n)
	}
	// k4, outside, now sorts before k3 but after k2: nothing is sent.
	// Then k1 sorts after k4: it leaves and k4 enters (read again).
	w.write(putOp("b", "m", "k4", map[string]any{"s": 2.7}, cts("w")))
	w.write(putOp("c", "m", "k1", map[string]any{"s": 2.8}, cts("w")))
	if u := update(); u.Key != "k1" || u.ChangeType != wire.Update {
		t.Fatalf("update %+v, want k1 UPDATE", u)
	}
	for _, want := range []string{"k1 LEAVE", "k4 ENTER"} {
		if u := update(); fmt.Sprint(u.Key, " ", u.ChangeType) != want {
			t.Fatalf("update %+v, want %s", u, want)
		}
	}
	fresh := e.dial(t)
	fresh.send(&wire.QuerySub{QueryID: "fresh", MapName: "m", Query: q})
	want := map[string]any{}
	for _, r := range skipUntil[*wire.QueryResp](fresh).Results {
		want[r.Key] = r.Value
	}
	if !reflect.DeepEqual(rows, want) {
		t.Fatalf("live result differs from a fresh query:\n  live  %s\n  fresh %s", sortedRows(rows), sortedRows(want))
	}
}
