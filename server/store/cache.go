package store

import (
	"container/list"
	"sync"
)

// cache is a byte-bounded LRU of record values, so the data set can be much
// larger than memory: values not in it are read back from the backend.
type cache struct {
	mu    sync.Mutex
	max   int64
	used  int64
	ll    *list.List
	items map[cacheKey]*list.Element
	gen   uint64 // bumped by every write, so a reader's fill cannot undo one
	// writing counts the commits writing each key, from before their
	// backend write until their own cache update (begin to end). Fills of
	// those keys are refused: a reader may have read the record before the
	// write and another after it, and the older fill, landing last, made
	// reads go back to the old record after one had returned the new.
	writing map[cacheKey]int
}

type cacheKey struct {
	mapName string
	key     string
}

type cacheEntry struct {
	k    cacheKey
	v    *entryValue
	size int64
}

// cacheOverhead approximates the bookkeeping bytes of one entry.
const cacheOverhead = 96

func newCache(maxBytes int64) *cache {
	return &cache{max: maxBytes, ll: list.New(), items: map[cacheKey]*list.Element{}, gen: 1, writing: map[cacheKey]int{}}
}

func (c *cache) get(k cacheKey) (*entryValue, bool) {
	if c.max <= 0 {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[k]; ok {
		c.ll.MoveToFront(e)
		return e.Value.(*cacheEntry).v, true
	}
	return nil, false
}

// generation returns the write generation a reader captures before it
// reads the backend.
func (c *cache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// fill caches a value a reader loaded, unless a write happened since the
// reader captured gen (the value might then be older than the write).
func (c *cache) fill(k cacheKey, v *entryValue, gen uint64) {
	if c.max <= 0 {
		return
	}
	c.insert(k, v, gen)
}

// put caches the committed state of a key.
func (c *cache) put(k cacheKey, v *entryValue) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	c.gen++
	c.mu.Unlock()
	c.insert(k, v, 0)
}

func (c *cache) insert(k cacheKey, v *entryValue, fillGen uint64) {
	size := int64(len(k.mapName)+len(k.key)+v.size()) + cacheOverhead
	if size > c.max/4 {
		// One huge value must not flush the whole cache.
		c.remove(k)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if fillGen != 0 && (c.gen != fillGen || c.writing[k] > 0) {
		return
	}
	if e, ok := c.items[k]; ok {
		ce := e.Value.(*cacheEntry)
		c.used += size - ce.size
		ce.v, ce.size = v, size
		c.ll.MoveToFront(e)
	} else {
		c.items[k] = c.ll.PushFront(&cacheEntry{k: k, v: v, size: size})
		c.used += size
	}
	for c.used > c.max {
		e := c.ll.Back()
		ce := e.Value.(*cacheEntry)
		c.ll.Remove(e)
		delete(c.items, ce.k)
		c.used -= ce.size
	}
}

// begin marks keys as being written (see writing), before the backend
// write.
func (c *cache) begin(keys []cacheKey) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range keys {
		c.writing[k]++
	}
}

// end undoes begin, once the commit has put its records in the cache (or
// failed).
func (c *cache) end(keys []cacheKey) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range keys {
		if c.writing[k]--; c.writing[k] <= 0 {
			delete(c.writing, k)
		}
	}
}

// remove drops k, and like a write makes fills of readers that started
// before it void: they may carry what the removal is meant to forget.
func (c *cache) remove(k cacheKey) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if e, ok := c.items[k]; ok {
		c.ll.Remove(e)
		delete(c.items, k)
		c.used -= e.Value.(*cacheEntry).size
	}
}
