package store

import (
	"github.com/topgun-go/topgun/server/merkle"
	"github.com/topgun-go/topgun/server/record"
)

// lwwItemHash is the Merkle item hash of an LWW record (tombstones
// included) with the client's formula.
func lwwItemHash(key string, ts record.Timestamp) uint32 { return merkle.LWWItemHash(key, ts) }

// orItemHash is the Merkle item hash of an OR-Map key with the client's
// formula; ok is false for a key without live entries, which the client
// keeps no leaf for.
func orItemHash(key string, m *record.ORMap) (uint32, bool) {
	return merkle.ORItemHash(key, m.Records)
}
