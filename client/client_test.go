package client

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/topgun-go/topgun/server/wire"
)

const secret = "test-e2e-secret"

func TestDial_handshake(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		secret    string
		deviceAck bool
		grace     time.Duration // 0: testOptions' 150 ms, or a minute with auth on (authOptions)
		token     func(t *testing.T) string
		wantErr   error
		check     func(t *testing.T, c *Client, took time.Duration)
	}{
		{
			name: "auth on, valid token", secret: secret,
			token: func(t *testing.T) string { return token(t, secret, "alice") },
			check: func(t *testing.T, c *Client, _ time.Duration) {
				if s := c.Session(); !s.Authenticated || s.UserID != "alice" || s.DeviceID != "dev-auth" {
					t.Errorf("session = %+v", s)
				}
			},
		},
		{
			name: "auth on, bad token", secret: secret,
			token:   func(t *testing.T) string { return token(t, "other-secret", "alice") },
			wantErr: ErrAuthFailed,
		},
		{
			name: "auth on, no token", secret: secret,
			token:   func(*testing.T) string { return "" },
			wantErr: ErrAuthRequired,
		},
		{
			name: "auth off, DEVICE_ACK", deviceAck: true, grace: 5 * time.Second,
			token: func(*testing.T) string { return "" },
			check: func(t *testing.T, c *Client, took time.Duration) {
				if s := c.Session(); s.Authenticated || s.DeviceID != "dev-1" || s.DeviceToken != "dev-1.secret" {
					t.Errorf("session = %+v", s)
				}
				if took >= 5*time.Second {
					t.Errorf("waited %v although the server answered DEVICE_ACK", took)
				}
			},
		},
		{
			name: "auth off, silent server", deviceAck: false,
			token: func(*testing.T) string { return "" },
			check: func(t *testing.T, c *Client, took time.Duration) {
				if took < 150*time.Millisecond {
					t.Errorf("connected after %v, before the no-auth grace", took)
				}
				if c.Session().Authenticated {
					t.Error("authenticated on a no-auth server")
				}
			},
		},
		{
			// TopGun with auth off ignores AUTH and never answers.
			name: "auth off, token given", deviceAck: false,
			token: func(t *testing.T) string { return token(t, secret, "alice") },
			check: func(t *testing.T, c *Client, _ time.Duration) {
				if c.Session().Authenticated {
					t.Error("authenticated on a no-auth server")
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fs := newFakeServer(t, tc.secret)
			fs.deviceAck.Store(tc.deviceAck)
			o := testOptions(t)
			if tc.secret != "" {
				o = authOptions(t, "")
			}
			o.Token = tc.token(t)
			if tc.grace > 0 {
				o.NoAuthGrace = tc.grace
			}
			start := time.Now()
			c, err := Dial(ctxT(t), fs.URL, o)
			took := time.Since(start)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Dial error = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer c.Close()
			if c.State() != StateConnected {
				t.Errorf("state = %v", c.State())
			}
			tc.check(t, c, took)
			// The connection works: a write is acknowledged.
			if err := c.Put(ctxT(t), "m", "k", "v"); err != nil {
				t.Fatalf("Put: %v", err)
			}
		})
	}
}

func TestDial_errors(t *testing.T) {
	t.Parallel()
	// Nothing listens on this port.
	o := testOptions(t)
	o.DialTimeout = time.Second
	if _, err := Dial(ctxT(t), "ws://127.0.0.1:1/ws", o); err == nil {
		t.Fatal("Dial to a closed port succeeded")
	}
	bad := testOptions(t)
	bad.NodeID = "a:b"
	bad.MaxBatchOps = 0
	if _, err := Dial(ctxT(t), "ws://127.0.0.1:1/ws", bad); err == nil {
		t.Fatal("invalid options accepted")
	}
}

