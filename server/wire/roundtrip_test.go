package wire

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// gen builds random messages in canonical form (what Decode produces), so
// Decode(Encode(m)) must equal m exactly.
type gen struct{ r *rand.Rand }

func (g gen) bool() bool        { return g.r.IntN(2) == 0 }
func (g gen) chance(n int) bool { return g.r.IntN(n) == 0 }

func (g gen) str() string {
	alphabet := []rune("abcXYZ019 -_:/.ключ日本🙂\u00e9")
	n := g.r.IntN(12)
	out := make([]rune, n)
	for i := range out {
		out[i] = alphabet[g.r.IntN(len(alphabet))]
	}
	return string(out)
}

func (g gen) nonEmpty() string {
	if s := g.str(); s != "" {
		return s
	}
	return "x"
}

func (g gen) u64() uint64 {
	switch g.r.IntN(4) {
	case 0:
		return uint64(g.r.IntN(200))
	case 1:
		return 1700000000000 + g.r.Uint64N(1e9)
	case 2:
		return math.MaxUint64 - g.r.Uint64N(10)
	}
	return g.r.Uint64()
}

func (g gen) u32() uint32 { return g.r.Uint32() }

func (g gen) optU64() *uint64 {
	if g.bool() {
		return nil
	}
	v := g.u64()
	return &v
}

func (g gen) optU32() *uint32 {
	if g.bool() {
		return nil
	}
	v := g.u32()
	return &v
}

func (g gen) ts() Timestamp {
	return Timestamp{Millis: g.u64(), Counter: g.u32(), NodeID: g.str()}
}

// value returns a value in the package's value model.
func (g gen) value(depth int) any {
	n := 10
	if depth > 3 {
		n = 8 // no containers
	}
	switch g.r.IntN(n) {
	case 0:
		return nil
	case 1:
		return g.bool()
	case 2:
		return int64(g.r.Uint64()) // any int64, negative included
	case 3:
		return uint64(math.MaxInt64) + 1 + g.r.Uint64N(math.MaxInt64)
	case 4:
		return g.r.NormFloat64() * 1e6
	case 5:
		return g.str()
	case 6:
		b := make([]byte, g.r.IntN(6))
		for i := range b {
			b[i] = byte(g.r.IntN(256))
		}
		return b
	case 7:
		return int64(g.r.IntN(100))
	case 8:
		a := make([]any, g.r.IntN(4))
		for i := range a {
			a[i] = g.value(depth + 1)
		}
		return a
	}
	m := map[string]any{}
	for i := g.r.IntN(4); i > 0; i-- {
		m[g.str()] = g.value(depth + 1)
	}
	return m
}

func (g gen) entryResult() EntryProcessKeyResult {
	return EntryProcessKeyResult{Success: g.bool(), Result: g.value(0), NewValue: g.value(0), Error: g.optStr()}
}

func (g gen) strs(nilOK bool) []string {
	if nilOK && g.bool() {
		return nil
	}
	out := make([]string, g.r.IntN(4))
	for i := range out {
		out[i] = g.str()
	}
	return out
}

func (g gen) hashes() map[string]uint32 {
	m := map[string]uint32{}
	for i := g.r.IntN(5); i > 0; i-- {
		m[fmt.Sprintf("%x", g.r.IntN(16))] = g.u32()
	}
	return m
}

func (g gen) lww() LWWRecord {
	return LWWRecord{Value: g.value(0), Timestamp: g.ts(), TTLMs: g.optU64()}
}

func (g gen) orRecord() ORMapRecord {
	return ORMapRecord{Value: g.value(0), Timestamp: g.ts(), Tag: g.str(), TTLMs: g.optU64()}
}

func (g gen) orEntries() []ORMapEntry {
	out := make([]ORMapEntry, g.r.IntN(3))
	for i := range out {
		recs := make([]ORMapRecord, g.r.IntN(3))
		for j := range recs {
			recs[j] = g.orRecord()
		}
		out[i] = ORMapEntry{Key: g.str(), Records: recs, Tombstones: g.strs(false)}
	}
	return out
}

func (g gen) wc() WriteConcern {
	return []WriteConcern{"", FireAndForget, Memory, Applied, Replicated, Persisted}[g.r.IntN(6)]
}

