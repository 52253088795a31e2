package record

import "strconv"

// Kind is the variant of a RecordValue.
type Kind uint8

// The RecordValue variants. The order is TopGun's variant order, which is also
// the variant index rmp-serde accepts in place of the variant name.
const (
	// KindLWW is a last-writer-wins record ("lww").
	KindLWW Kind = iota
	// KindORMap holds every live entry of one OR-Map key plus the key's
	// observed-remove tags ("orMap").
	KindORMap
	// KindORTombstones is TopGun's legacy read-only shape holding only
	// tombstone tags ("orTombstones"). It decodes into RecordValue.ORMap with
	// no records; Normalize turns it into KindORMap.
	KindORTombstones
)

var kindNames = [...]string{KindLWW: "lww", KindORMap: "orMap", KindORTombstones: "orTombstones"}

// String returns TopGun's tag for the kind ("lww", "orMap", "orTombstones").
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// LWW is a last-writer-wins record. A removed key keeps a tombstone: Value is
// Null and Timestamp is the time of the remove (TopGun itself deletes the
// row on remove; it reads such a tombstone as a record whose value is null).
type LWW struct {
	Value     Value
	Timestamp Timestamp
}

// ORMapEntry is one live entry of an OR-Map key.
type ORMapEntry struct {
	Value     Value
	Tag       string
	Timestamp Timestamp
	// TTLMs is the entry's time to live in milliseconds as the client sent
	// it, 0 for none. TopGun does not persist it; it is stored as an extra
	// "ttlMs" field only when non-zero, which TopGun's decoder ignores, so
	// rows stay readable both ways. The TypeScript client hashes it into its
	// OR-Map Merkle leaf, which is why it is kept.
	TTLMs uint64
}

// ORMap is the state of one OR-Map key: its live entries in insertion order
// and its observed-remove tags.
type ORMap struct {
	Records    []ORMapEntry
	Tombstones []string
}

// RecordValue is the value stored per record: TopGun's RecordValue enum.
// Exactly one of LWW and ORMap is meaningful, as Kind says:
//
//   - KindLWW: LWW.
//   - KindORMap: ORMap.
//   - KindORTombstones: ORMap, with Records empty and the legacy tags in
//     Tombstones. A key in this shape has no Merkle leaf on TopGun's server.
type RecordValue struct {
	Kind  Kind
	LWW   LWW
	ORMap ORMap

	// LegacyBare is set by Decode when the bytes were a bare Value written by
	// an older TopGun server (no RecordValue wrapper, no timestamp). Kind is
	// then KindLWW with a zero Timestamp, which is how TopGun replays such a
	// value. Encode writes a value with LegacyBare set back in the bare form,
	// so legacy bytes re-encode identically; Normalize clears it.
	LegacyBare bool
}

// NewLWW returns an LWW RecordValue.
func NewLWW(v Value, ts Timestamp) RecordValue {
	return RecordValue{Kind: KindLWW, LWW: LWW{Value: v, Timestamp: ts}}
}

// NewORMap returns an OR-Map RecordValue. It takes ownership of the slices.
func NewORMap(records []ORMapEntry, tombstones []string) RecordValue {
	return RecordValue{Kind: KindORMap, ORMap: ORMap{Records: records, Tombstones: tombstones}}
}

// Normalize turns the legacy shapes into the current ones, as TopGun does the
// first time it touches a key: KindORTombstones becomes KindORMap with the
// same tombstones, and LegacyBare is cleared (the value stays an LWW record
// with its zero timestamp). It reports whether anything changed, in which
// case the record should be written back.
func (rv *RecordValue) Normalize() bool {
	changed := false
	if rv.Kind == KindORTombstones {
		rv.Kind = KindORMap
		rv.ORMap.Records = nil
		changed = true
	}
	if rv.LegacyBare {
		rv.LegacyBare = false
		changed = true
	}
	return changed
}

// Equal reports whether rv and other hold the same record, field by field
// (values compared with Value.Equal, slices in order).
func (rv *RecordValue) Equal(other *RecordValue) bool {
	if rv.Kind != other.Kind || rv.LegacyBare != other.LegacyBare {
		return false
	}
	switch rv.Kind {
	case KindLWW:
		return rv.LWW.Timestamp == other.LWW.Timestamp && rv.LWW.Value.Equal(other.LWW.Value)
	default:
		a, b := &rv.ORMap, &other.ORMap
		if len(a.Records) != len(b.Records) || len(a.Tombstones) != len(b.Tombstones) {
			return false
		}
		for i := range a.Records {
			x, y := &a.Records[i], &b.Records[i]
			if x.Tag != y.Tag || x.Timestamp != y.Timestamp || x.TTLMs != y.TTLMs || !x.Value.Equal(y.Value) {
				return false
			}
		}
		for i := range a.Tombstones {
			if a.Tombstones[i] != b.Tombstones[i] {
				return false
			}
		}
		return true
	}
}
