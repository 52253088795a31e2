package redb

import (
	"bytes"
	"context"

	bolt "go.etcd.io/bbolt"

	"github.com/topgun-go/topgun/abi"
)

// ctxEvery is how many records a long loop handles between context checks.
const ctxEvery = 256

// mapBucket returns the bucket of one map, or nil when it holds no records.
// A bucket whose name fails its checksum is an error.
func mapBucket(tx *bolt.Tx, mapName string, backup bool) (*bolt.Bucket, error) {
	var stack [80]byte
	return namedBucket(tx, appendBucketName(stack[:0], mapName, backup))
}

// namedBucket returns the map bucket called name, nil when there is none,
// or an error when it fails its name checksum.
func namedBucket(tx *bolt.Tx, name []byte) (*bolt.Bucket, error) {
	mb := tx.Bucket(name)
	if mb == nil {
		return nil, nil
	}
	if err := checkBucketName(mb, name); err != nil {
		return nil, err
	}
	return mb, nil
}

type bucketID struct {
	name   string
	backup bool
}

// batchBucket caches the bucket of one map during Apply.
type batchBucket struct {
	name []byte       // bucket name
	b    *bolt.Bucket // nil while the map has no bucket
	// max is an upper bound of the keys in the bucket when maxKnown: a key
	// above it is new, so its put needs no lookup. Sequential keys (time
	// ordered, counters) take this path.
	max      []byte
	maxKnown bool
	looked   bool // some put of the batch had to look up an existing record
	deleted  bool // a record was deleted: drop the bucket if it ends empty
}

// Apply commits the batch in one bbolt write transaction: one durable commit
// (two fsyncs) per batch. Puts keep CreatedAt of an existing record and move
// its expiry index entry; a map bucket left empty by deletes is dropped.
func (b *Backend) Apply(ctx context.Context, batch *abi.Batch) error {
	if err := abi.ContextError(ctx); err != nil {
		return err
	}
	if err := abi.ValidateBatch(batch); err != nil {
		return err
	}
	if b.closed.Load() {
		return b.errClosed()
	}
	if b.readOnly {
		return abi.Errorf(abi.CodeUnsupported, "redb: %s is open read-only", b.path)
	}
	if b.damaged.Load() {
		return b.errDamaged()
	}
	if len(batch.Mutations) == 0 {
		return nil
	}
	// bbolt keeps a reference to every value until the commit, so all
	// encoded records of the batch live in one allocation.
	size, keys := 0, 0
	for i := range batch.Mutations {
		m := &batch.Mutations[i]
		if m.Kind == abi.OpPut {
			size += recordHeaderLen + len(m.Value)
		}
		keys += len(m.Map) + len(m.Key)
	}
	arena := make([]byte, size)
	return b.update(size+keys, len(batch.Mutations), func(tx *bolt.Tx) error {
		expiry := tx.Bucket(bucketExpiry)
		var (
			buckets []batchBucket
			index   map[bucketID]int
			cur     *batchBucket
			curID   bucketID
			xbuf    = make([]byte, 0, 64)
		)
		for i := range batch.Mutations {
			m := &batch.Mutations[i]
			if i%ctxEvery == ctxEvery-1 {
				if err := abi.ContextError(ctx); err != nil {
					return err
				}
			}
			if cur == nil || curID.name != m.Map || curID.backup != m.Backup {
				curID = bucketID{m.Map, m.Backup}
				j, ok := index[curID]
				if !ok {
					name := appendBucketName(nil, m.Map, m.Backup)
					mb, err := namedBucket(tx, name)
					if err != nil {
						return err
					}
					j = len(buckets)
					buckets = append(buckets, batchBucket{name: name, b: mb})
					if index == nil {
						index = make(map[bucketID]int)
					}
					index[curID] = j
				}
				cur = &buckets[j]
			}
			kbuf := recordKey(m.Key)
			if m.Kind == abi.OpPut && !cur.maxKnown {
				cur.maxKnown = true
				if cur.b != nil {
					last, _ := cur.b.Cursor().Last()
					cur.max = append(cur.max[:0], last...)
				}
			}
			var old []byte
			if m.Kind == abi.OpPut && cur.maxKnown && bytes.Compare(kbuf, cur.max) > 0 {
				cur.max = append(cur.max[:0], kbuf...) // new key: nothing to look up
			} else if cur.b != nil {
				old = cur.b.Get(kbuf)
				cur.looked = cur.looked || m.Kind == abi.OpPut
			}
			var oldHdr recordHeader
			if old != nil {
				h, _, err := decodeRecord(kbuf, old)
				if err != nil {
					return corrupt(m.Map, m.Backup, m.Key, err)
				}
				oldHdr = h
			}
			newExp := int64(0)
			if m.Kind == abi.OpPut {
				newExp = m.ExpirationTime
			}
			if old != nil && oldHdr.ExpirationTime != 0 && oldHdr.ExpirationTime != newExp {
				xbuf = appendExpiryKey(xbuf[:0], oldHdr.ExpirationTime, m.Map, m.Backup, m.Key)
				if err := expiry.Delete(xbuf); err != nil {
					return err
				}
			}
			if m.Kind == abi.OpDelete {
				if old != nil {
					if err := cur.b.Delete(kbuf); err != nil {
						return err
					}
					cur.deleted = true
				}
				continue
			}
			if newExp != 0 && (old == nil || oldHdr.ExpirationTime != newExp) {
				xbuf = appendExpiryKey(xbuf[:0], newExp, m.Map, m.Backup, m.Key)
				if err := expiry.Put(xbuf, nil); err != nil {
					return err
				}
			}
			if cur.b == nil {
				nb, err := tx.CreateBucket(cur.name)
				if err != nil {
					return err
				}
				if err := nb.SetSequence(bucketNameSum(cur.name)); err != nil {
					return err
				}
				cur.b = nb
			}
			h := recordHeader{CreatedAt: batch.Now, UpdatedAt: batch.Now, ExpirationTime: newExp}
			if old != nil {
				h.CreatedAt = oldHdr.CreatedAt
			}
			n := recordHeaderLen + len(m.Value)
			rec := arena[:n:n]
			arena = arena[n:]
			putRecord(rec, kbuf, h, m.Value)
			if err := cur.b.Put(kbuf, rec); err != nil {
				return err
			}
		}
		for i := range buckets {
			bb := &buckets[i]
			if bb.b == nil {
				continue
			}
			if bb.deleted {
				if k, _ := bb.b.Cursor().First(); k == nil {
					if err := tx.DeleteBucket(bb.name); err != nil {
						return err
					}
					continue
				}
			}
			if !bb.looked && !bb.deleted {
				// Only appends: pack pages full, as for a bulk load.
				bb.b.FillPercent = 1.0
			}
		}
		return nil
	})
}

