// Package null is the in-memory, ephemeral backend (STORAGE_BACKEND=null).
//
// It keeps everything in process memory and loses it on Close. It is also
// the reference model the conformance suite compares other backends with,
// so it favours obvious correctness over speed, and it builds for
// GOOS=wasip1 GOARCH=wasm, where the guest SDK serves it as a plugin.
package null

import (
	"context"
	"sort"
	"strings"
	"sync"

	"github.com/topgun-go/topgun/abi"
)

// Name is the backend name reported by Describe.
const Name = "null"

type bucketID struct {
	mapName string
	backup  bool
}

type bucket struct {
	recs   map[string]*abi.Record
	sorted []string // keys in byte order; valid only when !dirty
	dirty  bool
}

type expKey struct {
	bucketID
	key string
}

// Backend is the in-memory backend. The zero value is not usable; call Open.
type Backend struct {
	mu       sync.RWMutex
	closed   bool
	buckets  map[bucketID]*bucket
	expiring map[expKey]int64
	// lastID and lastBk are the bucket of the last mutation of the last
	// Apply (lastBk nil when none, or when that bucket was deleted):
	// consecutive calls usually name one map, and comparing its id costs
	// less than a map lookup (a lot less inside wasm). Written only under
	// the write lock.
	lastID bucketID
	lastBk *bucket
}

var (
	_ abi.Backend      = (*Backend)(nil)
	_ abi.RecordViewer = (*Backend)(nil)
)

// Open returns an empty in-memory backend.
func Open() *Backend {
	return &Backend{buckets: map[bucketID]*bucket{}, expiring: map[expKey]int64{}}
}

// Describe reports the null backend: atomic batches, nothing durable.
func (b *Backend) Describe() abi.Description {
	return abi.Description{Name: Name, ABIMajor: abi.VersionMajor, ABIMinor: abi.VersionMinor, Capabilities: abi.CapAtomicBatch}
}

func errClosed() error { return abi.Errorf(abi.CodeUnavailable, "null: backend is closed") }

// Apply applies the batch under one lock, so it is atomic.
func (b *Backend) Apply(ctx context.Context, batch *abi.Batch) error {
	if err := abi.ContextError(ctx); err != nil {
		return err
	}
	if err := abi.ValidateBatch(batch); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errClosed()
	}
	lastID, lastBk := b.lastID, b.lastBk
	for i := range batch.Mutations {
		m := &batch.Mutations[i]
		id := bucketID{m.Map, m.Backup}
		// Consecutive mutations of one map share the bucket lookup.
		bk := lastBk
		if bk == nil || id != lastID {
			bk = b.buckets[id]
		}
		switch m.Kind {
		case abi.OpPut:
			if bk == nil {
				bk = &bucket{recs: map[string]*abi.Record{}}
				b.buckets[id] = bk
			}
			r := bk.recs[m.Key]
			if r == nil {
				key := keepKey(m.Key)
				r = &abi.Record{Map: m.Map, Key: key, Backup: m.Backup, CreatedAt: batch.Now}
				bk.recs[key] = r
				bk.dirty = true
			}
			r.Value = setValue(r.Value, m.Value)
			r.ExpirationTime = m.ExpirationTime
			r.UpdatedAt = batch.Now
			// The record's own key: assigning to a map replaces its stored
			// key, which must not become the caller's string.
			if m.ExpirationTime > 0 {
				b.expiring[expKey{id, r.Key}] = m.ExpirationTime
			} else if len(b.expiring) > 0 {
				delete(b.expiring, expKey{id, r.Key})
			}
		case abi.OpDelete:
			if bk == nil {
				continue
			}
			if _, ok := bk.recs[m.Key]; ok {
				delete(bk.recs, m.Key)
				bk.dirty = true
				delete(b.expiring, expKey{id, m.Key})
				if len(bk.recs) == 0 {
					delete(b.buckets, id)
					bk = nil
				}
			}
		}
		lastID, lastBk = id, bk
	}
	b.lastID, b.lastBk = lastID, lastBk
	return nil
}

// bucket returns the bucket of id, or nil. The caller holds the lock.
func (b *Backend) bucket(id bucketID) *bucket {
	if b.lastBk != nil && b.lastID == id {
		return b.lastBk
	}
	return b.buckets[id]
}

// setValue returns v copied into old's storage when it fits and would not
// leave more than half of it unused, else into a new slice: overwriting a
// record then allocates nothing. Only Apply writes to a record's Value, and
// every path that hands a record out copies it, so reuse is not observable.
func setValue(old, v []byte) []byte {
	if old != nil && cap(old) >= len(v) && cap(old) <= 2*len(v)+64 {
		return append(old[:0], v...)
	}
	return append(make([]byte, 0, len(v)), v...)
}

func copyRecord(r *abi.Record) abi.Record {
	c := *r
	c.Value = append(make([]byte, 0, len(r.Value)), r.Value...)
	return c
}

// Get returns copies of the records found, in the order of keys.
//
// Map names and keys are validated only when they are not found: a map
// that has a bucket and a key that has a record passed validation when
// they were written.
func (b *Backend) Get(ctx context.Context, mapName string, backup bool, keys []string) ([]abi.Record, error) {
	var found [8]*abi.Record
	b.mu.RLock()
	defer b.mu.RUnlock()
	hits, err := b.lookup(ctx, mapName, backup, keys, found[:0])
	if err != nil || len(hits) == 0 {
		return nil, err
	}
	out := make([]abi.Record, len(hits))
	for i, r := range hits {
		out[i] = copyRecord(r)
	}
	return out, nil
}

