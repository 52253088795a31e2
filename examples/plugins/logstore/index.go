package logstore

import (
	"container/heap"
	"slices"
	"strings"
)

// bucketID names the records of one map, primary or backup.
type bucketID struct {
	mapName string
	backup  bool
}

// entry locates a live record's put frame in the log and keeps its
// metadata, so that only values are read from the file.
type entry struct {
	off      int64  // file offset of the put frame
	frameLen uint32 // whole frame, header included
	valueOff uint32 // offset of the value from the start of the frame
	valueLen uint32
	exp      int64
	created  int64
	updated  int64
}

func (e *entry) valuePos() int64 { return e.off + int64(e.valueOff) }

// bucket holds the records of one map. Key order is kept lazily: keys
// inserted since the last sort wait in added, deleted keys stay in sorted
// until the next sort, which merges both in O(n + k log k).
type bucket struct {
	// id is the bucket's name, whose map name the expiry heap's items
	// share: the callers' ids are a new string per frame at Open.
	id     bucketID
	recs   map[string]*entry
	sorted []string // sorted, may hold deleted keys
	added  []string // new keys since the last sort, unsorted
	stale  int      // deletions since the last sort
}

func (b *bucket) needsSort() bool { return len(b.added) > 0 || b.stale > 0 }

// sortKeys makes sorted exactly the keys of recs, in byte order.
func (b *bucket) sortKeys() {
	if !b.needsSort() {
		return
	}
	slices.Sort(b.added)
	merged := make([]string, 0, len(b.recs))
	i, j := 0, 0
	for i < len(b.sorted) || j < len(b.added) {
		var k string
		switch {
		case j == len(b.added) || (i < len(b.sorted) && b.sorted[i] <= b.added[j]):
			k = b.sorted[i]
			i++
		default:
			k = b.added[j]
			j++
		}
		if _, live := b.recs[k]; !live {
			continue
		}
		if n := len(merged); n > 0 && merged[n-1] == k {
			continue // deleted and inserted again since the last sort
		}
		merged = append(merged, k)
	}
	b.sorted, b.added, b.stale = merged, nil, 0
}

// after returns the position in sorted of the first key greater than key.
func (b *bucket) after(key string) int {
	i, found := slices.BinarySearch(b.sorted, key)
	if found {
		i++
	}
	return i
}

// index is the in-memory state rebuilt from the log at open.
type index struct {
	buckets   map[bucketID]*bucket
	exp       expHeap
	nExpiring int   // live records with an expiration time
	records   int   // live records
	liveBytes int64 // sum of the frame lengths of live records
}

func newIndex() *index { return &index{buckets: map[bucketID]*bucket{}} }

func (ix *index) get(id bucketID, key string) *entry {
	if b := ix.buckets[id]; b != nil {
		return b.recs[key]
	}
	return nil
}

func (ix *index) put(id bucketID, key string, e *entry) {
	key = keepKey(key)
	b := ix.buckets[id]
	if b == nil {
		b = &bucket{id: id, recs: map[string]*entry{}}
		ix.buckets[id] = b
	}
	old := b.recs[key]
	b.recs[key] = e
	if old == nil {
		b.added = append(b.added, key)
		ix.records++
	} else {
		ix.forget(old)
	}
	ix.liveBytes += int64(e.frameLen)
	if e.exp > 0 {
		ix.nExpiring++
		heap.Push(&ix.exp, expItem{exp: e.exp, id: b.id, key: key})
		ix.maybeRebuildExpiry()
	}
}

func (ix *index) del(id bucketID, key string) {
	b := ix.buckets[id]
	if b == nil {
		return
	}
	old := b.recs[key]
	if old == nil {
		return
	}
	delete(b.recs, key)
	b.stale++
	ix.records--
	ix.forget(old)
	if len(b.recs) == 0 {
		delete(ix.buckets, id)
	}
}

// forget removes the accounting of a record that is replaced or deleted.
// Its expiry heap item stays and is dropped lazily.
func (ix *index) forget(old *entry) {
	ix.liveBytes -= int64(old.frameLen)
	if old.exp > 0 {
		ix.nExpiring--
	}
}

// maybeRebuildExpiry drops stale heap items once they outnumber live ones,
// in time linear in the heap size.
func (ix *index) maybeRebuildExpiry() {
	if len(ix.exp) <= 2*ix.nExpiring+1024 {
		return
	}
	items := make(expHeap, 0, ix.nExpiring)
	seen := make(map[expItem]struct{}, ix.nExpiring)
	for _, it := range ix.exp {
		if e := ix.get(it.id, it.key); e == nil || e.exp != it.exp {
			continue
		}
		if _, dup := seen[it]; dup {
			continue
		}
		seen[it] = struct{}{}
		items = append(items, it)
	}
	heap.Init(&items)
	ix.exp = items
}

// expired returns up to limit live records with 0 < expiration <= now in
// heap order. Stale items met on the way are dropped.
func (ix *index) expired(now int64, limit int) []expItem {
	var out []expItem
	seen := map[expItem]struct{}{}
	for len(ix.exp) > 0 && len(out) < limit && ix.exp[0].exp <= now {
		it := heap.Pop(&ix.exp).(expItem)
		e := ix.get(it.id, it.key)
		if e == nil || e.exp != it.exp {
			continue
		}
		if _, dup := seen[it]; dup {
			continue
		}
		seen[it] = struct{}{}
		out = append(out, it)
	}
	for _, it := range out {
		heap.Push(&ix.exp, it)
	}
	return out
}

// expItem is one (possibly stale) expiry index item.
type expItem struct {
	exp int64
	id  bucketID
	key string
}

// expHeap orders items by expiration, then map, primary before backup, key.
type expHeap []expItem

func (h expHeap) Len() int { return len(h) }
func (h expHeap) Less(i, j int) bool {
	a, b := &h[i], &h[j]
	if a.exp != b.exp {
		return a.exp < b.exp
	}
	if c := strings.Compare(a.id.mapName, b.id.mapName); c != 0 {
		return c < 0
	}
	if a.id.backup != b.id.backup {
		return !a.id.backup
	}
	return a.key < b.key
}
func (h expHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *expHeap) Push(x any)   { *h = append(*h, x.(expItem)) }
func (h *expHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = expItem{}
	*h = old[:len(old)-1]
	return it
}
