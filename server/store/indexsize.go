package store

import (
	"fmt"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/internal/setting"
)

// The index's size (IndexBytes, bounded by Options.MaxIndexBytes) counts,
// for what it holds, the heap bytes it takes: each indexed key's bytes
// plus indexKeyBytes, each leaf of a trie, each trie's upper levels, each
// map, each expiring key, each node id with its bytes, and, on shared
// storage, each OR key's tag fingerprints. Go's maps hold between 7/16
// and 7/8 of their slots, so a key's share of its leaf's map depends on
// when that map last grew; each constant is the worst case (a map just
// grown), which TestIndexBytes_boundsHeap checks against the live heap
// for dense and sparse maps, long keys, expiring keys and many node ids.
const (
	// A leaf map slot (the key's string header, 16-byte metadata, a
	// control byte) at 7/16 load, with the allocator's rounding of the
	// key's bytes.
	indexKeyBytes = 80
	// A leaf: its struct, its map's header and first group, its slot in
	// the trie's leaves map.
	indexLeafBytes = 320
	// A trie's upper levels (struct upper, 2,176 bytes, in a 2,304-byte
	// size class).
	indexUpperBytes = 2304
	// A map: mapState, its two tries and their maps' headers, the exp
	// map, its slot in Store.maps (its name's bytes are added).
	indexMapBytes = 512
	// An expiring key's slot in mapState.exp at 7/16 load.
	indexExpBytes = 64
	// A node id's slots in nodeI, nodes and nodeRefs (its bytes are
	// added).
	indexNodeBytes = 88
	// An OR key's tag fingerprints slice header and map slot, on shared
	// storage (8 bytes per fingerprint are added).
	indexTagsBytes = 96
)

// bytes is the heap a map's index holds by the index's count.
func (ms *mapState) bytes(name string) int64 {
	return indexMapBytes + int64(len(name)) + ms.lww.bytes() + ms.or.bytes() +
		int64(len(ms.exp))*indexExpBytes + ms.orTagBytes
}

// IndexBytes is the size of the in-memory index, as Options.MaxIndexBytes
// bounds it: about the heap bytes it holds.
func (s *Store) IndexBytes() int64 { return s.indexBytes.Load() }

// Stats are a Store's figures for metrics.
type Stats struct {
	// IndexBytes is IndexBytes.
	IndexBytes int64
	// MaxIndexBytes is Options.MaxIndexBytes (0: no bound).
	MaxIndexBytes int64
	// IndexRefused counts the ops rejected because they would take the
	// index past MaxIndexBytes, as Apply returned them: an op merged again
	// (after a conflict on shared storage, to be committed alone or in
	// parts) counts once, and one of a call that failed not at all (its
	// writer gets the failure, not the rejection, and sends it again).
	IndexRefused uint64
}

// Stats returns the store's figures.
func (s *Store) Stats() Stats {
	return Stats{IndexBytes: s.indexBytes.Load(), MaxIndexBytes: s.opts.MaxIndexBytes, IndexRefused: s.indexRefused.Load()}
}

// settingName names the setting env in the store's errors.
func (s *Store) settingName(env string) string { return setting.Name(s.opts.SettingName, env) }

// rebuildSlack is how far past max Open indexes before refusing. Writes
// admitted at the limit keep the index within it, but a few things grow
// it without a write's admission: an expiry set on a stored key, the
// re-reads of records a failed commit left unknown, other servers'
// changes on shared storage. Without the slack a server stopped at its
// limit could fail to start again.
func rebuildSlack(max int64) int64 { return max/8 + 8<<20 }

// indexFull is Open's error when the index of the records storage holds
// passes the bound.
func (s *Store) indexFull(records int) error {
	return abi.Errorf(abi.CodeResourceExhausted,
		"store: the in-memory index of the stored records passed its limit of %d bytes (%s; at start, with an eighth and 8 MiB more) after indexing %d records (%d bytes); "+
			"raise %s (0: no limit) if the storage really holds that many, or check the storage backend, which may be listing keys it does not hold",
		s.opts.MaxIndexBytes, s.settingName("TOPGUN_MAX_INDEX_MB"), records, s.indexBytes.Load(), s.settingName("TOPGUN_MAX_INDEX_MB"))
}

