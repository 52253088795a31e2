package abitest_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/abi/abitest"
	"github.com/topgun-go/topgun/plugins/null"
)

// faulty wraps the null backend; each non-nil hook replaces one method, so a
// test can break exactly one promise of the contract.
type faulty struct {
	inner *null.Backend

	describe    func(d abi.Description) abi.Description
	apply       func(ctx context.Context, b *abi.Batch) error
	get         func(ctx context.Context, m string, backup bool, keys []string) ([]abi.Record, error)
	scan        func(ctx context.Context, req abi.ScanRequest) (abi.Page, error)
	listMaps    func(ctx context.Context) ([]string, error)
	listExpired func(ctx context.Context, now int64, limit int) ([]abi.Record, error)
	close       func() error
}

var _ abi.Backend = (*faulty)(nil)

func (f *faulty) Describe() abi.Description {
	d := f.inner.Describe()
	if f.describe != nil {
		return f.describe(d)
	}
	return d
}

func (f *faulty) Apply(ctx context.Context, b *abi.Batch) error {
	if f.apply != nil {
		return f.apply(ctx, b)
	}
	return f.inner.Apply(ctx, b)
}

func (f *faulty) Get(ctx context.Context, m string, backup bool, keys []string) ([]abi.Record, error) {
	if f.get != nil {
		return f.get(ctx, m, backup, keys)
	}
	return f.inner.Get(ctx, m, backup, keys)
}

func (f *faulty) Scan(ctx context.Context, req abi.ScanRequest) (abi.Page, error) {
	if f.scan != nil {
		return f.scan(ctx, req)
	}
	return f.inner.Scan(ctx, req)
}

func (f *faulty) ListMaps(ctx context.Context) ([]string, error) {
	if f.listMaps != nil {
		return f.listMaps(ctx)
	}
	return f.inner.ListMaps(ctx)
}

func (f *faulty) ListExpired(ctx context.Context, now int64, limit int) ([]abi.Record, error) {
	if f.listExpired != nil {
		return f.listExpired(ctx, now, limit)
	}
	return f.inner.ListExpired(ctx, now, limit)
}

func (f *faulty) Close() error {
	if f.close != nil {
		return f.close()
	}
	return f.inner.Close()
}

// faults are broken backends, each with the cases that must catch it.
type fault struct {
	name  string
	cases []string
	make  func(in *null.Backend) *faulty
}

