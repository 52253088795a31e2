package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"
	"unicode/utf8"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/server/record"
)

// housekeeping runs the TTL reaper and the tombstone collector.
func (s *Store) housekeeping() {
	defer s.wg.Done()
	reap := time.NewTicker(s.opts.ReapInterval)
	defer reap.Stop()
	// The first collection comes soon after Open, not one GCInterval
	// later: a server restarted more often than that never collected, and
	// its tombstones grew without bound. Jittered, so that servers
	// restarted together do not all collect at once.
	gc := time.NewTimer(gcStartDelay(s.opts.GCStartDelay, s.opts.GCInterval))
	defer gc.Stop()
	ctx, cancel := s.closingContext()
	defer cancel()
	reapLog := failureLog{what: "expiry pass"}
	gcLog := failureLog{what: "tombstone collection"}
	for {
		select {
		case <-s.closing:
			return
		case <-reap.C:
			_, err := s.ReapExpired(ctx)
			if ctx.Err() == nil && !errors.Is(err, ErrClosed) {
				reapLog.note(s, err)
			}
		case <-gc.C:
			_, err := s.CollectTombstones(ctx)
			if ctx.Err() == nil && !errors.Is(err, ErrClosed) {
				gcLog.note(s, err)
			}
			gc.Reset(s.opts.GCInterval)
		}
	}
}

// gcStartDelay returns a random delay in [d, 2d), at most interval.
func gcStartDelay(d, interval time.Duration) time.Duration {
	return min(d+rand.N(d), interval)
}

// failureLogEvery is how often a pass that keeps failing is reported.
const failureLogEvery = time.Minute

// failureLog reports a failing housekeeping pass at its first failure,
// then at most every failureLogEvery with the count, and once more when it
// succeeds again: the reaper runs every second, and warned at each pass
// for as long as the backend was down.
type failureLog struct {
	what     string
	failures int   // since the last success
	reported int   // of them, when last reported
	lastWarn int64 // wall clock ms of the last warning
}

func (f *failureLog) note(s *Store, err error) {
	if err == nil {
		if f.failures > 0 {
			s.log.Info(f.what+" recovered", "failures", f.failures)
		}
		*f = failureLog{what: f.what}
		return
	}
	f.failures++
	now := s.now()
	if f.failures > 1 && now >= f.lastWarn && now-f.lastWarn < failureLogEvery.Milliseconds() {
		return
	}
	s.log.Warn(f.what+" failed", "error", err, "failures", f.failures, "since_last_warning", f.failures-f.reported)
	f.reported, f.lastWarn = f.failures, now
}

// reapBatch bounds the records one expiry commit handles.
const reapBatch = 1000

