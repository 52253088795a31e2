package store

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/topgun-go/topgun/plugins/null"
	"github.com/topgun-go/topgun/server/record"
)

// Map names come from clients: one small record in each of many maps must
// not cost the index tens of KiB per map. Each map held two tries with
// fixed arrays for all 4096 leaves (about 84 KiB of heap per map, so one
// OP_BATCH of 10,000 puts to new map names held 840 MB).
func TestStore_manyMapsSmallHeap(t *testing.T) {
	f := newFixture(t, null.Open(), func(o *Options) { o.CacheBytes = -1 })
	const maps = 2000
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	ops := make([]Op, 0, 500)
	for i := 0; i < maps; i++ {
		ops = append(ops, put(fmt.Sprintf("m%d", i), "k", "v", ts(t0, 0, "c")))
		if len(ops) == cap(ops) {
			f.apply(ops...)
			ops = ops[:0]
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / maps
	t.Logf("%d heap bytes per map of one record", per)
	if per > 16<<10 {
		t.Fatalf("%d heap bytes per map of one record, want at most %d", per, 16<<10)
	}
	if got := f.s.Root("m7", KindLWW); got != lwwRootOf(map[string]record.Timestamp{"k": ts(t0, 0, "c")}) {
		t.Fatalf("root of a one-record map %d", got)
	}
}

// A map whose last tombstone is collected is forgotten.
func TestStore_emptiedMapForgotten(t *testing.T) {
	f := newFixture(t, null.Open(), func(o *Options) { o.TombstoneTTL = time.Hour })
	f.apply(put("gone", "k", "v", ts(t0, 0, "c")), put("kept", "k", "v", ts(t0, 0, "c")))
	f.apply(Op{Map: "gone", Key: "k", Kind: OpRemove, Timestamp: ts(t0+1, 0, "c")})
	f.wall.Add(3 * time.Hour.Milliseconds())
	if n, err := f.s.CollectTombstones(context.Background()); err != nil || n != 1 {
		t.Fatalf("collected %d tombstones: %v", n, err)
	}
	if got := f.s.Maps(); !slices.Equal(got, []string{"kept"}) {
		t.Fatalf("maps %q, want only %q", got, "kept")
	}
	if f.s.Root("gone", KindLWW) != 0 {
		t.Fatal("the emptied map has a root")
	}
	b, ok := f.s.Buckets("gone", KindLWW, "")
	if !ok || len(b) != 0 {
		t.Fatalf("buckets of the emptied map %v %t", b, ok)
	}
}

// Node ids come from clients' timestamps. The index interned every node
// id it ever saw and never forgot one, so writes over one key, each with a
// new node id, grew the heap without bound while storage held one record.
func TestStore_nodeIDsOfReplacedRecordsForgotten(t *testing.T) {
	f := newFixture(t, null.Open(), nil)
	for i := range 50 {
		ops := make([]Op, 100)
		for j := range ops {
			ops[j] = put("m", "k", "v", ts(t0, uint32(i*100+j), fmt.Sprintf("node-%d-%d", i, j)))
		}
		f.apply(ops...)
	}
	f.s.mu.RLock()
	n := len(f.s.nodeI)
	f.s.mu.RUnlock()
	if n > 1 {
		t.Fatalf("the index holds %d node ids for one record", n)
	}
	// A reused slot names the right node.
	f.apply(put("m", "a", "v", ts(t0+1, 0, "node-a")), put("m", "b", "v", ts(t0+1, 0, "node-b")))
	want := lwwRootOf(map[string]record.Timestamp{
		"k": ts(t0, 4999, "node-49-99"), "a": ts(t0+1, 0, "node-a"), "b": ts(t0+1, 0, "node-b"),
	})
	if got := f.s.Root("m", KindLWW); got != want {
		t.Fatalf("root %d, want %d", got, want)
	}
	if r := f.apply(put("m", "a", "older", ts(t0+1, 0, "node-0"))); r[0].Changed {
		t.Fatal("a write older than the indexed one was applied")
	}
}
