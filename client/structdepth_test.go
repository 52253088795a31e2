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

// dagNode is a value whose two fields point to the same child: written
// out, it has 2^depth leaves.
type dagNode struct {
	L, R *dagNode
	V    int
}

func dag(depth int) *dagNode {
	n := &dagNode{V: 1}
	for range depth {
		n = &dagNode{L: n, R: n}
	}
	return n
}

// sliceDAG is dag's shape made of slices: each level holds the one below
// twice.
func sliceDAG(depth int) any {
	var v any = 1
	for range depth {
		v = []any{v, v}
	}
	return v
}

// A value whose parts are shared (a DAG 40 levels deep) was encoded in
// time exponential in its depth (2^40 parts written out): the write never
// returned. It is refused as over the frame limit once it has more parts
// than the frame has bytes.
func TestBatch_valueOfSharedPartsOverTheFrameLimitIsRefused(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, "")
	c := dial(t, fs.URL, testOptions(t))
	for name, v := range map[string]any{"structs": dag(40), "slices": sliceDAG(40)} {
		err := c.Put(ctxT(t), "docs", name, v)
		if !errors.Is(err, wire.ErrTooLarge) {
			t.Errorf("Put of %s shared 40 levels deep = %v, want wire.ErrTooLarge", name, err)
		}
	}
	if n := c.Pending(); n != 0 {
		t.Errorf("%d writes still queued", n)
	}
	// A small one of the same shape goes.
	if err := c.Put(ctxT(t), "docs", "small", dag(8)); err != nil {
		t.Fatalf("Put of a DAG 8 levels deep: %v", err)
	}
}
