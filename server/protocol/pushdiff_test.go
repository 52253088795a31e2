package protocol

import (
	"runtime"
	"testing"

	"github.com/topgun-go/topgun/server/wire"
)

// pushTags returns n distinct tombstone tags shaped like the TS client's.
func pushTags(n int) []string {
	tags := make([]string, n)
	for i := range tags {
		tags[i] = "1700000000000:" + itoa(i) + ":client-5f3c2a9e-8d41-4b7a-9c11"
	}
	return tags
}

// TopGun's client sends, with every key of an ORMAP_PUSH_DIFF, the whole
// tombstone set of its map (reference §3.6). A map holding more
// tombstones than MaxBatchOps must still be able to push: the tombstones
// of one key are one merge, not one new operation each.
func TestPushDiff_entryCarryingTheMapsWholeTombstoneSetIsApplied(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{opts: Options{MaxBatchOps: 100}})
	c := e.dial(t)
	tags := pushTags(250)
	rec := wire.ORMapRecord{Value: "kept", Timestamp: cts("c"), Tag: "live-tag"}
	c.send(&wire.ORMapPushDiff{MapName: "tags", Entries: []wire.ORMapEntry{
		{Key: "post-1", Records: []wire.ORMapRecord{rec}, Tombstones: tags},
		{Key: "post-2", Records: []wire.ORMapRecord{}, Tombstones: tags},
	}})
	if m := c.next(); m.Type() != wire.TypeOpAck {
		t.Fatalf("push answered %s %+v, want OP_ACK", m.Type(), m)
	}
	en, ok, err := e.st.Get(t.Context(), "tags", "post-1")
	if err != nil || !ok || len(en.Record.ORMap.Records) != 1 || len(en.Record.ORMap.Tombstones) != len(tags) {
		t.Fatalf("post-1 after push: ok %v err %v, %d records, %d tombstones", ok, err, len(en.Record.ORMap.Records), len(en.Record.ORMap.Tombstones))
	}
}

// One ORMAP_PUSH_DIFF entry of n tombstones must cost the server memory
// in proportion to n, not n²: before, each tombstone was merged as its own
// op, copying, re-encoding and announcing the whole row every time, so a
// push of 6,000 tombstones (a 300 KB frame, within every default limit)
// made the server allocate 5.6 GB and take 11 s.
func TestPushDiff_tombstonesOfOneKeyCostLinearMemory(t *testing.T) {
	e := newEnv(t, envConfig{})
	c := e.dial(t)
	tags := pushTags(6000)
	push := &wire.ORMapPushDiff{MapName: "tags", Entries: []wire.ORMapEntry{{Key: "post-1", Records: []wire.ORMapRecord{}, Tombstones: tags}}}
	c.ping() // the connection is set up before measuring
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c.send(push)
	if m := c.next(); m.Type() != wire.TypeOpAck {
		t.Fatalf("push answered %s %+v, want OP_ACK", m.Type(), m)
	}
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 64<<20 {
		t.Fatalf("a push of %d tombstones (%d bytes of tags) allocated %d MiB", len(tags), len(tags)*len(tags[0]), got>>20)
	}
	if _, ok, err := e.st.Get(t.Context(), "tags", "post-1"); err != nil || ok { // tombstones only: not live
		t.Fatalf("post-1 after push: ok %v err %v", ok, err)
	}
}

// Many OR ops on one key in one OP_BATCH (10,000 are within the default
// limits, about a megabyte) must cost memory in proportion to their
// number: each op used to copy and re-encode the whole record, and the
// commit stored every copy, so 6,000 ops allocated gigabytes.
func TestWrite_manyOROpsOnOneKeyCostLinearMemory(t *testing.T) {
	e := newEnv(t, envConfig{})
	c := e.dial(t)
	const n = 3000
	ops := make([]wire.ClientOp, 0, 2*n)
	for i := 0; i < n; i++ {
		op := orAddOp(itoa(len(ops)+1), "tags", "post-1", "v"+itoa(i), cts("c"))
		ops = append(ops, op)
	}
	for i := 0; i < n; i += 2 { // remove every other entry
		ops = append(ops, orRemoveOp(itoa(len(ops)+1), "tags", "post-1", ops[i].ORRecord.Tag))
	}
	for len(ops) < 2*n { // and tombstone tags never added
		ops = append(ops, orRemoveOp(itoa(len(ops)+1), "tags", "post-1", "never-added-"+itoa(len(ops))))
	}
	c.ping()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c.write(ops...)
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 96<<20 {
		t.Fatalf("an OP_BATCH of %d OR ops on one key allocated %d MiB", len(ops), got>>20)
	}
	en, ok, err := e.st.Get(t.Context(), "tags", "post-1")
	if err != nil || !ok || len(en.Record.ORMap.Records) != n/2 || len(en.Record.ORMap.Tombstones) != n {
		t.Fatalf("post-1: ok %v err %v, %d records (want %d), %d tombstones (want %d)", ok, err,
			len(en.Record.ORMap.Records), n/2, len(en.Record.ORMap.Tombstones), n)
	}
	for i, r := range en.Record.ORMap.Records {
		if r.Tag != ops[2*i+1].ORRecord.Tag {
			t.Fatalf("record %d has tag %q, want %q", i, r.Tag, ops[2*i+1].ORRecord.Tag)
		}
	}
}

