package protocol

import (
	"context"
	"sort"
	"time"

	"github.com/topgun-go/topgun/server/merkle"
	"github.com/topgun-go/topgun/server/record"
	"github.com/topgun-go/topgun/server/store"
	"github.com/topgun-go/topgun/server/wire"
)

// Merkle sync. The store keeps, per map and CRDT kind, a trie hashed
// exactly as TopGun's TypeScript client hashes its own, so a client in sync
// learns it from SYNC_RESP_ROOT alone; otherwise it walks down the buckets
// that differ to the leaves (3-digit paths) and merges their records.
// Leaves carry tombstones (LWW records with a nil value; OR tombstone tags)
// and ttlMs, so clients learn of deletes and hide expired records.

const syncTimeout = 30 * time.Second

func (c *conn) reservedMapError(typ, mapName string) bool {
	if !reservedMap(mapName) {
		return false
	}
	c.reply(&wire.ErrorMessage{Code: 403, Message: "protocol: " + typ + " refused: map " + quoteName(mapName) + " is reserved for the server"})
	return true
}

func quoteName(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return "\"" + s + "\""
}

// sendPruneOnce sends, before the answer to the connection's first
// SYNC_INIT or ORMAP_SYNC_INIT, GC_PRUNE with the greatest tombstone
// cut-off the store has published (if any). The feed's GC_PRUNE reaches
// only the clients connected when tombstones are collected; one offline
// then (or connected to the server before a restart) keeps them, and its
// root would never equal the server's again. Sent here, it is handled
// (TopGun's client prunes every map at once) before the client compares
// any root; sent at connect, it would reach a client still in its
// handshake, which takes any message then for the answer of a server
// without auth.
//
// Sending a cut-off again is safe: pruning is idempotent (a client holding
// no tombstone older than it drops nothing), and only tombstones older than
// a cut-off the server published are dropped, which it has collected too;
// a kept one stamped before it (see store.Store.PruneBefore) comes back in
// the leaf of the same sync. Later cut-offs reach the connection through
// the feed, as it is authenticated by now.
//
// It waits (up to pruneWritesWait) for the writes the connection sent
// before: TopGun's client sends its offline writes, then its SYNC_INITs,
// and prunes the OR-Map tombstones whose tag (the entry's add time) is
// older than the cut-off, so an entry added long ago and removed offline
// loses its tombstone at once. A leaf served before that OR_REMOVE is
// committed still holds the entry, which the client would then take back
// until its next connection (and the writer gets no event for its own
// remove); so would its own LWW delete made offline longer than the TTL
// ago. While writes are still pending after the wait, the cut-off is left
// for a later sync.
func (c *conn) sendPruneOnce() {
	if c.pruneSent {
		return
	}
	ts, ok := c.s.store.PruneBefore()
	if !ok {
		c.pruneSent = true
		return
	}
	if !c.writesSettled(pruneWritesWait) {
		return
	}
	c.pruneSent = true
	c.reply(&wire.GCPrune{OlderThan: tsToWire(ts)})
}

// pruneWritesWait bounds how long the reader waits, before the cut-off at
// a connection's first sync, for the connection's earlier writes.
const pruneWritesWait = time.Second

// writesSettled waits, up to d, until none of the connection's writes is
// queued or being committed, and reports whether that came. It runs on the
// reader, which alone queues writes: none is added meanwhile.
func (c *conn) writesSettled(d time.Duration) bool {
	var timeout <-chan time.Time
	for {
		c.mu.Lock()
		n := c.pending
		c.mu.Unlock()
		if n == 0 {
			return true
		}
		if timeout == nil {
			tm := time.NewTimer(d)
			defer tm.Stop()
			timeout = tm.C
		}
		select {
		case <-c.writesFreed:
		case <-timeout:
			return false
		case <-c.ctx.Done():
			return false
		}
	}
}

func (c *conn) handleSyncInit(m *wire.SyncInit) {
	if c.reservedMapError(m.Type(), m.MapName) {
		return
	}
	c.sendPruneOnce()
	c.reply(&wire.SyncRespRoot{
		MapName:   m.MapName,
		RootHash:  c.s.store.Root(m.MapName, store.KindLWW),
		Timestamp: tsToWire(c.s.store.Clock().Now()),
	})
}

func (c *conn) handleORSyncInit(m *wire.ORMapSyncInit) {
	if c.reservedMapError(m.Type(), m.MapName) {
		return
	}
	c.sendPruneOnce()
	c.reply(&wire.ORMapSyncRespRoot{
		MapName:   m.MapName,
		RootHash:  c.s.store.Root(m.MapName, store.KindOR),
		Timestamp: tsToWire(c.s.store.Clock().Now()),
	})
}