// Get returns the records of keys found in one map, in the order of keys.
func (b *Backend) Get(ctx context.Context, mapName string, backup bool, keys []string) ([]abi.Record, error) {
	if err := abi.ContextError(ctx); err != nil {
		return nil, err
	}
	if err := abi.ValidateGet(mapName, keys); err != nil {
		return nil, err
	}
	if b.closed.Load() {
		return nil, b.errClosed()
	}
	if len(keys) == 0 {
		return nil, nil
	}
	var out []abi.Record
	err := b.view(func(tx *bolt.Tx) error {
		mb, err := mapBucket(tx, mapName, backup)
		if mb == nil || err != nil {
			return err
		}
		var seen map[string]struct{}
		if len(keys) > 16 {
			seen = make(map[string]struct{}, len(keys))
		}
		for i, k := range keys {
			if i%ctxEvery == ctxEvery-1 {
				if err := abi.ContextError(ctx); err != nil {
					return err
				}
			}
			if isDup(keys, i, seen) {
				continue
			}
			kbuf := recordKey(k)
			v := mb.Get(kbuf)
			if v == nil {
				continue
			}
			h, val, err := decodeRecord(kbuf, v)
			if err != nil {
				return corrupt(mapName, backup, k, err)
			}
			if out == nil {
				out = make([]abi.Record, 0, len(keys)-i)
			}
			out = append(out, abi.Record{
				Map: mapName, Key: k, Backup: backup,
				Value:          bytes.Clone(val),
				ExpirationTime: h.ExpirationTime, CreatedAt: h.CreatedAt, UpdatedAt: h.UpdatedAt,
			})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// isDup reports whether keys[i] appeared earlier in keys, using seen (when
// not nil) for long key lists and a linear search for short ones.
func isDup(keys []string, i int, seen map[string]struct{}) bool {
	k := keys[i]
	if seen != nil {
		if _, ok := seen[k]; ok {
			return true
		}
		seen[k] = struct{}{}
		return false
	}
	for _, p := range keys[:i] {
		if p == k {
			return true
		}
	}
	return false
}

// Scan returns one page of a map in byte order of keys, in one read
// transaction. The cursor is abi.KeyCursor of the page's last key.
func (b *Backend) Scan(ctx context.Context, req abi.ScanRequest) (abi.Page, error) {
	if err := abi.ContextError(ctx); err != nil {
		return abi.Page{}, err
	}
	if err := abi.ValidateScan(&req); err != nil {
		return abi.Page{}, err
	}
	after, hasAfter, err := abi.ParseKeyCursor(req.Cursor)
	if err != nil {
		return abi.Page{}, err
	}
	if b.closed.Load() {
		return abi.Page{}, b.errClosed()
	}
	var page abi.Page
	err = b.view(func(tx *bolt.Tx) error {
		mb, err := mapBucket(tx, req.Map, req.Backup)
		if mb == nil || err != nil {
			return err
		}
		c := mb.Cursor()
		var k, v []byte
		if hasAfter {
			seek := recordKey(after)
			k, v = c.Seek(seek)
			if bytes.Equal(k, seek) {
				k, v = c.Next()
			}
		} else {
			k, v = c.First()
		}
		used := 0
		for n := 0; k != nil; k, v = c.Next() {
			if n++; n%ctxEvery == 0 {
				if err := abi.ContextError(ctx); err != nil {
					return err
				}
			}
			if v == nil {
				return corrupt(req.Map, req.Backup, string(k), errCorruptRecord)
			}
			size := len(k) + len(v) - recordHeaderLen
			if bytes.Equal(k, emptyRecordKey) {
				size-- // the empty key counts for nothing
			}
			if len(page.Records) >= req.Limit || (len(page.Records) > 0 && used+size > req.MaxBytes) {
				page.Cursor = abi.KeyCursor(page.Records[len(page.Records)-1].Key)
				return nil
			}
			key := keyOf(k)
			h, val, err := decodeRecord(k, v)
			if err != nil {
				return corrupt(req.Map, req.Backup, key, err)
			}
			page.Records = append(page.Records, abi.Record{
				Map: req.Map, Key: key, Backup: req.Backup,
				Value:          bytes.Clone(val),
				ExpirationTime: h.ExpirationTime, CreatedAt: h.CreatedAt, UpdatedAt: h.UpdatedAt,
			})
			used += size
		}
		return nil
	})
	if err != nil {
		return abi.Page{}, err
	}
	return page, nil
}

// ListMaps returns the sorted names of maps with primary records. A map
// bucket exists only while it holds records, so this lists the names of
// the primary map buckets.
func (b *Backend) ListMaps(ctx context.Context) ([]string, error) {
	if err := abi.ContextError(ctx); err != nil {
		return nil, err
	}
	if b.closed.Load() {
		return nil, b.errClosed()
	}
	var out []string
	err := b.view(func(tx *bolt.Tx) error {
		c := tx.Cursor()
		prefix := []byte(prefixPrimary)
		n := 0
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if n++; n%ctxEvery == 0 {
				if err := abi.ContextError(ctx); err != nil {
					return err
				}
			}
			if v != nil {
				continue // not a bucket
			}
			mb, err := namedBucket(tx, k)
			if err != nil {
				return err
			}
			if mb != nil {
				if first, _ := mb.Cursor().First(); first != nil {
					out = append(out, string(k[len(prefix):]))
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ListExpired walks the expiry index from its start, so it reads only the
// entries it returns (and the records they point to).
func (b *Backend) ListExpired(ctx context.Context, now int64, limit int) ([]abi.Record, error) {
	if err := abi.ContextError(ctx); err != nil {
		return nil, err
	}
	limit = abi.ScanLimit(limit)
	if b.closed.Load() {
		return nil, b.errClosed()
	}
	var out []abi.Record
	err := b.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketExpiry).Cursor()
		var (
			mb       *bolt.Bucket
			mbName   []byte
			mbBackup bool
		)
		n := 0
		for k, _ := c.First(); k != nil && len(out) < limit; k, _ = c.Next() {
			if n++; n%ctxEvery == 0 {
				if err := abi.ContextError(ctx); err != nil {
					return err
				}
			}
			exp, mapName, backup, key, err := parseExpiryKey(k)
			if err != nil {
				return err
			}
			if exp > now {
				break
			}
			if mbName == nil || backup != mbBackup || !bytes.Equal(mapName, mbName) {
				mbName, mbBackup = mapName, backup
				if mb, err = mapBucket(tx, string(mapName), backup); err != nil {
					return err
				}
			}
			if mb == nil {
				continue // dangling entry: no record
			}
			kbuf := key
			if len(kbuf) == 0 {
				kbuf = emptyRecordKey
			}
			v := mb.Get(kbuf)
			if v == nil {
				continue
			}
			h, _, err := decodeRecord(kbuf, v)
			if err != nil {
				return corrupt(string(mapName), backup, string(key), err)
			}
			if h.ExpirationTime != exp {
				continue
			}
			out = append(out, abi.Record{
				Map: string(mapName), Key: string(key), Backup: backup,
				ExpirationTime: exp, CreatedAt: h.CreatedAt, UpdatedAt: h.UpdatedAt,
			})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