var faults = []fault{
	{"get of nothing is not found", []string{"Get/NotFound"}, func(in *null.Backend) *faulty {
		return &faulty{inner: in, get: func(ctx context.Context, m string, backup bool, keys []string) ([]abi.Record, error) {
			recs, err := in.Get(ctx, m, backup, keys)
			if err == nil && len(recs) == 0 {
				return nil, abi.Errorf(abi.CodeNotFound, "faulty: nothing found")
			}
			return recs, err
		}}
	}},
	{"get accepts invalid keys", []string{"Get/InvalidArgument"}, func(in *null.Backend) *faulty {
		return &faulty{inner: in, get: func(ctx context.Context, m string, backup bool, keys []string) ([]abi.Record, error) {
			recs, err := in.Get(ctx, m, backup, keys)
			if errors.Is(err, abi.ErrInvalidArgument) {
				return nil, nil
			}
			return recs, err
		}}
	}},
	{"put drops the expiration", []string{"Put/Get", "ListExpired", "Model/Random"}, func(in *null.Backend) *faulty {
		return &faulty{inner: in, apply: func(ctx context.Context, b *abi.Batch) error {
			c := &abi.Batch{Now: b.Now, Mutations: slices.Clone(b.Mutations)}
			for i := range c.Mutations {
				c.Mutations[i].ExpirationTime = 0
			}
			return in.Apply(ctx, c)
		}}
	}},
	{"deletes ignored", []string{"Delete", "Batch/LaterWins", "ListMaps", "Model/Random"}, func(in *null.Backend) *faulty {
		return &faulty{inner: in, apply: func(ctx context.Context, b *abi.Batch) error {
			c := &abi.Batch{Now: b.Now, Mutations: slices.DeleteFunc(slices.Clone(b.Mutations), func(m abi.Mutation) bool { return m.Kind == abi.OpDelete })}
			if len(c.Mutations) == 0 {
				return nil
			}
			return in.Apply(ctx, c)
		}}
	}},
	{"nil batch accepted", []string{"Batch/Empty"}, func(in *null.Backend) *faulty {
		return &faulty{inner: in, apply: func(ctx context.Context, b *abi.Batch) error {
			if b == nil {
				return nil
			}
			return in.Apply(ctx, b)
		}}
	}},
	{"batch over the limit truncated", []string{"Batch/Limits"}, func(in *null.Backend) *faulty {
		return &faulty{inner: in, apply: func(ctx context.Context, b *abi.Batch) error {
			if len(b.Mutations) > abi.MaxBatchOps {
				b = &abi.Batch{Now: b.Now, Mutations: b.Mutations[:abi.MaxBatchOps]}
			}
			return in.Apply(ctx, b)
		}}
	}},
	{"scan of a missing map is not found", []string{"Scan/Empty", "Model/Random"}, func(in *null.Backend) *faulty {
		return &faulty{inner: in, scan: func(ctx context.Context, req abi.ScanRequest) (abi.Page, error) {
			p, err := in.Scan(ctx, req)
			if err == nil && len(p.Records) == 0 {
				return p, abi.Errorf(abi.CodeNotFound, "faulty: no such map")
			}
			return p, err
		}}
	}},
	{"scan accepts invalid map names", []string{"Scan/InvalidArgument"}, func(in *null.Backend) *faulty {
		return &faulty{inner: in, scan: func(ctx context.Context, req abi.ScanRequest) (abi.Page, error) {
			p, err := in.Scan(ctx, req)
			if errors.Is(err, abi.ErrInvalidArgument) {
				return abi.Page{}, nil
			}
			return p, err
		}}
	}},
	{"scan cursor is an offset", []string{"Scan/WritesBetweenPages"}, func(in *null.Backend) *faulty {
		// A cursor that counts records instead of naming the last key
		// skips or repeats records when others are written between pages.
		return &faulty{inner: in, scan: func(ctx context.Context, req abi.ScanRequest) (abi.Page, error) {
			off := 0
			if len(req.Cursor) > 0 {
				off = int(binary.BigEndian.Uint32(req.Cursor))
			}
			all, err := in.Scan(ctx, abi.ScanRequest{Map: req.Map, Backup: req.Backup, Limit: 1 << 30, MaxBytes: 1 << 30})
			if err != nil {
				return abi.Page{}, err
			}
			if req.Limit <= 0 {
				req.Limit = abi.DefaultScanLimit
			}
			recs := all.Records[min(off, len(all.Records)):]
			p := abi.Page{Records: recs[:min(req.Limit, len(recs))]}
			if len(p.Records) < len(recs) {
				p.Cursor = binary.BigEndian.AppendUint32(nil, uint32(off+len(p.Records)))
			}
			return p, nil
		}}
	}},
	{"describe wrong ABI major", []string{"Describe"}, func(in *null.Backend) *faulty {
		return &faulty{inner: in, describe: func(d abi.Description) abi.Description { d.ABIMajor++; return d }}
	}},
	{"describe without atomic batch", []string{"Describe"}, func(in *null.Backend) *faulty {
		return &faulty{inner: in, describe: func(d abi.Description) abi.Description { d.Capabilities = 0; return d }}
	}},
	{"get without dedup", []string{"Get/Order", "Model/Random"}, func(in *null.Backend) *faulty {
		return &faulty{inner: in, get: func(ctx context.Context, m string, backup bool, keys []string) ([]abi.Record, error) {
			return getOneByOne(ctx, in, m, backup, keys)
		}}
	}},
	{"get in key order", []string{"Get/Order"}, func(in *null.Backend) *faulty {
		return &faulty{inner: in, get: func(ctx context.Context, m string, backup bool, keys []string) ([]abi.Record, error) {
			recs, err := in.Get(ctx, m, backup, keys)
			sort.Slice(recs, func(i, j int) bool { return recs[i].Key < recs[j].Key })
			return recs, err
		}}
	}},
	{"get drops empty values", []string{"Value/Empty", "Model/Random"}, func(in *null.Backend) *faulty {
		return &faulty{inner: in, get: func(ctx context.Context, m string, backup bool, keys []string) ([]abi.Record, error) {
			recs, err := in.Get(ctx, m, backup, keys)
			return slices.DeleteFunc(recs, func(r abi.Record) bool { return len(r.Value) == 0 }), err
		}}
	}},
	{"get shares stored values", []string{"Put/ValueOwnership"}, func(in *null.Backend) *faulty {
		var mu sync.Mutex
		shared := map[string][]byte{}
		return &faulty{inner: in, get: func(ctx context.Context, m string, backup bool, keys []string) ([]abi.Record, error) {
			recs, err := in.Get(ctx, m, backup, keys)
			mu.Lock()
			defer mu.Unlock()
			for i := range recs {
				id := m + "\x00" + recs[i].Key
				if v, ok := shared[id]; ok && string(v[1:]) == string(recs[i].Value[1:]) {
					recs[i].Value = v // hands out the same buffer again
				} else {
					shared[id] = recs[i].Value
				}
			}
			return recs, err
		}}
	}},
	{"overwrite resets CreatedAt", []string{"Put/Overwrite", "Model/Random"}, func(in *null.Backend) *faulty {
		return &faulty{inner: in, apply: func(ctx context.Context, b *abi.Batch) error {
			c := &abi.Batch{Now: b.Now}
			for _, m := range b.Mutations {
				if m.Kind == abi.OpPut {
					c.Delete(m.Map, m.Key, m.Backup)
				}
				c.Mutations = append(c.Mutations, m)
			}
			return in.Apply(ctx, c)
		}}
	}},
	{"batch applied mutation by mutation", []string{"Batch/Atomicity", "Model/Random"}, func(in *null.Backend) *faulty {
		return &faulty{inner: in, apply: func(ctx context.Context, b *abi.Batch) error {
			if b == nil {
				return in.Apply(ctx, b)
			}
			for _, m := range b.Mutations {
				if err := in.Apply(ctx, &abi.Batch{Now: b.Now, Mutations: []abi.Mutation{m}}); err != nil {
					return err
				}
			}
			return nil
		}}
	}},
	{"first mutation wins", []string{"Batch/LaterWins", "Model/Random"}, func(in *null.Backend) *faulty {
		return &faulty{inner: in, apply: func(ctx context.Context, b *abi.Batch) error {
			if b == nil {
				return in.Apply(ctx, b)
			}
			c := &abi.Batch{Now: b.Now, Mutations: slices.Clone(b.Mutations)}
			slices.Reverse(c.Mutations)
			return in.Apply(ctx, c)
		}}
	}},
	{"batch collapsed to last mutation per key", []string{"Batch/LaterWins"}, func(in *null.Backend) *faulty {
		// Keeps only the last mutation of each record, so a delete then a
		// put of an existing record keeps its old CreatedAt.
		return &faulty{inner: in, apply: func(ctx context.Context, b *abi.Batch) error {
			if b == nil {
				return in.Apply(ctx, b)
			}
			type id struct {
				m, k string
				bk   bool
			}
			last := map[id]int{}
			for i, m := range b.Mutations {
				last[id{m.Map, m.Key, m.Backup}] = i
			}
			c := &abi.Batch{Now: b.Now}
			for i, m := range b.Mutations {
				if last[id{m.Map, m.Key, m.Backup}] == i {
					c.Mutations = append(c.Mutations, m)
				}
			}
			return in.Apply(ctx, c)
		}}
	}},
	{"empty key rejected", []string{"Names/Weird", "Model/Random"}, func(in *null.Backend) *faulty {
		return &faulty{inner: in, apply: func(ctx context.Context, b *abi.Batch) error {
			for _, m := range b.Mutations {
				if m.Key == "" {
					return abi.Errorf(abi.CodeInvalidArgument, "faulty: empty key")
				}
			}
			return in.Apply(ctx, b)
		}}
	}},
	{"keys folded to lower case", []string{"Names/Weird", "Model/Random"}, func(in *null.Backend) *faulty {
		return &faulty{inner: in,
			apply: func(ctx context.Context, b *abi.Batch) error {
				c := &abi.Batch{Now: b.Now, Mutations: slices.Clone(b.Mutations)}
				for i := range c.Mutations {
					c.Mutations[i].Key = strings.ToLower(c.Mutations[i].Key)
				}
				return in.Apply(ctx, c)
			},
			get: func(ctx context.Context, m string, backup bool, keys []string) ([]abi.Record, error) {
				var out []abi.Record
				seen := map[string]bool{}
				for _, k := range keys {
					r, err := in.Get(ctx, m, backup, []string{strings.ToLower(k)})
					if err != nil {
						return nil, err
					}
					if len(r) == 1 && !seen[k] {
						seen[k] = true
						r[0].Key = k
						out = append(out, r[0])
					}
				}
				return out, nil
			},
		}
	}},
	{"large values truncated", []string{"Value/Large"}, func(in *null.Backend) *faulty {
		return &faulty{inner: in, apply: func(ctx context.Context, b *abi.Batch) error {
			c := &abi.Batch{Now: b.Now, Mutations: slices.Clone(b.Mutations)}
			for i := range c.Mutations {
				if len(c.Mutations[i].Value) > 1<<20 {
					c.Mutations[i].Value = c.Mutations[i].Value[:1<<20]
				}
			}
			return in.Apply(ctx, c)
		}}
	}},
	{"scan ignores the byte budget", []string{"Scan/Paging", "Scan/LargeRecord", "Value/Large", "Model/Random"}, func(in *null.Backend) *faulty {
		return &faulty{inner: in, scan: func(ctx context.Context, req abi.ScanRequest) (abi.Page, error) {
			req.MaxBytes = 0
			return in.Scan(ctx, req)
		}}
	}},
	{"scan exceeds the limit", []string{"Scan/Paging", "Model/Random"}, func(in *null.Backend) *faulty {
		return &faulty{inner: in, scan: func(ctx context.Context, req abi.ScanRequest) (abi.Page, error) {
			if req.Limit > 0 {
				req.Limit++
			}
			return in.Scan(ctx, req)
		}}
	}},
	{"scan repeats a page's last record", []string{"Scan/Paging", "Scan/Order", "Model/Random"}, func(in *null.Backend) *faulty {
		return &faulty{inner: in, scan: func(ctx context.Context, req abi.ScanRequest) (abi.Page, error) {
			p, err := in.Scan(ctx, req)
			if n := len(p.Records); len(p.Cursor) > 0 && n >= 2 {
				p.Cursor = abi.KeyCursor(p.Records[n-2].Key)
			}
			return p, err
		}}
	}},
	{"scan skips a record after each page", []string{"Scan/Paging", "Model/Random"}, func(in *null.Backend) *faulty {
		return &faulty{inner: in, scan: func(ctx context.Context, req abi.ScanRequest) (abi.Page, error) {
			p, err := in.Scan(ctx, req)
			if len(p.Cursor) > 0 {
				next, err := in.Scan(ctx, abi.ScanRequest{Map: req.Map, Backup: req.Backup, Cursor: p.Cursor, Limit: 1})
				if err == nil && len(next.Records) == 1 {
					p.Cursor = abi.KeyCursor(next.Records[0].Key)
				}
			}
			return p, err
		}}
	}},
	{"scan ends with an extra empty page", []string{"Scan/Paging", "Scan/Order", "Model/Random"}, func(in *null.Backend) *faulty {
		return &faulty{inner: in, scan: func(ctx context.Context, req abi.ScanRequest) (abi.Page, error) {
			p, err := in.Scan(ctx, req)
			if n := len(p.Records); n > 0 && len(p.Cursor) == 0 {
				p.Cursor = abi.KeyCursor(p.Records[n-1].Key)
			}
			return p, err
		}}
	}},
	{"scan pages in reverse", []string{"Scan/Order", "Scan/Paging", "Model/Random"}, func(in *null.Backend) *faulty {
		return &faulty{inner: in, scan: func(ctx context.Context, req abi.ScanRequest) (abi.Page, error) {
			p, err := in.Scan(ctx, req)
			slices.Reverse(p.Records)
			return p, err
		}}
	}},
	{"scan mixes backup and primary", []string{"Scan/Backup", "Model/Random"}, func(in *null.Backend) *faulty {
		return &faulty{inner: in, scan: func(ctx context.Context, req abi.ScanRequest) (abi.Page, error) {
			if req.Backup {
				req.Backup = false
			}
			return in.Scan(ctx, req)
		}}
	}},
	{"scan fails on foreign cursors", []string{"Scan/Cursor"}, func(in *null.Backend) *faulty {
		return &faulty{inner: in, scan: func(ctx context.Context, req abi.ScanRequest) (abi.Page, error) {
			p, err := in.Scan(ctx, req)
			if errors.Is(err, abi.ErrInvalidArgument) && req.Map != "" {
				return p, abi.Errorf(abi.CodeInternal, "faulty: bad cursor")
			}
			return p, err
		}}
	}},
	{"scan panics on garbage cursors", []string{"Scan/Cursor"}, func(in *null.Backend) *faulty {
		return &faulty{inner: in, scan: func(ctx context.Context, req abi.ScanRequest) (abi.Page, error) {
			if len(req.Cursor) > 0 && req.Cursor[0] != 'k' {
				panic("faulty: garbage cursor")
			}
			return in.Scan(ctx, req)
		}}
	}},
	{"list maps includes backup-only maps", []string{"Backup/Separation"}, func(in *null.Backend) *faulty {
		return &faulty{inner: in, listMaps: func(ctx context.Context) ([]string, error) {
			maps, err := in.ListMaps(ctx)
			if p, _ := in.Scan(ctx, abi.ScanRequest{Map: "backup-only", Backup: true, Limit: 1}); len(p.Records) > 0 {
				maps = append(maps, "backup-only")
				sort.Strings(maps)
			}
			return maps, err
		}}
	}},
	{"list maps unsorted", []string{"ListMaps", "Names/Weird", "Model/Random"}, func(in *null.Backend) *faulty {
		return &faulty{inner: in, listMaps: func(ctx context.Context) ([]string, error) {
			maps, err := in.ListMaps(ctx)
			slices.Reverse(maps)
			return maps, err
		}}
	}},
	{"list expired skips backup records", []string{"ListExpired", "Model/Random"}, func(in *null.Backend) *faulty {
		return &faulty{inner: in, listExpired: func(ctx context.Context, now int64, limit int) ([]abi.Record, error) {
			recs, err := in.ListExpired(ctx, now, limit)
			return slices.DeleteFunc(recs, func(r abi.Record) bool { return r.Backup }), err
		}}
	}},
	{"list expired ignores the limit", []string{"ListExpired/Limit", "Model/Random"}, func(in *null.Backend) *faulty {
		return &faulty{inner: in, listExpired: func(ctx context.Context, now int64, limit int) ([]abi.Record, error) {
			return in.ListExpired(ctx, now, 1<<30)
		}}
	}},
	{"list expired excludes now", []string{"ListExpired"}, func(in *null.Backend) *faulty {
		return &faulty{inner: in, listExpired: func(ctx context.Context, now int64, limit int) ([]abi.Record, error) {
			return in.ListExpired(ctx, now-1, limit)
		}}
	}},
	{"list expired latest first", []string{"ListExpired", "ListExpired/Limit"}, func(in *null.Backend) *faulty {
		return &faulty{inner: in, listExpired: func(ctx context.Context, now int64, limit int) ([]abi.Record, error) {
			recs, err := in.ListExpired(ctx, now, 1<<30)
			slices.Reverse(recs)
			return recs[:min(limit, len(recs))], err
		}}
	}},
	{"list expired returns values", []string{"ListExpired", "Model/Random"}, func(in *null.Backend) *faulty {
		return &faulty{inner: in, listExpired: func(ctx context.Context, now int64, limit int) ([]abi.Record, error) {
			recs, err := in.ListExpired(ctx, now, limit)
			for i := range recs {
				recs[i].Value = []byte("value")
			}
			return recs, err
		}}
	}},
	{"context ignored", []string{"Context/Canceled", "Context/DeadlineExceeded"}, func(in *null.Backend) *faulty {
		bg := context.Background()
		return &faulty{inner: in,
			apply: func(_ context.Context, b *abi.Batch) error { return in.Apply(bg, b) },
			get: func(_ context.Context, m string, bk bool, k []string) ([]abi.Record, error) {
				return in.Get(bg, m, bk, k)
			},
			scan:        func(_ context.Context, r abi.ScanRequest) (abi.Page, error) { return in.Scan(bg, r) },
			listMaps:    func(context.Context) ([]string, error) { return in.ListMaps(bg) },
			listExpired: func(_ context.Context, n int64, l int) ([]abi.Record, error) { return in.ListExpired(bg, n, l) },
		}
	}},
	{"slow to notice cancellation", []string{"Context/Canceled"}, func(in *null.Backend) *faulty {
		return &faulty{inner: in, get: func(ctx context.Context, m string, bk bool, k []string) ([]abi.Record, error) {
			if ctx.Err() != nil {
				time.Sleep(1100 * time.Millisecond)
			}
			return in.Get(ctx, m, bk, k)
		}}
	}},
	{"scan ends with an empty, non-nil cursor", []string{"Scan/Order", "Scan/Paging", "Model/Random"}, func(in *null.Backend) *faulty {
		// The server stops paging on a nil cursor only; an empty one is
		// "from the start" in the next request, so it scans forever.
		return &faulty{inner: in, scan: func(ctx context.Context, req abi.ScanRequest) (abi.Page, error) {
			p, err := in.Scan(ctx, req)
			if err == nil && p.Cursor == nil {
				p.Cursor = []byte{}
			}
			return p, err
		}}
	}},
	{"list expired returns nothing for a limit of 0", []string{"ListExpired/Limit"}, func(in *null.Backend) *faulty {
		return &faulty{inner: in, listExpired: func(ctx context.Context, now int64, limit int) ([]abi.Record, error) {
			recs, err := in.ListExpired(ctx, now, limit)
			if limit <= 0 {
				recs = recs[:0]
			}
			return recs, err
		}}
	}},
	{"list expired treats a limit of 0 as no limit", []string{"ListExpired/Limit"}, func(in *null.Backend) *faulty {
		return &faulty{inner: in, listExpired: func(ctx context.Context, now int64, limit int) ([]abi.Record, error) {
			if limit <= 0 {
				limit = 1 << 30
			}
			return in.ListExpired(ctx, now, limit)
		}}
	}},
	{"put with an older batch time ignored", []string{"Put/Overwrite"}, func(in *null.Backend) *faulty {
		// Last-writer-wins by batch time: a put whose batch is older than
		// the stored record's UpdatedAt is dropped (say, an upsert with
		// WHERE updated_at <= excluded.updated_at). The server stamps
		// batches with its clock, which may step back across a restart.
		var mu sync.Mutex // makes the check and the apply one atomic step
		return &faulty{inner: in, apply: func(ctx context.Context, b *abi.Batch) error {
			if b == nil || b.Now <= 0 {
				return in.Apply(ctx, b)
			}
			mu.Lock()
			defer mu.Unlock()
			c := &abi.Batch{Now: b.Now}
			for _, m := range b.Mutations {
				if m.Kind == abi.OpPut {
					if r, err := abi.GetOne(ctx, in, m.Map, m.Key, m.Backup); err == nil && r.UpdatedAt > b.Now {
						continue
					}
				}
				c.Mutations = append(c.Mutations, m)
			}
			return in.Apply(ctx, c)
		}}
	}},
	{"describe with a name the host refuses", []string{"Describe"}, func(in *null.Backend) *faulty {
		return &faulty{inner: in, describe: func(d abi.Description) abi.Description {
			d.Name = "null\n" + strings.Repeat("x", abi.MaxBackendNameBytes)
			return d
		}}
	}},
	{"wrong code after close", []string{"Close/UseAfterClose"}, func(in *null.Backend) *faulty {
		return &faulty{inner: in, listMaps: func(ctx context.Context) ([]string, error) {
			maps, err := in.ListMaps(ctx)
			if errors.Is(err, abi.ErrUnavailable) {
				err = abi.Errorf(abi.CodeInternal, "faulty: closed")
			}
			return maps, err
		}}
	}},
	{"calls with nothing to do succeed after close", []string{"Close/UseAfterClose"}, func(in *null.Backend) *faulty {
		return &faulty{inner: in,
			apply: func(ctx context.Context, b *abi.Batch) error {
				if ctx.Err() == nil && b != nil && b.Now > 0 && len(b.Mutations) == 0 {
					return nil
				}
				return in.Apply(ctx, b)
			},
			get: func(ctx context.Context, m string, backup bool, keys []string) ([]abi.Record, error) {
				if ctx.Err() == nil && len(keys) == 0 && abi.ValidateGet(m, keys) == nil {
					return nil, nil
				}
				return in.Get(ctx, m, backup, keys)
			}}
	}},
	// A backend that keeps a batch, a get's records, a page or the map
	// list in a fixed-size array loses records without an error.
	{"apply drops mutations past 1024", []string{"Batch/Limits", "ListMaps"}, func(in *null.Backend) *faulty {
		return &faulty{inner: in, apply: func(ctx context.Context, b *abi.Batch) error {
			if b != nil && len(b.Mutations) > 1024 && len(b.Mutations) <= abi.MaxBatchOps {
				c := *b
				c.Mutations = c.Mutations[:1024]
				return in.Apply(ctx, &c)
			}
			return in.Apply(ctx, b)
		}}
	}},
	{"get answers at most 1000 records", []string{"Batch/Limits"}, func(in *null.Backend) *faulty {
		return &faulty{inner: in, get: func(ctx context.Context, m string, backup bool, keys []string) ([]abi.Record, error) {
			recs, err := in.Get(ctx, m, backup, keys)
			return recs[:min(len(recs), 1000)], err
		}}
	}},
	{"scan treats a limit of 0 as no limit", []string{"Batch/Limits"}, func(in *null.Backend) *faulty {
		return &faulty{inner: in, scan: func(ctx context.Context, req abi.ScanRequest) (abi.Page, error) {
			if req.Limit <= 0 {
				req.Limit = 1 << 30
			}
			return in.Scan(ctx, req)
		}}
	}},
	{"list maps answers at most 1000 names", []string{"ListMaps"}, func(in *null.Backend) *faulty {
		return &faulty{inner: in, listMaps: func(ctx context.Context) ([]string, error) {
			maps, err := in.ListMaps(ctx)
			return maps[:min(len(maps), 1000)], err
		}}
	}},
	// Faults found by mutation testing that the suite once let through.
	{"apply validates and commits 1000 mutations at a time", []string{"Batch/Atomicity"}, func(in *null.Backend) *faulty {
		// Each chunk is atomic, the batch is not: an invalid mutation in a
		// later chunk fails the batch after the earlier chunks applied.
		return &faulty{inner: in, apply: func(ctx context.Context, b *abi.Batch) error {
			if b == nil || len(b.Mutations) <= 1000 || len(b.Mutations) > abi.MaxBatchOps {
				return in.Apply(ctx, b)
			}
			for i := 0; i < len(b.Mutations); i += 1000 {
				chunk := &abi.Batch{Now: b.Now, Mutations: b.Mutations[i:min(i+1000, len(b.Mutations))]}
				if err := in.Apply(ctx, chunk); err != nil {
					return err
				}
			}
			return nil
		}}
	}},
	{"map name length counted in runes", []string{"Batch/Atomicity"}, func(in *null.Backend) *faulty {
		return &faulty{inner: in, apply: func(ctx context.Context, b *abi.Batch) error {
			for _, m := range b.Mutations {
				if len(m.Map) > abi.MaxMapNameBytes && utf8.RuneCountInString(m.Map) <= abi.MaxMapNameBytes {
					return nil // taken as valid (and, here, dropped)
				}
			}
			return in.Apply(ctx, b)
		}}
	}},
	{"scan skips the record after a deleted cursor key", []string{"Scan/WritesBetweenPages"}, func(in *null.Backend) *faulty {
		// Seeks to the cursor's key and always steps once: right while
		// that key exists, one record too far once it was deleted.
		return &faulty{inner: in, scan: func(ctx context.Context, req abi.ScanRequest) (abi.Page, error) {
			after, ok, err := abi.ParseKeyCursor(req.Cursor)
			if err != nil || !ok {
				return in.Scan(ctx, req)
			}
			if _, err := abi.GetOne(ctx, in, req.Map, after, req.Backup); !errors.Is(err, abi.ErrNotFound) {
				return in.Scan(ctx, req)
			}
			skip, err := in.Scan(ctx, abi.ScanRequest{Map: req.Map, Backup: req.Backup, Cursor: req.Cursor, Limit: 1})
			if err != nil || len(skip.Cursor) == 0 {
				return abi.Page{}, err
			}
			req.Cursor = skip.Cursor
			return in.Scan(ctx, req)
		}}
	}},
	{"put of an unchanged record keeps UpdatedAt", []string{"Put/Overwrite", "Model/Random"}, func(in *null.Backend) *faulty {
		// Skips a put whose value and expiration are those stored.
		var mu sync.Mutex // makes the check and the apply one atomic step
		return &faulty{inner: in, apply: func(ctx context.Context, b *abi.Batch) error {
			if abi.ValidateBatch(b) != nil {
				return in.Apply(ctx, b)
			}
			mu.Lock()
			defer mu.Unlock()
			type id struct {
				m, k string
				bk   bool
			}
			touched := map[id]bool{}
			c := &abi.Batch{Now: b.Now}
			for _, m := range b.Mutations {
				i := id{m.Map, m.Key, m.Backup}
				if m.Kind == abi.OpPut && !touched[i] {
					if r, err := abi.GetOne(ctx, in, m.Map, m.Key, m.Backup); err == nil && bytes.Equal(r.Value, m.Value) && r.ExpirationTime == m.ExpirationTime {
						continue
					}
				}
				touched[i] = true
				c.Mutations = append(c.Mutations, m)
			}
			return in.Apply(ctx, c)
		}}
	}},
	{"list maps in UTF-16 order", []string{"ListMaps"}, func(in *null.Backend) *faulty {
		return &faulty{inner: in, listMaps: func(ctx context.Context) ([]string, error) {
			maps, err := in.ListMaps(ctx)
			sort.SliceStable(maps, func(i, j int) bool {
				return slices.Compare(utf16.Encode([]rune(maps[i])), utf16.Encode([]rune(maps[j]))) < 0
			})
			return maps, err
		}}
	}},
	{"get of many keys answers repeated keys again", []string{"Get/Order"}, func(in *null.Backend) *faulty {
		// Drops duplicates only on its path for few keys.
		return &faulty{inner: in, get: func(ctx context.Context, m string, backup bool, keys []string) ([]abi.Record, error) {
			if len(keys) <= 8 || abi.ValidateGet(m, keys) != nil {
				return in.Get(ctx, m, backup, keys)
			}
			return getOneByOne(ctx, in, m, backup, keys)
		}}
	}},
	{"list expired answers at most 1000 records", []string{"ListExpired/Limit"}, func(in *null.Backend) *faulty {
		return &faulty{inner: in, listExpired: func(ctx context.Context, now int64, limit int) ([]abi.Record, error) {
			return in.ListExpired(ctx, now, min(abi.ScanLimit(limit), 1000))
		}}
	}},
	{"expirations past PostgreSQL's timestamp range refused", []string{"ListExpired"}, func(in *null.Backend) *faulty {
		// Keeps expirations in a date type, which ends in 294276 AD.
		return &faulty{inner: in, apply: func(ctx context.Context, b *abi.Batch) error {
			if b != nil {
				for _, m := range b.Mutations {
					if m.ExpirationTime > 9_224_318_015_999_999 {
						return abi.Errorf(abi.CodeInvalidArgument, "faulty: timestamp out of range")
					}
				}
			}
			return in.Apply(ctx, b)
		}}
	}},
	{"expiry index ignores the backup flag", []string{"Backup/Separation", "Model/Random"}, func(in *null.Backend) *faulty {
		// Keys its expiry index by map and key: the last put or delete of
		// either side decides for both.
		type mk struct{ m, k string }
		type entry struct {
			exp    int64
			backup bool
		}
		var mu sync.Mutex
		idx := map[mk]entry{}
		return &faulty{inner: in,
			apply: func(ctx context.Context, b *abi.Batch) error {
				mu.Lock()
				defer mu.Unlock()
				if err := in.Apply(ctx, b); err != nil {
					return err
				}
				for _, m := range b.Mutations {
					if m.Kind == abi.OpPut && m.ExpirationTime > 0 {
						idx[mk{m.Map, m.Key}] = entry{m.ExpirationTime, m.Backup}
					} else {
						delete(idx, mk{m.Map, m.Key})
					}
				}
				return nil
			},
			listExpired: func(ctx context.Context, now int64, limit int) ([]abi.Record, error) {
				mu.Lock()
				defer mu.Unlock()
				if _, err := in.ListExpired(ctx, now, 1); err != nil {
					return nil, err
				}
				var out []abi.Record
				for id, e := range idx {
					if r, err := abi.GetOne(ctx, in, id.m, id.k, e.backup); err == nil && e.exp <= now {
						r.Value = nil
						out = append(out, r)
					}
				}
				sort.Slice(out, func(i, j int) bool { return null.ExpiredLess(&out[i], &out[j]) })
				return out[:min(len(out), abi.ScanLimit(limit))], nil
			},
		}
	}},
	{"map and key joined with a unit separator", []string{"Backup/Separation"}, func(in *null.Backend) *faulty {
		j := &oneKeyspace{sep: "\x1f", recs: [2]map[string]abi.Record{{}, {}}}
		return &faulty{inner: in, apply: j.Apply, get: j.Get, scan: j.Scan, listMaps: j.ListMaps, listExpired: j.ListExpired, close: j.Close}
	}},
	{"list maps keeps a map a batch put into and emptied", []string{"ListMaps"}, func(in *null.Backend) *faulty {
		// Keeps a registry of map names: a put adds its map, and a delete
		// drops its map once empty, unless the batch also put into that
		// map (taken for non-empty without looking).
		var mu sync.Mutex
		reg := map[string]bool{}
		return &faulty{inner: in,
			apply: func(ctx context.Context, b *abi.Batch) error {
				mu.Lock()
				defer mu.Unlock()
				if err := in.Apply(ctx, b); err != nil {
					return err
				}
				put := map[string]bool{}
				for _, m := range b.Mutations {
					if m.Kind == abi.OpPut && !m.Backup {
						reg[m.Map], put[m.Map] = true, true
					}
				}
				for _, m := range b.Mutations {
					if m.Kind == abi.OpDelete && !m.Backup && !put[m.Map] {
						if p, err := in.Scan(ctx, abi.ScanRequest{Map: m.Map, Limit: 1}); err == nil && len(p.Records) == 0 {
							delete(reg, m.Map)
						}
					}
				}
				return nil
			},
			listMaps: func(ctx context.Context) ([]string, error) {
				mu.Lock()
				defer mu.Unlock()
				if _, err := in.ListMaps(ctx); err != nil {
					return nil, err
				}
				out := make([]string, 0, len(reg))
				for m := range reg {
					out = append(out, m)
				}
				sort.Strings(out)
				return out, nil
			},
		}
	}},
	{"close not idempotent", []string{"Close/UseAfterClose"}, func(in *null.Backend) *faulty {
		closed := false
		return &faulty{inner: in, close: func() error {
			if closed {
				return abi.Errorf(abi.CodeUnavailable, "faulty: already closed")
			}
			closed = true
			return in.Close()
		}}
	}},
}

