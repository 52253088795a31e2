package host

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	"github.com/tetratelabs/wazero/sys"
)

// confinedFS is the data directory a plugin is granted. wazero's directory
// mount refuses ".." above its root but follows symbolic links wherever
// they point, so a link in the data directory (left by an operator, a
// restore or another process) would let the plugin read or write any file
// the server can. confinedFS resolves every path the guest uses, links
// included, and refuses with EPERM a path that ends up outside the
// directory. A path that does not exist yet is checked through its
// nearest existing parent; a dangling link is refused.
//
// The check and the use of a path are two steps: another process of the
// host that swaps a directory for a link between them could still win
// that race. The plugin itself cannot create links (Symlink is refused),
// nor move or hard-link the operator's (a relative link can point outside
// from another place). Moving a directory that holds an operator's
// relative link changes where the link leads, so the instances of a
// multi_instance plugin share one lock: a Rename holds it exclusively,
// every other path operation shared from its check to its use, and no
// instance can move a directory while another is between the two.
type confinedFS struct {
	experimentalsys.FS
	root  string        // absolute, links resolved
	stop  func() bool   // past the call's deadline (see deadlineFile); nil: never
	moves *sync.RWMutex // shared by the instances of one plugin
	// files counts the files open through the FS of every instance of one
	// plugin (nil: not counted): each holds a descriptor of the process,
	// whose limit every tenant and the server share.
	files *atomic.Int64
	// quota bounds what the directory holds (nil: not limited); shared
	// by the instances of one plugin.
	quota *dataQuota
}

// newConfinedFS confines a plugin instance to dir. moves must be shared
// by every instance of the plugin (nil: the instance is alone).
func newConfinedFS(dir string, stop func() bool, moves *sync.RWMutex) (*confinedFS, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	root, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, err
	}
	if moves == nil {
		moves = new(sync.RWMutex)
	}
	return &confinedFS{FS: sysfs.DirFS(root), root: root, stop: stop, moves: moves}, nil
}

// maxPathBytes is the longest guest path the data directory accepts
// (Linux's PATH_MAX, terminating NUL included).
const maxPathBytes = 4095

func (c *confinedFS) within(p string) bool {
	return p == c.root || strings.HasPrefix(p, c.root+string(filepath.Separator))
}

// check resolves the guest path p (relative to the root) and reports EPERM
// when it leaves the root. With follow false the last element is not
// resolved (Lstat, Unlink, Rename of a link itself).
func (c *confinedFS) check(p string, follow bool) experimentalsys.Errno {
	if len(p) > maxPathBytes {
		// The system refuses it anyway; resolving it first would copy a
		// path as long as the guest's memory several times on the host's
		// heap.
		return experimentalsys.ENAMETOOLONG
	}
	host := filepath.Join(c.root, filepath.FromSlash(p))
	if !c.within(host) {
		return experimentalsys.EPERM
	}
	if !follow {
		if host == c.root {
			return 0
		}
		return c.check(filepath.Dir(host)[len(c.root):], true)
	}
	real, err := filepath.EvalSymlinks(host)
	switch {
	case err == nil:
		if !c.within(real) {
			return experimentalsys.EPERM
		}
		return 0
	case errors.Is(err, fs.ErrNotExist):
		if _, lerr := os.Lstat(host); lerr == nil {
			return experimentalsys.EPERM // a dangling link: where it points is outside or unknown
		}
		if host == c.root {
			return experimentalsys.ENOENT
		}
		return c.check(filepath.Dir(host)[len(c.root):], true)
	default:
		// Let the real call report the error (permission, not a directory...).
		return 0
	}
}

