// Package protocol serves TopGun's client protocol on top of the record
// store (package store): WebSocket connections at / and /ws, one MsgPack
// message per binary frame (package wire), and HTTP POST /sync.
//
// # Basics
//
//	auth, err := protocol.NewAuth(os.Getenv("JWT_SECRET")) // or nil: no authentication
//	srv, err := protocol.New(st, &protocol.Options{Auth: auth, Logger: log})
//	srv.Register(mux)          // GET /, GET /ws, POST /sync
//	...
//	srv.Close()                // on SIGTERM, before closing the store
//
// # Connections
//
// With authentication on, the server speaks first with AUTH_REQUIRED.
// Until AUTH_ACK every message but AUTH is dropped (one over 64 KiB is
// discarded as it arrives, never held); a connection that has not
// authenticated within Options.AuthTimeout (10 s) is closed; a bad token
// gets AUTH_FAIL, then the close. A repeated AUTH is ignored. AUTH
// and DEVICE_HELLO bind the connection to a device identity, minting one
// (and returning its token once) unless the client presents a valid one.
// Without authentication AUTH is acknowledged without checking (TopGun
// ignores it, leaving a client configured with a token waiting).
//
// At most Options.MaxConnections WebSocket connections and POST /sync
// requests are served at once (and at most Options.SharedConnections'
// limit together with the other Servers sharing it); one beyond it is
// answered 503 with Retry-After. A device reconnecting after a network
// change would meet that while its half-open connection, still taken
// for open, holds a slot, until the idle timeout. So beyond a limit a
// few WebSocket upgrades are admitted on trial (1% of the limit, at
// least 1 and at most 100; beyond those, 503): such a connection is
// served nothing until its AUTH or DEVICE_HELLO, within AuthTimeout,
// presents a valid device token whose identity an open connection
// holds. It then takes that connection over (closed with 1008, see
// device.go) and its slot. Any other (no token or another, a bad JWT,
// or nothing in time) is closed without an answer with 1013 (try again
// later; a bad JWT still gets AUTH_FAIL and 1008), unless a slot has
// freed by the time its AUTH or DEVICE_HELLO arrives, and is counted in
// Stats.ClientsRefused, as its upgrade was before. POST /sync carries no device identity and is never admitted
// on trial. Each connection has a reader, a writer
// draining an outbound queue bounded in bytes, and a write worker. Answers to
// the client's requests wait for room in the queue, so the reader stops
// reading while the client does not read; a client that lets changes
// pushed to it fill the queue is disconnected. Either way it never holds
// up the store or other clients, nor piles up messages in the server's
// memory. PING gets PONG; a connection
// from which nothing arrived for Options.IdleTimeout (60 s), none of
// whose writes waits for storage, and that is not reading answers the
// server waits for before it reads on, is closed, and
// a POST /sync body gets as long to arrive (408 after it). A POST /sync
// answer holds at most MaxQueryResults records and OutboundBytes bytes of
// them: larger deltas come in pages, larger queries get an error (413).
// Text frames are ignored. A frame over Options.MaxMessageBytes is read to
// its end, dropped and answered with ERROR 413 naming the limit, as is a
// frame that would take more than 32 × MaxMessageBytes of memory once
// decoded (wire.Limits.MaxDecodedBytes: a 2 MiB array of nils in a record
// would take 160 MiB); a malformed frame gets ERROR 400; a frame of a TopGun feature
// the server does not serve (topics, locks, counters, journal, search, SQL,
// the cluster's partition map, ...) gets ERROR 501 naming its type, but a
// one-shot SEARCH, SQL_QUERY, VECTOR_SEARCH or HYBRID_SEARCH gets its reply
// type with no results and the error, with which TopGun's client fails the
// call at once (it would otherwise wait 30 s, a lock its ttl plus 5 s, and
// fail with a timeout); the connection survives all of these. ENTRY_PROCESS and ENTRY_PROCESS_BATCH are answered at once
// with success false, as TopGun's server answers them (it runs no entry
// processors either; its client would otherwise wait 30 s for a
// timeout); an ENTRY_PROCESS_BATCH whose answer would take more memory
// than a decoded message may gets ERROR 413 instead. A frame over 8 ×
// MaxMessageBytes is not read: the connection is closed with 1009
// (message too big). Before AUTH_ACK
// none of these is answered. POST /sync answers such bodies with 413.
//
// # Writes
//
// CLIENT_OP, OP_BATCH and ORMAP_PUSH_DIFF are merged through
// store.Apply. OP_ACK{lastId} is sent only after the ops are durable, and
// acknowledgements leave in the order the writes arrived (TopGun's client
// marks every op up to lastId as synced). An op the store refuses gets
// OP_REJECTED with the reason (TopGun drops it silently) and is still
// covered by the batch's OP_ACK; so does an op the backend refuses for its
// content (store.Apply's refusesContent: invalid argument, not found,
// unsupported), with the backend's message, as re-sending it is useless.
// Any other backend failure gets ERROR 500 and no acknowledgement, so the
// client re-sends; when it strikes a message applied in parts after such a
// refusal, the ops stored before it get a partial OP_ACK instead, if the
// message's ids allow one (see jobState.cutAt). The acknowledgement level is
// PERSISTED on a durable backend, APPLIED otherwise. While the store is
// slow, a connection queues at most 256 writes and 8 × MaxMessageBytes of
// them, counted by their decoded size (wire.Limits.DecodeSize, several
// times their frames' bytes), or one write of any size; then its reader
// stops reading until the store catches up (backpressure through the
// socket, nothing dropped).
//
// TopGun's client re-sends every unacknowledged op with each new write;
// such re-sends are recognised and skipped before they reach the store,
// and do not count against Options.MaxBatchOps (see writes.go).
//
// # Sync
//
// SYNC_INIT and ORMAP_SYNC_INIT are answered with the root of the map's
// LWW or OR-Map Merkle trie, which the store hashes as TopGun's client
// does: an in-sync client stops there. MERKLE_REQ_BUCKET (and its OR-Map
// twin) returns the children of a path or, at depth 3, the leaf's records,
// tombstones and expired records included, with ttlMs. ORMAP_DIFF_REQUEST
// returns the OR state of keys. GC_PRUNE is relayed to every client when
// the store collects old tombstones, and a connection's first SYNC_INIT or
// ORMAP_SYNC_INIT is preceded by GC_PRUNE with the greatest cut-off the
// store has published since it started (store.Store.PruneBefore), for
// clients that were offline at the collection. Either is held back while
// writes of the connection are queued or being committed (and once one
// failed, was refused over MaxBatchOps (ERROR 413) or was acknowledged
// only in part, until the client has sent the ops left unstored again and
// they are stored or rejected; for the rest of the connection after a
// message refused unread (ERROR 400, 403, 413) or a failed write of ops
// the server cannot recognise again, such as an ORMAP_PUSH_DIFF's
// removals: the client's next connection gets it at its first sync), then
// sent after their OP_ACK and after any leaf or diff read before they
// were committed (the greatest cut-off only; at a first sync, usually
// after the root):
// TopGun's client, pruning the OR-Map tombstone of an old entry it has
// just removed, would take the entry back from a leaf served before that
// remove was committed. It never comes before the handshake's answer
// (AUTH_ACK, DEVICE_ACK): TopGun's client without a token takes any
// other message then for a server without auth.
//
// # Live queries
//
// QUERY_SUB answers QUERY_RESP, then QUERY_UPDATE (ENTER, UPDATE, LEAVE)
// as changes commit; every connection with a live query on a map also gets
// SERVER_EVENT for each change of it, except the change's writer. A
// connection holds at most Options.MaxQueries live queries, whose results
// hold at most Options.MaxQueryResults records when a query starts, and
// which take at most 8 × MaxMessageBytes of memory (a connection's only
// query: 32 ×, as much as any message once decoded), counting each
// QUERY_SUB decoded (wire.Limits.DecodeSize) plus its compiled $in sets and
// patterns (wire.Query.CompileLimit: a regex can compile to thousands of
// times its length). A query's filter, sort and fields may cost at most
// wire.MaxQueryCost (10000: predicate nodes, scanned list elements,
// elements of compared arrays and maps, 64 bytes of patterns and field
// paths, 64 instructions of a compiled regex, sort fields looked up for
// each comparison, wire.Query.Cost, and projected fields; TopGun has no
// such bound) to match, place and project one record, since each change
// is matched against every live query of its map (POST /sync filters
// too: 413). The cost does not count the length of the record's strings,
// which each like/regex node reads whole (a regex about 20 ms per MiB):
// such queries on a map of long strings are slow to match. Each
// connection's queries are matched by its own feed worker, so they delay
// only that connection, which is closed with 1013 once it falls feedQueue
// commits behind (Stats.FeedLags). A QUERY_SUB
// beyond any of these gets QUERY_RESP with an error (code LIMIT); one on
// a map name abi.ValidateMapName refuses
// gets code INVALID (a POST /sync entry or query naming one: 400), not the
// UNAVAILABLE of a failed read. What a query takes comes back when it is
// unsubscribed, replaced or refused, or the connection closes. If
// the server falls behind the store's change feed (Stats.FeedLags), the
// events it missed cannot be rebuilt: the connections holding live queries
// are closed with 1013 (try again later), and their clients reconnect and
// catch up through sync. See query.go for the details (limits, resyncs,
// what is not supported).
//
// # Differences from TopGun's server
//
// Deliberate, each for the client's benefit: OP_REJECTED for refused ops;
// acks only after durability; ORMAP_PUSH_DIFF acknowledged with lastId "0"
// (TopGun's internal call id can mark unrelated pending ops as synced),
// its OR_ADD events sent as every write's are, to the connections with a
// live query on the map other than the writer's (TopGun sends them to
// every connection, the writer's included);
// SERVER_EVENT for removes carries the tombstone record; POST /sync answers
// syncMaps with deltas and requires a token when authentication is on;
// maps whose names start with "_topgun_", "__topgun" or "$sys/" (in any case) are the
// server's own and refused to clients; AUTH is acknowledged on a server
// without authentication, which serves browser pages of this machine only
// unless Options.OriginPatterns lists others (origin.go). TopGun's topics,
// locks, counters, journal, search, SQL and cluster messages are not
// served: they are refused at once (see Connections).
package protocol
