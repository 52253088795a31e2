package store

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"unicode/utf8"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/plugins/null"
	"github.com/topgun-go/topgun/server/record"
)

// staleExpiryBackend lists the same records as expired however often they
// are deleted, as a plugin whose deletes leave its expiry index stale
// would. Past maxLists listings it fails, so that a pass that loops on
// them ends.
type staleExpiryBackend struct {
	abi.Backend
	stale    []abi.Record
	lists    atomic.Int64
	maxLists int64
}

func (b *staleExpiryBackend) ListExpired(ctx context.Context, now int64, limit int) ([]abi.Record, error) {
	if b.lists.Add(1) > b.maxLists {
		return nil, abi.Errorf(abi.CodeUnavailable, "test: listed %d times", b.maxLists)
	}
	return append([]abi.Record(nil), b.stale[:min(len(b.stale), limit)]...), nil
}

// A backend listing as expired, again and again, a full batch of records
// it does not hold made one expiry pass delete them for ever: each round
// changed reapBatch records and found more, so ReapExpired never returned
// (and tombstone collection, on the same goroutine, never ran).
func TestStore_reapStopsOnRecordsListedAgain(t *testing.T) {
	be := &staleExpiryBackend{Backend: null.Open(), maxLists: 50}
	for i := range reapBatch {
		be.stale = append(be.stale, abi.Record{Map: "m", Key: "gone" + strconv.Itoa(i), ExpirationTime: t0 - 1})
	}
	f := newFixture(t, be, nil)
	_, err := f.s.ReapExpired(context.Background())
	if n := be.lists.Load(); n > 2 {
		t.Fatalf("one expiry pass listed %d times (err %v): it loops on records listed again after their delete", n, err)
	}
	if err == nil {
		t.Fatal("a backend listing deleted records as expired again was not reported")
	}
	t.Log(err)
}

// relistBackend's first listing of expired records is first, records it
// does not hold (removed since the listing); before its second it calls
// between. Past maxLists listings it fails, so that a looping pass ends.
type relistBackend struct {
	abi.Backend
	first    []abi.Record
	between  func()
	lists    atomic.Int64
	maxLists int64
}

func (b *relistBackend) ListExpired(ctx context.Context, now int64, limit int) ([]abi.Record, error) {
	switch n := b.lists.Add(1); {
	case n > b.maxLists:
		return nil, abi.Errorf(abi.CodeUnavailable, "test: listed %d times", b.maxLists)
	case n == 1:
		return append([]abi.Record(nil), b.first[:min(len(b.first), limit)]...), nil
	case n == 2:
		b.between()
	}
	return b.Backend.ListExpired(ctx, now, limit)
}

