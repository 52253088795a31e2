package store

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/topgun-go/topgun/plugins/null"
	"github.com/topgun-go/topgun/server/record"
)

// An OR op costs its own tags, not the key's tombstones and records: each
// op used to scan all of them (and a remove of several tags built a set of
// all the key's tombstones), so n ops on a key of T tombstones cost n×T;
// 10,000 ops on a key of 1.4 million tombstones took seconds. The result
// is the same as merging the ops one by one. Not parallel: it counts
// process-wide.
func TestStore_OR_opCostsItsOwnTagsNotTheKeys(t *testing.T) {
	f := newFixture(t, null.Open(), nil)
	const tombs, recs, n = 20_000, 100, 2_000
	var setup []string
	for i := range tombs {
		setup = append(setup, "old-"+strconv.Itoa(i))
	}
	model := orModel{}
	ops := []Op{{Map: "tags", Key: "k", Kind: OpORRemove, Tags: setup}}
	for i := range recs {
		tag := "rec-" + strconv.Itoa(i)
		ops = append(ops, Op{Map: "tags", Key: "k", Kind: OpORAdd, Value: record.StringValue(tag), Timestamp: ts(t0, uint32(i), "c1"), Tag: tag})
	}
	f.apply(ops...)
	model.apply(ops)

	ops = ops[:0]
	liveRemoves := 0
	for i := range n {
		tag := "new-" + strconv.Itoa(i)
		switch i % 5 {
		case 0: // a new entry
			ops = append(ops, Op{Map: "tags", Key: "k", Kind: OpORAdd, Value: record.StringValue(tag), Timestamp: ts(t0, uint32(recs+i), "c1"), Tag: tag})
		case 1: // a tag never added
			ops = append(ops, Op{Map: "tags", Key: "k", Kind: OpORRemove, Tag: tag})
		case 2: // an add of a removed tag: remove wins
			ops = append(ops, Op{Map: "tags", Key: "k", Kind: OpORAdd, Value: record.StringValue(tag), Timestamp: ts(t0, uint32(recs+i), "c1"), Tag: "old-" + strconv.Itoa(i)})
		case 3: // several tags, some known, one repeated
			ops = append(ops, Op{Map: "tags", Key: "k", Kind: OpORRemove, Tags: []string{"old-" + strconv.Itoa(i), tag, tag, "new-" + strconv.Itoa(i+1)}})
		case 4:
			if i%50 == 4 { // a live entry: its record goes
				ops = append(ops, Op{Map: "tags", Key: "k", Kind: OpORRemove, Tag: "rec-" + strconv.Itoa(i/50)})
				liveRemoves++
			} else { // a re-sent add
				ops = append(ops, Op{Map: "tags", Key: "k", Kind: OpORAdd, Value: record.StringValue("x"), Timestamp: ts(t0, 1, "c1"), Tag: "rec-" + strconv.Itoa(i%recs)})
			}
		}
	}
	before := orTagScans.Load()
	f.apply(ops...)
	scans := orTagScans.Load() - before
	t.Logf("%d ops on a key of %d tombstones examined %d tags", n, tombs, scans)
	model.apply(ops)

	// One index of the key (a request's first op on it copies the state
	// anyway), and its records scanned by the first removes that delete
	// one, then indexed once (see TestStore_OR_removesInPlaceCostTheirOwnRecords).
	size := tombs + recs + 2*n
	if limit := uint64(2*size + orRemoveScans*(recs+n)); liveRemoves == 0 || scans > limit {
		t.Errorf("%d OR ops on a key of %d tombstones examined %d tags, want at most %d (not %d per op)", n, tombs, scans, limit, tombs)
	}
	e, ok, err := f.s.Get(context.Background(), "tags", "k")
	if err != nil || !ok {
		t.Fatalf("get: %v %v", ok, err)
	}
	var got []string
	for _, r := range e.Record.ORMap.Records {
		got = append(got, r.Tag)
	}
	if !slices.Equal(got, model.records) {
		t.Errorf("records %d %.80v, want %d %.80v", len(got), got, len(model.records), model.records)
	}
	if !slices.Equal(e.Record.ORMap.Tombstones, model.tombs) {
		t.Errorf("%d tombstones, want %d (or a different order)", len(e.Record.ORMap.Tombstones), len(model.tombs))
	}
}

// orModel merges OR ops one by one.
type orModel struct {
	records, tombs []string
	removed        map[string]bool
}

func (m *orModel) apply(ops []Op) {
	for i := range ops {
		m.applyOne(&ops[i])
	}
}

// applyOne merges one op and reports whether it changed the key.
func (m *orModel) applyOne(op *Op) (changed bool) {
	if m.removed == nil {
		m.removed = map[string]bool{}
	}
	switch op.Kind {
	case OpORAdd:
		if !m.removed[op.Tag] && !slices.Contains(m.records, op.Tag) {
			m.records = append(m.records, op.Tag)
			changed = true
		}
	case OpORRemove:
		tags := op.Tags
		if len(tags) == 0 {
			tags = []string{op.Tag}
		}
		for _, tag := range tags {
			if !m.removed[tag] {
				m.removed[tag] = true
				m.tombs = append(m.tombs, tag)
				m.records = slices.DeleteFunc(m.records, func(r string) bool { return r == tag })
				changed = true
			}
		}
	}
	return changed
}