func (c *confinedFS) OpenFile(path string, flag experimentalsys.Oflag, perm fs.FileMode) (experimentalsys.File, experimentalsys.Errno) {
	c.moves.RLock()
	defer c.moves.RUnlock()
	if e := c.check(path, flag&experimentalsys.O_NOFOLLOW == 0); e != 0 {
		return nil, e
	}
	if c.files != nil {
		// wasip1 has no EMFILE; the guest sees EIO, as it would for the
		// process's own limit.
		if c.files.Add(1) > MaxOpenFiles {
			c.files.Add(-1)
			return nil, experimentalsys.EIO
		}
	}
	if c.quota != nil {
		if e := c.admitOpen(path, flag); e != 0 {
			if c.files != nil {
				c.files.Add(-1)
			}
			return nil, e
		}
	}
	f, e := c.FS.OpenFile(path, flag, perm)
	if e != 0 {
		if c.files != nil {
			c.files.Add(-1)
		}
		return f, e
	}
	if c.files != nil {
		f = &countedFile{File: f, files: c.files}
	}
	if c.quota != nil && c.quota.maxBytes != 0 {
		f = c.quota.track(f)
	}
	if c.stop == nil {
		return f, e
	}
	return deadlineFile{File: f, stop: c.stop}, 0
}

// admitOpen counts what opening path with flag may add to or free in the
// directory: a creation (an open of an existing file with O_CREAT counts
// too, until the next walk, but is not refused), or a truncation. The guest sees EIO for a
// refusal: wazero has no ENOSPC nor EDQUOT.
func (c *confinedFS) admitOpen(path string, flag experimentalsys.Oflag) experimentalsys.Errno {
	if flag&experimentalsys.O_TRUNC != 0 {
		if st, e := c.FS.Stat(path); e == 0 && st.Mode.IsRegular() {
			c.quota.freed(st.Size, 0)
		}
	}
	if flag&experimentalsys.O_CREAT == 0 {
		return 0
	}
	// At the limit, an open of a file that exists creates nothing and
	// must work (a store opening its own files).
	exists := func() bool {
		_, e := c.FS.Lstat(path)
		return e == 0 && flag&experimentalsys.O_EXCL == 0
	}
	if !c.quota.create(entryBytes(path, false), exists) {
		return experimentalsys.EIO
	}
	return 0
}

// quotaFile counts what the guest writes to a file of the data directory
// against its quota (see dataQuota).
type quotaFile struct {
	experimentalsys.File
	q *dataQuota
	// id and base are the file's identity and size when opened (a zero id:
	// not a regular file, or not known); grown is what was admitted
	// through this descriptor since. A walk that does not find the file
	// (deleted, or moved where a path cannot reach) counts base+grown.
	id     fileID
	base   int64
	grown  atomic.Int64
	closed atomic.Bool
}

// growth is what writing n bytes at off (-1: at the file's offset) may add
// to the file: n, or up to the end of the write when it starts past the
// end, since the gap grows the file as much (and each block written in it
// takes disk space).
func (f *quotaFile) growth(n int, off int64) int64 {
	if n == 0 || f.IsAppend() {
		return int64(n)
	}
	if off < 0 {
		var e experimentalsys.Errno
		if off, e = f.File.Seek(0, io.SeekCurrent); e != 0 {
			return int64(n)
		}
	}
	st, e := f.File.Stat()
	if e != 0 {
		return int64(n)
	}
	return max(int64(n), off+int64(n)-st.Size)
}

// admit admits c more bytes through the file.
func (f *quotaFile) admit(c int64) bool {
	if !f.q.grow(c) {
		return false
	}
	f.grown.Add(c)
	return true
}

// unwrite gives back c bytes admitted but not written.
func (f *quotaFile) unwrite(c int64) {
	if c > 0 {
		f.q.unwrite(c)
		f.grown.Add(-c)
	}
}

// unwritten gives back what a write of want bytes that wrote n did not add:
// all it admitted when it wrote nothing, else the bytes not written.
func (f *quotaFile) unwritten(admitted int64, want, n int) {
	if n <= 0 {
		f.unwrite(admitted)
	} else {
		f.unwrite(int64(want - n))
	}
}

