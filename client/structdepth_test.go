package client

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/topgun-go/topgun/server/wire"
)

// listNode is a user type a value may be built of: the msgpack library
// writes it as a map holding the next node.
type listNode struct {
	V    int       `msgpack:"v"`
	Next *listNode `msgpack:"next,omitempty"`
}

func linkedList(n int) *listNode {
	var l *listNode
	for i := range n {
		l = &listNode{V: i, Next: l}
	}
	return l
}

// A value of Go structs nested past what the server decodes in an
// OP_BATCH is refused at once, as one of maps and slices is: sent, it
// would wait for an ack forever and, replayed in one OP_BATCH with the
// other writes, keep those from being acknowledged too.
func TestBatch_structValueTooDeepForTheServerIsRefused(t *testing.T) {
	t.Parallel()
	proxy, url := newCutProxy(t, realServer(t))
	c := dial(t, url, testOptions(t))
	// Bounded: without the check the write waits for an ack that never
	// comes, and stays queued.
	ctx, cancel := context.WithTimeout(ctxT(t), time.Second)
	err := c.Put(ctx, "docs", "list", linkedList(wire.DefaultMaxDepth))
	cancel()
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Put of structs nested %d deep = %v, want it refused", wire.DefaultMaxDepth, err)
	}
	if n := c.Pending(); n != 0 {
		t.Errorf("%d writes still queued", n)
	}
	// A shallow one goes, and the replay after a cut carries a good
	// write through.
	if err := c.Put(ctxT(t), "docs", "short", linkedList(3)); err != nil {
		t.Fatalf("Put of a short list: %v", err)
	}
	proxy.cut()
	if err := c.Put(ctxT(t), "docs", "k", "v"); err != nil {
		t.Fatalf("Put after the cut: %v", err)
	}
}
