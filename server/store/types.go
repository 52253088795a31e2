package store

import (
	"fmt"

	"github.com/topgun-go/topgun/server/record"
)

// OpKind is the kind of a client operation.
type OpKind uint8

// Client operation kinds, as TopGun's CLIENT_OP distinguishes them.
const (
	OpPut      OpKind = iota + 1 // LWW put
	OpRemove                     // LWW remove: keeps a tombstone
	OpORAdd                      // OR-Map add of one tagged entry
	OpORRemove                   // OR-Map remove of one tag (or of Tags)
)

func (k OpKind) String() string {
	switch k {
	case OpPut:
		return "PUT"
	case OpRemove:
		return "REMOVE"
	case OpORAdd:
		return "OR_ADD"
	case OpORRemove:
		return "OR_REMOVE"
	}
	return fmt.Sprintf("OpKind(%d)", uint8(k))
}

// Op is one client operation, decoded from the wire.
type Op struct {
	Map  string
	Key  string
	Kind OpKind
	// Value is the value of a put or OR add.
	Value record.Value
	// Timestamp is the client's HLC stamp. It is kept as the record's
	// timestamp (so a re-sent op is an exact no-op); zero means the server
	// stamps the op itself.
	Timestamp record.Timestamp
	// TTLMs is the time to live of a put or OR add, 0 for none.
	TTLMs uint64
	// Tag is the OR tag of an OR add (the client's) or of an OR remove.
	Tag string
	// Tags, when not empty, are the tags of an OR remove instead of Tag:
	// the tombstones of one ORMAP_PUSH_DIFF entry, merged as one op (one
	// copy, one encoding of the record), not one op per tag, which made
	// a push of n tombstones cost n² in time and memory.
	Tags []string
}

// Result is the outcome of one op of an Apply call.
type Result struct {
	// Changed is false when the op was valid but changed nothing (an older
	// LWW write, a re-sent op, a remove of a missing tag).
	Changed bool
	// Err is set when the op was rejected; the rest of the call still
	// applies. It is a *RejectError.
	Err error
}

// RejectError says why one op was not applied.
type RejectError struct {
	Op     int // index in the Apply call
	Reason string
	// Err, when set, is the refusal as an *abi.Error, for errors.Is (an
	// op refused at the index's bound: abi.ErrResourceExhausted).
	Err error
}

func (e *RejectError) Error() string { return "store: op rejected: " + e.Reason }

func (e *RejectError) Unwrap() error { return e.Err }

// ChangeKind is the kind of a committed change.
type ChangeKind uint8

// Change kinds published on the change feed.
const (
	ChangePut      ChangeKind = iota + 1 // LWW value written
	ChangeRemove                         // LWW tombstone written by a client remove
	ChangeORAdd                          // OR entry added
	ChangeORRemove                       // OR tag removed
	ChangeExpired                        // TTL passed: LWW record replaced by a tombstone, or OR entries dropped
)

// Change is one key's committed change.
type Change struct {
	Map  string
	Key  string
	Kind ChangeKind
	// Record is the key's whole state after the change; for an OR add or
	// remove, after all the ops of its Apply call on the key.
	Record record.RecordValue
	// ExpirationTime is the record's absolute expiry (ms), 0 for none.
	ExpirationTime int64
	// Entry is the OR entry added (ChangeORAdd).
	Entry record.ORMapEntry
	// Tag is the OR tag removed (ChangeORRemove) or added (ChangeORAdd).
	Tag string
	// Tags are the tags of the OR entries dropped by expiry (ChangeExpired)
	// or, for a ChangeORRemove whose Tag is "", the tags one op removed
	// (an ORMAP_PUSH_DIFF entry's new tombstones: one change for them all,
	// as a change per tag cost hundreds of bytes for each of a push's up
	// to a million tags).
	Tags []string
	// TTLMs of an LWW put, as the client gave it.
	TTLMs uint64
	// Origin is the origin passed to Apply (0 for the server's own changes),
	// so the protocol layer can skip echoing a change to its writer.
	Origin uint64
}

// Commit is the set of changes of one durable backend batch, published in
// commit order.
type Commit struct {
	Seq     uint64
	Changes []Change
	// PruneBefore is set when tombstones older than it were removed from
	// storage and the Merkle index; clients should prune theirs (GC_PRUNE).
	PruneBefore *record.Timestamp
}

// Entry is one record as served to readers.
type Entry struct {
	Key    string
	Record record.RecordValue
	// ExpirationTime is absolute ms, 0 for none.
	ExpirationTime int64
	// Size is the bytes of the key and encoded record as stored, set by
	// Scan and Since, which read from storage, for callers that bound what
	// they hold.
	Size int
}

// TTLMs returns the time to live to send to clients for an LWW record:
// the expiration time relative to the record's timestamp, 0 for none.
func (e *Entry) TTLMs() uint64 {
	if e.ExpirationTime <= 0 || e.Record.Kind != record.KindLWW {
		return 0
	}
	ms := uint64(e.ExpirationTime)
	if ms <= e.Record.LWW.Timestamp.Millis {
		return 1
	}
	return ms - e.Record.LWW.Timestamp.Millis
}

// Kind selects the LWW or the OR-Map Merkle index of a map.
type Kind uint8

// Merkle index kinds.
const (
	KindLWW Kind = iota
	KindOR
)
