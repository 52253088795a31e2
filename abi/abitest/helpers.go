package abitest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/plugins/null"
)

// t0 is a realistic batch time (Unix ms) the cases count from.
const t0 int64 = 1_700_000_000_000

// allExpired is the limit the suite passes to ListExpired when it wants every
// expired record: far more than any case stores.
const allExpired = 1 << 20

// ctxOf returns the context of t when it has one (*testing.T and Run's TB
// do), so that an interrupted run cancels backend calls.
func ctxOf(t TB) context.Context {
	if c, ok := t.(interface{ Context() context.Context }); ok {
		if ctx := c.Context(); ctx != nil {
			return ctx
		}
	}
	return context.Background()
}

// open opens a fresh backend through h and makes sure it is closed when the
// case ends.
func open(t TB, h Harness) abi.Backend {
	t.Helper()
	be := h.Open(t)
	if be == nil {
		t.Fatalf("Harness.Open returned a nil backend")
	}
	t.Cleanup(func() { _ = be.Close() })
	return be
}

// reopen closes be and opens the same storage again through h.Reopen.
func reopen(t TB, h Harness, be abi.Backend) abi.Backend {
	t.Helper()
	nb := h.Reopen(t, be)
	if nb == nil {
		t.Fatalf("Harness.Reopen returned a nil backend")
	}
	t.Cleanup(func() { _ = nb.Close() })
	return nb
}

// apply applies a batch and stops the case if it fails.
func apply(t TB, be abi.Backend, b *abi.Batch) {
	t.Helper()
	if err := be.Apply(ctxOf(t), b); err != nil {
		t.Fatalf("Apply(%s) = %v; want nil", fmtBatch(b), err)
	}
}

// get calls Get and stops the case if it fails.
func get(t TB, be abi.Backend, mapName string, backup bool, keys ...string) []abi.Record {
	t.Helper()
	recs, err := be.Get(ctxOf(t), mapName, backup, keys)
	if err != nil {
		t.Fatalf("Get(%s, backup=%v, %d keys) = %v; want nil", q(mapName), backup, len(keys), err)
	}
	return recs
}

// getOne returns the record of one key, and whether it is present. It checks
// that GetOne agrees with Get.
func getOne(t TB, be abi.Backend, mapName, key string, backup bool) (abi.Record, bool) {
	t.Helper()
	r, err := abi.GetOne(ctxOf(t), be, mapName, key, backup)
	switch {
	case err == nil:
		if r.Map != mapName || r.Key != key || r.Backup != backup {
			t.Fatalf("Get(%s, backup=%v, [%s]) returned %s: map, key and backup must be those asked for", q(mapName), backup, q(key), fmtRec(r))
		}
		return r, true
	case errors.Is(err, abi.ErrNotFound):
		return abi.Record{}, false
	default:
		t.Fatalf("Get(%s, backup=%v, [%s]) = %v; want nil", q(mapName), backup, q(key), err)
		return abi.Record{}, false
	}
}

// mustHave checks that a record is present and equal to want.
func mustHave(t TB, be abi.Backend, want abi.Record) {
	t.Helper()
	got, ok := getOne(t, be, want.Map, want.Key, want.Backup)
	if !ok {
		t.Errorf("Get(%s, backup=%v, [%s]) found nothing; want %s", q(want.Map), want.Backup, q(want.Key), fmtRec(want))
		return
	}
	if !sameRecord(got, want) {
		t.Errorf("Get(%s, backup=%v, [%s]) = %s; want %s", q(want.Map), want.Backup, q(want.Key), fmtRec(got), fmtRec(want))
	}
}

// mustMiss checks that a record is absent.
func mustMiss(t TB, be abi.Backend, mapName, key string, backup bool) {
	t.Helper()
	if got, ok := getOne(t, be, mapName, key, backup); ok {
		t.Errorf("Get(%s, backup=%v, [%s]) = %s; want no record", q(mapName), backup, q(key), fmtRec(got))
	}
}

