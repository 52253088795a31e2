package protocol

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/topgun-go/topgun/server/store"
	"github.com/topgun-go/topgun/server/wire"
)

// liveModel is what a client holds of one live query: the QUERY_RESP with
// the QUERY_UPDATEs applied.
type liveModel struct {
	q        wire.Query
	rows     map[string]any
	answered bool // QUERY_RESP seen
	closing  bool // QUERY_UNSUB sent, PONG not yet seen
	closed   bool // QUERY_UNSUB handled: nothing more may arrive for it
}

// modelQueries are the queries of the model test: unlimited and limited,
// sorted both ways, by several fields, by a field some values lack.
func modelQueries() []wire.Query {
	lim := func(n uint32) *uint32 { return &n }
	return []wire.Query{
		{},
		{Where: map[string]any{"g": true}},
		{Sort: []wire.SortField{{Field: "s", Direction: wire.Desc}}, Limit: lim(3)},
		{Predicate: &wire.Predicate{Op: wire.OpGte, Attribute: "s", Value: int64(4)},
			Sort: []wire.SortField{{Field: "s", Direction: wire.Asc}, {Field: "n", Direction: wire.Desc}}, Limit: lim(4)},
		{Where: map[string]any{"s": map[string]any{"$lt": int64(6)}}, Sort: []wire.SortField{{Field: "s", Direction: wire.Asc}}, Limit: lim(2)},
		{Sort: []wire.SortField{{Field: "z", Direction: wire.Asc}}, Limit: lim(3)},
		{Predicate: &wire.Predicate{Op: wire.OpOr, Children: []*wire.Predicate{
			{Op: wire.OpEq, Attribute: "g", Value: false},
			{Op: wire.OpIsNull, Attribute: "s"},
		}}, Sort: []wire.SortField{{Field: "s", Direction: wire.Desc}}, Limit: lim(1)},
		{Limit: lim(0)},
		// Where operators, sorts by a field of mixed kinds (numbers past
		// 2^53 as integers and floats, strings, booleans, nil, missing).
		{Where: map[string]any{"s": map[string]any{"$in": []any{int64(1), int64(2), int64(3), 4.5, int64(7)}}},
			Sort: []wire.SortField{{Field: "x", Direction: wire.Desc}}, Limit: lim(2)},
		{Where: map[string]any{"n": map[string]any{"$regex": "^n[01]$"}, "g": map[string]any{"$exists": true}},
			Sort: []wire.SortField{{Field: "x", Direction: wire.Asc}, {Field: "s", Direction: wire.Desc}}, Limit: lim(3)},
		{Where: map[string]any{"s": map[string]any{"$ne": int64(3), "$lte": int64(8)}},
			Sort: []wire.SortField{{Field: "x", Direction: wire.Asc}}, Limit: lim(4)},
		{Predicate: &wire.Predicate{Op: wire.OpNot, Children: []*wire.Predicate{{Op: wire.OpBetween, Attribute: "s", Value: []any{int64(2), 5.5}}}},
			Sort: []wire.SortField{{Field: "x", Direction: wire.Desc}, {Field: "n", Direction: wire.Asc}}, Limit: lim(3)},
	}
}

// mixedValue is a sort value of any kind, numbers near 2^60 included,
// where float64 and int64 round differently.
func mixedValue(rng *rand.Rand) any {
	switch rng.IntN(8) {
	case 0:
		return int64(1<<60) + int64(rng.IntN(3)) - 1
	case 1:
		return float64(1 << 60)
	case 2:
		return fmt.Sprint("x", rng.IntN(3))
	case 3:
		return rng.IntN(2) == 0
	case 4:
		return nil
	case 5:
		return float64(rng.IntN(4)) / 2
	}
	return int64(rng.IntN(4))
}

// TestQuery_liveResultsMatchFreshQuery drives random writes, removes,
// expiries, OR-Map writes, subscribes, re-subscribes and unsubscribes
// against live queries, checks every QUERY_UPDATE against what the client
// holds (no ENTER of a held key, no UPDATE or LEAVE of a missing one, never
// more than the limit, nothing after an unsubscribe is handled), and at the
// end that every live result equals a fresh QUERY_SUB of the same query.
func TestQuery_liveResultsMatchFreshQuery(t *testing.T) {
	t.Parallel()
	for run := range 4 {
		seed := uint64(time.Now().UnixNano()) + uint64(run)
		t.Run(fmt.Sprint("seed_", seed), func(t *testing.T) {
			runQueryModel(t, seed, 400)
		})
	}
}