// sharedFaults are broken backends on shared storage (sharedHarness), for
// the cases of the optional interfaces, each with the cases that must
// catch it.
var sharedFaults = []struct {
	name  string
	cases []string
	make  func(h *sharedHandle)
}{
	{name: "apply checked ignores expect", cases: []string{"Shared/ApplyChecked", "Shared/ApplyChecked/Writers"}, make: func(h *sharedHandle) {
		h.applyChecked = func(ctx context.Context, b *abi.Batch, _ []abi.Expect) error { return h.Apply(ctx, b) }
	}},
	{name: "apply checked conflicts with another code", cases: []string{"Shared/ApplyChecked"}, make: func(h *sharedHandle) {
		h.applyChecked = func(ctx context.Context, b *abi.Batch, expect []abi.Expect) error {
			err := h.checked(ctx, b, expect)
			if errors.Is(err, abi.ErrConflict) {
				return abi.Errorf(abi.CodeInternal, "faulty: record changed")
			}
			return err
		}
	}},
	{name: "apply checked applies the batch on a conflict", cases: []string{"Shared/ApplyChecked"}, make: func(h *sharedHandle) {
		h.applyChecked = func(ctx context.Context, b *abi.Batch, expect []abi.Expect) error {
			err := h.checked(ctx, b, expect)
			if errors.Is(err, abi.ErrConflict) {
				_ = h.Apply(ctx, b)
			}
			return err
		}
	}},
	{name: "apply checked compares presence only", cases: []string{"Shared/ApplyChecked", "Shared/ApplyChecked/Writers"}, make: func(h *sharedHandle) {
		h.applyChecked = func(ctx context.Context, b *abi.Batch, expect []abi.Expect) error {
			e := slices.Clone(expect)
			for i := range e {
				e[i].Value = nil
			}
			ignore := func(ctx context.Context, b *abi.Batch, expect []abi.Expect) error {
				if err := h.live(ctx); err != nil {
					return err
				}
				if err := abi.ValidateBatch(b); err != nil {
					return err
				}
				h.s.mu.Lock()
				defer h.s.mu.Unlock()
				for _, x := range expect {
					recs, err := h.s.data.Get(ctx, x.Map, false, []string{x.Key})
					if err != nil {
						return err
					}
					if (len(recs) == 1) != x.Present {
						return abi.Errorf(abi.CodeConflict, "faulty: changed")
					}
				}
				return h.s.commit(ctx, h, b)
			}
			return ignore(ctx, b, e)
		}
	}},
	{name: "apply checked checks only the first expect", cases: []string{"Shared/ApplyChecked"}, make: func(h *sharedHandle) {
		h.applyChecked = func(ctx context.Context, b *abi.Batch, expect []abi.Expect) error {
			return h.checked(ctx, b, expect[:min(len(expect), 1)])
		}
	}},
	{name: "apply checked takes a backup record for its primary", cases: []string{"Shared/ApplyChecked"}, make: func(h *sharedHandle) {
		h.applyChecked = func(ctx context.Context, b *abi.Batch, expect []abi.Expect) error {
			e := slices.Clone(expect)
			for i := range e {
				if r, err := abi.GetOne(ctx, h.s.data, e[i].Map, e[i].Key, true); err == nil && !e[i].Present {
					e[i].Present, e[i].Value = true, r.Value // absent no longer: a conflict
				}
			}
			return h.checked(ctx, b, e)
		}
	}},
	{name: "apply checked succeeds without mutations", cases: []string{"Shared/ApplyChecked"}, make: func(h *sharedHandle) {
		h.applyChecked = func(ctx context.Context, b *abi.Batch, expect []abi.Expect) error {
			if b != nil && b.Now > 0 && len(b.Mutations) == 0 && h.live(ctx) == nil {
				return nil
			}
			return h.checked(ctx, b, expect)
		}
	}},
	{name: "apply checked commits 1000 mutations at a time, checking before each", cases: []string{"Shared/ApplyChecked"}, make: func(h *sharedHandle) {
		h.applyChecked = func(ctx context.Context, b *abi.Batch, expect []abi.Expect) error {
			if abi.ValidateBatch(b) != nil || len(b.Mutations) <= 1000 {
				return h.checked(ctx, b, expect)
			}
			for i := 0; i < len(b.Mutations); i += 1000 {
				chunk := &abi.Batch{Now: b.Now, Mutations: b.Mutations[i:min(i+1000, len(b.Mutations))]}
				if err := h.checked(ctx, chunk, expect); err != nil {
					return err
				}
			}
			return nil
		}
	}},
	{name: "apply checked compares with what this backend wrote", cases: []string{"Shared/ApplyChecked"}, make: func(h *sharedHandle) {
		// Keeps the values it wrote and takes them for storage's.
		var mu sync.Mutex
		wrote := map[[2]string][]byte{}
		h.applyChecked = func(ctx context.Context, b *abi.Batch, expect []abi.Expect) error {
			mu.Lock()
			defer mu.Unlock()
			var rest []abi.Expect
			for _, e := range expect {
				if v, ok := wrote[[2]string{e.Map, e.Key}]; ok && e.Present {
					if !bytes.Equal(v, e.Value) {
						return abi.Errorf(abi.CodeConflict, "faulty: changed")
					}
					continue
				}
				rest = append(rest, e)
			}
			if err := h.checked(ctx, b, rest); err != nil {
				return err
			}
			for _, m := range b.Mutations {
				if m.Kind == abi.OpPut && !m.Backup {
					wrote[[2]string{m.Map, m.Key}] = bytes.Clone(m.Value)
				}
			}
			return nil
		}
	}},
	{name: "apply checked ignores the context", cases: []string{"Shared/ApplyChecked"}, make: func(h *sharedHandle) {
		h.applyChecked = func(_ context.Context, b *abi.Batch, expect []abi.Expect) error {
			return h.checked(context.Background(), b, expect)
		}
	}},
	{name: "apply checked works after close", cases: []string{"Shared/ApplyChecked"}, make: func(h *sharedHandle) {
		h.applyChecked = func(ctx context.Context, b *abi.Batch, expect []abi.Expect) error {
			if err := h.checked(ctx, b, expect); !errors.Is(err, abi.ErrUnavailable) {
				return err
			}
			h.s.mu.Lock()
			defer h.s.mu.Unlock()
			if err := h.s.check(ctx, expect); err != nil {
				return err
			}
			return h.s.commit(ctx, h, b)
		}
	}},
	{name: "apply checked checks and applies in two steps", cases: []string{"Shared/ApplyChecked/Writers"}, make: func(h *sharedHandle) {
		h.applyChecked = func(ctx context.Context, b *abi.Batch, expect []abi.Expect) error {
			if err := h.live(ctx); err != nil {
				return err
			}
			h.s.mu.Lock()
			err := h.s.check(ctx, expect)
			h.s.mu.Unlock()
			if err != nil {
				return err
			}
			time.Sleep(time.Millisecond) // another writer's batch may come here
			return h.Apply(ctx, b)
		}
	}},
	{name: "watch reports nothing", cases: []string{"Shared/Watch", "Shared/Watch/Stop"}, make: func(h *sharedHandle) {
		h.watch = func(ctx context.Context, _ func(abi.Changed)) error { return h.listen(ctx, func(abi.Changed) {}) }
	}},
	{name: "watch listens only after it returned", cases: []string{"Shared/Watch"}, make: func(h *sharedHandle) {
		h.watch = func(ctx context.Context, fn func(abi.Changed)) error {
			if err := h.live(ctx); err != nil {
				return err
			}
			go func() {
				time.Sleep(100 * time.Millisecond)
				_ = h.listen(ctx, fn)
			}()
			return nil
		}
	}},
	{name: "watch misses deletes", cases: []string{"Shared/Watch"}, make: func(h *sharedHandle) {
		// Names only the keys present after the commit.
		h.watch = func(ctx context.Context, fn func(abi.Changed)) error {
			return h.listen(ctx, func(c abi.Changed) {
				c.Keys = slices.DeleteFunc(c.Keys, func(k string) bool {
					_, err := abi.GetOne(context.Background(), h.s.data, c.Map, k, false)
					return err != nil
				})
				if len(c.Keys) > 0 {
					fn(c)
				}
			})
		}
	}},
	{name: "watch names a commit's first key only", cases: []string{"Shared/Watch"}, make: func(h *sharedHandle) {
		h.watch = func(ctx context.Context, fn func(abi.Changed)) error {
			return h.listen(ctx, func(c abi.Changed) {
				c.Keys = c.Keys[:min(len(c.Keys), 1)]
				fn(c)
			})
		}
	}},
	{name: "watch misses the commits of apply checked", cases: []string{"Shared/Watch"}, make: func(h *sharedHandle) {
		h.applyChecked = func(ctx context.Context, b *abi.Batch, expect []abi.Expect) error {
			if err := h.live(ctx); err != nil {
				return err
			}
			h.s.mu.Lock()
			defer h.s.mu.Unlock()
			if err := h.s.check(ctx, expect); err != nil {
				return err
			}
			return h.s.data.Apply(ctx, b)
		}
	}},
	{name: "watch calls fn from a goroutine per change", cases: []string{"Shared/Watch"}, make: func(h *sharedHandle) {
		h.watch = func(ctx context.Context, fn func(abi.Changed)) error {
			return h.listen(ctx, func(c abi.Changed) { go fn(c) })
		}
	}},
	{name: "watch ignores its context", cases: []string{"Shared/Watch/Stop"}, make: func(h *sharedHandle) {
		h.watch = func(_ context.Context, fn func(abi.Changed)) error { return h.listen(context.Background(), fn) }
	}},
	{name: "watch goes on after close", cases: []string{"Shared/Watch/Stop"}, make: func(h *sharedHandle) {
		// Listens for a hidden handle of the same storage, never closed.
		h.watch = func(ctx context.Context, fn func(abi.Changed)) error {
			if err := h.live(ctx); err != nil {
				return err
			}
			hidden := &sharedHandle{s: h.s, stop: make(chan struct{})}
			return hidden.listen(ctx, func(c abi.Changed) { fn(c) })
		}
	}},
	{name: "watch starts after close", cases: []string{"Shared/Watch/Stop"}, make: func(h *sharedHandle) {
		h.watch = func(ctx context.Context, fn func(abi.Changed)) error {
			if err := h.listen(ctx, fn); !errors.Is(err, abi.ErrUnavailable) {
				return err
			}
			return nil
		}
	}},
}

