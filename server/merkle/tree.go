package merkle

import (
	"sort"
	"strconv"
)

// Depth is the depth of the trie: leaves sit at 3-character paths, as in
// every TopGun component.
const Depth = 3

// Tree is the Merkle trie of one map and CRDT kind, hashed exactly as
// TopGun's TypeScript client hashes its MerkleTree and ORMapMerkleTree:
//
//   - a key lives in the leaf at the first Depth hex digits of Path(key);
//   - a leaf's hash is Combine of the item hashes of its keys;
//   - an inner node's hash is Combine of its children's hashes;
//   - Root is the hash of the top node, 0 for an empty tree.
//
// Because Combine is a sum, the tree is updated incrementally in constant
// work per level. Unlike the client, the tree drops a node when its last
// key is removed (the client keeps it with hash 0); hashes are unaffected
// since Mix(0) == 0, and Buckets then never reports an emptied child (see
// Buckets).
//
// Memory: per key, the tree keeps the key's string header, the key's FNV1a
// and its item hash in per-leaf slices (24 bytes plus at most a quarter of
// slack), and shares the key's bytes with the caller. A Tree is not safe for
// concurrent use.
type Tree struct {
	root  uint32
	count int
	kids  [16]*level1
}

type level1 struct {
	hash  uint32
	count int32
	kids  [16]*level2
}

type level2 struct {
	hash  uint32
	count int32
	kids  [16]*leaf
}

// leaf holds its keys sorted by (FNV1a(key), key): lookups binary-search the
// contiguous fnv slice and compare a key string only on a hash match, which
// keeps a lookup in a large leaf to a few cache lines.
type leaf struct {
	hash   uint32
	fnv    []uint32 // fnv[i] = FNV1a(keys[i])
	keys   []string
	hashes []uint32 // hashes[i] is the item hash of keys[i]
}

// New returns an empty tree.
func New() *Tree { return &Tree{} }

// Len returns the number of keys in the tree.
func (t *Tree) Len() int { return t.count }

// Root returns the root hash, 0 for an empty tree.
func (t *Tree) Root() uint32 { return t.root }

// Reset empties the tree.
func (t *Tree) Reset() { *t = Tree{} }

func nibbles(h uint32) (a, b, c int) {
	return int(h >> 28), int(h>>24) & 15, int(h>>20) & 15
}

// find returns the index of key (whose FNV1a is h) and whether it is
// present; when absent, the index where it belongs.
func (l *leaf) find(h uint32, key string) (int, bool) {
	i, j := 0, len(l.fnv)
	for i < j {
		m := int(uint(i+j) >> 1)
		if l.fnv[m] < h {
			i = m + 1
		} else {
			j = m
		}
	}
	for ; i < len(l.fnv) && l.fnv[i] == h; i++ {
		if l.keys[i] >= key {
			return i, l.keys[i] == key
		}
	}
	return i, false
}

// Update sets the item hash of key, adding the key if it is new. The tree
// keeps the key string without copying it: pass the string the caller
// already keeps (the store's own index key) so its bytes are not held twice,
// and clone it first if it points into a larger buffer.
func (t *Tree) Update(key string, itemHash uint32) {
	kh := FNV1a(key)
	a, b, c := nibbles(kh)
	n1 := t.kids[a]
	if n1 == nil {
		n1 = &level1{}
		t.kids[a] = n1
	}
	n2 := n1.kids[b]
	if n2 == nil {
		n2 = &level2{}
		n1.kids[b] = n2
	}
	lf := n2.kids[c]
	if lf == nil {
		lf = &leaf{}
		n2.kids[c] = lf
	}
	old := lf.hash
	i, found := lf.find(kh, key)
	if found {
		if lf.hashes[i] == itemHash {
			return
		}
		lf.hash += Mix(itemHash) - Mix(lf.hashes[i])
		lf.hashes[i] = itemHash
	} else {
		lf.insert(i, kh, key, itemHash)
		lf.hash += Mix(itemHash)
		n1.count++
		n2.count++
		t.count++
	}
	t.propagate(n1, n2, old, lf.hash)
}

