package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/plugins/null"
	"github.com/topgun-go/topgun/server/record"
)

// On shared storage the index also holds each OR key's tag fingerprints
// (indexTagsBytes plus 8 bytes a record or tombstone): writes admitted at
// MaxIndexBytes, new OR keys committed together and adds and removes of
// tags on stored keys, keep the index within it, while removes of live
// tags, which add no fingerprint, still pass.
func TestStore_sharedORTagsAtIndexLimit(t *testing.T) {
	const limit = 256 << 10
	f := newFixture(t, sharedBackend{null.Open()}, func(o *Options) { o.MaxIndexBytes = limit })
	var keys []string
	for c := 0; c < 50 && len(keys) == c*200; c++ {
		var ops []Op
		for i := range 200 {
			j := c*200 + i
			ops = append(ops, Op{Map: "m", Key: fmt.Sprintf("k%05d", j), Kind: OpORAdd, Value: record.StringValue("a"), Timestamp: ts(t0, uint32(j), "c"), Tag: fmt.Sprintf("t%d", j)})
		}
		for i, r := range f.apply(ops...) {
			if r.Err == nil {
				keys = append(keys, ops[i].Key)
			} else if !errors.Is(r.Err, abi.ErrResourceExhausted) {
				t.Fatalf("add: %v", r.Err)
			}
		}
		if n := f.s.IndexBytes(); n > limit {
			t.Fatalf("%d new OR keys stored: index of %d bytes at a limit of %d", len(keys), n, limit)
		}
	}
	for round := range 10 {
		var ops []Op
		for i, k := range keys {
			tag := fmt.Sprintf("r%d-%d", round, i)
			ops = append(ops, Op{Map: "m", Key: k, Kind: OpORAdd, Value: record.StringValue("b"), Timestamp: ts(t0+1, uint32(round*100_000+i), "c"), Tag: tag},
				Op{Map: "m", Key: k, Kind: OpORRemove, Tag: tag})
		}
		f.apply(ops...)
		if n := f.s.IndexBytes(); n > limit {
			t.Fatalf("round %d of tags added to and removed from %d stored OR keys: index of %d bytes at a limit of %d", round, len(keys), n, limit)
		}
	}
	// A remove of a live tag replaces a record's fingerprint by a
	// tombstone's: it passes.
	for i, k := range keys[:10] {
		if r := f.apply(Op{Map: "m", Key: k, Kind: OpORRemove, Tag: fmt.Sprintf("t%d", i)})[0]; r.Err != nil || !r.Changed {
			t.Fatalf("remove of a live tag at the index limit: %+v", r)
		}
	}
	checkIndexBytes(t, f)
}

// Mixed writes from several connections at once, so that several commits
// are in flight, keep the index within MaxIndexBytes after every commit:
// new and stored keys, LWW and OR, kind switches over OR tombstones,
// older and re-sent writes, new and known node ids, tombstone collection.
func TestStore_concurrentMixedWritesAtIndexLimit(t *testing.T) {
	for _, shared := range []bool{false, true} {
		t.Run(fmt.Sprintf("shared=%t", shared), func(t *testing.T) {
			seed := time.Now().UnixNano()
			t.Logf("seed %d", seed)
			const limit = 128 << 10
			var be abi.Backend = delayBackend{null.Open()}
			if shared {
				be = sharedBackend{be}
			}
			f := newFixture(t, be, func(o *Options) { o.MaxIndexBytes = limit; o.TombstoneTTL = time.Hour })
			var over, refused atomic.Int64
			var wg sync.WaitGroup
			for w := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewSource(seed + int64(w)))
					for round := range 150 {
						ops := make([]Op, 0, 40)
						for range 1 + rng.Intn(40) {
							m := fmt.Sprintf("m%d", rng.Intn(6))
							k := fmt.Sprintf("k%d", rng.Intn(400))
							node := fmt.Sprintf("n%d", rng.Intn(30))
							if rng.Intn(10) == 0 {
								node = fmt.Sprintf("w%d-%d-%s", w, round, strings.Repeat("x", rng.Intn(200)))
							}
							stamp := ts(t0+uint64(round), uint32(rng.Intn(1000)), node)
							switch rng.Intn(7) {
							case 0, 1:
								ops = append(ops, put(m, k, "v", stamp))
							case 2:
								ops = append(ops, Op{Map: m, Key: k, Kind: OpRemove, Timestamp: stamp})
							case 3, 4:
								ops = append(ops, Op{Map: m, Key: k, Kind: OpORAdd, Value: record.StringValue("a"), Timestamp: stamp, Tag: fmt.Sprintf("t%d", rng.Intn(8))})
							case 5:
								ops = append(ops, Op{Map: m, Key: k, Kind: OpORRemove, Tag: fmt.Sprintf("t%d", rng.Intn(8))})
							case 6:
								ops = append(ops, put(m, k, "old", ts(t0-1, 0, node)))
							}
						}
						res, err := f.s.Apply(context.Background(), ops, 1)
						if err != nil {
							t.Error(err)
							return
						}
						for _, r := range res {
							if errors.Is(r.Err, abi.ErrResourceExhausted) {
								refused.Add(1)
							}
						}
						if n := f.s.IndexBytes(); n > limit {
							over.Store(n)
						}
						if w == 0 && round%30 == 29 {
							f.wall.Add(2 * time.Hour.Milliseconds())
							if _, err := f.s.CollectTombstones(context.Background()); err != nil {
								t.Error(err)
								return
							}
						}
					}
				}()
			}
			wg.Wait()
			if n := over.Load(); n != 0 {
				t.Fatalf("index of %d bytes at a limit of %d", n, limit)
			}
			t.Logf("index %d bytes at a limit of %d, %d writes refused for it", f.s.IndexBytes(), limit, refused.Load())
			if refused.Load() == 0 {
				t.Fatal("no write reached the limit")
			}
			checkIndexBytes(t, f)
		})
	}
}

