// Package redb is the default embedded backend (STORAGE_BACKEND=redb): one
// file on local disk, TOPGUN_REDB_PATH (default ./topgun.redb), written
// through go.etcd.io/bbolt. It is named "redb" for compatibility with
// TopGun's settings; the file is a bbolt database, not a redb one, and
// TopGun's own redb files cannot be opened (Open says so).
//
// # Basics
//
// Open takes an exclusive lock on the file for the life of the Backend. A
// second process that opens the same file waits Options.Timeout (1 s by
// default) and then fails with abi.CodeUnavailable and an error naming the
// file; the server is meant to be the only process using it.
// Options.ReadOnly opens an existing file for reading only (`topgun copy`
// reads its source so) under a shared lock: readers do not exclude each
// other, a writer and readers exclude each other the same way, and the file
// is never created, emptied or written. Describe
// declares abi.CapDurable, abi.CapAtomicBatch and abi.CapExpiryIndex, not
// abi.CapShared.
//
// Every Apply is one bbolt write transaction: all of its mutations commit
// together, durably (bbolt syncs the data and then the meta page), or none
// do. bbolt runs one write transaction at a time, so concurrent Apply calls
// queue; callers that want throughput batch their writes (the server group-
// commits). Reads (Get, Scan pages, ListMaps, ListExpired) each run in
// their own read transaction, concurrently with each other and with a
// writer, and see a consistent snapshot. A scan that pages sees each page's
// snapshot; records present for the whole scan are visited exactly once.
//
// # Layout
//
// The file holds these top-level buckets:
//
//   - "topgun": the format marker, key "format" = the format version as a
//     decimal string ("1"). A bbolt file with other buckets but no marker
//     belongs to another program and is refused; a file with a larger
//     version is refused with abi.CodeUnsupported.
//   - "p:" + map name and "b:" + map name: the primary and the backup
//     records of one map. Bucket names are arbitrary bytes, so any valid map
//     name works ("todo-items", "a/b", "ключ", "with space:and colon").
//     Reaching a map costs one bucket lookup, as in a plain bbolt program. A
//     map bucket is dropped when a batch leaves it empty, so ListMaps lists
//     the "p:" bucket names. A map bucket's bbolt sequence holds 1<<32 plus
//     the CRC-32C of its name, so that a damaged name is an error rather
//     than a map under another name (0 in buckets written before this
//     check: not checked).
//   - "expiry": the expiry index, keys only: big-endian expiration time,
//     map name, a NUL, the backup flag (0 or 1), the key. ListExpired is a
//     cursor walk from its start that stops at the first entry after now, so
//     its cost is bounded by what it returns. Its order (expiration, map,
//     backup, key) is the one plugins/null uses.
//
// Inside a map bucket the bbolt key is the record key's bytes, except that
// the empty key (valid, but bbolt does not store empty keys) is a single NUL
// byte, which no valid key contains and which sorts first; so keys sort in
// byte order and a Scan cursor is abi.KeyCursor of the last key. The stored
// value is a 29-byte header followed by the opaque value bytes: a tag byte
// (1), a CRC-32C of the bbolt key and the rest of the record, then
// created_at, updated_at and expiration_time as big-endian int64 Unix
// milliseconds. bbolt checks only its meta pages; the checksum makes a
// damaged value, length or key an error instead of wrong data. bbolt's key
// limit (32 KiB) is well above abi.MaxMapNameBytes and abi.MaxKeyBytes.
//
// # Performance
//
// A put must know whether its record exists (to keep CreatedAt and move the
// expiry index entry). Apply reads the greatest key of each map bucket it
// touches once per batch; a put whose key is above every key so far is new
// and skips the lookup, and a batch made only of such appends (time-ordered
// or counter keys) fills its pages completely (bucket FillPercent 1.0), as
// a bulk load does. Other puts cost one lookup more than a plain bbolt Put.
// Encoded values of a batch share one allocation, and keys are passed to
// bbolt without copying. BenchmarkRatio compares
// redb with plain bbolt doing the same work in the same run.
//
// # Errors
//
// Inputs are validated with the abi helpers before any transaction, so a
// bad batch changes nothing. bbolt errors are mapped at the edge to *abi.Error
// with the bbolt error kept as the cause: a closed backend gives
// abi.CodeUnavailable, a full disk abi.CodeResourceExhausted, a context
// done before or during an operation abi.CodeCanceled or
// abi.CodeDeadlineExceeded (long loops check it every 256 records; a
// commit in progress is not interrupted). A commit the file cannot grow
// for under the process's file size limit (ulimit -f) is a full disk too:
// bbolt reports its failed resize without the EFBIG, so a commit failing
// for no known reason counts as one when the file is within what the
// commit could add of the limit.
//
// # Caveats
//
//   - Open checks bbolt's file header itself before bbolt reads it, because
//     bbolt trusts the page ids in its meta page and panics or faults on a
//     truncated file. Garbage, text, truncated files, directories and foreign
//     bbolt files give abi.CodeInvalidArgument with the path and a fix, never
//     a panic: a truncated file, or one whose valid meta page points outside
//     it, is called corrupt (restore it from a backup), and a redb-format
//     file of TopGun's own server is named as such. An empty (0-byte) file
//     is treated as a new database, as bbolt and SQLite do, and so is a
//     file cut short inside bbolt's first write (a disk that filled or a
//     crash at the first start; its meta page 0 still holds transaction
//     0, so it never held data): Open empties it and creates it again.
//   - Open also walks every page bbolt can reach from the root (walk.go)
//     and refuses a file whose page structure is broken: a page that does
//     not name itself, elements, keys or values past the end of their page,
//     page ids outside the file, a page reached twice, keys out of order
//     in a page, a branch element whose key is not its child's first key
//     or whose child is empty, a free page still in use, listed twice or
//     part of the freelist, meta pages that disagree on the page size.
//     bbolt follows such pages without bounds checks, and a pointer it
//     makes from one can land in the Go heap, where the garbage collector
//     stops the process; no recover can catch that. Its writes trust them
//     too: a write through such a page frees a page still in use or hands
//     one page to two nodes, and a key out of order hides intact records
//     from its binary search. The error is abi.CodeInvalidArgument saying
//     the file is corrupt, where, and to restore it from a backup or run
//     `bbolt check`. The walk reads the whole tree once (about 70 ms for a
//     170 MB file in the page cache).
//   - Damage that keeps the structure sound (a changed key or value byte
//     that keeps the keys in order)
//     is found when an operation reads it: the record checksum fails, and
//     the operation returns abi.CodeInternal naming the file. Damage done
//     to the file while it is open is not walked for; every transaction
//     still recovers bbolt panics and memory faults
//     (runtime/debug.SetPanicOnFault) as a last resort, but a write on a
//     damaged tree may make bbolt allocate (and grow the file) by whatever
//     size a damaged page header claims. If a panic escapes bolt.Open
//     itself the file descriptor is closed (releasing the lock) but bbolt's
//     memory map of the file is not unmapped.
//   - A record that fails its checksum or does not decode makes Get, Scan,
//     ListExpired and a Put of that key fail with abi.CodeInternal rather
//     than return wrong data; so does a map bucket whose name fails its
//     checksum, for every operation that reaches it.
//   - Once bbolt has panicked or faulted on the file, or a record has failed
//     its checksum, the Backend refuses every later Apply with
//     abi.CodeInternal (reads go on): bbolt trusts the pages it reads, and a
//     write through a damaged page can spread the damage or make bbolt
//     allocate by whatever size the page claims. Reopening clears this;
//     restore the file from a backup first.
//   - Options.NoSync is for tests: commits skip fsync, so batches may be lost
//     on a crash (not on Close), and Describe drops abi.CapDurable.
//   - The file grows and does not shrink when records are deleted; bbolt
//     reuses the free pages. `bbolt compact` can shrink an unused file.
//   - A context without a deadline cannot interrupt the lock wait of Open;
//     Options.Timeout bounds it.
package redb
