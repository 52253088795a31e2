package wire

import (
	"bytes"
	"reflect"
	"testing"
)

func TestOmitAbsentORTTL(t *testing.T) {
	ttl := uint64(5000)
	ts := Timestamp{Millis: 1700000000000, Counter: 1, NodeID: "n"}
	noTTL := ORMapRecord{Value: "a", Timestamp: ts, Tag: "t1"}
	withTTL := ORMapRecord{Value: "b", Timestamp: ts, Tag: "t2", TTLMs: &ttl}
	entries := []ORMapEntry{{Key: "k", Records: []ORMapRecord{noTTL, withTTL}, Tombstones: []string{"t0"}}}
	epoch := uint64(3)
	for _, tc := range []struct {
		name      string
		m         Message
		wantTTLs  int // "ttlMs" keys in the output
		unchanged bool
	}{
		{"leaf", &ORMapSyncRespLeaf{MapName: "m", Path: "abc", Entries: entries, CoveringEpoch: &epoch}, 1, false},
		{"diff", &ORMapDiffResponse{MapName: "m", Entries: entries}, 1, false},
		{"or event", &ServerEvent{MapName: "m", EventType: EventORAdd, Key: "k", ORRecord: &noTTL, ORTag: "t1"}, 0, false},
		{"lww event", &ServerEvent{MapName: "m", EventType: EventPut, Key: "k", Record: &LWWRecord{Value: int64(1), Timestamp: ts}}, 1, true},
		{"other", &Ping{Timestamp: 1}, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := OmitAbsentORTTL(tc.m)
			if (w == tc.m) != tc.unchanged {
				t.Fatalf("wrapped = %v, want unchanged %v", w != tc.m, tc.unchanged)
			}
			b, err := Encode(w)
			if err != nil {
				t.Fatal(err)
			}
			if n := bytes.Count(b, []byte("ttlMs")); n != tc.wantTTLs {
				t.Fatalf("%d ttlMs fields, want %d", n, tc.wantTTLs)
			}
			back, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, tc.m) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", back, tc.m)
			}
		})
	}
}