func TestPut_waitsForAck(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, secret)
	o := authOptions(t, token(t, secret, "alice"))
	o.NodeID = "writer"
	c := dial(t, fs.URL, o)

	before := c.hlc.Now()
	if err := c.Put(ctxT(t), "users", "u1", map[string]any{"name": "Alice", "age": int64(30)}); err != nil {
		t.Fatal(err)
	}
	r, ok := fs.record("users", "u1")
	if !ok {
		t.Fatal("the server does not have the record after the ack")
	}
	if r.Timestamp.NodeID != "writer" || r.Timestamp.Compare(before) <= 0 {
		t.Errorf("record timestamp %v, want a later one from node writer", r.Timestamp)
	}
	if v := r.Value.(map[string]any); v["name"] != "Alice" || v["age"] != int64(30) {
		t.Errorf("stored value %#v", r.Value)
	}
	if err := c.Remove(ctxT(t), "users", "u1"); err != nil {
		t.Fatal(err)
	}
	if _, ok := fs.record("users", "u1"); ok {
		t.Error("record still there after Remove")
	}
	if got := fs.count(wire.TypeClientOp); got != 2 {
		t.Errorf("server saw %d CLIENT_OP, want 2", got)
	}
	if c.Pending() != 0 {
		t.Errorf("Pending = %d after acks", c.Pending())
	}
}

func TestPut_noAck(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, "")
	fs.noAcks.Store(true) // TopGun answers a failed CLIENT_OP with nothing
	c := dial(t, fs.URL, testOptions(t))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := c.Put(ctx, "m", "k", 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Put = %v, want DeadlineExceeded", err)
	}
	if c.Pending() != 1 {
		t.Fatalf("Pending = %d, want the unacked write kept", c.Pending())
	}
}

func TestBatch(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, "")
	o := testOptions(t)
	o.MaxBatchOps = 2
	c := dial(t, fs.URL, o)
	ops := []Op{{Map: "m", Key: "a", Value: 1}, {Map: "m", Key: "b", Value: 2}, {Map: "m", Key: "c", Value: 3}, {Map: "m", Key: "a", Remove: true}}
	if err := c.Batch(ctxT(t), ops...); err != nil {
		t.Fatal(err)
	}
	// 4 ops, at most 2 per message: two OP_BATCH.
	if got := fs.count(wire.TypeOpBatch); got != 2 {
		t.Errorf("server saw %d OP_BATCH, want 2 (types %v)", got, fs.seenTypes())
	}
	if _, ok := fs.record("m", "a"); ok {
		t.Error("a was removed by the last op of the batch")
	}
	if r, ok := fs.record("m", "c"); !ok || r.Value != int64(3) {
		t.Errorf("c = %+v %v", r, ok)
	}
	if err := c.Batch(ctxT(t)); err != nil {
		t.Errorf("empty Batch = %v", err)
	}
	if err := c.Batch(ctxT(t), Op{Key: "x"}); err == nil {
		t.Error("op without a map name accepted")
	}
}

func TestSubscribe(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, "")
	fs.put("users", "old", wire.LWWRecord{Value: map[string]any{"age": int64(40)}})
	fs.put("users", "kid", wire.LWWRecord{Value: map[string]any{"age": int64(10)}})
	reader := dial(t, fs.URL, testOptions(t))
	writer := dial(t, fs.URL, testOptions(t))

	q := &wire.Query{Where: map[string]any{"age": map[string]any{"$gt": int64(18)}}}
	sub, err := reader.Subscribe(ctxT(t), "users", q)
	if err != nil {
		t.Fatal(err)
	}
	if len(sub.Initial) != 1 || sub.Initial[0].Key != "old" {
		t.Fatalf("initial results %+v, want [old]", sub.Initial)
	}
	if err := writer.Put(ctxT(t), "users", "new", map[string]any{"age": int64(20)}); err != nil {
		t.Fatal(err)
	}
	var gotEvent, gotEnter bool
	for !(gotEvent && gotEnter) {
		select {
		case u, ok := <-sub.Updates:
			if !ok {
				t.Fatalf("updates closed: %v", sub.Err())
			}
			switch {
			case u.Event != nil:
				gotEvent = u.Key == "new" && u.Event.EventType == wire.EventPut
			case u.Change == wire.Enter:
				gotEnter = u.Key == "new" && u.Value.(map[string]any)["age"] == int64(20)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no update (event %v, enter %v)", gotEvent, gotEnter)
		}
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-sub.Updates; ok {
		t.Error("updates still open after Close")
	}
	eventually(t, "QUERY_UNSUB", func() bool { return fs.count(wire.TypeQueryUnsub) == 1 })
	if sub.Err() != nil {
		t.Errorf("Err after Close = %v", sub.Err())
	}
}

func TestSubscribe_rejected(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, "")
	c := dial(t, fs.URL, testOptions(t))
	_, err := c.Subscribe(ctxT(t), "m", &wire.Query{GroupBy: []string{"category"}})
	var qe *QueryError
	if !errors.As(err, &qe) || qe.Code != "UNSUPPORTED" {
		t.Fatalf("Subscribe = %v, want a *QueryError", err)
	}
	eventually(t, "QUERY_UNSUB", func() bool { return fs.count(wire.TypeQueryUnsub) == 1 })
}

