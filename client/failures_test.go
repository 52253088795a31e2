package client

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/server/wire"
)

// Writes made while disconnected are replayed after the next handshake.
// One of them that cannot be encoded fails on its own: it must not take
// the other queued writes down with it (they are at-least-once).
func TestReconnect_replayKeepsWritesQueuedWithAnUnencodableOne(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, "")
	c := dial(t, fs.URL, testOptions(t))

	fs.reject.Store(1 << 20) // refuse reconnects until told otherwise
	fs.dropAll()
	eventually(t, "the client to notice the drop", func() bool { return c.State() == StateDisconnected })

	// The caller of a good write gives up at once; the write stays queued.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Put(ctx, "m", "good", "v"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put(good) = %v, want Canceled", err)
	}
	badErr := make(chan error, 1)
	go func() { badErr <- c.Put(ctxT(t), "m", "bad", make(chan int)) }()
	eventually(t, "both writes to be queued", func() bool { return c.Pending() == 2 })

	fs.reject.Store(0)
	select {
	case err := <-badErr:
		if err == nil {
			t.Fatal("Put of an unencodable value succeeded")
		}
	case <-time.After(waitFor):
		t.Fatal("Put of an unencodable value still waiting after the reconnect")
	}
	// The replay went out before any new write: after this ack it is done.
	if err := c.Put(ctxT(t), "m", "barrier", 1); err != nil {
		t.Fatal(err)
	}
	if r, ok := fs.record("m", "good"); !ok || r.Value != "v" {
		t.Errorf("queued write m/good not replayed (server saw %v)", fs.seenTypes())
	}
	if n := c.Pending(); n != 0 {
		t.Errorf("Pending = %d, want 0", n)
	}
}

// This project's server answers a write its store refuses with OP_REJECTED
// and still covers it with the batch's OP_ACK. Put must not report such a
// write as acknowledged; the other ops of the batch succeed.
func TestPut_rejectedWriteFails(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, "")
	code := uint32(400)
	refuse := func(op *wire.ClientOp) bool { return op.Record != nil && op.Record.Value == "refused" }
	fs.setIntercept(func(c *fakeConn, m wire.Message) bool {
		var ops []wire.ClientOp
		switch m := m.(type) {
		case *wire.ClientOpMessage:
			ops = []wire.ClientOp{m.ClientOp}
		case *wire.OpBatch:
			ops = m.Ops
		default:
			return false
		}
		for i := range ops {
			if refuse(&ops[i]) {
				fs.send(c, &wire.OpRejected{OpID: ops[i].ID, Reason: "map is reserved", Code: &code})
			} else {
				fs.apply(c, &ops[i])
			}
		}
		fs.send(c, &wire.OpAck{LastID: ops[len(ops)-1].ID, AchievedLevel: wire.Applied})
		return true
	})
	c := dial(t, fs.URL, testOptions(t))

	err := c.Put(ctxT(t), "m", "k", "refused")
	var re *RejectedError
	if !errors.Is(err, ErrRejected) || !errors.As(err, &re) || re.Reason != "map is reserved" {
		t.Fatalf("Put of a refused write = %v, want a *RejectedError", err)
	}
	err = c.Batch(ctxT(t), Op{Map: "m", Key: "a", Value: "ok"}, Op{Map: "m", Key: "b", Value: "refused"})
	if !errors.Is(err, ErrRejected) {
		t.Fatalf("Batch with a refused op = %v, want ErrRejected", err)
	}
	if r, ok := fs.record("m", "a"); !ok || r.Value != "ok" {
		t.Errorf("m/a = %v %v, want ok", r, ok)
	}
	if err := c.Put(ctxT(t), "m", "k", "fine"); err != nil {
		t.Fatalf("Put after a rejection: %v", err)
	}
	if n := c.Pending(); n != 0 {
		t.Errorf("Pending = %d, want 0", n)
	}
}

