package client

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A NodeID that is not valid UTF-8 is in the timestamp of every op (and in
// the tag of every OR add made without one): the server cannot decode a
// single write and answers an ERROR naming no op, so nothing written is
// ever acknowledged and the replay after a reconnect stays stuck. The
// client refuses such a NodeID, as it refuses one with ':'.
func TestOptions_Validate_nodeIDNotUTF8(t *testing.T) {
	t.Parallel()
	o := testOptions(t)
	o.NodeID = "node\xff"
	if err := o.Validate(); err == nil {
		t.Error("Validate accepted a NodeID that is not valid UTF-8")
	}
	c, err := Dial(ctxT(t), realServer(t), o)
	if err != nil {
		return // refused at once
	}
	t.Cleanup(func() { _ = c.Close() })
	// Bounded: with such a NodeID the write waits for an ack that never
	// comes.
	ctx, cancel := context.WithTimeout(ctxT(t), time.Second)
	defer cancel()
	if err := c.Put(ctx, "docs", "k", "v"); errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Put with NodeID %q: %v; the server could not decode it", o.NodeID, err)
	}
}
