package host

import (
	"fmt"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/sys"
)

// dataQuota bounds what a plugin keeps in its data directory
// (Options.DataMaxMB, DataMaxFiles), all its instances together. Usage is
// measured by walking the directory at Load; from then on every byte the
// guest writes (or grows a file by, a write past the end counting the gap)
// and every file or directory it creates (see entryBytes) is added to the
// measurement, an atomic add, which makes the count an
// upper bound: overwrites, deletes and truncations are not subtracted. When
// the count would pass a limit, the directory is walked again for its true
// usage, at most once per quotaStep of the limit written, created or freed
// since the last walk, and only if the truth is still over is the write or
// creation refused (the guest sees EIO: wazero has no ENOSPC nor EDQUOT).
// Each walk reads at most DataMaxFiles+1 entries.
type dataQuota struct {
	root               string
	maxBytes, maxFiles int64 // 0: not limited
	// bytes and files are the usage measured at the last walk plus what
	// was written and created since, refused attempts included (so that
	// attempts at a full quota lead to a walk once they add up to a
	// step). Writes running while a walk reads the directory may be
	// counted once less until the next walk.
	bytes, files atomic.Int64
	// freedBytes and freedFiles estimate what deletes, truncations and
	// replacements freed since the last walk: they only let the next walk
	// come sooner.
	freedBytes, freedFiles atomic.Int64
	// refusals counts refused writes and creations; a failed call during
	// which it moved gets the quota's note (see noteSpace).
	refusals atomic.Int64
	moves    *sync.RWMutex // the plugin's: a walk holds it shared
	log      hclog.Logger
	// bytesName and filesName are the limits' names in the note
	// (Options.SettingName).
	bytesName, filesName string

	// open holds the files open for writing, which a walk may not find
	// (deleted while open, or moved out of a path's reach) though they
	// keep their space and can still be written.
	openMu sync.Mutex
	open   map[*quotaFile]struct{}

	mu sync.Mutex // one walk at a time; guards what follows
	// walkedBytes and walkedFiles are the counts right after the last walk.
	walkedBytes, walkedFiles int64
	note                     string // of the last refusal
	full                     bool   // refusing since the last walk found room (warned once)
}

// quotaStep is the fraction of a limit that must be written, created or
// freed between two walks of the directory.
const quotaStep = 16

// newDataQuota measures root for the limits of o; nil when neither is set.
func newDataQuota(root string, o *Options, moves *sync.RWMutex, log hclog.Logger) *dataQuota {
	if o.DataMaxMB <= 0 && o.DataMaxFiles <= 0 {
		return nil
	}
	q := &dataQuota{root: root, maxBytes: int64(o.DataMaxMB) << 20, maxFiles: max(int64(o.DataMaxFiles), 0), moves: moves, log: log,
		bytesName: o.setting("TOPGUN_PLUGIN_DATA_MAX_MB"), filesName: o.setting("TOPGUN_PLUGIN_DATA_MAX_FILES")}
	b, f := q.walk()
	q.bytes.Store(b)
	q.files.Store(f)
	q.walkedBytes, q.walkedFiles = b, f
	return q
}

// grow admits n more bytes in the directory. It is the write's hot path:
// one atomic add while under the limit.
func (q *dataQuota) grow(n int64) bool {
	if q == nil || q.maxBytes == 0 || n <= 0 {
		return true
	}
	if n > q.maxBytes {
		// Never fits. Counted whole, a write near offset 2^63 (a sparse
		// file tmpfs or xfs allows) would overflow the count and open
		// the quota; counted as just over the limit, it still adds to
		// the refused attempts that lead to a walk.
		q.bytes.Add(q.maxBytes + 1)
		q.settle(false, q.maxBytes+1, 0, true, false)
		return false
	}
	if q.bytes.Add(n) <= q.maxBytes {
		return true
	}
	return q.settle(false, n, 0, true, false)
}

// unwrite gives back n bytes admitted by grow but not written.
func (q *dataQuota) unwrite(n int64) {
	if q != nil && q.maxBytes != 0 && n > 0 {
		q.bytes.Add(-n)
	}
}

