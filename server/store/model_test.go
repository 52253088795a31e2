package store

import (
	"fmt"

	"github.com/topgun-go/topgun/server/merkle"
	"github.com/topgun-go/topgun/server/record"
)

// clientRoot recomputes, from scratch, the root a TopGun client holding
// items (key -> item hash) reports: depth-3 trie on the hex FNV-1a path,
// node hash = sum of fmix32 of children.
func clientRoot(items map[string]uint32) uint32 {
	leaf := map[string]uint32{}
	for k, h := range items {
		leaf[leafPath(k)] += merkle.Mix(h)
	}
	l2 := map[string]uint32{}
	for p, h := range leaf {
		l2[p[:2]] += merkle.Mix(h)
	}
	l1 := map[string]uint32{}
	for p, h := range l2 {
		l1[p[:1]] += merkle.Mix(h)
	}
	var root uint32
	for _, h := range l1 {
		root += merkle.Mix(h)
	}
	return root
}

func lwwRootOf(recs map[string]record.Timestamp) uint32 {
	items := map[string]uint32{}
	for k, t := range recs {
		items[k] = merkle.FNV1a(fmt.Sprintf("%s:%d:%d:%s", k, t.Millis, t.Counter, t.NodeID))
	}
	return clientRoot(items)
}

func leafPath(key string) string { return fmt.Sprintf("%08x", merkle.FNV1a(key))[:3] }
