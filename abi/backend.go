package abi

import (
	"context"
	"slices"
)

// ABI version of the storage contract. A change of VersionMajor breaks
// plugins; VersionMinor adds operations or fields that old plugins may ignore.
const (
	VersionMajor = 1
	VersionMinor = 1
)

// Backend is the storage contract every backend implements: the built-ins
// (null, redb, postgres) natively and wasm plugins through the host.
//
// It is deliberately small and made of plain values so that it can cross
// the wasm boundary unchanged: no callbacks, no iterators, no optional
// interfaces. Optional features are declared in Description.Capabilities.
//
// All methods are safe for concurrent use. Every I/O method returns promptly
// with CodeCanceled or CodeDeadlineExceeded when ctx is done. After Close,
// every method returns an error with CodeUnavailable (argument and context
// errors may be reported first).
//
// Backends copy values in both directions: they never keep the caller's
// buffers, and callers may modify what they get back.
type Backend interface {
	// Describe returns the backend's name, ABI version and capabilities.
	// It does no I/O and is valid after Close.
	Describe() Description

	// Apply commits every mutation of b atomically and durably (when the
	// backend declares CapDurable): after Apply returns nil, all of them
	// survive a crash; when it returns an error, none of them is applied, and
	// readers never see part of a batch. Mutations apply in order: a Put of
	// an existing record keeps its CreatedAt and sets UpdatedAt to b.Now; a
	// Delete of a missing record is not an error; a Delete then a Put of the
	// same record in one batch re-creates it with CreatedAt = b.Now. A nil or
	// invalid batch is CodeInvalidArgument.
	//
	// A networked backend may lose its connection after sending the commit:
	// then it returns CodeUnavailable (or a context code) and the batch may
	// or may not have been applied. Callers that need to know re-read the
	// records; re-applying the same batch is always safe.
	Apply(ctx context.Context, b *Batch) error

	// Get returns the records of the given keys of one map, in the order of
	// keys, skipping keys that are absent. Duplicate keys give one record.
	Get(ctx context.Context, mapName string, backup bool, keys []string) ([]Record, error)

	// Scan returns the next page of one map (primary or backup records) in
	// byte order of keys, starting after req.Cursor (nil: from the start). The page holds at most req.Limit records and at most
	// req.MaxBytes bytes of keys and values, except that a single record
	// larger than MaxBytes is returned alone. Page.Cursor is nil on the page
	// that holds the last record (no trailing empty page); otherwise it
	// resumes after the page's last record. Paging visits every record
	// present for the whole scan exactly once. A cursor the backend did not
	// issue gives CodeInvalidArgument or a valid page of that map.
	Scan(ctx context.Context, req ScanRequest) (Page, error)

	// ListMaps returns the names of the maps that hold at least one
	// primary record, each once, sorted in byte order (as Go compares
	// strings; not UTF-16 order, which differs above U+FFFF).
	ListMaps(ctx context.Context) ([]string, error)

	// ListExpired returns min(limit, eligible) records (with metadata, without
	// values) whose ExpirationTime is non-zero and <= now, in ascending
	// ExpirationTime order (ties in any stable order). It includes backup
	// records. A limit <= 0 means DefaultScanLimit.
	ListExpired(ctx context.Context, now int64, limit int) ([]Record, error)

	// Close releases the backend. It is idempotent.
	Close() error
}

// Capability is a bit set of optional features a backend declares.
type Capability uint64

const (
	// CapDurable: an applied batch survives process crashes and restarts.
	CapDurable Capability = 1 << iota
	// CapShared: several processes may use the same storage at once.
	CapShared
	// CapAtomicBatch: Apply is all-or-nothing. Every built-in declares it;
	// the server refuses backends without it.
	CapAtomicBatch
	// CapExpiryIndex: ListExpired is served by an index, not a full scan.
	CapExpiryIndex
	// CapMultiInstance: a wasm plugin keeps all its state outside linear
	// memory (e.g. in its data directory) so the host may run several
	// instances of it at once.
	CapMultiInstance
)

var capNames = []struct {
	c    Capability
	name string
}{
	{CapDurable, "durable"},
	{CapShared, "shared"},
	{CapAtomicBatch, "atomic_batch"},
	{CapExpiryIndex, "expiry_index"},
	{CapMultiInstance, "multi_instance"},
}