// rec builds the record a put at now should leave.
func rec(mapName, key string, backup bool, value string, exp, created, updated int64) abi.Record {
	return abi.Record{Map: mapName, Key: key, Backup: backup, Value: []byte(value), ExpirationTime: exp, CreatedAt: created, UpdatedAt: updated}
}

// putRecs applies one batch that puts the given records with Now = now.
func putRecs(t TB, be abi.Backend, now int64, recs ...abi.Record) {
	t.Helper()
	b := &abi.Batch{Now: now}
	for _, r := range recs {
		b.Put(r.Map, r.Key, r.Backup, r.Value, r.ExpirationTime)
	}
	apply(t, be, b)
}

// scanOpts says how scanChecked pages and how strict it is at the end.
type scanOpts struct {
	limit, budget int
	// maxPages bounds the number of pages (a backend that never ends a scan
	// fails instead of looping).
	maxPages int
	// exactEnd requires the page that holds the last record to have a nil
	// cursor. Off when records may be deleted between pages.
	exactEnd bool
}

// pager pages through one map and checks every page against the contract
// of Scan: at most limit records and budget bytes (a single larger record
// alone), records of the asked map and side only, keys strictly increasing in
// byte order across pages, and a cursor only on a page that holds records.
type pager struct {
	ctx     context.Context
	be      abi.Backend
	mapName string
	backup  bool
	o       scanOpts

	desc          string
	limit, budget int
	cursor        []byte
	page          int
	prevHadCursor bool
	done          bool
	out           []abi.Record
}

func newPager(ctx context.Context, be abi.Backend, mapName string, backup bool, o scanOpts) *pager {
	p := &pager{ctx: ctx, be: be, mapName: mapName, backup: backup, o: o, limit: o.limit, budget: o.budget}
	p.limit = abi.ScanLimit(p.limit)
	if p.budget <= 0 {
		p.budget = abi.DefaultScanBytes
	}
	if p.o.maxPages <= 0 {
		p.o.maxPages = 1 << 20
	}
	p.desc = fmt.Sprintf("Scan(map=%s, backup=%v, limit=%d, budget=%d)", q(mapName), backup, o.limit, o.budget)
	return p
}

// next fetches and checks one page, appends its records to p.out and
// returns them. p.done is set when the page has no cursor.
func (p *pager) next() ([]abi.Record, error) {
	p.page++
	if p.page > p.o.maxPages {
		return nil, fmt.Errorf("%s did not finish after %d pages (%d records); a complete scan must end with a nil cursor", p.desc, p.o.maxPages, len(p.out))
	}
	pg, err := p.be.Scan(p.ctx, abi.ScanRequest{Map: p.mapName, Backup: p.backup, Cursor: p.cursor, Limit: p.o.limit, MaxBytes: p.o.budget})
	if err != nil {
		return nil, fmt.Errorf("%s page %d = %v; want nil", p.desc, p.page, err)
	}
	if len(pg.Records) > p.limit {
		return nil, fmt.Errorf("%s page %d has %d records; the limit is %d", p.desc, p.page, len(pg.Records), p.limit)
	}
	size := 0
	for i := range pg.Records {
		size += pg.Records[i].Size()
	}
	if size > p.budget && len(pg.Records) > 1 {
		return nil, fmt.Errorf("%s page %d has %d records of %d bytes (keys and values); the budget is %d bytes, and only a single record may exceed it", p.desc, p.page, len(pg.Records), size, p.budget)
	}
	if len(pg.Cursor) == 0 && pg.Cursor != nil {
		return nil, fmt.Errorf("%s page %d has an empty, non-nil cursor; the cursor must be nil on the page that holds the last record (callers stop on nil, and an empty cursor asks for the start of the map again)", p.desc, p.page)
	}
	if len(pg.Records) == 0 && len(pg.Cursor) > 0 {
		return nil, fmt.Errorf("%s page %d is empty but has a cursor; a page with a cursor must hold records, and the cursor must be nil when the scan is complete", p.desc, p.page)
	}
	if len(pg.Records) == 0 && p.prevHadCursor && p.o.exactEnd {
		return nil, fmt.Errorf("%s page %d had a cursor but the scan was already complete (the next page was empty); Page.Cursor must be nil on the page that holds the last record", p.desc, p.page-1)
	}
	for _, r := range pg.Records {
		if r.Map != p.mapName || r.Backup != p.backup {
			return nil, fmt.Errorf("%s page %d returned %s, a record of another map or side", p.desc, p.page, fmtRec(r))
		}
		if n := len(p.out); n > 0 && r.Key <= p.out[n-1].Key {
			return nil, fmt.Errorf("%s page %d returned key %s after key %s; keys must be strictly increasing in byte order across pages, each record exactly once", p.desc, p.page, q(r.Key), q(p.out[n-1].Key))
		}
		p.out = append(p.out, r)
	}
	p.cursor = pg.Cursor
	p.prevHadCursor = len(pg.Cursor) > 0
	p.done = len(pg.Cursor) == 0
	return pg.Records, nil
}

