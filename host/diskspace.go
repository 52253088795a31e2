package host

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/internal/rlimit"
)

// A full file system reaches a wasm plugin as an I/O error: wazero has no
// ENOSPC, EDQUOT nor EFBIG in its errno set and maps them to EIO, so a
// plugin can only say "I/O error", which reads like a failing disk. When a
// call into a plugin with a data directory fails, the host looks at that
// directory's file system itself and adds what it finds to the error.

// spaceFloor is the free space under which the data directory's file system
// counts as full whatever the failed request's size: file systems refuse
// writes before the last byte (metadata, journals, reserves).
const spaceFloor = 16 << 20

// spaceFacts is what a look at the data directory found.
type spaceFacts struct {
	ok bool // the file system could be read (statDataFS)
	// free is the bytes the server's user may still write; files and
	// filesFree the inodes (files 0: the file system does not say).
	free, files, filesFree uint64
	// limit is the process's file size limit (RLIMIT_FSIZE), 0 for none;
	// largest and largestPath the largest file in the data directory.
	limit, largest uint64
	largestPath    string
	// probe is the error of a write of one block there (probeDataWrite;
	// nil when it succeeded or was not tried).
	probe error
}

// statDataFS reads the free space of the file system holding dir (ok
// false where it cannot be read). A variable so that tests can fill a
// file system no test can fill for real.
var statDataFS = statFS

// probeDataWrite writes one block to an unnamed file in dir, which the
// plugin never sees, and returns the write's error (nil where it cannot
// try). wazero maps EDQUOT to EIO before the host sees a plugin's write
// fail, and statfs knows nothing of quotas (nor, on some file systems, of
// space it cannot allocate), so after a failed call the host asks the file
// system itself. A variable so that tests can fail it with errnos no test
// can cause for real, like statDataFS.
var probeDataWrite = probeWrite

// fileSizeLimit returns the process's file size limit, 0 for none. A
// variable for tests, like statDataFS.
var fileSizeLimit = rlimit.FileSize

// spaceCheckEvery bounds how often a failing plugin makes the host look at
// its data directory: calls failing in a burst share one look.
var spaceCheckEvery = time.Second

// maxSpaceWalk bounds the entries of the data directory read to find its
// largest file (only under a file size limit).
const maxSpaceWalk = 10000

// spaceWatch is a plugin's view of its data directory's space.
type spaceWatch struct {
	mu    sync.Mutex
	at    int64 // monoClock of the last look; valid once looked
	facts spaceFacts
	// short: the last look found the file system full (an episode, warned
	// of once); while set, successful calls look again too, so that the
	// end of the episode is seen and the next one warned of.
	short  atomic.Bool
	looked bool
}

// quotaMark is the quota's refusals before a call, for noteSpace.
func (p *plugin) quotaMark() int64 {
	if p.quota == nil {
		return 0
	}
	return p.quota.refusals.Load()
}

// noteSpace adds to err, a failed call with a request of reqBytes, what
// the host finds short in the data directory: its quota when the quota
// refused a write since mark (quotaMark before the call), else the file
// system's space; nothing when the plugin has no data directory, the error
// is not one a full disk leads to, or there is room.
func (p *plugin) noteSpace(err error, reqBytes int, mark int64) error {
	if err == nil || p.dataRoot == "" {
		return err
	}
	var note string
	if p.quota != nil && p.quota.refusals.Load() != mark {
		note = p.quota.lastNote()
	} else {
		switch abi.CodeOf(err) {
		case abi.CodeUnavailable, abi.CodeInternal, abi.CodeResourceExhausted:
		default:
			// Not found, invalid argument, a deadline...: answers a full
			// disk does not produce.
			return err
		}
		note = spaceNote(p.dataRoot, p.lookAtSpace(), uint64(reqBytes))
	}
	if note == "" {
		return err
	}
	var ae *abi.Error
	if errors.As(err, &ae) {
		// Same code, so the server treats the call as before: a full disk
		// is not a batch too large, which ResourceExhausted would say
		// (the server would split it and fail each part).
		return &abi.Error{Code: ae.Code, Err: &spaceError{err: err, note: note}}
	}
	return &spaceError{err: err, note: note}
}