// Removes of live entries that an earlier op of the same request changed
// in place cost their own records, not the key's: each deleted its record
// from the whole records array (and measured and re-scanned it), so
// 10,000 removes in one OP_BATCH on a key of 100,000 entries stopped every
// write for 20 s. The results, the stored record (order included), its
// expiry and the request's change events are those of merging the ops one
// by one. Not parallel: it counts process-wide.
func TestStore_OR_removesInPlaceCostTheirOwnRecords(t *testing.T) {
	f := newFixture(t, null.Open(), nil)
	const recs, n = 20_000, 4_000
	model := orModel{}
	ttl := map[string]uint64{} // the entries with a time to live
	c := uint32(0)
	add := func(tag string, ttlMs uint64) Op {
		c++
		if ttlMs > 0 {
			ttl[tag] = ttlMs
		}
		return Op{Map: "tags", Key: "k", Kind: OpORAdd, Value: record.StringValue("v" + tag), Timestamp: ts(t0, c, "c1"), Tag: tag, TTLMs: ttlMs}
	}
	var ops []Op
	for i := range recs {
		var l uint64
		if i%7 == 0 {
			l = uint64(1_000_000 + i) // rec-0 expires first
		}
		ops = append(ops, add("rec-"+strconv.Itoa(i), l))
	}
	f.apply(ops...)
	model.apply(ops)

	// One request: its first op copies the key, the others change it in
	// place.
	ops = []Op{add("first", 0)}
	for i := range n {
		tag := "new-" + strconv.Itoa(i)
		rec := "rec-" + strconv.Itoa(i)
		switch i % 8 {
		case 0, 1, 2: // a live entry read from storage
			ops = append(ops, Op{Map: "tags", Key: "k", Kind: OpORRemove, Tag: rec})
		case 3: // a new entry, some expiring before the others
			ops = append(ops, add(tag, uint64(i%3)*uint64(500_000+i)))
		case 4: // one added by this request
			ops = append(ops, Op{Map: "tags", Key: "k", Kind: OpORRemove, Tag: "new-" + strconv.Itoa(i-1)})
		case 5: // several: live, unknown, repeated, already removed
			ops = append(ops, Op{Map: "tags", Key: "k", Kind: OpORRemove,
				Tags: []string{rec, tag, "rec-" + strconv.Itoa(recs-1-i), rec, "rec-" + strconv.Itoa(i-5)}})
		case 6: // an add of a removed tag: remove wins
			ops = append(ops, add("rec-"+strconv.Itoa(i-6), 0))
		case 7: // a re-sent add
			ops = append(ops, add("rec-"+strconv.Itoa(recs-1-i+2), 0))
		}
	}
	sub := f.s.Subscribe()
	defer sub.Close()
	before := orTagScans.Load()
	got := f.apply(ops...)
	scans := orTagScans.Load() - before
	t.Logf("%d ops on a key of %d records examined %d records and tags", len(ops), recs, scans)
	// The records scanned by the first removes, then indexed once, and
	// deleted once.
	if limit := uint64((orRemoveScans + 4) * (recs + len(ops))); scans > limit {
		t.Errorf("%d OR ops on a key of %d records examined %d records and tags, want at most %d (not %d per remove)", len(ops), recs, scans, limit, recs)
	}
	for i := range ops {
		if want := model.applyOne(&ops[i]); got[i].Err != nil || got[i].Changed != want {
			t.Fatalf("op %d (%v %q %q): %+v, want changed %v", i, ops[i].Kind, ops[i].Tag, ops[i].Tags, got[i], want)
		}
	}

	e, ok, err := f.s.Get(context.Background(), "tags", "k")
	if err != nil || !ok {
		t.Fatalf("get: %v %v", ok, err)
	}
	var tags []string
	var exp int64
	for _, r := range e.Record.ORMap.Records {
		tags = append(tags, r.Tag)
		if r.TTLMs != ttl[r.Tag] {
			t.Fatalf("entry %q has ttl %d, want %d", r.Tag, r.TTLMs, ttl[r.Tag])
		}
		if x := expiresAt(r.Timestamp.Millis, r.TTLMs); r.TTLMs > 0 && (exp == 0 || x < exp) {
			exp = x
		}
	}
	if !slices.Equal(tags, model.records) {
		t.Errorf("records %d %.80v, want %d %.80v", len(tags), tags, len(model.records), model.records)
	}
	if !slices.Equal(e.Record.ORMap.Tombstones, model.tombs) {
		t.Errorf("%d tombstones, want %d (or a different order)", len(e.Record.ORMap.Tombstones), len(model.tombs))
	}
	if e.ExpirationTime != exp {
		t.Errorf("expiry %d, want %d, the earliest of the entries left", e.ExpirationTime, exp)
	}
	cm := nextCommit(t, sub)
	changed := 0
	for _, r := range got {
		if r.Changed {
			changed++
		}
	}
	if len(cm.Changes) != changed {
		t.Fatalf("%d changes, want %d", len(cm.Changes), changed)
	}
	for i := range cm.Changes {
		ch := &cm.Changes[i]
		if !ch.Record.Equal(&e.Record) || ch.ExpirationTime != e.ExpirationTime {
			t.Fatalf("change %d (%v %q) carries a record of %d entries expiring at %d, want the key's final one: %d, at %d",
				i, ch.Kind, ch.Tag, len(ch.Record.ORMap.Records), ch.ExpirationTime, len(e.Record.ORMap.Records), e.ExpirationTime)
		}
	}
}