// handleBucket answers MERKLE_REQ_BUCKET (or its OR-Map twin): the hashes
// of the children of an inner path (0 to 2 hex digits), or the records of a
// leaf (3 digits). An empty inner node answers an empty bucket map and an
// empty leaf an empty record list (TopGun sends nothing then).
func (c *conn) handleBucket(mapName, path string, or bool) {
	typ := wire.TypeMerkleReqBucket
	kind := store.KindLWW
	if or {
		typ, kind = wire.TypeORMapMerkleReqBucket, store.KindOR
	}
	if c.reservedMapError(typ, mapName) {
		return
	}
	if len(path) < merkle.Depth {
		buckets, ok := c.s.store.Buckets(mapName, kind, path)
		if !ok {
			c.badPath(typ, path)
			return
		}
		if or {
			c.reply(&wire.ORMapSyncRespBuckets{MapName: mapName, Path: path, Buckets: buckets})
		} else {
			c.reply(&wire.SyncRespBuckets{MapName: mapName, Path: path, Buckets: buckets})
		}
		return
	}
	ctx, cancel := context.WithTimeout(c.ctx, syncTimeout)
	defer cancel()
	entries, ok, err := c.s.store.Leaf(ctx, mapName, kind, path)
	switch {
	case err != nil:
		c.log.Warn("cannot read a Merkle leaf", "map", mapName, "path", path, "error", err)
		c.reply(&wire.ErrorMessage{Code: 500, Message: "protocol: " + typ + " failed: cannot read the records of the leaf; retry later"})
		return
	case !ok:
		c.badPath(typ, path)
		return
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Key < entries[j].Key })
	if or {
		out := make([]wire.ORMapEntry, 0, len(entries))
		for i := range entries {
			e := &entries[i]
			if e.Record.Kind == record.KindLWW {
				continue // the key changed kind since the index listed it
			}
			out = append(out, orStateToWire(e.Key, &e.Record.ORMap))
		}
		c.reply(wire.OmitAbsentORTTL(&wire.ORMapSyncRespLeaf{MapName: mapName, Path: path, Entries: out}))
		return
	}
	out := make([]wire.LeafRecord, 0, len(entries))
	for i := range entries {
		e := &entries[i]
		if e.Record.Kind != record.KindLWW {
			continue
		}
		out = append(out, wire.LeafRecord{Key: e.Key, Record: lwwToWire(&e.Record, e.TTLMs())})
	}
	c.reply(&wire.SyncRespLeaf{MapName: mapName, Path: path, Records: out})
}

func (c *conn) badPath(typ, path string) {
	c.reply(&wire.ErrorMessage{Code: 400, Message: "protocol: " + typ + " ignored: path " + quoteName(path) +
		" is not a trie path (0 to 3 lowercase hex digits)"})
}

// handleDiffRequest answers ORMAP_DIFF_REQUEST with the OR state of each
// requested key (empty lists for a key that is absent or not an OR key).
func (c *conn) handleDiffRequest(m *wire.ORMapDiffRequest) {
	if c.reservedMapError(m.Type(), m.MapName) {
		return
	}
	ctx, cancel := context.WithTimeout(c.ctx, syncTimeout)
	defer cancel()
	states, err := c.s.orStates(ctx, m.MapName, m.Keys)
	if err != nil {
		c.log.Warn("cannot read OR-Map keys", "map", m.MapName, "error", err)
		c.reply(&wire.ErrorMessage{Code: 500, Message: "protocol: ORMAP_DIFF_REQUEST failed: cannot read the keys; retry later"})
		return
	}
	// One entry per distinct key: a key named many times would otherwise
	// copy its whole state into the answer once per mention (a 2 MiB
	// frame names a key a million times). TopGun's client never repeats one.
	out := make([]wire.ORMapEntry, 0, min(len(m.Keys), 1024))
	seen := make(map[string]struct{}, min(len(m.Keys), 1024))
	for _, k := range m.Keys {
		if _, dup := seen[k]; dup {
			continue
		}
		seen[k] = struct{}{}
		if st, ok := states[k]; ok {
			out = append(out, orStateToWire(k, st))
		} else {
			out = append(out, wire.ORMapEntry{Key: k, Records: []wire.ORMapRecord{}, Tombstones: []string{}})
		}
	}
	c.reply(wire.OmitAbsentORTTL(&wire.ORMapDiffResponse{MapName: m.MapName, Entries: out}))
}

// orStates reads the full OR state (expired entries and tombstones
// included) of some keys, through the leaves that hold them: Store.Get
// hides expired entries, which a syncing client still needs to hash.
func (s *Server) orStates(ctx context.Context, mapName string, keys []string) (map[string]*record.ORMap, error) {
	want := map[string]map[string]bool{} // leaf path -> keys
	for _, k := range keys {
		p := merkle.Path(k)[:merkle.Depth]
		if want[p] == nil {
			want[p] = map[string]bool{}
		}
		want[p][k] = true
	}
	out := map[string]*record.ORMap{}
	for p, ks := range want {
		entries, _, err := s.store.Leaf(ctx, mapName, store.KindOR, p)
		if err != nil {
			return nil, err
		}
		for i := range entries {
			e := &entries[i]
			if ks[e.Key] && e.Record.Kind != record.KindLWW {
				out[e.Key] = &e.Record.ORMap
			}
		}
	}
	return out, nil
}
