package logstore

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/topgun-go/topgun/abi"
)

// Name is the backend name reported by Describe.
const Name = "logstore"

// FileName is the name of the log file inside the store's directory.
const FileName = "logstore.log"

// compactFileName is the file a compaction writes before renaming it over
// the log. A leftover one is an interrupted compaction and is removed.
const compactFileName = FileName + ".compact"

// Logger is the logging interface the store uses. A hclog.Logger satisfies
// it; so does any adapter a plugin SDK provides.
type Logger interface {
	Debug(msg string, args ...any)
	Info(msg string, args ...any)
	Warn(msg string, args ...any)
}

type nullLogger struct{}

func (nullLogger) Debug(string, ...any) {}
func (nullLogger) Info(string, ...any)  {}
func (nullLogger) Warn(string, ...any)  {}

// Options configure a Store. The zero value is not valid; start from
// DefaultOptions. A nil *Options means DefaultOptions().
type Options struct {
	// Logger receives recovery and compaction events. Nil discards them.
	Logger Logger

	// CompactMinBytes is the log size below which the log is never
	// compacted, however much of it is garbage.
	CompactMinBytes int64

	// CompactGarbageRatio is the fraction of the log that must be garbage
	// (overwritten or deleted records, delete and commit frames) before
	// it is compacted; in (0, 1].
	CompactGarbageRatio float64
}

// DefaultOptions returns the default options: compact logs of 16 MiB or more
// once half of them is garbage.
func DefaultOptions() *Options {
	return &Options{CompactMinBytes: 16 << 20, CompactGarbageRatio: 0.5}
}

// Validate reports the first invalid option.
func (o *Options) Validate() error {
	if o.CompactMinBytes < 0 {
		return abi.Errorf(abi.CodeInvalidArgument, "logstore: CompactMinBytes is %d; use 0 or more", o.CompactMinBytes)
	}
	if !(o.CompactGarbageRatio > 0 && o.CompactGarbageRatio <= 1) {
		return abi.Errorf(abi.CodeInvalidArgument, "logstore: CompactGarbageRatio is %v; use a value in (0, 1], for example 0.5", o.CompactGarbageRatio)
	}
	return nil
}

// Stats describe the log.
type Stats struct {
	FileBytes   int64 // size of the log file
	LiveBytes   int64 // bytes of the frames of current records
	Records     int   // current records, primary and backup
	Compactions int   // compactions since open
}

// Store is a durable abi.Backend kept in one append-only log file.
//
// Locking: wmu serializes everything that writes the file (Apply,
// compaction, Close), so the index entries and the file handle change only
// under wmu; mu guards them against readers, which hold it for reading while
// they read values from the file.
type Store struct {
	dir  string
	path string
	opts Options
	log  Logger

	wmu sync.Mutex
	buf []byte // write buffer, under wmu

	// lock holds the directory's lock (lockDir) until Close; nil where
	// there are no file locks.
	lock *os.File

	mu          sync.RWMutex
	f           *os.File
	size        int64 // end of the last committed batch and size of the file
	ix          *index
	closed      bool
	failed      error // set when the file's tail is in an unknown state
	compactions int

	// compactRetry is the log size below which a compaction is not tried
	// after one failed (under wmu), so that a lasting cause, such as a
	// disk without room for the copy, does not cost every batch a full
	// pass over the store.
	compactRetry int64
}

var _ abi.Backend = (*Store)(nil)

// writeChunk is the size at which a batch's frames are written out before
// the batch is complete, bounding the write buffer.
const writeChunk = 1 << 20

