// Package abi is the storage contract of the server: the Backend interface
// every backend implements, its records and batches, capabilities, limits,
// the error codes that survive every boundary, and the ABI version.
//
// # Records
//
// A record is keyed by (map name, key, backup). Its value is opaque bytes;
// the server stores TopGun's encoded RecordValue there. Each record carries
// ExpirationTime (absolute Unix ms, 0 = never), CreatedAt (kept from the
// first insert) and UpdatedAt (the Now of the last batch that put it).
//
// Map names and keys are arbitrary UTF-8 strings without NUL bytes
// ("todo-items", "a/b", "ключ", "with space:and colon"); map names are
// non-empty. Sizes are bounded by MaxMapNameBytes, MaxKeyBytes,
// MaxValueBytes, MaxBatchOps and MaxGetKeys; every backend rejects larger
// input with CodeInvalidArgument before storing anything.
//
// # Errors
//
// Every error a backend returns is an *Error (or wraps one) with a Code.
// Test for a kind with errors.Is(err, abi.ErrNotFound) and friends; this
// works for native backends and wasm plugins alike because only the code and
// the message need to cross. Native causes are kept for errors.As.
//
// # Versions and capabilities
//
// VersionMajor changes only for incompatible changes; a plugin built for
// another major version is refused at load. Optional behaviour is declared
// through Capability bits in Describe, never discovered by type assertion.
package abi
