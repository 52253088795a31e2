// Package postgres is the PostgreSQL backend (STORAGE_BACKEND=postgres),
// built on github.com/jackc/pgx/v5 and its pgxpool connection pool.
//
// # Basics
//
// Open(ctx, databaseURL, opts) connects to DATABASE_URL and creates, if
// missing, exactly the table TopGun's server uses, so that either server
// reads the other's data:
//
//	CREATE TABLE IF NOT EXISTS topgun_maps (
//	  map_name TEXT NOT NULL, key TEXT NOT NULL, value BYTEA NOT NULL,
//	  expiration_time BIGINT NOT NULL DEFAULT 0, is_backup BOOLEAN NOT NULL DEFAULT FALSE,
//	  created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,
//	  PRIMARY KEY (map_name, key, is_backup));
//	CREATE INDEX IF NOT EXISTS idx_topgun_maps_map ON topgun_maps (map_name);
//	CREATE INDEX IF NOT EXISTS topgun_maps_expiry ON topgun_maps (expiration_time) WHERE expiration_time > 0;
//
// The table lives in the first schema of the connection's search_path (set
// it in the URL, e.g. ?search_path=tenant1); pg_temp first is refused, as
// the table would be temporary. Every statement names the table with that
// schema, so one dropped or renamed later is missing, never the
// topgun_maps of a later schema on the path. Nothing outside the topgun_
// namespace is created, altered or dropped; an existing topgun_maps that
// lacks the columns or primary key above, or that no put could be stored
// in or kept apart in (an extra NOT NULL column without a default, a
// DEFERRABLE primary key, a nondeterministic collation on map_name or
// key), or that is UNLOGGED (emptied by a database crash), is refused
// before anything is added to it. A database that takes no writes (a
// standby, or default_transaction_read_only on) is refused. It needs
// PostgreSQL 12 or later. Schema creation is serialised between processes with a
// transaction-level advisory lock, so several servers may start at once.
// Only missing objects are created, so a role allowed only to read and
// write an existing table opens it (one lacking any of SELECT, INSERT,
// UPDATE and DELETE on it is refused); an expiry index such a role may not
// add is done without (Describe then lacks CapExpiryIndex and
// ListExpired scans the table).
//
// Rows are TopGun's: a put inserts created_at = updated_at = Batch.Now and,
// on conflict, replaces value, expiration_time and updated_at while keeping
// created_at.
//
// # Operations
//
//   - Apply is usually one statement whatever the batch size: the rows
//     travel as arrays expanded by unnest into one INSERT ... ON CONFLICT and
//     one DELETE (in one WITH statement when the batch has both), so a batch
//     is one round trip and one commit, all or nothing. Several mutations of
//     one record in a batch are first collapsed to the last one, and rows are
//     sent in (map, key, backup) order so that concurrent batches lock them
//     in the same order. Two cases take a transaction of several statements:
//     a record deleted and put again in the batch (deleted first, so that it
//     gets a new created_at), and batches whose values, keys, map names
//     and notifications exceed 256 MiB (each statement's parameters stay
//     below the 1 GiB pgx and PostgreSQL take).
//   - Get is one key = ANY($keys) query on the primary key.
//   - Scan pages with a keyset on key within (map_name, is_backup), one
//     statement (one snapshot) per page on the primary key index. The byte
//     budget (key + value bytes) is applied inside the database, with a
//     running sum of octet_length that does not read values, so a page never
//     transfers values it does not return.
//   - ListMaps is a loose index scan of idx_topgun_maps_map (cost grows with
//     the number of maps, not of records). It leaves out maps whose names
//     no operation takes (empty, or longer than abi.MaxMapNameBytes), which
//     a table TopGun's server wrote may hold, with a warning.
//   - ListExpired reads the partial index topgun_maps_expiry.
//
// # Errors
//
// Errors are *abi.Error values that keep the pgx error as their cause (for
// errors.As with *pgconn.PgError). A lost or refused connection, an
// administrator shutdown, and deadlocks or serialization failures that
// persist after one retry give CodeUnavailable; ctx gives CodeCanceled or
// CodeDeadlineExceeded; data the database rejects gives CodeInvalidArgument;
// anything else CodeInternal. An operation that fails because a pooled
// connection was dead (after a database restart, or pg_terminate_backend)
// is retried on another connection (at most pool size + 1 attempts; a write
// only when it certainly did not commit); a failure to open a connection is
// returned at once as CodeUnavailable. The pool reconnects by itself, so
// the backend recovers when the database returns, without being reopened.
//
// # Caveats
//
//   - If the connection breaks after a batch was sent, PostgreSQL may or may
//     not have committed it; Apply then returns CodeUnavailable and says so.
//     The same holds when ctx ends while the statement runs (CodeCanceled or
//     CodeDeadlineExceeded). Applying the same batch again is safe. Such a
//     statement may still be on its way (pgx closed the connection, but the
//     kernel goes on sending it) and commit once the link is back, after
//     the caller read the records to learn the outcome: so the next
//     operation first ends that session (pg_terminate_backend, on the
//     session's pid and start time) and waits until it is gone, failing
//     while the database cannot be reached (see fence.go). Behind a pooler,
//     whose pids are its own, sessions are not known and this is not done;
//     nor when they run as a role without the login role's rights (SET
//     ROLE), which may neither see their start time nor end them.
//   - Statements are prepared and cached per connection (pgx's default). Behind
//     a PgBouncer in transaction mode, add default_query_exec_mode=exec to the
//     URL. Servers sharing a database hear each other's commits through
//     LISTEN on the same URL, which transaction pooling does not carry: a
//     shared database must be reached directly (or through session pooling),
//     or each server's index and live queries miss the others' writes.
//     Watch's connection is checked after 5 s of silence (its LISTEN sent
//     again, to be answered within 5 s): one whose link died without a
//     reset is given up within about 10 s, not when TCP keepalive gives up
//     (minutes); Watch then connects again and reports everything changed.
//     Close ends the listeners and closes their connections before it
//     returns, after which fn is not called; it waits for a call of fn in
//     progress to return, unless fn is what calls Close. A Close called
//     while another is in progress waits for it, unless called from fn.
//   - Scans cost the database about 1 µs per record more than a plain keyset
//     query, for the window that applies the byte budget.
//   - Scans are in byte order of the keys, as from every backend. With a C,
//     POSIX or C.UTF-8 collation on the key column (the usual for this
//     table) that is the primary key's order. With another collation
//     (ByteOrder reports false) scans order by key COLLATE "C", and Open
//     adds the index topgun_maps_key_bytes on (map_name, is_backup, key
//     COLLATE "C") to serve them; a role that may not add it gets a
//     warning, and each page then sorts the map. ListMaps is sorted by
//     bytes in any case.
//   - The database must use the UTF8 encoding (or SQL_ASCII). Connections
//     use client_encoding UTF8 whatever the URL or the role's settings say.
//     A table written by an earlier version through a connection of
//     another client encoding (LATIN1, say) holds its non-ASCII keys
//     converted, and they now read as other keys: convert those rows
//     (convert_from(convert_to(key, 'LATIN1'), 'UTF8')) before upgrading.
//   - TopGun creates its own idx_topgun_maps_expiry on (map_name,
//     expiration_time), which ListExpired cannot use; on such a database Open
//     adds topgun_maps_expiry beside it. Creating an index on a large
//     existing table blocks writes to it while it is built.
package postgres