// Open opens the store kept in dir, creating dir and the log if needed. It
// reads the whole log to rebuild the index, truncates a torn tail left by a
// crash (the frames of a batch whose commit frame is missing or damaged),
// and refuses a log whose committed content is invalid, or damaged with a
// later batch intact after the damage.
//
// Only one Store may use a directory at a time. Natively Open takes a lock
// on the directory and refuses it while another Store (of any process)
// holds it; under wasip1 there are no file locks, and the host locks the
// data directory it grants instead (see package host).
func Open(ctx context.Context, dir string, opts *Options) (*Store, error) {
	if opts == nil {
		opts = DefaultOptions()
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if dir == "" {
		return nil, abi.Errorf(abi.CodeInvalidArgument, "logstore: data directory is empty; pass the directory the store may write")
	}
	s := &Store{dir: dir, path: filepath.Join(dir, FileName), opts: *opts, log: opts.Logger, ix: newIndex()}
	if s.log == nil {
		s.log = nullLogger{}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, abi.Wrap(abi.CodeUnavailable, err, "logstore: create data directory %s", dir)
	}
	lock, err := lockDir(dir)
	if errors.Is(err, errLocked) {
		return nil, abi.Errorf(abi.CodeUnavailable, "logstore: %s is in use by another store (another process, or a store not closed); give each store its own directory", dir)
	}
	if err != nil {
		return nil, abi.Wrap(abi.CodeUnavailable, err, "logstore: lock data directory %s", dir)
	}
	s.lock = lock
	ok := false
	defer func() {
		if !ok && lock != nil {
			lock.Close()
		}
	}()
	if err := os.Remove(filepath.Join(dir, compactFileName)); err == nil {
		s.log.Info("removed an interrupted compaction", "file", compactFileName)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, abi.Wrap(abi.CodeUnavailable, err, "logstore: remove interrupted compaction file in %s", dir)
	}
	f, err := os.OpenFile(s.path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, abi.Wrap(abi.CodeUnavailable, err, "logstore: open %s", s.path)
	}
	s.f = f
	if err := s.load(ctx); err != nil {
		f.Close()
		return nil, err
	}
	s.wmu.Lock()
	s.maybeCompact()
	s.wmu.Unlock()
	ok = true
	return s, nil
}

// load checks the header and replays the log into the index.
func (s *Store) load(ctx context.Context) error {
	st, err := s.f.Stat()
	if err != nil {
		return abi.Wrap(abi.CodeUnavailable, err, "logstore: stat %s", s.path)
	}
	size := st.Size()
	if size < headerLen {
		// New, or created by a crash before its header was synced.
		if err := s.initFile(size); err != nil {
			return err
		}
		s.size = headerLen
		return nil
	}
	hdr := make([]byte, headerLen)
	if _, err := s.f.ReadAt(hdr, 0); err != nil {
		return abi.Wrap(abi.CodeUnavailable, err, "logstore: read header of %s", s.path)
	}
	if s.allZero(size) {
		// A crash between writing the header and syncing it, on a file
		// system that extends the file before its data lands: nothing was
		// ever written after the header, which is synced first.
		if err := s.initFile(size); err != nil {
			return err
		}
		s.size = headerLen
		return nil
	}
	if err := checkHeader(hdr); err != nil {
		var ve *versionError
		if errors.As(err, &ve) && ve.version > formatVersion {
			// Pointing the store elsewhere would be the wrong advice:
			// the log is fine, this build is too old for it.
			return abi.Errorf(abi.CodeInvalidArgument, "logstore: %s was written by a newer logstore (log format version %d, this build reads version %d); open it with that build of the plugin or a later one", s.path, ve.version, formatVersion)
		}
		return abi.Errorf(abi.CodeInvalidArgument, "logstore: %s is not a logstore log: %v; point the store at its own directory", s.path, err)
	}

	type op struct {
		del bool
		id  bucketID
		key string
		e   *entry
	}
	var pending []op
	fr := newFrameReader(io.NewSectionReader(s.f, headerLen, size-headerLen), headerLen, size)
	committed := int64(headerLen)
	batches := 0
	for n := 0; ; n++ {
		if n%4096 == 0 {
			if err := abi.ContextError(ctx); err != nil {
				return err
			}
		}
		start := fr.off
		f, err := fr.next()
		if err == errTorn {
			later, err := s.batchAfter(start, size, len(pending))
			if err != nil {
				return abi.Wrap(abi.CodeUnavailable, err, "logstore: read %s", s.path)
			}
			if later {
				err := &corruptError{off: start, msg: "a frame does not check (its length, checksum or size), and a later batch follows it intact"}
				return abi.Wrap(abi.CodeInternal, err, "logstore: %s is damaged in the middle (not a torn tail, which would be cut off); restore it from a backup, or move it aside to start empty", s.path)
			}
		}
		if err == io.EOF || err == errTorn {
			break
		}
		var ce *corruptError
		if errors.As(err, &ce) {
			return abi.Wrap(abi.CodeInternal, err, "logstore: %s is damaged; restore it from a backup, or move it aside to start empty", s.path)
		}
		if err != nil {
			return abi.Wrap(abi.CodeUnavailable, err, "logstore: read %s", s.path)
		}
		switch f.kind {
		case kindPut:
			pending = append(pending, op{id: bucketID{f.mapName, f.backup}, key: f.key, e: &entry{
				off: start, frameLen: uint32(fr.off - start), valueOff: uint32(f.valueOff), valueLen: uint32(len(f.value)),
				exp: f.exp, created: f.created, updated: f.updated,
			}})
		case kindDelete:
			pending = append(pending, op{del: true, id: bucketID{f.mapName, f.backup}, key: f.key})
		case kindCommit:
			if int(f.count) != len(pending) {
				err := &corruptError{off: start, msg: fmt.Sprintf("commit of %d frames ends a batch of %d", f.count, len(pending))}
				return abi.Wrap(abi.CodeInternal, err, "logstore: %s is damaged; restore it from a backup, or move it aside to start empty", s.path)
			}
			for _, o := range pending {
				if o.del {
					s.ix.del(o.id, o.key)
				} else {
					s.ix.put(o.id, o.key, o.e)
				}
			}
			clear(pending)
			pending = pending[:0]
			committed = fr.off
			batches++
		}
	}
	if committed < size {
		s.log.Warn("truncating the unfinished tail of the log", "file", s.path, "offset", committed, "bytes", size-committed)
		if err := s.f.Truncate(committed); err != nil {
			return abi.Wrap(abi.CodeUnavailable, err, "logstore: truncate the unfinished tail of %s", s.path)
		}
	}
	// The last batch may be complete yet unsynced (the process died
	// between its write and its fsync): readers are about to see it, so it
	// must not vanish at a power loss after that.
	if err := s.f.Sync(); err != nil {
		return abi.Wrap(abi.CodeUnavailable, err, "logstore: sync %s", s.path)
	}
	// The log's name may not be durable either: a crash or trap between a
	// compaction's rename and its directory sync (or initFile's) leaves
	// it so, and batches acknowledged in the file would go with it.
	if err := syncDir(s.dir); err != nil {
		return abi.Wrap(abi.CodeUnavailable, err, "logstore: sync directory %s", s.dir)
	}
	s.size = committed
	s.log.Debug("log loaded", "file", s.path, "batches", batches, "records", s.ix.records, "bytes", committed)
	return nil
}

// allZero reports a small file holding only zero bytes (a larger one is
// left to the header check: zeros there are damage, not a new file).
func (s *Store) allZero(size int64) bool {
	if size > 1<<20 {
		return false
	}
	b := make([]byte, size)
	if _, err := s.f.ReadAt(b, 0); err != nil {
		return false
	}
	return !slices.ContainsFunc(b, func(c byte) bool { return c != 0 })
}

// batchAfter reports whether a complete later batch follows the frame that
// failed to check at off. A crash tears only the last batch, which was never
// synced: its frames may reach the disk out of order, so damage followed by
// valid frames of the same batch is a torn tail. A later batch is written
// only after the damaged one was synced and acknowledged, so frames past the
// damaged batch's commit mean damage in the middle, which cutting off would
// lose acknowledged batches and bring back what they overwrote.
// The first commit frame after the damaged one must end the damaged frame's
// batch, that is count at least the pending frames read before it, the
// damaged frame and the valid frames between: otherwise the damaged frame
// ended an earlier batch (a damaged commit frame) and that commit belongs to
// a later, acknowledged batch. (A torn batch may count more: damaged frames
// that could not be read are in it too.)
// The damaged frame's length may be damaged as well, so where the frame it
// gives is not followed by a valid one, the frames after it are found by
// looking for one that checks at every later byte (findFrame); the same
// skips any further damage. Reading is bounded by the bytes after off, few
// for a torn tail, and done once at Open.
func (s *Store) batchAfter(off, size int64, pending int) (bool, error) {
	var hdr [frameHeaderLen]byte
	if _, err := s.f.ReadAt(hdr[:], off); err != nil && !errors.Is(err, io.EOF) {
		return false, err
	}
	next := int64(-1)
	if n := binary.LittleEndian.Uint32(hdr[0:4]); n != 0 && n <= maxFrameBody {
		// The length may be intact (damage in the body or checksum): try
		// the frame it points to first, rather than look inside the
		// damaged frame's value for bytes that happen to check.
		next = off + frameLen(int(n))
		ok, err := s.frameAt(next, size, nil)
		if err != nil {
			return false, err
		}
		if !ok {
			next = -1
		}
	}
	committed := false
	between := 0 // valid frames between the damaged frame and the first commit
	for {
		if next < 0 {
			var err error
			if next, err = s.findFrame(off+1, size); err != nil || next < 0 {
				return false, err
			}
		}
		fr := newFrameReader(io.NewSectionReader(s.f, next, size-next), next, size)
		for {
			f, err := fr.next()
			if err == io.EOF {
				return false, nil
			}
			var ce *corruptError
			if err != nil && err != errTorn && !errors.As(err, &ce) {
				return false, err
			}
			if err != nil {
				break // more damage: look past it
			}
			if committed {
				return true, nil // a frame of a later batch
			}
			if f.kind != kindCommit {
				between++
				continue
			}
			if int64(f.count) < int64(pending)+1+int64(between) {
				// This commit does not end the damaged frame's batch: the
				// damaged frame was the commit of an earlier batch.
				return true, nil
			}
			committed = true
		}
		off, next = fr.off, -1
	}
}

// findScanWindow is how much of the log findFrame reads at a time.
const findScanWindow = 64 << 10

// findFrame returns the offset of the first frame at or after from that
// checks (a plausible length, its checksum, valid content), or -1 if none
// does before size. Most offsets are ruled out by their length and kind
// byte alone, read from a window that moves through the file once; only
// the few left have their body read and checked.
func (s *Store) findFrame(from, size int64) (int64, error) {
	win := make([]byte, findScanWindow)
	var body []byte
	base, have := from, 0 // win[:have] holds the file from base
	for p := from; p+frameHeaderLen < size; p++ {
		if p+frameHeaderLen+1 > base+int64(have) {
			k, err := s.f.ReadAt(win[:min(int64(len(win)), size-p)], p)
			if err != nil && !errors.Is(err, io.EOF) {
				return -1, err
			}
			base, have = p, k
			if have < frameHeaderLen+1 {
				return -1, nil
			}
		}
		h := win[p-base:]
		n := binary.LittleEndian.Uint32(h[0:4])
		if n == 0 || n > maxFrameBody || int64(n) > size-p-frameHeaderLen {
			continue
		}
		if k := h[frameHeaderLen]; k != kindPut && k != kindDelete && (k != kindCommit || n != 5) {
			continue
		}
		ok, err := s.frameAt(p, size, &body)
		if err != nil {
			return -1, err
		}
		if ok {
			return p, nil
		}
	}
	return -1, nil
}

// frameAt reports whether a frame that checks starts at off. buf, if not
// nil, is reused for the frame's bytes.
func (s *Store) frameAt(off, size int64, buf *[]byte) (bool, error) {
	var hdr [frameHeaderLen]byte
	if off+frameHeaderLen >= size {
		return false, nil
	}
	if _, err := s.f.ReadAt(hdr[:], off); err != nil {
		return false, err
	}
	n := binary.LittleEndian.Uint32(hdr[0:4])
	if n == 0 || n > maxFrameBody || int64(n) > size-off-frameHeaderLen {
		return false, nil
	}
	var b []byte
	if buf != nil {
		b = *buf
	}
	if cap(b) < int(n) {
		b = make([]byte, n)
	}
	b = b[:n]
	if buf != nil {
		*buf = b
	}
	if _, err := s.f.ReadAt(b, off+frameHeaderLen); err != nil {
		return false, err
	}
	if !sumMatches(hdr[:], b) {
		return false, nil
	}
	_, err := decodeBody(b)
	return err == nil, nil
}

// initFile writes the header of a new log, replacing partial content.
func (s *Store) initFile(size int64) error {
	if size > 0 {
		if err := s.f.Truncate(0); err != nil {
			return abi.Wrap(abi.CodeUnavailable, err, "logstore: reset %s", s.path)
		}
	}
	if _, err := s.f.WriteAt(appendHeader(nil), 0); err != nil {
		return abi.Wrap(abi.CodeUnavailable, err, "logstore: write header of %s", s.path)
	}
	if err := s.f.Sync(); err != nil {
		return abi.Wrap(abi.CodeUnavailable, err, "logstore: sync %s", s.path)
	}
	if err := syncDir(s.dir); err != nil {
		return abi.Wrap(abi.CodeUnavailable, err, "logstore: sync directory %s", s.dir)
	}
	return nil
}

// syncDir makes the creation or renaming of files in dir durable. A
// variable so that tests can see the calls.
var syncDir = func(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Describe reports a durable store with atomic batches and an expiry index.
func (s *Store) Describe() abi.Description {
	return abi.Description{
		Name:         Name,
		ABIMajor:     abi.VersionMajor,
		ABIMinor:     abi.VersionMinor,
		Capabilities: abi.CapDurable | abi.CapAtomicBatch | abi.CapExpiryIndex,
	}
}

// Stats returns the current size and content of the log.
func (s *Store) Stats() Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return Stats{FileBytes: s.size, LiveBytes: s.ix.liveBytes, Records: s.ix.records, Compactions: s.compactions}
}

func errClosed() error { return abi.Errorf(abi.CodeUnavailable, "logstore: store is closed") }

// readable reports why the store cannot be read; callers hold mu.
func (s *Store) readable() error {
	if s.closed {
		return errClosed()
	}
	return nil
}

// writable reports why the store cannot be written; callers hold wmu.
func (s *Store) writable() error {
	if s.closed {
		return errClosed()
	}
	if s.failed != nil {
		return abi.Wrap(abi.CodeUnavailable, s.failed, "logstore: a failed write left %s in an unknown state; close and reopen the store", s.path)
	}
	return nil
}

type recKey struct {
	id  bucketID
	key string
}

// batchOp is one mutation as it will change the index once committed.
type batchOp struct {
	id  bucketID
	key string
	e   *entry // nil for a delete
}

// Apply appends the batch's frames and a commit frame, syncs the file, and
// only then makes the batch visible. A failed write is truncated away, so
// the batch is never replayed.
func (s *Store) Apply(ctx context.Context, b *abi.Batch) error {
	if err := abi.ContextError(ctx); err != nil {
		return err
	}
	if err := abi.ValidateBatch(b); err != nil {
		return err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.writable(); err != nil {
		return err
	}
	if err := abi.ContextError(ctx); err != nil {
		return err
	}

	// State of the records this batch touched, so that later mutations of
	// a record see earlier ones (nil: deleted in this batch).
	var touched map[recKey]*entry
	if len(b.Mutations) > 1 {
		touched = make(map[recKey]*entry, len(b.Mutations))
	}
	current := func(k recKey) *entry {
		if e, ok := touched[k]; ok {
			return e
		}
		return s.ix.get(k.id, k.key)
	}
	ops := make([]batchOp, 0, len(b.Mutations))
	base := s.size
	written := int64(0) // bytes of this batch already written at base
	buf := s.buf[:0]
	for i := range b.Mutations {
		m := &b.Mutations[i]
		k := recKey{bucketID{m.Map, m.Backup}, m.Key}
		prev := current(k)
		switch m.Kind {
		case abi.OpPut:
			created := b.Now
			if prev != nil {
				created = prev.created
			}
			start := len(buf)
			var voff int
			buf, voff = appendPut(buf, m.Backup, m.Map, m.Key, m.ExpirationTime, created, b.Now, m.Value)
			e := &entry{
				off: base + written + int64(start), frameLen: uint32(len(buf) - start),
				valueOff: uint32(voff), valueLen: uint32(len(m.Value)),
				exp: m.ExpirationTime, created: created, updated: b.Now,
			}
			ops = append(ops, batchOp{k.id, k.key, e})
			if touched != nil {
				touched[k] = e
			}
		case abi.OpDelete:
			if prev == nil {
				continue // nothing to delete: write nothing
			}
			buf = appendDelete(buf, m.Backup, m.Map, m.Key)
			ops = append(ops, batchOp{k.id, k.key, nil})
			if touched != nil {
				touched[k] = nil
			}
		}
		if len(buf) >= writeChunk {
			if err := s.write(buf, base+written); err != nil {
				return s.rollback(base, err)
			}
			written += int64(len(buf))
			buf = buf[:0]
		}
	}
	if len(ops) == 0 {
		return nil
	}
	buf = appendCommit(buf, uint32(len(ops)))
	if err := s.write(buf, base+written); err != nil {
		return s.rollback(base, err)
	}
	written += int64(len(buf))
	if err := s.f.Sync(); err != nil {
		// The batch may be partly on disk. Earlier batches were synced by
		// earlier calls, so cutting the file back to base (and syncing
		// that) leaves exactly the acknowledged batches.
		return s.rollback(base, err)
	}
	if cap(buf) <= 2*writeChunk {
		s.buf = buf[:0]
	} else {
		s.buf = nil
	}

	s.mu.Lock()
	for _, o := range ops {
		if o.e == nil {
			s.ix.del(o.id, o.key)
		} else {
			s.ix.put(o.id, o.key, o.e)
		}
	}
	s.size = base + written
	s.mu.Unlock()

	s.maybeCompact()
	return nil
}

func (s *Store) write(p []byte, off int64) error {
	_, err := s.f.WriteAt(p, off)
	return err
}

// rollback truncates a failed batch away so that it is never replayed, and
// marks the store failed when that is not certain. It returns the error for
// Apply.
func (s *Store) rollback(base int64, cause error) error {
	s.buf = nil
	terr := s.f.Truncate(base)
	if terr == nil {
		terr = s.f.Sync()
	}
	if terr != nil {
		s.mu.Lock()
		s.failed = errors.Join(cause, terr)
		s.mu.Unlock()
	}
	return abi.Wrap(abi.CodeUnavailable, cause, "logstore: write batch to %s; nothing of the batch was applied", s.path)
}

// Get returns the records of keys found in one map, reading values from the
// log.
func (s *Store) Get(ctx context.Context, mapName string, backup bool, keys []string) ([]abi.Record, error) {
	if err := abi.ContextError(ctx); err != nil {
		return nil, err
	}
	if err := abi.ValidateGet(mapName, keys); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.readable(); err != nil {
		return nil, err
	}
	bk := s.ix.buckets[bucketID{mapName, backup}]
	if bk == nil {
		return nil, nil
	}
	var seen map[string]struct{}
	if len(keys) > 1 {
		seen = make(map[string]struct{}, len(keys))
	}
	out := make([]abi.Record, 0, len(keys))
	var es []*entry
	for i, k := range keys {
		if i%1024 == 1023 {
			if err := abi.ContextError(ctx); err != nil {
				return nil, err
			}
		}
		if seen != nil {
			if _, dup := seen[k]; dup {
				continue
			}
			seen[k] = struct{}{}
		}
		e := bk.recs[k]
		if e == nil {
			continue
		}
		out = append(out, s.record(mapName, k, backup, e))
		es = append(es, e)
	}
	if err := checkResponseLimit(ctx, out, es); err != nil {
		return nil, err
	}
	if err := s.readValues(out, es); err != nil {
		return nil, err
	}
	return out, nil
}

// recordMinOverhead is the least a record adds to an encoded response
// beyond its key and value (see the guest SDK's checkFits): a lower bound,
// so that a result that fits is never refused.
const recordMinOverhead = 6

// checkResponseLimit refuses a get whose records cannot fit in the
// caller's response limit (abi.ResponseLimit) before their values are
// read: inside wasm, reading many large values ran the instance out of
// memory, which traps, instead of answering CodeResourceExhausted.
func checkResponseLimit(ctx context.Context, recs []abi.Record, es []*entry) error {
	limit := abi.ResponseLimit(ctx)
	if limit <= 0 {
		return nil
	}
	n := 0
	for i, e := range es {
		n += len(recs[i].Key) + int(e.valueLen) + recordMinOverhead
		if n > limit {
			return abi.Errorf(abi.CodeResourceExhausted,
				"logstore: get of %d keys needs a response of %d bytes or more, over the limit of %d bytes; ask for fewer keys",
				len(es), n, limit)
		}
	}
	return nil
}

// record builds a record without its value from its index entry.
func (s *Store) record(mapName, key string, backup bool, e *entry) abi.Record {
	return abi.Record{Map: mapName, Key: key, Backup: backup, ExpirationTime: e.exp, CreatedAt: e.created, UpdatedAt: e.updated}
}

// Reads of values that lie close together in the log are merged into one
// read of at most maxReadRun bytes, skipping gaps of up to maxReadGap bytes:
// after a compaction, or for keys written in order, a page of a scan is one
// read instead of one per record.
const (
	maxReadGap = 4 << 10
	maxReadRun = 1 << 20
)

// readValues sets recs[i].Value to the value of es[i]; callers hold mu.
// Values read in one run share its buffer, each capped to its own length
// so that appending to one cannot overwrite another.
func (s *Store) readValues(recs []abi.Record, es []*entry) error {
	order := make([]int, len(es))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(es[a].valuePos(), es[b].valuePos()) })
	for i := 0; i < len(order); {
		start := es[order[i]].valuePos()
		end := start + int64(es[order[i]].valueLen)
		j := i + 1
		for ; j < len(order); j++ {
			e := es[order[j]]
			p := e.valuePos()
			if p-end > maxReadGap || p+int64(e.valueLen)-start > maxReadRun {
				break
			}
			end = max(end, p+int64(e.valueLen))
		}
		buf := make([]byte, end-start)
		if _, err := s.f.ReadAt(buf, start); err != nil {
			r := &recs[order[i]]
			return abi.Wrap(abi.CodeInternal, err, "logstore: read value of key %q in map %q from %s at offset %d", r.Key, r.Map, s.path, start)
		}
		for _, k := range order[i:j] {
			off := es[k].valuePos() - start
			n := int64(es[k].valueLen)
			recs[k].Value = buf[off : off+n : off+n]
		}
		i = j
	}
	return nil
}