// ViewGet implements abi.RecordViewer: Get without the copies.
func (b *Backend) ViewGet(ctx context.Context, mapName string, backup bool, keys []string, fn func(r *abi.Record)) error {
	var found [8]*abi.Record
	b.mu.RLock()
	defer b.mu.RUnlock()
	hits, err := b.lookup(ctx, mapName, backup, keys, found[:0])
	for _, r := range hits {
		fn(r)
	}
	return err
}

// lookup appends to hits the records of keys, skipping absent and repeated
// keys, or returns the error Get returns. The caller holds b.mu.
func (b *Backend) lookup(ctx context.Context, mapName string, backup bool, keys []string, hits []*abi.Record) ([]*abi.Record, error) {
	if err := abi.ContextError(ctx); err != nil {
		return nil, err
	}
	if len(keys) > abi.MaxGetKeys {
		return nil, abi.ValidateGet(mapName, keys)
	}
	if b.closed {
		return nil, errClosed()
	}
	bk := b.bucket(bucketID{mapName, backup})
	if bk == nil {
		return nil, abi.ValidateGet(mapName, keys)
	}
	var seen map[string]struct{}
	if len(keys) > 1 {
		seen = make(map[string]struct{}, len(keys))
	}
	for _, k := range keys {
		if seen != nil {
			if _, dup := seen[k]; dup {
				continue
			}
			seen[k] = struct{}{}
		}
		r := bk.recs[k]
		if r == nil {
			// An invalid key fails the call as a whole.
			if err := abi.ValidateKey(k); err != nil {
				return nil, err
			}
			continue
		}
		hits = append(hits, r)
	}
	return hits, nil
}

// Scan pages through one map in byte order of keys.
func (b *Backend) Scan(ctx context.Context, req abi.ScanRequest) (abi.Page, error) {
	var page abi.Page
	cursor, err := b.ViewScan(ctx, req, func(r *abi.Record) {
		page.Records = append(page.Records, copyRecord(r))
	})
	if err != nil {
		return abi.Page{}, err
	}
	page.Cursor = cursor
	return page, nil
}

// ViewScan implements abi.RecordViewer: Scan without the copies.
func (b *Backend) ViewScan(ctx context.Context, req abi.ScanRequest, fn func(r *abi.Record)) ([]byte, error) {
	if err := abi.ContextError(ctx); err != nil {
		return nil, err
	}
	if err := abi.ValidateScan(&req); err != nil {
		return nil, err
	}
	after, hasAfter, err := abi.ParseKeyCursor(req.Cursor)
	if err != nil {
		return nil, err
	}
	// Sorting mutates the bucket, so take the write lock.
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errClosed()
	}
	bk := b.bucket(bucketID{req.Map, req.Backup})
	if bk == nil {
		return nil, nil
	}
	if bk.dirty {
		bk.sorted = bk.sorted[:0]
		for k := range bk.recs {
			bk.sorted = append(bk.sorted, k)
		}
		sort.Strings(bk.sorted)
		bk.dirty = false
	}
	i := 0
	if hasAfter {
		i = sort.Search(len(bk.sorted), func(j int) bool { return strings.Compare(bk.sorted[j], after) > 0 })
	}
	n, used := 0, 0
	last := ""
	for ; i < len(bk.sorted); i++ {
		r := bk.recs[bk.sorted[i]]
		if n >= req.Limit || (n > 0 && used+r.Size() > req.MaxBytes) {
			return abi.KeyCursor(last), nil
		}
		fn(r)
		n++
		used += r.Size()
		last = r.Key
	}
	return nil, nil
}

// ListMaps returns the sorted names of maps with primary records.
func (b *Backend) ListMaps(ctx context.Context) ([]string, error) {
	if err := abi.ContextError(ctx); err != nil {
		return nil, err
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return nil, errClosed()
	}
	var out []string
	for id, bk := range b.buckets {
		if !id.backup && len(bk.recs) > 0 {
			out = append(out, id.mapName)
		}
	}
	sort.Strings(out)
	return out, nil
}

// ListExpired returns records whose expiration has passed, oldest first.
func (b *Backend) ListExpired(ctx context.Context, now int64, limit int) ([]abi.Record, error) {
	if err := abi.ContextError(ctx); err != nil {
		return nil, err
	}
	limit = abi.ScanLimit(limit)
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return nil, errClosed()
	}
	var out []abi.Record
	for ek, exp := range b.expiring {
		if exp > now {
			continue
		}
		r := b.buckets[ek.bucketID].recs[ek.key]
		out = append(out, abi.Record{Map: r.Map, Key: r.Key, Backup: r.Backup, ExpirationTime: r.ExpirationTime, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt})
	}
	sort.Slice(out, func(i, j int) bool { return ExpiredLess(&out[i], &out[j]) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// ExpiredLess is the order of ListExpired results: expiration time, then
// map, backup flag and key. Other backends need not break ties the same way.
func ExpiredLess(a, b *abi.Record) bool {
	if a.ExpirationTime != b.ExpirationTime {
		return a.ExpirationTime < b.ExpirationTime
	}
	if a.Map != b.Map {
		return a.Map < b.Map
	}
	if a.Backup != b.Backup {
		return !a.Backup
	}
	return a.Key < b.Key
}

// Close drops all data. It is idempotent.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	b.buckets = nil
	b.lastBk = nil
	b.expiring = nil
	return nil
}