func TestSubscribe_slowConsumer(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, "")
	o := testOptions(t)
	o.SubscriptionBuffer = 2
	reader := dial(t, fs.URL, o)
	writer := dial(t, fs.URL, testOptions(t))
	sub, err := reader.Subscribe(ctxT(t), "m", nil)
	if err != nil {
		t.Fatal(err)
	}
	// Each write produces two updates (event and query change); nobody reads.
	for i := 0; i < 3; i++ {
		if err := writer.Put(ctxT(t), "m", strconv.Itoa(i), i); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "slow consumer close", func() bool { return errors.Is(sub.Err(), ErrSlowConsumer) })
	n := 0
	for range sub.Updates {
		n++
	}
	if n != 2 {
		t.Errorf("drained %d buffered updates, want 2", n)
	}
	// The connection itself is fine.
	if _, err := reader.Ping(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}

func TestReconnect_replaysWritesAndSubscriptions(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, secret)
	o := authOptions(t, token(t, secret, "alice"))
	var states []State
	stateCh := make(chan State, 16)
	o.OnStateChange = func(s State) { stateCh <- s }
	c := dial(t, fs.URL, o)
	sub, err := c.Subscribe(ctxT(t), "m", nil)
	if err != nil {
		t.Fatal(err)
	}

	// The server goes away and refuses the next 3 upgrades.
	fs.noAcks.Store(true)
	fs.reject.Store(3)
	putErr := make(chan error, 1)
	go func() { putErr <- c.Put(ctxT(t), "m", "k", "during outage") }()
	eventually(t, "the write to reach the server", func() bool { return fs.count(wire.TypeClientOp) == 1 })
	attemptsBefore := fs.attempts.Load()
	start := time.Now()
	fs.dropAll()
	fs.noAcks.Store(false)

	select {
	case err := <-putErr:
		if err != nil {
			t.Fatalf("Put across the reconnect: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the queued write was never acknowledged")
	}
	took := time.Since(start)
	if got := fs.attempts.Load() - attemptsBefore; got != 4 {
		t.Errorf("%d upgrade attempts, want 3 refused + 1 accepted", got)
	}
	// Backoff 20, 40, 80, 80 ms with ±20 % jitter: at least 0.8*220 ms.
	if took < 176*time.Millisecond {
		t.Errorf("reconnected after %v; backoff not applied", took)
	}
	if r, ok := fs.record("m", "k"); !ok || r.Value != "during outage" {
		t.Errorf("replayed write not stored: %+v %v", r, ok)
	}
	// Replayed as OP_BATCH after re-authenticating, as the TS client does.
	if fs.count(wire.TypeAuth) != 2 || fs.count(wire.TypeOpBatch) != 1 {
		t.Errorf("server saw %v", fs.seenTypes())
	}
	// The live query was re-sent; its fresh result set arrives as a reset.
	select {
	case u := <-sub.Updates:
		if !u.Reset || len(u.Results) > 1 {
			t.Errorf("first update after reconnect %+v, want a reset", u)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no reset update after reconnect")
	}
	if fs.count(wire.TypeQuerySub) != 2 {
		t.Errorf("QUERY_SUB sent %d times, want 2", fs.count(wire.TypeQuerySub))
	}
	// Callbacks run on their own goroutine: the last may still be on its way.
	for len(states) < 3 {
		select {
		case s := <-stateCh:
			states = append(states, s)
		case <-time.After(5 * time.Second):
			t.Fatalf("state changes %v, want 3", states)
		}
	}
	want := []State{StateConnected, StateDisconnected, StateConnected}
	if fmt.Sprint(states) != fmt.Sprint(want) {
		t.Errorf("state changes %v, want %v", states, want)
	}
}

func TestReconnect_authFailureIsFinal(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, secret)
	o := authOptions(t, token(t, secret, "alice"))
	c := dial(t, fs.URL, o)
	other := "rotated-secret"
	fs.secret.Store(&other)
	fs.noAcks.Store(true)
	putErr := make(chan error, 1)
	go func() { putErr <- c.Put(ctxT(t), "m", "k", 1) }()
	eventually(t, "the write to reach the server", func() bool { return fs.count(wire.TypeClientOp) == 1 })
	fs.dropAll()
	select {
	case err := <-putErr:
		if !errors.Is(err, ErrAuthFailed) {
			t.Fatalf("pending Put = %v, want ErrAuthFailed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("pending write not failed")
	}
	if !errors.Is(c.Err(), ErrAuthFailed) || c.State() != StateClosed {
		t.Errorf("Err = %v, State = %v", c.Err(), c.State())
	}
	if err := c.Put(ctxT(t), "m", "k", 1); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("Put after failure = %v", err)
	}
}

func TestReconnect_maxAttempts(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, "")
	o := testOptions(t)
	o.MaxReconnectAttempts = 3
	c := dial(t, fs.URL, o)
	fs.reject.Store(1000)
	before := fs.attempts.Load()
	fs.dropAll()
	eventually(t, "the client to give up", func() bool { return c.State() == StateClosed })
	if !errors.Is(c.Err(), ErrReconnectFailed) {
		t.Errorf("Err = %v", c.Err())
	}
	if got := fs.attempts.Load() - before; got != 3 {
		t.Errorf("%d attempts, want 3", got)
	}
}

