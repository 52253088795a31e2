package redb

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	bolt "go.etcd.io/bbolt"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/internal/rlimit"
)

// Name is the backend name reported by Describe (STORAGE_BACKEND=redb).
const Name = "redb"

// DefaultPath is the file used when TOPGUN_REDB_PATH is not set. Only cmd/
// reads the environment; it passes the path to Open.
const DefaultPath = "./topgun.redb"

// DefaultTimeout is how long Open waits for another process to release the
// file lock before it gives up.
const DefaultTimeout = time.Second

// Options configure Open. The zero value of each field means its default,
// and a nil *Options means all defaults.
type Options struct {
	// Timeout is how long Open waits for the file lock held by another
	// process. Zero means DefaultTimeout; it must not be negative. A context
	// deadline that comes earlier shortens the wait.
	Timeout time.Duration

	// NoSync skips fsync at commit. It is for tests and benchmarks only: an
	// applied batch may be lost on a crash or power loss (it still survives
	// Close and a clean restart), and Describe no longer declares
	// abi.CapDurable.
	NoSync bool

	// ReadOnly opens an existing file for reading only, as a backup or a
	// copy reads it: the file is never written (a missing or empty file
	// is an error rather than a new database), Apply fails with
	// abi.CodeUnsupported, and the lock taken is shared, so
	// several readers may hold it at once while no writer (a server) can,
	// and a writer's lock keeps readers out (Timeout bounds the wait).
	ReadOnly bool

	// Logger receives the backend's few debug logs. Nil means
	// hclog.NewNullLogger().
	Logger hclog.Logger
}

// DefaultOptions returns the options used when Open gets nil.
func DefaultOptions() *Options {
	return &Options{Timeout: DefaultTimeout, Logger: hclog.NewNullLogger()}
}

// Validate reports the first invalid option.
func (o *Options) Validate() error {
	if o == nil {
		return nil
	}
	if o.Timeout < 0 {
		return abi.Errorf(abi.CodeInvalidArgument, "redb: lock timeout %s is negative; use 0 for the default of %s", o.Timeout, DefaultTimeout)
	}
	return nil
}

