// Package wire is TopGun's client protocol: the MsgPack messages a TopGun
// client and server exchange over WebSocket, and the bodies of HTTP
// POST /sync, as Go types with a decoder hardened for untrusted input.
//
// # Messages
//
// Decode reads one WebSocket binary frame (one MsgPack map with a string
// "type") into one of the concrete Message types; switch on them:
//
//	m, err := wire.Decode(frame)
//	switch m := m.(type) {
//	case *wire.ClientOpMessage: ...
//	case *wire.OpBatch: ...
//	}
//
// Encode writes a Message as TopGun's server does: "type" first, fields in
// TopGun's order, optional fields omitted exactly where TopGun omits them,
// integers in their most compact form. "Flat" messages (AUTH*, DEVICE_*,
// PING, PONG, SYNC_INIT, ORMAP_SYNC_INIT, CLIENT_APPLY_ACK, BATCH) carry
// their fields beside "type"; all others carry them in a "payload" map.
// Types lists the types Decode understands. A well-formed frame of any
// other type (topics, locks, counters, search, cluster, journal,
// resolvers, partition map, or something newer) is an *UnknownTypeError,
// which the server refuses; for a one-shot search or SQL query it carries
// the request's id, and NewRefusal builds the reply that refuses it.
// Entry-processor requests (ENTRY_PROCESS,
// ENTRY_PROCESS_BATCH) and their responses are decoded, so that a server
// can refuse them as TopGun's server does.
//
// BATCH envelopes carry several length-prefixed frames; Batch.Split and
// PackBatch unpack and build them. HTTP POST /sync bodies have no "type";
// use DecodeHTTPSyncRequest/EncodeHTTPSyncResponse (and the reverse pair for
// clients).
//
// # What TopGun's client really sends
//
// The TS client packs with msgpackr: integers above 2^32 (millis,
// lastSyncTimestamp, PING timestamps, ...) arrive as float64. Every integer
// field therefore accepts any MsgPack integer or a whole float, and rejects
// fractions, negatives and out-of-range values, like TopGun's serde_number.
// Field order does not matter and unknown fields are ignored.
//
// Absent and nil differ where TopGun makes them differ: in a ClientOp, a nil
// `record` means remove (RecordNil), an absent one means "nothing to store";
// see ClientOp.Kind for TopGun's full rule. Elsewhere nil and absent are the
// same and decode to the zero value; optional strings use "" for absent,
// optional numbers a nil pointer, optional lists a nil slice (an empty
// non-nil slice is written as []).
//
// # User values
//
// Record values, query results and predicate operands are arbitrary MsgPack
// decoded into this value model: nil, bool, int64 (uint64 only above
// MaxInt64), float64, string, []byte, []any and map[string]any. Non-string
// map keys become the strings TopGun's server makes of them (1 → "1",
// 0.5 → "0.5", [1, 2] → "[1, 2]"; record.DisplayKey).
// MsgPack extensions, including timestamps, decode to nil, as TopGun's
// server stores them as Null. Encode writes this model back unchanged, with
// map keys sorted as TopGun's server writes them; other Go values (structs,
// typed maps and slices) are written through reflection.
//
// The record values of a client's writes (the records of CLIENT_OP,
// OP_BATCH and POST /sync operations, and of ORMAP_PUSH_DIFF entries),
// which the server only stores, decode instead straight into the
// record.Value it stores (nil for Null), as record.FromWire would convert
// the value model, in half the memory or less. Encode writes a
// record.Value as its ToWire form.
//
// LWW and OR-Map records always carry ttlMs, written as nil when absent, as
// TopGun's server does.
//
// # Limits
//
// Decoding never panics, whatever the input. A frame is first walked once
// without allocating, checking that it is complete, that no container is
// nested deeper than Limits.MaxDepth (256, as TopGun) and that no length
// claims more elements or bytes than remain in the frame; only then is it
// decoded. Frames above Limits.MaxMessageBytes (2 MiB) are refused outright
// and a BATCH may hold at most Limits.MaxBatchItems (8192) items.
//
// A frame takes many times its size once decoded: a one-byte nil in the
// record value of a write is an 80-byte record.Value (and a 16-byte
// interface more elsewhere), so 2 MiB of nils would take 160 MiB. While it
// decodes, Decode therefore counts what the message will take in memory
// and refuses it (ErrDecodedTooLarge, a kind of ErrTooLarge) as soon as
// the count passes Limits.MaxDecodedBytes, which defaults to
// DecodedBytesPerMessageByte (32) × MaxMessageBytes: 64 MiB. A value in
// the record of a write counts what its record.Value takes as Go's
// allocator takes it: 80 bytes, an array's elements and a map's entries
// (record.Fields, 96 bytes each) in one allocation rounded up to Go's size
// class or whole 8 KiB pages, a string, binary or map key its length so
// rounded (one under 16 bytes the share of a 16-byte block it takes: 16
// for 9 bytes; a map key displayed from a container or extension at
// least 16).
// Any other user value counts 96 bytes (its interface and the
// record.Value it may become), plus 16 and its length rounded as above
// for a string (24 and twice that for binary), 8 for a boxed number, 24
// for an array (whose slices of interfaces and of record values are each
// rounded as above), and for a map 48, 40 per slot of its hash table (8
// up to 8 entries, else room for them at 7/8 full rounded up to a power
// of two: 128 for 57 entries) and per entry 16 (the key of its
// record.Field) and its key's length so rounded;
// message structs (ClientOp, OR-Map records and entries, a query's
// predicate nodes, sort fields and aggregations, and in what servers send
// the results of a QUERY_RESP, the events of a SERVER_BATCH_EVENT and
// their records, the records of a SYNC_RESP_LEAF, the results of an
// OP_ACK) count their size, a Merkle bucket map its table as above and
// its keys their length so rounded, and strings their length. An array or map is counted whole when its
// header is read, before it is allocated (an array is then allocated at
// its final size), so a refused message has allocated no more than the
// limit, besides the error naming the refused field and the raw bytes of
// one non-string map key (read before its display string, which can be 35
// times them: a float64 1e308 displays as 309 digits, is measured and
// refused unmade). The count is what
// the decoded message and its record values really take, within about 3%
// for the record values of writes and for other values at most 3% more
// and 10% less (their maps and small objects are counted high).
// Ordinary writes count 1.4 to 6 times their size (1000 records of 1 KB
// values: 1.4×; thousands of small documents: 5.5×); a 2 MiB array of tiny
// objects ({"a": 1}, 44×: about 88 MiB in memory) goes over the default
// limit, as does any 2 MiB frame of one-byte values: two fifths of that
// fits. Limits.DecodeSize reports the count, by which a server holding
// decoded messages can bound them.
//
// Errors are *DecodeError values naming the message type and the path of
// the bad field; errors.Is(err, ErrMalformed / ErrTooLarge / ErrTooDeep /
// ErrUnknownType) tells them apart.
//
// # Queries
//
// Query is the typed form of a QUERY_SUB query: Where (equality, with
// {"$gt": 18}-style operator objects as an extension), a Predicate tree,
// Sort fields, Limit and Cursor. Query.Match, Predicate.Eval, Query.Compare
// and Query.Apply evaluate it the way TopGun's server does (see Match for
// the details and the deliberate differences). Regex patterns have the
// syntax and meaning of Rust's regex crate, as on TopGun (Unicode-aware \d
// \s \w, \u escapes, the u and x flags), translated for Go's RE2; \b stays
// an ASCII word boundary, and a pattern using the crate's word-start or
// word-end assertions (\< \> \b{start} ...) or its R flag matches nothing
// (see Match). Query.Compile compiles the Where clause's
// $like/$regex patterns and builds hash sets of its long $in/$nin lists
// once; call it before matching a query against many records. A
// predicate leaf whose pattern is a ValueRef reads it from each record: it
// keeps the last 32 it compiled, up to 64 KiB (Query.CompileLimit counts
// that much for it), and a regex so read that would compile to more than
// MaxRefPatternSize matches nothing (see Match). Query.Cost estimates the
// work of matching one record, which servers bound by MaxQueryCost. Aggregation
// queries (GroupBy, Aggregations) are decoded and re-encoded but not evaluated;
// Query.IsAggregate reports them. Cursor pagination is carried, not
// evaluated.
package wire
