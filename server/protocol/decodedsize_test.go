package protocol

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/topgun-go/topgun/server/wire"
)

// nilsBatch is an OP_BATCH of one op whose value is an array of n nils:
// n bytes on the wire, about 96·n bytes once decoded and converted to
// record values.
func nilsBatch(t *testing.T, id string, n int) []byte {
	t.Helper()
	return mustEncode(t, &wire.OpBatch{Ops: []wire.ClientOp{putOp(id, "m", "k"+id, make([]any, n), cts("c"))}})
}

// An authenticated client's frame under MaxMessageBytes whose decoded form
// would pass 32 × MaxMessageBytes (2M nils: ~190 MiB) gets ERROR 413
// naming the limit, is not applied, and the connection stays open, as for
// a frame over MaxMessageBytes; it says which setting raises the limit.
// The same body over POST /sync gets 413.
func TestWrite_decodedSizeLimitKeepsConnection(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	c := e.dial(t)
	raw := nilsBatch(t, "1", 2_000_000)
	if len(raw) > DefaultMaxMessageBytes {
		t.Fatalf("frame of %d bytes is over MaxMessageBytes", len(raw))
	}
	c.sendRaw(raw)
	m := expect[*wire.ErrorMessage](c)
	if m.Code != 413 || !strings.Contains(m.Message, "raise TOPGUN_MAX_MESSAGE_BYTES") || !strings.Contains(m.Message, strconv.Itoa(32*DefaultMaxMessageBytes)) {
		t.Fatalf("ERROR = %+v, want 413 naming the decoded-size limit", m)
	}
	c.ping()
	c.write(putOp("2", "m", "small", "y", cts("c")))
	if _, _, ok := e.getLWW("m", "k1"); ok {
		t.Fatal("the refused write was applied")
	}

	body, err := wire.EncodeHTTPSyncRequest(&wire.HTTPSyncRequest{ClientID: "c", ClientHLC: cts("c"),
		Operations: []wire.ClientOp{putOp("3", "m", "k3", make([]any, 2_000_000), cts("c"))}})
	if err != nil {
		t.Fatal(err)
	}
	if code, out := e.postRaw(t, body, ""); code != 413 || !strings.Contains(string(out), "raise TOPGUN_MAX_MESSAGE_BYTES") {
		t.Fatalf("POST /sync = %d %s, want 413 naming the limit", code, out)
	}
	if _, _, ok := e.getLWW("m", "k3"); ok {
		t.Fatal("the refused POST /sync write was applied")
	}
}

// While the store is slow, the writes a connection queues are bounded by
// their decoded size, not by their frames' bytes: frames of 4,000 nils
// (4 KB each, ~390 KB decoded) must not pile up to writeQueueFrames ×
// MaxMessageBytes of frames (128 of them, ~48 MiB decoded). Nothing is
// lost: every write is acknowledged once the store catches up.
func TestConn_writeQueueBoundInDecodedSize(t *testing.T) {
	t.Parallel()
	const maxMsg = 64 << 10
	e := newEnv(t, envConfig{opts: Options{MaxMessageBytes: maxMsg}})
	const batches = 40
	frames := make([][]byte, batches)
	for i := range frames {
		frames[i] = nilsBatch(t, itoa(i+1), 4000)
	}
	_, size, err := wire.DefaultLimits().DecodeSize(frames[0])
	if err != nil {
		t.Fatal(err)
	}
	limit := writeQueueFrames * maxMsg
	if size <= limit/2 || len(frames[0])*batches > limit {
		t.Fatalf("decoded size %d, frame %d bytes: the test needs frames small and decoded sizes large", size, len(frames[0]))
	}
	heldWrites(t, e, frames, func(int, int) bool { return true }, func(q, jobs int) string {
		if q > limit && jobs > 1 {
			return fmt.Sprintf("%d jobs of %d decoded bytes queued, over the bound of %d", jobs, q, limit)
		}
		return ""
	})
}