// spaceOK is told of a call that succeeded: while an episode is on, it
// looks again (as often as failures do) to see it end.
func (p *plugin) spaceOK() {
	if p.space.short.Load() {
		p.lookAtSpace()
	}
}

// lookAtSpace returns the facts of the last look, looking again when it is
// older than spaceCheckEvery, and logs the start and the end of an episode.
func (p *plugin) lookAtSpace() spaceFacts {
	w := &p.space
	w.mu.Lock()
	defer w.mu.Unlock()
	now := monoClock()
	if w.looked && now-w.at < int64(spaceCheckEvery) {
		return w.facts
	}
	w.looked, w.at = true, now
	f := spaceFacts{}
	f.free, f.files, f.filesFree, f.ok = statDataFS(p.dataRoot)
	if !f.ok || f.free >= spaceFloor {
		// statfs sees room (or cannot tell): no block is written to a
		// file system it already finds full.
		f.probe = probeDataWrite(p.dataRoot)
	}
	if f.limit = fileSizeLimit(); f.limit != 0 {
		f.largestPath, f.largest = largestFile(p.dataRoot)
	}
	w.facts = f
	if note := spaceNote(p.dataRoot, f, 0); note != "" {
		if !w.short.Swap(true) {
			p.log.Warn("the data directory is out of space; the plugin's writes fail (as I/O errors)", "data_dir", p.dataRoot, "problem", note[2:])
		}
	} else if w.short.Swap(false) {
		p.log.Info("the data directory has space again", "data_dir", p.dataRoot, "bytes_free", f.free)
	}
	return f
}

// spaceNote is the sentence added to a failed call's error for the facts
// of dir, with a request of reqBytes; "" when nothing is short.
func spaceNote(dir string, f spaceFacts, reqBytes uint64) string {
	want := max(uint64(spaceFloor), 2*reqBytes)
	switch {
	case f.ok && f.free < want:
		return fmt.Sprintf("; the file system of the data directory %s is full (%d bytes free), which a wasm plugin sees as an I/O error; free space there", dir, f.free)
	case f.ok && f.files != 0 && f.filesFree == 0:
		return fmt.Sprintf("; the file system of the data directory %s has no free inodes, which a wasm plugin sees as an I/O error; remove files there", dir)
	case errors.Is(f.probe, errQuota):
		return fmt.Sprintf("; the data directory %s is over a file system quota (disk quota exceeded, EDQUOT), which a wasm plugin sees as an I/O error; raise the quota of the server's user, group or project there, or free space", dir)
	case errors.Is(f.probe, errNoSpace):
		return fmt.Sprintf("; the file system of the data directory %s is full (a write of one block fails with no space left on device, though it reports %d bytes free), which a wasm plugin sees as an I/O error; free space there", dir, f.free)
	case f.limit != 0 && f.largestPath != "" && f.largest+max(2*reqBytes, 64<<10) >= f.limit:
		return fmt.Sprintf("; %s holds %d bytes and the server's file size limit (RLIMIT_FSIZE, ulimit -f) is %d bytes, past which writes fail, which a wasm plugin sees as an I/O error; raise the limit", f.largestPath, f.largest, f.limit)
	}
	return ""
}

// largestFile returns the largest regular file under dir (of the first
// maxSpaceWalk entries), "" when there is none.
func largestFile(dir string) (path string, size uint64) {
	walkData(dir, maxSpaceWalk, func(d string, e fs.DirEntry) {
		if !e.Type().IsRegular() {
			return
		}
		if info, err := e.Info(); err == nil && uint64(info.Size()) >= size {
			path, size = filepath.Join(d, e.Name()), uint64(info.Size())
		}
	})
	return path, size
}

// spaceError is a failed call's error with the host's note on the data
// directory's space after it.
type spaceError struct {
	err  error
	note string
}

func (e *spaceError) Error() string { return e.err.Error() + e.note }
func (e *spaceError) Unwrap() error { return e.err }
