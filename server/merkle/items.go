package merkle

import (
	"sort"
	"strconv"
	"strings"

	"github.com/topgun-go/topgun/server/record"
)

// LWWItemHash is the item hash of an LWW key, as both TopGun's server and its
// TypeScript client compute it: FNV1a("{key}:{millis}:{counter}:{nodeId}").
// It depends on the timestamp only, so a tombstone (a Null value with the
// time of the remove) hashes like any record, as the client's does. Millis
// above 2^53 are printed as the client prints the JavaScript number holding
// them (TopGun's server prints the exact integer; no real clock gets there).
func LWWItemHash(key string, ts record.Timestamp) uint32 {
	var buf [64]byte
	h := fnvString(fnvOffset, key)
	b := append(buf[:0], ':')
	b = appendJSUint(b, ts.Millis)
	b = append(b, ':')
	b = strconv.AppendUint(b, uint64(ts.Counter), 10)
	b = append(b, ':')
	h = fnvBytes(h, b)
	return fnvString(h, ts.NodeID)
}

// ORItemHash is the item hash of an OR-Map key as TopGun's TypeScript client
// computes it (hashORMapEntry in core/src/ORMapMerkle.ts):
//
//	FNV1a("key:{key}|{tag}:{value}:{millis}:{counter}:{nodeId}[:ttl={ttlMs}]|…")
//
// over the key's live records sorted by tag (JavaScript's default sort, by
// UTF-16 code units), where {value} is the client's stringifyValue of the
// value (see the package documentation for where that can differ). The
// tombstones of the key do not enter the hash. ok is false when records is
// empty: the client then keeps no leaf for the key. When two records share a
// tag, the last one counts, as in the client's Map from tag to record.
//
// The client appends ":ttl=" whenever its record's ttlMs is not undefined,
// so a record it received with ttlMs null hashes with ":ttl=null". Send OR
// records to the client without a ttlMs field (rather than ttlMs: nil) when
// their TTLMs is 0, or their hashes will differ.
func ORItemHash(key string, records []record.ORMapEntry) (hash uint32, ok bool) {
	if len(records) == 0 {
		return 0, false
	}
	order := make([]int, 0, len(records))
	for i := range records {
		order = append(order, i)
	}
	sort.SliceStable(order, func(a, b int) bool {
		return compareUTF16(records[order[a]].Tag, records[order[b]].Tag) < 0
	})
	buf := make([]byte, 0, 128)
	buf = append(buf, "key:"...)
	buf = append(buf, key...)
	for j, i := range order {
		if j+1 < len(order) && records[order[j+1]].Tag == records[i].Tag {
			continue // a later record with the same tag replaces this one
		}
		r := &records[i]
		buf = append(buf, '|')
		buf = append(buf, r.Tag...)
		buf = append(buf, ':')
		buf = appendStringifyValue(buf, r.Value)
		buf = append(buf, ':')
		buf = appendJSUint(buf, r.Timestamp.Millis)
		buf = append(buf, ':')
		buf = strconv.AppendUint(buf, uint64(r.Timestamp.Counter), 10)
		buf = append(buf, ':')
		buf = append(buf, r.Timestamp.NodeID...)
		if r.TTLMs != 0 {
			buf = append(buf, ":ttl="...)
			buf = appendJSUint(buf, r.TTLMs)
		}
	}
	return fnvBytes(fnvOffset, buf), true
}

// ItemHash returns the item hash of a stored record in the tree of its kind,
// with the client's formulas: LWWItemHash for an LWW record, ORItemHash for
// an OR-Map record. ok is false when the key has no leaf: an OR-Map record
// without live entries, or the legacy orTombstones shape.
func ItemHash(key string, rv *record.RecordValue) (hash uint32, ok bool) {
	switch rv.Kind {
	case record.KindLWW:
		return LWWItemHash(key, rv.LWW.Timestamp), true
	case record.KindORMap:
		return ORItemHash(key, rv.ORMap.Records)
	}
	return 0, false
}

// TopGunLeafHash is the leaf hash TopGun's server computes for a stored
// record (merkle_leaf_hash, reference §1.4), for tools that compare with a
// TopGun server. The trees of this package use the client's formulas
// instead (LWWItemHash, ORItemHash), which agree with it for LWW only:
//
//   - LWW: FNV1a("{key}:{millis}:{counter}:{nodeId}") (millis printed exactly);
//   - OR-Map: FNV1a("key:{key}|{T}#{D}"), T the record tags and D the
//     tombstones, each sorted byte-wise and joined with "|";
//   - orTombstones: no leaf (ok false).
func TopGunLeafHash(key string, rv *record.RecordValue) (hash uint32, ok bool) {
	switch rv.Kind {
	case record.KindLWW:
		ts := rv.LWW.Timestamp
		return FNV1a(key + ":" + strconv.FormatUint(ts.Millis, 10) + ":" +
			strconv.FormatUint(uint64(ts.Counter), 10) + ":" + ts.NodeID), true
	case record.KindORMap:
		tags := make([]string, len(rv.ORMap.Records))
		for i := range rv.ORMap.Records {
			tags[i] = rv.ORMap.Records[i].Tag
		}
		tombs := append([]string(nil), rv.ORMap.Tombstones...)
		sort.Strings(tags)
		sort.Strings(tombs)
		return FNV1a("key:" + key + "|" + strings.Join(tags, "|") + "#" + strings.Join(tombs, "|")), true
	}
	return 0, false
}