// Has reports whether all capabilities in c2 are set in c.
func (c Capability) Has(c2 Capability) bool { return c&c2 == c2 }

// Names returns the names of the set capabilities, in a fixed order.
func (c Capability) Names() []string {
	var out []string
	for _, n := range capNames {
		if c.Has(n.c) {
			out = append(out, n.name)
		}
	}
	return out
}

// Description is what a backend says about itself.
type Description struct {
	Name         string
	ABIMajor     uint32
	ABIMinor     uint32
	Capabilities Capability
}

// Record is one stored record. Value is opaque to the backend (the server
// stores TopGun's encoded RecordValue there). Times are Unix milliseconds.
type Record struct {
	Map            string
	Key            string
	Backup         bool
	Value          []byte
	ExpirationTime int64 // absolute ms; 0 = never expires
	CreatedAt      int64 // set at first insert, kept on update
	UpdatedAt      int64 // set at every put
}

// Size is the number of bytes a record counts for in a scan's byte budget.
func (r *Record) Size() int { return len(r.Key) + len(r.Value) }

// OpKind is the kind of a mutation.
type OpKind uint8

const (
	OpPut    OpKind = 1
	OpDelete OpKind = 2
)

// Mutation is one put or delete of a batch.
type Mutation struct {
	Kind           OpKind
	Map            string
	Key            string
	Backup         bool
	Value          []byte // OpPut only; may be empty, never nil-vs-empty significant
	ExpirationTime int64  // OpPut only; 0 = never expires
}

// Batch is the unit of atomic, durable commit (and of group commit).
type Batch struct {
	// Now is the time (Unix ms) recorded as UpdatedAt, and as CreatedAt for
	// new records. It must be positive.
	Now       int64
	Mutations []Mutation
}

// Put appends a put to the batch.
func (b *Batch) Put(mapName, key string, backup bool, value []byte, expiration int64) {
	b.Mutations = append(b.Mutations, Mutation{Kind: OpPut, Map: mapName, Key: key, Backup: backup, Value: value, ExpirationTime: expiration})
}

// Delete appends a delete to the batch.
func (b *Batch) Delete(mapName, key string, backup bool) {
	b.Mutations = append(b.Mutations, Mutation{Kind: OpDelete, Map: mapName, Key: key, Backup: backup})
}

// ScanRequest asks for one page of a map.
type ScanRequest struct {
	Map      string
	Backup   bool
	Cursor   []byte // nil or empty: from the start; otherwise a Page.Cursor
	Limit    int    // maximum records; <= 0 means DefaultScanLimit
	MaxBytes int    // byte budget (keys + values); <= 0 means DefaultScanBytes
}

// Page is one page of a scan.
type Page struct {
	Records []Record
	Cursor  []byte // nil when the scan is complete
}

// Scan defaults.
const (
	DefaultScanLimit = 1000
	DefaultScanBytes = 8 << 20
)

// ScanLimit is the record limit a backend applies for a requested limit:
// DefaultScanLimit when it is <= 0.
func ScanLimit(limit int) int {
	if limit <= 0 {
		return DefaultScanLimit
	}
	return limit
}

// UnaskedKey returns the index of the first record of recs whose key is
// not one of keys, or -1: a get answered with another key's record is
// wrong whatever the count. Records in the order of keys, as Get returns
// them, cost one pass over keys and no allocation; others a set of keys,
// so that a long answer out of order is not compared with every key per
// record.
func UnaskedKey(keys []string, recs []Record) int {
	j := 0
	var asked map[string]struct{}
	for i := range recs {
		k := recs[i].Key
		if asked == nil {
			if n := slices.Index(keys[j:], k); n >= 0 {
				j += n + 1
				continue
			}
			asked = make(map[string]struct{}, len(keys))
			for _, k := range keys {
				asked[k] = struct{}{}
			}
		}
		if _, ok := asked[k]; !ok {
			return i
		}
	}
	return -1
}

// GetOne returns one record, or an error with CodeNotFound when it is absent.
func GetOne(ctx context.Context, b Backend, mapName, key string, backup bool) (Record, error) {
	recs, err := b.Get(ctx, mapName, backup, []string{key})
	if err != nil {
		return Record{}, err
	}
	if len(recs) == 0 {
		return Record{}, Errorf(CodeNotFound, "key %q not found in map %q", key, mapName)
	}
	return recs[0], nil
}