// propagate carries a leaf hash change from oldLeaf to newLeaf up to the root.
func (t *Tree) propagate(n1 *level1, n2 *level2, oldLeaf, newLeaf uint32) {
	old2 := n2.hash
	n2.hash += Mix(newLeaf) - Mix(oldLeaf)
	old1 := n1.hash
	n1.hash += Mix(n2.hash) - Mix(old2)
	t.root += Mix(n1.hash) - Mix(old1)
}

func (l *leaf) insert(i int, kh uint32, key string, h uint32) {
	n := len(l.keys)
	if n == cap(l.keys) {
		// Grow by a quarter, not by doubling: leaves are many and small.
		c := n + n/4 + 2
		l.fnv = grow(l.fnv, i, c)
		l.hashes = grow(l.hashes, i, c)
		l.keys = grow(l.keys, i, c)
	} else {
		l.fnv = l.fnv[:n+1]
		copy(l.fnv[i+1:], l.fnv[i:n])
		l.keys = l.keys[:n+1]
		copy(l.keys[i+1:], l.keys[i:n])
		l.hashes = l.hashes[:n+1]
		copy(l.hashes[i+1:], l.hashes[i:n])
	}
	l.fnv[i] = kh
	l.keys[i] = key
	l.hashes[i] = h
}

// grow returns a copy of s with capacity c and a gap at index i.
func grow[T any](s []T, i, c int) []T {
	out := make([]T, len(s)+1, c)
	copy(out, s[:i])
	copy(out[i+1:], s[i:])
	return out
}

// shrink returns a copy of s with capacity c.
func shrink[T any](s []T, c int) []T {
	out := make([]T, len(s), c)
	copy(out, s)
	return out
}

func (l *leaf) delete(i int) {
	n := len(l.keys)
	copy(l.fnv[i:], l.fnv[i+1:])
	l.fnv = l.fnv[:n-1]
	copy(l.keys[i:], l.keys[i+1:])
	l.keys[n-1] = "" // drop the reference
	l.keys = l.keys[:n-1]
	copy(l.hashes[i:], l.hashes[i+1:])
	l.hashes = l.hashes[:n-1]
	if c := cap(l.keys); c > 32 && len(l.keys) < c/4 {
		m := len(l.keys) + len(l.keys)/4 + 2
		l.fnv, l.keys, l.hashes = shrink(l.fnv, m), shrink(l.keys, m), shrink(l.hashes, m)
	}
}

// Remove deletes key from the tree and reports whether it was there. Nodes
// left without keys are dropped.
func (t *Tree) Remove(key string) bool {
	kh := FNV1a(key)
	a, b, c := nibbles(kh)
	n1 := t.kids[a]
	if n1 == nil {
		return false
	}
	n2 := n1.kids[b]
	if n2 == nil {
		return false
	}
	lf := n2.kids[c]
	if lf == nil {
		return false
	}
	i, found := lf.find(kh, key)
	if !found {
		return false
	}
	old := lf.hash
	lf.hash -= Mix(lf.hashes[i])
	lf.delete(i)
	n1.count--
	n2.count--
	t.count--
	t.propagate(n1, n2, old, lf.hash)
	if len(lf.keys) == 0 {
		n2.kids[c] = nil
	}
	if n2.count == 0 {
		n1.kids[b] = nil
	}
	if n1.count == 0 {
		t.kids[a] = nil
	}
	return true
}

// Get returns the item hash of key.
func (t *Tree) Get(key string) (uint32, bool) {
	kh := FNV1a(key)
	lf := t.leafOf(kh)
	if lf == nil {
		return 0, false
	}
	if i, found := lf.find(kh, key); found {
		return lf.hashes[i], true
	}
	return 0, false
}

func (t *Tree) leafOf(kh uint32) *leaf {
	a, b, c := nibbles(kh)
	if n1 := t.kids[a]; n1 != nil {
		if n2 := n1.kids[b]; n2 != nil {
			return n2.kids[c]
		}
	}
	return nil
}

func nibble(ch byte) (int, bool) {
	switch {
	case ch >= '0' && ch <= '9':
		return int(ch - '0'), true
	case ch >= 'a' && ch <= 'f':
		return int(ch-'a') + 10, true
	}
	return 0, false
}