// delayBackend takes a moment over each commit, so that the store merges
// further commits while one is in flight.
type delayBackend struct{ abi.Backend }

func (b delayBackend) Apply(ctx context.Context, batch *abi.Batch) error {
	time.Sleep(time.Millisecond)
	return b.Backend.Apply(ctx, batch)
}

// shutBackend holds each Apply, while shut, until the test lets it
// through.
type shutBackend struct {
	abi.Backend
	shut    atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (b *shutBackend) Apply(ctx context.Context, batch *abi.Batch) error {
	if b.shut.Load() {
		b.entered <- struct{}{}
		<-b.release
	}
	return b.Backend.Apply(ctx, batch)
}

// A write to a stored key by a node id the index holds adds nothing when
// admitted, but when a commit in flight before it releases that node id
// (overwriting the last key it stamped), installing it adds the id again:
// the room that release made until then must not admit other writes, or
// the index passes MaxIndexBytes.
func TestStore_nodeReleasedInFlightAtIndexLimit(t *testing.T) {
	const limit = 64 << 10
	be := &shutBackend{Backend: null.Open(), entered: make(chan struct{}), release: make(chan struct{})}
	f := newFixture(t, be, func(o *Options) { o.MaxIndexBytes = limit })
	node := "n-" + strings.Repeat("x", 254)
	f.apply(put("m", "a", "v", ts(t0, 0, node)), put("m", "b", "v", ts(t0, 0, "c")))
	for i := 0; ; i++ {
		if r := f.apply(put("m", fmt.Sprintf("k%05d", i), "v", ts(t0, 0, "c")))[0]; r.Err != nil {
			break
		}
	}
	t.Logf("filled: index %d", f.s.IndexBytes())
	apply := func(ops ...Op) chan []Result {
		done := make(chan []Result, 1)
		go func() {
			res, err := f.s.Apply(context.Background(), ops, 1)
			if err != nil {
				t.Error(err)
			}
			done <- res
		}()
		return done
	}
	be.shut.Store(true)
	merged := f.mergeSignal()
	// The only key stamped by node is overwritten: its commit, once
	// installed, releases node.
	first := apply(put("m", "a", "w", ts(t0+1, 0, "c")))
	<-be.entered
	<-merged // the first's
	// Merged while that commit is in flight: node is still held.
	second := apply(put("m", "b", "w", ts(t0+1, 0, node)))
	<-merged
	be.release <- struct{}{} // the first commit installs, node released
	<-be.entered             // the second one is in flight
	var ops []Op
	for i := range 8 {
		ops = append(ops, put("m", fmt.Sprintf("new%d", i), "v", ts(t0+1, 0, "c")))
	}
	third := apply(ops...)
	<-merged // admitted while the second commit is in flight
	be.shut.Store(false)
	be.release <- struct{}{}
	<-first
	if r := (<-second)[0]; r.Err != nil || !r.Changed {
		t.Fatalf("update by a node id the index held: %+v", r)
	}
	admitted := 0
	for _, r := range <-third {
		if r.Err == nil {
			admitted++
		}
	}
	if n := f.s.IndexBytes(); n > limit {
		t.Fatalf("%d new keys admitted while a commit in flight was to add back a node id: index of %d bytes at a limit of %d", admitted, n, limit)
	}
}
