package store

import (
	"context"
	"math/rand"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/plugins/null"
	"github.com/topgun-go/topgun/server/record"
)

// encodedSize is the stored size of a key's record.
func encodedSize(t *testing.T, f *fixture, key string) int {
	t.Helper()
	e, ok, err := f.s.Get(context.Background(), "tags", key)
	if err != nil || !ok {
		t.Fatalf("get %q: %v %v", key, ok, err)
	}
	b, err := record.Encode(nil, &e.Record)
	if err != nil {
		t.Fatal(err)
	}
	return len(b)
}

// OR ops on a key near the value limit must not each copy and encode the
// whole record: the size bound of a record changed in place grew with
// every op (and removes never lowered it), so near the limit each op of a
// request took the exact path, copying the record, encoding it and keeping
// the encoding until the commit; on a full key every refused op did. An
// OP_BATCH of 166 adds and removes of 12 KB on a key of 8 MB (2 MB, within
// the default limits) took 7 GB and 14 s, holding 1.3 GB of encodings.
func TestStore_OR_opsNearTheValueLimitCostNoCopies(t *testing.T) {
	f := newFixture(t, null.Open(), nil)
	n := 0
	add := func(v string) Op {
		n++
		return Op{Map: "tags", Key: "k", Kind: OpORAdd, Value: record.StringValue(v), Timestamp: ts(t0, uint32(n), "c"), Tag: "tag-" + strconv.Itoa(n)}
	}
	fill := make([]Op, 0, 7600)
	for range 7600 {
		fill = append(fill, add(strings.Repeat("x", 1000)))
	}
	for _, r := range f.apply(fill...) {
		if r.Err != nil {
			t.Fatalf("fill: %v", r.Err)
		}
	}
	left := abi.MaxValueBytes - encodedSize(t, f, "k")
	if left < 20_000 {
		t.Fatalf("fill left %d bytes", left)
	}
	big := strings.Repeat("y", left*3/4)
	var ops []Op
	for range 60 { // adds and removes that each fit
		a := add(big)
		ops = append(ops, a, Op{Map: "tags", Key: "k", Kind: OpORRemove, Tag: a.Tag})
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i, r := range f.apply(ops...) {
		if r.Err != nil || !r.Changed {
			t.Fatalf("op %d: %+v", i, r)
		}
	}
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 256<<20 {
		t.Fatalf("60 adds and removes that fit on a key of %d bytes allocated %d MiB", abi.MaxValueBytes-left, got>>20)
	}

	// Full: every add is refused.
	f.apply(add(strings.Repeat("z", abi.MaxValueBytes-encodedSize(t, f, "k")-200)))
	ops = ops[:0]
	for range 500 {
		ops = append(ops, add(big))
	}
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i, r := range f.apply(ops...) {
		if r.Err == nil {
			t.Fatalf("op %d on the full key not refused: %+v", i, r)
		}
	}
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 256<<20 {
		t.Fatalf("500 refused adds on a full key allocated %d MiB", got>>20)
	}
}

// orSizeModel is an OR-Map key merged as the store merges it, refusing an
// op when the encoded record would pass the value limit, measured by
// encoding it whole.
type orSizeModel struct {
	m     record.ORMap
	tombs map[string]bool
}

func (md *orSizeModel) apply(op *Op) Result {
	next := record.ORMap{Records: md.m.Records, Tombstones: md.m.Tombstones}
	switch op.Kind {
	case OpORAdd:
		if md.tombs[op.Tag] {
			return Result{}
		}
		for _, r := range md.m.Records {
			if r.Tag == op.Tag {
				return Result{}
			}
		}
		next.Records = append(append([]record.ORMapEntry(nil), md.m.Records...),
			record.ORMapEntry{Value: op.Value, Tag: op.Tag, Timestamp: op.Timestamp, TTLMs: op.TTLMs})
	case OpORRemove:
		tags := op.Tags
		if len(tags) == 0 {
			tags = []string{op.Tag}
		}
		added := map[string]bool{}
		next.Tombstones = append([]string(nil), md.m.Tombstones...)
		for _, tag := range tags {
			if !md.tombs[tag] && !added[tag] {
				added[tag] = true
				next.Tombstones = append(next.Tombstones, tag)
			}
		}
		if len(added) == 0 {
			return Result{}
		}
		next.Records = nil
		for _, r := range md.m.Records {
			if !added[r.Tag] {
				next.Records = append(next.Records, r)
			}
		}
	}
	rv := record.NewORMap(next.Records, next.Tombstones)
	b, err := record.Encode(nil, &rv)
	if err != nil {
		panic(err)
	}
	if len(b) > abi.MaxValueBytes {
		return Result{Err: &RejectError{}}
	}
	md.m = next
	if op.Kind == OpORRemove {
		for _, tag := range next.Tombstones {
			md.tombs[tag] = true
		}
	}
	return Result{Changed: true}
}

// An OR-Map record changed in place keeps its exact encoded size: near
// the value limit, each op is refused exactly when its record would pass
// the limit, across the array and string header sizes, the tombstones
// field appearing, TTLs and removes of several tags, and the record the
// store commits is the model's.
func TestStore_OR_sizeNearTheLimitIsExact(t *testing.T) {
	seed := int64(rand.Uint32())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewSource(seed))
	f := newFixture(t, null.Open(), nil)
	md := &orSizeModel{tombs: map[string]bool{}}
	n := 0
	tagOf := func() string {
		n++
		lens := []int{1, 5, 20, 30, 31, 32, 33, 254, 255, 256, 257}
		l := lens[rng.Intn(len(lens))]
		s := strconv.Itoa(n) + "-"
		return s + strings.Repeat("t", max(l-len(s), 0))
	}
	// Seven entries of about 1.1 MB: the records array crosses 15/16 and the
	// tombstones field appears near the limit.
	var first []Op
	for range 7 {
		first = append(first, Op{Map: "tags", Key: "k", Kind: OpORAdd, Value: record.StringValue(strings.Repeat("v", 1_180_000+rng.Intn(5000))),
			Timestamp: ts(t0, uint32(n), "c"), Tag: tagOf()})
	}
	for round := 0; round < 4; round++ {
		ops := first
		first = nil
		var want []Result
		for _, op := range ops {
			want = append(want, md.apply(&op))
		}
		for range 60 {
			rv := record.NewORMap(md.m.Records, md.m.Tombstones)
			b, _ := record.Encode(nil, &rv)
			left := abi.MaxValueBytes - len(b)
			live := make([]string, 0, len(md.m.Records))
			for _, r := range md.m.Records {
				live = append(live, r.Tag)
			}
			var op Op
			switch k := rng.Intn(10); {
			case k < 6:
				size := max(left-40-rng.Intn(40), 0) // about what fits, either side
				if rng.Intn(3) == 0 {
					size = rng.Intn(300)
				}
				op = Op{Map: "tags", Key: "k", Kind: OpORAdd, Value: record.StringValue(strings.Repeat("a", size)),
					Timestamp: ts(t0+uint64(round), uint32(n), "c"), Tag: tagOf()}
				if rng.Intn(3) == 0 {
					op.TTLMs = uint64(rng.Intn(1 << 20))
				}
			case k < 8 && len(live) > 0:
				op = Op{Map: "tags", Key: "k", Kind: OpORRemove, Tag: live[rng.Intn(len(live))]}
			default:
				var tags []string
				for m := rng.Intn(20); m >= 0; m-- {
					if len(live) > 0 && rng.Intn(2) == 0 {
						tags = append(tags, live[rng.Intn(len(live))])
					} else {
						tags = append(tags, tagOf())
					}
				}
				op = Op{Map: "tags", Key: "k", Kind: OpORRemove, Tags: tags}
			}
			ops = append(ops, op)
			want = append(want, md.apply(&op))
		}
		got := f.apply(ops...)
		refused := 0
		for i := range ops {
			if (got[i].Err != nil) != (want[i].Err != nil) || got[i].Changed != want[i].Changed {
				t.Fatalf("round %d op %d (%v, tag %q, %d tags): store %+v, model %+v", round, i, ops[i].Kind, ops[i].Tag, len(ops[i].Tags), got[i], want[i])
			}
			if got[i].Err != nil {
				refused++
			}
		}
		es, err := f.s.Entries(context.Background(), "tags", KindOR, []string{"k"})
		if err != nil || len(es) != 1 {
			t.Fatalf("entries: %v %v", es, err)
		}
		e := es[0]
		if !slices.EqualFunc(e.Record.ORMap.Records, md.m.Records, func(a, b record.ORMapEntry) bool { return a.Tag == b.Tag }) ||
			!slices.Equal(e.Record.ORMap.Tombstones, md.m.Tombstones) {
			t.Fatalf("round %d: the store's record differs from the model's", round)
		}
		t.Logf("round %d: %d ops, %d refused, %d records, %d tombstones", round, len(ops), refused, len(md.m.Records), len(md.m.Tombstones))
	}
}