// scanChecked pages through one map with a pager and returns the records in
// order. The error describes the first violation of the contract.
func scanChecked(ctx context.Context, be abi.Backend, mapName string, backup bool, o scanOpts) ([]abi.Record, error) {
	p := newPager(ctx, be, mapName, backup, o)
	for !p.done {
		if _, err := p.next(); err != nil {
			return p.out, err
		}
	}
	return p.out, nil
}

// scanAll is scanChecked that stops the case on a violation.
func scanAll(t TB, be abi.Backend, mapName string, backup bool, limit, budget int) []abi.Record {
	t.Helper()
	recs, err := scanChecked(ctxOf(t), be, mapName, backup, scanOpts{limit: limit, budget: budget, exactEnd: true})
	if err != nil {
		t.Fatalf("%v", err)
	}
	return recs
}

// listExpiredAll returns every record expired at now, ordered by
// null.ExpiredLess (ties may come in any order from the backend).
func listExpiredAll(ctx context.Context, be abi.Backend, now int64) ([]abi.Record, error) {
	recs, err := be.ListExpired(ctx, now, allExpired)
	if err != nil {
		return nil, fmt.Errorf("ListExpired(now=%d, limit=%d) = %v; want nil", now, allExpired, err)
	}
	for i := 1; i < len(recs); i++ {
		if recs[i].ExpirationTime < recs[i-1].ExpirationTime {
			return nil, fmt.Errorf("ListExpired(now=%d) returned %s after %s; want ascending expiration time", now, fmtRec(recs[i]), fmtRec(recs[i-1]))
		}
	}
	for _, r := range recs {
		if len(r.Value) != 0 {
			return nil, fmt.Errorf("ListExpired(now=%d) returned %s with a value; ListExpired returns records without values", now, fmtRec(r))
		}
	}
	sortExpired(recs)
	return recs, nil
}

func sortExpired(recs []abi.Record) {
	sort.SliceStable(recs, func(i, j int) bool { return null.ExpiredLess(&recs[i], &recs[j]) })
}

// state is everything a backend holds for a set of maps, as seen through the
// contract.
type state struct {
	maps    []string
	records []abi.Record // per map (in the given order), primary then backup, in key order
	expired []abi.Record // every record with an expiration, by null.ExpiredLess
}

// snapshot reads the state of the given maps.
func snapshot(t TB, be abi.Backend, mapNames []string) state {
	t.Helper()
	ctx := ctxOf(t)
	var s state
	var err error
	if s.maps, err = be.ListMaps(ctx); err != nil {
		t.Fatalf("ListMaps() = %v; want nil", err)
	}
	for _, m := range mapNames {
		for _, backup := range []bool{false, true} {
			s.records = append(s.records, scanAll(t, be, m, backup, 0, 0)...)
		}
	}
	if s.expired, err = listExpiredAll(ctx, be, math.MaxInt64); err != nil {
		t.Fatalf("%v", err)
	}
	return s
}

