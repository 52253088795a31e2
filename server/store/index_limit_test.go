package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/plugins/null"
	"github.com/topgun-go/topgun/server/record"
)

// fabricBackend lists maps of records it makes up as it scans them, fresh
// keys in ascending order, as a hostile plugin can without holding any:
// maps maps of keys records each (keys of keyLen bytes, stamped by one of
// nodes node ids of nodeLen bytes, expiring when expiring). It counts the
// records it returned; past its records it ends each map's scan, so a
// test bounds the "endless" stream.
type fabricBackend struct {
	abi.Backend
	maps, keys, keyLen, nodes, nodeLen int
	expiring                           bool
	scanned                            atomic.Int64
}

func (b *fabricBackend) ListMaps(ctx context.Context) ([]string, error) {
	out := make([]string, b.maps)
	for i := range out {
		out[i] = fmt.Sprintf("map-%06d", i)
	}
	return out, nil
}

func (b *fabricBackend) key(i int) string {
	k := fmt.Sprintf("k%010d", i)
	if n := b.keyLen - len(k); n > 0 {
		k += strings.Repeat("x", n)
	}
	return k
}

func (b *fabricBackend) Scan(ctx context.Context, req abi.ScanRequest) (abi.Page, error) {
	from := 0
	if len(req.Cursor) > 0 {
		from, _ = strconv.Atoi(string(req.Cursor))
	}
	limit := req.Limit
	if limit <= 0 {
		limit = abi.DefaultScanLimit
	}
	var page abi.Page
	i := from
	for ; i < b.keys && i < from+limit; i++ {
		node := fmt.Sprintf("n%d", i%max(b.nodes, 1))
		if n := b.nodeLen - len(node); n > 0 {
			node += strings.Repeat("y", n)
		}
		rv := record.NewLWW(record.StringValue("v"), record.Timestamp{Millis: uint64(t0 - 1000), Counter: uint32(i), NodeID: node})
		val, err := record.Encode(nil, &rv)
		if err != nil {
			return abi.Page{}, err
		}
		r := abi.Record{Map: req.Map, Key: b.key(i), Value: val, UpdatedAt: t0 - 1000}
		if b.expiring {
			r.ExpirationTime = t0 + 3600_000
		}
		page.Records = append(page.Records, r)
	}
	b.scanned.Add(int64(len(page.Records)))
	if i < b.keys {
		page.Cursor = []byte(strconv.Itoa(i))
	}
	return page, nil
}

