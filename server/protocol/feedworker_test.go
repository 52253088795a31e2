package protocol

import (
	"sync"
	"testing"

	"github.com/coder/websocket"

	"github.com/topgun-go/topgun/server/wire"
)

// holdMap returns a Server.changeHook that holds every live query of
// mapName as it is handed a change, as a query slow to match (a regex over
// a long string) holds it, until release is called. Register release with
// t.Cleanup after newEnv, so that it runs before the server's close waits
// for the held connection.
func holdMap(mapName string) (hook func(*subscription), release func()) {
	ch := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(ch) }) }
	return func(sub *subscription) {
		if sub.mapName == mapName {
			<-ch
		}
	}, release
}

// A connection whose live queries are slow to match holds up only itself:
// another client's live query hears of a later change meanwhile, and the
// slow one gets its update once its matching is done. Matching ran on the
// one goroutine that serves the change feed to every client, so one
// client's costly queries delayed every client's events and updates.
func TestFeed_slowMatchingHoldsUpOnlyItsConnection(t *testing.T) {
	t.Parallel()
	hook, release := holdMap("slow")
	e := newEnv(t, envConfig{changeHook: hook})
	t.Cleanup(release)
	slow := e.dial(t)
	slow.send(&wire.QuerySub{QueryID: "s", MapName: "slow"})
	expect[*wire.QueryResp](slow)
	other := e.dial(t)
	other.send(&wire.QuerySub{QueryID: "o", MapName: "fast"})
	expect[*wire.QueryResp](other)
	w := e.dial(t)
	w.write(putOp("1", "slow", "k", "v", cts("w")))
	w.write(putOp("2", "fast", "k", "v", cts("w")))
	if u := skipUntil[*wire.QueryUpdate](other); u.QueryID != "o" || u.Key != "k" {
		t.Fatalf("other client got %+v, want its query's update of k", u)
	}
	release()
	if u := skipUntil[*wire.QueryUpdate](slow); u.QueryID != "s" || u.Key != "k" {
		t.Fatalf("slow client got %+v, want its query's update of k", u)
	}
}

// A connection whose matching falls feedQueue commits behind is closed
// (1013: its client reconnects and syncs), alone: the others are served.
func TestFeed_connectionFallenBehindIsClosedAlone(t *testing.T) {
	t.Parallel()
	hook, release := holdMap("slow")
	e := newEnv(t, envConfig{changeHook: hook})
	t.Cleanup(release)
	slow := e.dial(t)
	slow.send(&wire.QuerySub{QueryID: "s", MapName: "slow"})
	expect[*wire.QueryResp](slow)
	other := e.dial(t)
	other.send(&wire.QuerySub{QueryID: "o", MapName: "fast"})
	expect[*wire.QueryResp](other)
	w := e.dial(t)
	// The first commit holds the worker; feedQueue more fill its queue;
	// the next one finds it full.
	for i := 0; i < feedQueue+2; i++ {
		w.write(putOp(itoa(i+1), "slow", "k"+itoa(i), "v", cts("w")))
	}
	if code := slow.closed(); code != websocket.StatusTryAgainLater {
		t.Fatalf("slow connection closed with %v, want %v", code, websocket.StatusTryAgainLater)
	}
	if n := e.srv.Stats().FeedLags; n != 1 {
		t.Errorf("FeedLags = %d, want 1", n)
	}
	w.write(putOp(itoa(feedQueue+3), "fast", "k", "v", cts("w")))
	if u := skipUntil[*wire.QueryUpdate](other); u.QueryID != "o" || u.Key != "k" {
		t.Fatalf("other client got %+v, want its query's update of k", u)
	}
}

// The backlog keeps commit order and its bound while the worker never
// empties it (changes keep coming as fast as it takes them).
func TestFeedBacklog_orderAndBound(t *testing.T) {
	q := feedBacklog{ready: make(chan struct{}, 1)}
	next, want := 0, 0
	push := func(n int) {
		for i := 0; i < n; i++ {
			if !q.push(feedItem{changes: make([]connChange, next)}) {
				t.Fatalf("push %d refused with %d waiting", next, next-want)
			}
			next++
		}
	}
	pop := func(n int) {
		for i := 0; i < n; i++ {
			it, ok := q.pop()
			if !ok || len(it.changes) != want {
				t.Fatalf("pop = %d items, %v; want item %d", len(it.changes), ok, want)
			}
			want++
		}
	}
	push(feedQueue)
	if q.push(feedItem{}) {
		t.Fatalf("push accepted with %d waiting", feedQueue)
	}
	for round := 0; round < 5; round++ {
		pop(feedQueue - 10)
		push(feedQueue - 10)
	}
	if len(q.items) > 2*feedQueue+1 {
		t.Errorf("backlog holds %d slots for %d waiting", len(q.items), next-want)
	}
	pop(next - want)
	if _, ok := q.pop(); ok {
		t.Fatal("pop from an empty backlog")
	}
}