// runOne runs one case with Run and returns its counts and output.
func runOne(t *testing.T, h abitest.Harness, name string) (passed, failed, skipped int, out string) {
	t.Helper()
	var buf bytes.Buffer
	passed, failed, skipped = abitest.Run(context.Background(), &buf, h, func(c abitest.Case) bool { return c.Name == name })
	if passed+failed+skipped != 1 {
		t.Fatalf("Run with a filter for %q ran %d cases; want 1", name, passed+failed+skipped)
	}
	return passed, failed, skipped, buf.String()
}

// TestSuite_catchesFaults checks that every case fails against a backend that
// breaks the promise it tests: a suite that passes everything proves nothing.
func TestSuite_catchesFaults(t *testing.T) {
	t.Setenv("TOPGUN_MODEL_SEED", "1")
	for _, f := range faults {
		h := abitest.Harness{Open: func(abitest.TB) abi.Backend { return f.make(null.Open()) }}
		for _, name := range f.cases {
			t.Run(f.name+"/"+name, func(t *testing.T) {
				_, failed, _, out := runOne(t, h, name)
				t.Logf("%s", out)
				if failed != 1 {
					t.Errorf("case %s passed against a backend whose %s", name, f.name)
				}
			})
		}
	}
}

// TestSuite_catchesSharedFaults is TestSuite_catchesFaults for the faults
// of shared storage. Their subtests run in parallel: a case waits 10 s for
// a commit that a broken Watch never reports.
func TestSuite_catchesSharedFaults(t *testing.T) {
	for _, f := range sharedFaults {
		h := sharedHarness(f.make)
		for _, name := range f.cases {
			t.Run(f.name+"/"+name, func(t *testing.T) {
				t.Parallel()
				_, failed, _, out := runOne(t, h, name)
				t.Logf("%s", out)
				if failed != 1 {
					t.Errorf("case %s passed against a backend on shared storage whose %s", name, f.name)
				}
			})
		}
	}
}

