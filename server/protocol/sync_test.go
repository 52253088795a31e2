package protocol

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/coder/websocket"

	"github.com/topgun-go/topgun/internal/faultbackend"
	"github.com/topgun-go/topgun/plugins/null"
	"github.com/topgun-go/topgun/server/merkle"
	"github.com/topgun-go/topgun/server/record"
	"github.com/topgun-go/topgun/server/store"
	"github.com/topgun-go/topgun/server/wire"
)

// refTrie is the Merkle tree of TopGun's TypeScript client, written
// independently of the server's: FNV-1a over UTF-16 code units, depth 3,
// node hash = wrapping sum of fmix32 of the children.
type refTrie struct {
	leaves map[string]map[string]uint32 // 3-digit path -> key -> item hash
}

func newRefTrie() *refTrie { return &refTrie{leaves: map[string]map[string]uint32{}} }

func refFNV(s string) uint32 {
	h := uint32(0x811c9dc5)
	for _, u := range utf16.Encode([]rune(s)) {
		h ^= uint32(u)
		h *= 0x01000193
	}
	return h
}

func refMix(h uint32) uint32 {
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}

func refPath(key string) string { return fmt.Sprintf("%08x", refFNV(key)) }

func refLWWItem(key string, ts wire.Timestamp) uint32 {
	return refFNV(key + ":" + strconv.FormatUint(ts.Millis, 10) + ":" + strconv.FormatUint(uint64(ts.Counter), 10) + ":" + ts.NodeID)
}

func (t *refTrie) set(key string, item uint32) {
	p := refPath(key)[:3]
	if t.leaves[p] == nil {
		t.leaves[p] = map[string]uint32{}
	}
	t.leaves[p][key] = item
}

func (t *refTrie) node(path string) uint32 {
	var h uint32
	if len(path) == 3 {
		for _, item := range t.leaves[path] {
			h += refMix(item)
		}
		return h
	}
	for _, c := range "0123456789abcdef" {
		h += refMix(t.node(path + string(c)))
	}
	return h
}

func (t *refTrie) root() uint32 { return t.node("") }

func (t *refTrie) bucket(path string, c string) uint32 { return t.node(path + c) }

type lwwRec struct {
	key   string
	value any
	ts    wire.Timestamp
}

// seed writes n records through a connection and returns them.
func seed(t *testing.T, e *env, mapName string, n int) []lwwRec {
	t.Helper()
	c := e.dial(t)
	recs := make([]lwwRec, n)
	ops := make([]wire.ClientOp, n)
	for i := range recs {
		recs[i] = lwwRec{key: "key-" + itoa(i), value: map[string]any{"i": int64(i)}, ts: cts("writer")}
		ops[i] = putOp(itoa(i+1), mapName, recs[i].key, recs[i].value, recs[i].ts)
	}
	c.write(ops...)
	return recs
}

func TestSync_inSyncClientAnsweredByRootAlone(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	recs := seed(t, e, "todos", 300)
	local := newRefTrie()
	for _, r := range recs {
		local.set(r.key, refLWWItem(r.key, r.ts))
	}
	c := e.dial(t)
	before := c.raw.Load()
	c.send(&wire.SyncInit{MapName: "todos"})
	root := expect[*wire.SyncRespRoot](c)
	if root.RootHash != local.root() || root.RootHash == 0 {
		t.Fatalf("server root %d, client root %d", root.RootHash, local.root())
	}
	c.quiet(100 * time.Millisecond)
	if n := c.raw.Load() - before; n != 1 {
		t.Fatalf("%d messages for an in-sync client, want 1", n)
	}
	// An unknown map has root 0, as the client's empty tree.
	c.send(&wire.SyncInit{MapName: "nothing-here"})
	if r := expect[*wire.SyncRespRoot](c); r.RootHash != 0 {
		t.Fatalf("empty map root %d", r.RootHash)
	}
}

// drill walks the trie from the root as TopGun's client does, requesting
// only the buckets whose hash differs from the local one, and returns the
// leaf paths requested and the records received.
func drill(t *testing.T, c *client, mapName string, local *refTrie) ([]string, []wire.LeafRecord) {
	t.Helper()
	c.send(&wire.SyncInit{MapName: mapName})
	root := expect[*wire.SyncRespRoot](c)
	if root.RootHash == local.root() {
		return nil, nil
	}
	var leaves []string
	var recs []wire.LeafRecord
	queue := []string{""}
	for len(queue) > 0 {
		path := queue[0]
		queue = queue[1:]
		c.send(&wire.MerkleReqBucket{MapName: mapName, Path: path})
		switch m := c.next().(type) {
		case *wire.SyncRespBuckets:
			if m.Path != path {
				t.Fatalf("buckets for %q answer %q", path, m.Path)
			}
			keys := make([]string, 0, len(m.Buckets))
			for ch := range m.Buckets {
				keys = append(keys, ch)
			}
			sort.Strings(keys)
			for _, ch := range keys {
				if local.bucket(path, ch) != m.Buckets[ch] {
					queue = append(queue, path+ch)
				}
			}
		case *wire.SyncRespLeaf:
			if len(path) != 3 {
				t.Fatalf("leaf at path %q", path)
			}
			leaves = append(leaves, path)
			recs = append(recs, m.Records...)
		default:
			t.Fatalf("MERKLE_REQ_BUCKET %q answered %s", path, m.Type())
		}
	}
	return leaves, recs
}

