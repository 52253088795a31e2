package client

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/topgun-go/topgun/server/wire"
)

// A large answer on a slow link takes longer to arrive than PongTimeout,
// and the server's PONGs queue behind it: the bytes of the frame arriving
// show the server alive. Before, the client dropped the connection
// halfway, subscribed again on the next, was sent the same answer and
// dropped it again, never receiving it.
func TestHeartbeat_slowFrameKeepsTheConnection(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, "")
	const parts = 150 // one every 20 ms: about 3 s, three PongTimeouts
	fs.setIntercept(func(c *fakeConn, m wire.Message) bool {
		sub, ok := m.(*wire.QuerySub)
		if !ok {
			return false
		}
		res := make([]wire.QueryResult, parts)
		for i := range res {
			res[i] = wire.QueryResult{Key: "k" + strconv.Itoa(i), Value: strings.Repeat("v", 1000)}
		}
		b, err := wire.Encode(&wire.QueryResp{QueryID: sub.QueryID, Results: res})
		if err != nil {
			t.Error(err)
			return true
		}
		// Sent in parts, as a slow link delivers it; this connection's
		// PINGs are not read (nor answered) meanwhile.
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		w, err := c.ws.Writer(ctx, websocket.MessageBinary)
		if err != nil {
			return true
		}
		step := len(b)/parts + 1
		for len(b) > 0 {
			n := min(step, len(b))
			if _, err := w.Write(b[:n]); err != nil {
				return true
			}
			b = b[n:]
			time.Sleep(20 * time.Millisecond)
		}
		_ = w.Close()
		return true
	})
	o := testOptions(t)
	o.PingInterval = 100 * time.Millisecond
	o.PongTimeout = time.Second
	c := dial(t, fs.URL, o)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	sub, err := c.Subscribe(ctx, "m", nil)
	if err != nil {
		t.Fatalf("Subscribe: %v (connections: %d)", err, fs.upgrades.Load())
	}
	defer sub.Close()
	if len(sub.Initial) != parts {
		t.Errorf("%d results, want %d", len(sub.Initial), parts)
	}
	if n := fs.upgrades.Load(); n != 1 {
		t.Errorf("%d connections, want 1: the client dropped the one receiving the answer", n)
	}
}