// TestSuite_everyCaseCanFail makes sure the fault table covers the cases
// that test a backend's own behaviour.
func TestSuite_everyCaseCanFail(t *testing.T) {
	covered := map[string]bool{
		// Covered by TestRun_durable below.
		"Durability/Reopen": true,
	}
	for _, f := range faults {
		for _, c := range f.cases {
			covered[c] = true
		}
	}
	for _, f := range sharedFaults {
		for _, c := range f.cases {
			covered[c] = true
		}
	}
	for _, c := range abitest.Cases() {
		if !covered[c.Name] && !uncoveredOK[c.Name] {
			t.Errorf("no fault in the table is caught by case %s; add one", c.Name)
		}
	}
}

// uncoveredOK are cases the fault table does not cover, with the test that
// does.
var uncoveredOK = map[string]bool{
	"Concurrency/Writers": true, // TestSuite_catchesTornBatches
}

// TestSuite_catchesTornBatches checks that the concurrency case catches an
// Apply that commits a batch mutation by mutation, so that readers and other
// writers see parts of it. Whether the goroutines interleave at the wrong
// moment is up to the scheduler: one run catches it about two times in
// three without -race (always with it), so the case gets 10 tries.
func TestSuite_catchesTornBatches(t *testing.T) {
	h := abitest.Harness{Open: func(abitest.TB) abi.Backend {
		in := null.Open()
		return &faulty{inner: in, apply: func(ctx context.Context, b *abi.Batch) error {
			if err := abi.ValidateBatch(b); err != nil {
				return err
			}
			for _, m := range b.Mutations {
				if err := in.Apply(ctx, &abi.Batch{Now: b.Now, Mutations: []abi.Mutation{m}}); err != nil {
					return err
				}
			}
			return nil
		}}
	}}
	for try := 1; try <= 10; try++ {
		if _, failed, _, out := runOne(t, h, "Concurrency/Writers"); failed == 1 {
			t.Logf("caught at try %d:\n%s", try, out)
			return
		}
	}
	t.Errorf("Concurrency/Writers passed 10 times against a backend that applies batches mutation by mutation")
}

