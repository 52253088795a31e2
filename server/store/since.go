package store

import (
	"container/heap"
	"context"
	"math"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/server/record"
)

// Since returns the LWW records of a map, tombstones included, committed
// after since (Unix ms of the commit, not of the record's timestamp: a
// client's late write with an old stamp is still new to others), holding
// at most maxRecords records and maxBytes bytes (stored key plus record).
// It scans the map in storage, for HTTP sync deltas.
//
// When more changed than fits, it keeps the oldest changes: every change
// committed up to upTo and none after, with complete false; the caller
// resumes with since = upTo, so the changes arrive in pages, none skipped.
// complete false with no entries means the changes committed in one
// millisecond alone pass the bounds. When complete, upTo is 0.
func (s *Store) Since(ctx context.Context, mapName string, since int64, maxRecords int, maxBytes int64) (entries []Entry, upTo int64, complete bool, err error) {
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
		rv, err := record.Decode(r.Value)
		if err != nil || rv.Kind != record.KindLWW {
			return true
		}
		e := Entry{Key: r.Key, Record: rv, ExpirationTime: r.ExpirationTime, Size: len(r.Key) + len(r.Value)}
		heap.Push(h, sinceItem{e, r.UpdatedAt})
		bytes += int64(e.Size)
		// Over a bound: drop the newest until under it. What is dropped,
		// and everything newer, waits for the next page.
		for h.Len() > 0 && (h.Len() > maxRecords || bytes > maxBytes) {
			it := heap.Pop(h).(sinceItem)
			bytes -= int64(it.e.Size)
			cut = min(cut, it.updated)
		}
		return true
	})
	if err != nil {
		return nil, 0, false, err
	}
	complete = cut == math.MaxInt64
	entries = make([]Entry, 0, h.Len())
	for _, it := range *h {
		// A change of the millisecond cut may have been kept while another
		// of the same millisecond was dropped: the page ends before it.
		if it.updated < cut {
			entries = append(entries, it.e)
		}
	}
	if !complete {
		upTo = cut - 1
	}
	return entries, upTo, complete, nil
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
