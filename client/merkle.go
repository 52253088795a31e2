package client

import (
	"github.com/topgun-go/topgun/server/merkle"
	"github.com/topgun-go/topgun/server/record"
	"github.com/topgun-go/topgun/server/wire"
)

// newMerkleTree builds the TS client's Merkle trie over local LWW records
// (package server/merkle hashes exactly as the TS client does: FNV-1a over
// UTF-16 code units, depth 3, fmix32 sums; the value is not hashed).
func newMerkleTree(records map[string]wire.LWWRecord) *merkle.Tree {
	t := merkle.New()
	for key, r := range records {
		t.Update(key, lwwItemHash(key, r.Timestamp))
	}
	return t
}

// lwwItemHash is fnv1a("{key}:{millis}:{counter}:{nodeId}").
func lwwItemHash(key string, ts wire.Timestamp) uint32 {
	return merkle.LWWItemHash(key, record.Timestamp{Millis: ts.Millis, Counter: ts.Counter, NodeID: ts.NodeID})
}

// nodeHash is the hash of the node at path, 0 when it holds nothing (the
// TS client's "local[char] || 0").
func nodeHash(t *merkle.Tree, path string) uint32 {
	h, _ := t.Hash(path)
	return h
}
