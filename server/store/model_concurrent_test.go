package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/examples/plugins/logstore"
	"github.com/topgun-go/topgun/plugins/null"
	"github.com/topgun-go/topgun/plugins/redb"
	"github.com/topgun-go/topgun/server/merkle"
	"github.com/topgun-go/topgun/server/record"
)

type smBackend struct {
	name   string
	open   func(t *testing.T, dir string) abi.Backend
	reopen bool // restarts close and reopen the backend
}

var smBackends = []smBackend{
	{name: "null", open: func(t *testing.T, dir string) abi.Backend { return null.Open() }},
	{name: "redb", reopen: true, open: func(t *testing.T, dir string) abi.Backend {
		be, err := redb.Open(context.Background(), filepath.Join(dir, "db.redb"), nil)
		if err != nil {
			t.Fatal(err)
		}
		return be
	}},
	{name: "logstore", reopen: true, open: func(t *testing.T, dir string) abi.Backend {
		be, err := logstore.Open(context.Background(), dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		return be
	}},
}

// smSlow delays some Gets after reading, widening the races of reads with
// commits, and fails some commits while flaky is set.
type smSlow struct {
	abi.Backend
	n, applies atomic.Uint64
	flaky      *atomic.Bool
}

func (b *smSlow) Get(ctx context.Context, m string, backup bool, keys []string) ([]abi.Record, error) {
	recs, err := b.Backend.Get(ctx, m, backup, keys)
	if n := b.n.Add(1); n%3 == 0 {
		time.Sleep(time.Duration(n%7) * 100 * time.Microsecond)
	}
	return recs, err
}

func (b *smSlow) Apply(ctx context.Context, batch *abi.Batch) error {
	if b.flaky.Load() {
		switch n := b.applies.Add(1); n % 11 {
		case 3:
			return abi.Errorf(abi.CodeUnavailable, "test: injected failure before commit")
		case 7:
			if err := b.Backend.Apply(ctx, batch); err != nil {
				return err
			}
			return abi.Errorf(abi.CodeUnavailable, "test: injected failure after commit")
		}
	}
	return b.Backend.Apply(ctx, batch)
}

type smHolder struct {
	mu   sync.Mutex
	cond *sync.Cond
	s    *Store
	gen  int
	done bool
	// hk excludes housekeeping calls from restarts.
	hk sync.RWMutex
}

func (h *smHolder) get() (*Store, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.s, h.gen
}

func (h *smHolder) waitAfter(gen int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for h.gen <= gen && !h.done {
		h.cond.Wait()
	}
}

type smCommit struct {
	inst int
	c    *Commit
}

type smRun struct {
	t     *testing.T
	be    smBackend
	dir   string
	b     abi.Backend
	wall  *atomic.Int64
	clock *testClock
	opts  Options
	h     *smHolder
	fmu   sync.Mutex
	feed  []smCommit
	subWG sync.WaitGroup
	inst  int
	flaky atomic.Bool // commits fail now and then
}

func (r *smRun) openStore() *Store {
	s, err := Open(context.Background(), &smSlow{Backend: r.b, flaky: &r.flaky}, &r.opts)
	if err != nil {
		r.t.Fatalf("open: %v", err)
	}
	sub := s.Subscribe()
	r.inst++
	inst := r.inst
	r.subWG.Add(1)
	go func() {
		defer r.subWG.Done()
		for c := range sub.C() {
			r.fmu.Lock()
			r.feed = append(r.feed, smCommit{inst, c})
			r.fmu.Unlock()
		}
		if err := sub.Err(); err != nil && !errors.Is(err, errFeedClosed) {
			r.t.Errorf("feed: %v", err)
		}
	}()
	return s
}

// restart closes the store (and the backend if it reopens) and opens again.
func (r *smRun) restart() {
	r.h.hk.Lock()
	defer r.h.hk.Unlock()
	s, _ := r.h.get()
	s.Close()
	if r.be.reopen {
		if err := r.b.Close(); err != nil {
			r.t.Errorf("backend close: %v", err)
		}
		r.b = r.be.open(r.t, r.dir)
	}
	ns := r.openStore()
	r.h.mu.Lock()
	r.h.s = ns
	r.h.gen++
	r.h.cond.Broadcast()
	r.h.mu.Unlock()
}

type smOpRes struct {
	changed  bool // some attempt reported Changed
	rejected bool
	maybe    bool // an attempt failed as a whole
	failed   int  // attempts failed by the backend
}

// TestStore_concurrentModel applies random LWW puts and removes (client
// stamps in the past and ahead within the drift, ties broken by node id,
// TTLs; server-stamped puts) and OR adds and removes from concurrent
// goroutines, with expiry passes and readers running beside them and the
// store closed and reopened (with the backend) under them, on null, redb
// and the logstore example (natively), with the value cache on, off and
// tiny, and with commits failing before or after storage applied them.
// Once quiet it compares every key with a model of the merge rules, the
// Merkle roots with trees rebuilt from storage, reads through the cache
// with storage, and the change feed with the applied ops (each change
// reported once, in commit order per key); then again after every TTL
// passed, after tombstone collection, and after each reopen.
func TestStore_concurrentModel(t *testing.T) {
	seed := modelSeed(t)
	t.Logf("seed %d", seed)
	rounds := 1
	for _, be := range smBackends {
		for _, cache := range []int64{0, -1, 1300} {
			for round := 0; round < rounds; round++ {
				for _, flaky := range []bool{false, true} {
					name := fmt.Sprintf("%s/cache%d/%d/flaky=%v", be.name, cache, round, flaky)
					rs := seed + int64(round)*7919 + cache
					t.Run(name, func(t *testing.T) { smRound(t, be, cache, rs, flaky) })
				}
			}
		}
	}
}

var smNodes = []string{"na", "nB", "nb", "NA", "n-c", "n\u00e9"}

func smRound(t *testing.T, be smBackend, cacheBytes int64, seed int64, flaky bool) {
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewSource(seed))
	wall := &atomic.Int64{}
	wall.Store(t0)
	r := &smRun{t: t, be: be, dir: t.TempDir(), wall: wall, clock: &testClock{wall: wall, drift: 60_000}}
	r.opts = Options{
		Clock:        r.clock,
		CacheBytes:   cacheBytes,
		WallClock:    func() time.Time { return time.UnixMilli(wall.Load()) },
		ReapInterval: time.Hour,
		GCInterval:   time.Hour,
		GCStartDelay: time.Hour,
		FeedBuffer:   1 << 16,
		Logger:       testLogger(t),
	}
	r.b = be.open(t, r.dir)
	r.h = &smHolder{}
	r.h.cond = sync.NewCond(&r.h.mu)
	r.h.s = r.openStore()

	lwwKeys := []string{"a", "b", "c", "d", "e", "f"}
	orKeys := []string{"x", "y", "z"}
	millisChoices := []int64{-4000, -3000, -2000, -1000, 0, 1000, 2000, 50_000}
	ttls := []uint64{500, 2500, 5000, 600_000}

	// Generate ops per client.
	clients := len(smNodes)
	type gop struct {
		op Op
		id int // op id (re-sends share it)
	}
	var all []Op // by id
	perClient := make([][]gop, clients)
	for c := 0; c < clients; c++ {
		node := smNodes[c]
		usedL := map[[2]int64]bool{}
		usedO := map[[2]int64]bool{}
		var mine []gop
		for i := 0; i < 50; i++ {
			if len(mine) > 2 && rng.Intn(6) == 0 {
				mine = append(mine, mine[rng.Intn(len(mine))])
				continue
			}
			var stamp record.Timestamp
			pick := func(used map[[2]int64]bool) bool {
				for try := 0; try < 20; try++ {
					ms := millisChoices[rng.Intn(len(millisChoices))]
					if rng.Intn(40) == 0 {
						ms = 200_000 // beyond the drift bound
					}
					k := [2]int64{ms, int64(rng.Intn(3))}
					if used[k] {
						continue
					}
					used[k] = true
					stamp = record.Timestamp{Millis: uint64(t0 + ms), Counter: uint32(k[1]), NodeID: node}
					return true
				}
				return false
			}
			var op Op
			switch x := rng.Intn(12); {
			case x == 10:
				var tags []string
				for j := 0; j < 2+rng.Intn(2); j++ {
					ms := millisChoices[rng.Intn(len(millisChoices))]
					tags = append(tags, record.Timestamp{Millis: uint64(t0 + ms), Counter: uint32(rng.Intn(3)), NodeID: smNodes[rng.Intn(clients)]}.String())
				}
				op = Op{Map: "or", Key: orKeys[rng.Intn(len(orKeys))], Kind: OpORRemove, Tags: tags}
			case x == 11:
				op = Op{Map: "srv", Key: "s" + strconv.Itoa(rng.Intn(2)), Kind: OpPut, Value: record.StringValue(fmt.Sprintf("srv-%s-%d", node, i))}
			case x < 4:
				if !pick(usedL) {
					continue
				}
				op = Op{Map: "lww", Key: lwwKeys[rng.Intn(len(lwwKeys))], Kind: OpPut, Value: record.StringValue(fmt.Sprintf("%s-%d", node, i)), Timestamp: stamp}
				if rng.Intn(3) == 0 {
					op.TTLMs = ttls[rng.Intn(len(ttls))]
				}
			case x < 6:
				if !pick(usedL) {
					continue
				}
				op = Op{Map: "lww", Key: lwwKeys[rng.Intn(len(lwwKeys))], Kind: OpRemove, Timestamp: stamp}
			case x < 8:
				if !pick(usedO) {
					continue
				}
				op = Op{Map: "or", Key: orKeys[rng.Intn(len(orKeys))], Kind: OpORAdd, Value: record.IntValue(int64(c*1000 + i)), Timestamp: stamp, Tag: stamp.String()}
				if rng.Intn(3) == 0 {
					op.TTLMs = ttls[rng.Intn(len(ttls))]
				}
			default:
				// Remove a tag any client may add (or never adds), on a random key.
				ms := millisChoices[rng.Intn(len(millisChoices))]
				tag := record.Timestamp{Millis: uint64(t0 + ms), Counter: uint32(rng.Intn(3)), NodeID: smNodes[rng.Intn(clients)]}.String()
				op = Op{Map: "or", Key: orKeys[rng.Intn(len(orKeys))], Kind: OpORRemove, Tag: tag}
			}
			all = append(all, op)
			mine = append(mine, gop{op: op, id: len(all) - 1})
		}
		perClient[c] = mine
	}
	res := make([]smOpRes, len(all))
	occ := make([]int, len(all))
	for _, m := range perClient {
		for _, g := range m {
			occ[g.id]++
		}
	}
	var resMu sync.Mutex

	// Run.
	r.flaky.Store(flaky)
	var applied atomic.Int64
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int, mine []gop, rng *rand.Rand) {
			defer wg.Done()
			for len(mine) > 0 {
				n := min(1+rng.Intn(4), len(mine))
				chunk := mine[:n]
				ops := make([]Op, n)
				for i := range chunk {
					ops[i] = chunk[i].op
				}
				for attempt := 0; ; attempt++ {
					if attempt > 50 {
						t.Errorf("client %d: too many attempts", c)
						return
					}
					s, gen := r.h.get()
					out, err := s.Apply(context.Background(), ops, uint64(c+1))
					if err != nil {
						resMu.Lock()
						for _, g := range chunk {
							res[g.id].maybe = true
						}
						resMu.Unlock()
						if !errors.Is(err, ErrClosed) {
							if abi.CodeOf(err) != abi.CodeUnavailable {
								t.Errorf("client %d: apply: %v", c, err)
								return
							}
							resMu.Lock()
							for _, g := range chunk {
								res[g.id].failed++
							}
							resMu.Unlock()
							continue
						}
						r.h.waitAfter(gen)
						continue
					}
					resMu.Lock()
					for i, g := range chunk {
						if out[i].Changed {
							res[g.id].changed = true
						}
						if out[i].Err != nil {
							res[g.id].rejected = true
						}
					}
					resMu.Unlock()
					break
				}
				applied.Add(1)
				mine = mine[n:]
			}
		}(c, perClient[c], rand.New(rand.NewSource(rng.Int63())))
	}
	// Concurrent readers: monotonic reads per key through the cache.
	stopRead := make(chan struct{})
	var rwg sync.WaitGroup
	for rd := 0; rd < 4; rd++ {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			lastL := map[string]record.Timestamp{}
			lastO := map[string]int{}
			for i := 0; i < 100000; i++ {
				select {
				case <-stopRead:
					return
				default:
				}
				r.h.hk.RLock()
				s, _ := r.h.get()
				es, err := s.Entries(context.Background(), "lww", KindLWW, lwwKeys)
				if err == nil {
					for _, e := range es {
						if p, ok := lastL[e.Key]; ok && e.Record.LWW.Timestamp.Compare(p) < 0 {
							t.Errorf("read of lww/%s went back: %v after %v", e.Key, e.Record.LWW.Timestamp, p)
						}
						lastL[e.Key] = e.Record.LWW.Timestamp
					}
				}
				es, err = s.Entries(context.Background(), "or", KindOR, orKeys)
				if err == nil {
					for _, e := range es {
						if n := len(e.Record.ORMap.Tombstones); n < lastO[e.Key] {
							t.Errorf("read of or/%s went back: %d tombstones after %d", e.Key, n, lastO[e.Key])
						} else {
							lastO[e.Key] = n
						}
					}
				}
				r.h.hk.RUnlock()
				if i%16 == 0 {
					time.Sleep(50 * time.Microsecond)
				}
			}
		}()
	}
	// Reaper: expiry passes concurrent with writes.
	rwg.Add(1)
	go func() {
		defer rwg.Done()
		for i := 0; i < 10000; i++ {
			select {
			case <-stopRead:
				return
			default:
			}
			r.h.hk.RLock()
			s, _ := r.h.get()
			if _, err := s.ReapExpired(context.Background()); err != nil && !errors.Is(err, ErrClosed) && abi.CodeOf(err) != abi.CodeUnavailable {
				t.Errorf("reap: %v", err)
			}
			r.h.hk.RUnlock()
			time.Sleep(time.Millisecond)
		}
	}()
	// Restarter.
	total := 0
	for _, m := range perClient {
		total += len(m)
	}
	restarts := 3
	for i := 1; i <= restarts; i++ {
		target := int64(total / 3 * i / (restarts + 1))
		deadline := time.Now().Add(30 * time.Second)
		for applied.Load() < target && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		wall.Add(1000)
		r.restart()
	}
	wg.Wait()
	r.flaky.Store(false)
	close(stopRead)
	rwg.Wait()
	if t.Failed() {
		return
	}
	{
		nch, nmaybe, nrej := 0, 0, 0
		for _, rr := range res {
			if rr.changed {
				nch++
			}
			if rr.maybe {
				nmaybe++
			}
			if rr.rejected {
				nrej++
			}
		}
		exp := 0
		r.fmu.Lock()
		for _, fc := range r.feed {
			for _, ch := range fc.c.Changes {
				if ch.Kind == ChangeExpired {
					exp++
				}
			}
		}
		r.fmu.Unlock()
		nf := 0
		for _, rr := range res {
			nf += rr.failed
		}
		t.Logf("failed attempts %d", nf)
		t.Logf("ops %d changed %d maybe %d rejected %d concurrent expiries %d commits %d", len(all), nch, nmaybe, nrej, exp, len(r.feed))
	}

	// Model.
	lwwOps := map[string][]Op{}
	orAdds := map[string]map[string]Op{}
	orRems := map[string]map[string]bool{}
	now := wall.Load()
	for id, op := range all {
		beyond := op.Timestamp.Millis > uint64(now)+60_000
		if op.Map == "srv" && !res[id].changed {
			t.Errorf("server-stamped op %d %+v not changed", id, op)
		}
		if beyond != res[id].rejected {
			t.Errorf("op %d %+v: rejected %v, beyond drift %v", id, op, res[id].rejected, beyond)
		}
		if beyond {
			continue
		}
		if op.Map == "srv" {
			continue
		}
		switch op.Kind {
		case OpPut, OpRemove:
			lwwOps[op.Key] = append(lwwOps[op.Key], op)
		case OpORAdd:
			if orAdds[op.Key] == nil {
				orAdds[op.Key] = map[string]Op{}
			}
			orAdds[op.Key][op.Tag] = op
		case OpORRemove:
			if orRems[op.Key] == nil {
				orRems[op.Key] = map[string]bool{}
			}
			if len(op.Tags) > 0 {
				for _, tg := range op.Tags {
					orRems[op.Key][tg] = true
				}
			} else {
				orRems[op.Key][op.Tag] = true
			}
		}
	}
	lwwRecOf := func(op Op) (record.RecordValue, int64) {
		v := op.Value
		var exp int64
		if op.Kind == OpRemove {
			v = record.Value{}
		} else if op.TTLMs > 0 {
			exp = expiresAt(op.Timestamp.Millis, op.TTLMs)
		}
		return record.NewLWW(v, op.Timestamp), exp
	}
	winner := func(k string) (Op, bool) {
		var w Op
		ok := false
		for _, op := range lwwOps[k] {
			if !ok || op.Timestamp.Compare(w.Timestamp) > 0 {
				w, ok = op, true
			}
		}
		return w, ok
	}
	raw := func(m string, keys []string) map[string]Entry {
		s, _ := r.h.get()
		recs, err := s.be.Get(context.Background(), m, false, keys)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]Entry{}
		for i := range recs {
			e, err := storedEntry(&recs[i])
			if err != nil {
				t.Fatal(err)
			}
			out[e.Key] = e
		}
		return out
	}
	// checkState: stage "A" allows concurrent-reap outcomes, final requires exact.
	checkState := func(stage string, reaped bool, gcd bool) {
		t.Helper()
		s, _ := r.h.get()
		now := wall.Load()
		stored := raw("lww", lwwKeys)
		lwwTS := map[string]record.Timestamp{}
		for _, k := range lwwKeys {
			w, ok := winner(k)
			e, has := stored[k]
			if !ok {
				if has {
					t.Errorf("%s: lww/%s stored %+v, model none", stage, k, e)
				}
				continue
			}
			wrv, wexp := lwwRecOf(w)
			expired := wexp != 0 && wexp <= now
			if reaped && expired {
				wrv, wexp = record.NewLWW(record.Value{}, justAfter(w.Timestamp)), 0
			}
			if gcd && wrv.LWW.Value.IsNull() {
				if has {
					t.Errorf("%s: lww/%s stored %v after GC, want gone", stage, k, e.Record.LWW)
				}
				continue
			}
			if !has {
				t.Errorf("%s: lww/%s missing, model %v", stage, k, wrv.LWW)
				continue
			}
			okState := e.Record.Equal(&wrv) && e.ExpirationTime == wexp
			if !okState && e.Record.Kind == record.KindLWW && e.Record.LWW.Value.IsNull() && e.ExpirationTime == 0 {
				// A concurrent reap's tombstone of an expired op X below W.
				for _, x := range lwwOps[k] {
					_, xexp := lwwRecOf(x)
					if x.Kind == OpPut && xexp != 0 && xexp <= now && e.Record.LWW.Timestamp == justAfter(x.Timestamp) &&
						justAfter(x.Timestamp).Compare(w.Timestamp) > 0 {
						okState = true
					}
				}
			}
			if !okState {
				t.Errorf("%s: lww/%s stored %v exp %d, model %v exp %d", stage, k, e.Record.LWW, e.ExpirationTime, wrv.LWW, wexp)
			}
			lwwTS[k] = e.Record.LWW.Timestamp
		}
		if got, want := s.Root("lww", KindLWW), lwwRootOf(lwwTS); got != want {
			t.Errorf("%s: lww root %d, model of stored %d", stage, got, want)
		}
		storedO := raw("or", orKeys)
		orItems := map[string]uint32{}
		for _, k := range orKeys {
			e, has := storedO[k]
			if len(orAdds[k]) == 0 && len(orRems[k]) == 0 {
				if has {
					t.Errorf("%s: or/%s stored, model none", stage, k)
				}
				continue
			}
			if !has {
				t.Errorf("%s: or/%s missing", stage, k)
				continue
			}
			tombs := map[string]bool{}
			for _, tg := range e.Record.ORMap.Tombstones {
				if tombs[tg] {
					t.Errorf("%s: or/%s tombstone %s twice", stage, k, tg)
				}
				tombs[tg] = true
			}
			for tg := range orRems[k] {
				if !tombs[tg] {
					t.Errorf("%s: or/%s removed tag %s not tombstoned", stage, k, tg)
				}
			}
			for tg := range tombs {
				if orRems[k][tg] {
					continue
				}
				a, ok := orAdds[k][tg]
				if !ok || a.TTLMs == 0 || expiresAt(a.Timestamp.Millis, a.TTLMs) > now {
					t.Errorf("%s: or/%s tag %s tombstoned, neither removed nor expired", stage, k, tg)
				}
			}
			var want []record.ORMapEntry
			for tg, a := range orAdds[k] {
				if tombs[tg] {
					continue
				}
				if reaped && a.TTLMs > 0 && expiresAt(a.Timestamp.Millis, a.TTLMs) <= now {
					t.Errorf("%s: or/%s expired tag %s not tombstoned after reap", stage, k, tg)
					continue
				}
				want = append(want, record.ORMapEntry{Value: a.Value, Tag: tg, Timestamp: a.Timestamp, TTLMs: a.TTLMs})
			}
			got := map[string]record.ORMapEntry{}
			for _, re := range e.Record.ORMap.Records {
				if _, dup := got[re.Tag]; dup {
					t.Errorf("%s: or/%s entry %s twice", stage, k, re.Tag)
				}
				got[re.Tag] = re
			}
			if len(got) != len(want) {
				t.Errorf("%s: or/%s %d entries, model %d", stage, k, len(got), len(want))
			}
			for _, w := range want {
				g, ok := got[w.Tag]
				if !ok || g.Timestamp != w.Timestamp || g.TTLMs != w.TTLMs || !g.Value.Equal(w.Value) {
					t.Errorf("%s: or/%s entry %s: %+v, model %+v", stage, k, w.Tag, g, w)
				}
			}
			if x := orExpiry(&e.Record.ORMap); x != e.ExpirationTime {
				t.Errorf("%s: or/%s expiration %d, entries say %d", stage, k, e.ExpirationTime, x)
			}
			if h, ok := merkle.ORItemHash(k, want); ok {
				orItems[k] = h
			}
		}
		if got, want := s.Root("or", KindOR), clientRoot(orItems); got != want {
			t.Errorf("%s: or root %d, model %d", stage, got, want)
		}
		// Reads through the cache against the backend.
		for _, mk := range []struct {
			m    string
			kind Kind
			keys []string
		}{{"lww", KindLWW, lwwKeys}, {"or", KindOR, orKeys}} {
			direct := raw(mk.m, mk.keys)
			for pass := 0; pass < 2; pass++ {
				es, err := s.Entries(context.Background(), mk.m, mk.kind, mk.keys)
				if err != nil {
					t.Fatal(err)
				}
				if len(es) != len(direct) {
					t.Errorf("%s: %s: %d entries through the cache, %d stored", stage, mk.m, len(es), len(direct))
				}
				for _, e := range es {
					d, ok := direct[e.Key]
					if !ok || !d.Record.Equal(&e.Record) || d.ExpirationTime != e.ExpirationTime {
						t.Errorf("%s: %s/%s through the cache %+v, stored %+v", stage, mk.m, e.Key, e, d)
					}
				}
				for _, k := range mk.keys {
					e, ok, err := s.Get(context.Background(), mk.m, k)
					if err != nil {
						t.Fatal(err)
					}
					d, has := direct[k]
					if has && !s.live(&d) {
						has = false
					}
					if ok != has || (ok && !d.Record.Equal(&e.Record)) {
						t.Errorf("%s: Get %s/%s = %v %+v, stored live %v %+v", stage, mk.m, k, ok, e, has, d)
					}
				}
			}
		}
		// Merkle roots against a tree rebuilt from the backend.
		for _, mk := range []struct {
			m    string
			kind Kind
		}{{"lww", KindLWW}, {"or", KindOR}, {"srv", KindLWW}} {
			tr := merkle.New()
			err := s.scanPages(context.Background(), mk.m, 0, func(rec *abi.Record) bool {
				rv, err := record.Decode(rec.Value)
				if err != nil {
					t.Fatal(err)
				}
				if h, ok := merkle.ItemHash(rec.Key, &rv); ok {
					tr.Update(rec.Key, h)
				}
				return true
			})
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Root(mk.m, mk.kind); got != tr.Root() {
				t.Errorf("%s: %s root %d, rebuilt from backend %d", stage, mk.m, got, tr.Root())
			}
		}
	}
	checkState("concurrent", false, false)
	rootsBefore := [2]uint32{}
	{
		s, _ := r.h.get()
		rootsBefore = [2]uint32{s.Root("lww", KindLWW), s.Root("or", KindOR)}
	}
	r.restart()
	{
		s, _ := r.h.get()
		if got := [2]uint32{s.Root("lww", KindLWW), s.Root("or", KindOR)}; got != rootsBefore {
			t.Errorf("roots after reopen %v, before %v", got, rootsBefore)
		}
	}
	checkState("reopened", false, false)
	// Let every TTL pass and reap.
	wall.Add(3_600_000)
	{
		s, _ := r.h.get()
		if _, err := s.ReapExpired(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	checkState("reaped", true, false)
	finalRec := map[[2]string]Entry{}
	for _, m := range [][2]any{{"lww", lwwKeys}, {"or", orKeys}, {"srv", []string{"s0", "s1"}}} {
		for k, e := range raw(m[0].(string), m[1].([]string)) {
			finalRec[[2]string{m[0].(string), k}] = e
		}
	}
	r.restart()
	checkState("reaped+reopened", true, false)
	// Tombstone collection.
	wall.Add(8 * 24 * 3_600_000)
	{
		s, _ := r.h.get()
		if _, err := s.CollectTombstones(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	checkState("collected", true, true)
	r.restart()
	checkState("collected+reopened", true, true)

	// Close and gather the feed.
	s, _ := r.h.get()
	s.Close()
	r.h.mu.Lock()
	r.h.done = true
	r.h.cond.Broadcast()
	r.h.mu.Unlock()
	r.subWG.Wait()
	r.b.Close()
	smCheckFeed(t, all, occ, res, r.feed, lwwOps, orRems)
	last := map[[2]string]Change{}
	for _, fc := range r.feed {
		for _, ch := range fc.c.Changes {
			last[[2]string{ch.Map, ch.Key}] = ch
		}
	}
	for k, e := range finalRec {
		ch, ok := last[k]
		if !ok || !ch.Record.Equal(&e.Record) || ch.ExpirationTime != e.ExpirationTime {
			t.Errorf("feed: last change of %v %+v, stored %+v", k, ch, e)
		}
	}
	for k := range last {
		if _, ok := finalRec[k]; !ok {
			t.Errorf("feed: %v reported, not stored", k)
		}
	}
}

func smCheckFeed(t *testing.T, all []Op, occ []int, res []smOpRes, feed []smCommit, lwwOps map[string][]Op, orRems map[string]map[string]bool) {
	type key struct{ m, k string }
	lastLWW := map[string]record.Timestamp{}
	seenLWW := map[key]int{}
	seenAdd := map[key]int{}
	seenTomb := map[key]int{}
	var lastSeq uint64
	lastInst := 0
	for _, fc := range feed {
		if fc.inst == lastInst && fc.c.Seq <= lastSeq {
			t.Errorf("feed seq %d after %d", fc.c.Seq, lastSeq)
		}
		lastInst, lastSeq = fc.inst, fc.c.Seq
		for _, ch := range fc.c.Changes {
			switch ch.Map {
			case "srv":
				ts := ch.Record.LWW.Timestamp
				if p, ok := lastLWW["srv/"+ch.Key]; ok && ts.Compare(p) <= 0 {
					t.Errorf("feed: srv/%s %v after %v", ch.Key, ts, p)
				}
				lastLWW["srv/"+ch.Key] = ts
				seenLWW[key{"srv/" + ch.Key, ch.Record.LWW.Value.Text()}]++
			case "lww":
				ts := ch.Record.LWW.Timestamp
				if p, ok := lastLWW[ch.Key]; ok && ts.Compare(p) <= 0 {
					t.Errorf("feed: lww/%s %v after %v", ch.Key, ts, p)
				}
				lastLWW[ch.Key] = ts
				seenLWW[key{ch.Key, ts.String()}]++
				switch ch.Kind {
				case ChangePut, ChangeRemove:
					found := false
					for _, op := range lwwOps[ch.Key] {
						if op.Timestamp == ts && (op.Kind == OpRemove) == (ch.Kind == ChangeRemove) {
							found = true
						}
					}
					if !found {
						t.Errorf("feed: lww/%s change %v %v matches no op", ch.Key, ch.Kind, ts)
					}
				case ChangeExpired:
				default:
					t.Errorf("feed: lww/%s kind %v", ch.Key, ch.Kind)
				}
			case "or":
				switch ch.Kind {
				case ChangeORAdd:
					seenAdd[key{ch.Key, ch.Tag}]++
				case ChangeORRemove:
					tags := ch.Tags
					if ch.Tag != "" {
						tags = []string{ch.Tag}
					}
					for _, tg := range tags {
						seenTomb[key{ch.Key, tg}]++
					}
				case ChangeExpired:
					for _, tg := range ch.Tags {
						seenTomb[key{ch.Key, tg}]++
					}
				default:
					t.Errorf("feed: or/%s kind %v", ch.Key, ch.Kind)
				}
			}
		}
	}
	for k, n := range seenLWW {
		if n != 1 && !strings.HasPrefix(k.m, "srv/") {
			t.Errorf("feed: lww %v reported %d times", k, n)
		}
	}
	for k, n := range seenAdd {
		if n != 1 {
			t.Errorf("feed: or add %v reported %d times", k, n)
		}
	}
	for k, n := range seenTomb {
		if n != 1 {
			t.Errorf("feed: or tombstone %v reported %d times", k, n)
		}
	}
	for k, rems := range orRems {
		for tg := range rems {
			if seenTomb[key{k, tg}] != 1 {
				t.Errorf("feed: or/%s removed tag %s: %d tombstone changes", k, tg, seenTomb[key{k, tg}])
			}
		}
	}
	for id, op := range all {
		rr := res[id]
		if !rr.changed {
			continue
		}
		if op.Map == "srv" {
			if n := seenLWW[key{"srv/" + op.Key, op.Value.Text()}]; n < occ[id] || n > occ[id]+res[id].failed {
				t.Errorf("feed: server-stamped op %d reported %d times", id, seenLWW[key{"srv/" + op.Key, op.Value.Text()}])
			}
			continue
		}
		switch op.Kind {
		case OpPut, OpRemove:
			if seenLWW[key{op.Key, op.Timestamp.String()}] != 1 {
				t.Errorf("feed: changed op %d %v/%s %v not reported", id, op.Kind, op.Key, op.Timestamp)
			}
		case OpORAdd:
			if seenAdd[key{op.Key, op.Tag}] != 1 {
				t.Errorf("feed: changed add %s/%s not reported", op.Key, op.Tag)
			}
		}
	}
}