// withDefaults returns a copy of o with defaults filled in.
func (o *Options) withDefaults() Options {
	var c Options
	if o != nil {
		c = *o
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	return c
}

// Backend is the embedded, file-backed backend. It is safe for concurrent
// use. The zero value is not usable; call Open.
type Backend struct {
	db     *bolt.DB
	path   string
	noSync bool
	// readOnly: Options.ReadOnly; Apply is refused.
	readOnly bool
	log      hclog.Logger
	closed   atomic.Bool
	// damaged is set when bbolt panicked or faulted reading the file, or a
	// record failed its checksum: from then on writes are refused, because
	// bbolt trusts what it reads and a write through a damaged page can
	// spread the damage or make it allocate without bound.
	damaged atomic.Bool
}

var _ abi.Backend = (*Backend)(nil)

// Open opens the database file at path, creating it with mode 0600 when it
// does not exist (its directory must exist). It holds an exclusive lock on
// the file until Close: a second process (or a second Open in this process)
// waits up to opts.Timeout and then fails with CodeUnavailable and an error
// that names the file. A file that is not a topgun redb database fails with
// CodeInvalidArgument (CodeUnsupported for a newer format version); Open
// never panics on a bad file.
func Open(ctx context.Context, path string, opts *Options) (*Backend, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	o := opts.withDefaults()
	if path == "" {
		return nil, abi.Errorf(abi.CodeInvalidArgument, "redb: database path is empty; set TOPGUN_REDB_PATH to a file path (default %s)", DefaultPath)
	}
	if err := abi.ContextError(ctx); err != nil {
		return nil, err
	}
	deadline, byCtx := time.Now().Add(o.Timeout), false
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline, byCtx = dl, true
	}
	locked := func(cause error) error {
		if byCtx {
			return abi.Wrap(abi.CodeDeadlineExceeded, cause, "redb: %s is locked by another process and the context deadline came first", path)
		}
		return abi.Wrap(abi.CodeUnavailable, cause, "redb: %s is locked by another process (is another server running on it?); stop it or set TOPGUN_REDB_PATH to another file", path)
	}
	if o.ReadOnly {
		// Never create (or empty) the file a reader names: a mistyped
		// path is an error, not a new empty database.
		st, err := os.Stat(path)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, abi.Wrap(abi.CodeNotFound, err, "redb: %s does not exist", path)
			}
			return nil, openError(path, err)
		}
		if st.Mode().IsRegular() && st.Size() == 0 {
			return nil, abi.Errorf(abi.CodeInvalidArgument, "redb: %s is empty: it holds no database", path)
		}
	}
	if err := precheck(path, deadline, o.ReadOnly); err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, locked(err)
		}
		return nil, err
	}
	// Another process may take the lock between precheck and here; bbolt
	// then waits for what is left of the timeout.
	timeout := max(time.Until(deadline), 50*time.Millisecond)
	db, err := openBolt(path, &bolt.Options{Timeout: timeout, NoSync: o.NoSync, ReadOnly: o.ReadOnly})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, locked(err)
		}
		return nil, openError(path, err)
	}
	b := &Backend{db: db, path: path, noSync: o.NoSync, readOnly: o.ReadOnly, log: o.Logger}
	created, err := b.initFormat()
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	if created && !o.NoSync {
		// bbolt syncs the file, not the directory entry that names it: a
		// power loss soon after the first start could lose the whole file,
		// and with it writes already acknowledged as durable. Through a
		// symbolic link the entry is in the directory of the link's target.
		file, err := filepath.EvalSymlinks(path)
		if err == nil {
			err = syncDir(filepath.Dir(file))
		}
		if err != nil {
			_ = db.Close()
			return nil, abi.Wrap(abi.CodeUnavailable, err, "redb: cannot make the creation of %s durable", path)
		}
	}
	b.log.Debug("opened database", "path", path, "format_version", formatVersion, "created", created, "no_sync", o.NoSync)
	return b, nil
}

// precheck refuses a directory and a file whose bbolt header is broken or
// truncated before bbolt sees it (bbolt panics, faults or allocates without
// bound on some of them). It holds the file lock while it reads, waiting
// until deadline, and returns bolt.ErrTimeout if the lock stays taken. A
// missing or empty file is fine: bbolt initialises it. readOnly takes a
// shared lock and never empties the file.
func precheck(path string, deadline time.Time, readOnly bool) error {
	// Stat before opening: opening a FIFO blocks until a writer comes,
	// which no context or timeout can interrupt.
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return openError(path, err)
	}
	if err := checkKind(path, st); err != nil {
		return err
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return openError(path, err)
	}
	defer f.Close()
	if st, err = f.Stat(); err != nil {
		return openError(path, err)
	}
	if err := checkKind(path, st); err != nil {
		return err
	}
	if st.Size() == 0 {
		return nil
	}
	if err := lockFile(f, deadline, !readOnly); err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return err
		}
		return openError(path, err)
	}
	if err := checkFile(f, st.Size()); err != nil {
		var pe *fs.PathError
		switch {
		case errors.Is(err, errUnfinished) && readOnly:
			return abi.Wrap(abi.CodeInvalidArgument, err, "redb: %s holds no database: its first write never finished", path)
		case errors.Is(err, errUnfinished):
			// Nothing to keep: emptied, bbolt creates the file again.
			if err := os.Truncate(path, 0); err != nil {
				return openError(path, err)
			}
			return nil
		case errors.As(err, &pe):
			return openError(path, err)
		case errors.Is(err, errDamaged):
			return abi.Wrap(abi.CodeInvalidArgument, err, "redb: %s is corrupt; restore it from a backup, or inspect it with `bbolt check`", path)
		case errors.Is(err, errTopGunRedb):
			return abi.Wrap(abi.CodeInvalidArgument, err, "redb: %s cannot be opened; keep it for TopGun's server and set TOPGUN_REDB_PATH to another file (its data is not converted)", path)
		}
		return notOurs(path, err)
	}
	return nil
}

