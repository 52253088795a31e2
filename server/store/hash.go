package store

import (
	"strconv"

	"github.com/topgun-go/topgun/server/merkle"
	"github.com/topgun-go/topgun/server/record"
)

// lwwItemHash is the Merkle item hash of an LWW record as TopGun's client
// computes it: FNV-1a of "key:millis:counter:nodeId". Tombstones hash the
// same way, since the client keeps and hashes its own.
func lwwItemHash(key string, ts record.Timestamp) uint32 {
	var buf [128]byte
	b := append(buf[:0], key...)
	b = append(b, ':')
	b = strconv.AppendUint(b, ts.Millis, 10)
	b = append(b, ':')
	b = strconv.AppendUint(b, uint64(ts.Counter), 10)
	b = append(b, ':')
	b = append(b, ts.NodeID...)
	return merkle.FNV1a(string(b))
}

// orItemHash is the Merkle item hash of an OR-Map key.
func orItemHash(key string, m *record.ORMap) uint32 {
	return orClientHash(key, m)
}
