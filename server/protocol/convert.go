package protocol

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/server/record"
	"github.com/topgun-go/topgun/server/store"
	"github.com/topgun-go/topgun/server/wire"
)

// Conversions between the wire messages and the store's types.

func tsToWire(t record.Timestamp) wire.Timestamp {
	return wire.Timestamp{Millis: t.Millis, Counter: t.Counter, NodeID: t.NodeID}
}

func tsFromWire(t wire.Timestamp) record.Timestamp {
	return record.Timestamp{Millis: t.Millis, Counter: t.Counter, NodeID: t.NodeID}
}

func optTTL(ms uint64) *uint64 {
	if ms == 0 {
		return nil
	}
	return &ms
}

func ttlOf(p *uint64) uint64 {
	if p == nil {
		return 0
	}
	return *p
}

// lwwToWire is an LWW record as clients see it: the value (nil for a
// tombstone), the timestamp and ttlMs (nil for none).
func lwwToWire(rv *record.RecordValue, ttl uint64) wire.LWWRecord {
	return wire.LWWRecord{Value: rv.LWW.Value.ToWire(), Timestamp: tsToWire(rv.LWW.Timestamp), TTLMs: optTTL(ttl)}
}

func orEntryToWire(e *record.ORMapEntry) wire.ORMapRecord {
	return wire.ORMapRecord{Value: e.Value.ToWire(), Timestamp: tsToWire(e.Timestamp), Tag: e.Tag, TTLMs: optTTL(e.TTLMs)}
}

// orStateToWire is the sync form of one OR-Map key: every entry (expired
// ones too, with their ttlMs, so a client hashes what it holds) and every
// tombstone. Both lists are always present. Messages carrying OR records
// are encoded through wire.OmitAbsentORTTL: TopGun's client hashes a
// record received with ttlMs nil differently from one without ttlMs.
func orStateToWire(key string, m *record.ORMap) wire.ORMapEntry {
	out := wire.ORMapEntry{Key: key, Records: make([]wire.ORMapRecord, 0, len(m.Records)), Tombstones: m.Tombstones}
	if out.Tombstones == nil {
		out.Tombstones = []string{}
	}
	for i := range m.Records {
		out.Records = append(out.Records, orEntryToWire(&m.Records[i]))
	}
	return out
}

// reservedMap reports map names clients may not read or write: the
// server's own maps (device credentials and the like). Case does not
// matter: a plugin may store names without it.
func reservedMap(name string) bool {
	return hasPrefixFold(name, "_topgun_") || hasPrefixFold(name, "__topgun") || hasPrefixFold(name, "$sys/")
}

// hasPrefixFold reports whether s starts with prefix under Unicode case
// folding, rune by rune: a rune folding onto an ASCII letter (ſ onto s)
// is longer than the letter, so a prefix of prefix's bytes would miss it.
func hasPrefixFold(s, prefix string) bool {
	for _, p := range prefix {
		_, n := utf8.DecodeRuneInString(s)
		if n == 0 || !strings.EqualFold(s[:n], string(p)) {
			return false
		}
		s = s[n:]
	}
	return true
}

// readRefusal says why a client may not read the map name: 403 for a map
// of the server's own, 400 for a name no map can have (storage would
// refuse the read, which answers "retry later", retried for good); code 0
// when it may.
func readRefusal(name string) (code uint32, err error) {
	if reservedMap(name) {
		return 403, errors.New("map " + quoteName(name) + " is reserved for the server")
	}
	if err := abi.ValidateMapName(name); err != nil {
		return 400, err
	}
	return 0, nil
}