// ReapExpired replaces every record whose TTL has passed: an LWW record by
// a tombstone stamped at its expiry (so clients holding it converge on the
// delete, and a write stamped after the expiry still wins),
// an OR-Map key by the same key without its expired entries, whose tags
// become tombstones. It returns how many records it changed. The loop runs
// it every ReapInterval; reads hide expired records before that.
//
// Records are found with the backend's ListExpired, which lists backup
// records too (a table TopGun's server wrote may hold them) and takes no
// cursor. When a full listing holds backup records only, the primary
// records expired behind them are found in the index instead (see
// expiredInIndex): the store never changes backup records, so they head
// every listing for good, and the pass stopped there.
func (s *Store) ReapExpired(ctx context.Context) (int, error) {
	if s.closed.Load() {
		return 0, ErrClosed // the backend may be closed already
	}
	total := 0
	batch := reapBatch // the records one commit takes (see below)
	// gone: the records the last round deleted as absent. A backend
	// listing them again (a plugin whose expiry index misses deletes)
	// had every round delete them anew, and the pass never ended. One
	// listed again that is readable now was written since (by a client,
	// or by another server on shared storage) and is reaped as usual.
	gone, deleted := map[cacheKey]struct{}{}, map[cacheKey]struct{}{}
	for {
		now := s.now()
		recs, err := s.be.ListExpired(ctx, now, reapBatch)
		if err != nil {
			return total, err
		}
		primary := recs[:0]
		for _, r := range recs {
			// A key or map name that is not valid UTF-8 no client wrote
			// (a faulty plugin's): its change would reach clients, whose
			// decoders refuse it. Left alone, as backup records are.
			if !r.Backup && utf8.ValidString(r.Key) && utf8.ValidString(r.Map) {
				primary = append(primary, r)
			}
		}
		more := len(recs) >= reapBatch
		if len(primary) == 0 && more {
			primary = s.expiredInIndex(now, reapBatch)
			more = len(primary) >= reapBatch
		}
		if len(primary) == 0 {
			return total, nil
		}
		if len(primary) > batch {
			primary, more = primary[:batch], true
		}
		n, used := 0, 0
		var relisted *cacheKey
		// Merged again after a conflict (another server reaping the same
		// records, or a client write in the same group commit): failed,
		// the pass waited a ReapInterval, and under steady conflicting
		// writes it never got through.
		err = s.submitWork(ctx, len(primary), func(t *txn) {
			clear(deleted)
			n, used, relisted = t.expire(primary, now, gone, deleted)
		})
		if err != nil && len(primary) > 1 && abi.CodeOf(err) == abi.CodeResourceExhausted && ctx.Err() == nil {
			// Expired OR keys keep their other entries: those at the head
			// of every listing can be, together, over a wasm plugin's
			// request limit, which failed every pass for good. Fewer per
			// commit; one always fits.
			batch = len(primary) / 2
			continue
		}
		if err != nil {
			return total, err
		}
		total += n
		if relisted != nil {
			return total, fmt.Errorf("store: the backend lists key %q of map %q as expired again after the expiry pass deleted it", relisted.key, relisted.mapName)
		}
		gone, deleted = deleted, gone
		if used < len(primary) {
			continue // stopped at the byte bound (see expire)
		}
		if n == 0 || !more {
			// Nothing more to do, or nothing changed (records re-written
			// since the listing): stop rather than spin on them.
			return total, nil
		}
	}
}

// expiredInIndex returns up to limit primary records (map and key only)
// that the index holds as expired at now. It walks the keys that have an
// expiry (mapState.exp), not every key; it is used only when the backend's
// listing is blocked by backup records. Records the index does not hold
// (undecodable ones) are not found this way.
func (s *Store) expiredInIndex(now int64, limit int) []abi.Record {
	var out []abi.Record
	s.mu.RLock()
	defer s.mu.RUnlock()
	for name, ms := range s.maps {
		for k, exp := range ms.exp {
			if len(out) >= limit {
				return out
			}
			if exp <= now {
				out = append(out, abi.Record{Map: name, Key: k, ExpirationTime: exp})
			}
		}
	}
	return out
}

