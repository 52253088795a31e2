package protocol

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/plugins/null"
	"github.com/topgun-go/topgun/server/record"
	"github.com/topgun-go/topgun/server/wire"
)

// tsCompare is HLC.compare of TopGun's TypeScript client: millis, counter,
// then nodeId by String.prototype.localeCompare. ICU's collation ignores
// control characters there: in node, "n".localeCompare("n\u0000") is 0.
// The model strips NULs, the one control character the server puts in a
// node id.
func tsCompare(a, b wire.Timestamp) int {
	switch {
	case a.Millis != b.Millis:
		if a.Millis < b.Millis {
			return -1
		}
		return 1
	case a.Counter != b.Counter:
		if a.Counter < b.Counter {
			return -1
		}
		return 1
	}
	return strings.Compare(strings.ReplaceAll(a.NodeID, "\x00", ""), strings.ReplaceAll(b.NodeID, "\x00", ""))
}

// A TopGun client that holds a record with a TTL must converge with the
// server once the server replaces the expired record by its tombstone: the
// client merges the leaf by LWWMap.merge (accepted only when strictly newer
// under HLC.compare), after which its root equals the server's. The
// tombstone used to be stamped with the record's millis and counter and a
// NUL appended to the node id, which the client's localeCompare ignores:
// it refused the tombstone, kept the record, and every later sync found the
// roots different and walked down to the leaf again, for good.
func TestSync_expiredRecordConvergesInTopGunClient(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{fakeWall: true})
	w := e.dial(t)
	ttl := uint64(1000)
	ts := wire.Timestamp{Millis: uint64(e.wall.Load()), Counter: 3, NodeID: "node-a"}
	put := putOp("1", "m", "k", "v", ts)
	put.Record.TTLMs = &ttl
	w.write(put)

	// The client holds the record, as written.
	held := map[string]wire.Timestamp{"k": ts}
	local := newRefTrie()
	local.set("k", refLWWItem("k", ts))
	if l, _ := drill(t, e.dial(t), "m", local); l != nil {
		t.Fatalf("client holding the record is out of sync: %v", l)
	}

	e.wall.Add(2000)
	if n, err := e.st.ReapExpired(t.Context()); err != nil || n != 1 {
		t.Fatalf("reap: %d %v", n, err)
	}
	c := e.dial(t)
	_, recs := drill(t, c, "m", local)
	for _, r := range recs {
		if cur, ok := held[r.Key]; !ok || tsCompare(r.Record.Timestamp, cur) > 0 {
			held[r.Key] = r.Record.Timestamp
			local.set(r.Key, refLWWItem(r.Key, r.Record.Timestamp))
		}
	}
	if tsCompare(held["k"], ts) <= 0 {
		t.Fatalf("the client refused the expiry's tombstone %+v: it is not newer than the record %+v under HLC.compare", recs, ts)
	}
	if l, _ := drill(t, c, "m", local); l != nil {
		t.Fatalf("still out of sync after merging the leaf: %v", l)
	}
}

// A key stored in TopGun's legacy orTombstones shape (a database written by
// TopGun's server) is an OR key whose entries were all removed: a client
// still holding one of them must reach its leaf and receive the tombstones,
// as for a key with tombstones only in the current shape. It used to have
// no leaf: the client found its bucket missing, pushed the entry back (which
// the server drops as tombstoned) and kept showing it, with its root never
// equal to the server's.
func TestSync_legacyORTombstonesReachStaleClients(t *testing.T) {
	t.Parallel()
	be := null.Open()
	rv := record.RecordValue{Kind: record.KindORTombstones, ORMap: record.ORMap{Tombstones: []string{"1:0:old"}}}
	b, err := record.Encode(nil, &rv)
	if err != nil {
		t.Fatal(err)
	}
	batch := &abi.Batch{Now: time.Now().UnixMilli()}
	batch.Put("tags", "post-1", false, b, 0)
	if err := be.Apply(t.Context(), batch); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envConfig{backend: be})
	c := e.dial(t)
	path := refPath("post-1")
	for i := 0; i < 3; i++ {
		c.send(&wire.ORMapMerkleReqBucket{MapName: "tags", Path: path[:i]})
		b := expect[*wire.ORMapSyncRespBuckets](c)
		if _, ok := b.Buckets[path[i:i+1]]; !ok {
			t.Fatalf("bucket %q: %v, want %q listed (hash 0)", path[:i], b.Buckets, path[i:i+1])
		}
	}
	c.send(&wire.ORMapMerkleReqBucket{MapName: "tags", Path: path[:3]})
	leaf := expect[*wire.ORMapSyncRespLeaf](c)
	if len(leaf.Entries) != 1 || leaf.Entries[0].Key != "post-1" || !slices.Equal(leaf.Entries[0].Tombstones, []string{"1:0:old"}) {
		t.Fatalf("leaf %+v, want post-1 with its tombstone", leaf.Entries)
	}
	c.send(&wire.ORMapDiffRequest{MapName: "tags", Keys: []string{"post-1"}})
	if d := expect[*wire.ORMapDiffResponse](c); len(d.Entries) != 1 || !slices.Equal(d.Entries[0].Tombstones, []string{"1:0:old"}) {
		t.Fatalf("diff %+v, want the tombstone", d.Entries)
	}
}