func TestSync_drillDownFetchesExactlyTheMissingLeaves(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	recs := seed(t, e, "todos", 400)
	local := newRefTrie()
	missing := map[string]lwwRec{}
	wantLeaves := map[string]bool{}
	for i, r := range recs {
		if i%20 == 7 {
			missing[r.key] = r
			wantLeaves[refPath(r.key)[:3]] = true
			continue
		}
		local.set(r.key, refLWWItem(r.key, r.ts))
	}
	c := e.dial(t)
	leaves, got := drill(t, c, "todos", local)
	if len(leaves) != len(wantLeaves) {
		t.Fatalf("requested %d leaves, want exactly the %d holding missing keys", len(leaves), len(wantLeaves))
	}
	for _, p := range leaves {
		if !wantLeaves[p] {
			t.Fatalf("requested leaf %s holds no missing key", p)
		}
	}
	found := 0
	for _, lr := range got {
		if r, ok := missing[lr.Key]; ok {
			found++
			if lr.Record.Timestamp != r.ts || lr.Record.TTLMs != nil {
				t.Fatalf("record %s: %+v, want timestamp %+v and no ttl", lr.Key, lr.Record, r.ts)
			}
		}
		local.set(lr.Key, refLWWItem(lr.Key, lr.Record.Timestamp))
	}
	if found != len(missing) {
		t.Fatalf("leaves carried %d of the %d missing records", found, len(missing))
	}
	// After merging the leaves the client is in sync.
	if l, _ := drill(t, c, "todos", local); l != nil {
		t.Fatalf("still out of sync after merging: leaves %v", l)
	}
}

func TestSync_leavesCarryTombstonesAndTTL(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	c := e.dial(t)
	ttl := uint64(60_000)
	put := putOp("1", "m", "expiring", "v", cts("c1"))
	put.Record.TTLMs = &ttl
	del := putOp("2", "m", "deleted", "v", cts("c1"))
	gone := cts("c1")
	c.write(put, del, removeOp("3", "m", "deleted", gone))

	// A client that knows nothing drills to the two leaves.
	leaves, recs := drill(t, e.dial(t), "m", newRefTrie())
	if len(leaves) == 0 {
		t.Fatal("no leaves")
	}
	byKey := map[string]wire.LWWRecord{}
	for _, r := range recs {
		byKey[r.Key] = r.Record
	}
	if r := byKey["expiring"]; r.TTLMs == nil || *r.TTLMs != ttl || r.Value != "v" {
		t.Fatalf("expiring record %+v, want ttlMs %d", r, ttl)
	}
	if r, ok := byKey["deleted"]; !ok || r.Value != nil || r.Timestamp != gone {
		t.Fatalf("tombstone %+v (present %v), want value nil at %+v", r, ok, gone)
	}
	// The client, holding both (tombstone included), is in sync.
	local := newRefTrie()
	for k, r := range byKey {
		local.set(k, refLWWItem(k, r.Timestamp))
	}
	if l, _ := drill(t, e.dial(t), "m", local); l != nil {
		t.Fatalf("out of sync: %v", l)
	}
}

func TestSync_badPaths(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	seed(t, e, "m", 10)
	c := e.dial(t)
	for _, p := range []string{"0/1/2", "ABC", "abcd", "zz"} {
		c.send(&wire.MerkleReqBucket{MapName: "m", Path: p})
		if m := expect[*wire.ErrorMessage](c); m.Code != 400 {
			t.Fatalf("path %q: %+v", p, m)
		}
	}
	// An existing but empty leaf answers an empty record list.
	c.send(&wire.MerkleReqBucket{MapName: "empty", Path: "abc"})
	if m := expect[*wire.SyncRespLeaf](c); len(m.Records) != 0 {
		t.Fatalf("%+v", m)
	}
}

// orClientRoot is the OR-Map root TopGun's client computes for the given
// key states (item hashes from merkle.ORItemHash, the client's formula).
func orClientRoot(states map[string][]record.ORMapEntry) uint32 {
	tr := newRefTrie()
	for k, recs := range states {
		if h, ok := merkle.ORItemHash(k, recs); ok {
			tr.set(k, h)
		}
	}
	return tr.root()
}

func orFromWire(rs []wire.ORMapRecord) []record.ORMapEntry {
	out := make([]record.ORMapEntry, len(rs))
	for i, r := range rs {
		out[i] = record.ORMapEntry{Value: record.FromWire(r.Value), Tag: r.Tag, Timestamp: tsFromWire(r.Timestamp), TTLMs: ttlOf(r.TTLMs)}
	}
	return out
}