// store is a "durable" backend for the tests: the null backend behind a
// handle that can be closed and opened again over the same data.
type store struct {
	mu     sync.Mutex
	data   *null.Backend
	closed bool
	lose   bool // reopen loses the data
}

type handle struct {
	s      *store
	closed bool
	mu     sync.Mutex
}

var _ abi.Backend = (*handle)(nil)

func (h *handle) live() (*null.Backend, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, abi.Errorf(abi.CodeUnavailable, "store: closed")
	}
	return h.s.data, nil
}

func (h *handle) Describe() abi.Description {
	return abi.Description{Name: "store", ABIMajor: abi.VersionMajor, Capabilities: abi.CapAtomicBatch | abi.CapDurable}
}

func (h *handle) Apply(ctx context.Context, b *abi.Batch) error {
	if err := abi.ContextError(ctx); err != nil {
		return err
	}
	d, err := h.live()
	if err != nil {
		return err
	}
	return d.Apply(ctx, b)
}

func (h *handle) Get(ctx context.Context, m string, backup bool, keys []string) ([]abi.Record, error) {
	if err := abi.ContextError(ctx); err != nil {
		return nil, err
	}
	d, err := h.live()
	if err != nil {
		return nil, err
	}
	return d.Get(ctx, m, backup, keys)
}

