// Package record is the record codec of the server: the values stored per
// record, byte-compatible with TopGun, and their conversion to and from the
// client protocol.
//
// # Basics
//
// The bytes stored per record (the redb value, the topgun_maps.value column)
// are TopGun's on-disk RecordValue encoding: rmp-serde's "named" msgpack of an
// externally tagged enum. A record is a one-entry map naming its kind,
//
//	{"lww": {"value": <Value>, "timestamp": {"millis": …, "counter": …, "nodeId": …}}}
//	{"orMap": {"records": [{"value": …, "tag": …, "timestamp": …}, …], "tombstones": [tag, …]}}
//	{"orTombstones": {"tags": [tag, …]}}            (legacy, read-only in TopGun)
//
// and the user value inside is TopGun's tagged Value: the bare string "Null",
// or a one-entry map {"Bool": b}, {"Int": i}, {"Float": f}, {"String": s},
// {"Bytes": [0..255, …]}, {"Array": [Value, …]}, {"Map": {key: Value, …}}.
//
// Encode appends exactly the bytes TopGun writes: structs as maps in field
// declaration order, integers in their most compact msgpack form, floats
// always as float64 (0xcb), Bytes as an array of small integers (not bin),
// Map keys sorted byte-wise, the OR-Map tombstones omitted when empty. The
// golden tests reproduce the hex of TopGun's own fixture corpus byte for
// byte, so a topgun_maps row written by TopGun's server is readable here and
// a row written here is readable by TopGun.
//
// Decode accepts what TopGun's decoder accepts: fields in any order, unknown
// fields skipped, structs written as positional arrays, variant indexes in
// place of names, a whole float64 (as the TypeScript client sends numbers
// above 2^32) for the millis and counter of a Timestamp (fractions,
// negatives and out-of-range values are refused), the legacy orTombstones
// shape, and a legacy bare Value without the RecordValue wrapper (older
// TopGun servers wrote those to their WAL; it decodes as an LWW record with a
// zero timestamp, as TopGun replays it). It refuses what TopGun refuses
// (invalid UTF-8, duplicate fields, missing fields, integers out of range)
// and, unlike TopGun, bytes left over after the value. Decode never panics,
// bounds every preallocation by the input size and refuses nesting deeper
// than MaxStoredDepth.
//
// Both directions use the streaming Encoder and Decoder of
// github.com/vmihailenco/msgpack/v5, never reflection.
//
// # Values
//
// Value is an immutable tagged union whose zero value is Null. Build values
// with NullValue, BoolValue, IntValue, FloatValue, StringValue, BytesValue,
// ArrayValue and MapValue (which sorts its fields and keeps the last of
// duplicate keys, as TopGun's BTreeMap does).
//
// # Wire conversion
//
// The client protocol carries plain msgpack values. DecodeWire, UnmarshalWire
// and FromWire convert them to Values, EncodeWire, AppendWire and ToWire back,
// following TopGun's server. The conversion is lossy in exactly these places:
//
//   - an unsigned integer above math.MaxInt64 wraps to a negative Int;
//   - a string that is not valid UTF-8 becomes "";
//   - a non-string map key becomes its display string (42 → "42",
//     1.5 → "1.5", true → "true", nil → "nil"), and keys that collide keep
//     the last value;
//   - every msgpack extension (including the timestamp extension) becomes
//     Null;
//   - going back out, integers are written in their most compact form and
//     float32 comes back as float64.
//
// Value implements msgpack.CustomEncoder and CustomDecoder in its wire form,
// and Timestamp in the form shared by the wire and the disk, so both can be
// fields of protocol message structs.
//
// # Caveats
//
//   - An LWW remove keeps a tombstone: an LWW record whose Value is Null,
//     stamped with the time of the remove. TopGun's server deletes the row
//     instead, and reads such a tombstone as a record holding null.
//   - ORMapEntry.TTLMs is an extension: TopGun drops the client's ttlMs. It is
//     stored as an extra "ttlMs" field of the entry only when non-zero;
//     TopGun's decoder ignores unknown fields, so such rows stay readable by
//     TopGun (which then loses the TTL if it rewrites the row).
//   - Timestamps order node ids as the TypeScript client's localeCompare
//     (Unicode root collation: "a" < "B", "A" > "a"), not byte-wise as
//     TopGun's Rust core does: the server keeps client timestamps, so its
//     LWW tie-break must be the clients' (CompareNodeID). Only an id's
//     first 256 bytes are collated (then ids compare byte-wise), which
//     bounds the cost of a hostile id of megabytes. The collation tables
//     are Unicode 6.2's (golang.org/x/text): ids holding characters
//     assigned since, or a few whose root order changed (U+FFFD,
//     ideographs beyond the BMP against those within it), can order
//     differently from a current ICU (node 20 with ICU 78 was compared);
//     ASCII ids order as there.
package record
