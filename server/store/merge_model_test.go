package store

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/topgun-go/topgun/plugins/null"
	"github.com/topgun-go/topgun/server/merkle"
	"github.com/topgun-go/topgun/server/record"
)

// modelClient is a deliberately simple reference of TopGun's client merge
// rules: LWW accepts a record when it has none or the incoming timestamp is
// strictly greater; an OR add is ignored when its tag is tombstoned or
// present; an OR remove drops the tag's entries and tombstones the tag.
type modelClient struct {
	lww map[string]lwwRec
	or  map[string]*orRec
}

type lwwRec struct {
	v     string
	null  bool
	ts    record.Timestamp
	ttlMs uint64
}

type orRec struct {
	entries map[string]record.ORMapEntry
	tombs   map[string]bool
}

func newModelClient() *modelClient {
	return &modelClient{lww: map[string]lwwRec{}, or: map[string]*orRec{}}
}

func (m *modelClient) apply(op Op) {
	switch op.Kind {
	case OpPut, OpRemove:
		cur, ok := m.lww[op.Key]
		if ok && op.Timestamp.Compare(cur.ts) <= 0 {
			return
		}
		r := lwwRec{ts: op.Timestamp, null: op.Kind == OpRemove}
		if !r.null {
			r.v, r.ttlMs = op.Value.Text(), op.TTLMs
		}
		m.lww[op.Key] = r
	case OpORAdd:
		o := m.orKey(op.Key)
		if o.tombs[op.Tag] {
			return
		}
		if _, ok := o.entries[op.Tag]; ok {
			return
		}
		o.entries[op.Tag] = record.ORMapEntry{Value: op.Value, Tag: op.Tag, Timestamp: op.Timestamp, TTLMs: op.TTLMs}
	case OpORRemove:
		o := m.orKey(op.Key)
		delete(o.entries, op.Tag)
		o.tombs[op.Tag] = true
	}
}

func (m *modelClient) orKey(k string) *orRec {
	o := m.or[k]
	if o == nil {
		o = &orRec{entries: map[string]record.ORMapEntry{}, tombs: map[string]bool{}}
		m.or[k] = o
	}
	return o
}

func (m *modelClient) lwwRoot() uint32 {
	items := map[string]uint32{}
	for k, r := range m.lww {
		items[k] = merkle.FNV1a(fmt.Sprintf("%s:%d:%d:%s", k, r.ts.Millis, r.ts.Counter, r.ts.NodeID))
	}
	return clientRoot(items)
}

func (m *modelClient) orRoot() uint32 {
	items := map[string]uint32{}
	for k, o := range m.or {
		var recs []record.ORMapEntry
		for _, e := range o.entries {
			recs = append(recs, e)
		}
		if h, ok := merkle.ORItemHash(k, recs); ok {
			items[k] = h
		}
	}
	return clientRoot(items)
}

func modelSeed(t *testing.T) int64 {
	if s := os.Getenv("TOPGUN_MODEL_SEED"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("TOPGUN_MODEL_SEED: %v", err)
		}
		return v
	}
	return time.Now().UnixNano()
}