// create admits one more file or directory, and bytes more bytes (a hard
// link: the walk counts each name's size). At the limit, exists (when not
// nil) is asked whether the name exists already, in which case nothing is
// created: the attempt is not counted and is admitted. The caller holds
// moves shared.
func (q *dataQuota) create(bytes int64, exists func() bool) bool {
	if q == nil {
		return true
	}
	overF := q.maxFiles != 0 && q.files.Add(1) > q.maxFiles
	overB := q.maxBytes != 0 && bytes > 0 && q.bytes.Add(bytes) > q.maxBytes
	if !overF && !overB {
		return true
	}
	if exists != nil && exists() {
		if q.maxFiles != 0 {
			q.files.Add(-1)
		}
		return true
	}
	var nF int64
	if q.maxFiles != 0 {
		nF = 1
	}
	return q.settle(true, max(bytes, 0), nF, overB, overF)
}

// freed records that about bytes and files were freed.
func (q *dataQuota) freed(bytes, files int64) {
	if q == nil {
		return
	}
	if bytes > 0 {
		q.freedBytes.Add(bytes)
	}
	if files > 0 {
		q.freedFiles.Add(files)
	}
}

// over reports which of the limits checked the counts b and f pass.
func (q *dataQuota) over(b, f int64, checkB, checkF bool) (overB, overF bool) {
	return checkB && q.maxBytes != 0 && b > q.maxBytes, checkF && q.maxFiles != 0 && f > q.maxFiles
}

// settle is the slow path of an admission whose count passed a limit (the
// attempt already counted): it walks the directory if enough happened
// since the last walk, and reports whether the usage with the attempt (nB
// bytes and nF files, counted already) is within the limits checked
// (checkB: bytes, checkF: files). held: the caller holds moves shared.
func (q *dataQuota) settle(held bool, nB, nF int64, checkB, checkF bool) bool {
	if !held {
		q.moves.RLock()
		defer q.moves.RUnlock()
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	b, f := q.bytes.Load(), q.files.Load()
	overB, overF := q.over(b, f, checkB, checkF)
	if !overB && !overF {
		return true // a walk meanwhile found room
	}
	due := overB && b-q.walkedBytes+q.freedBytes.Load() >= max(q.maxBytes/quotaStep, 1) ||
		overF && f-q.walkedFiles+q.freedFiles.Load() >= max(q.maxFiles/quotaStep, 1)
	if due {
		wb, wf := q.walk()
		// The walk's truth replaces what was counted before it; the
		// attempt (not made yet), and what was admitted during the walk,
		// stay counted on top.
		q.walkedBytes = q.bytes.Add(wb - b + nB)
		q.walkedFiles = q.files.Add(wf - f + nF)
		q.freedBytes.Store(0)
		q.freedFiles.Store(0)
		if overB, overF = q.over(q.walkedBytes, q.walkedFiles, checkB, checkF); !overB && !overF {
			if q.full {
				q.full = false
				q.log.Info("the data directory is under its quota again", "data_dir", q.root, "bytes", wb, "files", wf)
			}
			return true
		}
	}
	q.refusals.Add(1)
	if overF {
		q.note = fmt.Sprintf("; the data directory %s holds as many files and directories as its limit allows (%s=%d), so creating one failed, which a wasm plugin sees as an I/O error; remove files there or raise the limit", q.root, q.filesName, q.maxFiles)
	} else {
		q.note = fmt.Sprintf("; the data directory %s is at its quota (%s=%d), so a write failed, which a wasm plugin sees as an I/O error; remove data there or raise the quota", q.root, q.bytesName, q.maxBytes>>20)
	}
	if !q.full {
		q.full = true
		q.log.Warn("the data directory reached its quota; the plugin's writes fail (as I/O errors)", "data_dir", q.root, "problem", q.note[2:])
	}
	return false
}

// lastNote returns the note of the last refusal.
func (q *dataQuota) lastNote() string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.note
}

// entryBytes estimates what creating the entry name adds to its directory
// (ext4 keeps 8 bytes and the name rounded to 4), plus, for a directory,
// the block it starts with: the walk counts directories by their size.
func entryBytes(name string, dir bool) int64 {
	n := int64(8 + (len(path.Base(name))+3)&^3)
	if dir {
		n += 4096
	}
	return n
}