// diffState describes the first difference between two states, or "".
func diffState(got, want state) string {
	if !equalStrings(got.maps, want.maps) {
		return fmt.Sprintf("ListMaps() = %s; want %s", qs(got.maps), qs(want.maps))
	}
	if d := diffRecords(got.records, want.records); d != "" {
		return "records: " + d
	}
	if d := diffRecords(got.expired, want.expired); d != "" {
		return "ListExpired: " + d
	}
	return ""
}

// sameRecord compares two records field by field; nil and empty values are
// the same.
func sameRecord(a, b abi.Record) bool {
	return a.Map == b.Map && a.Key == b.Key && a.Backup == b.Backup && bytes.Equal(a.Value, b.Value) &&
		a.ExpirationTime == b.ExpirationTime && a.CreatedAt == b.CreatedAt && a.UpdatedAt == b.UpdatedAt
}

// diffRecords describes the first difference between two record lists, or "".
func diffRecords(got, want []abi.Record) string {
	for i := 0; i < len(got) && i < len(want); i++ {
		if !sameRecord(got[i], want[i]) {
			return fmt.Sprintf("record %d of %d is %s; want %s", i, len(got), fmtRec(got[i]), fmtRec(want[i]))
		}
	}
	switch {
	case len(got) > len(want):
		return fmt.Sprintf("got %d records, want %d; first extra: %s", len(got), len(want), fmtRec(got[len(want)]))
	case len(got) < len(want):
		return fmt.Sprintf("got %d records, want %d; first missing: %s", len(got), len(want), fmtRec(want[len(got)]))
	}
	return ""
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func keysOf(recs []abi.Record) []string {
	out := make([]string, len(recs))
	for i := range recs {
		out[i] = recs[i].Key
	}
	return out
}

// isCanceled reports whether err says the context was cancelled.
func isCanceled(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, abi.ErrCanceled)
}

// isDeadline reports whether err says the context's deadline passed.
func isDeadline(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, abi.ErrDeadlineExceeded)
}

// q quotes a string for a message, shortening long ones.
func q(s string) string {
	const maxLen = 48
	if len(s) <= maxLen {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%q…(%d bytes)", s[:maxLen-8], len(s))
}

func qs(ss []string) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = q(s)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func fmtValue(v []byte) string {
	if v == nil {
		return "nil"
	}
	if len(v) <= 24 {
		return fmt.Sprintf("%q", v)
	}
	return fmt.Sprintf("%q…(%d bytes)", v[:16], len(v))
}

func fmtRec(r abi.Record) string {
	return fmt.Sprintf("{map:%s key:%s backup:%v value:%s exp:%d created:%d updated:%d}",
		q(r.Map), q(r.Key), r.Backup, fmtValue(r.Value), r.ExpirationTime, r.CreatedAt, r.UpdatedAt)
}

func fmtMutation(m abi.Mutation) string {
	switch m.Kind {
	case abi.OpPut:
		return fmt.Sprintf("put(%s %s backup=%v value=%s exp=%d)", q(m.Map), q(m.Key), m.Backup, fmtValue(m.Value), m.ExpirationTime)
	case abi.OpDelete:
		return fmt.Sprintf("delete(%s %s backup=%v)", q(m.Map), q(m.Key), m.Backup)
	}
	return fmt.Sprintf("kind%d(%s %s backup=%v)", m.Kind, q(m.Map), q(m.Key), m.Backup)
}

func fmtBatch(b *abi.Batch) string {
	if b == nil {
		return "nil batch"
	}
	const show = 4
	parts := make([]string, 0, show+1)
	for i, m := range b.Mutations {
		if i == show {
			parts = append(parts, fmt.Sprintf("… %d more", len(b.Mutations)-show))
			break
		}
		parts = append(parts, fmtMutation(m))
	}
	return fmt.Sprintf("now=%d [%s]", b.Now, strings.Join(parts, ", "))
}