func (g gen) clientOp() ClientOp {
	op := ClientOp{MapName: g.str(), Key: g.str(), WriteConcern: g.wc(), Timeout: g.optU64()}
	if g.bool() {
		op.ID = g.nonEmpty()
	}
	if g.bool() {
		op.OpType = []string{"PUT", "REMOVE", "OR_ADD", "OR_REMOVE"}[g.r.IntN(4)]
	}
	switch g.r.IntN(3) {
	case 0:
		r := g.lww()
		op.Record = &r
	case 1:
		op.RecordNil = true
	}
	switch g.r.IntN(3) {
	case 0:
		r := g.orRecord()
		op.ORRecord = &r
	case 1:
		op.ORRecordNil = true
	}
	switch g.r.IntN(3) {
	case 0:
		s := g.str()
		op.ORTag = &s
	case 1:
		op.ORTagNil = true
	}
	return op
}

func (g gen) opResults() []OpResult {
	if g.bool() {
		return nil
	}
	out := make([]OpResult, g.r.IntN(3))
	for i := range out {
		out[i] = OpResult{OpID: g.str(), Success: g.bool(), AchievedLevel: Applied}
		if g.bool() {
			out[i].Error = g.nonEmpty()
		}
	}
	return out
}

func (g gen) optStr() string {
	if g.bool() {
		return ""
	}
	return g.nonEmpty()
}

func (g gen) predicate(depth int) *Predicate {
	ops := []PredicateOp{OpEq, OpNeq, OpGt, OpGte, OpLt, OpLte, OpLike, OpRegex, OpIn, OpBetween,
		OpIsNull, OpIsNotNull, OpContainsAll, OpContainsAny, OpStartsWith, OpEndsWith}
	if depth < 3 && g.chance(3) {
		p := &Predicate{Op: []PredicateOp{OpAnd, OpOr, OpNot}[g.r.IntN(3)], Children: []*Predicate{}}
		for i := g.r.IntN(3); i > 0; i-- {
			p.Children = append(p.Children, g.predicate(depth+1))
		}
		return p
	}
	p := &Predicate{Op: ops[g.r.IntN(len(ops))], Attribute: g.optStr(), ValueRef: g.optStr()}
	if g.bool() {
		p.Value = g.value(1)
	}
	return p
}

func (g gen) query() Query {
	q := Query{Cursor: g.optStr(), GroupBy: g.strs(true)}
	if g.bool() {
		q.Where = map[string]any{}
		for i := g.r.IntN(3); i > 0; i-- {
			q.Where[g.str()] = g.value(1)
		}
	}
	if g.bool() {
		q.Predicate = g.predicate(0)
	}
	if g.bool() {
		q.Sort = []SortField{}
		for i := g.r.IntN(3); i > 0; i-- {
			q.Sort = append(q.Sort, SortField{Field: g.str(), Direction: []SortDirection{Asc, Desc}[g.r.IntN(2)]})
		}
	}
	if g.bool() {
		l := g.u32()
		q.Limit = &l
	}
	if g.bool() {
		q.Aggregations = []Aggregation{{Func: "count"}, {Func: "sum", Field: g.nonEmpty()}}[:g.r.IntN(3)]
	}
	return q
}

func (g gen) serverEvent() ServerEvent {
	ev := ServerEvent{MapName: g.str(), EventType: []EventType{EventPut, EventRemove, EventORAdd, EventORRemove}[g.r.IntN(4)],
		Key: g.str(), ORTag: g.optStr()}
	if g.bool() {
		r := g.lww()
		ev.Record = &r
	}
	if g.bool() {
		r := g.orRecord()
		ev.ORRecord = &r
	}
	return ev
}