// On shared storage, a key the expiry pass deleted as absent that another
// server writes again, expired already, before the pass's next round is
// listed again rightly: the pass ended with an error (taking the backend
// for one that lists deleted records) instead of reaping it.
func TestStore_reapKeyWrittenAgainByAnotherServer(t *testing.T) {
	inner := null.Open()
	wall := &atomic.Int64{}
	wall.Store(t0)
	other := newFixtureOn(t, sharedBackend{inner}, wall, nil)
	be := &relistBackend{Backend: sharedBackend{inner}, maxLists: 10}
	for i := range reapBatch - 1 {
		be.first = append(be.first, abi.Record{Map: "m", Key: "gone" + strconv.Itoa(i), ExpirationTime: t0 - 1})
	}
	be.first = append(be.first, abi.Record{Map: "m", Key: "k", ExpirationTime: t0 - 1})
	be.between = func() {
		op := put("m", "k", "again", ts(t0-5000, 0, "c2"))
		op.TTLMs = 1000 // expired at t0-4000
		if _, err := other.s.Apply(context.Background(), []Op{op}, 1); err != nil {
			t.Error(err)
		}
	}
	f := newFixtureOn(t, be, wall, nil)
	if _, err := f.s.ReapExpired(context.Background()); err != nil {
		t.Fatalf("expiry pass: %v", err)
	}
	if n := be.lists.Load(); n > 3 {
		t.Fatalf("one expiry pass listed %d times", n)
	}
	recs, err := inner.Get(context.Background(), "m", false, []string{"k"})
	if err != nil || len(recs) != 1 {
		t.Fatalf("stored k: %v %v", recs, err)
	}
	rv, err := record.Decode(recs[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	if rv.Kind != record.KindLWW || !rv.LWW.Value.IsNull() || recs[0].ExpirationTime != 0 {
		t.Fatalf("k holds %+v (expires %d), want the tombstone of its expiry", rv.LWW, recs[0].ExpirationTime)
	}
}

// wrongKeyBackend answers a get of key from with the stored record of key
// to, as a plugin whose lookup mixes keys up would (the host checks only
// the count of the answer).
type wrongKeyBackend struct {
	abi.Backend
	from, to string
}

func (b *wrongKeyBackend) Get(ctx context.Context, m string, backup bool, keys []string) ([]abi.Record, error) {
	asked := make([]string, len(keys))
	for i, k := range keys {
		if k == b.from {
			k = b.to
		}
		asked[i] = k
	}
	return b.Backend.Get(ctx, m, backup, asked)
}

// A get answered with another key's record must not be taken for the
// asked key's state by a merge: an OR add to a new key stored the other
// key's entries in it, for good.
func TestStore_mergeIgnoresRecordOfAnotherKey(t *testing.T) {
	inner := null.Open()
	be := &wrongKeyBackend{Backend: inner, from: "a", to: "b"}
	f := newFixture(t, be, nil)
	f.apply(orAdd("m", "b", "tag-of-b", ts(t0, 0, "c1")))
	// Failing the write is right: a's stored state could not be read.
	res, applyErr := f.s.Apply(context.Background(), []Op{orAdd("m", "a", "tag-of-a", ts(t0, 1, "c1"))}, 1)
	t.Log(res, applyErr)
	recs, err := inner.Get(context.Background(), "m", false, []string{"a"})
	if err != nil || len(recs) > 1 {
		t.Fatalf("stored a: %v %v", recs, err)
	}
	if len(recs) == 0 {
		if applyErr == nil {
			t.Fatal("the write to a failed without an error")
		}
		return
	}
	rv, err := record.Decode(recs[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range rv.ORMap.Records {
		if e.Tag != "tag-of-a" {
			t.Fatalf("key a stored entry %q of key b: a get answered with b's record was merged into a", e.Tag)
		}
	}
}

// badKeyBackend holds key bad under the name good (null refuses keys
// that are not valid UTF-8; a plugin may not) and answers with bad.
type badKeyBackend struct {
	abi.Backend
	good, bad string
}

func (b *badKeyBackend) rename(recs []abi.Record) []abi.Record {
	for i := range recs {
		if recs[i].Key == b.good {
			recs[i].Key = b.bad
		}
	}
	return recs
}

func (b *badKeyBackend) Get(ctx context.Context, m string, backup bool, keys []string) ([]abi.Record, error) {
	asked := make([]string, len(keys))
	for i, k := range keys {
		if k == b.bad {
			k = b.good
		}
		asked[i] = k
	}
	recs, err := b.Backend.Get(ctx, m, backup, asked)
	return b.rename(recs), err
}

func (b *badKeyBackend) Apply(ctx context.Context, batch *abi.Batch) error {
	c := *batch
	c.Mutations = append([]abi.Mutation(nil), batch.Mutations...)
	for i := range c.Mutations {
		if c.Mutations[i].Key == b.bad {
			c.Mutations[i].Key = b.good
		}
	}
	return b.Backend.Apply(ctx, &c)
}

func (b *badKeyBackend) ListExpired(ctx context.Context, now int64, limit int) ([]abi.Record, error) {
	recs, err := b.Backend.ListExpired(ctx, now, limit)
	return b.rename(recs), err
}

func (b *badKeyBackend) Scan(ctx context.Context, req abi.ScanRequest) (abi.Page, error) {
	p, err := b.Backend.Scan(ctx, req)
	p.Records = b.rename(p.Records)
	return p, err
}

// A record under a key that is not valid UTF-8 (no client can write one:
// a faulty plugin's, or damaged storage's) is left alone by the expiry
// pass: its change reached every client subscribed to the map, whose
// decoders refuse the frame naming it.
func TestStore_reapSkipsKeyNotUTF8(t *testing.T) {
	inner := null.Open()
	rv := record.NewLWW(record.StringValue("v"), ts(t0-10, 0, "c1"))
	enc, err := record.Encode(nil, &rv)
	if err != nil {
		t.Fatal(err)
	}
	b := &abi.Batch{Now: t0 - 10}
	b.Put("m", "~bad", false, enc, t0-1)
	if err := inner.Apply(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, &badKeyBackend{Backend: inner, good: "~bad", bad: "~\xff"}, nil)
	sub := f.s.Subscribe()
	defer sub.Close()
	if _, err := f.s.ReapExpired(context.Background()); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case c := <-sub.C():
			for _, ch := range c.Changes {
				if !utf8.ValidString(ch.Key) {
					t.Fatalf("the change feed carries key %q, which is not valid UTF-8", ch.Key)
				}
			}
		default:
			return
		}
	}
}
