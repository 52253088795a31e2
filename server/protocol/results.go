package protocol

import (
	"github.com/topgun-go/topgun/server/record"
	"github.com/topgun-go/topgun/server/wire"
)

type member struct {
	ts    record.Timestamp
	value any // the record's value, kept for limited queries (ordering)
}

// ranked is a member of a limited query's result, with its place in the
// heap.
type ranked struct {
	key string
	member
	at int // index in resultSet.heap
}

// resultSet is the keys in a live query's result. An unlimited query's is
// a plain map. A limited query's is also a max-heap by the query's order,
// indexed by key, so that the member that sorts last (the one a better
// record replaces) is found in O(1) and every insert, update and removal
// costs O(log n) comparisons: the feed loop applies every change of the
// map to every live query, and a scan of a window of a million records
// per change would stall it (its lag closes every query holder).
//
// The heap is found and changed by index, never by searching with the
// comparison, so an order that is not quite transitive could only
// misplace the worst member, as the linear scan it replaces could, not
// lose one (wire.Query.Compare is a total order).
type resultSet struct {
	all map[string]member // unlimited query (cmp nil)

	cmp   func(a, b wire.QueryResult) int // the query's order; nil when unlimited
	byKey map[string]*ranked
	heap  []*ranked // heap[0] sorts last; a parent sorts after its children
}

// newResultSet returns an empty result set; cmp nil for an unlimited query.
func newResultSet(cmp func(a, b wire.QueryResult) int, size int) *resultSet {
	if cmp == nil {
		return &resultSet{all: make(map[string]member, size)}
	}
	return &resultSet{cmp: cmp, byKey: make(map[string]*ranked, size), heap: make([]*ranked, 0, size)}
}

// Len is the number of members; 0 for nil.
func (r *resultSet) Len() int {
	switch {
	case r == nil:
		return 0
	case r.cmp == nil:
		return len(r.all)
	}
	return len(r.heap)
}

func (r *resultSet) Get(key string) (member, bool) {
	if r.cmp == nil {
		m, ok := r.all[key]
		return m, ok
	}
	if x := r.byKey[key]; x != nil {
		return x.member, true
	}
	return member{}, false
}

// Put adds a member or replaces the one of its key.
func (r *resultSet) Put(key string, m member) {
	if r.cmp == nil {
		r.all[key] = m
		return
	}
	if x := r.byKey[key]; x != nil {
		x.member = m
		r.fix(x.at)
		return
	}
	x := &ranked{key: key, member: m, at: len(r.heap)}
	r.byKey[key] = x
	r.heap = append(r.heap, x)
	r.up(x.at)
}

func (r *resultSet) Delete(key string) {
	if r.cmp == nil {
		delete(r.all, key)
		return
	}
	x := r.byKey[key]
	if x == nil {
		return
	}
	delete(r.byKey, key)
	last := len(r.heap) - 1
	i := x.at
	if i != last {
		r.swap(i, last)
	}
	r.heap[last] = nil
	r.heap = r.heap[:last]
	if i != last {
		r.fix(i)
	}
}

// Worst returns the member that sorts last (limited queries only).
func (r *resultSet) Worst() (string, member, bool) {
	if len(r.heap) == 0 {
		return "", member{}, false
	}
	return r.heap[0].key, r.heap[0].member, true
}

// Range calls f for every member, in no particular order.
func (r *resultSet) Range(f func(key string, m member)) {
	if r.cmp == nil {
		for k, m := range r.all {
			f(k, m)
		}
		return
	}
	for _, x := range r.heap {
		f(x.key, x.member)
	}
}

// appendSorted adds members given in the query's order (best first),
// without comparing: reversed, a sorted run is a max-heap. The set must
// be empty.
func (r *resultSet) appendSorted(keys []string, ms []member) {
	if r.cmp == nil {
		for i, k := range keys {
			r.all[k] = ms[i]
		}
		return
	}
	for i := len(keys) - 1; i >= 0; i-- {
		x := &ranked{key: keys[i], member: ms[i], at: len(r.heap)}
		r.byKey[x.key] = x
		r.heap = append(r.heap, x)
	}
}

// after reports whether heap[i] sorts after heap[j].
func (r *resultSet) after(i, j int) bool {
	a, b := r.heap[i], r.heap[j]
	return r.cmp(wire.QueryResult{Key: a.key, Value: a.value}, wire.QueryResult{Key: b.key, Value: b.value}) > 0
}

func (r *resultSet) swap(i, j int) {
	r.heap[i], r.heap[j] = r.heap[j], r.heap[i]
	r.heap[i].at, r.heap[j].at = i, j
}

func (r *resultSet) fix(i int) {
	if !r.down(i) {
		r.up(i)
	}
}

func (r *resultSet) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !r.after(i, p) {
			return
		}
		r.swap(i, p)
		i = p
	}
}

// down sinks heap[i]; it reports whether it moved.
func (r *resultSet) down(i int) bool {
	start, n := i, len(r.heap)
	for {
		c := 2*i + 1
		if c >= n {
			break
		}
		if c2 := c + 1; c2 < n && r.after(c2, c) {
			c = c2
		}
		if !r.after(c, i) {
			break
		}
		r.swap(i, c)
		i = c
	}
	return i > start
}
