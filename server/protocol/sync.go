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

// quoteName quotes a name a client sent for an error text (see
// wire.CutName).
func quoteName(s string) string { return "\"" + wire.CutName(s) + "\"" }

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
// While writes the client sent before are pending, the cut-off is held
// back until they are committed (offerPrune), and the root goes first.
func (c *conn) sendPruneOnce() {
	if c.pruneSent {
		return
	}
	c.pruneSent = true
	ts, ok := c.s.store.PruneBefore()
	if !ok {
		return
	}
	c.mu.Lock()
	if c.pruneHeldLocked() {
		c.holdPruneLocked(ts)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	// Only the reader adds writes: none is pending until this is queued.
	c.reply(&wire.GCPrune{OlderThan: tsToWire(ts)})
}

// offerPrune sends GC_PRUNE with cut-off ts (encoded in b) to the
// connection, or holds it back while the connection's writes are queued or
// being committed, or the reader answers with state it read meanwhile,
// and sends it once neither is so (flushPruneLocked). It never blocks.
//
// TopGun's client prunes on GC_PRUNE the OR-Map tombstones whose tag (the
// entry's add time) is older than the cut-off, so the tombstone of an
// entry added long ago and just removed goes at once; so does its own LWW
// delete made offline longer than the TTL ago. A leaf (or diff) read
// before that remove was committed still holds the entry, and the client,
// no longer holding the tombstone, takes it back (the writer gets no event
// for its own remove), until its next connection. Held back, the cut-off
// comes after the remove's OP_ACK and after every answer read before it.
// Only the greatest cut-off is kept: pruning by it prunes by the others.
func (c *conn) offerPrune(ts record.Timestamp, b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pruneHeldLocked() {
		c.holdPruneLocked(ts)
		return
	}
	c.send(b)
}

// pruneHeldLocked reports whether a cut-off must wait (see offerPrune):
// writes of the connection are pending, or the reader answers with state
// read meanwhile, or ops of a failed write are not stored yet. A failed
// write (ERROR 500) is not stored, nor is one refused whole (413), nor are
// the ops past a partial OP_ACK (MaxBatchOps); until the client sends them
// again (TopGun's client with its next write) and they are settled
// (noteUnstored), a leaf lacks such a remove as it lacks one still
// committing. Ops that cannot be recognised again hold cut-offs back until
// the client's next connection, whose first sync gets them (PruneBefore).
//
// It also waits for the handshake's answer (noteGreeted): the feed offers
// cut-offs to a client without auth from its connection on.
func (c *conn) pruneHeldLocked() bool {
	return !c.greeted || c.pending > 0 || c.staleRead || c.unstoredN.Load() > 0 || c.writeFailed.Load()
}

func (c *conn) holdPruneLocked(ts record.Timestamp) {
	if !c.havePrune || c.prune.Compare(ts) < 0 {
		c.prune, c.havePrune = ts, true
	}
}

// flushPruneLocked sends the held-back cut-off once nothing holds it back.
// Called under c.mu wherever pending or staleRead may drop, so that none
// is held while neither does; sending under it keeps the held one and a
// new offer in the order they were decided.
func (c *conn) flushPruneLocked() {
	if !c.havePrune || c.pruneHeldLocked() {
		return
	}
	c.havePrune = false
	c.sendMsg(&wire.GCPrune{OlderThan: tsToWire(c.prune)})
}

// beginStateRead is called by the reader before it reads state it answers
// with (a leaf, a diff); endStateRead once the answer is queued. State read
// while the connection's writes are pending may miss them, and no cut-off
// may overtake it (offerPrune).
func (c *conn) beginStateRead() {
	c.mu.Lock()
	c.staleRead = c.pending > 0
	c.mu.Unlock()
}

func (c *conn) endStateRead() {
	c.mu.Lock()
	c.staleRead = false
	c.flushPruneLocked()
	c.mu.Unlock()
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
	c.beginStateRead()
	defer c.endStateRead()
	ctx, cancel := context.WithTimeout(c.ctx, syncTimeout)
	defer cancel()
	entries, ok, err := c.s.store.Leaf(ctx, mapName, kind, path)
	switch {
	case err != nil:
		c.s.storageWarns.Warn(c.log, "cannot read a Merkle leaf", "map", mapName, "path", path, "error", err)
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
	c.beginStateRead()
	defer c.endStateRead()
	ctx, cancel := context.WithTimeout(c.ctx, syncTimeout)
	defer cancel()
	states, err := c.s.orStates(ctx, m.MapName, m.Keys)
	if err != nil {
		c.s.storageWarns.Warn(c.log, "cannot read OR-Map keys", "map", m.MapName, "error", err)
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
// included) of some keys, as the leaves that hold them list it: Store.Get
// hides expired entries, which a syncing client still needs to hash. Only
// the keys named are read, not their leaves: one key per leaf would read
// the whole map.
func (s *Server) orStates(ctx context.Context, mapName string, keys []string) (map[string]*record.ORMap, error) {
	entries, err := s.store.Entries(ctx, mapName, store.KindOR, keys)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*record.ORMap, len(entries))
	for i := range entries {
		e := &entries[i]
		if e.Record.Kind != record.KindLWW {
			out[e.Key] = &e.Record.ORMap
		}
	}
	return out, nil
}