// An OR-Map key whose entries one request's ops all removed, some in
// place, and that an LWW write of the same request then replaced: its OR
// changes carry the key's OR state after the removes, not the removed
// records that an in-place remove leaves to seal (nor, as before, the
// zeroed slots of records deleted in place after the change was noted).
func TestStore_OR_changesOfKeyThenWrittenLWW(t *testing.T) {
	f := newFixture(t, null.Open(), nil)
	f.apply(Op{Map: "m", Key: "k", Kind: OpORAdd, Value: record.StringValue("w"), Timestamp: ts(t0, 0, "c"), Tag: "w"})
	sub := f.s.Subscribe()
	defer sub.Close()
	res := f.apply(
		Op{Map: "m", Key: "k", Kind: OpORAdd, Value: record.StringValue("x"), Timestamp: ts(t0, 1, "c"), Tag: "x", TTLMs: 5000},
		Op{Map: "m", Key: "k", Kind: OpORRemove, Tags: []string{"x", "w"}},
		put("m", "k", "v", ts(t0, 3, "c")))
	for i, r := range res {
		if r.Err != nil || !r.Changed {
			t.Fatalf("op %d: %+v", i, r)
		}
	}
	cm := nextCommit(t, sub)
	checkORChangesAfterRemoves(t, cm)
	if v, ok := f.get("m", "k"); !ok || v != "v" {
		t.Fatalf("k: %q %v", v, ok)
	}
}

// As TestStore_OR_changesOfKeyThenWrittenLWW, with an add in between that
// cannot be stored (not valid UTF-8): refused, it copied the key first,
// which applied the removes held until seal to the records the earlier
// changes still shared, and seal, finding no removes held, left those
// changes with the zeroed slots of the deleted records.
func TestStore_OR_changesOfKeyThenWrittenLWW_afterRefusedAdd(t *testing.T) {
	f := newFixture(t, null.Open(), nil)
	f.apply(Op{Map: "m", Key: "k", Kind: OpORAdd, Value: record.StringValue("w"), Timestamp: ts(t0, 0, "c"), Tag: "w"})
	sub := f.s.Subscribe()
	defer sub.Close()
	res := f.apply(
		Op{Map: "m", Key: "k", Kind: OpORAdd, Value: record.StringValue("x"), Timestamp: ts(t0, 1, "c"), Tag: "x", TTLMs: 5000},
		Op{Map: "m", Key: "k", Kind: OpORRemove, Tags: []string{"x", "w"}},
		Op{Map: "m", Key: "k", Kind: OpORAdd, Value: record.StringValue("bad\xff"), Timestamp: ts(t0, 2, "c"), Tag: "y"},
		put("m", "k", "v", ts(t0, 3, "c")))
	for i, r := range res {
		if (i == 2) != (r.Err != nil) || (i != 2 && !r.Changed) {
			t.Fatalf("op %d: %+v", i, r)
		}
	}
	cm := nextCommit(t, sub)
	checkORChangesAfterRemoves(t, cm)
}

// nextCommit is the next commit on sub's feed.
func nextCommit(t *testing.T, sub *Subscription) *Commit {
	t.Helper()
	select {
	case cm := <-sub.C():
		return cm
	case <-time.After(10 * time.Second):
		t.Fatal("no commit on the feed")
		return nil
	}
}

// checkORChangesAfterRemoves checks a commit of add x, remove [x w] and an
// LWW write of one key: both OR changes carry the key's OR state after
// the removes.
func checkORChangesAfterRemoves(t *testing.T, cm *Commit) {
	t.Helper()
	if len(cm.Changes) != 3 {
		t.Fatalf("changes %+v", cm.Changes)
	}
	for _, ch := range cm.Changes[:2] {
		if m := ch.Record.ORMap; len(m.Records) != 0 || !slices.Equal(m.Tombstones, []string{"x", "w"}) || ch.ExpirationTime != 0 {
			t.Errorf("%v change carries records %+v, tombstones %q, expiry %d; want none, [x w], 0", ch.Kind, m.Records, m.Tombstones, ch.ExpirationTime)
		}
	}
}
