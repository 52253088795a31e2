package wire

import (
	"bytes"
	"testing"
)

// answerWithArray is a message of type typ whose payload holds the fields
// pre and then field, an array of count elements, each the bytes elem.
func answerWithArray(typ string, pre kv, field string) func(testing.TB, int, []byte) []byte {
	return func(t testing.TB, count int, elem []byte) []byte {
		t.Helper()
		p := append(append(kv{}, pre...), field, rawVal{0xdd, byte(count >> 24), byte(count >> 16), byte(count >> 8), byte(count)})
		return append(frame(t, "type", typ, "payload", p), bytes.Repeat(elem, count)...)
	}
}

// bucketsWithKeys is a SYNC_RESP_BUCKETS whose bucket map holds count
// distinct keys (elem is unused).
func bucketsWithKeys(t testing.TB, count int, _ []byte) []byte {
	t.Helper()
	head := frame(t, "type", "SYNC_RESP_BUCKETS", "payload", kv{"mapName", "m", "path", "",
		"buckets", rawVal{0xdf, byte(count >> 24), byte(count >> 16), byte(count >> 8), byte(count)}})
	for i := range count {
		head = append(head, 0xa4, byte('A'+i>>18&63), byte('A'+i>>12&63), byte('A'+i>>6&63), byte('A'+i&63), 0x00)
	}
	return head
}

// TestLimits_realHeapWithinDecodedSizeAnswers: what a client decodes of a
// server's answers is bounded by the count as much as what a server
// decodes: the results of a QUERY_RESP, the events of a
// SERVER_BATCH_EVENT and their records, the records of a SYNC_RESP_LEAF,
// the results of an OP_ACK and a bucket map each take their size once
// decoded, a few bytes on the wire. Uncounted, a frame of empty results
// took 5 times its size while it counted nothing, and a client decoding a
// server's frames under Limits.MaxDecodedBytes could be made to hold any
// multiple of that bound.
func TestLimits_realHeapWithinDecodedSizeAnswers(t *testing.T) {
	// Not parallel: it measures the live heap.
	const limit = 4 << 20
	l := DefaultLimits()
	l.MaxDecodedBytes = limit
	l.MaxMessageBytes = limit
	event := frame(t, "mapName", "", "eventType", "PUT", "key", "")
	withRecord := frame(t, "mapName", "", "eventType", "PUT", "key", "", "record", kv{"timestamp", kv{"millis", 0, "counter", 0, "nodeId", ""}})
	withOR := frame(t, "mapName", "", "eventType", "OR_ADD", "key", "", "orRecord", kv{"timestamp", kv{"millis", 0, "counter", 0, "nodeId", ""}, "tag", ""})
	cases := []struct {
		name  string
		elem  []byte
		build func(testing.TB, int, []byte) []byte
	}{
		{"QUERY_RESP of empty results", []byte{0x81, 0xa3, 'k', 'e', 'y', 0xa0},
			answerWithArray("QUERY_RESP", kv{"queryId", "q"}, "results")},
		{"SERVER_BATCH_EVENT of events", event, answerWithArray("SERVER_BATCH_EVENT", kv{}, "events")},
		{"SERVER_BATCH_EVENT of events with records", withRecord, answerWithArray("SERVER_BATCH_EVENT", kv{}, "events")},
		{"SERVER_BATCH_EVENT of events with OR records", withOR, answerWithArray("SERVER_BATCH_EVENT", kv{}, "events")},
		{"SYNC_RESP_LEAF of records", frame(t, "key", "", "record", kv{"timestamp", kv{"millis", 0, "counter", 0, "nodeId", ""}}),
			answerWithArray("SYNC_RESP_LEAF", kv{"mapName", "m", "path", "0"}, "records")},
		{"OP_ACK of results", frame(t, "opId", "", "success", true, "achievedLevel", "MEMORY"),
			answerWithArray("OP_ACK", kv{"lastId", "1"}, "results")},
		{"SYNC_RESP_BUCKETS of 4-byte keys", []byte{0, 0, 0, 0, 0, 0}, bucketsWithKeys},
	}
	for _, tc := range cases {
		n := mostThatFit(t, l, limit, tc.name, tc.elem, tc.build)
		size, got := decodedHeap(t, l, tc.name, n, tc.build(t, n, tc.elem), func(m Message) any { return m })
		over := size / 33
		if raceEnabled {
			// Short keys take 16 bytes each (see raceEnabled): bucket
			// maps of 4-byte keys measure 1.20-1.27, the median of five
			// maps varying with their hash seeds (how their tables
			// split); at size/4 one run in five failed.
			over = size / 3
		}
		if got > uint64(size+over) {
			t.Errorf("%s: a message counted %d KiB of %d KiB allowed takes %d KiB decoded",
				tc.name, size>>10, limit>>10, got>>10)
		}
	}
}