// message returns one random message of every registered type in turn.
func (g gen) message(i int) Message {
	var hb *bool
	if g.bool() {
		hb = boolp(g.bool())
	}
	all := []func() Message{
		func() Message { return &AuthRequired{Reason: g.optStr()} },
		func() Message { return &Auth{Token: g.str(), ProtocolVersion: g.optU32(), DeviceToken: g.optStr()} },
		func() Message {
			return &AuthAck{ProtocolVersion: g.optU32(), UserID: g.optStr(), DeviceID: g.optStr(), DeviceToken: g.optStr()}
		},
		func() Message { return &AuthFail{Error: g.optStr(), Code: g.optU32()} },
		func() Message { return &DeviceHello{DeviceToken: g.optStr()} },
		func() Message { return &DeviceAck{DeviceID: g.optStr(), DeviceToken: g.optStr()} },
		func() Message { return &Ping{Timestamp: g.u64()} },
		func() Message { return &Pong{Timestamp: g.u64(), ServerTime: g.u64()} },
		func() Message {
			m := &ErrorMessage{Code: g.u32(), Message: g.str()}
			if g.bool() {
				m.Details = g.value(1)
			}
			return m
		},
		func() Message { return &ClientOpMessage{ClientOp: g.clientOp()} },
		func() Message {
			ops := make([]ClientOp, g.r.IntN(4))
			for i := range ops {
				ops[i] = g.clientOp()
			}
			return &OpBatch{Ops: ops, WriteConcern: g.wc(), Timeout: g.optU64()}
		},
		func() Message { return &OpAck{LastID: g.str(), AchievedLevel: g.wc(), Results: g.opResults()} },
		func() Message { return &OpRejected{OpID: g.str(), Reason: g.str(), Code: g.optU32()} },
		func() Message {
			b := make([]byte, g.r.IntN(8))
			return &Batch{Count: g.u32(), Data: b}
		},
		func() Message {
			m := &SyncInit{MapName: g.str(), RootHash: g.optU32(), LastSyncTimestamp: g.optU64()}
			if g.bool() {
				m.BucketHashes = g.hashes()
			}
			return m
		},
		func() Message { return &SyncRespRoot{MapName: g.str(), RootHash: g.u32(), Timestamp: g.ts()} },
		func() Message { return &MerkleReqBucket{MapName: g.str(), Path: g.str()} },
		func() Message { return &SyncRespBuckets{MapName: g.str(), Path: g.str(), Buckets: g.hashes()} },
		func() Message {
			recs := make([]LeafRecord, g.r.IntN(3))
			for i := range recs {
				recs[i] = LeafRecord{Key: g.str(), Record: g.lww()}
			}
			return &SyncRespLeaf{MapName: g.str(), Path: g.str(), Records: recs}
		},
		func() Message { return &SyncResetRequired{MapName: g.str(), Reason: g.str()} },
		func() Message { return &GCPrune{OlderThan: g.ts()} },
		func() Message {
			return &ORMapSyncInit{MapName: g.str(), RootHash: g.u32(), BucketHashes: g.hashes(),
				LastSyncTimestamp: g.optU64(), ClaimedEpoch: g.optU64()}
		},
		func() Message {
			return &ORMapSyncRespRoot{MapName: g.str(), RootHash: g.u32(), Timestamp: g.ts(),
				CoveringEpoch: g.optU64(), FullResync: g.bool()}
		},
		func() Message { return &ORMapMerkleReqBucket{MapName: g.str(), Path: g.str()} },
		func() Message { return &ORMapSyncRespBuckets{MapName: g.str(), Path: g.str(), Buckets: g.hashes()} },
		func() Message {
			return &ORMapSyncRespLeaf{MapName: g.str(), Path: g.str(), Entries: g.orEntries(), CoveringEpoch: g.optU64()}
		},
		func() Message { return &ORMapDiffRequest{MapName: g.str(), Keys: g.strs(false)} },
		func() Message {
			return &ORMapDiffResponse{MapName: g.str(), Entries: g.orEntries(), CoveringEpoch: g.optU64()}
		},
		func() Message { return &ORMapPushDiff{MapName: g.str(), Entries: g.orEntries()} },
		func() Message { return &ClientApplyAck{Cursor: g.u64()} },
		func() Message {
			return &QuerySub{QueryID: g.str(), MapName: g.str(), Query: g.query(), Fields: g.strs(true)}
		},
		func() Message { return &QueryUnsub{QueryID: g.str()} },
		func() Message {
			res := make([]QueryResult, g.r.IntN(3))
			for i := range res {
				res[i] = QueryResult{Key: g.str(), Value: g.value(0)}
			}
			cs := []CursorStatus{"", CursorValid, CursorExpired, CursorInvalid, CursorNone}[g.r.IntN(5)]
			return &QueryResp{QueryID: g.str(), Results: res, NextCursor: g.optStr(), HasMore: hb,
				CursorStatus: cs, MerkleRootHash: g.optU32(), Error: g.optStr(), Code: g.optStr()}
		},
		func() Message {
			return &QueryUpdate{QueryID: g.str(), Key: g.str(), Value: g.value(0),
				ChangeType: []ChangeType{Enter, Update, Leave}[g.r.IntN(3)]}
		},
		func() Message { return &ServerEvent{} },
		func() Message {
			evs := make([]ServerEvent, g.r.IntN(3))
			for i := range evs {
				evs[i] = g.serverEvent()
			}
			return &ServerBatchEvent{Events: evs}
		},
		func() Message {
			return &EntryProcess{RequestID: g.str(), MapName: g.str(), Key: g.str(), Processor: g.value(0)}
		},
		func() Message {
			return &EntryProcessBatch{RequestID: g.str(), MapName: g.str(), Keys: g.strs(false), Processor: g.value(0)}
		},
		func() Message {
			return &EntryProcessResponse{RequestID: g.str(), EntryProcessKeyResult: g.entryResult()}
		},
		func() Message {
			res := map[string]EntryProcessKeyResult{}
			for range g.r.IntN(3) {
				res[g.str()] = g.entryResult()
			}
			return &EntryProcessBatchResponse{RequestID: g.str(), Results: res}
		},
	}
	m := all[i%len(all)]()
	if ev, ok := m.(*ServerEvent); ok {
		*ev = g.serverEvent()
	}
	return m
}

