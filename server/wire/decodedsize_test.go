package wire

import (
	"bytes"
	"errors"
	"math"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/topgun-go/topgun/server/record"
)

// opBatchWithValue is an OP_BATCH of one op whose record value is an array
// of count elements, each the bytes elem: the value comes last in the
// frame, so its elements can be appended raw.
func opBatchWithValue(t testing.TB, count int, elem []byte) []byte {
	t.Helper()
	head := frame(t, "type", "OP_BATCH", "payload", kv{"ops", []any{kv{"id", "1", "mapName", "m", "key", "k",
		"record", kv{"timestamp", kv{"millis", 1, "counter", 0, "nodeId", "n"},
			"value", rawVal{0xdd, byte(count >> 24), byte(count >> 16), byte(count >> 8), byte(count)}}}}})
	return append(head, bytes.Repeat(elem, count)...)
}

// allocated is what fn allocates (the heap's TotalAlloc), which counts
// garbage too: a slice grown by append counts every copy.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestLimits_decodedSizeIsBounded: a frame under MaxMessageBytes whose
// elements are one byte each (nils, empty maps, arrays or strings, nested
// arrays) stands for a hundred times its size once decoded and converted
// to record values (each element an 80-byte record.Value). An
// authenticated client could make the server hold gigabytes with a few
// such frames. Decode must refuse them with ErrDecodedTooLarge (a kind of
// ErrTooLarge), having allocated no more than MaxDecodedBytes besides the
// error naming the refused field (about 2 KiB), made once it is refused.
func TestLimits_decodedSizeIsBounded(t *testing.T) {
	// Not parallel: it measures the heap's TotalAlloc.
	n := DefaultMaxMessageBytes - 256
	cases := []struct {
		name string
		raw  []byte
	}{
		{"2M nils", opBatchWithValue(t, n, []byte{0xc0})},
		{"2M empty maps", opBatchWithValue(t, n, []byte{0x80})},
		{"2M empty arrays", opBatchWithValue(t, n, []byte{0x90})},
		{"2M empty strings", opBatchWithValue(t, n, []byte{0xa0})},
		{"500k arrays of arrays of nil", opBatchWithValue(t, n/4, []byte{0x91, 0x91, 0x91, 0xc0})},
		{"1M maps of one nil", opBatchWithValue(t, n/3, []byte{0x81, 0xa0, 0xc0})},
		// Refused midway (each inner array is charged when reached): the
		// maps it sorted before allocated more, uncounted.
		{"arrays of 15 unsorted maps", opBatchWithValue(t, n/106, append([]byte{0x9f},
			bytes.Repeat([]byte{0x82, 0xa1, 'b', 0x01, 0xa1, 'a', 0x01}, 15)...))},
		{"map of 1M entries", append(frame(t, "type", "QUERY_UPDATE", "payload",
			kv{"queryId", "q", "key", "k", "changeType", "ENTER", "value", rawVal{0xdf, 0, byte(n / 2 >> 16), byte(n / 2 >> 8), byte(n / 2)}}),
			bytes.Repeat([]byte{0x01, 0xc0}, n/2)...)},
	}
	limit := uint64(DecodedBytesPerMessageByte * DefaultMaxMessageBytes)
	for _, tc := range cases {
		if len(tc.raw) > DefaultMaxMessageBytes {
			t.Fatalf("%s: frame of %d bytes is over the limit", tc.name, len(tc.raw))
		}
		// The least of three runs: the runtime's own allocations (a GC
		// starting its workers under load) once added 5 KiB to one, while
		// what decoding allocates is the same each time.
		var err error
		got := uint64(math.MaxUint64)
		for range 3 {
			got = min(got, allocated(func() { _, err = Decode(tc.raw) }))
		}
		t.Logf("%s: %d KiB allocated, err %v", tc.name, got>>10, err)
		if got > limit+4<<10 {
			t.Errorf("%s: decoding a frame of %d KiB allocated %d MiB, over the %d MiB of MaxDecodedBytes",
				tc.name, len(tc.raw)>>10, got>>20, limit>>20)
		}
		if !errors.Is(err, ErrDecodedTooLarge) || !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: err = %v, want ErrDecodedTooLarge", tc.name, err)
		} else if !strings.Contains(err.Error(), "MaxDecodedBytes") {
			t.Errorf("%s: error %q does not name the limit", tc.name, err)
		}
	}
}