// A remove whose tag cannot be stored (not valid UTF-8) is refused
// wherever it comes in a request: after an add of the same key it changed
// the record in place, where nothing encodes it before the commit, whose
// encoding then failed every write of the group commit.
func TestStore_OR_removeOfUnstorableTagRefused(t *testing.T) {
	f := newFixture(t, null.Open(), nil)
	add := Op{Map: "tags", Key: "k", Kind: OpORAdd, Value: record.StringValue("v"), Timestamp: ts(t0, 1, "c"), Tag: "a"}
	bad := Op{Map: "tags", Key: "k", Kind: OpORRemove, Tag: "b\xff"}
	ok := put("m", "x", "kept", ts(t0, 2, "c"))
	res, err := f.s.Apply(context.Background(), []Op{add, bad, ok}, 1)
	if err != nil {
		t.Fatalf("the request failed whole: %v", err)
	}
	if res[0].Err != nil || !res[0].Changed || res[1].Err == nil || res[2].Err != nil {
		t.Fatalf("results %+v, want the add and the put applied, the remove refused", res)
	}
	if v, found := f.get("m", "x"); !found || v != "kept" {
		t.Fatalf("put: %q %v", v, found)
	}
	if e, found, err := f.s.Get(context.Background(), "tags", "k"); err != nil || !found || len(e.Record.ORMap.Records) != 1 || len(e.Record.ORMap.Tombstones) != 0 {
		t.Fatalf("key k: %+v %v %v", e, found, err)
	}
}

