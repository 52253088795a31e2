package client

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/server/wire"
)

// lockedBuffer collects logs written from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// emptyMaps is a value of n empty maps: n bytes on the wire, 144·n as
// package wire counts it decoded (64·n in a client's memory).
func emptyMaps(n int) []any {
	v := make([]any, n)
	for i := range v {
		v[i] = map[string]any{}
	}
	return v
}

// hostileBatch is a SERVER_BATCH_EVENT of events of map mapName, each
// holding a record of maps empty maps (about events·maps bytes, and 64
// times that in memory once decoded), or no record when maps < 0.
func hostileBatch(t testing.TB, mapName string, events, maps int) []byte {
	t.Helper()
	var rec *wire.LWWRecord
	if maps >= 0 {
		rec = &wire.LWWRecord{Value: emptyMaps(maps), Timestamp: wire.Timestamp{Millis: 1, NodeID: "s"}}
	}
	evs := make([]wire.ServerEvent, events)
	for i := range evs {
		evs[i] = wire.ServerEvent{MapName: mapName, EventType: wire.EventPut, Key: "k", Record: rec}
	}
	b, err := wire.Encode(&wire.ServerBatchEvent{Events: evs})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// onlyConn is the fake server's one connection.
func (fs *fakeServer) onlyConn(t testing.TB) *fakeConn {
	t.Helper()
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if len(fs.conns) != 1 {
		t.Fatalf("%d connections, want 1", len(fs.conns))
	}
	for c := range fs.conns {
		return c
	}
	return nil
}

// A server's frame that would take far more than MaxReadDecodedBytes once
// decoded is dropped having allocated no more than the bound: the
// subscription waiting for it closes with ErrTooLarge, the error is
// logged, the connection stays up and a write waiting for its ack is still
// sent again and acknowledged. Before, the client decoded it whole (the
// subscription then held every event) and a hostile server could make it
// allocate 40 times the frames it sent: here a 2 MiB SERVER_BATCH_EVENT of
// 2M empty maps (about 130 MiB in memory, 290 MiB counted, against a
// bound of 16 MiB), and 3 MiB of events without records, which package
// wire did not count at all (9 MiB in memory, against a bound of 1 MiB).
func TestReadDecodedLimit_hostileFrameIsDroppedWithinTheBound(t *testing.T) {
	// Not parallel: it measures the heap.
	for _, tc := range []struct {
		name          string
		bound, events int
		raw           []byte
	}{
		{"events of empty maps", 16 << 20, 1000, hostileBatch(t, "docs", 1000, 2000)},
		{"events without records", 1 << 20, 100_000, hostileBatch(t, "docs", 100_000, -1)},
	} {
		t.Run(tc.name, func(t *testing.T) { hostileFrameDropped(t, tc.bound, tc.events, tc.raw) })
	}
}

func hostileFrameDropped(t *testing.T, bound, events int, raw []byte) {
	fs := newFakeServer(t, "")
	logs := &lockedBuffer{}
	o := testOptions(t)
	o.Logger = hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: logs})
	o.MaxReadDecodedBytes = bound
	o.SubscriptionBuffer = 2 * events // unbounded by the bound, it would hold every event
	c := dial(t, fs.URL, o)

	// A write waiting for its ack while the frame arrives.
	fs.noAcks.Store(true)
	putErr := make(chan error, 1)
	go func() { putErr <- c.Put(ctxT(t), "other", "k", "v") }()
	eventually(t, "the write to reach the server", func() bool { return fs.count(wire.TypeClientOp) == 1 })

	const rounds = 5
	held := make([]int64, rounds)
	allocated := make([]uint64, rounds)
	for i := range rounds {
		sub, err := c.Subscribe(ctxT(t), "docs", nil)
		if err != nil {
			t.Fatal(err)
		}
		var before, mid, after runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&before)
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		if err := fs.onlyConn(t).ws.Write(ctx, websocket.MessageBinary, raw); err != nil {
			t.Fatal(err)
		}
		cancel()
		eventually(t, "the frame to be handled", func() bool { return sub.Err() != nil || len(sub.Updates) == events })
		runtime.ReadMemStats(&mid)
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&after)
		held[i] = int64(after.HeapAlloc) - int64(before.HeapAlloc)
		allocated[i] = mid.TotalAlloc - before.TotalAlloc
		runtime.KeepAlive(sub)
		if err := sub.Err(); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "MaxReadDecodedBytes") {
			t.Errorf("subscription after the frame: Err = %v, want ErrTooLarge naming MaxReadDecodedBytes", err)
		}
		_ = sub.Close()
	}
	slices.Sort(held)
	t.Logf("frame %d KiB: live heap grew %v bytes, allocated %v bytes", len(raw)>>10, held, allocated)
	if held[rounds/2] > int64(bound) {
		t.Errorf("the client held %d KiB after a frame over the %d KiB bound", held[rounds/2]>>10, bound>>10)
	}
	// Reading the frame itself takes about twice its size.
	if got := slices.Min(allocated); got > uint64(bound)+4*uint64(len(raw))+4<<20 {
		t.Errorf("handling a frame of %d KiB allocated %d KiB, over the %d KiB bound", len(raw)>>10, got>>10, bound>>10)
	}
	if !strings.Contains(logs.String(), "ignoring a frame over Options.MaxReadDecodedBytes") {
		t.Errorf("the dropped frame was not logged as an error; logs:\n%s", logs)
	}
	if n := fs.upgrades.Load(); n != 1 {
		t.Errorf("%d connections, want 1: the frame dropped the connection", n)
	}
	if n := c.Pending(); n != 1 {
		t.Fatalf("Pending = %d, want the write still waiting", n)
	}
	// The write was not lost: it is sent again after a reconnect.
	fs.noAcks.Store(false)
	fs.dropAll()
	select {
	case err := <-putErr:
		if err != nil {
			t.Fatalf("the write waiting while the frame was dropped: %v", err)
		}
	case <-time.After(waitFor):
		t.Fatal("the write waiting while the frame was dropped was never acknowledged")
	}
}

