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
// its keys without a scan. Node hashes are kept per level in fixed arrays and
// updated incrementally (combine is a sum, so a child's change is a delta).
type trie[M any] struct {
	leaves map[uint16]map[string]M // leaf id (first 3 hex digits) -> key -> meta
	h3     [4096]uint32            // leaf hashes
	h2     [256]uint32
	h1     [16]uint32
	n3     [4096]uint32 // keys under each node, to list only non-empty children
	n2     [256]uint32
	n1     [16]uint32
	size   int
}

func newTrie[M any]() *trie[M] { return &trie[M]{leaves: map[uint16]map[string]M{}} }

// leafOf returns the depth-3 leaf id of a key: its path's first 3 hex digits.
func leafOf(key string) uint16 { return uint16(merkle.FNV1a(key) >> 20) }

func (t *trie[M]) get(key string) (M, bool) {
	m, ok := t.leaves[leafOf(key)][key]
	return m, ok
}

// set stores meta for key. oldItem/newItem are the item hashes before and
// after (had says whether the key was present).
func (t *trie[M]) set(key string, meta M, had bool, oldItem, newItem uint32) {
	leaf := leafOf(key)
	lm := t.leaves[leaf]
	if lm == nil {
		lm = map[string]M{}
		t.leaves[leaf] = lm
	}
	lm[key] = meta
	if !had {
		t.count(leaf, 1)
		t.size++
	}
	t.rehash(leaf, oldItem, newItem, had)
}

func (t *trie[M]) remove(key string, oldItem uint32) {
	leaf := leafOf(key)
	lm := t.leaves[leaf]
	if _, ok := lm[key]; !ok {
		return
	}
	delete(lm, key)
	if len(lm) == 0 {
		delete(t.leaves, leaf)
	}
	t.count(leaf, ^uint32(0))
	t.size--
	t.rehashDelta(leaf, -merkle.Mix(oldItem))
}

func (t *trie[M]) count(leaf uint16, d uint32) {
	t.n3[leaf] += d
	t.n2[leaf>>4] += d
	t.n1[leaf>>8] += d
}

func (t *trie[M]) rehash(leaf uint16, oldItem, newItem uint32, had bool) {
	delta := merkle.Mix(newItem)
	if had {
		delta -= merkle.Mix(oldItem)
	}
	t.rehashDelta(leaf, delta)
}

// rehashDelta adds delta (mod 2^32) to the leaf hash and propagates the
// change of each node's fmix32 to its parent.
func (t *trie[M]) rehashDelta(leaf uint16, delta uint32) {
	if delta == 0 {
		return
	}
	old3 := t.h3[leaf]
	t.h3[leaf] += delta
	i2 := leaf >> 4
	old2 := t.h2[i2]
	t.h2[i2] += merkle.Mix(t.h3[leaf]) - merkle.Mix(old3)
	i1 := leaf >> 8
	t.h1[i1] += merkle.Mix(t.h2[i2]) - merkle.Mix(old2)
}

// root is the hash of the level-0 node.
func (t *trie[M]) root() uint32 {
	var r uint32
	for _, h := range t.h1 {
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
	for c := 0; c < 16; c++ {
		var n, h uint32
		switch len(path) {
		case 0:
			n, h = t.n1[c], t.h1[c]
		case 1:
			i := prefix<<4 | uint32(c)
			n, h = t.n2[i], t.h2[i]
		case 2:
			i := prefix<<4 | uint32(c)
			n, h = t.n3[i], t.h3[i]
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
	lm := t.leaves[uint16(id)]
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

// each calls f for every key until f returns false.
func (t *trie[M]) each(f func(key string, m M) bool) {
	for _, lm := range t.leaves {
		for k, m := range lm {
			if !f(k, m) {
				return
			}
		}
	}
}