// TestRoundTrip_property encodes random messages of every type and checks
// that decoding gives them back exactly and that encoding is a fixed point.
func TestRoundTrip_property(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	g := gen{rand.New(rand.NewPCG(seed, 1))}
	seen := map[string]bool{}
	for i := 0; i < 3000; i++ {
		m := g.message(i)
		seen[m.Type()] = true
		raw, err := Encode(m)
		if err != nil {
			t.Fatalf("seed %d #%d: Encode(%T): %v", seed, i, m, err)
		}
		got, err := Decode(raw)
		if err != nil {
			t.Fatalf("seed %d #%d: Decode(Encode(%T)): %v\n%x", seed, i, m, err, raw)
		}
		asDecoded(m)
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("seed %d #%d: round trip changed %T:\nwant %#v\ngot  %#v", seed, i, m, m, got)
		}
	}
	if len(seen) != len(kinds) {
		t.Fatalf("generated %d of %d types", len(seen), len(kinds))
	}
}

func TestRoundTrip_httpSync(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	g := gen{rand.New(rand.NewPCG(seed, 2))}
	for i := 0; i < 300; i++ {
		req := &HTTPSyncRequest{ClientID: g.str(), ClientHLC: g.ts()}
		if g.bool() {
			req.Operations = []ClientOp{g.clientOp(), g.clientOp()}[:g.r.IntN(3)]
		}
		if g.bool() {
			req.SyncMaps = []SyncMapEntry{{MapName: g.str(), LastSyncTimestamp: g.ts()}}
		}
		if g.bool() {
			req.Queries = []HTTPQuery{{QueryID: g.str(), MapName: g.str(), Filter: g.value(0), Limit: g.optU32(), Offset: g.optU32(), Cursor: g.optStr()}}
		}
		if g.bool() {
			req.Searches = []any{g.value(0)}
		}
		raw, err := EncodeHTTPSyncRequest(req)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeHTTPSyncRequest(raw)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		asDecoded(req)
		if !reflect.DeepEqual(got, req) {
			t.Fatalf("seed %d: request round trip:\nwant %#v\ngot  %#v", seed, req, got)
		}

		resp := &HTTPSyncResponse{ServerHLC: g.ts()}
		if g.bool() {
			resp.Ack = &HTTPSyncAck{LastID: g.str(), Results: g.opResults()}
		}
		if g.bool() {
			resp.Deltas = []MapDelta{{MapName: g.str(), ServerSyncTimestamp: g.ts(),
				Records: []DeltaRecord{{Key: g.str(), Record: g.lww(), EventType: EventRemove}}}}
		}
		if g.bool() {
			resp.QueryResults = []HTTPQueryResult{{QueryID: g.str(), Results: []any{g.value(0)}, HasMore: boolp(g.bool()), NextCursor: g.optStr()}}
		}
		if g.bool() {
			resp.SearchResults = []any{}
		}
		if g.bool() {
			resp.Errors = []HTTPSyncError{{Code: 500, Message: g.str(), Context: g.optStr()}}
		}
		raw, err = EncodeHTTPSyncResponse(resp)
		if err != nil {
			t.Fatal(err)
		}
		gotResp, err := DecodeHTTPSyncResponse(raw)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if !reflect.DeepEqual(gotResp, resp) {
			t.Fatalf("seed %d: response round trip:\nwant %#v\ngot  %#v", seed, resp, gotResp)
		}
	}
}