// expire replaces the expired records among recs. It returns how many it
// changed and how many of recs it went through: it stops once it has
// encoded maxCommitBytes (the bound of a group commit), as OR keys keep
// their unexpired entries and a thousand of them could take gigabytes.
// It adds the records it deletes as absent to absent, and leaves alone
// those of gone (deleted as absent by the previous round) that still read
// absent, returning the first of them as relisted.
func (t *txn) expire(recs []abi.Record, now int64, gone, absent map[cacheKey]struct{}) (n, used int, relisted *cacheKey) {
	start := len(t.buf)
	fetched := 0 // recs read ahead on shared storage
	for _, r := range recs {
		if len(t.buf)-start >= t.s.maxCommitBytes {
			return n, used, relisted
		}
		if t.s.shared && used == fetched {
			// Read ahead in doubling chunks, not the whole listing: the
			// records past the byte bound were read, and held, all the
			// same (large OR keys, gigabytes), and again by each commit.
			k := min(max(fetched, 1), len(recs)-fetched)
			keys := make([]cacheKey, k)
			for i := range keys {
				keys[i] = cacheKey{recs[fetched+i].Map, recs[fetched+i].Key}
			}
			t.prefetch(keys)
			fetched += k
		}
		used++
		cur, err := t.current(r.Map, r.Key, true)
		if err != nil {
			t.err = err
			return n, used, relisted
		}
		ck := cacheKey{r.Map, r.Key}
		if _, again := gone[ck]; again && !cur.present {
			// Deleted already, and nothing was written since: the backend
			// lists what it does not hold (see ReapExpired).
			if relisted == nil {
				relisted = &ck
			}
			continue
		}
		if !cur.present {
			// Listed as expired but nothing readable is there: gone since
			// the listing, or a record the server cannot decode. Deleting
			// it loses nothing readable, and keeps such rows from heading
			// every listing and stopping the pass.
			t.write(&state{mapName: r.Map, key: r.Key})
			absent[ck] = struct{}{}
			n++
			continue
		}
		if cur.exp == 0 || cur.exp > now {
			continue // re-written since the listing
		}
		st := &state{mapName: r.Map, key: r.Key, present: true}
		var dropped []string
		switch cur.rv.Kind {
		case record.KindLWW:
			// The expiry deletes this record and nothing written after
			// it: the tombstone is stamped just above the record, so any
			// later write (stamped before the expiry or after it) still
			// wins, however late this pass runs or that write arrives.
			st.rv = record.NewLWW(record.Value{}, justAfter(cur.rv.LWW.Timestamp))
		default:
			var keep []record.ORMapEntry
			tombs := append([]string(nil), cur.rv.ORMap.Tombstones...)
			for _, e := range cur.rv.ORMap.Records {
				if orEntryExpired(&e, now) {
					tombs = append(tombs, e.Tag)
					dropped = append(dropped, e.Tag)
				} else {
					keep = append(keep, e)
				}
			}
			st.rv = record.NewORMap(keep, tombs)
			st.exp = orExpiry(&st.rv.ORMap)
		}
		// Encoded now, on the committer, not by the commit: a txn merged
		// on top of this one reads the encoding as what its checked
		// commit expects. (Too large cannot happen, as the record only
		// shrinks; the commit would then fail as before.)
		_ = t.checkSize(st)
		t.write(st)
		t.changes = append(t.changes, Change{Map: r.Map, Key: r.Key, Kind: ChangeExpired, Record: st.rv, ExpirationTime: st.exp, Tags: dropped})
		n++
	}
	return n, used, relisted
}

// justAfter returns a timestamp greater than ts and below every timestamp
// stamped after ts by an HLC that saw it: the next counter (or the next
// millisecond when the counter is at its maximum) with an empty node id.
// Only writes concurrent with the record (same millis and counter, a
// greater node id) sort between the two. It must not differ from ts in the
// node id alone: TopGun's TypeScript client orders node ids with
// localeCompare, which ignores control characters (a NUL suffix compared
// equal there, and the client refused the tombstone). Every server reaping
// the record stamps the same tombstone.
func justAfter(ts record.Timestamp) record.Timestamp {
	if ts.Counter == math.MaxUint32 {
		return record.Timestamp{Millis: ts.Millis + 1}
	}
	return record.Timestamp{Millis: ts.Millis, Counter: ts.Counter + 1}
}

// submitWork submits the store's own work (tombstone collection, re-reads
// of other servers' changes) and waits for its commit. On shared storage
// a conflict is most often a client write's in the same group commit, not
// the work's: the work is merged again at once, as the write is, up to
// maxConflictTries times, rather than failing (a collection pass then
// waited a GCInterval with its cut-off unpublished, a re-read the
// refresher's second). fn must start afresh each time it runs.
func (s *Store) submitWork(ctx context.Context, muts int, fn func(t *txn)) error {
	for try := 1; ; try++ {
		err := s.submit(ctx, &request{done: make(chan error, 1), fnMuts: muts, fn: fn})
		if err != nil && try < maxConflictTries && abi.CodeOf(err) == abi.CodeConflict && ctx.Err() == nil {
			continue
		}
		return err
	}
}

// publish publishes a commit, first noting its tombstone cut-off for
// PruneBefore.
func (s *Store) publish(c *Commit) {
	if c.PruneBefore != nil {
		ts := *c.PruneBefore
		for {
			cur := s.pruned.Load()
			if cur != nil && cur.Compare(ts) >= 0 {
				break
			}
			if s.pruned.CompareAndSwap(cur, &ts) {
				break
			}
		}
	}
	s.feed.publish(c)
}