// The new tombstones of one ORMAP_PUSH_DIFF entry are one change of the
// store, not one each: a push of 100,000 short tags (a 600 KB frame, within
// every default limit; 2 MiB holds a million) made 100,000 changes of 416
// bytes each, growing to 250 MB and taking a second or more, and a push on
// many keys the same. Subscribers still hear of each new tag.
func TestPushDiff_manyTombstonesAreOneChange(t *testing.T) {
	e := newEnv(t, envConfig{})
	c := e.dial(t)
	watcher := e.dial(t)
	watcher.send(&wire.QuerySub{QueryID: "q", MapName: "tags"})
	skipUntil[*wire.QueryResp](watcher)
	const n = 100_000
	tags := make([]string, n)
	for i := range tags {
		tags[i] = itoa(i)
	}
	rec := wire.ORMapRecord{Value: "kept", Timestamp: cts("c"), Tag: "live-tag"}
	push := &wire.ORMapPushDiff{MapName: "tags", Entries: []wire.ORMapEntry{{Key: "post-1", Records: []wire.ORMapRecord{rec}, Tombstones: tags}}}
	c.ping()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c.send(push)
	if m := c.next(); m.Type() != wire.TypeOpAck {
		t.Fatalf("push answered %s %+v, want OP_ACK", m.Type(), m)
	}
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 100<<20 {
		t.Fatalf("a push of %d tombstones allocated %d MiB", n, got>>20)
	}
	en, ok, err := e.st.Get(t.Context(), "tags", "post-1")
	if err != nil || !ok || len(en.Record.ORMap.Records) != 1 || len(en.Record.ORMap.Tombstones) != n {
		t.Fatalf("post-1 after push: ok %v err %v, %+v", ok, err, len(en.Record.ORMap.Tombstones))
	}
	seen := make(map[string]bool, n)
	for len(seen) < n {
		ev := skipUntil[*wire.ServerEvent](watcher)
		if ev.EventType != wire.EventORRemove || ev.Key != "post-1" || seen[ev.ORTag] {
			t.Fatalf("event %d: %+v", len(seen), ev)
		}
		seen[ev.ORTag] = true
	}
	if ev := skipUntil[*wire.ServerEvent](watcher); ev.EventType != wire.EventORAdd || ev.ORTag != "live-tag" {
		t.Fatalf("event after the removes: %+v", ev)
	}
}

// A push of more ops than MaxBatchOps (TopGun's client pushes every key of
// a bucket the server lacks at once, and cannot split a push) is applied
// in parts within the limit, not refused whole at every sync; an entry
// over the limit on its own is still refused.
func TestPushDiff_overMaxBatchOpsAppliedInParts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{opts: Options{MaxBatchOps: 10}})
	c := e.dial(t)
	var entries []wire.ORMapEntry
	for i := range 25 {
		entries = append(entries, wire.ORMapEntry{Key: "k" + itoa(i), Tombstones: []string{},
			Records: []wire.ORMapRecord{{Value: "v", Timestamp: cts("c"), Tag: "t" + itoa(i)}}})
	}
	c.send(&wire.ORMapPushDiff{MapName: "tags", Entries: entries})
	for acks := 0; acks < 3; {
		switch m := c.next().(type) {
		case *wire.OpAck:
			acks++
		case *wire.ErrorMessage:
			t.Fatalf("push of %d entries: ERROR %d %s", len(entries), m.Code, m.Message)
		}
	}
	for i := range entries {
		if en, ok, err := e.st.Get(t.Context(), "tags", "k"+itoa(i)); err != nil || !ok || len(en.Record.ORMap.Records) != 1 {
			t.Fatalf("k%d after the push: ok %v err %v", i, ok, err)
		}
	}
	// One entry of 11 records is over the limit alone.
	big := wire.ORMapEntry{Key: "big", Tombstones: []string{}}
	for i := range 11 {
		big.Records = append(big.Records, wire.ORMapRecord{Value: "v", Timestamp: cts("c"), Tag: "b" + itoa(i)})
	}
	c.send(&wire.ORMapPushDiff{MapName: "tags", Entries: []wire.ORMapEntry{big}})
	if m := skipUntil[*wire.ErrorMessage](c); m.Code != 413 {
		t.Fatalf("an entry over the limit alone: %+v, want ERROR 413", m)
	}
}