func (h *handle) Scan(ctx context.Context, req abi.ScanRequest) (abi.Page, error) {
	if err := abi.ContextError(ctx); err != nil {
		return abi.Page{}, err
	}
	d, err := h.live()
	if err != nil {
		return abi.Page{}, err
	}
	return d.Scan(ctx, req)
}

func (h *handle) ListMaps(ctx context.Context) ([]string, error) {
	if err := abi.ContextError(ctx); err != nil {
		return nil, err
	}
	d, err := h.live()
	if err != nil {
		return nil, err
	}
	return d.ListMaps(ctx)
}

func (h *handle) ListExpired(ctx context.Context, now int64, limit int) ([]abi.Record, error) {
	if err := abi.ContextError(ctx); err != nil {
		return nil, err
	}
	d, err := h.live()
	if err != nil {
		return nil, err
	}
	return d.ListExpired(ctx, now, limit)
}

func (h *handle) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	return nil
}

func durableHarness(lose bool) abitest.Harness {
	return abitest.Harness{
		Open: func(abitest.TB) abi.Backend { return &handle{s: &store{data: null.Open(), lose: lose}} },
		Reopen: func(t abitest.TB, b abi.Backend) abi.Backend {
			old := b.(*handle)
			if err := old.Close(); err != nil {
				t.Fatalf("Close() = %v", err)
			}
			if old.s.lose {
				old.s.data = null.Open()
			}
			return &handle{s: old.s}
		},
	}
}

var lineRE = regexp.MustCompile(`^(PASS \S+ \(\S+\)|SKIP \S+: .+|FAIL \S+ \(\S+\)|    .*)$`)

func checkOutput(t *testing.T, out string) {
	t.Helper()
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if !lineRE.MatchString(line) {
			t.Errorf("Run wrote %q; want PASS/FAIL/SKIP lines and indented messages", line)
		}
	}
}

func TestRun_null(t *testing.T) {
	var buf bytes.Buffer
	// Short: the full run is null's own TestConformance.
	passed, failed, skipped := abitest.Run(context.Background(), &buf, abitest.Harness{Open: func(abitest.TB) abi.Backend { return null.Open() }, Short: true}, nil)
	out := buf.String()
	t.Logf("%s", out)
	checkOutput(t, out)
	if failed != 0 || skipped != 5 || passed != len(abitest.Cases())-5 {
		t.Errorf("Run against null = %d passed, %d failed, %d skipped; want %d, 0, 5 (durability and shared storage)", passed, failed, skipped, len(abitest.Cases())-5)
	}
	for _, want := range []string{
		"SKIP Durability/Reopen: Harness.Reopen is nil",
		"SKIP Shared/ApplyChecked: the backend does not implement abi.CheckedApplier",
		"SKIP Shared/Watch: the backend does not implement abi.Watcher",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("Run did not say why it skipped: no line %q", want)
		}
	}
}

// TestRun_shared checks that a correct backend on shared storage passes
// every case, those of ApplyChecked and Watch included, and that without
// Harness.OpenShared the cases of Watch say why they skip.
func TestRun_shared(t *testing.T) {
	var buf bytes.Buffer
	passed, failed, skipped := abitest.Run(context.Background(), &buf, sharedHarness(nil), nil)
	t.Logf("%s", buf.String())
	checkOutput(t, buf.String())
	if failed != 0 || skipped != 1 || passed != len(abitest.Cases())-1 {
		t.Errorf("Run against shared storage = %d passed, %d failed, %d skipped; want %d, 0, 1 (durability)", passed, failed, skipped, len(abitest.Cases())-1)
	}
	h := sharedHarness(nil)
	h.OpenShared = nil
	for _, name := range []string{"Shared/ApplyChecked", "Shared/ApplyChecked/Writers"} {
		if _, failed, skipped, out := runOne(t, h, name); failed != 0 || skipped != 0 {
			t.Errorf("%s without Harness.OpenShared did not pass:\n%s", name, out)
		}
	}
	for _, name := range []string{"Shared/Watch", "Shared/Watch/Stop"} {
		if _, _, _, out := runOne(t, h, name); !strings.HasPrefix(out, "SKIP "+name+": Harness.OpenShared is nil") {
			t.Errorf("%s without Harness.OpenShared = %q; want it skipped for that reason", name, out)
		}
	}
}

func TestRun_durable(t *testing.T) {
	var buf bytes.Buffer
	passed, failed, skipped := abitest.Run(context.Background(), &buf, durableHarness(false), nil)
	t.Logf("%s", buf.String())
	if failed != 0 || skipped != 4 || passed != len(abitest.Cases())-4 {
		t.Errorf("Run against a durable store = %d passed, %d failed, %d skipped; want all %d passed but the 4 of shared storage", passed, failed, skipped, len(abitest.Cases())-4)
	}
	for _, name := range []string{"Durability/Reopen"} {
		_, failed, _, out := runOne(t, durableHarness(true), name)
		t.Logf("%s", out)
		if failed != 1 {
			t.Errorf("case %s passed against a store that loses its data on reopen", name)
		}
		checkOutput(t, out)
	}
}

// logHandle is a "durable" backend that keeps the batches it applied and
// replays them, through replay, into a fresh null backend at reopen: a
// plugin keeping a log.
type logHandle struct {
	handle
	mu      *sync.Mutex
	batches *[]*abi.Batch
}

func (h *logHandle) Apply(ctx context.Context, b *abi.Batch) error {
	if err := h.handle.Apply(ctx, b); err != nil {
		return err
	}
	c := &abi.Batch{Now: b.Now, Mutations: slices.Clone(b.Mutations)}
	for i := range c.Mutations {
		c.Mutations[i].Value = bytes.Clone(c.Mutations[i].Value)
	}
	h.mu.Lock()
	*h.batches = append(*h.batches, c)
	h.mu.Unlock()
	return nil
}

func logHarness(replay func(b *abi.Batch) *abi.Batch) abitest.Harness {
	return abitest.Harness{
		Open: func(abitest.TB) abi.Backend {
			return &logHandle{handle: handle{s: &store{data: null.Open()}}, mu: new(sync.Mutex), batches: new([]*abi.Batch)}
		},
		Reopen: func(t abitest.TB, b abi.Backend) abi.Backend {
			old := b.(*logHandle)
			if err := old.Close(); err != nil {
				t.Fatalf("Close() = %v", err)
			}
			data := null.Open()
			old.mu.Lock()
			defer old.mu.Unlock()
			for _, bt := range *old.batches {
				if err := data.Apply(context.Background(), replay(bt)); err != nil {
					t.Fatalf("replay: %v", err)
				}
			}
			return &logHandle{handle: handle{s: &store{data: data}}, mu: old.mu, batches: old.batches}
		},
	}
}

// TestRun_durableReplayOrder checks that the durability case itself (not
// only the model, whose random batches miss it for some seeds in short
// runs) catches storage that replays a batch's mutations out of order.
func TestRun_durableReplayOrder(t *testing.T) {
	type id struct {
		m, k string
		bk   bool
	}
	for _, tc := range []struct {
		name   string
		replay func(b *abi.Batch) *abi.Batch
		fails  bool
	}{
		{"in order", func(b *abi.Batch) *abi.Batch { return b }, false},
		{"deletes after puts", func(b *abi.Batch) *abi.Batch {
			c := &abi.Batch{Now: b.Now, Mutations: slices.Clone(b.Mutations)}
			sort.SliceStable(c.Mutations, func(i, j int) bool {
				return c.Mutations[i].Kind == abi.OpPut && c.Mutations[j].Kind == abi.OpDelete
			})
			return c
		}, true},
		{"deletes before puts", func(b *abi.Batch) *abi.Batch {
			c := &abi.Batch{Now: b.Now, Mutations: slices.Clone(b.Mutations)}
			sort.SliceStable(c.Mutations, func(i, j int) bool {
				return c.Mutations[i].Kind == abi.OpDelete && c.Mutations[j].Kind == abi.OpPut
			})
			return c
		}, true},
		{"last mutation of each record only", func(b *abi.Batch) *abi.Batch {
			last := map[id]int{}
			for i, m := range b.Mutations {
				last[id{m.Map, m.Key, m.Backup}] = i
			}
			c := &abi.Batch{Now: b.Now}
			for i, m := range b.Mutations {
				if last[id{m.Map, m.Key, m.Backup}] == i {
					c.Mutations = append(c.Mutations, m)
				}
			}
			return c
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, failed, _, out := runOne(t, logHarness(tc.replay), "Durability/Reopen")
			t.Logf("%s", out)
			if tc.fails && failed != 1 {
				t.Errorf("Durability/Reopen passed against storage that replays a batch's %s", tc.name)
			}
			if !tc.fails && failed != 0 {
				t.Errorf("Durability/Reopen failed against storage that replays batches in order")
			}
		})
	}
}