// TestLimits_MaxDecodedBytes: the limit is what the package doc says a
// value costs (80 bytes a nil in a record), it applies to POST /sync bodies too, and
// DecodeSize reports what it counted.
func TestLimits_MaxDecodedBytes(t *testing.T) {
	t.Parallel()
	l := DefaultLimits()
	l.MaxDecodedBytes = 1 << 20
	// A nil in a client's record value is its record.Value; the ClientOp,
	// its strings and the array's last page take the rest.
	fits := (1<<20)/costRecValue - 200
	if _, size, err := l.DecodeSize(opBatchWithValue(t, fits, []byte{0xc0})); err != nil || size <= fits*costRecValue || size > 1<<20 {
		t.Fatalf("%d nils under a limit of 1 MiB: size %d, err %v", fits, size, err)
	}
	if _, err := l.Decode(opBatchWithValue(t, (1<<20)/costRecValue+1, []byte{0xc0})); !errors.Is(err, ErrDecodedTooLarge) {
		t.Fatalf("nils over a limit of 1 MiB: err = %v, want ErrDecodedTooLarge", err)
	}
	values := make([]any, 20000)
	body, err := EncodeHTTPSyncRequest(&HTTPSyncRequest{ClientID: "c", Operations: []ClientOp{{MapName: "m", Key: "k",
		Record: &LWWRecord{Value: values}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.DecodeHTTPSyncRequest(body); !errors.Is(err, ErrDecodedTooLarge) {
		t.Fatalf("POST /sync body over the limit: err = %v, want ErrDecodedTooLarge", err)
	}
	if _, err := DecodeHTTPSyncRequest(body); err != nil {
		t.Fatalf("the same body under the default limit: %v", err)
	}
	// Zero means DecodedBytesPerMessageByte × MaxMessageBytes.
	small := Limits{MaxMessageBytes: 64 << 10, MaxDepth: DefaultMaxDepth, MaxBatchItems: 1}
	over := DecodedBytesPerMessageByte * small.MaxMessageBytes / costRecValue
	if _, err := small.Decode(opBatchWithValue(t, over-200, []byte{0xc0})); err != nil {
		t.Fatalf("%d nils under %d × MaxMessageBytes: %v", over-200, DecodedBytesPerMessageByte, err)
	}
	if _, err := small.Decode(opBatchWithValue(t, over+1, []byte{0xc0})); !errors.Is(err, ErrDecodedTooLarge) {
		t.Fatalf("%d nils over %d × MaxMessageBytes: err = %v, want ErrDecodedTooLarge", over+1, DecodedBytesPerMessageByte, err)
	}
	if err := (Limits{MaxMessageBytes: 1 << 20, MaxDepth: 8, MaxBatchItems: 1, MaxDecodedBytes: -1}).Validate(); err == nil {
		t.Fatal("Validate accepted a negative MaxDecodedBytes")
	}
}

// TestLimits_realisticLargeMessageDecodes: a full-size OP_BATCH of
// ordinary records (1000 ops of 1 KB values, and 10,000 small documents)
// decodes under the default limits, and the decoded size DecodeSize reports
// is of the order of what decoding it really allocates.
func TestLimits_realisticLargeMessageDecodes(t *testing.T) {
	// Not parallel: it measures the heap's TotalAlloc.
	mk := func(n int, value func(i int) any) []byte {
		ops := make([]ClientOp, n)
		for i := range ops {
			ops[i] = ClientOp{ID: itoa(i + 1), MapName: "todos", Key: "item-" + itoa(i), OpType: "PUT",
				Record: &LWWRecord{Value: value(i), Timestamp: Timestamp{Millis: 1700000000000 + uint64(i), NodeID: "client-abc"}}}
		}
		raw, err := Encode(&OpBatch{Ops: ops})
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	cases := map[string][]byte{
		"1000 ops of 1 KB": mk(1000, func(i int) any {
			return map[string]any{"title": strings.Repeat("x", 1000), "done": i%2 == 0, "n": int64(i)}
		}),
		"10000 small documents": mk(10000, func(i int) any {
			return map[string]any{"title": "buy milk", "done": false, "tags": []any{"a", "b"}, "n": int64(i)}
		}),
	}
	for name, raw := range cases {
		if len(raw) > DefaultMaxMessageBytes {
			t.Fatalf("%s: frame of %d bytes is over the limit", name, len(raw))
		}
		var m Message
		var size int
		var err error
		got := allocated(func() { m, size, err = DefaultLimits().DecodeSize(raw) })
		if err != nil {
			t.Fatalf("%s (%d KiB): %v", name, len(raw)>>10, err)
		}
		if len(m.(*OpBatch).Ops) == 0 {
			t.Fatalf("%s: no ops", name)
		}
		// The size counts the record values the server makes too, so it
		// is above what Decode allocates, but of the same order.
		if uint64(size) < got/2 || uint64(size) > 8*got {
			t.Errorf("%s: decoded size %d, but decoding allocated %d", name, size, got)
		}
	}
}

// decodedHeap decodes raw (a message of n elements of the case name) with
// l and returns its counted size and the heap that keep(message) retains
// (see retained), logging both.
func decodedHeap(t *testing.T, l Limits, name string, n int, raw []byte, keep func(Message) any) (size int, got uint64) {
	t.Helper()
	var err error
	got = retained(t, func() any {
		var m Message
		m, size, err = l.DecodeSize(raw)
		if err != nil {
			return nil
		}
		return keep(m)
	})
	runtime.KeepAlive(raw) // else its freeing is subtracted
	if err != nil {
		t.Fatalf("%s: %d elements: %v", name, n, err)
	}
	t.Logf("%s: %d elements, %d KiB frame, counted %d KiB, heap %d KiB (%.2f of the count)",
		name, n, len(raw)>>10, size>>10, got>>10, float64(got)/float64(size))
	return size, got
}

// retained is the live heap held by what fn returns (HeapAlloc after GC).
// HeapAlloc is the whole process's: memory another goroutine holds at the
// second collection counts too, and memory it frees in between counts
// against fn. So fn runs several times, each time from a heap collected
// twice (the second collection frees what sync.Pools still held), and the
// median growth is taken, which such a goroutine moves only by holding or
// freeing memory at most of the measurements.
func retained(t testing.TB, fn func() any) uint64 {
	t.Helper()
	grew := make([]int64, 5)
	for i := range grew {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&before)
		kept := fn()
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(kept)
		grew[i] = int64(after.HeapAlloc) - int64(before.HeapAlloc)
	}
	slices.Sort(grew)
	median := grew[len(grew)/2]
	if median < 0 {
		t.Fatalf("the live heap shrank while measured: %v bytes", grew)
	}
	return uint64(median)
}

// mapOfNils is a MsgPack map of n entries, two-byte keys, nil values.
func mapOfNils(n int) []byte {
	b := []byte{0xde, byte(n >> 8), byte(n)}
	for i := range n {
		b = append(b, 0xa2, byte('A'+i/64), byte('A'+i%64), 0xc0)
	}
	return b
}

// TestLimits_longDisplayKeyNotMade: a map key that is not a string
// becomes its display string, which can be 35 times its bytes (a float64
// 1e308 displays as 309 digits): a 2 MiB key of them displays in 72 MB.
// Decode must refuse it over MaxDecodedBytes without making it (it was
// made, then counted: 675 MiB allocated under a 1 MiB limit).
func TestLimits_longDisplayKeyNotMade(t *testing.T) {
	// Not parallel: it measures the heap's TotalAlloc.
	l := DefaultLimits()
	l.MaxDecodedBytes = 1 << 20
	n := (DefaultMaxMessageBytes - 300) / 9
	key := []byte{0xdd, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
	for range n {
		key = append(key, 0xcb, 0x7f, 0xe1, 0xcc, 0xf3, 0x85, 0xeb, 0xc8, 0xa0) // 1e308
	}
	raw := opBatchWithValue(t, 1, append(append([]byte{0x81}, key...), 0xc0))
	display := n * 311
	var err error
	got := allocated(func() { _, err = l.Decode(raw) })
	t.Logf("a %d KiB key displaying in %d MiB: %d MiB allocated, err %v", len(key)>>10, display>>20, got>>20, err)
	if !errors.Is(err, ErrDecodedTooLarge) {
		t.Fatalf("err = %v, want ErrDecodedTooLarge", err)
	}
	if got >= uint64(display) {
		t.Errorf("refusing the key allocated %d MiB, more than its %d MiB display string", got>>20, display>>20)
	}
}

// TestLimits_displayKeyPastTheLimitNotMade: the display string of a
// non-string map key is refused, not made, when it would pass what is
// left of MaxDecodedBytes, even when one part of it passes at once: a
// string that is not valid UTF-8 displays as a list of its bytes, up to 5
// times its length ("255, " each). Measured against the limit by its
// length, a key of one such string of 900 KiB was made (4.5 MiB, besides a
// string per byte in each pass), then counted and refused, under a 1 MiB
// limit.
func TestLimits_displayKeyPastTheLimitNotMade(t *testing.T) {
	// Not parallel: it measures the heap's TotalAlloc.
	l := DefaultLimits()
	l.MaxDecodedBytes = 1 << 20
	n := 900 << 10
	key := append([]byte{0x91, 0xdb, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}, bytes.Repeat([]byte{0xff}, n)...)
	raw := opBatchWithValue(t, 1, append(append([]byte{0x81}, key...), 0xc0))
	var err error
	got := uint64(math.MaxUint64)
	for range 3 {
		got = min(got, allocated(func() { _, err = l.Decode(raw) }))
	}
	t.Logf("%d KiB allocated, err %v", got>>10, err)
	if !errors.Is(err, ErrDecodedTooLarge) {
		t.Fatalf("err = %v, want ErrDecodedTooLarge", err)
	}
	if limit := uint64(l.MaxDecodedBytes); got > limit+4<<10 {
		t.Errorf("refusing the key allocated %d KiB, over the %d KiB of MaxDecodedBytes", got>>10, limit>>10)
	}
}

// mapOfLongKeys is a map of n nils under distinct keys of keyLen bytes.
func mapOfLongKeys(n, keyLen int) []byte {
	b := []byte{0x80 | byte(n)}
	for i := range n {
		k := bytes.Repeat([]byte{'k'}, keyLen)
		k[0] = byte('A' + i)
		b = append(b, 0xd9, byte(keyLen))
		b = append(append(b, k...), 0xc0)
	}
	return b
}

// TestLimits_realHeapWithinDecodedSize: for the shapes that take the most
// memory for their count, a message that just fits MaxDecodedBytes really
// holds the limit once decoded and converted to record values (as the
// server holds a write), within 3% either way. The count follows the
// allocator: counted by their length, arrays of 410 record values took
// 1.25 times the limit (rounded up to whole 8 KiB pages), maps of 16
// 1.11 times (the header of an object over 512 bytes), maps of 33-byte
// keys 1.10 times (each key rounded up to its size class, 48 bytes),
// strings of 9 bytes 1.08 times (each a 16-byte block of its own), maps
// of the key [nil × 60] 1.39 times (its display string in a builder of
// twice its length) and of the keys [] and -1 1.03 times (each sharing a
// 16-byte block with garbage).
func TestLimits_realHeapWithinDecodedSize(t *testing.T) {
	// Not parallel: it measures the live heap.
	const limit = 4 << 20
	l := DefaultLimits()
	l.MaxDecodedBytes = limit
	l.MaxMessageBytes = limit // strings take their length
	cases := []struct {
		name string
		elem []byte
	}{
		{"nils", []byte{0xc0}},
		{"empty maps", []byte{0x80}},
		{`{"a": 1}`, []byte{0x81, 0xa1, 'a', 0x01}},
		{"arrays of arrays of nil", []byte{0x91, 0x91, 0x91, 0xc0}},
		{"arrays of 13 nils", append([]byte{0x9d}, bytes.Repeat([]byte{0xc0}, 13)...)},
		{"arrays of 410 nils", append([]byte{0xdc, 410 >> 8, 410 & 0xff}, bytes.Repeat([]byte{0xc0}, 410)...)},
		{"strings of 33 bytes", append([]byte{0xd9, 33}, bytes.Repeat([]byte{'x'}, 33)...)},
		{"binaries of 100 bytes", append([]byte{0xc4, 100}, bytes.Repeat([]byte{'x'}, 100)...)},
		{"maps of 9", mapOfNils(9)},
		{"maps of 16", mapOfNils(16)},
		{"maps of 29", mapOfNils(29)},
		{"maps of 57", mapOfNils(57)},
		{"maps of 113", mapOfNils(113)},
		{"maps of 1100", mapOfNils(1100)},
		{"maps of 4 keys of 33 bytes", mapOfLongKeys(4, 33)},
		{"maps of 1 key of 17 bytes", mapOfLongKeys(1, 17)},
		{"maps of 1 key of 33 bytes", mapOfLongKeys(1, 33)},
		{"strings of 9 bytes", append([]byte{0xa9}, bytes.Repeat([]byte{'x'}, 9)...)},
		{"maps of a 9-byte key to a 9-byte string", append(append([]byte{0x81, 0xa9}, bytes.Repeat([]byte{'k'}, 9)...),
			append([]byte{0xa9}, bytes.Repeat([]byte{'v'}, 9)...)...)},
		{"maps of the key -1", []byte{0x81, 0xff, 0xc0}},
		{"maps of the key []", []byte{0x81, 0x90, 0xc0}},
		{"maps of the key [nil × 60]", append(append([]byte{0x81, 0xdc, 0, 60}, bytes.Repeat([]byte{0xc0}, 60)...), 0xc0)},
	}
	for _, tc := range cases {
		n := mostThatFit(t, l, limit, tc.name, tc.elem, opBatchWithValue)
		size, got := decodedHeap(t, l, tc.name, n, opBatchWithValue(t, n, tc.elem), func(m Message) any {
			return []any{m, record.FromWire(m.(*OpBatch).Ops[0].Record.Value)}
		})
		over := size / 33
		if raceEnabled {
			over = size / 5 // short keys take 16 bytes each (see raceEnabled): maps measure 1.14
		}
		if got > uint64(size+over) || got < uint64(size-size/33) {
			t.Errorf("%s: a message counted %d KiB of %d KiB allowed takes %d KiB decoded and converted",
				tc.name, size>>10, limit>>10, got>>10)
		}
	}
}

// entryProcessWithValue is an ENTRY_PROCESS whose processor (a value
// other than a record's, decoded into the value model) is an array of
// count elements, each the bytes elem.
// mostThatFit is the most elements elem a message build makes of them may
// hold within l's decoded-size limit, found by bisection: the count does
// not grow by a fixed cost per element.
func mostThatFit(t *testing.T, l Limits, limit int, name string, elem []byte, build func(testing.TB, int, []byte) []byte) int {
	t.Helper()
	lo, hi := 0, (limit-256)/len(elem)
	if _, err := l.Decode(build(t, hi, elem)); !errors.Is(err, ErrDecodedTooLarge) {
		t.Fatalf("%s: a full frame of them is not refused: %v", name, err)
	}
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		_, err := l.Decode(build(t, mid, elem))
		switch {
		case err == nil:
			lo = mid
		case errors.Is(err, ErrDecodedTooLarge):
			hi = mid
		default:
			t.Fatalf("%s: %d elements: %v", name, mid, err)
		}
	}
	return lo
}

func entryProcessWithValue(t testing.TB, count int, elem []byte) []byte {
	t.Helper()
	head := frame(t, "type", "ENTRY_PROCESS", "requestId", "r", "mapName", "m", "key", "k",
		"processor", rawVal{0xdd, byte(count >> 24), byte(count >> 16), byte(count >> 8), byte(count)})
	return append(head, bytes.Repeat(elem, count)...)
}

// TestLimits_realHeapWithinDecodedSizeOtherValues: a value other than a
// write's record value (here an entry processor) counts its interfaces and
// the record values it may become; a message that just fits
// MaxDecodedBytes holds that once decoded and converted, at most 3% more
// and at most 10% less (maps and small objects are counted high). An
// array is allocated whole, rounded up by Go's allocator: counted by
// their length, arrays of 410 nils took 1.21 times the count (their
// record values, 32,800 bytes, take five 8 KiB pages), arrays of 13 and
// of 2049 nils 1.08 times.
func TestLimits_realHeapWithinDecodedSizeOtherValues(t *testing.T) {
	// Not parallel: it measures the live heap.
	const limit = 4 << 20
	l := DefaultLimits()
	l.MaxDecodedBytes = limit
	l.MaxMessageBytes = limit
	cases := []struct {
		name string
		elem []byte
	}{
		{"nils", []byte{0xc0}},
		{`{"a": 1}`, []byte{0x81, 0xa1, 'a', 0x01}},
		{"arrays of 13 nils", append([]byte{0x9d}, bytes.Repeat([]byte{0xc0}, 13)...)},
		{"arrays of 410 nils", append([]byte{0xdc, 410 >> 8, 410 & 0xff}, bytes.Repeat([]byte{0xc0}, 410)...)},
		{"arrays of 2049 nils", append([]byte{0xdc, 2049 >> 8, 2049 & 0xff}, bytes.Repeat([]byte{0xc0}, 2049)...)},
		{"maps of 16", mapOfNils(16)},
		{"maps of 342", mapOfNils(342)},
		// Strings, binaries and map keys take their size class: counted
		// by their length, 33 bytes took 48 (1.10, 1.16 and 1.05 times).
		{"strings of 33 bytes", append([]byte{0xd9, 33}, bytes.Repeat([]byte{'x'}, 33)...)},
		{"binaries of 33 bytes", append([]byte{0xc4, 33}, bytes.Repeat([]byte{'x'}, 33)...)},
		{"maps of 56 keys of 33 bytes", mapOfKeys(56, 33)},
	}
	for _, tc := range cases {
		lo := mostThatFit(t, l, limit, tc.name, tc.elem, entryProcessWithValue)
		size, got := decodedHeap(t, l, tc.name, lo, entryProcessWithValue(t, lo, tc.elem), func(m Message) any {
			return []any{m, record.FromWire(m.(*EntryProcess).Processor)}
		})
		over := size / 33
		if raceEnabled {
			over = size / 5 // short keys take 16 bytes each (see raceEnabled)
		}
		if got > uint64(size+over) || got < uint64(size-size/10) {
			t.Errorf("%s: a message counted %d KiB of %d KiB allowed takes %d KiB decoded and converted",
				tc.name, size>>10, limit>>10, got>>10)
		}
	}
}

// mapOfKeys is a MsgPack map of n (up to 4096) entries, distinct keys of
// keyLen (at least 2) bytes, nil values.
func mapOfKeys(n, keyLen int) []byte {
	b := []byte{0xde, byte(n >> 8), byte(n)}
	for i := range n {
		k := bytes.Repeat([]byte{'k'}, keyLen)
		k[0], k[1] = byte('A'+i/64), byte('A'+i%64)
		b = append(b, 0xd9, byte(keyLen))
		b = append(append(b, k...), 0xc0)
	}
	return b
}
