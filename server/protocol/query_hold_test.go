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
	h := newHeldHook(t) // a read taking long to make ready
	e := newEnv(t, envConfig{readyHook: h.hook})
	w, other := bigAndOther(t, e)

	a := e.dial(t)
	h.armed.Store(true)
	a.send(&wire.QuerySub{QueryID: "q", MapName: "big"})
	<-h.entered
	feedServesOthers(t, w, other, "a query's answer was made ready")
	h.free()
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

// A resync's QUERY_UPDATEs (for a large unlimited query, seconds of
// comparing and encoding) are made without holding the lock the change
// feed needs: the feed goes on serving other clients meanwhile. The
// client gets the resync's updates, then the change buffered during it.
func TestQuery_resyncDoesNotHoldTheFeed(t *testing.T) {
	t.Parallel()
	h := newHeldHook(t) // a resync taking long to compare and encode
	e := newEnv(t, envConfig{diffHook: h.hook})
	w, other := bigAndOther(t, e)
	a := e.dial(t)
	a.send(&wire.QuerySub{QueryID: "q", MapName: "big"})
	if r := skipUntil[*wire.QueryResp](a); len(r.Results) != 3 {
		t.Fatalf("QUERY_RESP %+v, want 3 results", r)
	}

	// The result the server believes the client holds lacks k0 and has
	// a key the map does not: the resync puts both right.
	e.srv.mu.Lock()
	var sub *subscription
	for s := range e.srv.byMap["big"] {
		sub = s
	}
	e.srv.mu.Unlock()
	sub.mu.Lock()
	sub.members.Delete("k0")
	sub.members.Put("gone", member{})
	sub.mu.Unlock()
	h.armed.Store(true)
	e.srv.queueResync(sub)
	<-h.entered
	feedServesOthers(t, w, other, "a resync compared its read")
	h.free()
	got := map[string]wire.ChangeType{}
	var order []string
	for len(order) < 3 {
		if u, ok := a.next().(*wire.QueryUpdate); ok {
			got[u.Key] = u.ChangeType
			order = append(order, u.Key)
		}
	}
	if got["gone"] != wire.Leave || got["k0"] != wire.Enter || got["new"] != wire.Enter || order[2] != "new" {
		t.Fatalf("updates %v in order %v, want LEAVE gone and ENTER k0, then ENTER new", got, order)
	}
}

// heldHook is a server hook that, once armed, signals entered and waits
// for free (at the latest when the test ends).
type heldHook struct {
	armed    atomic.Bool
	entered  chan struct{}
	release  chan struct{}
	released atomic.Bool
}

func newHeldHook(t *testing.T) *heldHook {
	h := &heldHook{entered: make(chan struct{}), release: make(chan struct{})}
	t.Cleanup(h.free)
	return h
}

func (h *heldHook) hook() {
	if h.armed.CompareAndSwap(true, false) {
		close(h.entered)
		<-h.release
	}
}

func (h *heldHook) free() {
	if h.released.CompareAndSwap(false, true) {
		close(h.release)
	}
}

// feedServesOthers has w write a change of map big, then one of map other,
// and checks that other's live query (on other) gets the latter while the
// server is held in what (a hook holding big's query).
func feedServesOthers(t *testing.T, w, other *client, what string) {
	t.Helper()
	w.write(putOp("4", "big", "new", "v", cts("w")))
	w.write(putOp("5", "other", "x", "v", cts("w")))
	// Bounded only against a hang: the feed blocked never sends it.
	hang := time.After(10 * time.Second)
	for got := false; !got; {
		select {
		case m := <-other.msgs:
			u, ok := m.(*wire.QueryUpdate)
			got = ok && u.Key == "x"
		case <-hang:
			t.Fatalf("the change feed stopped while %s", what)
		}
	}
}

// bigAndOther has a writer put three records in map big and a client
// subscribe to map other; it returns both.
func bigAndOther(t *testing.T, e *env) (w, other *client) {
	t.Helper()
	w = e.dial(t)
	for i := 0; i < 3; i++ {
		w.write(putOp(itoa(i+1), "big", "k"+itoa(i), "v", cts("w")))
	}
	other = e.dial(t)
	other.send(&wire.QuerySub{QueryID: "o", MapName: "other"})
	expect[*wire.QueryResp](other)
	return w, other
}