// TestStore_mergeModel applies random ops from several clients — LWW puts and
// removes, OR adds and removes, TTLs, re-sent duplicates and stale re-sends
// after newer writes — to the store from concurrent goroutines in random
// order, and to the reference model; the Merkle roots and visible values
// must be equal.
func TestStore_mergeModel(t *testing.T) {
	seed := modelSeed(t)
	t.Logf("seed %d (set TOPGUN_MODEL_SEED to replay)", seed)
	for round := 0; round < 20; round++ {
		rng := rand.New(rand.NewSource(seed + int64(round)))
		f := newFixture(t, null.Open(), nil)
		const clients = 4
		var ops [][]Op // per client, in the client's order
		model := newModelClient()
		for c := 0; c < clients; c++ {
			node := "client-" + strconv.Itoa(c)
			var mine []Op
			clock := uint64(t0 - 10_000)
			var counter uint32
			for i := 0; i < 60; i++ {
				if rng.Intn(3) == 0 {
					clock += uint64(rng.Intn(5))
					counter = 0
				} else {
					counter++
				}
				stamp := record.Timestamp{Millis: clock, Counter: counter, NodeID: node}
				var op Op
				switch r := rng.Intn(10); {
				case r < 4:
					op = Op{Map: "lww", Key: "k" + strconv.Itoa(rng.Intn(12)), Kind: OpPut, Value: record.StringValue(fmt.Sprint(node, i)), Timestamp: stamp}
					if rng.Intn(4) == 0 {
						op.TTLMs = uint64(3_600_000 + rng.Intn(1000))
					}
				case r < 6:
					op = Op{Map: "lww", Key: "k" + strconv.Itoa(rng.Intn(12)), Kind: OpRemove, Timestamp: stamp}
				case r < 8:
					op = Op{Map: "or", Key: "o" + strconv.Itoa(rng.Intn(5)), Kind: OpORAdd, Value: record.IntValue(int64(i)), Timestamp: stamp, Tag: stamp.String()}
				default:
					// Remove a tag this client added before, if any.
					var tags []Op
					for _, p := range mine {
						if p.Kind == OpORAdd {
							tags = append(tags, p)
						}
					}
					if len(tags) == 0 {
						continue
					}
					p := tags[rng.Intn(len(tags))]
					op = Op{Map: "or", Key: p.Key, Kind: OpORRemove, Tag: p.Tag}
				}
				mine = append(mine, op)
				// TopGun's client re-sends unacknowledged ops: repeat some
				// earlier ones (stale re-sends after newer writes).
				if len(mine) > 3 && rng.Intn(3) == 0 {
					mine = append(mine, mine[rng.Intn(len(mine)-1)])
				}
			}
			ops = append(ops, mine)
		}
		for _, mine := range ops {
			for _, op := range mine {
				model.apply(op)
			}
		}
		var wg sync.WaitGroup
		for c, mine := range ops {
			wg.Add(1)
			go func(c int, mine []Op, rng *rand.Rand) {
				defer wg.Done()
				for len(mine) > 0 {
					n := 1 + rng.Intn(4)
					if n > len(mine) {
						n = len(mine)
					}
					if _, err := f.s.Apply(context.Background(), mine[:n], uint64(c)); err != nil {
						t.Errorf("apply: %v", err)
						return
					}
					mine = mine[n:]
				}
			}(c, mine, rand.New(rand.NewSource(rng.Int63())))
		}
		wg.Wait()
		if got, want := f.s.Root("lww", KindLWW), model.lwwRoot(); got != want {
			t.Fatalf("seed %d round %d: LWW root %d, model %d", seed, round, got, want)
		}
		if got, want := f.s.Root("or", KindOR), model.orRoot(); got != want {
			t.Fatalf("seed %d round %d: OR root %d, model %d", seed, round, got, want)
		}
		for k, r := range model.lww {
			v, ok := f.get("lww", k)
			if ok == r.null || (ok && v != r.v) {
				t.Fatalf("seed %d round %d: key %s: store (%q, %v), model %+v", seed, round, k, v, ok, r)
			}
		}
		for k, o := range model.or {
			e, ok, err := f.s.Get(context.Background(), "or", k)
			if err != nil || ok != (len(o.entries) > 0) || len(e.Record.ORMap.Records) != len(o.entries) {
				t.Fatalf("seed %d round %d: OR key %s: store %+v ok=%v err=%v, model %d entries", seed, round, k, e.Record.ORMap, ok, err, len(o.entries))
			}
		}
		// Let every TTL pass: reads hide the records at once, the reaper
		// turns them into tombstones, and a client that merges the server's
		// leaves (as sync does) ends with the same root.
		f.wall.Add(7_200_000)
		if _, err := f.s.ReapExpired(context.Background()); err != nil {
			t.Fatal(err)
		}
		for p := 0; p < 4096; p++ {
			es, _, err := f.s.Leaf(context.Background(), "lww", KindLWW, fmt.Sprintf("%03x", p))
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range es {
				kind := OpPut
				if e.Record.LWW.Value.IsNull() {
					kind = OpRemove
				}
				model.apply(Op{Key: e.Key, Kind: kind, Value: e.Record.LWW.Value, Timestamp: e.Record.LWW.Timestamp})
			}
		}
		if got, want := f.s.Root("lww", KindLWW), model.lwwRoot(); got != want {
			t.Fatalf("seed %d round %d: after expiry and sync, LWW root %d, model %d", seed, round, got, want)
		}
		f.s.Close()
	}
}
