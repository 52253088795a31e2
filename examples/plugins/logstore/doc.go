// Package logstore is a durable storage backend kept in one append-only log
// file: the example to copy when writing a storage plugin that keeps its
// data in the data directory the host grants it.
//
// It uses only the standard library and package abi, so the same code runs
// natively (where its tests run, with -race) and as a wasm plugin
// (GOOS=wasip1, see the cmd directory): it uses plain os file calls, no mmap
// and no background goroutines, and takes a file lock only natively (see
// Caveats).
//
// # Basics
//
// Open(ctx, dir, opts) opens or creates dir/logstore.log. Every Apply
// appends one frame per put or delete and then a commit frame, writes them
// with WriteAt, and calls File.Sync once before it returns: one fsync per
// batch. Only then does the batch become visible to readers.
//
// The index (map, backup, key) -> (frame offset, value length, expiration,
// created and updated times) lives in memory and is rebuilt by reading the
// whole log at Open. Values stay in the file and are read with ReadAt, so
// memory grows with the number of keys, not with the size of the data; the
// values of a scan page or a multi-key get that lie close together in the
// file are read with one ReadAt.
// Keys are sorted lazily per map, on the first scan after a change; an
// expiry heap serves ListExpired (CapExpiryIndex).
//
// # Crash safety
//
// Each frame carries its length and a CRC32-C of its length and body. At
// Open, reading stops at the first frame that is incomplete or whose
// checksum does not match, and unless a later batch follows it intact (see
// Caveats) the file is truncated after the last commit frame before it: a
// batch is there completely or not at all. Open then
// syncs the log and its directory, so that neither a last batch nor a
// compaction's rename left unsynced by the crash can vanish under batches
// acknowledged after it. A frame whose checksum matches but whose content
// is invalid means the file was damaged or written by something else; Open
// refuses it rather than lose data.
//
// When a write or fsync fails, Apply truncates the batch away and returns an
// error. If even that fails, the store refuses further writes until it is
// reopened.
//
// # Compaction
//
// Overwritten and deleted records, delete frames and commit frames are
// garbage. After a batch (and at Open), when the log is at least
// Options.CompactMinBytes long and Options.CompactGarbageRatio of it is
// garbage, the live frames are copied in key order to logstore.log.compact,
// which is synced and renamed over the log; then the directory is synced.
// Compaction runs inside the Apply call that triggers it, which is slower by
// the time it takes to copy the live data. A compaction that fails (a disk
// without room for the copy, say) is logged and tried again once the log
// has grown by half, not after every batch.
//
// # Caveats
//
// Only one store may use a directory at a time: two would write over each
// other's batches. Natively Open locks the directory (flock) and refuses a
// directory another store holds; under wasip1 there are no file locks, and
// the host locks the directory it grants (TOPGUN_PLUGIN_DATA_DIR) instead,
// refusing a second server on it (see package host). Open reads the whole
// log, so it takes time proportional to the log's size: as a wasm plugin,
// about 3.4 s for a 200 MB log (plus a compaction, about 1.1 s per 100 MB
// live, when it is mostly garbage), so a log of more than about 500 MB needs a
// longer TOPGUN_PLUGIN_CALL_TIMEOUT than the default 10 s to open (the
// host's error names it). The index costs about 115
// bytes plus the key per record (measured with 16-byte keys), so a plugin
// instance under the host's default 256 MiB memory limit holds on the
// order of a million records. Each Apply pays a full fsync; concurrent
// Apply calls are serialized, not group-committed, so callers should batch
// (the server commits in groups). A frame that does not check (cut short,
// or a damaged length or checksum) is a torn tail when nothing past its
// batch is intact, and the log is truncated there (logged with its size).
// When a later batch follows intact, the damage is in the middle: Open
// refuses the log, naming the damaged offset, and leaves it as it is, since
// cutting it would lose acknowledged batches. A damaged length no longer
// says where the next frame starts, so Open looks for one that checks at
// every later byte; it reads only the bytes after the damage, once, which
// for a torn tail are few. Damage within the last batch cannot be told
// from a tear and is truncated as one; and a value that holds the bytes of
// whole logstore frames can make a tear inside it look like damage in the
// middle, which Open then refuses.
package logstore