// admitKey refuses op i on cur's key when what it would add to the index,
// with what the commits in flight add, would take the index past
// Options.MaxIndexBytes. It runs on the committer. A write adds the key
// when cur is absent (with its expiry), its map, its trie's upper levels
// and leaf when new, and (LWW, node not "") its node id when new: so a
// write to a stored key adds nothing unless stamped by a node id the index
// does not hold, or it changes the key's kind. On shared storage an OR
// write also adds tag fingerprints (the net change of the key's records
// and tombstones; a new key's slice too). Each part is counted once
// per commit (newParts); a part counted by two commits in flight counts
// twice until the first is installed, and a part an install forgets
// counts until the commits in flight then are installed (partsFreed), so
// the index stays within the bound.
func (t *txn) admitKey(i int, cur *state, or bool, node string, expiring bool, tags int) (Result, bool) {
	s := t.s
	if s.opts.MaxIndexBytes == 0 {
		return Result{}, true
	}
	var add int64
	if !cur.present {
		add = indexKeyBytes + int64(len(cur.key))
		if expiring {
			add += indexExpBytes
		}
	}
	if t.s.shared && or {
		if !cur.present {
			add += indexTagsBytes
		}
		add += 8 * int64(max(tags, 0))
	}
	var parts [4]newPart
	n := 0
	need := func(p newPart, bytes int64) {
		if _, ok := t.newParts[p]; !ok {
			parts[n] = p
			n++
			add += bytes
		}
	}
	leaf := leafOf(cur.key)
	s.mu.RLock()
	ms := s.maps[cur.mapName]
	hasUpper, hasLeaf := false, false
	if ms != nil {
		if or {
			hasUpper, hasLeaf = ms.or.up != nil, ms.or.leaves[leaf] != nil
		} else {
			hasUpper, hasLeaf = ms.lww.up != nil, ms.lww.leaves[leaf] != nil
		}
	} else {
		need(newPart{name: cur.mapName, what: partMap}, indexMapBytes+int64(len(cur.mapName)))
	}
	if !hasUpper {
		need(newPart{name: cur.mapName, what: partTrie, or: or}, indexUpperBytes)
	}
	if !hasLeaf {
		need(newPart{name: cur.mapName, what: partLeaf, or: or, leaf: leaf}, indexLeafBytes)
	}
	if node != "" {
		if _, ok := s.nodeI[node]; !ok {
			need(newPart{name: node, what: partNode}, indexNodeBytes+int64(len(node)))
		}
	}
	s.mu.RUnlock()
	if add == 0 {
		return Result{}, true
	}
	// A txn seen settled was installed before, so indexBytes, read after
	// the flags, holds what it added. The parts freed since the oldest txn
	// in flight (or this one) started count as held: a write admitted
	// while one was indexed adds it again.
	held, since := t.newBytes, t.freedAt
	for _, o := range t.overlay {
		if !o.settled.Load() {
			held += o.newBytes
			since = min(since, o.freedAt)
		}
	}
	held += s.indexBytes.Load()
	held += s.partsFreed.Load() - since
	if held+add > s.opts.MaxIndexBytes {
		what := "key %q of map %q is not stored: the server's in-memory index of keys is full"
		if cur.present {
			what = "the write to key %q of map %q is refused: it would add its writer's node id to the server's in-memory index of keys, which is full"
		}
		msg := fmt.Sprintf(what+" (%d of %d bytes, %s); "+
			"writes that add nothing to it (to stored keys, by clients whose node id it holds) still pass, others once keys are removed or the limit is raised",
			cur.key, cur.mapName, held, s.opts.MaxIndexBytes, s.settingName("TOPGUN_MAX_INDEX_MB"))
		t.indexRefused++
		return Result{Err: &RejectError{Op: i, Reason: msg, Err: abi.Errorf(abi.CodeResourceExhausted, "store: %s", msg)}}, false
	}
	if n > 0 && t.newParts == nil {
		t.newParts = map[newPart]struct{}{}
	}
	for _, p := range parts[:n] {
		t.newParts[p] = struct{}{}
	}
	t.newBytes += add
	return Result{}, true
}

// newPart is a part of the index a txn's new keys add (see admitKey),
// counted once per txn: a map, one of its tries' upper levels, a leaf of
// one, or a node id (name).
type newPart struct {
	name string
	what uint8
	or   bool
	leaf uint16
}

const (
	partMap = iota
	partTrie
	partLeaf
	partNode
)