// PruneBefore returns the greatest tombstone cut-off this Store has
// published (Commit.PruneBefore) since Open, and false before its first
// collection pass. The protocol sends it (GC_PRUNE) to clients that were
// not connected when it was published: a client that keeps tombstones the
// server collected never has the server's Merkle root again.
//
// The greatest, not the latest: a pass can publish a lower cut-off than
// the one before (a delete stamped long ago that arrived since is kept for
// a TTL), and a client connected throughout has pruned by both, which the
// greater one alone reproduces. A client told to prune such a kept
// tombstone gets it back in the leaf of the same sync.
//
// It is kept in memory only: that costs speed, not correctness. The first
// pass after Open (1 to 2 GCStartDelay later) publishes a cut-off even
// when it collects nothing, which reaches every client connected then,
// and is kept for those that connect later; until then a client holding
// tombstones collected before the restart walks down to their leaves.
func (s *Store) PruneBefore() (record.Timestamp, bool) {
	if p := s.pruned.Load(); p != nil {
		return *p, true
	}
	return record.Timestamp{}, false
}

// gcReadChunk bounds the keys of one read of tombstones' commit times.
const gcReadChunk = 1000

// gcWalkChunk is about how many index keys the collection walks at one
// hold of the read lock (it lets go between leaves).
const gcWalkChunk = 4096

