package store

import (
	"strconv"

	"github.com/topgun-go/topgun/server/merkle"
)

// trie is the Merkle index of one map and CRDT kind, laid out the way
// TopGun's TypeScript client builds its MerkleTree (depth 3, the path of a
// key is the 8-hex-digit FNV-1a of the key, node hash = sum of fmix32 of the
// children), so the root equals the root of a client holding the same
// records.
//
// The trie is also the record index: each of the 4096 depth-3 leaves holds
// the metadata of its keys, so a key is stored once and a leaf request lists
// its keys without a scan. Node hashes are updated incrementally (combine is
// a sum, so a child's change is a delta).
//
// A map costs memory in proportion to the leaves it uses: leaf hashes live
// in the leaves, and the two upper levels (2 KiB) exist only while the trie
// holds a key. Fixed arrays for all 4096 leaves cost 34 KiB per trie, two
// per map, so each write to a new map name held 68 KiB of heap for as long
// as the server ran, whatever the record's size.
type trie[M any] struct {
	leaves map[uint16]*leaf[M] // leaf id (first 3 hex digits) -> its keys
	up     *upper              // nil while the trie is empty
	size   int
	// keyBytes is the length of its keys, for the index's size (bytes).
	keyBytes int
}

type leaf[M any] struct {
	keys map[string]M
	hash uint32
}

// upper holds the hashes and key counts of levels 1 and 2.
type upper struct {
	h2 [256]uint32
	h1 [16]uint32
	n2 [256]uint32
	n1 [16]uint32
}

func newTrie[M any]() *trie[M] { return &trie[M]{leaves: map[uint16]*leaf[M]{}} }

// leafOf returns the depth-3 leaf id of a key: its path's first 3 hex digits.
func leafOf(key string) uint16 { return uint16(merkle.FNV1a(key) >> 20) }

func (t *trie[M]) get(key string) (M, bool) {
	if lf := t.leaves[leafOf(key)]; lf != nil {
		m, ok := lf.keys[key]
		return m, ok
	}
	var zero M
	return zero, false
}

// set stores meta for key. oldItem/newItem are the item hashes before and
// after (had says whether the key was present).
func (t *trie[M]) set(key string, meta M, had bool, oldItem, newItem uint32) {
	id := leafOf(key)
	lf := t.leaves[id]
	if lf == nil {
		lf = &leaf[M]{keys: map[string]M{}}
		t.leaves[id] = lf
	}
	lf.keys[key] = meta
	if !had {
		if t.up == nil {
			t.up = &upper{}
		}
		t.count(id, 1)
		t.size++
		t.keyBytes += len(key)
	}
	t.rehash(lf, id, oldItem, newItem, had)
}

func (t *trie[M]) remove(key string, oldItem uint32) {
	id := leafOf(key)
	lf := t.leaves[id]
	if lf == nil {
		return
	}
	if _, ok := lf.keys[key]; !ok {
		return
	}
	delete(lf.keys, key)
	t.count(id, ^uint32(0))
	t.size--
	t.keyBytes -= len(key)
	t.rehashDelta(lf, id, -merkle.Mix(oldItem))
	if len(lf.keys) == 0 {
		delete(t.leaves, id)
	}
	if t.size == 0 {
		// Every hash and count is back to 0 (sums of what was removed).
		t.up = nil
	}
}

func (t *trie[M]) count(id uint16, d uint32) {
	t.up.n2[id>>4] += d
	t.up.n1[id>>8] += d
}

func (t *trie[M]) rehash(lf *leaf[M], id uint16, oldItem, newItem uint32, had bool) {
	delta := merkle.Mix(newItem)
	if had {
		delta -= merkle.Mix(oldItem)
	}
	t.rehashDelta(lf, id, delta)
}

// rehashDelta adds delta (mod 2^32) to the leaf hash and propagates the
// change of each node's fmix32 to its parent.
func (t *trie[M]) rehashDelta(lf *leaf[M], id uint16, delta uint32) {
	if delta == 0 {
		return
	}
	old3 := lf.hash
	lf.hash += delta
	u := t.up
	i2 := id >> 4
	old2 := u.h2[i2]
	u.h2[i2] += merkle.Mix(lf.hash) - merkle.Mix(old3)
	i1 := id >> 8
	u.h1[i1] += merkle.Mix(u.h2[i2]) - merkle.Mix(old2)
}

// bytes is the heap the trie holds by the index's count (see indexsize.go).
func (t *trie[M]) bytes() int64 {
	n := int64(t.size)*indexKeyBytes + int64(t.keyBytes) + int64(len(t.leaves))*indexLeafBytes
	if t.up != nil {
		n += indexUpperBytes
	}
	return n
}

// partBytes is what its leaves and upper levels take of bytes.
func (t *trie[M]) partBytes() int64 {
	n := int64(len(t.leaves)) * indexLeafBytes
	if t.up != nil {
		n += indexUpperBytes
	}
	return n
}

// root is the hash of the level-0 node.
func (t *trie[M]) root() uint32 {
	if t.up == nil {
		return 0
	}
	var r uint32
	for _, h := range t.up.h1 {
		r += merkle.Mix(h)
	}
	return r
}

// buckets returns the non-empty children of the node at path (0 to 2 hex
// digits) with their hashes, keyed by one hex digit. ok is false for a path
// that is not an internal node (longer than 2 digits or not hex).
func (t *trie[M]) buckets(path string) (map[string]uint32, bool) {
	if len(path) > 2 {
		return nil, false
	}
	prefix, ok := parseHexPath(path)
	if !ok {
		return nil, false
	}
	out := map[string]uint32{}
	if t.up == nil {
		return out, true
	}
	for c := 0; c < 16; c++ {
		var n, h uint32
		switch len(path) {
		case 0:
			n, h = t.up.n1[c], t.up.h1[c]
		case 1:
			i := prefix<<4 | uint32(c)
			n, h = t.up.n2[i], t.up.h2[i]
		case 2:
			if lf := t.leaves[uint16(prefix<<4|uint32(c))]; lf != nil {
				n, h = uint32(len(lf.keys)), lf.hash
			}
		}
		if n > 0 {
			out[merkle.Digits[c:c+1]] = h
		}
	}
	return out, true
}

// leafKeys returns the keys of the depth-3 leaf at path (3 hex digits).
func (t *trie[M]) leafKeys(path string) ([]string, bool) {
	if len(path) != 3 {
		return nil, false
	}
	id, ok := parseHexPath(path)
	if !ok {
		return nil, false
	}
	var lm map[string]M
	if lf := t.leaves[uint16(id)]; lf != nil {
		lm = lf.keys
	}
	keys := make([]string, 0, len(lm))
	for k := range lm {
		keys = append(keys, k)
	}
	return keys, true
}

func parseHexPath(path string) (uint32, bool) {
	if path == "" {
		return 0, true
	}
	for i := 0; i < len(path); i++ {
		c := path[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(path, 16, 32)
	return uint32(v), err == nil
}

// leafCount is the number of depth-3 leaves: ids 0 to leafCount-1.
const leafCount = 1 << 12

// eachInLeaf calls f for every key of leaf id and returns how many.
func (t *trie[M]) eachInLeaf(id uint16, f func(key string, m M)) int {
	lf := t.leaves[id]
	if lf == nil {
		return 0
	}
	for k, m := range lf.keys {
		f(k, m)
	}
	return len(lf.keys)
}

// each calls f for every key until f returns false.
func (t *trie[M]) each(f func(key string, m M) bool) {
	for _, lf := range t.leaves {
		for k, m := range lf.keys {
			if !f(k, m) {
				return
			}
		}
	}
}
