package protocol

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/server/record"
	"github.com/topgun-go/topgun/server/store"
	"github.com/topgun-go/topgun/server/wire"
)

// fuzzSeeds are well-formed frames of every type the server handles.
func fuzzSeeds(tb testing.TB) [][]byte {
	ts := cts("f")
	ttl := uint64(1000)
	lim := uint32(3)
	tag := ts.String()
	msgs := []wire.Message{
		&wire.Ping{Timestamp: 1700000000000},
		&wire.Auth{Token: "x"},
		&wire.DeviceHello{},
		&wire.ClientOpMessage{ClientOp: putOp("1", "m", "k", map[string]any{"a": int64(1), "b": []any{"x", 2.5}}, ts)},
		&wire.OpBatch{Ops: []wire.ClientOp{putOp("2", "m", "k2", "v", ts), removeOp("3", "m", "k", ts),
			orAddOp("4", "o", "k", "v", ts), orRemoveOp("5", "o", "k", tag),
			{ID: "6", MapName: "m", Key: "k3", Record: &wire.LWWRecord{Value: "t", Timestamp: ts, TTLMs: &ttl}}}},
		&wire.SyncInit{MapName: "m"},
		&wire.MerkleReqBucket{MapName: "m", Path: ""},
		&wire.MerkleReqBucket{MapName: "m", Path: "abc"},
		&wire.ORMapSyncInit{MapName: "o", BucketHashes: map[string]uint32{"a": 1}},
		&wire.ORMapMerkleReqBucket{MapName: "o", Path: "1"},
		&wire.ORMapDiffRequest{MapName: "o", Keys: []string{"k", "z"}},
		&wire.ORMapPushDiff{MapName: "o", Entries: []wire.ORMapEntry{{Key: "k", Records: []wire.ORMapRecord{{Value: "v", Timestamp: ts, Tag: "t1"}}, Tombstones: []string{"t0"}}}},
		&wire.QuerySub{QueryID: "q", MapName: "m", Query: wire.Query{Where: map[string]any{"a": map[string]any{"$gt": int64(0)}},
			Sort: []wire.SortField{{Field: "a", Direction: wire.Desc}}, Limit: &lim}},
		&wire.QuerySub{QueryID: "p", MapName: "m", Query: wire.Query{Predicate: &wire.Predicate{Op: wire.OpRegex, Attribute: "a", Value: "(a+"}}},
		&wire.QueryUnsub{QueryID: "q"},
		&wire.ClientApplyAck{Cursor: 1},
		&wire.EntryProcess{RequestID: "ep", MapName: "m", Key: "k", Processor: map[string]any{"name": "p", "code": "return 1;"}},
		&wire.EntryProcessBatch{RequestID: "epb", MapName: "m", Keys: []string{"a", "b", "a", ""}, Processor: map[string]any{"name": "p"}},
		// Distinct keys whose answer passes the bound (handleFrame's 413
		// for ENTRY_PROCESS_BATCH) at FuzzHandleFrame's MaxMessageBytes.
		&wire.EntryProcessBatch{RequestID: "epb-big", MapName: "m", Keys: entryKeys(fuzzMaxMessageBytes * wire.DecodedBytesPerMessageByte / entryResultBytes)},
	}
	var out [][]byte
	for _, m := range msgs {
		b, err := wire.Encode(m)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b)
	}
	batch, _ := wire.PackBatch(out[0], out[4])
	b, _ := wire.Encode(batch)
	out = append(out, b)
	// TopGun's own fixtures, as the wire package keeps them.
	files, _ := filepath.Glob(filepath.Join("..", "wire", "testdata", "fixtures", "*.msgpack"))
	for _, f := range files {
		if raw, err := os.ReadFile(f); err == nil {
			out = append(out, raw)
		}
	}
	return out
}

// fuzzMaxMessageBytes is FuzzHandleFrame's MaxMessageBytes: small, so
// that a seed of a few KiB reaches the bounds it scales.
const fuzzMaxMessageBytes = 64 << 10

// entryKeys returns n distinct short keys.
func entryKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = itoa(i)
	}
	return keys
}

