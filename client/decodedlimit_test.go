package client

import (
	"context"
	"errors"
	"testing"
	"time"
)

// smallInts is a value of n one-byte integers: n bytes on the wire, about
// 96·n once the server decodes it (wire.Limits.MaxDecodedBytes counts it so).
func smallInts(n int) []any {
	v := make([]any, n)
	for i := range v {
		v[i] = int64(i % 100)
	}
	return v
}

// The server refuses a message whose decoded form would take more than
// 32 × its frame limit (ERROR 413, which names no op), as it refuses a
// frame over the limit. Writes that each fit must still be acknowledged
// when together they would pass it: the client splits them as it splits
// a batch over the frame limit. Before, the batch was sent whole, refused,
// and its ops waited for an ack until ctx ended (and were replayed, and
// refused, after every reconnect).
func TestBatch_splitsAtTheServersDecodedLimit(t *testing.T) {
	t.Parallel()
	c := dial(t, realServer(t), testOptions(t))
	ops := make([]Op, 10)
	for i := range ops {
		// 100,000 bytes each, 1 MB in all: under the 2 MiB frame limit;
		// about 80 MB decoded in all, over the 64 MiB decoded limit.
		ops[i] = Op{Map: "m", Key: "k" + string(rune('a'+i)), Value: smallInts(100_000)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.Batch(ctx, ops...); err != nil {
		t.Fatalf("Batch of writes that each fit the server's limits = %v", err)
	}
	if n := c.Pending(); n != 0 {
		t.Errorf("Pending = %d, want 0", n)
	}
}

// A single write whose decoded form the server would refuse can never be
// sent: Put fails with an error at once, as for a write over the frame
// limit, rather than waiting for an ack that never comes, and the write is
// not kept to be replayed forever.
func TestPut_overTheServersDecodedLimitFails(t *testing.T) {
	t.Parallel()
	c := dial(t, realServer(t), testOptions(t))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// 1 MB on the wire, about 80 MB decoded.
	err := c.Put(ctx, "m", "big", smallInts(1_000_000))
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Put of a value over the server's decoded limit = %v, want an error at once", err)
	}
	if n := c.Pending(); n != 0 {
		t.Errorf("Pending = %d, want 0", n)
	}
	if err := c.Put(ctxT(t), "m", "small", 1); err != nil {
		t.Fatalf("Put after the refused write: %v", err)
	}
}