// A backend listing fresh keys without end (a hostile wasm plugin) grew
// the index at Open until the process ran out of memory, every tenant of
// it with it: nothing bounded the keys rebuild indexed. With
// MaxIndexBytes, Open stops once past it, with an error naming the
// setting and what it indexed.
func TestStore_rebuildStopsAtIndexLimit(t *testing.T) {
	const limit = 1 << 20
	// 300,000 records (about 30 MB of index) stand for an endless stream.
	be := &fabricBackend{Backend: null.Open(), maps: 1, keys: 300_000, nodes: 1}
	wall := &atomic.Int64{}
	wall.Store(t0)
	clock := &testClock{wall: wall, drift: 60_000}
	s, err := Open(context.Background(), be, &Options{Clock: clock, Logger: testLogger(t), MaxIndexBytes: limit,
		SettingName: func(env string) string {
			if env == "TOPGUN_MAX_INDEX_MB" {
				return "max_index_mb"
			}
			return ""
		}})
	if err == nil {
		s.Close()
		t.Fatalf("Open indexed all %d records a backend made up, past an index limit of %d bytes", be.scanned.Load(), limit)
	}
	t.Log(err)
	if !errors.Is(err, abi.ErrResourceExhausted) {
		t.Fatalf("error %v, want resource exhausted", err)
	}
	for _, want := range []string{"max_index_mb", "records", strconv.Itoa(limit)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	// It stopped within a page of the limit and Open's slack past it (a
	// record takes more than 100 bytes of them).
	if n := be.scanned.Load(); n > (limit+rebuildSlack(limit))/100+4096 {
		t.Fatalf("Open read %d records before stopping at a limit of %d bytes", n, limit)
	}
}

// indexHeap opens a store on be and returns the heap its index holds (the
// least of three openings, so a stray allocation elsewhere does not
// count) and IndexBytes.
func indexHeap(t *testing.T, be abi.Backend) (heap, counted int64) {
	heap = -1
	for range 3 {
		wall := &atomic.Int64{}
		wall.Store(t0)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		s, err := Open(context.Background(), be, &Options{Clock: &testClock{wall: wall, drift: 60_000}, CacheBytes: -1,
			WallClock: nil, ReapInterval: 1 << 62, GCInterval: 1 << 62, GCStartDelay: 1 << 62})
		if err != nil {
			t.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		h := int64(after.HeapAlloc) - int64(before.HeapAlloc)
		counted = s.IndexBytes()
		runtime.KeepAlive(s)
		s.Close()
		if heap < 0 || h < heap {
			heap = h
		}
	}
	return heap, counted
}

// IndexBytes must not count less than the heap the index holds, or the
// bound would not hold, nor much more, or it would refuse data that fits.
// Measured against the live heap for dense and sparse maps, long keys,
// expiring keys and a node id per key, at sizes where Go's maps last grew
// (fullest) and just grew (emptiest).
func TestIndexBytes_boundsHeap(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("measures the heap of indexes of up to 250,000 records (minutes under the race detector)")
	}
	for _, tc := range []struct {
		name string
		be   *fabricBackend
	}{
		{"dense-230k", &fabricBackend{maps: 1, keys: 230_000, keyLen: 11, nodes: 16}},
		{"dense-250k", &fabricBackend{maps: 1, keys: 250_000, keyLen: 11, nodes: 16}},
		{"dense-120k", &fabricBackend{maps: 1, keys: 120_000, keyLen: 11, nodes: 16}},
		{"sparse-1-per-map", &fabricBackend{maps: 5000, keys: 1, keyLen: 11, nodes: 1}},
		{"sparse-20-per-map", &fabricBackend{maps: 2000, keys: 20, keyLen: 11, nodes: 1}},
		{"sparse-2000-per-map", &fabricBackend{maps: 50, keys: 2000, keyLen: 11, nodes: 1}},
		{"long-keys", &fabricBackend{maps: 1, keys: 50_000, keyLen: 300, nodes: 1}},
		{"expiring", &fabricBackend{maps: 1, keys: 120_000, keyLen: 11, nodes: 1, expiring: true}},
		{"node-per-key", &fabricBackend{maps: 1, keys: 120_000, keyLen: 11, nodes: 120_000, nodeLen: 20}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.be.Backend = null.Open()
			heap, counted := indexHeap(t, tc.be)
			n := int64(tc.be.maps * tc.be.keys)
			t.Logf("%d records: heap %d (%.1f per record), counted %d (%.1f per record), %.2fx", n, heap, float64(heap)/float64(n), counted, float64(counted)/float64(n), float64(counted)/float64(heap))
			if counted < heap*95/100 {
				t.Errorf("counted %d bytes for an index holding %d of heap", counted, heap)
			}
			if counted > heap*2 {
				t.Errorf("counted %d bytes for an index holding %d of heap: over twice", counted, heap)
			}
		})
	}
}