func TestSync_ORMapFlow(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	w := e.dial(t)
	watcher := e.dial(t)
	watcher.send(&wire.QuerySub{QueryID: "q", MapName: "tags"})
	expect[*wire.QueryResp](watcher)

	red, blue, green := orAddOp("1", "tags", "post-1", "red", cts("w")), orAddOp("2", "tags", "post-1", "blue", cts("w")), orAddOp("3", "tags", "post-2", "green", cts("w"))
	w.write(red, blue, green, orRemoveOp("4", "tags", "post-1", blue.ORRecord.Tag))
	for range 4 {
		skipUntil[*wire.ServerEvent](watcher)
	}

	c := e.dial(t)
	c.send(&wire.ORMapSyncInit{MapName: "tags", BucketHashes: map[string]uint32{}})
	root := expect[*wire.ORMapSyncRespRoot](c)
	want := orClientRoot(map[string][]record.ORMapEntry{
		"post-1": orFromWire([]wire.ORMapRecord{*red.ORRecord}),
		"post-2": orFromWire([]wire.ORMapRecord{*green.ORRecord}),
	})
	if root.RootHash != want {
		t.Fatalf("OR root %d, client computes %d", root.RootHash, want)
	}

	// Drill to the leaf of post-1.
	path := refPath("post-1")
	for i := 0; i < 3; i++ {
		c.send(&wire.ORMapMerkleReqBucket{MapName: "tags", Path: path[:i]})
		b := expect[*wire.ORMapSyncRespBuckets](c)
		if _, ok := b.Buckets[path[i:i+1]]; !ok {
			t.Fatalf("bucket %q lacks %q: %v", path[:i], path[i:i+1], b.Buckets)
		}
	}
	c.send(&wire.ORMapMerkleReqBucket{MapName: "tags", Path: path[:3]})
	leaf := expect[*wire.ORMapSyncRespLeaf](c)
	var p1 *wire.ORMapEntry
	for i := range leaf.Entries {
		if leaf.Entries[i].Key == "post-1" {
			p1 = &leaf.Entries[i]
		}
	}
	if p1 == nil || len(p1.Records) != 1 || p1.Records[0].Tag != red.ORRecord.Tag || !slices.Equal(p1.Tombstones, []string{blue.ORRecord.Tag}) {
		t.Fatalf("leaf entry %+v", p1)
	}

	// Diff request: one entry per key, empty for unknown keys.
	c.send(&wire.ORMapDiffRequest{MapName: "tags", Keys: []string{"post-2", "nope"}})
	diff := expect[*wire.ORMapDiffResponse](c)
	if len(diff.Entries) != 2 || diff.Entries[0].Key != "post-2" || len(diff.Entries[0].Records) != 1 ||
		diff.Entries[1].Key != "nope" || len(diff.Entries[1].Records) != 0 || diff.Entries[1].Tombstones == nil {
		t.Fatalf("diff %+v", diff)
	}

	// Push: the client removed red and added yellow while offline.
	yellowTS := cts("c")
	yellow := wire.ORMapRecord{Value: "yellow", Timestamp: yellowTS, Tag: yellowTS.String()}
	c.send(&wire.ORMapPushDiff{MapName: "tags", Entries: []wire.ORMapEntry{{
		Key: "post-1", Records: []wire.ORMapRecord{yellow, *red.ORRecord}, Tombstones: []string{red.ORRecord.Tag, blue.ORRecord.Tag},
	}}})
	if ack := expect[*wire.OpAck](c); ack.LastID != pushAckID {
		t.Fatalf("OP_ACK = %+v", ack)
	}
	en, ok, err := e.st.Get(t.Context(), "tags", "post-1")
	if err != nil || !ok || len(en.Record.ORMap.Records) != 1 || en.Record.ORMap.Records[0].Tag != yellow.Tag ||
		len(en.Record.ORMap.Tombstones) != 2 {
		t.Fatalf("post-1 after push: %+v %v %v", en.Record.ORMap, ok, err)
	}
	ev := skipUntil[*wire.ServerEvent](watcher)
	if ev.EventType != wire.EventORRemove && ev.EventType != wire.EventORAdd {
		t.Fatalf("event %+v", ev)
	}
	// Pushing the same state again changes nothing and is acknowledged.
	c.send(&wire.ORMapPushDiff{MapName: "tags", Entries: []wire.ORMapEntry{{Key: "post-1", Records: []wire.ORMapRecord{yellow}, Tombstones: []string{red.ORRecord.Tag}}}})
	expect[*wire.OpAck](c)

	// A client holding the server's state is in sync from the root.
	c.send(&wire.ORMapSyncInit{MapName: "tags", BucketHashes: map[string]uint32{}})
	want = orClientRoot(map[string][]record.ORMapEntry{
		"post-1": orFromWire([]wire.ORMapRecord{yellow}),
		"post-2": orFromWire([]wire.ORMapRecord{*green.ORRecord}),
	})
	if r := expect[*wire.ORMapSyncRespRoot](c); r.RootHash != want {
		t.Fatalf("OR root after push %d, client computes %d", r.RootHash, want)
	}
}