// The size of a record whose removes are deferred (see orRemoved) stays
// exact: its records array header counts the records that stay, not
// those still held until seal, and the removes past orRemoveScans find
// their records' sizes by their positions, so an add that takes the array
// from 15 to 16 records after removes in place is refused exactly when
// the record would pass the value limit by a byte, and one byte less fits.
func TestStore_OR_sizeAfterRemovesInPlaceIsExact(t *testing.T) {
	small := func(tag string, c uint32) Op {
		return Op{Map: "tags", Key: "k", Kind: OpORAdd, Value: record.StringValue("s" + tag), Timestamp: ts(t0, c, "c"), Tag: tag}
	}
	remove := func(tags ...string) Op {
		return Op{Map: "tags", Key: "k", Kind: OpORRemove, Tags: tags}
	}
	setup := func(big int) []Op {
		ops := []Op{{Map: "tags", Key: "k", Kind: OpORAdd, Value: record.StringValue(strings.Repeat("v", big)), Timestamp: ts(t0, 0, "c"), Tag: "big"}}
		for i := range 40 { // 41 records
			ops = append(ops, small("s"+strconv.Itoa(i), uint32(1+i)))
		}
		return ops
	}
	last := func(l int) Op {
		return Op{Map: "tags", Key: "k", Kind: OpORAdd, Value: record.StringValue(strings.Repeat("x", l)), Timestamp: ts(t0, 99, "c"), Tag: "last"}
	}
	// In one request: an add (the request's copy of the key: 42 records),
	// removes in place (17 stay, 42 held), an add and its remove, a remove
	// of several (14 stay), an add (15), then adds that take the records
	// to 16.
	request := func(l int) []Op {
		ops := []Op{small("a", 50)}
		for i := range 25 {
			ops = append(ops, remove("s"+strconv.Itoa(i)))
		}
		return append(ops, small("b", 51), remove("b"), remove("s25", "none", "s26", "s25", "s27"),
			small("c", 52), last(l+1), last(l))
	}
	// The big value's length for which the record with last(l) is exactly
	// the limit (its string header is the same for every length near it).
	const l = 2000
	md := &orSizeModel{tombs: map[string]bool{}}
	for _, op := range append(setup(1_000_000), request(l)[:len(request(l))-2]...) {
		md.apply(&op)
	}
	rv := record.NewORMap(append(slices.Clone(md.m.Records), record.ORMapEntry{Value: record.StringValue(strings.Repeat("x", l)), Tag: "last", Timestamp: ts(t0, 99, "c")}), md.m.Tombstones)
	b, err := record.Encode(nil, &rv)
	if err != nil {
		t.Fatal(err)
	}
	big := 1_000_000 + abi.MaxValueBytes - len(b)

	f := newFixture(t, null.Open(), nil)
	md = &orSizeModel{tombs: map[string]bool{}}
	for i, r := range f.apply(setup(big)...) {
		if r.Err != nil || !r.Changed {
			t.Fatalf("setup op %d: %+v", i, r)
		}
	}
	for _, op := range setup(big) {
		md.apply(&op)
	}
	ops := request(l)
	got := f.apply(ops...)
	for i := range ops {
		want := md.apply(&ops[i])
		if (got[i].Err != nil) != (want.Err != nil) || got[i].Changed != want.Changed {
			t.Fatalf("op %d (%v %q): store %+v, model %+v", i, ops[i].Kind, ops[i].Tag, got[i], want)
		}
	}
	if n := len(got); got[n-2].Err == nil || !got[n-1].Changed {
		t.Fatalf("the adds a byte over and at the limit: %+v %+v", got[n-2], got[n-1])
	}
	if n := encodedSize(t, f, "k"); n != abi.MaxValueBytes {
		t.Fatalf("record of %d bytes, want %d", n, abi.MaxValueBytes)
	}
	es, err := f.s.Entries(context.Background(), "tags", KindOR, []string{"k"})
	if err != nil || len(es) != 1 {
		t.Fatalf("entries: %v %v", es, err)
	}
	if !es[0].Record.Equal(&record.RecordValue{Kind: record.KindORMap, ORMap: md.m}) {
		t.Fatal("the store's record differs from the model's")
	}
}
