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

// settingName names the setting env in the store's errors.
func (s *Store) settingName(env string) string { return setting.Name(s.opts.SettingName, env) }

// rebuildSlack is how far past max Open indexes before refusing: writes
// are admitted by their keys alone, and their leaves and node ids, counted
// once installed, can take a server stopped at its limit past it (by
// about a group commit's, at most a few MiB). Without the slack such a
// server would not start again.
func rebuildSlack(max int64) int64 { return max/8 + 8<<20 }

// indexFull is Open's error when the index of the records storage holds
// passes the bound.
func (s *Store) indexFull(records int) error {
	return abi.Errorf(abi.CodeResourceExhausted,
		"store: the in-memory index of the stored records passed its limit of %d bytes (%s; at start, with an eighth and 8 MiB more) after indexing %d records (%d bytes); "+
			"raise %s (0: no limit) if the storage really holds that many, or check the storage backend, which may be listing keys it does not hold",
		s.opts.MaxIndexBytes, s.settingName("TOPGUN_MAX_INDEX_MB"), records, s.indexBytes.Load(), s.settingName("TOPGUN_MAX_INDEX_MB"))
}

// admitKey refuses op i, about to add key to the index (cur, its state,
// is absent), when the index with the keys the commits in flight add
// would pass Options.MaxIndexBytes. It runs on the committer. The keys in
// flight are counted by what the key alone takes (and a map new to the
// index); their leaves and node ids count once installed, so the index
// can pass the bound by those of the commits in flight.
func (t *txn) admitKey(i int, cur *state) (Result, bool) {
	s := t.s
	if s.opts.MaxIndexBytes == 0 || cur.present {
		return Result{}, true
	}
	add := indexKeyBytes + int64(len(cur.key))
	if _, ok := t.newMaps[cur.mapName]; !ok {
		s.mu.RLock()
		_, ok = s.maps[cur.mapName]
		s.mu.RUnlock()
		if !ok {
			add += indexMapBytes + int64(len(cur.mapName))
		}
	}
	held := s.indexBytes.Load() + t.newBytes
	for _, o := range t.overlay {
		if !o.settled.Load() {
			held += o.newBytes
		}
	}
	if held+add > s.opts.MaxIndexBytes {
		msg := fmt.Sprintf("key %q of map %q is not stored: the server's in-memory index of keys is full (%d of %d bytes, %s); "+
			"writes to stored keys still pass, new keys once keys are removed or the limit is raised",
			cur.key, cur.mapName, held, s.opts.MaxIndexBytes, s.settingName("TOPGUN_MAX_INDEX_MB"))
		return Result{Err: &RejectError{Op: i, Reason: msg, Err: abi.Errorf(abi.CodeResourceExhausted, "store: %s", msg)}}, false
	}
	if add > indexKeyBytes+int64(len(cur.key)) {
		if t.newMaps == nil {
			t.newMaps = map[string]struct{}{}
		}
		t.newMaps[cur.mapName] = struct{}{}
	}
	t.newBytes += add
	return Result{}, true
}
