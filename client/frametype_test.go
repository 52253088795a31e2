package client

import (
	"testing"

	"github.com/topgun-go/topgun/server/wire"
)

// frameType reads the type of every message the server encodes, from a
// prefix of its frame.
func TestFrameType(t *testing.T) {
	t.Parallel()
	for _, m := range []wire.Message{
		&wire.ORMapDiffResponse{MapName: "m", Entries: []wire.ORMapEntry{{Key: "k", Records: []wire.ORMapRecord{}, Tombstones: []string{}}}},
		&wire.ErrorMessage{Code: 400, Message: "x"},
		&wire.Pong{Timestamp: 1},
	} {
		b, err := wire.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		if got := frameType(b[:min(len(b), 30)]); got != m.Type() {
			t.Errorf("frameType(%s) = %q", m.Type(), got)
		}
	}
}

// frameType reads untrusted bytes (the start of a frame over
// MaxReadBytes): it must not panic, whatever they are.
func FuzzFrameType(f *testing.F) {
	b, _ := wire.Encode(&wire.ORMapDiffResponse{MapName: "m"})
	f.Add(b)
	f.Add([]byte{0x81, 0xa4, 't', 'y', 'p', 'e', 0xdb, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = frameType(b)
		_, _, _ = syncFrameTarget(b, true)
	})
}

// syncFrameTarget reads the map and path of a sync reply from a prefix of
// its frame, which ends inside its records.
func TestSyncFrameTarget(t *testing.T) {
	t.Parallel()
	leaf := &wire.SyncRespLeaf{MapName: "docs", Path: "0af", Records: []wire.LeafRecord{{Key: "k", Record: wire.LWWRecord{Value: "v"}}}}
	root := &wire.SyncRespRoot{MapName: "docs", RootHash: 7}
	for _, tc := range []struct {
		m        wire.Message
		wantPath bool
		path     string
	}{{leaf, true, "0af"}, {&wire.SyncRespBuckets{MapName: "docs", Path: "0", Buckets: map[string]uint32{"1": 2}}, true, "0"}, {root, false, ""}} {
		b, err := wire.Encode(tc.m)
		if err != nil {
			t.Fatal(err)
		}
		m, p, ok := syncFrameTarget(b[:min(len(b), 60)], tc.wantPath)
		if !ok || m != "docs" || p != tc.path {
			t.Errorf("syncFrameTarget(%s) = %q %q %v", tc.m.Type(), m, p, ok)
		}
	}
	if _, _, ok := syncFrameTarget([]byte{0x82, 0xa4, 't', 'y', 'p', 'e'}, true); ok {
		t.Error("a truncated frame gave a target")
	}
}