// A rejected write is not taken for a newer value of its key: an older
// unacknowledged write to the key is still re-sent after a reconnect.
func TestReconnect_rejectedWriteDoesNotSupersede(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, "")
	fs.setIntercept(func(c *fakeConn, m wire.Message) bool {
		op, ok := m.(*wire.ClientOpMessage)
		if !ok || c.n != 1 || op.Record == nil {
			return false
		}
		switch op.Record.Value {
		case "old": // lost: no reply, as after a failed commit
			return true
		case "refused":
			fs.send(c, &wire.OpRejected{OpID: op.ID, Reason: "too far ahead"})
			fs.send(c, &wire.OpAck{LastID: op.ID, AchievedLevel: wire.Applied})
			return true
		}
		return false
	})
	c := dial(t, fs.URL, testOptions(t))
	oldCtx, giveUp := context.WithCancel(context.Background())
	defer giveUp()
	oldErr := make(chan error, 1)
	go func() { oldErr <- c.Put(oldCtx, "m", "k", "old") }()
	eventually(t, "the old write to reach the server", func() bool { return fs.count(wire.TypeClientOp) == 1 })
	if err := c.Put(ctxT(t), "m", "k", "refused"); !errors.Is(err, ErrRejected) {
		t.Fatalf("Put(refused) = %v, want ErrRejected", err)
	}
	giveUp()
	<-oldErr

	fs.dropAll()
	eventually(t, "a reconnect", func() bool { return fs.upgrades.Load() >= 2 && c.State() == StateConnected })
	if err := c.Put(ctxT(t), "m", "barrier", 1); err != nil {
		t.Fatal(err)
	}
	if r, ok := fs.record("m", "k"); !ok || r.Value != "old" {
		t.Errorf("m/k = %v %v, want the replayed old write", r, ok)
	}
}

// After a reconnect a live query is re-sent; if the server now refuses it
// (QUERY_RESP with an error, e.g. a limit), the subscription must end with
// that error, not deliver an empty result set as a Reset and then stay
// silent as if it were live.
func TestReconnect_refusedResubscribeClosesSubscription(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, "")
	fs.put("m", "k", wire.LWWRecord{Value: "v", Timestamp: wire.Timestamp{Millis: 1, NodeID: "s"}})
	fs.setIntercept(func(c *fakeConn, m wire.Message) bool {
		q, ok := m.(*wire.QuerySub)
		if !ok || c.n == 1 {
			return false
		}
		fs.send(c, &wire.QueryResp{QueryID: q.QueryID, Results: []wire.QueryResult{},
			Error: "too many live queries", Code: "LIMIT"})
		return true
	})
	c := dial(t, fs.URL, testOptions(t))
	sub, err := c.Subscribe(ctxT(t), "m", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(sub.Initial) != 1 {
		t.Fatalf("Initial = %v", sub.Initial)
	}
	fs.dropAll()
	select {
	case u, ok := <-sub.Updates:
		if ok {
			t.Fatalf("update %+v after a refused re-subscribe, want Updates closed", u)
		}
	case <-time.After(waitFor):
		t.Fatal("subscription neither updated nor closed after the reconnect")
	}
	var qe *QueryError
	if !errors.As(sub.Err(), &qe) || qe.Code != "LIMIT" {
		t.Errorf("sub.Err() = %v, want the server's QueryError", sub.Err())
	}
}

// A remote timestamp at the top of the range (a hostile or broken server)
// must not wrap the clock around: Now never goes backwards.
func TestHLC_neverWrapsAround(t *testing.T) {
	t.Parallel()
	h := newHLC("n", hclog.NewNullLogger())
	h.wall = func() uint64 { return 1000 }
	prev := h.Now()
	h.Update(wire.Timestamp{Millis: math.MaxUint64, Counter: math.MaxUint32 - 1, NodeID: "evil"})
	for i := 0; i < 3; i++ {
		next := h.Now()
		if next.Compare(prev) < 0 {
			t.Fatalf("Now went backwards: %v after %v", next, prev)
		}
		prev = next
	}
	h.Update(wire.Timestamp{Millis: math.MaxUint64, Counter: math.MaxUint32, NodeID: "evil"})
	if next := h.Now(); next.Compare(prev) < 0 {
		t.Fatalf("Now went backwards: %v after %v", next, prev)
	}
}

// PongTimeout counts from the heartbeat's start, not from the dial: a
// handshake that takes longer than PongTimeout (here the no-auth grace)
// must not get every new connection dropped at the first heartbeat tick.
func TestHeartbeat_slowHandshakeDoesNotDropConnection(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, "")
	fs.deviceAck.Store(false) // silence: the client waits out NoAuthGrace
	o := testOptions(t)
	// The handshake outlasts PongTimeout by a second, so a heartbeat that
	// counted from the dial would drop the connection at its first tick.
	// PongTimeout itself is long: on a loaded machine (-race, a busy CI
	// runner) a PONG may take far more than a few ticks to come back, and
	// a short one drops the connection for that alone.
	o.NoAuthGrace = 3 * time.Second
	o.PingInterval = 50 * time.Millisecond
	o.PongTimeout = 2 * time.Second
	c := dial(t, fs.URL, o)
	eventually(t, "three heartbeat PINGs or a reconnect", func() bool {
		return fs.count(wire.TypePing) >= 3 || fs.upgrades.Load() > 1
	})
	if n := fs.upgrades.Load(); n != 1 {
		t.Errorf("%d connections, want 1: the heartbeat dropped a live connection", n)
	}
	if _, err := c.Ping(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}