func TestRun_modelReopen(t *testing.T) {
	t.Setenv("TOPGUN_MODEL_SEED", "7")
	_, failed, _, out := runOne(t, durableHarness(true), "Model/Random")
	t.Logf("%s", out)
	if failed != 1 {
		t.Errorf("the model passed against a store that loses its data on reopen")
	}
	if !strings.Contains(out, "seed 7") || !strings.Contains(out, "TOPGUN_MODEL_SEED=7") {
		t.Errorf("the model's failure does not name its seed")
	}
}

func TestRun_filterAndCancel(t *testing.T) {
	h := abitest.Harness{Open: func(abitest.TB) abi.Backend { return null.Open() }}
	var buf bytes.Buffer
	core := 0
	for _, c := range abitest.Cases() {
		if c.Core {
			core++
		}
	}
	passed, failed, skipped := abitest.Run(context.Background(), &buf, h, func(c abitest.Case) bool { return c.Core })
	if passed != core || failed != 0 || skipped != 0 {
		t.Errorf("Run of the core cases = %d passed, %d failed, %d skipped; want %d passed\n%s", passed, failed, skipped, core, buf.String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	buf.Reset()
	passed, failed, skipped = abitest.Run(ctx, &buf, h, nil)
	if passed != 0 || failed != 0 || skipped != len(abitest.Cases()) {
		t.Errorf("Run with a cancelled context = %d passed, %d failed, %d skipped; want every case skipped\n%s", passed, failed, skipped, buf.String())
	}
	checkOutput(t, buf.String())
	buf.Reset()
	if _, failed, _ := abitest.Run(context.Background(), &buf, abitest.Harness{}, nil); failed != 1 {
		t.Errorf("Run with no Open did not fail:\n%s", buf.String())
	}
}

func TestRun_failureOutput(t *testing.T) {
	i := slices.IndexFunc(faults, func(f fault) bool { return f.name == "describe wrong ABI major" })
	h := abitest.Harness{Open: func(abitest.TB) abi.Backend { return faults[i].make(null.Open()) }}
	_, failed, _, out := runOne(t, h, "Describe")
	checkOutput(t, out)
	if failed != 1 || !strings.HasPrefix(out, "FAIL Describe (") || !strings.Contains(out, "\n    Describe().ABIMajor = 2") {
		t.Errorf("Run output for a failing case:\n%s\nwant a FAIL line and the indented message", out)
	}
}

// oneKeyspace is an in-memory backend that keeps the records of every map
// in one keyspace per side, under map + sep + key, as a plugin on a plain
// key-value store might; it is correct only for a sep that no map name
// holds (NUL).
type oneKeyspace struct {
	sep    string
	mu     sync.Mutex
	closed bool
	recs   [2]map[string]abi.Record // primary, backup
}

func side(backup bool) int {
	if backup {
		return 1
	}
	return 0
}

func (j *oneKeyspace) check(ctx context.Context) error {
	if err := abi.ContextError(ctx); err != nil {
		return err
	}
	if j.closed {
		return abi.Errorf(abi.CodeUnavailable, "onekeyspace: closed")
	}
	return nil
}

func (j *oneKeyspace) Apply(ctx context.Context, b *abi.Batch) error {
	if err := abi.ValidateBatch(b); err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.check(ctx); err != nil {
		return err
	}
	for _, m := range b.Mutations {
		id, tbl := m.Map+j.sep+m.Key, j.recs[side(m.Backup)]
		if m.Kind == abi.OpDelete {
			delete(tbl, id)
			continue
		}
		r, ok := tbl[id]
		if !ok {
			r.CreatedAt = b.Now
		}
		r.Map, r.Key, r.Backup, r.Value = m.Map, m.Key, m.Backup, bytes.Clone(m.Value)
		r.ExpirationTime, r.UpdatedAt = m.ExpirationTime, b.Now
		tbl[id] = r
	}
	return nil
}

func (j *oneKeyspace) Get(ctx context.Context, m string, backup bool, keys []string) ([]abi.Record, error) {
	if err := abi.ValidateGet(m, keys); err != nil {
		return nil, err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.check(ctx); err != nil {
		return nil, err
	}
	var out []abi.Record
	seen := map[string]bool{}
	for _, k := range keys {
		if r, ok := j.recs[side(backup)][m+j.sep+k]; ok && !seen[k] {
			seen[k] = true
			r.Map, r.Key, r.Value = m, k, bytes.Clone(r.Value)
			out = append(out, r)
		}
	}
	return out, nil
}

func (j *oneKeyspace) Scan(ctx context.Context, req abi.ScanRequest) (abi.Page, error) {
	if err := abi.ValidateScan(&req); err != nil {
		return abi.Page{}, err
	}
	after, hasAfter, err := abi.ParseKeyCursor(req.Cursor)
	if err != nil {
		return abi.Page{}, err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.check(ctx); err != nil {
		return abi.Page{}, err
	}
	prefix, tbl := req.Map+j.sep, j.recs[side(req.Backup)]
	var ids []string
	for id := range tbl {
		if strings.HasPrefix(id, prefix) && (!hasAfter || id[len(prefix):] > after) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	var p abi.Page
	used := 0
	for _, id := range ids {
		r := tbl[id]
		r.Map, r.Key, r.Value = req.Map, id[len(prefix):], bytes.Clone(r.Value)
		if n := len(p.Records); n >= req.Limit || (n > 0 && used+r.Size() > req.MaxBytes) {
			p.Cursor = abi.KeyCursor(p.Records[n-1].Key)
			break
		}
		p.Records = append(p.Records, r)
		used += r.Size()
	}
	return p, nil
}

func (j *oneKeyspace) ListMaps(ctx context.Context) ([]string, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.check(ctx); err != nil {
		return nil, err
	}
	var out []string
	for _, r := range j.recs[0] {
		if !slices.Contains(out, r.Map) {
			out = append(out, r.Map)
		}
	}
	sort.Strings(out)
	return out, nil
}

func (j *oneKeyspace) ListExpired(ctx context.Context, now int64, limit int) ([]abi.Record, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.check(ctx); err != nil {
		return nil, err
	}
	var out []abi.Record
	for _, tbl := range j.recs {
		for _, r := range tbl {
			if r.ExpirationTime > 0 && r.ExpirationTime <= now {
				r.Value = nil
				out = append(out, r)
			}
		}
	}
	sort.Slice(out, func(a, b int) bool { return null.ExpiredLess(&out[a], &out[b]) })
	return out[:min(len(out), abi.ScanLimit(limit))], nil
}

func (j *oneKeyspace) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.closed = true
	return nil
}

// TestOneKeyspace_nulSeparator checks the fault "map and key joined with a
// unit separator" for what it claims: the same backend joining with NUL,
// which names and keys cannot hold, passes every case it fails.
func TestOneKeyspace_nulSeparator(t *testing.T) {
	h := abitest.Harness{Open: func(abitest.TB) abi.Backend {
		in := null.Open()
		j := &oneKeyspace{sep: "\x00", recs: [2]map[string]abi.Record{{}, {}}}
		return &faulty{inner: in, apply: j.Apply, get: j.Get, scan: j.Scan, listMaps: j.ListMaps, listExpired: j.ListExpired, close: j.Close}
	}, Short: true}
	var buf bytes.Buffer
	passed, failed, skipped := abitest.Run(context.Background(), &buf, h, nil)
	if failed != 0 {
		t.Errorf("the one-keyspace backend joining with NUL = %d passed, %d failed, %d skipped; want no failure\n%s", passed, failed, skipped, buf.String())
	}
}

// getOneByOne gets each of keys alone, so a key named twice is answered
// twice.
func getOneByOne(ctx context.Context, in *null.Backend, m string, backup bool, keys []string) ([]abi.Record, error) {
	var out []abi.Record
	for _, k := range keys {
		r, err := in.Get(ctx, m, backup, []string{k})
		if err != nil {
			return nil, err
		}
		out = append(out, r...)
	}
	return out, nil
}