// Scan pages through one map in byte order of keys.
func (s *Store) Scan(ctx context.Context, req abi.ScanRequest) (abi.Page, error) {
	if err := abi.ContextError(ctx); err != nil {
		return abi.Page{}, err
	}
	if err := abi.ValidateScan(&req); err != nil {
		return abi.Page{}, err
	}
	after, hasAfter, err := abi.ParseKeyCursor(req.Cursor)
	if err != nil {
		return abi.Page{}, err
	}
	id := bucketID{req.Map, req.Backup}
	s.mu.RLock()
	if bk := s.ix.buckets[id]; bk != nil && bk.needsSort() {
		// Sorting changes the bucket: do it under the write lock, then
		// read under the read lock like every other reader.
		s.mu.RUnlock()
		s.mu.Lock()
		if bk := s.ix.buckets[id]; bk != nil {
			bk.sortKeys()
		}
		s.mu.Unlock()
		s.mu.RLock()
	}
	defer s.mu.RUnlock()
	if err := s.readable(); err != nil {
		return abi.Page{}, err
	}
	bk := s.ix.buckets[id]
	if bk == nil {
		return abi.Page{}, nil
	}
	if bk.needsSort() {
		// A batch landed between the two locks; its keys are not sorted yet.
		// Serve the page from a sorted copy.
		cp := &bucket{recs: bk.recs, sorted: bk.sorted, added: append([]string(nil), bk.added...), stale: bk.stale}
		cp.sortKeys()
		bk = cp
	}
	i := 0
	if hasAfter {
		i = bk.after(after)
	}
	var page abi.Page
	var es []*entry
	used := 0
	for ; i < len(bk.sorted); i++ {
		k := bk.sorted[i]
		e := bk.recs[k]
		size := len(k) + int(e.valueLen)
		if len(page.Records) >= req.Limit || (len(page.Records) > 0 && used+size > req.MaxBytes) {
			page.Cursor = abi.KeyCursor(page.Records[len(page.Records)-1].Key)
			break
		}
		page.Records = append(page.Records, s.record(req.Map, k, req.Backup, e))
		es = append(es, e)
		used += size
	}
	if err := s.readValues(page.Records, es); err != nil {
		return abi.Page{}, err
	}
	return page, nil
}

