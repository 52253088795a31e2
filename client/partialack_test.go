package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/topgun-go/topgun/server/protocol"
	"github.com/topgun-go/topgun/server/wire"
)

// This project's server applies an OP_BATCH of more new ops than its
// TOPGUN_MAX_BATCH_OPS up to the limit and acknowledges up to the last op
// it applied, expecting the client to send the rest again (as TopGun's
// client does with every write). A Batch larger than the server's limit
// must still complete, with every op stored.
func TestBatch_partialAckFromServerLimitSendsTheRest(t *testing.T) {
	t.Parallel()
	url := realServerWith(t, func(o *protocol.Options) { o.MaxBatchOps = 3 })
	c := dial(t, url, testOptions(t))

	ops := make([]Op, 8)
	for i := range ops {
		ops[i] = Op{Map: "m", Key: fmt.Sprintf("k%d", i), Value: int64(i)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := c.Batch(ctx, ops...); err != nil {
		t.Fatalf("Batch of 8 ops against a server limit of 3: %v", err)
	}
	// Concurrent batches: each one's remainder is sent again on its own.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ops := make([]Op, 7)
			for i := range ops {
				ops[i] = Op{Map: "m", Key: fmt.Sprintf("g%d-%d", g, i), Value: int64(i)}
			}
			errs <- c.Batch(ctx, ops...)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent Batch: %v", err)
		}
	}
	if n := c.Pending(); n != 0 {
		t.Errorf("Pending = %d after the batches, want 0", n)
	}
	sub, err := c.Subscribe(ctxT(t), "m", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if want := len(ops) + 4*7; len(sub.Initial) != want {
		t.Errorf("server holds %d records, want %d", len(sub.Initial), want)
	}
}

// An OP_ACK acknowledges only writes sent on the connection: a write still
// queued (its caller gave up before it was sent) is not reported done by
// an ack naming a larger id, and is sent with the next write as promised.
func TestPut_ackNamingAnUnsentWriteDoesNotAcknowledgeIt(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, "")
	fs.setIntercept(func(c *fakeConn, m wire.Message) bool {
		if p, ok := m.(*wire.Ping); ok {
			// An ack for an id the server never received.
			fs.send(c, &wire.OpAck{LastID: "1", AchievedLevel: wire.Applied})
			fs.send(c, &wire.Pong{Timestamp: p.Timestamp})
			return true
		}
		return false
	})
	c := dial(t, fs.URL, testOptions(t))

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Put(ctx, "m", "queued", "v"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put with an ended ctx = %v, want Canceled", err)
	}
	if n := fs.count(wire.TypeClientOp) + fs.count(wire.TypeOpBatch); n != 0 {
		t.Fatalf("the write went out (%v); the test needs it queued", fs.seenTypes())
	}
	if _, err := c.Ping(ctxT(t)); err != nil { // the OP_ACK comes before the PONG
		t.Fatal(err)
	}
	if n := c.Pending(); n != 1 {
		t.Errorf("Pending = %d after an ack for a write never sent, want 1", n)
	}
	if err := c.Put(ctxT(t), "m", "next", "w"); err != nil {
		t.Fatal(err)
	}
	if r, ok := fs.record("m", "queued"); !ok || r.Value != "v" {
		t.Errorf("the queued write never reached the server (it saw %v)", fs.seenTypes())
	}
}
