package logstore

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Frames per batch in a compacted log. Small batches keep the replay of a
// compacted log as cheap in memory as the replay of the original.
const compactBatchFrames = 1024

// maybeCompact compacts the log when it is large enough and mostly garbage.
// A failed compaction leaves the log as it was and is only logged: the
// batch that triggered it is already committed. Callers hold wmu.
func (s *Store) maybeCompact() {
	if s.closed || s.failed != nil {
		return
	}
	total := s.size - headerLen
	garbage := total - s.ix.liveBytes
	if s.size < s.opts.CompactMinBytes || s.size < s.compactRetry || total <= 0 || float64(garbage) < s.opts.CompactGarbageRatio*float64(total) {
		return
	}
	before := s.size
	if err := s.compact(); err != nil {
		// Try again once the log has grown by half: attempts then cost
		// at most a constant share of the bytes written, as compactions do.
		s.compactRetry = s.size + s.size/2
		s.log.Warn("compaction failed; the log is unchanged", "file", s.path, "error", err, "retry_at_bytes", s.compactRetry)
		return
	}
	s.compactRetry = 0
	s.log.Debug("log compacted", "file", s.path, "bytes_before", before, "bytes_after", s.size)
}

// compact copies the frames of the live records, in map and key order, to a
// new file, syncs it, renames it over the log and syncs the directory. The
// rename is the commit point: a crash before it leaves the old log (and a
// leftover file that Open removes), a crash after it the new one.
func (s *Store) compact() (err error) {
	type item struct {
		e   *entry
		off int64 // offset in the new file
	}
	// Sorting the buckets changes them: take the write lock for that.
	s.mu.Lock()
	ids := make([]bucketID, 0, len(s.ix.buckets))
	for id := range s.ix.buckets {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b bucketID) int {
		if c := strings.Compare(a.mapName, b.mapName); c != 0 {
			return c
		}
		switch {
		case a.backup == b.backup:
			return 0
		case !a.backup:
			return -1
		}
		return 1
	})
	items := make([]item, 0, s.ix.records)
	for _, id := range ids {
		bk := s.ix.buckets[id]
		bk.sortKeys()
		for _, k := range bk.sorted {
			items = append(items, item{e: bk.recs[k]})
		}
	}
	s.mu.Unlock()

	// Only this goroutine (holding wmu) changes entries and the file, so
	// the copy needs no lock.
	tmp := filepath.Join(s.dir, compactFileName)
	nf, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			nf.Close()
			os.Remove(tmp)
		}
	}()
	w := bufio.NewWriterSize(nf, writeChunk)
	if _, err := w.Write(appendHeader(nil)); err != nil {
		return err
	}
	pos := int64(headerLen)
	var frameBuf, commit []byte
	inBatch := 0
	for i := range items {
		e := items[i].e
		if cap(frameBuf) < int(e.frameLen) {
			frameBuf = make([]byte, e.frameLen)
		}
		fb := frameBuf[:e.frameLen]
		if _, err := s.f.ReadAt(fb, e.off); err != nil {
			return fmt.Errorf("read frame at offset %d: %w", e.off, err)
		}
		if _, err := w.Write(fb); err != nil {
			return err
		}
		items[i].off = pos
		pos += int64(len(fb))
		inBatch++
		if inBatch == compactBatchFrames || i == len(items)-1 {
			commit = appendCommit(commit[:0], uint32(inBatch))
			if _, err := w.Write(commit); err != nil {
				return err
			}
			pos += int64(len(commit))
			inBatch = 0
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := nf.Sync(); err != nil {
		return err
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return err
	}
	// From here on the new file is the log, whatever happens.
	old := s.f
	s.mu.Lock()
	for _, it := range items {
		it.e.off = it.off
	}
	s.f = nf
	s.size = pos
	s.compactions++
	s.mu.Unlock()
	old.Close()
	if derr := syncDir(s.dir); derr != nil {
		// The rename may not survive a crash, and appends to the new file
		// would then be lost with it: refuse further writes.
		s.mu.Lock()
		s.failed = fmt.Errorf("sync directory after compaction: %w", derr)
		s.mu.Unlock()
	}
	return nil
}