// checkKind refuses a directory and anything else that is not a regular file.
func checkKind(path string, st fs.FileInfo) error {
	if st.IsDir() {
		return abi.Errorf(abi.CodeInvalidArgument, "redb: %s is a directory; set TOPGUN_REDB_PATH to a file path, e.g. %s", path, filepath.Join(path, "topgun.redb"))
	}
	if !st.Mode().IsRegular() {
		return abi.Errorf(abi.CodeInvalidArgument, "redb: %s is not a regular file; set TOPGUN_REDB_PATH to a file path", path)
	}
	return nil
}

// openBolt calls bolt.Open and turns a panic or memory fault inside it (a
// corrupt file that passed precheck) into an error, closing the file so its
// lock is released.
func openBolt(path string, bo *bolt.Options) (db *bolt.DB, err error) {
	var file *os.File
	bo.OpenFile = func(name string, flag int, mode os.FileMode) (*os.File, error) {
		f, err := os.OpenFile(name, flag, mode)
		file = f
		return f, err
	}
	defer func() {
		if r := recover(); r != nil {
			if file != nil {
				_ = file.Close()
			}
			db, err = nil, fmt.Errorf("%v (%w)", r, bolt.ErrInvalid)
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	return bolt.Open(path, 0o600, bo)
}

// notOurs reports a file that is not a topgun redb database; cause says
// why and stays in the chain for errors.Is.
func notOurs(path string, cause error) error {
	return abi.Wrap(abi.CodeInvalidArgument, fmt.Errorf("%w; move it away or set TOPGUN_REDB_PATH to another file", cause),
		"redb: %s is not a topgun redb database", path)
}

// openError maps an error of opening the file.
func openError(path string, err error) error {
	switch {
	case errors.Is(err, bolt.ErrInvalid), errors.Is(err, bolt.ErrVersionMismatch), errors.Is(err, bolt.ErrChecksum):
		return notOurs(path, err)
	case errors.Is(err, fs.ErrNotExist):
		if target, lerr := os.Readlink(path); lerr == nil {
			// A dangling link: the missing directory is its target's.
			return abi.Wrap(abi.CodeInvalidArgument, err, "redb: cannot create %s: it is a symbolic link to %s, whose directory does not exist; create it or set TOPGUN_REDB_PATH to another file", path, target)
		}
		return abi.Wrap(abi.CodeInvalidArgument, err, "redb: cannot create %s: its directory does not exist; create it or set TOPGUN_REDB_PATH to another file", path)
	case errors.Is(err, fs.ErrPermission):
		if _, serr := os.Stat(path); errors.Is(serr, fs.ErrNotExist) {
			// The file is not there: its directory refused to create it.
			if target, lerr := os.Readlink(path); lerr == nil {
				return abi.Wrap(abi.CodeInvalidArgument, err, "redb: cannot create %s: it is a symbolic link to %s, whose directory is not writable; fix that directory's permissions or set TOPGUN_REDB_PATH to another file", path, target)
			}
			return abi.Wrap(abi.CodeInvalidArgument, err, "redb: cannot create %s: its directory is not writable; fix the directory's permissions or set TOPGUN_REDB_PATH to another file", path)
		}
		return abi.Wrap(abi.CodeInvalidArgument, err, "redb: cannot open %s for reading and writing; fix its permissions or set TOPGUN_REDB_PATH to another file", path)
	case errors.Is(err, syscall.EROFS):
		// A read-only mount (a volume mounted :ro, a read-only root file
		// system in a container) is a setting to fix, like a permission.
		return abi.Wrap(abi.CodeInvalidArgument, err, "redb: cannot open %s for writing: its file system is read-only; mount it read-write or set TOPGUN_REDB_PATH to a file on a writable file system", path)
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		// bbolt writes the first pages of a new file while opening it.
		return abi.Wrap(abi.CodeResourceExhausted, err, "redb: no space left to create %s; free disk space or set TOPGUN_REDB_PATH to a file on another file system", path)
	case errors.Is(err, syscall.ENOTDIR):
		return abi.Wrap(abi.CodeInvalidArgument, err, "redb: cannot open %s: a parent of it is not a directory; set TOPGUN_REDB_PATH to another file", path)
	case errors.Is(err, syscall.EISDIR):
		return abi.Wrap(abi.CodeInvalidArgument, err, "redb: %s is a directory; set TOPGUN_REDB_PATH to a file path", path)
	}
	return abi.Wrap(abi.CodeUnavailable, err, "redb: cannot open %s", path)
}

// initFormat creates the layout in a new (empty) bbolt file, or checks the
// format marker of an existing one. It reports whether it created the layout.
func (b *Backend) initFormat() (created bool, err error) {
	var fresh bool
	err = b.view(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			c := tx.Cursor()
			if k, _ := c.First(); k != nil {
				return notOurs(b.path, fmt.Errorf("it is a bbolt database of another program: it has no %q bucket", bucketMeta))
			}
			fresh = true
			return nil
		}
		raw := meta.Get(keyFormat)
		v, perr := strconv.ParseUint(string(raw), 10, 32)
		if raw == nil || perr != nil || v == 0 {
			return notOurs(b.path, fmt.Errorf("its format marker %q is missing or malformed", raw))
		}
		if v > formatVersion {
			return abi.Errorf(abi.CodeUnsupported, "redb: %s has format version %d, newer than the version %d this server supports; upgrade the server or set TOPGUN_REDB_PATH to another file", b.path, v, formatVersion)
		}
		if tx.Bucket(bucketExpiry) == nil {
			return notOurs(b.path, fmt.Errorf("bucket %q is missing", bucketExpiry))
		}
		return nil
	})
	if err != nil || !fresh {
		return false, err
	}
	if b.readOnly {
		return false, notOurs(b.path, errors.New("it is an empty bbolt database, without the topgun layout"))
	}
	err = b.update(0, 3, func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucket(bucketExpiry); err != nil {
			return err
		}
		meta, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		return meta.Put(keyFormat, strconv.AppendUint(nil, formatVersion, 10))
	})
	return err == nil, err
}