// MaxReadDecodedBytes zero is DecodedBytesPerReadByte × MaxReadBytes: a
// result set within MaxReadBytes that would take more once decoded fails
// Subscribe with ErrTooLarge (the connection survives), one that takes
// less is delivered. A negative value is refused.
func TestReadDecodedLimit_defaultIsAMultipleOfMaxReadBytes(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, "")
	ts := wire.Timestamp{Millis: 1, NodeID: "s"}
	// 100 KB on the wire, about 14 MiB counted: over 8 × 1 MiB (and
	// under the 32 × of what the server accepts).
	fs.put("big", "a", wire.LWWRecord{Value: emptyMaps(100_000), Timestamp: ts})
	// 40 KB on the wire, about 6 MiB counted: under it.
	fs.put("small", "a", wire.LWWRecord{Value: emptyMaps(40_000), Timestamp: ts})
	o := testOptions(t)
	o.MaxReadBytes = 1 << 20
	if o.MaxReadDecodedBytes != 0 || o.maxReadDecoded() != DecodedBytesPerReadByte<<20 {
		t.Fatalf("MaxReadDecodedBytes %d gives a bound of %d", o.MaxReadDecodedBytes, o.maxReadDecoded())
	}
	c := dial(t, fs.URL, o)
	if _, err := c.Subscribe(ctxT(t), "big", nil); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Subscribe with results over the decoded bound = %v, want ErrTooLarge", err)
	}
	sub, err := c.Subscribe(ctxT(t), "small", nil)
	if err != nil || len(sub.Initial) != 1 {
		t.Fatalf("Subscribe with results under the decoded bound = %v", err)
	}
	if n := fs.upgrades.Load(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
	o.MaxReadDecodedBytes = -1
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "MaxReadDecodedBytes") {
		t.Fatalf("Validate with a negative MaxReadDecodedBytes = %v", err)
	}
}

// The largest single record this project's server stores at its default
// limits (a write counted just under its 64 MiB decoded limit; one-entry
// maps count the most per byte) reaches a client with the default
// options by every path: QUERY_RESP, QUERY_UPDATE and SERVER_EVENT, and
// a SyncMap leaf.
func TestReadDecodedLimit_largestStoredRecordIsAccepted(t *testing.T) {
	t.Parallel()
	url := realServer(t)
	w := dial(t, url, testOptions(t))
	o := testOptions(t)
	// The leaf takes seconds to read and decode under -race: not a path
	// left unanswered.
	o.SyncIdleTimeout = waitFor
	c := dial(t, url, o)
	tiny := func(n int) []any {
		v := make([]any, n)
		for i := range v {
			v[i] = map[string]any{"a": int64(1)}
		}
		return v
	}
	// The most the server's decoded limit admits in one write, less 1%:
	// its count grows by the same amount per element.
	counted := func(n int) int {
		b, err := wire.Encode(&wire.ClientOpMessage{ClientOp: wire.ClientOp{ID: "1", MapName: "docs", Key: "k", OpType: "PUT",
			Record: &wire.LWWRecord{Value: tiny(n), Timestamp: wire.Timestamp{Millis: 1, NodeID: "n"}}}})
		if err != nil {
			t.Fatal(err)
		}
		_, size, err := wire.DefaultLimits().DecodeSize(b)
		if err != nil {
			t.Fatalf("%d one-entry maps: %v", n, err)
		}
		return size
	}
	per := float64(counted(20_000)-counted(10_000)) / 10_000
	n := int(float64(wire.DecodedBytesPerMessageByte*wire.DefaultMaxMessageBytes) / per * 0.99)
	counted(n) // within the limit
	sub, err := c.Subscribe(ctxT(t), "docs", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Put(ctxT(t), "docs", "k", tiny(n)); err != nil {
		t.Fatalf("Put of %d one-entry maps: %v", n, err)
	}
	got := map[bool]bool{} // map event, live-query change
	for len(got) < 2 {
		select {
		case u, ok := <-sub.Updates:
			if !ok {
				t.Fatalf("subscription closed: %v", sub.Err())
			}
			if v, _ := u.Value.([]any); len(v) != n {
				t.Fatalf("update of %d elements, want %d", len(v), n)
			}
			got[u.Event != nil] = true
		case <-time.After(waitFor):
			t.Fatalf("updates received: %v", got)
		}
	}
	sub2, err := c.Subscribe(ctxT(t), "docs", nil)
	if err != nil || len(sub2.Initial) != 1 {
		t.Fatalf("Subscribe with the record stored: %v", err)
	}
	if v, _ := sub2.Initial[0].Value.([]any); len(v) != n {
		t.Fatalf("result of %d elements, want %d", len(v), n)
	}
	res, err := c.SyncMap(ctxT(t), "docs", nil)
	if err != nil || len(res.Records) != 1 {
		t.Fatalf("SyncMap = %+v, %v", res, err)
	}
	b, err := wire.Encode(&wire.QueryResp{QueryID: "q", Results: sub2.Initial})
	if err != nil {
		t.Fatal(err)
	}
	_, size, err := o.readLimits().DecodeSize(b)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d one-entry maps: %d KiB frame, counted %d MiB by the client (default bound %d MiB)",
		n, len(b)>>10, size>>20, o.maxReadDecoded()>>20)
}

