package loadgen_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/topgun-go/topgun/client/loadgen"
	"github.com/topgun-go/topgun/server/wire"
)

// fakeServer is a scripted WebSocket server: serve runs for each
// connection, numbered from 1, until it returns or the client leaves.
func fakeServer(t *testing.T, serve func(n int, ws *websocket.Conn)) *httptest.Server {
	t.Helper()
	var conns atomic.Int64
	var wg sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		wg.Add(1)
		defer wg.Done()
		defer ws.CloseNow()
		serve(int(conns.Add(1)), ws)
	}))
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		wg.Wait()
	})
	return srv
}

func wsURL(srv *httptest.Server) string { return "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws" }

// readMsg reads the next message (bounded by 30 s).
func readMsg(ws *websocket.Conn) (wire.Message, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, b, err := ws.Read(ctx)
	if err != nil {
		return nil, err
	}
	return wire.Decode(b)
}

func writeMsg(ws *websocket.Conn, m wire.Message) error {
	b, err := wire.Encode(m)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return ws.Write(ctx, websocket.MessageBinary, b)
}

// lastID is the id of the last op of a batch message, "" for others.
func lastID(m wire.Message) string {
	switch m := m.(type) {
	case *wire.ClientOpMessage:
		return m.ID
	case *wire.OpBatch:
		return m.Ops[len(m.Ops)-1].ID
	}
	return ""
}

// serveWrites answers a connection as a server would: DEVICE_ACK to
// DEVICE_HELLO, and OP_ACK to each write batch ack accepts (numbered from
// 1 on this connection), until the client leaves.
func serveWrites(ws *websocket.Conn, ack func(batch int) bool) {
	batches := 0
	for {
		m, err := readMsg(ws)
		if err != nil {
			return
		}
		switch m.(type) {
		case *wire.DeviceHello:
			_ = writeMsg(ws, &wire.DeviceAck{DeviceID: "d"})
		case *wire.ClientOpMessage, *wire.OpBatch:
			batches++
			if ack(batches) {
				_ = writeMsg(ws, &wire.OpAck{LastID: lastID(m), AchievedLevel: wire.Applied})
			}
		}
	}
}

// The load goes to the address given and nowhere else: a server that
// answers the upgrade with a redirect does not send the writes (and the
// token) to another host.
func TestRun_doesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	var elsewhere atomic.Int64
	other := fakeServer(t, func(n int, ws *websocket.Conn) {
		elsewhere.Add(1)
		serveWrites(ws, func(int) bool { return true })
	})
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/ws", http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()
	res, err := loadgen.Run(context.Background(), loadgen.Options{
		URL: wsURL(redirector), Duration: time.Minute, MaxOps: 3, DialTimeout: 10 * time.Second, Logger: testLogger(t),
	})
	t.Log(err)
	if n := elsewhere.Load(); n != 0 {
		t.Errorf("the run connected %d times to the server it was redirected to (%d ops acknowledged there)", n, res.Ops)
	}
	if err == nil {
		t.Errorf("Run against a redirect succeeded (%v), want an error", res)
	}
}

// No batch leaves once Duration has passed, not even from a connection
// whose re-dial finished after it.
func TestRun_noBatchAfterDurationOnRedial(t *testing.T) {
	t.Parallel()
	const duration = 900 * time.Millisecond
	var firstBatch atomic.Int64 // unix nanos of the first batch's arrival
	var redialled atomic.Bool
	var late atomic.Int64 // batches that arrived on the re-dialled connection
	srv := fakeServer(t, func(n int, ws *websocket.Conn) {
		for {
			m, err := readMsg(ws)
			if err != nil {
				return
			}
			switch m.(type) {
			case *wire.DeviceHello:
				if n == 1 {
					_ = writeMsg(ws, &wire.DeviceAck{DeviceID: "d"})
					continue
				}
				redialled.Store(true)
				// The first batch arrived after the run started, so this
				// is after its end.
				time.Sleep(time.Until(time.Unix(0, firstBatch.Load()).Add(duration + 50*time.Millisecond)))
				_ = writeMsg(ws, &wire.DeviceAck{DeviceID: "d"})
			case *wire.ClientOpMessage, *wire.OpBatch:
				if n == 1 {
					firstBatch.Store(time.Now().UnixNano())
					return // the connection drops before the ack
				}
				late.Add(1)
				_ = writeMsg(ws, &wire.OpAck{LastID: lastID(m), AchievedLevel: wire.Applied})
			}
		}
	})
	start := time.Now()
	res, err := loadgen.Run(context.Background(), loadgen.Options{URL: wsURL(srv), Duration: duration, Logger: testLogger(t)})
	t.Log(res, err)
	if !redialled.Load() {
		t.Skipf("the machine was too slow to re-dial within %v", duration)
	}
	if n := late.Load(); n != 0 {
		t.Errorf("%d batches were sent after the %v duration (run took %v)", n, duration, time.Since(start))
	}
}

// Elapsed runs to the last ack: a batch that is never acknowledged does
// not stretch it by the AckTimeout spent waiting for it.
func TestRun_elapsedEndsAtLastAck(t *testing.T) {
	t.Parallel()
	const ackTimeout = 3 * time.Second
	srv := fakeServer(t, func(n int, ws *websocket.Conn) {
		serveWrites(ws, func(batch int) bool { return batch <= 3 }) // later batches are never acknowledged
	})
	res, err := loadgen.Run(context.Background(), loadgen.Options{
		URL: wsURL(srv), Duration: 100 * time.Millisecond, AckTimeout: ackTimeout, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res)
	if res.Ops != 3 || res.Errors != 1 {
		t.Fatalf("Ops %d, Errors %d; want 3 acknowledged and the unacknowledged batch as an error", res.Ops, res.Errors)
	}
	if res.Elapsed >= ackTimeout {
		t.Errorf("Elapsed = %v, want it to end at the last ack, not after the %v ack timeout of the failed batch", res.Elapsed, ackTimeout)
	}
	if got := float64(res.Ops) / res.Elapsed.Seconds(); got != res.OpsPerSec {
		t.Errorf("OpsPerSec = %v, want Ops/Elapsed = %v", res.OpsPerSec, got)
	}
}
