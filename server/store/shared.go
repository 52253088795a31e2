package store

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/server/record"
)

// Shared storage (abi.CapShared): other processes commit to the same
// records. Three things keep this store right there:
//   - merges read storage, never the index or the value cache (prefetch,
//     peekIndex; the cache is off);
//   - a commit applies only over what its merges read (abi.CheckedApplier):
//     another process's commit in between is a conflict, and Apply merges
//     again;
//   - the other processes' commits are heard (abi.Watcher) and re-read
//     into the index, so that Merkle sync and live queries see them, and
//     published on the change feed, so that clients get SERVER_EVENTs.

// openShared sets up a store on shared storage, before the index is
// built: commits heard from then on are re-read after it.
func (s *Store) openShared() error {
	name := s.be.Describe().Name
	// Other processes write the same records: a cached copy may be older
	// than storage, so reads and merges go to storage.
	s.cache = newCache(-1)
	if c, ok := s.be.(abi.CheckedApplier); ok {
		s.checked = c
	} else {
		s.log.Warn("the backend is shared with other processes but cannot check what its commits overwrite; concurrent writes to one record from two servers can lose one", "backend", name)
	}
	w, ok := s.be.(abi.Watcher)
	if !ok {
		s.log.Warn("the backend is shared with other processes but cannot report their commits; clients of this server learn of them only when they touch the same records", "backend", name)
		return nil
	}
	s.watchq = newWatchQueue()
	ctx, cancel := context.WithCancel(context.Background())
	if err := w.Watch(ctx, s.watchq.add); err != nil {
		cancel()
		return fmt.Errorf("store: listen for other servers' commits: %w", err)
	}
	s.stopWatch = cancel
	return nil
}

// storedRows are records read from storage, by key.
type storedRows map[string]*abi.Record

// loadStored reads keys of a map from storage, bypassing the cache.
func (s *Store) loadStored(ctx context.Context, mapName string, keys []string) (storedRows, error) {
	recs, err := s.getRecords(ctx, mapName, keys)
	if err != nil {
		return nil, err
	}
	out := make(storedRows, len(recs))
	for i := range recs {
		out[recs[i].Key] = &recs[i]
	}
	return out, nil
}

// state returns a key's state as read: absent, or the decoded record (an
// undecodable one counts as absent for merges, as it does elsewhere, but
// its row is expected by checked commits).
func (rows storedRows) state(mapName, key string) *state {
	st := &state{mapName: mapName, key: key}
	r := rows[key]
	if r == nil {
		return st
	}
	st.row, st.raw = true, r.Value
	rv, err := record.Decode(r.Value)
	if err != nil {
		return st
	}
	rv.Normalize()
	st.present, st.rv, st.exp = true, rv, r.ExpirationTime
	return st
}

// refresh re-reads keys another process changed. Keys this txn or one in
// flight holds are returned as held, not read: what those txns install
// once they settle may predate the change (a checked commit only proves
// nothing changed before it), so the caller re-reads them after this txn
// settled. The states read are installed in the index once the txn
// settles; what differs from the index is published on the feed. It
// reports the error of the read, leaving the txn itself unharmed.
func (t *txn) refresh(mapName string, keys []string) (held []string, err error) {
	var need []string
	for _, k := range keys {
		ck := cacheKey{mapName, k}
		_, mine := t.pending[ck]
		if _, ok := t.inFlight(ck); ok || mine {
			held = append(held, k)
			continue
		}
		need = append(need, k)
	}
	if len(need) == 0 {
		return held, nil
	}
	ctx, cancel := t.s.readContext()
	defer cancel()
	rows, err := t.s.loadStored(ctx, mapName, need)
	if err != nil {
		return nil, err
	}
	for _, k := range need {
		t.admitStored(rows, mapName, k)
	}
	return held, nil
}

// admitStored makes a key's state as read from storage this txn's: its
// base for a checked commit, installed in the index once the txn settles
// (installObserved, or under the txn's own write). What it holds that the
// index lacks, another process wrote: it is announced with this txn's
// changes, or never (that process's notification then finds the index
// equal).
func (t *txn) admitStored(rows storedRows, mapName, key string) *state {
	st := rows.state(mapName, key)
	t.pending[cacheKey{mapName, key}] = st
	t.noteBase(st)
	t.changes = t.s.changesSince(t.changes, st)
	return st
}

// orTagPrint is the fingerprint of an OR entry's tag (kind 'a') or of a
// tombstone (kind 'r').
func orTagPrint(kind byte, tag string) uint64 {
	h := fnv.New64a()
	h.Write([]byte{kind})
	h.Write([]byte(tag))
	return h.Sum64()
}