// At MaxIndexBytes a write that would add a key to the index is refused
// as resource exhausted, naming the setting, while writes to stored keys
// (updates, removes, OR ops) pass and nothing stored is lost; once keys
// are removed and their tombstones collected, new keys pass again.
func TestStore_newKeysRefusedAtIndexLimit(t *testing.T) {
	const limit = 64 << 10
	f := newFixture(t, null.Open(), func(o *Options) { o.MaxIndexBytes = limit; o.TombstoneTTL = time.Hour })
	f.apply(Op{Map: "m", Key: "or", Kind: OpORAdd, Value: record.StringValue("a"), Timestamp: ts(t0, 0, "c"), Tag: "t1"})
	stored := 1
	var refused *Result
	for i := 0; i < 10_000 && refused == nil; i++ {
		r := f.apply(put("m", fmt.Sprintf("key-%05d", i), "v", ts(t0, uint32(i), "c")))
		if r[0].Err != nil {
			refused = &r[0]
			break
		}
		stored++
	}
	if refused == nil {
		t.Fatalf("10,000 new keys stored at an index limit of %d bytes (index %d bytes)", limit, f.s.IndexBytes())
	}
	t.Logf("%d keys stored, index %d bytes: %v", stored, f.s.IndexBytes(), refused.Err)
	if !errors.Is(refused.Err, abi.ErrResourceExhausted) {
		t.Fatalf("refusal %v, want resource exhausted", refused.Err)
	}
	if !strings.Contains(refused.Err.Error(), "TOPGUN_MAX_INDEX_MB") {
		t.Fatalf("refusal %q does not name TOPGUN_MAX_INDEX_MB", refused.Err)
	}
	// It passes the limit by at most one key's leaf, map and node.
	if n := f.s.IndexBytes(); n > limit+indexLeafBytes+indexKeyBytes+indexNodeBytes+64 {
		t.Fatalf("index of %d bytes at a limit of %d", n, limit)
	}

	// A server stopped at its limit starts again.
	f.s.Close()
	f.open()
	t.Logf("reopened: index of %d bytes", f.s.IndexBytes())

	// Every op that adds a key is refused; those on stored keys pass.
	for _, tc := range []struct {
		name  string
		op    Op
		added bool
	}{
		{"put of a new key", put("m", "new", "v", ts(t0+1, 0, "c")), true},
		{"put to a new map", put("other", "new", "v", ts(t0+1, 0, "c")), true},
		{"remove of an absent key", Op{Map: "m", Key: "absent", Kind: OpRemove, Timestamp: ts(t0+1, 0, "c")}, true},
		{"OR add to a new key", Op{Map: "m", Key: "or-new", Kind: OpORAdd, Value: record.StringValue("a"), Timestamp: ts(t0+1, 0, "c"), Tag: "t9"}, true},
		{"OR remove on a new key", Op{Map: "m", Key: "or-new", Kind: OpORRemove, Tag: "t9"}, true},
		{"update", put("m", "key-00000", "w", ts(t0+1, 0, "c")), false},
		{"remove", Op{Map: "m", Key: "key-00001", Kind: OpRemove, Timestamp: ts(t0+1, 0, "c")}, false},
		{"OR add to a stored key", Op{Map: "m", Key: "or", Kind: OpORAdd, Value: record.StringValue("b"), Timestamp: ts(t0+1, 0, "c"), Tag: "t2"}, false},
		{"OR remove on a stored key", Op{Map: "m", Key: "or", Kind: OpORRemove, Tag: "t1"}, false},
	} {
		r := f.apply(tc.op)[0]
		if tc.added && !errors.Is(r.Err, abi.ErrResourceExhausted) {
			t.Errorf("%s at the index limit: %+v, want refused as resource exhausted", tc.name, r)
		}
		if !tc.added && (r.Err != nil || !r.Changed) {
			t.Errorf("%s at the index limit: %+v, want applied", tc.name, r)
		}
	}
	// Nothing stored was lost.
	n := 0
	if err := f.s.Scan(context.Background(), "m", func(e *Entry) bool { n++; return true }); err != nil {
		t.Fatal(err)
	}
	if n != stored-1 { // key-00001 removed
		t.Fatalf("%d live records, want %d", n, stored-1)
	}
	if e, ok, err := f.s.Get(context.Background(), "m", "key-00000"); err != nil || !ok || e.Record.LWW.Value.Text() != "w" {
		t.Fatalf("updated key: %+v %t %v", e, ok, err)
	}

	// Removed, then collected, keys make room.
	var rm []Op
	for i := 2; i < stored-1; i++ {
		rm = append(rm, Op{Map: "m", Key: fmt.Sprintf("key-%05d", i), Kind: OpRemove, Timestamp: ts(t0+2, 0, "c")})
	}
	for _, r := range f.apply(rm...) {
		if r.Err != nil || !r.Changed {
			t.Fatalf("remove: %+v", r)
		}
	}
	if r := f.apply(put("m", "new", "v", ts(t0+3, 0, "c")))[0]; r.Err == nil {
		t.Fatal("a new key stored while tombstones fill the index")
	}
	f.wall.Add(3 * time.Hour.Milliseconds())
	if _, err := f.s.CollectTombstones(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := f.apply(put("m", "new", "v", ts(uint64(f.wall.Load()), 0, "c")))[0]; r.Err != nil || !r.Changed {
		t.Fatalf("a new key once tombstones were collected: %+v", r)
	}
	checkIndexBytes(t, f)
}

// checkIndexBytes checks that the index's size kept through writes equals
// the size an index rebuilt from storage counts.
func checkIndexBytes(t *testing.T, f *fixture) {
	t.Helper()
	got := f.s.IndexBytes()
	f.s.Close()
	o := f.opts
	o.MaxIndexBytes = 0
	s, err := Open(context.Background(), f.be, &o)
	if err != nil {
		t.Fatal(err)
	}
	f.s = s
	if want := s.IndexBytes(); got != want {
		t.Fatalf("index size %d kept through writes, %d rebuilt from storage", got, want)
	}
}

// The index's size kept through writes, removes, OR ops, expiry and
// tombstone collection (keys, maps and node ids forgotten) is the size a
// rebuild from storage counts.
func TestIndexBytes_followsWrites(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewSource(seed))
	f := newFixture(t, null.Open(), func(o *Options) { o.TombstoneTTL = time.Hour })
	for round := range 20 {
		ops := make([]Op, 0, 200)
		now := uint64(f.wall.Load())
		for j := range 200 {
			m, k := fmt.Sprintf("m%d", rng.Intn(5)), fmt.Sprintf("k%d", rng.Intn(300))
			node := fmt.Sprintf("node-%d", rng.Intn(50))
			stamp := ts(now, uint32(round*1000+j), node)
			switch rng.Intn(6) {
			case 0, 1:
				op := put(m, k, "v", stamp)
				if rng.Intn(3) == 0 {
					op.TTLMs = uint64(rng.Intn(2)+1) * 3600_000
				}
				ops = append(ops, op)
			case 2:
				ops = append(ops, Op{Map: m, Key: k, Kind: OpRemove, Timestamp: stamp})
			case 3, 4:
				ops = append(ops, Op{Map: "or" + m, Key: k, Kind: OpORAdd, Value: record.StringValue("a"), Timestamp: stamp, Tag: fmt.Sprintf("t%d", rng.Intn(20))})
			case 5:
				ops = append(ops, Op{Map: "or" + m, Key: k, Kind: OpORRemove, Tag: fmt.Sprintf("t%d", rng.Intn(20))})
			}
		}
		f.apply(ops...)
		if round%5 == 4 {
			f.wall.Add(90 * time.Minute.Milliseconds())
			if _, err := f.s.ReapExpired(context.Background()); err != nil {
				t.Fatal(err)
			}
			if _, err := f.s.CollectTombstones(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	}
	f.wall.Add(10 * time.Hour.Milliseconds())
	if _, err := f.s.ReapExpired(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkIndexBytes(t, f)
	if _, err := f.s.CollectTombstones(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkIndexBytes(t, f)
}

// Writes admitted at MaxIndexBytes must not take the index past what Open
// accepts (MaxIndexBytes plus rebuildSlack), or a server stopped then does
// not start again. A new key of a new map (or of a map's other, empty,
// trie) installs the trie's upper levels and a leaf, and a key in a new
// leaf, stamped by a new node id, expiring, installs them too: admitted by
// the key alone, a commit of such keys took the index several times past
// the bound.
func TestStore_reopensAfterWritesAtIndexLimit(t *testing.T) {
	node := func(i int) string {
		n := fmt.Sprintf("n%06d", i)
		return n + strings.Repeat("y", 256-len(n))
	}
	for _, tc := range []struct {
		name  string
		limit int64
		ops   func(f *fixture) []Op
	}{
		{"new-maps", 4 << 20, func(f *fixture) []Op {
			ops := make([]Op, 0, 4096)
			for i := range cap(ops) {
				op := put(fmt.Sprintf("m%05d", i), "k", "v", ts(t0, 0, node(i)))
				op.TTLMs = 3600_000
				ops = append(ops, op)
			}
			return ops
		}},
		{"new-or-tries", 32 << 20, func(f *fixture) []Op {
			// Maps holding LWW keys, filling most of the index.
			var pre []Op
			for i := range 9000 {
				pre = append(pre, put(fmt.Sprintf("m%05d", i), "k", "v", ts(t0, 0, "c")))
			}
			for _, r := range f.apply(pre...) {
				if r.Err != nil {
					t.Fatal(r.Err)
				}
			}
			ops := make([]Op, 0, 9000)
			for i := range cap(ops) {
				ops = append(ops, Op{Map: fmt.Sprintf("m%05d", i), Key: "o", Kind: OpORAdd, Value: record.StringValue("a"),
					Timestamp: ts(t0, 1, "c"), Tag: "t", TTLMs: 3600_000})
			}
			return ops
		}},
		{"new-leaves-and-nodes", 4 << 20, func(f *fixture) []Op {
			const maps = 8
			var pre []Op
			for m := range maps {
				pre = append(pre, put(fmt.Sprintf("m%d", m), "k", "v", ts(t0, 0, "c")))
			}
			f.apply(pre...)
			ops := make([]Op, 0, 20_000)
			used := map[string]bool{}
			for i := 0; len(ops) < cap(ops); i++ {
				k := strconv.Itoa(i)
				m := fmt.Sprintf("m%d", len(ops)%maps)
				if l := fmt.Sprintf("%s/%d", m, leafOf(k)); !used[l] {
					used[l] = true
					op := put(m, k, "v", ts(t0, 0, node(len(ops))))
					op.TTLMs = 3600_000
					ops = append(ops, op)
				}
			}
			return ops
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			limit := tc.limit
			f := newFixture(t, null.Open(), func(o *Options) { o.MaxIndexBytes = limit })
			ops := tc.ops(f)
			stored := 0
			for _, r := range f.apply(ops...) {
				if r.Err == nil {
					stored++
				}
			}
			t.Logf("%d of %d new keys stored: index %d bytes at a limit of %d (Open accepts %d)",
				stored, len(ops), f.s.IndexBytes(), limit, limit+rebuildSlack(limit))
			f.s.Close()
			s, err := Open(context.Background(), f.be, &f.opts)
			if err != nil {
				t.Fatalf("a store stopped after writes admitted at its index limit does not open again: %v", err)
			}
			f.s = s
		})
	}
}

// At MaxIndexBytes, a write to a stored key that would add a node id new
// to the index is refused, as a new key is: updates of every key of a
// full index, each by a new 256-byte node id, took it to about 4 times
// its bound, past what Open accepts, and the store did not open again.
// Writes by node ids the index holds still pass.
func TestStore_updatesByNewNodesAtIndexLimit(t *testing.T) {
	const limit = 4 << 20
	f := newFixture(t, null.Open(), func(o *Options) { o.MaxIndexBytes = limit })
	var ops []Op
	for i := range 60_000 {
		ops = append(ops, put("m", strconv.Itoa(i), "v", ts(t0, 0, "c")))
	}
	stored := 0
	for _, r := range f.apply(ops...) {
		if r.Err == nil {
			stored++
		}
	}
	ops = ops[:0]
	for i := range stored {
		n := fmt.Sprintf("n%06d", i)
		ops = append(ops, put("m", strconv.Itoa(i), "w", ts(t0+1, 0, n+strings.Repeat("y", 256-len(n)))))
	}
	updated, refused := 0, 0
	for _, r := range f.apply(ops...) {
		switch {
		case errors.Is(r.Err, abi.ErrResourceExhausted):
			refused++
		case r.Err == nil && r.Changed:
			updated++
		default:
			t.Fatalf("update: %+v", r)
		}
	}
	t.Logf("%d keys stored, %d updated by new node ids, %d refused: index %d bytes at a limit of %d",
		stored, updated, refused, f.s.IndexBytes(), limit)
	if refused == 0 || f.s.IndexBytes() > limit {
		t.Fatalf("index of %d bytes at a limit of %d after updates by new node ids (%d refused)", f.s.IndexBytes(), limit, refused)
	}
	// The node id of the first key's writer is held: its writes pass.
	if r := f.apply(put("m", strconv.Itoa(stored-1), "x", ts(t0+2, 0, "c")))[0]; r.Err != nil || !r.Changed {
		t.Fatalf("update by a node id the index holds: %+v", r)
	}
	if r := f.apply(Op{Map: "m", Key: strconv.Itoa(stored - 2), Kind: OpRemove, Timestamp: ts(t0+2, 0, "c")})[0]; r.Err != nil || !r.Changed {
		t.Fatalf("remove by a node id the index holds: %+v", r)
	}
	f.s.Close()
	f.open()
}