func TestReconnect_off(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, "")
	o := testOptions(t)
	o.Reconnect = false
	c := dial(t, fs.URL, o)
	fs.dropAll()
	eventually(t, "the client to stop", func() bool { return c.State() == StateClosed })
	if !errors.Is(c.Err(), ErrReconnectFailed) {
		t.Errorf("Err = %v", c.Err())
	}
}

func TestHeartbeat(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, "")
	o := testOptions(t)
	o.PingInterval = 50 * time.Millisecond
	o.PongTimeout = time.Second
	c := dial(t, fs.URL, o)
	eventually(t, "heartbeat pings", func() bool { return fs.count(wire.TypePing) >= 3 })
	if fs.upgrades.Load() != 1 {
		t.Fatalf("reconnected although PONGs arrive")
	}
	rtt, err := c.Ping(ctxT(t))
	if err != nil || rtt <= 0 {
		t.Fatalf("Ping = %v, %v", rtt, err)
	}
	// A server that stops answering PING is dropped and re-dialled.
	fs.noPongs.Store(true)
	eventually(t, "a reconnect after missing PONGs", func() bool { return fs.upgrades.Load() >= 2 })
	fs.noPongs.Store(false)
	eventually(t, "connected again", func() bool { return c.State() == StateConnected })
}

