package client

import (
	"strings"
	"testing"

	"github.com/topgun-go/topgun/server/wire"
)

// queuedNotes is how many callbacks wait to run.
func queuedNotes(c *Client) int {
	c.notes.mu.Lock()
	defer c.notes.mu.Unlock()
	return len(c.notes.queue)
}

// A callback may block (the client never waits for it), so what the
// server sends for the callbacks while one blocks must not pile up
// without bound: each ERROR queued for OnServerError holds the server's
// message. A server that floods ERRORs (or GC_PRUNEs) would otherwise
// grow the client's memory for as long as the callback blocks.
func TestCallbacks_floodWhileOneBlocksIsBounded(t *testing.T) {
	t.Parallel()
	const flood = 3 * maxLimitedNotes
	fs := newFakeServer(t, "")
	fs.setIntercept(func(c *fakeConn, m wire.Message) bool {
		p, ok := m.(*wire.Ping)
		if !ok {
			return false
		}
		// In order before the PONG: dispatched once Ping returns.
		text := strings.Repeat("x", 1000)
		for i := range flood {
			fs.send(c, &wire.ErrorMessage{Code: 500, Message: text})
			fs.send(c, &wire.GCPrune{OlderThan: wire.Timestamp{Millis: uint64(1e12 + i), NodeID: "srv"}})
		}
		fs.send(c, &wire.Pong{Timestamp: p.Timestamp})
		return true
	})
	o := testOptions(t)
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	var errs int
	var last wire.Timestamp
	o.OnServerError = func(*wire.ErrorMessage) {
		errs++
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
	}
	o.OnGCPrune = func(ts wire.Timestamp) { last = ts }
	c := dial(t, fs.URL, o)
	if _, err := c.Ping(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	<-entered
	if n := queuedNotes(c); n > maxLimitedNotes+2 {
		t.Errorf("%d callbacks queued behind a blocked one for %d ERRORs and %d GC_PRUNEs, want at most %d", n, flood, flood, maxLimitedNotes+2)
	}
	close(release)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	// The greatest cut-off is never lost: pruning by it prunes by the others.
	if want := uint64(1e12 + flood - 1); last.Millis != want {
		t.Errorf("last GC_PRUNE cut-off given = %d, want %d", last.Millis, want)
	}
	if errs == 0 {
		t.Error("no OnServerError call")
	}
}