func (f *quotaFile) Write(p []byte) (int, experimentalsys.Errno) {
	c := f.growth(len(p), -1)
	if !f.admit(c) {
		return 0, experimentalsys.EIO
	}
	n, e := f.File.Write(p)
	f.unwritten(c, len(p), n)
	return n, e
}

func (f *quotaFile) Pwrite(p []byte, off int64) (int, experimentalsys.Errno) {
	c := f.growth(len(p), off)
	if !f.admit(c) {
		return 0, experimentalsys.EIO
	}
	n, e := f.File.Pwrite(p, off)
	f.unwritten(c, len(p), n)
	return n, e
}

// Truncate counts a file grown (fd_filestat_set_size, fd_allocate) by what
// it grows, and a file cut as freed.
func (f *quotaFile) Truncate(size int64) experimentalsys.Errno {
	st, e := f.File.Stat()
	if e != 0 {
		return e
	}
	if size <= st.Size {
		f.q.freed(st.Size-size, 0)
		return f.File.Truncate(size)
	}
	if !f.admit(size - st.Size) {
		return experimentalsys.EIO
	}
	if e := f.File.Truncate(size); e != 0 {
		f.unwrite(size - st.Size)
		return e
	}
	return 0
}

func (f *quotaFile) Close() experimentalsys.Errno {
	if f.closed.CompareAndSwap(false, true) {
		f.q.untrack(f)
	}
	return f.File.Close()
}

// countedFile gives its place in confinedFS.files back when closed (once:
// wazero may close a file again when the module closes).
type countedFile struct {
	experimentalsys.File
	files  *atomic.Int64
	closed atomic.Bool
}

func (f *countedFile) Close() experimentalsys.Errno {
	if f.closed.CompareAndSwap(false, true) {
		defer f.files.Add(-1)
	}
	return f.File.Close()
}

// deadlineFile fails reads and writes once the call is past its deadline:
// one fd_write or fd_read may carry a million iovecs of the whole memory
// each, terabytes the meter cannot stop inside the host call.
type deadlineFile struct {
	experimentalsys.File
	stop func() bool
}

func (f deadlineFile) Read(p []byte) (int, experimentalsys.Errno) {
	if f.stop() {
		return 0, experimentalsys.EINTR
	}
	return f.File.Read(p)
}

func (f deadlineFile) Pread(p []byte, off int64) (int, experimentalsys.Errno) {
	if f.stop() {
		return 0, experimentalsys.EINTR
	}
	return f.File.Pread(p, off)
}

func (f deadlineFile) Write(p []byte) (int, experimentalsys.Errno) {
	if f.stop() {
		return 0, experimentalsys.EINTR
	}
	return f.File.Write(p)
}

func (f deadlineFile) Pwrite(p []byte, off int64) (int, experimentalsys.Errno) {
	if f.stop() {
		return 0, experimentalsys.EINTR
	}
	return f.File.Pwrite(p, off)
}

func (c *confinedFS) Lstat(path string) (sys.Stat_t, experimentalsys.Errno) {
	c.moves.RLock()
	defer c.moves.RUnlock()
	if e := c.check(path, false); e != 0 {
		return sys.Stat_t{}, e
	}
	return c.FS.Lstat(path)
}

func (c *confinedFS) Stat(path string) (sys.Stat_t, experimentalsys.Errno) {
	c.moves.RLock()
	defer c.moves.RUnlock()
	if e := c.check(path, true); e != 0 {
		return sys.Stat_t{}, e
	}
	return c.FS.Stat(path)
}

func (c *confinedFS) Mkdir(path string, perm fs.FileMode) experimentalsys.Errno {
	c.moves.RLock()
	defer c.moves.RUnlock()
	if e := c.check(path, true); e != 0 {
		return e
	}
	if !c.quota.create(entryBytes(path, true), nil) {
		return experimentalsys.EIO
	}
	return c.FS.Mkdir(path, perm)
}

