// Package client is a Go client for TopGun-compatible servers: it speaks
// TopGun's WebSocket protocol (package server/wire) the way TopGun's
// TypeScript client does, and is what the server's end-to-end tests drive.
//
// # Connecting
//
// Dial connects and completes the handshake. With Options.Token the client
// sends AUTH at once and waits for AUTH_ACK (AUTH_FAIL is an *AuthError);
// without a token it sends DEVICE_HELLO. A server with auth off never sends
// AUTH_REQUIRED, so silence for Options.NoAuthGrace (or a DEVICE_ACK) means
// "no auth" and the client proceeds; a server that does send AUTH_REQUIRED
// to a client without a token fails Dial with ErrAuthRequired.
//
// # Writes
//
// Put, Remove and Batch stamp each op with the client's hybrid logical
// clock (TopGun's rules) and wait for OP_ACK. A single op goes as
// CLIENT_OP, several as OP_BATCH (TopGun acks a batch with its last op's
// id; an ack naming an earlier op of it, which this project's server sends
// for a batch over its TOPGUN_MAX_BATCH_OPS, acknowledges that prefix and
// the rest is sent again). Writes made while disconnected are queued and
// sent, with every other unacknowledged write, as OP_BATCH right after the
// next handshake, as the TS client does; delivery is therefore
// at-least-once. A write whose
// caller's context ends stays queued the same way. TopGun stamps each write
// with its own clock when it arrives, so the last write to arrive wins: once
// a write to a key is acknowledged, older unacknowledged writes to that key
// are no longer re-sent (their callers still wait for their own acks, and
// get ErrSuperseded once those cannot come). This project's server keeps
// the client's timestamp instead (one further ahead of its clock than
// TOPGUN_MAX_DRIFT_MS is refused with OP_REJECTED) and the record with the
// greatest wins: a write stamped before the key's record (made by a client
// whose clock is behind the writer's and which has seen none of its
// timestamps) is acknowledged and changes nothing. Timestamps a client
// receives (map events of its subscriptions, SyncMap) advance its clock,
// so its later writes win over the records it has seen, except one further
// ahead of the server's clock than 60 s (the server's default
// TOPGUN_MAX_DRIFT_MS; the server's clock as its last PONG or
// SYNC_RESP_ROOT gave it, the client's own before the first, so a client
// only subscribed judges by its own until its first heartbeat): the
// client's clock ignores it, as the server's does, since the server would
// refuse writes stamped after it.
// With a larger TOPGUN_MAX_DRIFT_MS, a write made after reading a record
// stamped past those 60 s can lose to it (acknowledged, changing nothing).
// TopGun's TS client follows every timestamp, only warning past 60 s (its
// server stamps writes itself, so there no client's clock decides).
// TopGun's server sends no reply at all for a failed CLIENT_OP and an
// uncorrelated ERROR for a failed OP_BATCH, so a failed write surfaces as
// the caller's context expiring (and through Options.OnServerError).
// This project's server answers a write it could not store with an ERROR
// 500 naming the write's lastId and keeps the connection: the client
// sends that write again on it after Options.BackoffInitial, doubling up
// to BackoffMax (±20 % jitter) while the server keeps failing (the writes that fail
// meanwhile wait with it; once the server acknowledges a write they go at
// once), until it is stored. A
// write that could never be sent (alone over Options.Limits: the frame
// limit, the memory the server lets a message take once decoded, or its
// depth, which counts the 5 levels above a value in an OP_BATCH; or with a
// map name, key or OR tag that is not valid UTF-8) fails at once instead.
// A write the server refuses with OP_REJECTED (this project's server
// does, and still covers it with the batch's OP_ACK) fails with a
// *RejectedError (errors.Is ErrRejected) and is not re-sent. That is also
// what a write gets whose storage refuses it for what it holds (the
// backend's invalid argument, not found or unsupported: say a plugin's
// stricter rule for a map name), with the backend's message in Reason;
// other failures of storage are ERROR 500, and the write is sent again.
//
// Every call gives up when its context ends, also while waiting to send or
// during a blocked frame write. That frame still goes out whole, after
// the call returned: only Options.WriteTimeout (or Close) cuts a write
// short, and a write cut short drops the connection, which is then
// re-established.
//
// # Values
//
// A value is sent as MsgPack: Go's integers, floats, strings, []byte,
// slices, arrays, maps and pointers directly, structs and other types
// through the msgpack library (a struct as a map of its fields). A part
// the value holds twice (two pointers to one struct) is written twice, so
// a value sharing its parts over many levels can be far over the frame
// limit: such a write fails at once (errors.Is wire.ErrTooLarge). The
// server keeps what TopGun's keeps of it, so another client reads back
// every integer as an int64 (a uint64 above math.MaxInt64 wraps to a
// negative number), a float32 as a float64, a map's keys that are not
// strings as their text, a string (or map key) that is not valid UTF-8 as
// "" (send such bytes as []byte), and a MsgPack extension (a time.Time,
// say) as nil. On this project's server an LWW value that is nil, or that
// reads back as nil, deletes the key as Remove does: store a time as a
// number or a string.
//
// # OR-Maps
//
// ORAdd adds a value to a key of an OR-Map under a new tag (TopGun's
// "millis:counter:nodeId" form, from the client's clock) and returns the
// tag; adds of several clients to one key are all kept. ORRemove removes
// one entry by its tag, and remove wins over an add of that tag arriving
// later. Both are queued and re-sent like LWW writes, and never superseded
// (a re-sent add or remove changes nothing). Batch takes them too (Op.OR).
// That holds on this project's server, which keeps the client's tags:
// TopGun's server tags each add from its own clock instead.
// ORGet reads keys of an OR-Map with ORMAP_DIFF_REQUEST: their live
// entries and tombstones. Live queries return LWW records only, as
// TopGun's do; a subscription still carries the map's OR_ADD and
// OR_REMOVE events.
//
// # Subscriptions
//
// Subscribe sends QUERY_SUB and returns the initial results; the
// Subscription's Updates channel then carries QUERY_UPDATE changes and the
// map's SERVER_EVENTs. A subscriber that does not drain its channel is
// closed with ErrSlowConsumer instead of stalling the connection; if that
// happens before the initial results, Subscribe returns ErrSlowConsumer.
// One whose results, change or map event came in a frame over
// Options.MaxReadBytes, or over Options.MaxReadDecodedBytes once decoded,
// is closed with ErrTooLarge: it would have missed it. A
// query the server could not decode (see Subscribe) fails at once: it
// would get an ERROR naming no query, never its results. As with TopGun,
// the server sends a client no update or event for its own writes: a client
// that writes to a map it also subscribes to applies its own writes to its
// view (in a limited query, one that pushes a record out of the window
// comes with no LEAVE for it).
//
// # Merkle sync
//
// SyncMap performs the LWW Merkle drill-down (SYNC_INIT, SYNC_RESP_ROOT,
// MERKLE_REQ_BUCKET, SYNC_RESP_BUCKETS, SYNC_RESP_LEAF) hashing the local
// records with package server/merkle, exactly as the TS client does (FNV-1a
// over UTF-16 code units, depth 3, fmix32 sums), and reports the records
// received and the number of messages exchanged. Replies are matched to
// the requests: each path is requested at most once, and replies the call
// did not ask for (including late replies to an earlier, abandoned SyncMap)
// are ignored, so a sync sends at most 4,369 bucket requests. An ERROR
// answering a bucket request (a leaf the server could not read) fails the
// sync with a *SyncError. The server's
// GC_PRUNE goes to Options.OnGCPrune: the caller prunes the tombstones it
// keeps for SyncMap as the server did. This project's server also sends
// one before the root of a connection's first sync (for clients offline
// when it collected); SyncMap then compares without those tombstones.
//
// # What the server sends
//
// The server's answers are not held to the limits on what it accepts (a
// QUERY_RESP carries every result of a query), so the client bounds them
// itself: a frame over Options.MaxReadBytes (256 MiB) is read to its end
// and ignored, and one that would take more than
// Options.MaxReadDecodedBytes once decoded (8 × MaxReadBytes: 2 GiB) is
// refused as package wire counts it while decoding, before more is
// allocated, so a hostile server cannot make the client allocate more
// than that for one frame, besides the frame's own bytes. Either is logged as an error; the connection
// stays up, unacknowledged writes stay queued, and the call or
// subscription waiting for the frame fails with ErrTooLarge, as for a
// reply that does not decode.
//
// # Reconnecting
//
// When the connection drops (or sends no PONG, nor any part of a frame,
// for Options.PongTimeout) the client re-dials with exponential backoff
// (Options.BackoffInitial doubling to Options.BackoffMax, ±20 % jitter),
// re-authenticates, replays
// unacknowledged writes and re-subscribes live queries, whose fresh result
// sets arrive as Reset updates. An AUTH_FAIL on reconnect, or
// Options.MaxReconnectAttempts failures in a row, stop the client for good
// (see Err). Options.OnStateChange reports the transitions, in order, on a
// goroutine of its own.
package client