// A key whose last OR entry was removed keeps a leaf with its tombstones,
// hashed 0: the root is what an in-sync client computes (it keeps no leaf
// for the key), yet the key's buckets are listed, so a client that still
// holds the entry walks down to the leaf and receives the tombstone, as
// TopGun's server gives it. Before, the key vanished from the trie: the
// stale client found the bucket missing, pushed the entry back (dropped
// as tombstoned) and kept showing it.
func TestSync_ORKeyWithOnlyTombstonesReachesStaleClients(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	w := e.dial(t)
	red := orAddOp("1", "tags", "post-1", "red", cts("w"))
	w.write(red)
	w.write(orRemoveOp("2", "tags", "post-1", red.ORRecord.Tag))

	c := e.dial(t)
	c.send(&wire.ORMapSyncInit{MapName: "tags", BucketHashes: map[string]uint32{}})
	if root := expect[*wire.ORMapSyncRespRoot](c); root.RootHash != 0 {
		t.Fatalf("OR root %d, want an in-sync client's 0", root.RootHash)
	}
	path := refPath("post-1")
	for i := 0; i < 3; i++ {
		c.send(&wire.ORMapMerkleReqBucket{MapName: "tags", Path: path[:i]})
		b := expect[*wire.ORMapSyncRespBuckets](c)
		if h, ok := b.Buckets[path[i:i+1]]; !ok || h != 0 {
			t.Fatalf("bucket %q: %v, want %q listed with hash 0", path[:i], b.Buckets, path[i:i+1])
		}
	}
	c.send(&wire.ORMapMerkleReqBucket{MapName: "tags", Path: path[:3]})
	leaf := expect[*wire.ORMapSyncRespLeaf](c)
	if len(leaf.Entries) != 1 || leaf.Entries[0].Key != "post-1" || len(leaf.Entries[0].Records) != 0 ||
		!slices.Equal(leaf.Entries[0].Tombstones, []string{red.ORRecord.Tag}) {
		t.Fatalf("leaf %+v, want post-1 with its tombstone", leaf.Entries)
	}
	c.send(&wire.ORMapDiffRequest{MapName: "tags", Keys: []string{"post-1"}})
	if d := expect[*wire.ORMapDiffResponse](c); len(d.Entries) != 1 || !slices.Equal(d.Entries[0].Tombstones, []string{red.ORRecord.Tag}) {
		t.Fatalf("diff %+v, want the tombstone", d.Entries)
	}
	// The key may still become an LWW key, as before.
	w.write(putOp("3", "tags", "post-1", "now lww", cts("w")))
	if v, _, ok := e.getLWW("tags", "post-1"); !ok || v.Text() != "now lww" {
		t.Fatalf("LWW write over OR tombstones: %v %v", v, ok)
	}
}

// A client offline when tombstones were collected missed the feed's
// GC_PRUNE and kept them: its root never equalled the server's again. The
// cut-off now comes before the root of a connection's first sync. Each
// handshake is the one of TopGun's TS client: DEVICE_HELLO without a token
// (which takes any other message in 500 ms for a server without auth, so
// nothing may come before DEVICE_ACK), AUTH with one.
func TestSync_gcPruneOnFirstSync(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		auth, or bool
	}{
		{"noAuth", false, false},
		{"auth", true, false},
		{"orMapSyncInit", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := envConfig{fakeWall: true, storeOpts: func(o *store.Options) { o.TombstoneTTL = time.Minute }}
			if tc.auth {
				cfg.opts.Auth = mustAuth(t, testSecret)
			}
			e := newEnv(t, cfg)
			connect := func() *client {
				c := e.dial(t)
				if tc.auth {
					c.send(&wire.Auth{Token: userToken(t, "u1")})
					expect[*wire.AuthRequired](c)
					expect[*wire.AuthAck](c)
				} else {
					c.send(&wire.DeviceHello{})
					expect[*wire.DeviceAck](c)
				}
				c.quiet(50 * time.Millisecond) // nothing unasked
				return c
			}
			syncInit := func(c *client) {
				if tc.or {
					c.send(&wire.ORMapSyncInit{MapName: "m"})
				} else {
					c.send(&wire.SyncInit{MapName: "m"})
				}
			}
			root := func(c *client) uint32 {
				if tc.or {
					return expect[*wire.ORMapSyncRespRoot](c).RootHash
				}
				return expect[*wire.SyncRespRoot](c).RootHash
			}

			w := connect()
			syncInit(w) // nothing collected yet: the root alone
			root(w)
			live := wire.Timestamp{Millis: uint64(e.wall.Load()), NodeID: "w"}
			gone := live
			gone.Counter++
			w.write(putOp("1", "m", "live", "v", live))
			w.write(putOp("2", "m", "gone", "v", gone))
			gone.Counter++
			w.write(removeOp("3", "m", "gone", gone))
			// What an offline client holds, hashed as TopGun's client does.
			local := newRefTrie()
			local.set("live", refLWWItem("live", live))
			local.set("gone", refLWWItem("gone", gone))

			e.wall.Add(int64(2 * time.Minute / time.Millisecond))
			if n, err := e.st.CollectTombstones(context.Background()); err != nil || n != 1 {
				t.Fatalf("CollectTombstones = %d, %v", n, err)
			}
			cutoff, _ := e.st.PruneBefore()
			if p := expect[*wire.GCPrune](w); p.OlderThan != tsToWire(cutoff) {
				t.Fatalf("feed GC_PRUNE %+v, want %v", p, cutoff)
			}

			c := connect()
			syncInit(c)
			p := expect[*wire.GCPrune](c)
			if p.OlderThan != tsToWire(cutoff) || gone.Compare(p.OlderThan) >= 0 {
				t.Fatalf("GC_PRUNE %+v: want %v, above the collected tombstone %v", p, cutoff, gone)
			}
			r := root(c)
			if !tc.or {
				delete(local.leaves[refPath("gone")[:3]], "gone") // pruned
				if r != local.root() {
					t.Fatalf("server root %d, pruned client root %d", r, local.root())
				}
			}
			// Once per connection: later syncs get the root alone, and
			// the connection connected at the collection got no second one.
			syncInit(c)
			root(c)
			syncInit(w)
			root(w)
		})
	}
}