// ListMaps returns the sorted names of maps with primary records.
func (s *Store) ListMaps(ctx context.Context) ([]string, error) {
	if err := abi.ContextError(ctx); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.readable(); err != nil {
		return nil, err
	}
	var out []string
	for id, bk := range s.ix.buckets {
		if !id.backup && len(bk.recs) > 0 {
			out = append(out, id.mapName)
		}
	}
	slices.Sort(out)
	return out, nil
}

// ListExpired returns records whose expiration has passed, oldest first,
// from the expiry index.
func (s *Store) ListExpired(ctx context.Context, now int64, limit int) ([]abi.Record, error) {
	if err := abi.ContextError(ctx); err != nil {
		return nil, err
	}
	limit = abi.ScanLimit(limit)
	// The index drops stale items as it goes: it needs the write lock.
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.readable(); err != nil {
		return nil, err
	}
	items := s.ix.expired(now, limit)
	out := make([]abi.Record, 0, len(items))
	for _, it := range items {
		out = append(out, s.record(it.id.mapName, it.key, it.id.backup, s.ix.get(it.id, it.key)))
	}
	return out, nil
}

// Close closes the log file. Every later call fails with CodeUnavailable.
// It is idempotent.
func (s *Store) Close() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.ix = newIndex()
	if s.lock != nil {
		// Released after the log is closed (deferred), so that a store
		// opened next never shares the file with this one.
		defer s.lock.Close()
	}
	if err := s.f.Close(); err != nil {
		return abi.Wrap(abi.CodeInternal, err, "logstore: close %s", s.path)
	}
	return nil
}