// A QUERY_RESP of many small documents is accepted with the default
// options, and one of as many as this project's server puts in a result
// (TOPGUN_MAX_QUERY_RESULTS, 1,000,000 by default) stays under the default
// bound: measured on 20,000 of them, counted per result.
func TestReadDecodedLimit_largeQueryResultsAreAccepted(t *testing.T) {
	t.Parallel()
	const docs, serverMax = 20_000, 1_000_000
	url := realServer(t)
	w := dial(t, url, testOptions(t))
	ops := make([]Op, docs)
	for i := range ops {
		ops[i] = Op{Map: "todos", Key: "item-" + strconv.Itoa(i), Value: map[string]any{
			"title": "buy milk", "done": i%2 == 0, "tags": []any{"home", "shop"}, "n": int64(i)}}
	}
	for i := 0; i < docs; i += 5000 {
		if err := w.Batch(ctxT(t), ops[i:i+5000]...); err != nil {
			t.Fatal(err)
		}
	}
	o := testOptions(t)
	c := dial(t, url, o)
	sub, err := c.Subscribe(ctxT(t), "todos", nil)
	if err != nil || len(sub.Initial) != docs {
		t.Fatalf("Subscribe = %v", err)
	}
	b, err := wire.Encode(&wire.QueryResp{QueryID: sub.ID, Results: sub.Initial})
	if err != nil {
		t.Fatal(err)
	}
	_, size, err := o.readLimits().DecodeSize(b)
	if err != nil {
		t.Fatal(err)
	}
	full := int64(size) * serverMax / docs
	t.Logf("%d results: %d KiB frame, counted %d KiB; %d results would count %d MiB (default bound %d MiB)",
		docs, len(b)>>10, size>>10, serverMax, full>>20, o.maxReadDecoded()>>20)
	if full > int64(o.maxReadDecoded()) {
		t.Errorf("a QUERY_RESP of %d such results would count %d MiB, over the default bound of %d MiB",
			serverMax, full>>20, o.maxReadDecoded()>>20)
	}
}

// A SYNC_RESP_LEAF over MaxReadDecodedBytes fails SyncMap with
// ErrTooLarge naming the setting, as one over MaxReadBytes does, and the
// connection goes on serving syncs.
func TestReadDecodedLimit_syncLeafOverTheBoundFails(t *testing.T) {
	t.Parallel()
	url := realServer(t)
	w := dial(t, url, testOptions(t))
	// 20 KB on the wire, about 2.9 MiB counted.
	if err := w.Put(ctxT(t), "docs", "a", emptyMaps(20_000)); err != nil {
		t.Fatal(err)
	}
	if err := w.Put(ctxT(t), "small", "b", "v"); err != nil {
		t.Fatal(err)
	}
	o := testOptions(t)
	o.MaxReadDecodedBytes = 1 << 20
	c := dial(t, url, o)
	res, err := c.SyncMap(ctxT(t), "docs", nil)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "MaxReadDecodedBytes") {
		t.Fatalf("SyncMap = %+v, %v; want ErrTooLarge naming MaxReadDecodedBytes", res, err)
	}
	if res, err := c.SyncMap(ctxT(t), "small", nil); err != nil || len(res.Records) != 1 {
		t.Fatalf("SyncMap(small) = %+v, %v", res, err)
	}
}