// The cut-off at a connection's first sync waits for the writes the
// client sent before it. TopGun's client sends its offline writes, then
// SYNC_INIT for every map, and prunes on GC_PRUNE the OR-Map tombstones
// whose tag (the entry's add time) is older than the cut-off: one for an
// entry added long ago and removed offline goes at once. Sent while that
// OR_REMOVE was still being committed, the leaf that followed still held
// the entry, and the client, no longer holding its tombstone, took it
// back (the writer gets no event for its own remove), so the removed
// entry reappeared on that client until its next connection; the same for
// its own LWW delete made offline longer than the TTL ago. Held back, the
// cut-off follows the OP_ACK however long the commit takes.
func TestSync_gcPruneWaitsForEarlierWrites(t *testing.T) {
	t.Parallel()
	e, _, added, cutoff := collectedAfterORAdd(t, envConfig{})

	c := e.dial(t)
	release := e.be.holdCommits()
	defer release()
	c.send(&wire.OpBatch{Ops: []wire.ClientOp{orRemoveOp("2", "m", "k", added.String())}})
	c.send(&wire.ORMapSyncInit{MapName: "m"})
	expect[*wire.ORMapSyncRespRoot](c)
	c.quiet(100 * time.Millisecond) // no cut-off while the remove is held
	release()
	expect[*wire.OpAck](c)
	if p := expect[*wire.GCPrune](c); p.OlderThan != tsToWire(cutoff) {
		t.Fatalf("GC_PRUNE %+v, want %v", p, cutoff)
	}
	// Once per connection.
	c.send(&wire.ORMapSyncInit{MapName: "m"})
	expect[*wire.ORMapSyncRespRoot](c)
}

// The feed's GC_PRUNE (a collection pass) is held back from a connection
// whose writes are queued or being committed, for the reason above, and
// sent after their OP_ACK, the greatest cut-off only; a connection with
// no pending writes gets each at once.
func TestSync_gcPruneHeldForPendingWrites(t *testing.T) {
	t.Parallel()
	e, w, added := withORAdd(t, envConfig{})
	c := e.dial(t)
	c.ping()

	release := e.be.holdCommits()
	defer release()
	c.send(&wire.OpBatch{Ops: []wire.ClientOp{orRemoveOp("2", "m", "k", added.String())}})
	c.ping() // the remove is queued: the reader handles frames in order
	high := record.Timestamp{Millis: added.Millis + 1000}
	low := record.Timestamp{Millis: added.Millis + 500}
	e.srv.dispatch(&store.Commit{PruneBefore: &high})
	e.srv.dispatch(&store.Commit{PruneBefore: &low})
	for _, want := range []record.Timestamp{high, low} {
		if p := expect[*wire.GCPrune](w); p.OlderThan != tsToWire(want) {
			t.Fatalf("idle connection: GC_PRUNE %+v, want %v", p, want)
		}
	}
	c.quiet(100 * time.Millisecond)
	release()
	expect[*wire.OpAck](c)
	if p := expect[*wire.GCPrune](c); p.OlderThan != tsToWire(high) {
		t.Fatalf("GC_PRUNE %+v, want the greatest cut-off %v", p, high)
	}
	c.quiet(100 * time.Millisecond) // the lower one is not sent after it
}