// Path returns the path of the database file, as given to Open.
func (b *Backend) Path() string { return b.path }

// Describe reports redb: durable (unless Options.NoSync), atomic batches and
// an expiry index. It is not shared: one process holds the file.
func (b *Backend) Describe() abi.Description {
	caps := abi.CapAtomicBatch | abi.CapExpiryIndex
	if !b.noSync {
		caps |= abi.CapDurable
	}
	return abi.Description{Name: Name, ABIMajor: abi.VersionMajor, ABIMinor: abi.VersionMinor, Capabilities: caps}
}

// Close releases the file and its lock, after in-flight operations finish.
// It is idempotent.
func (b *Backend) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	if err := b.db.Close(); err != nil {
		return abi.Wrap(abi.CodeInternal, err, "redb: closing %s", b.path)
	}
	b.log.Debug("closed database", "path", b.path)
	return nil
}

// Healthy reports a backend that refuses writes because an operation
// found the file damaged: reads may still answer, so readiness probes
// (plugins.Store.Ping) ask this too.
func (b *Backend) Healthy() error {
	if b.damaged.Load() {
		return b.errDamaged()
	}
	return nil
}

// syncDir fsyncs a directory, making the entries it holds durable.
// Windows has no such call (NTFS journals the entry with the file). It is
// a variable so that tests can see which directory is synced.
var syncDir = func(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func (b *Backend) errDamaged() error {
	return abi.Errorf(abi.CodeInternal, "redb: %s is corrupt (an earlier operation found damaged pages), so writes are refused to keep the damage from spreading; restore it from a backup, or inspect it with `bbolt check`", b.path)
}

func (b *Backend) errClosed() error {
	return abi.Errorf(abi.CodeUnavailable, "redb: backend for %s is closed", b.path)
}

// view runs fn in a read transaction; update in a write transaction that
// commits (durably unless NoSync) when fn returns nil. Both turn a panic or
// memory fault inside bbolt, which a corrupt file can cause, into an error;
// bbolt rolls the transaction back on the way out.
func (b *Backend) view(fn func(*bolt.Tx) error) (err error) {
	defer b.recoverCorrupt(&err)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	return b.mapErr(b.db.View(fn))
}

// reqBytes and muts bound what the transaction writes (see
// overFileSizeLimit).
func (b *Backend) update(reqBytes, muts int, fn func(*bolt.Tx) error) (err error) {
	defer b.recoverCorrupt(&err)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	err = b.db.Update(fn)
	mapped := b.mapErr(err)
	// Only a failure that lost its errno, as the resize's does: one that
	// kept it (an fsync's EIO) says what it is.
	var errno syscall.Errno
	if abi.CodeOf(mapped) == abi.CodeInternal && !b.damaged.Load() && !errors.As(err, &errno) {
		if size, limit, over := b.overFileSizeLimit(reqBytes, muts); over {
			// As a full disk: the server then splits a group commit.
			return abi.Wrap(abi.CodeResourceExhausted, err, "redb: %s (%d bytes) cannot grow past the process's file size limit (RLIMIT_FSIZE, ulimit -f) of %d bytes; raise the limit", b.path, size, limit)
		}
	}
	return mapped
}

// overFileSizeLimit reports whether a commit that failed for no known
// reason may have been stopped by the process's file size limit: bbolt
// reports a file it could not grow without the EFBIG ("file resize
// error: ..."), so the cause is told from the sizes. The file grows to at
// most its size plus what the commit wrote (reqBytes of keys and values,
// a page per mutation, branch pages and the freelist) plus bbolt's
// allocation step.
func (b *Backend) overFileSizeLimit(reqBytes, muts int) (size, limit uint64, over bool) {
	limit = rlimit.FileSize()
	if limit == 0 {
		return 0, 0, false
	}
	st, err := os.Stat(b.db.Path())
	if err != nil {
		return 0, limit, false
	}
	size = uint64(st.Size())
	grow := 2*uint64(reqBytes) + uint64(muts)*uint64(b.db.Info().PageSize) + size/256 + uint64(b.db.AllocSize)
	return size, limit, size+grow >= limit
}

func (b *Backend) recoverCorrupt(err *error) {
	if r := recover(); r != nil {
		b.damaged.Store(true)
		*err = abi.Wrap(abi.CodeInternal, fmt.Errorf("%v", r), "redb: %s is corrupt (bbolt failed reading it); restore it from a backup, or inspect it with `bbolt check`", b.path)
	}
}

// mapErr maps a bbolt error at the edge, keeping it as the cause.
func (b *Backend) mapErr(err error) error {
	if err == nil {
		return nil
	}
	var ae *abi.Error
	switch {
	case errors.As(err, &ae):
		return err
	case errors.Is(err, bolt.ErrDatabaseNotOpen):
		return abi.Wrap(abi.CodeUnavailable, err, "redb: backend for %s is closed", b.path)
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return abi.Wrap(abi.CodeResourceExhausted, err, "redb: no space left for %s; free disk space", b.path)
	case errors.Is(err, syscall.EFBIG):
		return abi.Wrap(abi.CodeResourceExhausted, err, "redb: %s cannot grow past the process's file size limit (RLIMIT_FSIZE, ulimit -f); raise the limit", b.path)
	case errors.Is(err, errCorruptRecord):
		b.damaged.Store(true)
		return abi.Wrap(abi.CodeInternal, err, "redb: %s is corrupt; restore it from a backup, or inspect it with `bbolt check`", b.path)
	}
	return abi.Wrap(abi.CodeInternal, err, "redb: %s", b.path)
}

// corrupt reports a record that does not decode.
func corrupt(mapName string, backup bool, key string, err error) error {
	return fmt.Errorf("map %q (backup %t) key %q: %w", mapName, backup, key, err)
}
