package store

import (
	"context"
	"slices"
	"strconv"
	"testing"

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
	// anyway), and the records once per remove that deletes one.
	size := tombs + recs + 2*n
	if limit := uint64(2*size + liveRemoves*(recs+n)); scans > limit {
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
	if m.removed == nil {
		m.removed = map[string]bool{}
	}
	for _, op := range ops {
		switch op.Kind {
		case OpORAdd:
			if !m.removed[op.Tag] && !slices.Contains(m.records, op.Tag) {
				m.records = append(m.records, op.Tag)
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
				}
			}
		}
	}
}
