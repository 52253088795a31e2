package protocol

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/topgun-go/topgun/server/wire"
)

// Live queries on a server sharing PostgreSQL with another: random writes
// through both servers race QUERY_SUBs on one of them; every QUERY_UPDATE
// must fit what the client holds, and at the end every live result must
// equal a fresh QUERY_SUB, once both servers hold the same records.
func TestShared_liveResultsMatchFreshQuery(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	a, b := sharedEnvs(t, nil)
	wa, wb := a.dial(t), b.dial(t)
	c := a.dial(t)
	queries := modelQueries()
	models := map[string]*liveModel{}
	subscribe := func(id string, q wire.Query) {
		c.send(&wire.QuerySub{QueryID: id, MapName: "m", Query: q})
		m := models[id]
		if m == nil {
			m = &liveModel{q: q}
			models[id] = m
		}
		m.q = q
	}
	handle := func(msg wire.Message) {
		switch m := msg.(type) {
		case *wire.QueryResp:
			lm := models[m.QueryID]
			if lm == nil || m.Error != "" {
				t.Fatalf("seed %d: QUERY_RESP %+v", seed, m)
			}
			lm.rows = map[string]any{}
			for _, r := range m.Results {
				lm.rows[r.Key] = r.Value
			}
			lm.answered = true
		case *wire.QueryUpdate:
			lm := models[m.QueryID]
			if lm == nil || !lm.answered {
				t.Fatalf("seed %d: QUERY_UPDATE %s %q of query %q before its QUERY_RESP", seed, m.ChangeType, m.Key, m.QueryID)
			}
			_, held := lm.rows[m.Key]
			switch m.ChangeType {
			case wire.Enter:
				if held {
					t.Fatalf("seed %d: query %q: ENTER of %q, already in the result", seed, m.QueryID, m.Key)
				}
				lm.rows[m.Key] = m.Value
			case wire.Update:
				if !held {
					t.Fatalf("seed %d: query %q: UPDATE of %q, not in the result", seed, m.QueryID, m.Key)
				}
				lm.rows[m.Key] = m.Value
			case wire.Leave:
				if !held {
					t.Fatalf("seed %d: query %q: LEAVE of %q, not in the result", seed, m.QueryID, m.Key)
				}
				delete(lm.rows, m.Key)
			}
			if lm.q.Limit != nil && len(lm.rows) > int(*lm.q.Limit) {
				t.Fatalf("seed %d: query %q holds %d records, over its limit %d", seed, m.QueryID, len(lm.rows), *lm.q.Limit)
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
	randValue := func() any {
		if rng.IntN(8) == 0 {
			return "not a map"
		}
		return map[string]any{"s": int64(rng.IntN(10)), "g": rng.IntN(2) == 0, "n": fmt.Sprint("n", rng.IntN(3)), "z": int64(rng.IntN(4))}
	}
	const keys = 10
	batches := map[*client]int{}
	for step := range 200 {
		switch p := rng.IntN(100); {
		case p < 85:
			w, node := wb, "wb"
			if rng.IntN(3) == 0 {
				w, node = wa, "wa"
			}
			var ops []wire.ClientOp
			for range 1 + rng.IntN(3) {
				id := fmt.Sprint(step, "-", len(ops))
				k := fmt.Sprint("k", rng.IntN(keys))
				if rng.IntN(5) == 0 {
					ops = append(ops, removeOp(id, "m", k, cts(node)))
				} else {
					ops = append(ops, putOp(id, "m", k, randValue(), cts(node)))
				}
			}
			w.send(&wire.OpBatch{Ops: ops})
			batches[w]++
		default:
			i := rng.IntN(len(queries))
			subscribe(fmt.Sprint("x", step), queries[i])
		}
		drain()
		if step%8 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	for w, n := range batches {
		for acks := 0; acks < n; {
			switch m := w.next().(type) {
			case *wire.OpAck:
				acks++
			case *wire.ErrorMessage:
				t.Fatalf("seed %d: ERROR %+v", seed, m)
			}
		}
	}
	// Both servers hold the same records.
	eventually(t, "both servers hold the same records", func() bool {
		drain()
		for i := range keys {
			k := fmt.Sprint("k", i)
			va, ta, oka := a.getLWW("m", k)
			vb, tb, okb := b.getLWW("m", k)
			if oka != okb || ta != tb || !reflect.DeepEqual(va, vb) {
				return false
			}
		}
		return true
	})

	ids := make([]string, 0, len(models))
	for id := range models {
		ids = append(ids, id)
	}
	matchFresh(t, seed, a.dial(t), c, handle, models, ids, 300*time.Millisecond)
}