// FuzzHandleFrame feeds arbitrary frames to a connection's handler on a
// null store: it must never panic, and a record no frame can name must
// keep its stored bytes.
func FuzzHandleFrame(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Add([]byte{})
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Add(append(bytes.Repeat([]byte{0x91}, 400), 0xc0))

	e := newEnv(f, envConfig{opts: Options{Logger: hclog.NewNullLogger(), IdleTimeout: time.Hour, MaxQueries: 64, MaxMessageBytes: fuzzMaxMessageBytes}})
	const guardMap, guardKey = "guard_5b1e0c9a7d2f4e8a", "k_93c7e1a0b6d24f58"
	ctx := context.Background()
	res, err := e.st.Apply(ctx, []store.Op{{Map: guardMap, Key: guardKey, Kind: store.OpPut, Value: record.StringValue("precious")}}, 0)
	if err != nil || res[0].Err != nil {
		f.Fatal(err, res)
	}
	raw := func() []byte {
		recs, err := e.be.Get(ctx, guardMap, false, []string{guardKey})
		if err != nil || len(recs) != 1 {
			f.Fatalf("guard record: %v %v", recs, err)
		}
		return recs[0].Value
	}
	want := raw()

	c := e.srv.newConn(nil, "fuzz")
	c.start()
	go func() {
		for {
			it, ok := c.out.next(c.ctx.Done())
			if !ok {
				return
			}
			c.sent(it)
		}
	}()
	f.Cleanup(func() { c.abort(); c.wg.Wait() })

	f.Fuzz(func(t *testing.T, frame []byte) {
		handled := make(chan struct{})
		go func() { c.handleFrame(frame, 0); close(handled) }()
		select {
		case <-handled:
		case <-time.After(10 * time.Second):
			t.Fatalf("handling the frame did not finish: %x", frame)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			c.mu.Lock()
			idle := c.pending == 0
			c.mu.Unlock()
			if idle {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("writes did not finish")
			}
			time.Sleep(time.Millisecond)
		}
		if c.ctx.Err() != nil {
			t.Fatal("the connection was dropped")
		}
		if got := raw(); !bytes.Equal(got, want) {
			t.Fatalf("guard record changed: %x -> %x", want, got)
		}
	})
}

// FuzzHTTPSync feeds arbitrary POST /sync bodies to the handler's logic on
// a null store holding one map larger than an answer may be: it must never
// panic, its answer must encode, and the answer must hold at most
// MaxQueryResults records over its deltas and query results, plus the
// changes of one millisecond.
func FuzzHTTPSync(f *testing.F) {
	lim, off := uint32(3), uint32(2)
	reqs := []*wire.HTTPSyncRequest{
		{ClientID: "c", ClientHLC: cts("c"), Operations: []wire.ClientOp{putOp("1", "m", "k", "v", cts("c")), removeOp("2", "m", "k0", cts("c"))}},
		{ClientID: "c", ClientHLC: cts("c"), SyncMaps: []wire.SyncMapEntry{{MapName: "m"}, {MapName: "m", LastSyncTimestamp: cts("c")}, {MapName: "m"}}},
		{ClientID: "c", ClientHLC: cts("c"), Queries: []wire.HTTPQuery{{QueryID: "a", MapName: "m"}, {QueryID: "b", MapName: "m", Limit: &lim, Offset: &off},
			{QueryID: "c", MapName: "m", Filter: map[string]any{"i": int64(3)}, Cursor: encodeCursor("k10")}}},
	}
	for _, r := range reqs {
		b, err := wire.EncodeHTTPSyncRequest(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	if raw, err := os.ReadFile(filepath.Join("..", "wire", "testdata", "fixtures", "HTTP_SYNC_REQUEST.msgpack")); err == nil {
		f.Add(raw)
	}
	f.Add([]byte{})

	const maxResults = 20
	// At most 10 ops per request, each request in a millisecond of its
	// own: no millisecond's changes pass maxResults, which an answer
	// holding nothing else may (so that no map is stuck).
	e := newEnv(f, envConfig{fakeWall: true, opts: Options{Logger: hclog.NewNullLogger(), MaxQueryResults: maxResults, MaxBatchOps: 10}})
	ctx := context.Background()
	for i := range 3 * maxResults {
		e.wall.Add(1)
		res, err := e.st.Apply(ctx, []store.Op{{Map: "m", Key: "k" + itoa(i), Kind: store.OpPut,
			Value: record.MapValue(record.Field{Key: "i", Value: record.IntValue(int64(i % 5))}), Timestamp: record.Timestamp{Millis: uint64(e.wall.Load()), NodeID: "seed"}}}, 0)
		if err != nil || res[0].Err != nil {
			f.Fatal(err, res)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := e.srv.limits.DecodeHTTPSyncRequest(body)
		if err != nil {
			return
		}
		e.wall.Add(1)
		resp := e.srv.httpSync(ctx, req)
		if _, err := wire.EncodeHTTPSyncResponse(resp); err != nil {
			t.Fatalf("encode the answer: %v", err)
		}
		n := 0
		for _, d := range resp.Deltas {
			n += len(d.Records)
		}
		for _, q := range resp.QueryResults {
			n += len(q.Results)
		}
		// One delta may pass the rest by one millisecond's changes, at
		// most one request's ops here.
		if n > maxResults+10 {
			t.Fatalf("the answer holds %d records, the limit is %d plus one millisecond's changes", n, maxResults)
		}
	})
}