// orTagSet is the sorted fingerprints of an OR key's entries and
// tombstones.
func orTagSet(m *record.ORMap) []uint64 {
	out := make([]uint64, 0, len(m.Records)+len(m.Tombstones))
	for i := range m.Records {
		out = append(out, orTagPrint('a', m.Records[i].Tag))
	}
	for _, t := range m.Tombstones {
		out = append(out, orTagPrint('r', t))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// changesSince appends the changes that bring the index's view of a key to
// st. The index keeps no OR values, only (on shared storage) fingerprints
// of a key's tags: a changed OR key announces an add per live entry and a
// remove per tombstone the index did not hold (announcing the key whole
// sent a client of this server one SERVER_EVENT per entry and tombstone
// for each write of another server, past its queue for keys of a few
// thousand). Deletions (tombstone collection) are not
// announced, as they are not from this process either.
func (s *Store) changesSince(out []Change, st *state) []Change {
	if !st.present {
		return out
	}
	s.mu.RLock()
	ms := s.maps[st.mapName]
	switch st.rv.Kind {
	case record.KindLWW:
		ts := st.rv.LWW.Timestamp
		if ms != nil {
			if m, ok := ms.lww.get(st.key); ok && s.lwwTimestamp(m) == ts {
				s.mu.RUnlock()
				return out
			}
		}
		s.mu.RUnlock()
		c := Change{Map: st.mapName, Key: st.key, Kind: ChangePut, Record: st.rv, ExpirationTime: st.exp}
		if st.rv.LWW.Value.IsNull() {
			c.Kind = ChangeRemove
		} else if st.exp > 0 && uint64(st.exp) > ts.Millis {
			c.TTLMs = uint64(st.exp) - ts.Millis
		}
		return append(out, c)
	case record.KindORMap:
		h, _ := orItemHash(st.key, &st.rv.ORMap)
		var known []uint64
		if ms != nil {
			if m, ok := ms.or.get(st.key); ok && m.hash == h {
				s.mu.RUnlock()
				return out
			}
			known = ms.orTags[st.key]
		}
		s.mu.RUnlock()
		for _, e := range st.rv.ORMap.Records {
			if _, seen := slices.BinarySearch(known, orTagPrint('a', e.Tag)); !seen {
				out = append(out, Change{Map: st.mapName, Key: st.key, Kind: ChangeORAdd, Record: st.rv, ExpirationTime: st.exp, Entry: e, Tag: e.Tag})
			}
		}
		var removed []string
		for _, tag := range st.rv.ORMap.Tombstones {
			if _, seen := slices.BinarySearch(known, orTagPrint('r', tag)); !seen {
				removed = append(removed, tag)
			}
		}
		switch len(removed) {
		case 0:
		case 1: // one change for all (see Change.Tags)
			out = append(out, Change{Map: st.mapName, Key: st.key, Kind: ChangeORRemove, Record: st.rv, ExpirationTime: st.exp, Tag: removed[0]})
		default:
			out = append(out, Change{Map: st.mapName, Key: st.key, Kind: ChangeORRemove, Record: st.rv, ExpirationTime: st.exp, Tags: removed})
		}
		return out
	}
	s.mu.RUnlock()
	return out
}

// watchQueue gathers what the backend's Watch reports until the
// refresher takes it: keys by map (nil: the whole map), or everything.
type watchQueue struct {
	mu   sync.Mutex
	all  bool
	maps map[string]map[string]struct{}
	keys int // queued keys, bounded by maxQueuedKeys
	wake chan struct{}
}

// maxQueuedKeys bounds the keys the queue holds: past it, everything is
// re-read instead (other servers writing faster than this one re-reads).
const maxQueuedKeys = 100_000

func newWatchQueue() *watchQueue {
	return &watchQueue{maps: map[string]map[string]struct{}{}, wake: make(chan struct{}, 1)}
}

// add never blocks: the backend's listener calls it.
func (q *watchQueue) add(c abi.Changed) {
	q.mu.Lock()
	switch {
	case q.all:
		// Everything is queued already.
	case c.All || q.keys+len(c.Keys) > maxQueuedKeys:
		q.all, q.maps, q.keys = true, map[string]map[string]struct{}{}, 0
	case c.Keys == nil:
		q.keys -= len(q.maps[c.Map])
		q.maps[c.Map] = nil
	default:
		ks, ok := q.maps[c.Map]
		if ok && ks == nil {
			break // the whole map is queued
		}
		if ks == nil {
			ks = map[string]struct{}{}
			q.maps[c.Map] = ks
		}
		for _, k := range c.Keys {
			if _, dup := ks[k]; !dup {
				ks[k] = struct{}{}
				q.keys++
			}
		}
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *watchQueue) take() (all bool, maps map[string]map[string]struct{}) {
	q.mu.Lock()
	defer q.mu.Unlock()
	all, maps = q.all, q.maps
	q.all, q.maps, q.keys = false, map[string]map[string]struct{}{}, 0
	return all, maps
}

// requeue puts back what could not be re-read.
func (q *watchQueue) requeue(all bool, maps map[string]map[string]struct{}) {
	if all {
		q.add(abi.Changed{All: true})
	}
	for m, ks := range maps {
		if ks == nil {
			q.add(abi.Changed{Map: m})
			continue
		}
		keys := make([]string, 0, len(ks))
		for k := range ks {
			keys = append(keys, k)
		}
		q.add(abi.Changed{Map: m, Keys: keys})
	}
}

// refreshRetry is the wait before re-reading again what the backend could
// not give.
const refreshRetry = time.Second

// refresher re-reads what other processes changed, as the watch queue
// names it, through the committer (which alone merges and indexes).
func (s *Store) refresher() {
	defer s.wg.Done()
	ctx, cancel := s.closingContext()
	defer cancel()
	for {
		select {
		case <-s.closing:
			return
		case <-s.watchq.wake:
		}
		all, maps := s.watchq.take()
		if all {
			names, err := s.be.ListMaps(ctx)
			if err != nil {
				s.log.Warn("cannot list the maps to re-read what other servers changed; trying again", "error", err)
				s.watchq.requeue(true, nil)
				s.refreshWait()
				continue
			}
			s.mu.RLock()
			for name := range s.maps {
				names = append(names, name)
			}
			s.mu.RUnlock()
			for _, name := range names {
				maps[name] = nil
			}
		}
		failed := map[string]map[string]struct{}{}
		for name, ks := range maps {
			var err error
			if ks == nil {
				err = s.refreshMap(ctx, name)
			} else {
				keys := make([]string, 0, len(ks))
				for k := range ks {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				err = s.refreshKeys(ctx, name, keys)
			}
			if err != nil {
				if s.closed.Load() {
					return
				}
				s.log.Warn("cannot re-read records another server changed; trying again", "map", name, "error", err)
				failed[name] = ks
			}
		}
		if len(failed) > 0 {
			s.watchq.requeue(false, failed)
			s.refreshWait()
		}
	}
}

func (s *Store) refreshWait() {
	select {
	case <-s.closing:
	case <-time.After(refreshRetry):
	}
}

// refreshKeys re-reads keys of a map, 1000 per request. Keys a txn in
// flight held are queued again once the request settled (so had every
// txn before it): the next pass reads them over what those installed.
func (s *Store) refreshKeys(ctx context.Context, mapName string, keys []string) error {
	for len(keys) > 0 {
		n := min(len(keys), 1000)
		chunk := keys[:n]
		var (
			rerr error
			held []string
		)
		// A conflict is a write's in the same group commit, not the
		// re-read's: submitWork merges it again at once, as the write is,
		// rather than after the refresher's wait.
		if err := s.submitWork(ctx, 0, func(t *txn) { held, rerr = t.refresh(mapName, chunk) }); err != nil {
			return err
		}
		if rerr != nil {
			return rerr
		}
		if len(held) > 0 {
			s.watchq.add(abi.Changed{Map: mapName, Keys: held})
		}
		keys = keys[n:]
	}
	return nil
}

// refreshMap re-reads a whole map: every key storage holds, then every key
// the index holds that storage no longer does.
func (s *Store) refreshMap(ctx context.Context, mapName string) error {
	seen := map[string]struct{}{}
	var page []string
	var ferr error
	err := s.scanPages(ctx, mapName, 1000, func(r *abi.Record) bool {
		seen[r.Key] = struct{}{}
		page = append(page, r.Key)
		if len(page) == 1000 {
			ferr = s.refreshKeys(ctx, mapName, page)
			page = nil
		}
		return ferr == nil
	})
	if err == nil {
		err = ferr
	}
	if err == nil {
		err = s.refreshKeys(ctx, mapName, page)
	}
	if err != nil {
		return err
	}
	var gone []string
	s.mu.RLock()
	if ms := s.maps[mapName]; ms != nil {
		ms.lww.each(func(k string, _ lwwMeta) bool {
			if _, ok := seen[k]; !ok {
				gone = append(gone, k)
			}
			return true
		})
		ms.or.each(func(k string, _ orMeta) bool {
			if _, ok := seen[k]; !ok {
				gone = append(gone, k)
			}
			return true
		})
	}
	s.mu.RUnlock()
	return s.refreshKeys(ctx, mapName, gone)
}