// CollectTombstones removes LWW tombstones older than the tombstone TTL
// from storage and the Merkle index, and publishes the cut-off so clients
// prune the same ones (GC_PRUNE). It returns how many it removed.
func (s *Store) CollectTombstones(ctx context.Context) (int, error) {
	if s.closed.Load() {
		return 0, ErrClosed // the backend may be closed already
	}
	if s.opts.TombstoneTTL < 0 {
		return 0, nil
	}
	now, ttl := s.now(), s.opts.TombstoneTTL.Milliseconds()
	if ttl >= now {
		return 0, nil // nothing is that old (and now-ttl would wrap)
	}
	cutoff := uint64(now - ttl)
	type victim struct {
		mapName, key string
		ts           record.Timestamp
		old          bool // still stored, and not committed within the TTL
	}
	var victims []victim
	// The index is walked with the read lock let go every gcWalkChunk keys
	// or so (between leaves): held across every key of every map, it kept
	// commits (installed under the write lock) and, behind them, every
	// read of the index waiting for the whole walk. What changes meanwhile
	// is checked again when collected.
	s.mu.RLock()
	names := make([]string, 0, len(s.maps))
	for name := range s.maps {
		names = append(names, name)
	}
	walked := 0
	yield := func() {
		if walked >= gcWalkChunk {
			s.mu.RUnlock()
			walked = 0
			s.mu.RLock()
		}
	}
	found := func(name, k string, m lwwMeta) {
		if m.tombstone() && m.millis < cutoff {
			victims = append(victims, victim{mapName: name, key: k, ts: s.lwwTimestamp(m)})
			if h := s.gcWalkHook; h != nil {
				h()
			}
		}
	}
	for _, name := range names {
		yield()
		ms := s.maps[name]
		if ms == nil {
			continue
		}
		if ms.lww.size <= gcWalkChunk {
			walked += ms.lww.size
			ms.lww.each(func(k string, m lwwMeta) bool { found(name, k, m); return true })
			continue
		}
		for id := 0; id < leafCount; id++ {
			yield()
			if ms = s.maps[name]; ms == nil {
				break
			}
			walked += ms.lww.eachInLeaf(uint16(id), func(k string, m lwwMeta) { found(name, k, m) })
		}
	}
	s.mu.RUnlock()
	// A tombstone is kept for the TTL from when it was committed too: a
	// remove made offline long ago (or the expiry of a record written long
	// ago) reaches the server late, and clients away for less than the TTL
	// must still receive it. The cut-off (which clients prune by, too)
	// stays at or below the stamp of every such tombstone, so clients keep
	// what the server keeps and the roots stay equal.
	//
	// A commit time further ahead of the wall clock than maxCommitAhead
	// says nothing of when the tombstone was committed (commit times
	// stayed at a time the wall clock showed once, before it was set
	// right): counted as recent, it would keep every tombstone, and the
	// cut-off low, until the wall clock caught up.
	//
	// The cut-off is not lowered below four TTLs back (floor): a delete
	// stamped in 1970 would otherwise stop collection in every map for a
	// TTL, and one sent again each TTL for good. Clients prune a tombstone
	// stamped before that while the server keeps it; a client that syncs
	// the map then receives it again, at the cost of a walk to its leaf.
	//
	// Recent means committed since now-ttl, not since the cut-off as
	// lowered so far: that depended on the order of the walk, and kept
	// late deletes committed long before (lowering the cut-off further).
	//
	// The commit times are read gcReadChunk keys at a time, and only
	// whether each victim is old is kept: the cut-off needs every victim's
	// commit time before any is collected, and holding every victim's
	// stored record at once (a first collection over millions of
	// tombstones) took memory in proportion to all of them.
	latest := now + maxCommitAhead
	floor := uint64(max(now-4*ttl, 0))
	since := now - ttl
	keys := make([]string, 0, min(len(victims), gcReadChunk))
	committed := make(map[string]int64, min(len(victims), gcReadChunk))
	for i := 0; i < len(victims); {
		name := victims[i].mapName
		j := i
		keys = keys[:0]
		for j < len(victims) && j-i < gcReadChunk && victims[j].mapName == name {
			keys = append(keys, victims[j].key)
			j++
		}
		recs, err := s.be.Get(ctx, name, false, keys)
		if err != nil {
			return 0, fmt.Errorf("store: get from %q: %w", name, err)
		}
		clear(committed)
		for r := range recs {
			committed[recs[r].Key] = recs[r].UpdatedAt
		}
		for ; i < j; i++ {
			v := &victims[i]
			at, ok := committed[v.key]
			if !ok {
				continue // gone from storage since the index was read
			}
			if at >= since && at <= latest {
				cutoff = min(cutoff, max(v.ts.Millis, floor))
			} else {
				v.old = true
			}
		}
	}
	old := victims[:0]
	for _, v := range victims {
		if v.old && v.ts.Millis < cutoff {
			old = append(old, v)
		}
	}
	victims = old
	before := record.Timestamp{Millis: cutoff}
	if _, known := s.PruneBefore(); len(victims) == 0 && (s.shared || !known) {
		// Another process may have collected them first: this store
		// re-reads the deletions without announcing them, so the cut-off
		// is announced anyway, for this server's clients to prune too.
		// The first pass since Open announces it too: the tombstones may
		// have been collected before a restart, and PruneBefore knows
		// nothing of that cut-off. (The server holds no tombstone older
		// than the cut-off, but ones stamped before the floor, so
		// announcing it when nothing was collected is safe.)
		return 0, s.submitWork(ctx, 0, func(t *txn) { t.prune = &before })
	}
	total := 0
	for len(victims) > 0 {
		chunk := victims[:min(len(victims), s.opts.MaxCommitOps)]
		victims = victims[len(chunk):]
		last := len(victims) == 0
		n := 0
		err := s.submitWork(ctx, len(chunk), func(t *txn) {
			n = 0 // merged again after a conflict
			if t.s.shared {
				keys := make([]cacheKey, len(chunk))
				for i, v := range chunk {
					keys[i] = cacheKey{v.mapName, v.key}
				}
				t.prefetch(keys)
			}
			for _, v := range chunk {
				cur, err := t.current(v.mapName, v.key, false)
				if err != nil {
					t.err = err
					return
				}
				if !cur.present || cur.rv.Kind != record.KindLWW || !cur.rv.LWW.Value.IsNull() || cur.rv.LWW.Timestamp != v.ts {
					continue // written again since it was checked
				}
				t.write(&state{mapName: v.mapName, key: v.key})
				n++
			}
			if last {
				t.prune = &before
			}
		})
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}