// clientOp turns one client op into a store op, following TopGun's rules
// (wire.ClientOp.Kind). skip is true for a PUT without a record, which
// TopGun acknowledges without storing anything.
func clientOp(op *wire.ClientOp) (sop store.Op, skip bool, err error) {
	if reservedMap(op.MapName) {
		return sop, false, fmt.Errorf("map %q is reserved for the server", op.MapName)
	}
	sop.Map, sop.Key = op.MapName, op.Key
	switch op.Kind() {
	case wire.OpRemove:
		sop.Kind = store.OpRemove
		if op.Record != nil {
			sop.Timestamp = tsFromWire(op.Record.Timestamp)
		}
	case wire.OpORAdd:
		r := op.ORRecord
		sop.Kind = store.OpORAdd
		sop.Value = record.FromWire(r.Value)
		sop.Timestamp = tsFromWire(r.Timestamp)
		sop.TTLMs = ttlOf(r.TTLMs)
		sop.Tag = r.Tag
	case wire.OpORRemove:
		sop.Kind = store.OpORRemove
		sop.Tag = *op.ORTag
	default:
		if op.Record == nil {
			return sop, true, nil
		}
		sop.Kind = store.OpPut
		sop.Value = record.FromWire(op.Record.Value)
		sop.Timestamp = tsFromWire(op.Record.Timestamp)
		sop.TTLMs = ttlOf(op.Record.TTLMs)
	}
	return sop, false, nil
}

// pushDiffOps turns an ORMAP_PUSH_DIFF into store ops: for each entry its
// tombstones (as one OR remove of them all) first, then its records (as OR
// adds keeping the client's tag and timestamp). TopGun's client sends the
// whole tombstone set of its map with every entry: one op per tombstone
// would count each against MaxBatchOps and copy and re-encode the record
// once per tombstone. The store then does what TopGun does:
// union the tombstones, drop tombstoned records, add the new ones.
func pushDiffOps(m *wire.ORMapPushDiff) ([]store.Op, error) {
	if reservedMap(m.MapName) {
		return nil, fmt.Errorf("map %q is reserved for the server", m.MapName)
	}
	n := 0
	for i := range m.Entries {
		n += 1 + len(m.Entries[i].Records)
	}
	ops := make([]store.Op, 0, n)
	for i := range m.Entries {
		en := &m.Entries[i]
		if len(en.Tombstones) > 0 {
			ops = append(ops, store.Op{Map: m.MapName, Key: en.Key, Kind: store.OpORRemove, Tags: en.Tombstones})
		}
		for j := range en.Records {
			r := &en.Records[j]
			ops = append(ops, store.Op{Map: m.MapName, Key: en.Key, Kind: store.OpORAdd,
				Value: record.FromWire(r.Value), Timestamp: tsFromWire(r.Timestamp), TTLMs: ttlOf(r.TTLMs), Tag: r.Tag})
		}
	}
	return ops, nil
}

// splitPush splits a push into pushes of whole entries, each of at most
// max ops as writeJob.size counts them (an entry over max alone).
func splitPush(m *wire.ORMapPushDiff, max int) []*wire.ORMapPushDiff {
	entryOps := func(en *wire.ORMapEntry) int { return len(en.Records) + min(len(en.Tombstones), 1) }
	total := 0
	for i := range m.Entries {
		total += entryOps(&m.Entries[i])
	}
	if total <= max {
		return []*wire.ORMapPushDiff{m}
	}
	var parts []*wire.ORMapPushDiff
	start, n := 0, 0
	for i := range m.Entries {
		k := entryOps(&m.Entries[i])
		if n > 0 && n+k > max {
			parts = append(parts, &wire.ORMapPushDiff{MapName: m.MapName, Entries: m.Entries[start:i]})
			start, n = i, 0
		}
		n += k
	}
	return append(parts, &wire.ORMapPushDiff{MapName: m.MapName, Entries: m.Entries[start:]})
}

// project keeps only the named top-level fields of a map value (QUERY_SUB
// fields); other values pass unchanged.
func project(v any, fields []string) any {
	if fields == nil {
		return v
	}
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	out := make(map[string]any, min(len(fields), len(m)))
	for _, f := range fields {
		if x, ok := m[f]; ok {
			out[f] = x
		}
	}
	return out
}
