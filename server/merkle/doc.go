// Package merkle is the server's Merkle index: one trie per map and CRDT
// kind, hashed exactly as TopGun's TypeScript client hashes its own, so that
// the root the server reports equals the root of a client holding the same
// records and an in-sync client learns it is in sync from the root alone.
//
// (TopGun's own server aggregates 271 per-partition tries, so its roots never
// equal the client's and every reconnect of a non-empty map drills down to
// the leaves. This index does not do that.)
//
// # Basics
//
//   - FNV1a hashes the UTF-16 code units of a string (a character above
//     U+FFFF is two units), like the client's hashString.
//   - Combine sums Mix (MurmurHash3 fmix32) of its inputs, wrapping; it is
//     order-independent and Combine() == 0.
//   - A key lives at Path(key), FNV1a(key) as 8 hex digits; the trie has
//     Depth 3, so leaves sit at 3-digit paths. A leaf hashes to Combine of its
//     keys' item hashes, an inner node to Combine of its children.
//
// Item hashes, the client's formulas:
//
//   - LWW: LWWItemHash = FNV1a("{key}:{millis}:{counter}:{nodeId}"). It
//     depends on the timestamp only. An LWW remove keeps a tombstone (a Null
//     value with the time of the remove) that stays in the trie, as the client
//     keeps and hashes its own tombstones.
//   - OR-Map: ORItemHash = FNV1a("key:{key}|{tag}:{value}:{millis}:{counter}:{nodeId}[:ttl=N]|…")
//     over the key's live records sorted by tag; a key without live records
//     has no leaf. Tombstones do not enter it.
//
// ItemHash picks the formula from a stored record.RecordValue. TopGunLeafHash
// is the different formula of TopGun's server (reference §1.4), for tools.
//
// Tree is the trie. It is updated incrementally (a few additions per level),
// answers Root, Buckets (the children of a node) and LeafKeys (the keys of a
// leaf) as the client's getRootHash, getBuckets and getKeysInBucket do, and
// keeps about 24 bytes per key plus the key string, which it shares with the
// caller.
//
// # Where the OR-Map hash can differ from the client's
//
// The client hashes the JavaScript value it holds, as String(v) for a
// primitive and as JSON.stringify(v, Object.keys(v).sort()) for an object.
// This package reproduces that for a record.Value as the client holds it after
// decoding the wire form in a browser, including the quirks of a replacer
// array (it filters the properties of nested objects too, keeping only the
// top-level keys, in their order), JavaScript number formatting (shortest
// round-trip digits, exponent form outside 1e-7..1e21, "NaN", "Infinity",
// NaN and infinities as null inside JSON) and JSON string escaping. It is
// checked against node on hundreds of random values (testdata/js_vectors.json,
// regenerated with go test -update-js). It still differs, and the key then
// drills down to its leaf on every sync, in these cases:
//
//   - The client holds a value that differs from what the server sends back:
//     e.g. a Date or undefined inside an object it wrote itself, or a record
//     it received with ttlMs null (hashed as ":ttl=null"): send OR records
//     without a ttlMs field when they have none.
//   - Bytes under Node.js, where msgpackr yields a Buffer (JSON.stringify
//     calls its toJSON); the browser's Uint8Array is what is matched. Bytes
//     nested under a top-level key named "byteOffset" or "buffer" (typed-array
//     properties whose value depends on the client's decode buffer).
//   - A map key "__proto__", which a JavaScript object cannot hold as data.
//   - Integers beyond ±2^53 when the client's msgpack decoder keeps them as
//     BigInt instead of converting them to numbers.
//   - TTLs: the client appends ":ttl=N" when its record has a ttlMs; the
//     server must keep the entry's record.ORMapEntry.TTLMs to match.
//
// Newer revisions of the TypeScript client than the one this package follows
// (TopGun 2d5b1dd) hash an OR-Map key from its tags and the tombstones
// attributed to the key instead, the server's §1.4 formula; switching is a
// matter of the item hash given to Tree.Update.
//
// # Caveats
//
//   - Tree drops nodes emptied by removals, where the client keeps them with
//     hash 0. Hashes are identical; Buckets omits those children, which is
//     the answer that makes an OR-Map client push keys the server lacks (see
//     Tree.Buckets).
//   - LeafKeys returns keys sorted; the client lists them in insertion order.
//   - A Tree is not safe for concurrent use.
package merkle
