package client

import (
	"runtime"
	"testing"

	"github.com/topgun-go/topgun/server/wire"
)

// droppedHead reads the type, and the ids the replies a caller waits for
// start with, from a prefix of a frame.
func TestDroppedHead(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		m    wire.Message
		head map[string]string
	}{
		{&wire.ORMapDiffResponse{MapName: "m", Entries: []wire.ORMapEntry{{Key: "k", Records: []wire.ORMapRecord{}, Tombstones: []string{}}}}, map[string]string{"mapName": "m"}},
		{&wire.SyncRespLeaf{MapName: "docs", Path: "0af", Records: []wire.LeafRecord{{Key: "k", Record: wire.LWWRecord{Value: "v"}}}}, map[string]string{"mapName": "docs", "path": "0af"}},
		{&wire.SyncRespBuckets{MapName: "docs", Path: "0", Buckets: map[string]uint32{"1": 2}}, map[string]string{"mapName": "docs", "path": "0"}},
		{&wire.SyncRespRoot{MapName: "docs", RootHash: 7}, map[string]string{"mapName": "docs"}},
		{&wire.QueryResp{QueryID: "q1", Results: []wire.QueryResult{{Key: "k", Value: "v"}}}, map[string]string{"queryId": "q1"}},
		{&wire.QueryUpdate{QueryID: "q2", Key: "k", Value: map[string]any{"a": 1}, ChangeType: wire.Update}, map[string]string{"queryId": "q2", "key": "k"}},
		{&wire.Pong{Timestamp: 1}, map[string]string{}},
	} {
		b, err := wire.Encode(tc.m)
		if err != nil {
			t.Fatal(err)
		}
		f := droppedHead(b[:min(len(b), 60)])
		if f.typ != tc.m.Type() {
			t.Errorf("%s: type %q", tc.m.Type(), f.typ)
		}
		for k, v := range tc.head {
			if f.head[k] != v {
				t.Errorf("%s: head %v, want %s=%q", tc.m.Type(), f.head, k, v)
			}
		}
	}
	if f := droppedHead([]byte{0x82, 0xa4, 't', 'y', 'p', 'e'}); f.typ != "" || len(f.head) != 0 {
		t.Errorf("a truncated frame gave %+v", f)
	}
}

// A frame a few bytes long whose string header claims gigabytes must not
// make droppedHead allocate for the claim: the msgpack library allocates up
// to 1 MiB ahead of the bytes it reads, which made each such frame of a
// server (one that failed to decode) cost the client a megabyte.
func TestDroppedHead_claimedLengthAllocatesNothing(t *testing.T) {
	str32 := []byte{0xdb, 0xff, 0xff, 0xff, 0xff, 'x', 'y'}
	cat := func(parts ...[]byte) []byte {
		var b []byte
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	typeKey := []byte{0xa4, 't', 'y', 'p', 'e'}
	typ := []byte{0xac, 'Q', 'U', 'E', 'R', 'Y', '_', 'U', 'P', 'D', 'A', 'T', 'E'}
	payloadKey := []byte{0xa7, 'p', 'a', 'y', 'l', 'o', 'a', 'd'}
	for name, in := range map[string][]byte{
		"type key":      cat([]byte{0x81}, str32),
		"type":          cat([]byte{0x82}, typeKey, str32),
		"payload key":   cat([]byte{0x82}, typeKey, typ, str32),
		"payload field": cat([]byte{0x82}, typeKey, typ, payloadKey, []byte{0x82}, str32),
		"payload value": cat([]byte{0x82}, typeKey, typ, payloadKey, []byte{0x82, 0xa7, 'q', 'u', 'e', 'r', 'y', 'I', 'd'}, str32),
	} {
		const runs = 20
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for i := 0; i < runs; i++ {
			droppedHead(in)
		}
		runtime.ReadMemStats(&after)
		if per := (after.TotalAlloc - before.TotalAlloc) / runs; per > 64<<10 {
			t.Errorf("%s: droppedHead of %d bytes allocated %d bytes", name, len(in), per)
		}
	}
}

// droppedHead reads untrusted bytes (the start of a frame over
// MaxReadBytes): it must not panic, whatever they are.
func FuzzDroppedHead(f *testing.F) {
	b, _ := wire.Encode(&wire.SyncRespLeaf{MapName: "m", Path: "1"})
	f.Add(b)
	f.Add([]byte{0x81, 0xa4, 't', 'y', 'p', 'e', 0xdb, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = droppedHead(b)
	})
}

// FuzzReadFrame: the client's read path (readFrame: a server's frame
// decoded under the read limits, else droppedHead of it) must not panic,
// whatever the frame; a frame it delivers was counted within
// MaxReadDecodedBytes, and one it drops says why.
//
//	go test ./client -run '^$' -fuzz FuzzReadFrame -fuzztime 60s
func FuzzReadFrame(f *testing.F) {
	for _, m := range []wire.Message{
		&wire.ServerBatchEvent{Events: []wire.ServerEvent{{MapName: "m", EventType: wire.EventPut, Key: "k",
			Record: &wire.LWWRecord{Value: emptyMaps(3), Timestamp: wire.Timestamp{Millis: 1, NodeID: "s"}}}}},
		&wire.QueryResp{QueryID: "q", Results: []wire.QueryResult{{Key: "k", Value: map[string]any{"a": int64(1)}}}},
		&wire.SyncRespLeaf{MapName: "m", Path: "1", Records: []wire.LeafRecord{{Key: "k", Record: wire.LWWRecord{Value: "v"}}}},
		&wire.SyncRespBuckets{MapName: "m", Path: "", Buckets: map[string]uint32{"0": 1, "a": 2}},
	} {
		b, err := wire.Encode(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(hostileBatch(f, "m", 100, 100)) // over the bound below
	o := DefaultOptions()
	o.MaxReadBytes = 1 << 20
	o.MaxReadDecodedBytes = 64 << 10
	l := o.readLimits()
	f.Fuzz(func(t *testing.T, b []byte) {
		m, lost := readFrame(l, b)
		switch {
		case (m == nil) == (lost == nil):
			t.Fatalf("readFrame = %v, %v: want a message or a dropped frame", m, lost)
		case lost != nil && lost.err == nil:
			t.Fatalf("dropped %q without a reason", lost.typ)
		case m != nil:
			if _, size, err := l.DecodeSize(b); err != nil || size > l.MaxDecodedBytes {
				t.Fatalf("delivered a frame counted %d bytes (err %v), over %d", size, err, l.MaxDecodedBytes)
			}
		}
	})
}