func TestClose(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, "")
	fs.noAcks.Store(true)
	c := dial(t, fs.URL, testOptions(t))
	sub, err := c.Subscribe(ctxT(t), "m", nil)
	if err != nil {
		t.Fatal(err)
	}
	putErr := make(chan error, 1)
	go func() { putErr <- c.Put(ctxT(t), "m", "k", 1) }()
	eventually(t, "the write to be pending", func() bool { return c.Pending() == 1 })
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-putErr; !errors.Is(err, ErrClosed) {
		t.Errorf("pending Put = %v, want ErrClosed", err)
	}
	if _, ok := <-sub.Updates; ok || sub.Err() != nil {
		t.Errorf("subscription not closed cleanly: %v", sub.Err())
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if !errors.Is(c.Put(ctxT(t), "m", "k", 1), ErrClosed) || c.State() != StateClosed {
		t.Error("client usable after Close")
	}
	if _, err := c.Subscribe(ctxT(t), "m", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Subscribe after Close = %v", err)
	}
	if _, err := c.SyncMap(ctxT(t), "m", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("SyncMap after Close = %v", err)
	}
}

func TestConcurrentWrites(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, "")
	c := dial(t, fs.URL, testOptions(t))
	const workers, each = 8, 25
	var failed atomic.Int32
	done := make(chan struct{})
	for w := 0; w < workers; w++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := 0; i < each; i++ {
				if err := c.Put(ctxT(t), "m", fmt.Sprintf("%d-%d", w, i), i); err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	for w := 0; w < workers; w++ {
		<-done
	}
	if failed.Load() != 0 {
		t.Fatalf("%d writes failed", failed.Load())
	}
	if n := len(fs.mapCopy("m")); n != workers*each {
		t.Fatalf("server has %d records, want %d", n, workers*each)
	}
}

// TopGun stamps writes when they arrive, so the last write to arrive wins.
// A write whose caller gave up stays queued; once a later write to the same
// key is acknowledged, re-sending the older one after a reconnect would
// overwrite the acknowledged value. Writes to other keys are still re-sent.
func TestReconnect_doesNotReplayWriteSupersededByAck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		newer Op  // acknowledged after the unacknowledged put of m/k = "old"
		want  any // m/k on the server after the reconnect; nil: absent
	}{
		{name: "put on the same key", newer: Op{Map: "m", Key: "k", Value: "new"}, want: "new"},
		{name: "remove of the same key", newer: Op{Map: "m", Key: "k", Remove: true}, want: nil},
		{name: "put on another key", newer: Op{Map: "m", Key: "other", Value: "new"}, want: "old"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fs := newFakeServer(t, "")
			// The first connection drops "old" without an ack, as TopGun does
			// when overloaded.
			fs.setIntercept(func(c *fakeConn, m wire.Message) bool {
				op, ok := m.(*wire.ClientOpMessage)
				if !ok || c.n != 1 || op.Record == nil || op.Record.Value != "old" {
					return false
				}
				fs.send(c, &wire.ErrorMessage{Code: 429, Message: "server overloaded, try again later"})
				return true
			})
			c := dial(t, fs.URL, testOptions(t))

			oldErr := make(chan error, 1)
			// The caller of the old write gives up once the newer one is
			// acknowledged (not at a deadline, which a loaded machine
			// could reach before the old write is even sent).
			oldCtx, giveUp := context.WithCancel(context.Background())
			defer giveUp()
			go func() { oldErr <- c.Put(oldCtx, "m", "k", "old") }()
			eventually(t, "the old write to reach the server", func() bool { return fs.count(wire.TypeClientOp) == 1 })
			if err := c.Batch(ctxT(t), tc.newer); err != nil {
				t.Fatalf("newer write: %v", err)
			}
			giveUp()
			// The old write was not acknowledged: its caller is not told otherwise.
			if err := <-oldErr; !errors.Is(err, context.Canceled) {
				t.Errorf("Put(old) = %v, want Canceled", err)
			}

			fs.dropAll()
			eventually(t, "a reconnect", func() bool { return fs.upgrades.Load() == 2 && c.State() == StateConnected })
			// A replay goes out before any new write: after this ack it is done.
			if err := c.Put(ctxT(t), "m", "barrier", 1); err != nil {
				t.Fatal(err)
			}
			var got any
			if r, ok := fs.record("m", "k"); ok {
				got = r.Value
			}
			if got != tc.want {
				t.Errorf("m/k on the server = %v, want %v (types seen %v)", got, tc.want, fs.seenTypes())
			}
			if c.Pending() != 0 {
				t.Errorf("Pending = %d, want 0", c.Pending())
			}
		})
	}
}