func (c *confinedFS) Chmod(path string, perm fs.FileMode) experimentalsys.Errno {
	c.moves.RLock()
	defer c.moves.RUnlock()
	if e := c.check(path, true); e != 0 {
		return e
	}
	return c.FS.Chmod(path, perm)
}

func (c *confinedFS) Rename(from, to string) experimentalsys.Errno {
	c.moves.Lock()
	defer c.moves.Unlock()
	if e := c.check(from, false); e != 0 {
		return e
	}
	if e := c.check(to, false); e != 0 {
		return e
	}
	if c.isLink(from) {
		return experimentalsys.EPERM
	}
	if c.quota != nil {
		// Replacing a file frees it.
		if st, e := c.FS.Lstat(to); e == 0 {
			c.quota.freed(st.Size, 1)
		}
	}
	return c.FS.Rename(from, to)
}

// isLink reports whether the guest path p is a symbolic link. Renaming or
// hard-linking one is refused: a relative link that points inside from
// where it is may point outside from elsewhere ("sub/up -> .." moved to
// "up"), and the guest cannot create links, so the operator's stay where
// they were put.
func (c *confinedFS) isLink(p string) bool {
	st, e := c.FS.Lstat(p)
	return e == 0 && st.Mode&fs.ModeSymlink != 0
}

func (c *confinedFS) Rmdir(path string) experimentalsys.Errno {
	c.moves.RLock()
	defer c.moves.RUnlock()
	if e := c.check(path, false); e != 0 {
		return e
	}
	e := c.FS.Rmdir(path)
	if e == 0 {
		c.quota.freed(0, 1)
	}
	return e
}

func (c *confinedFS) Unlink(path string) experimentalsys.Errno {
	c.moves.RLock()
	defer c.moves.RUnlock()
	if e := c.check(path, false); e != 0 {
		return e
	}
	var size int64
	if c.quota != nil {
		if st, e := c.FS.Lstat(path); e == 0 && st.Mode.IsRegular() {
			size = st.Size
		}
	}
	e := c.FS.Unlink(path)
	if e == 0 {
		c.quota.freed(size, 1)
	}
	return e
}

func (c *confinedFS) Link(oldPath, newPath string) experimentalsys.Errno {
	c.moves.RLock()
	defer c.moves.RUnlock()
	if e := c.check(oldPath, true); e != 0 {
		return e
	}
	if e := c.check(newPath, false); e != 0 {
		return e
	}
	if c.isLink(oldPath) {
		// The hard link would be to the link itself, not to what it
		// resolves to (the check above).
		return experimentalsys.EPERM
	}
	if c.quota != nil {
		// The walk counts every name of a file with its size; the new
		// name takes its directory entry, as any creation does.
		st, e := c.FS.Stat(oldPath)
		if e != 0 {
			return e
		}
		if !c.quota.create(st.Size+entryBytes(newPath, false), nil) {
			return experimentalsys.EIO
		}
	}
	return c.FS.Link(oldPath, newPath)
}

// Symlink is refused: a plugin has no use for links, and a link it made
// could point anywhere once the directory is moved or restored.
func (c *confinedFS) Symlink(oldPath, linkName string) experimentalsys.Errno {
	return experimentalsys.EPERM
}

func (c *confinedFS) Readlink(path string) (string, experimentalsys.Errno) {
	c.moves.RLock()
	defer c.moves.RUnlock()
	if e := c.check(path, false); e != 0 {
		return "", e
	}
	return c.FS.Readlink(path)
}

func (c *confinedFS) Utimens(path string, atim, mtim int64) experimentalsys.Errno {
	c.moves.RLock()
	defer c.moves.RUnlock()
	if e := c.check(path, true); e != 0 {
		return e
	}
	return c.FS.Utimens(path, atim, mtim)
}