func runQueryModel(t *testing.T, seed uint64, steps int) {
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	// The wall clock is far ahead of the real one, so that only the reaper
	// (driven here) ends records with a TTL. One record per scan page,
	// each page a little late: commits land while queries read the map.
	e := newEnv(t, envConfig{fakeWall: true, storeOpts: func(o *store.Options) { o.ScanBytes = 1 }})
	e.be.setScanHook(func() error { time.Sleep(100 * time.Microsecond); return nil })
	e.wall.Add(int64(time.Hour / time.Millisecond))
	var counter uint32
	ts := func() wire.Timestamp {
		counter++
		return wire.Timestamp{Millis: uint64(e.wall.Load()), Counter: counter, NodeID: "w"}
	}
	w := e.dial(t)
	c := e.dial(t)
	queries := modelQueries()
	models := map[string]*liveModel{}
	subscribe := func(id string, q wire.Query) {
		if m := models[id]; m != nil && m.closing && !m.closed {
			return // updates sent before the QUERY_UNSUB may still come
		}
		c.send(&wire.QuerySub{QueryID: id, MapName: "m", Query: q})
		m := models[id]
		if m == nil || m.closed {
			m = &liveModel{q: q}
			models[id] = m
		}
		// A re-subscribe: updates of the old query may still arrive
		// before the new QUERY_RESP, which replaces the result.
		m.q = q
	}
	pings := 0
	var pendingUnsubs [][]string // by PING: the queries unsubscribed before it
	handle := func(msg wire.Message) {
		switch m := msg.(type) {
		case *wire.QueryResp:
			lm := models[m.QueryID]
			if lm == nil || lm.closed {
				t.Fatalf("QUERY_RESP of unknown query %q", m.QueryID)
			}
			if m.Error != "" {
				t.Fatalf("QUERY_RESP error %q", m.Error)
			}
			lm.rows = map[string]any{}
			for _, r := range m.Results {
				lm.rows[r.Key] = r.Value
			}
			lm.answered = true
		case *wire.QueryUpdate:
			lm := models[m.QueryID]
			if lm == nil || lm.closed {
				t.Fatalf("QUERY_UPDATE %s %q of query %q after its QUERY_UNSUB was handled", m.ChangeType, m.Key, m.QueryID)
			}
			if !lm.answered {
				t.Fatalf("QUERY_UPDATE %s %q of query %q before its QUERY_RESP", m.ChangeType, m.Key, m.QueryID)
			}
			_, held := lm.rows[m.Key]
			switch m.ChangeType {
			case wire.Enter:
				if held {
					t.Fatalf("query %q: ENTER of %q, already in the result", m.QueryID, m.Key)
				}
				lm.rows[m.Key] = m.Value
			case wire.Update:
				if !held {
					t.Fatalf("query %q: UPDATE of %q, not in the result", m.QueryID, m.Key)
				}
				lm.rows[m.Key] = m.Value
			case wire.Leave:
				if !held {
					t.Fatalf("query %q: LEAVE of %q, not in the result", m.QueryID, m.Key)
				}
				delete(lm.rows, m.Key)
			}
			if lm.q.Limit != nil && len(lm.rows) > int(*lm.q.Limit) {
				t.Fatalf("query %q holds %d records, over its limit %d", m.QueryID, len(lm.rows), *lm.q.Limit)
			}
		case *wire.Pong:
			ids := pendingUnsubs[0]
			pendingUnsubs = pendingUnsubs[1:]
			for _, id := range ids {
				if lm := models[id]; lm != nil && lm.closing {
					lm.closed = true
				}
			}
		}
	}
	drain := func() {
		for {
			select {
			case m := <-c.msgs:
				handle(m)
			default:
				return
			}
		}
	}
	for i, q := range queries {
		subscribe(fmt.Sprint("q", i), q)
	}

	keys := 12
	randValue := func() any {
		switch rng.IntN(10) {
		case 0:
			return "not a map"
		case 1:
			return map[string]any{"g": rng.IntN(2) == 0, "n": fmt.Sprint("n", rng.IntN(3))}
		case 2:
			return map[string]any{"s": float64(rng.IntN(10)) + 0.5, "g": rng.IntN(2) == 0, "z": int64(rng.IntN(4))}
		case 3, 4:
			return map[string]any{"s": int64(rng.IntN(10)), "g": rng.IntN(2) == 0, "n": fmt.Sprint("n", rng.IntN(3)), "x": mixedValue(rng)}
		}
		return map[string]any{"s": int64(rng.IntN(10)), "g": rng.IntN(2) == 0, "n": fmt.Sprint("n", rng.IntN(3)), "z": int64(rng.IntN(4))}
	}
	batches := 0
	for step := range steps {
		switch p := rng.IntN(100); {
		case p < 80:
			var ops []wire.ClientOp
			for range 1 + rng.IntN(4) {
				id := fmt.Sprint(step, "-", len(ops))
				k := fmt.Sprint("k", rng.IntN(keys))
				switch r := rng.IntN(20); {
				case r < 3:
					ops = append(ops, removeOp(id, "m", k, ts()))
				case r < 5:
					op := putOp(id, "m", k, randValue(), ts())
					ttl := uint64(500 + rng.IntN(2000))
					op.Record.TTLMs = &ttl
					ops = append(ops, op)
				case r < 6:
					ops = append(ops, orAddOp(id, "m", fmt.Sprint("o", rng.IntN(3)), randValue(), ts()))
				default:
					ops = append(ops, putOp(id, "m", k, randValue(), ts()))
				}
			}
			w.send(&wire.OpBatch{Ops: ops})
			batches++
		case p < 85:
			e.wall.Add(1000)
			if _, err := e.st.ReapExpired(context.Background()); err != nil {
				t.Fatal(err)
			}
		case p < 93:
			i := rng.IntN(len(queries))
			subscribe(fmt.Sprint("q", i), queries[i])
		case p < 96:
			i := rng.IntN(len(queries))
			id := fmt.Sprint("q", i)
			if lm := models[id]; lm != nil && !lm.closing && !lm.closed {
				lm.closing = true
				c.send(&wire.QueryUnsub{QueryID: id})
				c.send(&wire.Ping{Timestamp: uint64(pings)})
				pings++
				pendingUnsubs = append(pendingUnsubs, []string{id})
			}
		default:
			// A query of its own, subscribed mid-stream.
			i := rng.IntN(len(queries))
			subscribe(fmt.Sprint("x", step), queries[i])
		}
		drain()
		if step%16 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	// Every write committed.
	for acks := 0; acks < batches; {
		switch m := w.next().(type) {
		case *wire.OpAck:
			acks++
		case *wire.ErrorMessage:
			t.Fatalf("ERROR %+v", m)
		}
	}
	e.wall.Add(1000)
	if _, err := e.st.ReapExpired(context.Background()); err != nil {
		t.Fatal(err)
	}

	var ids []string
	for id, lm := range models {
		if !lm.closing && !lm.closed {
			ids = append(ids, id)
		}
	}
	// Let resyncs finish: wait for a pause in the updates.
	matchFresh(t, seed, e.dial(t), c, handle, models, ids, 200*time.Millisecond)
}

// matchFresh checks that the live result of each query ids names equals
// a fresh QUERY_SUB of it on fresh, once c's updates (handed to handle)
// pause for quiet, until waitFor has passed.
func matchFresh(t *testing.T, seed uint64, fresh, c *client, handle func(wire.Message), models map[string]*liveModel, ids []string, quiet time.Duration) {
	t.Helper()
	freshResult := func(id string, q wire.Query) map[string]any {
		fid := "fresh-" + id
		fresh.send(&wire.QuerySub{QueryID: fid, MapName: "m", Query: q})
		r := skipUntil[*wire.QueryResp](fresh)
		fresh.send(&wire.QueryUnsub{QueryID: fid})
		out := map[string]any{}
		for _, x := range r.Results {
			out[x.Key] = x.Value
		}
		return out
	}
	slices.Sort(ids)
	deadline := time.Now().Add(waitFor)
	for {
		for paused := false; !paused; {
			select {
			case m := <-c.msgs:
				handle(m)
			case <-time.After(quiet):
				paused = true
			}
		}
		var diffs []string
		for _, id := range ids {
			lm := models[id]
			want := freshResult(id, lm.q)
			if !lm.answered || !reflect.DeepEqual(lm.rows, want) {
				diffs = append(diffs, fmt.Sprintf("query %s (%+v):\n  live  %v\n  fresh %v", id, lm.q, sortedRows(lm.rows), sortedRows(want)))
			}
		}
		if len(diffs) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("seed %d: live results differ from a fresh query:\n%s", seed, strings.Join(diffs, "\n"))
		}
	}
}

func sortedRows(rows map[string]any) string {
	keys := make([]string, 0, len(rows))
	for k := range rows {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%v ", k, rows[k])
	}
	return b.String()
}

// TestQuery_burstOfChangesKeepsReadingSubscriber: one OP_BATCH (a TopGun
// client flushing its offline op log sends them all in one) commits many
// changes at once; a subscriber that reads everything must get every
// SERVER_EVENT and QUERY_UPDATE, not be disconnected as a slow reader.
func TestQuery_burstOfChangesKeepsReadingSubscriber(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	c := e.dial(t)
	c.send(&wire.QuerySub{QueryID: "all", MapName: "m"})
	expect[*wire.QueryResp](c)
	w := e.dial(t)
	const n = 800
	ops := make([]wire.ClientOp, n)
	for i := range ops {
		ops[i] = putOp(itoa(i), "m", "k"+itoa(i), map[string]any{"i": int64(i)}, cts("w"))
	}
	w.write(ops...)
	events, updates := 0, 0
	for events < n || updates < n {
		switch m := c.next().(type) {
		case *wire.ServerEvent:
			events++
		case *wire.QueryUpdate:
			updates++
		default:
			t.Fatalf("unexpected %s", m.Type())
		}
	}
	c.ping()
}