// node resolves a path of up to Depth lowercase hex digits.
func (t *Tree) node(path string) (n1 *level1, n2 *level2, lf *leaf, ok bool) {
	if len(path) > Depth {
		return nil, nil, nil, false
	}
	var idx [Depth]int
	for i := 0; i < len(path); i++ {
		v, valid := nibble(path[i])
		if !valid {
			return nil, nil, nil, false
		}
		idx[i] = v
	}
	if len(path) == 0 {
		return nil, nil, nil, true
	}
	if n1 = t.kids[idx[0]]; n1 == nil {
		return nil, nil, nil, false
	}
	if len(path) == 1 {
		return n1, nil, nil, true
	}
	if n2 = n1.kids[idx[1]]; n2 == nil {
		return nil, nil, nil, false
	}
	if len(path) == 2 {
		return n1, n2, nil, true
	}
	if lf = n2.kids[idx[2]]; lf == nil {
		return nil, nil, nil, false
	}
	return n1, n2, lf, true
}

// Hash returns the hash of the node at path ("" is the root) and whether
// that node holds any key.
func (t *Tree) Hash(path string) (uint32, bool) {
	n1, n2, lf, ok := t.node(path)
	switch {
	case !ok:
		return 0, false
	case lf != nil:
		return lf.hash, true
	case n2 != nil:
		return n2.hash, true
	case n1 != nil:
		return n1.hash, true
	}
	return t.root, t.count > 0
}

// Buckets returns the hashes of the children of the node at path, keyed by
// their hex digit, as the client's getBuckets does: for "" the top-level
// buckets, for a 1- or 2-digit path the next level, and nil for a leaf path,
// a path that holds no key, or a malformed path (not lowercase hex, or
// longer than Depth).
//
// The client's getBuckets also lists children emptied by removals, with
// hash 0; this tree drops them. Hashes are unaffected (Mix(0) == 0), and it
// is the better answer for the protocol: the TypeScript client compares each
// server bucket with its own (a missing one counting as 0), so a listed 0 and
// an absent child lead to the same requests, except for an OR-Map client
// holding keys under that child. At TopGun's pinned revision such a client
// pushes the keys of a child only when the server does not list it; a listed
// 0 makes it request the empty bucket instead, which gets no answer. Later
// client revisions ignore listed zeros for that reason.
func (t *Tree) Buckets(path string) map[string]uint32 {
	n1, n2, lf, ok := t.node(path)
	if !ok || lf != nil {
		return nil
	}
	out := make(map[string]uint32)
	switch {
	case n2 != nil:
		for i, k := range n2.kids {
			if k != nil {
				out[Digits[i:i+1]] = k.hash
			}
		}
	case n1 != nil:
		for i, k := range n1.kids {
			if k != nil {
				out[Digits[i:i+1]] = k.hash
			}
		}
	default:
		for i, k := range t.kids {
			if k != nil {
				out[Digits[i:i+1]] = k.hash
			}
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// LeafKeys returns the keys of the leaf at a Depth-digit path, sorted
// byte-wise, or nil when there is no such leaf. The client returns them in
// insertion order; the order carries no meaning in the protocol.
func (t *Tree) LeafKeys(path string) []string {
	if len(path) != Depth {
		return nil
	}
	_, _, lf, ok := t.node(path)
	if !ok || lf == nil {
		return nil
	}
	keys := append([]string(nil), lf.keys...)
	sort.Strings(keys)
	return keys
}

// Range calls fn for every key and item hash, leaf by leaf in path order
// (in no particular order within a leaf), until fn returns false.
func (t *Tree) Range(fn func(key string, itemHash uint32) bool) {
	for _, n1 := range t.kids {
		if n1 == nil {
			continue
		}
		for _, n2 := range n1.kids {
			if n2 == nil {
				continue
			}
			for _, lf := range n2.kids {
				if lf == nil {
					continue
				}
				for i, k := range lf.keys {
					if !fn(k, lf.hashes[i]) {
						return
					}
				}
			}
		}
	}
}

// String returns a short description for debugging.
func (t *Tree) String() string {
	return "merkle.Tree{keys: " + strconv.Itoa(t.count) + ", root: " + strconv.FormatUint(uint64(t.root), 10) + "}"
}