// A leaf read while the connection's remove was being committed holds the
// removed entry; a cut-off released by that commit must not overtake it.
func TestSync_gcPruneAfterLeafReadBeforeCommit(t *testing.T) {
	t.Parallel()
	e, _, added := withORAdd(t, envConfig{storeOpts: func(o *store.Options) { o.CacheBytes = -1 }})
	c := e.dial(t)
	c.ping()

	release := e.be.holdCommits()
	defer release()
	c.send(&wire.OpBatch{Ops: []wire.ClientOp{orRemoveOp("2", "m", "k", added.String())}})
	eventually(t, "held commit", func() bool { return e.be.held.Load() == 1 })
	entered, unblock := make(chan struct{}), make(chan struct{})
	var once, unblockOnce sync.Once
	e.be.setGetHook(func() {
		once.Do(func() { close(entered); <-unblock })
	})
	done := func() { unblockOnce.Do(func() { close(unblock) }) }
	defer done() // a failing test must not leave the reader stuck
	c.send(&wire.ORMapMerkleReqBucket{MapName: "m", Path: refPath("k")[:3]})
	select {
	case <-entered:
	case <-time.After(waitFor):
		t.Fatal("the leaf was not read")
	}
	cut := record.Timestamp{Millis: added.Millis + 1000}
	e.srv.dispatch(&store.Commit{PruneBefore: &cut})
	release()
	expect[*wire.OpAck](c)
	c.quiet(100 * time.Millisecond) // the leaf read goes on
	done()
	leaf := expect[*wire.ORMapSyncRespLeaf](c)
	if len(leaf.Entries) != 1 || len(leaf.Entries[0].Records) != 1 {
		t.Fatalf("leaf %+v: want the entry as read before the remove", leaf.Entries)
	}
	expect[*wire.GCPrune](c)
}

// A cut-off held back when the server shuts down goes out with the acks
// the drain waits for, before the close.
func TestSync_gcPruneHeldSentBeforeShutdown(t *testing.T) {
	t.Parallel()
	e, _, added := withORAdd(t, envConfig{})
	c := e.dial(t)
	c.ping()
	release := e.be.holdCommits()
	defer release()
	c.send(&wire.OpBatch{Ops: []wire.ClientOp{orRemoveOp("2", "m", "k", added.String())}})
	c.ping()
	cut := record.Timestamp{Millis: added.Millis + 1000}
	e.srv.dispatch(&store.Commit{PruneBefore: &cut})
	closed := make(chan struct{})
	go func() { e.srv.Close(); close(closed) }()
	eventually(t, "drain", func() bool {
		e.srv.mu.RLock()
		defer e.srv.mu.RUnlock()
		for sc := range e.srv.conns {
			if !sc.isDraining() {
				return false
			}
		}
		return true
	})
	release()
	expect[*wire.OpAck](c)
	expect[*wire.GCPrune](c)
	if code := c.closed(); code != websocket.StatusGoingAway {
		t.Fatalf("close %v, want going away", code)
	}
	<-closed
}

// After a write of the connection failed (ERROR 500, not stored; TopGun's
// client sends it again with its next write or at its next connection),
// no cut-off reaches the connection until it is sent again: a leaf lacks
// that remove as it lacks one still committing, so the client would take
// the removed entry back.
func TestSync_gcPruneNotAfterAFailedWrite(t *testing.T) {
	t.Parallel()
	e, w, added, _ := collectedAfterORAdd(t, envConfig{})

	c := e.dial(t)
	c.ping()
	e.be.setFail(errInjected)
	c.send(&wire.OpBatch{Ops: []wire.ClientOp{orRemoveOp("2", "m", "k", added.String())}})
	if m := expect[*wire.ErrorMessage](c); m.Code != 500 {
		t.Fatalf("got ERROR %d, want 500", m.Code)
	}
	e.be.setFail(nil)
	c.send(&wire.ORMapSyncInit{MapName: "m"})
	expect[*wire.ORMapSyncRespRoot](c)
	later := record.Timestamp{Millis: added.Millis + 90_000}
	e.srv.dispatch(&store.Commit{PruneBefore: &later})
	expect[*wire.GCPrune](w)
	c.quiet(100 * time.Millisecond) // neither the first sync's nor the feed's
}

// A backlog of more new ops than MaxBatchOps is acknowledged up to the
// last op applied; the rest (here an OR_REMOVE) is not stored until the
// client sends it again, so as after a failed write no cut-off may reach
// the connection: a leaf lacks that remove, and the client, pruning the
// tombstone of the entry it removed, would take the entry back.
func TestSync_gcPruneNotAfterAPartialAck(t *testing.T) {
	t.Parallel()
	e, _, added, _ := collectedAfterORAdd(t, envConfig{opts: Options{MaxBatchOps: 2}})

	c := e.dial(t)
	c.ping()
	ts := cts("c")
	c.send(&wire.OpBatch{Ops: []wire.ClientOp{
		putOp("1", "other", "a", "x", ts),
		putOp("2", "other", "b", "x", ts),
		orRemoveOp("3", "m", "k", added.String()),
	}})
	if a := expect[*wire.OpAck](c); a.LastID != "2" {
		t.Fatalf("OP_ACK %+v, want a partial ack up to 2", a)
	}
	c.send(&wire.ORMapSyncInit{MapName: "m"})
	expect[*wire.ORMapSyncRespRoot](c)
	c.quiet(100 * time.Millisecond)
}

