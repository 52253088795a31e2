package client

import (
	"strconv"
	"unicode/utf16"

	"github.com/topgun-go/topgun/server/wire"
)

// merkleDepth is TopGun's trie depth: a key lives in the leaf named by the
// first three hex digits of its FNV-1a hash.
const merkleDepth = 3

// fnv1a is TopGun's 32-bit FNV-1a over the UTF-16 code units of s (as
// JavaScript strings are hashed), not over its UTF-8 bytes.
func fnv1a(s string) uint32 {
	h := uint32(0x811c9dc5)
	for _, u := range utf16.Encode([]rune(s)) {
		h ^= uint32(u)
		h *= 0x01000193
	}
	return h
}

// fmix32 is MurmurHash3's finalizer.
func fmix32(h uint32) uint32 {
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}

// lwwItemHash is the Merkle item hash of an LWW record:
// fnv1a("{key}:{millis}:{counter}:{nodeId}"); the value is not hashed.
func lwwItemHash(key string, ts wire.Timestamp) uint32 {
	return fnv1a(key + ":" + strconv.FormatUint(ts.Millis, 10) + ":" +
		strconv.FormatUint(uint64(ts.Counter), 10) + ":" + ts.NodeID)
}

// merkleTree is the TS client's MerkleTree: a trie of depth 3 over the hex
// digits of fnv1a(key), each node's hash the wrapping sum of fmix32 of its
// children's (or, at the leaves, its items') hashes. Only the node hashes are
// kept: sync needs the root and the hash of any path.
type merkleTree struct {
	nodes map[string]uint32 // path ("" = root, up to 3 hex digits) → hash
}

func newMerkleTree(records map[string]wire.LWWRecord) *merkleTree {
	t := &merkleTree{nodes: map[string]uint32{}}
	// A node's hash is Σ fmix32(child hash), so each item contributes
	// fmix32 applied once per level on its way to the root; summing
	// bottom-up keeps that exact while never storing the items.
	leaves := map[string]uint32{}
	for key, r := range records {
		path := hex8(fnv1a(key))[:merkleDepth]
		leaves[path] += fmix32(lwwItemHash(key, r.Timestamp))
	}
	level := leaves
	for depth := merkleDepth; depth >= 0; depth-- {
		parents := map[string]uint32{}
		for path, h := range level {
			t.nodes[path] = h
			if depth > 0 {
				parents[path[:depth-1]] += fmix32(h)
			}
		}
		level = parents
	}
	return t
}

// root is the root hash (0 for an empty tree).
func (t *merkleTree) root() uint32 { return t.nodes[""] }

// hash is the hash of the node at path, 0 when there is none.
func (t *merkleTree) hash(path string) uint32 { return t.nodes[path] }

func hex8(h uint32) string {
	const digits = "0123456789abcdef"
	var b [8]byte
	for i := 7; i >= 0; i-- {
		b[i] = digits[h&0xf]
		h >>= 4
	}
	return string(b[:])
}