// A write that is not re-sent because a later write to its key was
// acknowledged fails with ErrSuperseded once its own ack cannot come (its
// connection is gone), instead of waiting for its ctx.
func TestReconnect_supersededWriteFails(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, "")
	fs.setIntercept(func(c *fakeConn, m wire.Message) bool {
		op, ok := m.(*wire.ClientOpMessage)
		return ok && c.n == 1 && op.Record != nil && op.Record.Value == "old" // dropped, no reply
	})
	c := dial(t, fs.URL, testOptions(t))
	oldErr := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		oldErr <- c.Put(ctx, "m", "k", "old")
	}()
	eventually(t, "the old write to reach the server", func() bool { return fs.count(wire.TypeClientOp) == 1 })
	if err := c.Put(ctxT(t), "m", "k", "new"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-oldErr:
		t.Fatalf("Put(old) = %v before its connection was gone", err)
	case <-time.After(100 * time.Millisecond):
	}
	fs.dropAll()
	select {
	case err := <-oldErr:
		if !errors.Is(err, ErrSuperseded) {
			t.Fatalf("Put(old) = %v, want ErrSuperseded", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Put(old) still waiting 10s after its connection was replaced")
	}
	if r, ok := fs.record("m", "k"); !ok || r.Value != "new" {
		t.Errorf("m/k on the server = %v, want new", r)
	}
}

func TestOnStateChange_callbackMayUseTheClient(t *testing.T) {
	t.Parallel()
	t.Run("Close on disconnect", func(t *testing.T) {
		t.Parallel()
		fs := newFakeServer(t, "")
		o := testOptions(t)
		var cp atomic.Pointer[Client]
		var mu sync.Mutex
		var states []State
		closed := make(chan error, 1)
		o.OnStateChange = func(s State) {
			mu.Lock()
			states = append(states, s)
			mu.Unlock()
			if c := cp.Load(); c != nil && s == StateDisconnected {
				closed <- c.Close()
			}
		}
		c := dial(t, fs.URL, o)
		cp.Store(c)
		fs.dropAll()
		select {
		case err := <-closed:
			if err != nil {
				t.Fatalf("Close = %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("Close called from OnStateChange did not return (state %v)", c.State())
		}
		// Close from outside waits for the remaining callbacks.
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		want := []State{StateConnected, StateDisconnected, StateClosed}
		if fmt.Sprint(states) != fmt.Sprint(want) {
			t.Errorf("states %v, want %v", states, want)
		}
	})
	t.Run("Put on reconnect", func(t *testing.T) {
		t.Parallel()
		fs := newFakeServer(t, "")
		o := testOptions(t)
		var cp atomic.Pointer[Client]
		putErr := make(chan error, 1)
		o.OnStateChange = func(s State) {
			if c := cp.Load(); c != nil && s == StateConnected {
				// e.g. write a presence record on every (re)connect
				putErr <- c.Put(ctxT(t), "m", "presence", "here")
			}
		}
		c := dial(t, fs.URL, o)
		cp.Store(c)
		fs.dropAll()
		select {
		case err := <-putErr:
			if err != nil {
				t.Fatalf("Put from OnStateChange = %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Put from OnStateChange(StateConnected) did not return")
		}
		if err := c.Put(ctxT(t), "m", "k", 1); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a blocked callback stalls nothing", func(t *testing.T) {
		t.Parallel()
		fs := newFakeServer(t, "")
		o := testOptions(t)
		release := make(chan struct{})
		o.OnStateChange = func(State) { <-release }
		dialed := make(chan *Client, 1)
		go func() {
			c, err := Dial(ctxT(t), fs.URL, o)
			if err != nil {
				t.Error(err)
			}
			dialed <- c
		}()
		var c *Client
		select {
		case c = <-dialed:
		case <-time.After(5 * time.Second):
			t.Fatal("Dial waited for a blocked OnStateChange")
		}
		if c == nil {
			return
		}
		if err := c.Put(ctxT(t), "m", "k", 1); err != nil {
			t.Errorf("Put while OnStateChange blocks: %v", err)
		}
		close(release)
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

// OnServerError runs on the same callback goroutine: it may close the client.
func TestOnServerError_callbackMayClose(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, "")
	fs.setIntercept(func(c *fakeConn, m wire.Message) bool {
		if _, ok := m.(*wire.ClientOpMessage); !ok {
			return false
		}
		fs.send(c, &wire.ErrorMessage{Code: 500, Message: "write failed"})
		return true
	})
	o := testOptions(t)
	var cp atomic.Pointer[Client]
	closed := make(chan error, 1)
	o.OnServerError = func(*wire.ErrorMessage) {
		if c := cp.Load(); c != nil {
			closed <- c.Close()
		}
	}
	c := dial(t, fs.URL, o)
	cp.Store(c)
	if err := c.Put(ctxT(t), "m", "k", 1); !errors.Is(err, ErrClosed) {
		t.Errorf("Put = %v, want ErrClosed", err)
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close called from OnServerError did not return")
	}
}

// stalledWriteTimeout is the WriteTimeout of stalledClient: far longer
// than callBound, so that a call that waited for it is told from one that
// returned at its own ctx's end.
const stalledWriteTimeout = time.Minute

// callBound bounds how long a call with a short ctx may take against a
// stalled server: it may still encode and mask 1.9 MB frames, which takes
// a second or more under the race detector on a loaded machine.
const callBound = 15 * time.Second

// stalledClient dials a fake server that then stops reading, with a
// WriteTimeout of stalledWriteTimeout.
func stalledClient(t *testing.T) (*fakeServer, *Client) {
	t.Helper()
	fs := newFakeServer(t, "")
	o := testOptions(t)
	o.WriteTimeout = stalledWriteTimeout
	c := dial(t, fs.URL, o)
	stall(t, fs, c)
	return fs, c
}

// A server that stops reading blocks the client's frame writes. A call
// whose ctx ends while its write is blocked returns then, not after
// WriteTimeout; the frame goes on, and once the server reads again it is
// written whole on the same connection and acknowledged.
func TestPut_ctxEndsDuringBlockedWrite(t *testing.T) {
	t.Parallel()
	fs, c := stalledClient(t)
	big := strings.Repeat("x", 1900<<10) // under the 2 MiB frame limit
	// Fill the socket buffers until a write blocks and outlives its call.
	for i := 0; ; i++ {
		if i == 10 {
			t.Fatal("no write blocked after 10 writes of 1.9 MB")
		}
		// Long enough to encode the op and start writing it on a loaded
		// machine (a ctx that ends before the write leaves it unsent).
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		start := time.Now()
		err := c.Put(ctx, "m", strconv.Itoa(i), big)
		cancel()
		if took := time.Since(start); took > callBound {
			t.Fatalf("Put %d with a 1s ctx returned %v after %v", i, err, took)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Put %d = %v, want DeadlineExceeded", i, err)
		}
		c.mu.Lock()
		cn := c.conn
		c.mu.Unlock()
		if cn != nil && len(cn.writing) == 1 {
			break // its frame is still being written
		}
	}
	if n := fs.upgrades.Load(); n != 1 {
		t.Fatalf("%d connections, want 1: a blocked write was cut short", n)
	}
	fs.stall.Store(false)
	eventually(t, "the writes acknowledged", func() bool { return c.Pending() == 0 })
	if n := fs.upgrades.Load(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}

// blockSend starts 8 writes of 1.9 MB on c, whose server does not read:
// the first to get the send lock blocks in its write for up to
// WriteTimeout. It returns once one is (about) blocked.
func blockSend(c *Client) {
	big := strings.Repeat("x", 1900<<10)
	for i := 0; i < 8; i++ {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), stalledWriteTimeout)
			defer cancel()
			_ = c.Put(ctx, "m", strconv.Itoa(i), big)
		}()
	}
	time.Sleep(300 * time.Millisecond)
}

// While one write is blocked holding the send lock, other calls give up
// waiting for it when their ctx ends.
func TestCalls_ctxEndsWaitingForBlockedSend(t *testing.T) {
	t.Parallel()
	_, c := stalledClient(t)
	blockSend(c)
	calls := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"Put", func(ctx context.Context) error { return c.Put(ctx, "m", "small", 1) }},
		{"Subscribe", func(ctx context.Context) error { _, err := c.Subscribe(ctx, "m", nil); return err }},
		{"Ping", func(ctx context.Context) error { _, err := c.Ping(ctx); return err }},
		{"SyncMap", func(ctx context.Context) error { _, err := c.SyncMap(ctx, "m", nil); return err }},
	}
	for _, tc := range calls {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		start := time.Now()
		err := tc.call(ctx)
		cancel()
		if took := time.Since(start); took > callBound {
			t.Errorf("%s with a 200ms ctx returned %v after %v", tc.name, err, took)
		}
	}
}

// Map events that arrive between QUERY_SUB and its QUERY_RESP fill the
// Updates buffer before anyone can read it: Subscribe fails with
// ErrSlowConsumer at once instead of waiting for a QUERY_RESP that can no
// longer be routed.
func TestSubscribe_slowConsumerBeforeResults(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, "")
	fs.setIntercept(func(c *fakeConn, m wire.Message) bool {
		q, ok := m.(*wire.QuerySub)
		if !ok {
			return false
		}
		for i := 0; i < 20; i++ {
			fs.send(c, &wire.ServerEvent{MapName: q.MapName, EventType: wire.EventPut, Key: "k",
				Record: &wire.LWWRecord{Value: int64(i), Timestamp: wire.Timestamp{Millis: 1, NodeID: "s"}}})
		}
		fs.send(c, &wire.QueryResp{QueryID: q.QueryID, Results: []wire.QueryResult{}})
		return true
	})
	o := testOptions(t)
	o.SubscriptionBuffer = 8
	c := dial(t, fs.URL, o)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := c.Subscribe(ctx, "m", nil); !errors.Is(err, ErrSlowConsumer) {
		t.Fatalf("Subscribe = %v after %v, want ErrSlowConsumer", err, time.Since(start))
	}
	// The connection is fine.
	if _, err := c.Ping(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}

// stall makes fs stop reading frames after c's next PING.
func stall(t *testing.T, fs *fakeServer, c *Client) {
	t.Helper()
	fs.stallOnPing.Store(true)
	if _, err := c.Ping(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}

// GC_PRUNE reaches the caller, who holds the records SyncMap compares and
// must prune the same tombstones as the server for the roots to match.
func TestOnGCPrune(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, "")
	want := wire.Timestamp{Millis: 1700000000000, Counter: 3, NodeID: "srv"}
	fs.setIntercept(func(c *fakeConn, m wire.Message) bool {
		if _, ok := m.(*wire.ClientOpMessage); ok {
			fs.send(c, &wire.GCPrune{OlderThan: want})
		}
		return false
	})
	o := testOptions(t)
	got := make(chan wire.Timestamp, 1)
	o.OnGCPrune = func(ts wire.Timestamp) { got <- ts }
	c := dial(t, fs.URL, o)
	if err := c.Put(ctxT(t), "m", "k", 1); err != nil {
		t.Fatal(err)
	}
	select {
	case ts := <-got:
		if ts != want {
			t.Errorf("OnGCPrune(%v), want %v", ts, want)
		}
	case <-time.After(waitFor):
		t.Fatal("GC_PRUNE did not reach OnGCPrune")
	}
}