// The feed offers GC_PRUNE to a connection without auth from its start;
// sent before DEVICE_ACK, TopGun's client (DEVICE_HELLO, 500 ms grace)
// took it for the answer of a server without auth. It is held back until
// the handshake is answered.
func TestSync_gcPruneNotBeforeDeviceAck(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{fakeWall: true})
	c := e.dial(t)
	eventually(t, "connection registered", func() bool {
		e.srv.mu.RLock()
		defer e.srv.mu.RUnlock()
		return len(e.srv.conns) == 1
	})
	low, high := record.Timestamp{Millis: 5}, record.Timestamp{Millis: 9}
	e.srv.dispatch(&store.Commit{PruneBefore: &high})
	e.srv.dispatch(&store.Commit{PruneBefore: &low})
	c.send(&wire.DeviceHello{})
	expect[*wire.DeviceAck](c)
	if p := expect[*wire.GCPrune](c); p.OlderThan != tsToWire(high) {
		t.Fatalf("GC_PRUNE %+v, want the greatest cut-off %v", p, high)
	}
	c.quiet(100 * time.Millisecond)
}

// withORAdd starts an env with a settable wall clock (cfg otherwise), and
// a connection that has added an OR-Map entry (m/k, tag added).
func withORAdd(t *testing.T, cfg envConfig) (*env, *client, wire.Timestamp) {
	t.Helper()
	cfg.fakeWall = true
	e := newEnv(t, cfg)
	w := e.dial(t)
	added := wire.Timestamp{Millis: uint64(e.wall.Load()), NodeID: "c"}
	w.write(orAddOp("1", "m", "k", "v", added))
	return e, w, added
}

// collectedAfterORAdd is withORAdd with a one-minute tombstone TTL, two
// minutes later, after a collection pass whose cut-off (returned) is above
// the entry's tag and whose GC_PRUNE the adding connection has read.
func collectedAfterORAdd(t *testing.T, cfg envConfig) (*env, *client, wire.Timestamp, record.Timestamp) {
	t.Helper()
	cfg.storeOpts = func(o *store.Options) { o.TombstoneTTL = time.Minute }
	e, w, added := withORAdd(t, cfg)
	e.wall.Add(int64(2 * time.Minute / time.Millisecond))
	if _, err := e.st.CollectTombstones(context.Background()); err != nil {
		t.Fatal(err)
	}
	cutoff, ok := e.st.PruneBefore()
	if !ok || added.Compare(tsToWire(cutoff)) >= 0 {
		t.Fatalf("cut-off %v, %v: want one above the entry's tag %v", cutoff, ok, added)
	}
	expect[*wire.GCPrune](w) // the feed's
	return e, w, added, cutoff
}

// A write refused whole, unread or unapplied (ERROR 413: a frame over
// MaxMessageBytes, one whose decoded form passes the decoded-size limit,
// an OP_BATCH of more new ops than MaxBatchOps whose ids do not ascend),
// is not stored, as a failed one is not: TopGun's client keeps its ops in
// its op log and sends them again. Until then a leaf lacks its OR_REMOVE,
// and a cut-off would make the client prune the tombstone of the entry it
// removed and take the entry back from that leaf. Neither the first
// sync's cut-off nor the feed's may reach the connection. The checks are
// by order: a GC_PRUNE sent would come before the answer expected.
func TestSync_gcPruneNotAfterARefusedWrite(t *testing.T) {
	t.Parallel()
	const maxMsg = 4096
	for _, tc := range []struct {
		name  string
		opts  Options
		frame func(t *testing.T, remove wire.ClientOp) []byte
	}{
		{"frameTooLarge", Options{MaxMessageBytes: maxMsg}, func(t *testing.T, remove wire.ClientOp) []byte {
			b := mustEncode(t, &wire.OpBatch{Ops: []wire.ClientOp{
				remove, putOp("3", "other", "big", strings.Repeat("x", 2*maxMsg), cts("c"))}})
			if len(b) <= maxMsg || len(b) > 8*maxMsg {
				t.Fatalf("frame of %d bytes: want one over %d, read and refused", len(b), maxMsg)
			}
			return b
		}},
		{"decodedTooLarge", Options{MaxMessageBytes: maxMsg}, func(t *testing.T, remove wire.ClientOp) []byte {
			b := mustEncode(t, &wire.OpBatch{Ops: []wire.ClientOp{
				remove, putOp("3", "other", "nils", make([]any, maxMsg/2), cts("c"))}})
			if len(b) > maxMsg {
				t.Fatalf("frame of %d bytes: want one under %d", len(b), maxMsg)
			}
			return b
		}},
		{"overMaxBatchOps", Options{MaxBatchOps: 1}, func(t *testing.T, remove wire.ClientOp) []byte {
			remove.ID = "b"
			return mustEncode(t, &wire.OpBatch{Ops: []wire.ClientOp{putOp("a", "other", "k", "x", cts("c")), remove}})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, w, added, _ := collectedAfterORAdd(t, envConfig{opts: tc.opts})
			c := e.dial(t)
			c.ping()
			c.sendRaw(tc.frame(t, orRemoveOp("2", "m", "k", added.String())))
			if m := expect[*wire.ErrorMessage](c); m.Code != 413 {
				t.Fatalf("got ERROR %+v, want 413", m)
			}
			c.send(&wire.ORMapSyncInit{MapName: "m"})
			expect[*wire.ORMapSyncRespRoot](c) // no first sync's GC_PRUNE before it
			later := record.Timestamp{Millis: added.Millis + 90_000}
			e.srv.dispatch(&store.Commit{PruneBefore: &later})
			expect[*wire.GCPrune](w)
			c.send(&wire.Ping{Timestamp: 1})
			expect[*wire.Pong](c) // no feed GC_PRUNE before it
		})
	}
}

