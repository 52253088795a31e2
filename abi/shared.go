package abi

import "context"

// Optional interfaces of a backend that several processes share
// (CapShared). A server keeps an index of what storage holds and merges
// writes against what it reads; with other processes writing the same
// records it needs two more things, which such a backend offers through
// these interfaces. The built-in postgres backend implements both; the
// wasm ABI has neither (a plugin declaring CapShared gets a warning).

// Watcher reports the commits of other processes.
type Watcher interface {
	// Watch starts listening and returns once it listens, or with the error
	// that kept it from starting. From then until ctx is done or the
	// backend closes, fn is called, from one goroutine at a time, for the
	// records every commit of another process wrote or deleted (primary
	// records only). Commits that could not be reported (the listener lost
	// its connection) are reported as a Changed with All set once it
	// listens again.
	Watch(ctx context.Context, fn func(Changed)) error
}

// Changed names records another process changed.
type Changed struct {
	// Map is the map, "" with All.
	Map string
	// Keys are the changed keys; nil when any record of Map may have
	// changed.
	Keys []string
	// All: any record of any map may have changed.
	All bool
}

// CheckedApplier applies a batch only if storage still holds what the
// caller merged against.
type CheckedApplier interface {
	// ApplyChecked is Apply, but first checks, atomically with the batch,
	// that every record named in expect holds exactly the given value
	// (Present false: the record is absent). When one does not, nothing
	// is applied and the error has CodeConflict: another process changed
	// it since the caller read it, and the caller merges again.
	ApplyChecked(ctx context.Context, b *Batch, expect []Expect) error
}

// Expect is what a primary record held when the caller read it.
type Expect struct {
	Map, Key string
	Present  bool
	Value    []byte
}