// fileID identifies a file (zero: unknown, as on systems without inode
// numbers).
type fileID struct{ dev, ino uint64 }

func statID(st sys.Stat_t) fileID { return fileID{st.Dev, st.Ino} }

// track wraps f, just opened, so that its writes are counted, and keeps
// it for the walks while it is open.
func (q *dataQuota) track(f experimentalsys.File) experimentalsys.File {
	qf := &quotaFile{File: f, q: q}
	if st, e := f.Stat(); e == 0 && st.Mode.IsRegular() && st.Ino != 0 {
		qf.id, qf.base = statID(st), st.Size
		q.openMu.Lock()
		if q.open == nil {
			q.open = map[*quotaFile]struct{}{}
		}
		q.open[qf] = struct{}{}
		q.openMu.Unlock()
	}
	return qf
}

func (q *dataQuota) untrack(f *quotaFile) {
	q.openMu.Lock()
	delete(q.open, f)
	q.openMu.Unlock()
}

// openSizes returns, for each file open for writing, an upper bound of its
// size: the largest size at an open plus what every descriptor admitted.
func (q *dataQuota) openSizes() map[fileID]int64 {
	q.openMu.Lock()
	defer q.openMu.Unlock()
	if len(q.open) == 0 {
		return nil
	}
	base, grown := map[fileID]int64{}, map[fileID]int64{}
	for f := range q.open {
		base[f.id] = max(base[f.id], f.base)
		grown[f.id] += f.grown.Load()
	}
	for id, g := range grown {
		base[id] += g
	}
	return base
}

// walkBatch is how many entries walkData reads from a directory at once.
const walkBatch = 256

// walkData visits the entries under root (not root itself), depth first.
// A directory is read walkBatch entries at a time and one directory is
// open at a time, so neither the host's heap nor its descriptors grow
// with the directory; links are not followed; a directory that cannot be
// read is skipped. It stops once it has read more than limit entries (0:
// no limit), that one not visited, and returns how many it read.
func walkData(root string, limit int64, visit func(dir string, e fs.DirEntry)) (n int64) {
	dirs := []string{root}
	for len(dirs) > 0 {
		d := dirs[len(dirs)-1]
		dirs = dirs[:len(dirs)-1]
		f, err := os.Open(d)
		if err != nil {
			continue // gone meanwhile, or unreadable: nothing there
		}
		for {
			ents, err := f.ReadDir(walkBatch)
			for _, e := range ents {
				if n++; limit != 0 && n > limit {
					_ = f.Close()
					return n
				}
				if e.IsDir() {
					dirs = append(dirs, filepath.Join(d, e.Name()))
				}
				visit(d, e)
			}
			if err != nil {
				break // the end, or a directory that cannot be read further
			}
		}
		_ = f.Close()
	}
	return n
}

// walk returns the bytes of the regular files and directories under root
// (not root's own) and the number of entries (files, directories,
// links...), reading at most maxFiles+1 entries when files are limited.
//
// A file open for writing that the walk does not find is counted by the
// bound openSizes gives.
func (q *dataQuota) walk() (bytes, files int64) {
	unseen := q.openSizes()
	blind := false // the system gives entries no inode numbers
	files = walkData(q.root, q.maxFiles, func(_ string, e fs.DirEntry) {
		if !e.IsDir() && !e.Type().IsRegular() {
			return
		}
		info, err := e.Info()
		if err != nil {
			return
		}
		// A directory's blocks count: it keeps them after its entries are
		// deleted (ext4 never shrinks one).
		bytes = addSat(bytes, info.Size())
		if e.Type().IsRegular() && len(unseen) > 0 {
			id := statID(sys.NewStat_t(info))
			blind = blind || id.ino == 0
			delete(unseen, id)
		}
	})
	if !blind {
		for _, n := range unseen {
			bytes = addSat(bytes, n)
		}
	}
	return bytes, files
}

// addSat adds sizes without wrapping: a sparse file near 2^63 bytes
// already in the directory must not turn the sum negative, under the quota.
func addSat(a, b int64) int64 {
	if b > 0 && a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}
