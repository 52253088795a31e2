package protocol

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/topgun-go/topgun/server/wire"
)

// A QUERY_SUB's answer is made ready (its result ordered, its QUERY_RESP
// encoded: seconds for a million records) without holding the lock the
// change feed needs to hand the query the map's changes: the feed, one
// goroutine for all clients, goes on serving the others meanwhile. The
// change it buffered for the query reaches its client after the
// QUERY_RESP.
func TestQuery_answerDoesNotHoldTheFeed(t *testing.T) {
	t.Parallel()
	var armed atomic.Bool
	entered := make(chan struct{})
	release := make(chan struct{})
	e := newEnv(t, envConfig{readyHook: func() {
		if armed.CompareAndSwap(true, false) {
			close(entered)
			<-release // a read taking long to make ready
		}
	}})
	w := e.dial(t)
	for i := 0; i < 3; i++ {
		w.write(putOp(itoa(i+1), "big", "k"+itoa(i), "v", cts("w")))
	}
	other := e.dial(t)
	other.send(&wire.QuerySub{QueryID: "o", MapName: "other"})
	expect[*wire.QueryResp](other)

	a := e.dial(t)
	armed.Store(true)
	a.send(&wire.QuerySub{QueryID: "q", MapName: "big"})
	<-entered
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()
	// A change of the map being answered, then one of another map.
	w.write(putOp("4", "big", "new", "v", cts("w")))
	w.write(putOp("5", "other", "x", "v", cts("w")))
	// Bounded only against a hang: without the fix this never comes
	// while the answer is held.
	hang := time.After(10 * time.Second)
	for got := false; !got; {
		select {
		case m := <-other.msgs:
			u, ok := m.(*wire.QueryUpdate)
			got = ok && u.Key == "x"
		case <-hang:
			t.Fatal("the change feed stopped while a query's answer was made ready")
		}
	}
	released = true
	close(release)
	// SERVER_EVENTs aside (they are not the query's), the QUERY_RESP
	// comes first, then the update of the change buffered meanwhile.
	var got []wire.Message
	for len(got) < 2 {
		if m := a.next(); m.Type() != wire.TypeServerEvent {
			got = append(got, m)
		}
	}
	if r, ok := got[0].(*wire.QueryResp); !ok || len(r.Results) != 3 {
		t.Fatalf("got %s %+v, want QUERY_RESP with 3 results", got[0].Type(), got[0])
	}
	if u, ok := got[1].(*wire.QueryUpdate); !ok || u.Key != "new" || u.ChangeType != wire.Enter {
		t.Fatalf("got %s %+v, want QUERY_UPDATE ENTER of new", got[1].Type(), got[1])
	}
}