// Once the ops a failed, refused or partly acknowledged write left
// unstored are sent again and settled, the connection has nothing pending
// and gets cut-offs again: the one held back (the greatest), after the
// OP_ACK of the write that stored the last of them. Before, it got none
// until it reconnected. A write storage refuses (OP_REJECTED) is settled:
// it never held cut-offs back.
func TestSync_gcPruneAfterUnstoredOpsResent(t *testing.T) {
	t.Parallel()
	put := putOp("a", "other", "k", "x", cts("c")) // sent again as it was
	for _, tc := range []struct {
		name string
		cfg  envConfig
		// write sends the remove (m/k, tagged added) in a write that
		// leaves it unstored, and reads the answer; resend sends what
		// the client sends again, one slice per OP_BATCH.
		write  func(t *testing.T, e *env, c *client, remove wire.ClientOp)
		resend func(remove wire.ClientOp) [][]wire.ClientOp
	}{
		{"failed", envConfig{}, func(t *testing.T, e *env, c *client, remove wire.ClientOp) {
			e.be.setFail(errInjected)
			c.send(&wire.OpBatch{Ops: []wire.ClientOp{remove}})
			if m := expect[*wire.ErrorMessage](c); m.Code != 500 {
				t.Fatalf("got ERROR %+v, want 500", m)
			}
			e.be.setFail(nil)
		}, func(remove wire.ClientOp) [][]wire.ClientOp {
			return [][]wire.ClientOp{{remove, putOp("4", "other", "a", "x", cts("c"))}}
		}},
		{"refusedWhole", envConfig{opts: Options{MaxBatchOps: 1}}, func(t *testing.T, e *env, c *client, remove wire.ClientOp) {
			c.send(&wire.OpBatch{Ops: []wire.ClientOp{put, remove}})
			if m := expect[*wire.ErrorMessage](c); m.Code != 413 {
				t.Fatalf("got ERROR %+v, want 413", m)
			}
		}, func(remove wire.ClientOp) [][]wire.ClientOp {
			return [][]wire.ClientOp{{put}, {remove}}
		}},
		{"partialAck", envConfig{opts: Options{MaxBatchOps: 2}}, func(t *testing.T, e *env, c *client, remove wire.ClientOp) {
			ts := cts("c")
			c.send(&wire.OpBatch{Ops: []wire.ClientOp{putOp("1", "other", "a", "x", ts), putOp("2", "other", "b", "x", ts), remove}})
			if a := expect[*wire.OpAck](c); a.LastID != "2" {
				t.Fatalf("OP_ACK %+v, want a partial ack up to 2", a)
			}
		}, func(remove wire.ClientOp) [][]wire.ClientOp {
			return [][]wire.ClientOp{{remove}}
		}},
		{"rejectedByStorage", envConfig{backend: &faultbackend.MapRefusing{Backend: null.Open(), Refused: "bad"}}, func(t *testing.T, e *env, c *client, remove wire.ClientOp) {
			c.send(&wire.OpBatch{Ops: []wire.ClientOp{putOp("1", "bad", "k", "x", cts("c"))}})
			expect[*wire.OpRejected](c)
			expect[*wire.OpAck](c)
			c.write(remove)
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, w, added, _ := collectedAfterORAdd(t, tc.cfg)
			c := e.dial(t)
			c.ping()
			remove := orRemoveOp("3", "m", "k", added.String())
			tc.write(t, e, c, remove)
			later := record.Timestamp{Millis: added.Millis + 90_000}
			if tc.resend == nil {
				e.srv.dispatch(&store.Commit{PruneBefore: &later})
				expect[*wire.GCPrune](w)
				if p := expect[*wire.GCPrune](c); p.OlderThan != tsToWire(later) {
					t.Fatalf("GC_PRUNE %+v, want %v", p, later)
				}
				return
			}
			c.send(&wire.ORMapSyncInit{MapName: "m"})
			expect[*wire.ORMapSyncRespRoot](c) // the first sync's cut-off is held
			e.srv.dispatch(&store.Commit{PruneBefore: &later})
			expect[*wire.GCPrune](w)
			c.ping() // and the feed's
			batches := tc.resend(remove)
			for i, ops := range batches {
				if a := c.write(ops...); a.LastID != ops[len(ops)-1].ID {
					t.Fatalf("OP_ACK %+v, want %q", a, ops[len(ops)-1].ID)
				}
				if i < len(batches)-1 {
					c.ping() // the remove is not stored yet
				}
			}
			if p := expect[*wire.GCPrune](c); p.OlderThan != tsToWire(later) {
				t.Fatalf("GC_PRUNE %+v, want the greatest cut-off %v", p, later)
			}
			c.ping() // once
		})
	}
}
