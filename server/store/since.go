package store

import (
	"container/heap"
	"context"
	"math"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/server/record"
)

// SinceLimits bound what Since holds and returns.
type SinceLimits struct {
	Records int
	Bytes   int64 // stored key plus record
	// WholeFirst returns the changes of the oldest millisecond whole when
	// they alone pass the bounds (for a caller holding nothing else), so
	// that such a millisecond cannot stop the caller's progress.
	WholeFirst bool
}

// Since returns the LWW records of a map, tombstones included, committed
// after since (Unix ms of the commit, not of the record's timestamp: a
// client's late write with an old stamp is still new to others), within
// lim. It scans the map in storage, for HTTP sync deltas.
//
// When more changed than fits, it keeps the oldest changes: every change
// committed up to upTo and none after, with complete false; the caller
// resumes with since = upTo, so the changes arrive in pages, none skipped.
// complete false with no entries means the changes committed in one
// millisecond alone pass the bounds (never with WholeFirst). When
// complete, upTo is 0. Resuming after a complete answer is SyncPoint's
// business.
func (s *Store) Since(ctx context.Context, mapName string, since int64, lim SinceLimits) (entries []Entry, upTo int64, complete bool, err error) {
	if s.closed.Load() {
		return nil, 0, false, ErrClosed
	}
	h := &sinceHeap{}
	var bytes int64
	cut := int64(math.MaxInt64) // the oldest commit time left out
	err = s.scanPages(ctx, mapName, 0, func(r *abi.Record) bool {
		if r.UpdatedAt <= since || r.UpdatedAt >= cut {
			return true
		}
		e, ok := sinceEntry(r)
		if !ok {
			return true
		}
		heap.Push(h, sinceItem{e, r.UpdatedAt})
		bytes += int64(e.Size)
		// Over a bound: drop the newest until under it. What is dropped,
		// and everything newer, waits for the next page.
		for h.Len() > 0 && (h.Len() > lim.Records || bytes > lim.Bytes) {
			it := heap.Pop(h).(sinceItem)
			bytes -= int64(it.e.Size)
			cut = min(cut, it.updated)
		}
		return true
	})
	if err != nil {
		return nil, 0, false, err
	}
	if cut == math.MaxInt64 {
		entries = make([]Entry, 0, h.Len())
		for _, it := range *h {
			entries = append(entries, it.e)
		}
		return entries, 0, true, nil
	}
	for _, it := range *h {
		// A change of the millisecond cut may have been kept while another
		// of the same millisecond was dropped: the page ends before it.
		if it.updated < cut {
			entries = append(entries, it.e)
		}
	}
	if len(entries) > 0 || !lim.WholeFirst {
		return entries, cut - 1, false, nil
	}
	// Nothing older than cut changed, so cut is the oldest millisecond
	// that did: read it whole.
	more := false
	err = s.scanPages(ctx, mapName, 0, func(r *abi.Record) bool {
		switch {
		case r.UpdatedAt > cut:
			more = true
		case r.UpdatedAt == cut:
			if e, ok := sinceEntry(r); ok {
				entries = append(entries, e)
			}
		}
		return true
	})
	if err != nil {
		return nil, 0, false, err
	}
	if !more {
		return entries, 0, true, nil
	}
	return entries, cut, false, nil
}

// sinceEntry decodes an LWW record for Since.
func sinceEntry(r *abi.Record) (Entry, bool) {
	e, err := storedEntry(r)
	return e, err == nil && e.Record.Kind == record.KindLWW
}

type sinceItem struct {
	e       Entry
	updated int64
}

// sinceHeap is a max-heap on commit time: its top is the newest change.
type sinceHeap []sinceItem

func (h sinceHeap) Len() int           { return len(h) }
func (h sinceHeap) Less(i, j int) bool { return h[i].updated > h[j].updated }
func (h sinceHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *sinceHeap) Push(x any)        { *h = append(*h, x.(sinceItem)) }
func (h *sinceHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

// SharedSyncAllowance is how far SyncPoint stays behind when other
// processes commit to the same storage (a backend declaring
// abi.CapShared): their clocks may differ from this one, and a commit they
// stamped may still be on its way. Their changes stamped further back
// than this when they become visible can be missed by Since callers that
// resume from SyncPoint (HTTP sync deltas; WebSocket sync compares
// Merkle trees and misses nothing).
const SharedSyncAllowance = 2000

// stamp returns the commit time of the batch about to be applied and
// marks it in flight until applied is called.
func (s *Store) stamp() int64 {
	s.stampMu.Lock()
	defer s.stampMu.Unlock()
	s.lastStamp = max(s.lastStamp, s.now())
	s.applying = s.lastStamp
	return s.applying
}

// applied ends the commit stamp began.
func (s *Store) applied() {
	s.stampMu.Lock()
	s.applying = 0
	s.stampMu.Unlock()
}

// committed notes the commit time of a commit storage holds (SyncPoint).
func (s *Store) committed(at int64) {
	s.stampMu.Lock()
	s.maxCommitted = max(s.maxCommitted, at)
	s.stampMu.Unlock()
}

// ClockRestart reports whether commit times restarted from the wall clock
// at Open (the storage held commit times more than maxCommitAhead ahead
// of it), and then when: this process's commits are at or after at, below
// sync points an earlier process may have given out, which are unknown to
// this one. mark tells this process's sync points apart: a caller that
// hands out SyncPoints puts it with them, and takes a point without it
// past at for one of an earlier process.
func (s *Store) ClockRestart() (at int64, mark uint32, ok bool) {
	return s.restartedAt, s.restartMark, s.restartMark != 0
}

// SyncPoint returns the commit time (Unix ms) up to which a Since call
// made after it sees every change: the last whole millisecond, and before
// the batch being applied, whose changes may not be visible yet; at most
// the latest commit time, or less SharedSyncAllowance on shared storage.
// A caller that resumes with since = SyncPoint misses nothing this store
// commits, nor a store reopened on its storage later.
func (s *Store) SyncPoint() int64 {
	s.stampMu.Lock()
	now := max(s.lastStamp, s.now())
	// Later commits are stamped at now or after, above the point given
	// out, even if the wall clock steps back meanwhile.
	s.lastStamp = now
	applying, maxCommitted := s.applying, s.maxCommitted
	s.stampMu.Unlock()
	p := now - 1
	if applying != 0 {
		p = min(p, applying-1)
	}
	if s.shared {
		p -= SharedSyncAllowance
	} else {
		// Not past the latest commit time: a point of the wall clock
		// beyond it is known to this process only. A restart with the
		// wall clock behind that point (stepped back while the server was
		// down, another host) would stamp its commits below it, and a
		// client resuming there would miss them; the next process resumes
		// commit times past the stored ones (resumeClocks).
		p = min(p, maxCommitted)
	}
	return p
}
