package protocol

import (
	"runtime"
	"sync"
	"testing"

	"github.com/coder/websocket"

	"github.com/topgun-go/topgun/server/record"
	"github.com/topgun-go/topgun/server/store"
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

// slowAndOther serves a connection with a live query on map "slow", whose
// matching is held until release, another with one on map "fast", and a
// writer.
func slowAndOther(t *testing.T) (e *env, release func(), slow, other, w *client) {
	hook, release := holdMap("slow")
	e = newEnv(t, envConfig{changeHook: hook})
	t.Cleanup(release)
	slow = e.dial(t)
	slow.send(&wire.QuerySub{QueryID: "s", MapName: "slow"})
	expect[*wire.QueryResp](slow)
	other = e.dial(t)
	other.send(&wire.QuerySub{QueryID: "o", MapName: "fast"})
	expect[*wire.QueryResp](other)
	return e, release, slow, other, e.dial(t)
}

// A connection whose live queries are slow to match holds up only itself:
// another client's live query hears of a later change meanwhile, and the
// slow one gets its update once its matching is done. Matching ran on the
// one goroutine that serves the change feed to every client, so one
// client's costly queries delayed every client's events and updates.
func TestFeed_slowMatchingHoldsUpOnlyItsConnection(t *testing.T) {
	t.Parallel()
	_, release, slow, other, w := slowAndOther(t)
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
	e, _, slow, other, w := slowAndOther(t)
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
			if !q.push(feedItem{prune: &pruneOffer{ts: record.Timestamp{Millis: uint64(next)}}}) {
				t.Fatalf("push %d refused with %d waiting", next, next-want)
			}
			next++
		}
	}
	pop := func(n int) {
		for i := 0; i < n; i++ {
			it, ok := q.pop()
			if !ok || it.prune.ts.Millis != uint64(want) {
				t.Fatalf("pop = %+v, %v; want item %d", it.prune, ok, want)
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

// A backlog the worker has emptied holds no commit and keeps no large
// array: a connection that once fell far behind and then hears of no
// change for long must not keep the commits it was handed (a group commit
// holds up to 64 MiB of values) nor a slot for each.
func TestFeedBacklog_emptiedHoldsNothing(t *testing.T) {
	q := feedBacklog{ready: make(chan struct{}, 1)}
	ch := &store.Change{Map: "m", Key: "k"}
	item := feedItem{commit: &feedCommit{changes: []feedChange{{ch: ch}}}}
	for i := 0; i < feedQueue; i++ {
		q.push(item)
	}
	// The worker takes items as fast as they come, never emptying the
	// backlog, then catches up.
	for round := 0; round < 3; round++ {
		for i := 0; i < feedQueue-10; i++ {
			q.pop()
		}
		for i := 0; i < feedQueue-10; i++ {
			q.push(item)
		}
	}
	// Only the items that wait are held.
	for i, it := range q.items[:cap(q.items)] {
		if (i < q.head || i >= len(q.items)) && (it.commit != nil || it.prune != nil) {
			t.Fatalf("backlog holds an item in slot %d, outside the %d waiting in %d:%d", i, len(q.items)-q.head, q.head, len(q.items))
		}
	}
	for _, ok := q.pop(); ok; _, ok = q.pop() {
	}
	if c := cap(q.items); c > feedKeep {
		t.Errorf("emptied backlog keeps %d slots", c)
	}
}

// What a connection's backlog takes for a commit does not grow with the
// commit's changes: they are shared by every connection handed them. A
// record of each change for each connection (56 bytes) took, for
// connections whose matching lags, up to 1024 commits' worth each: one
// OP_BATCH of 10,000 ops a commit and 100 live query holders, 56 MiB a
// commit, far past the memory the whole change feed takes.
func TestFeed_backlogSharesCommitChanges(t *testing.T) {
	hook, release := holdMap("m")
	e := newEnv(t, envConfig{changeHook: hook})
	t.Cleanup(release)
	const conns, changes, commits = 50, 10_000, 2
	for i := 0; i < conns; i++ {
		c := e.srv.newConn(nil, "test")
		t.Cleanup(func() { c.abort(); e.srv.removeConn(c) })
		c.handleFrame(mustEncode(t, &wire.QuerySub{QueryID: "q", MapName: "m"}), 0)
	}
	cms := make([]*store.Commit, commits)
	for i := range cms {
		cm := &store.Commit{Changes: make([]store.Change, changes)}
		for j := range cm.Changes {
			cm.Changes[j] = store.Change{Map: "m", Key: "k", Kind: store.ChangeORRemove, Tag: "t"}
		}
		cms[i] = cm
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, cm := range cms {
		e.srv.dispatch(cm)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	// The SERVER_EVENTs encoded once (under 1 MiB here) and a few words
	// a connection.
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 8<<20 {
		t.Errorf("backlogs of %d connections take %d MiB for %d commits of %d changes", conns, grown>>20, commits, changes)
	}
	runtime.KeepAlive(cms)
}

// A connection holding live queries on several maps gets the events and
// updates of one commit in the order of its changes, whatever their maps.
func TestFeed_commitOrderAcrossMaps(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	c := e.dial(t)
	for _, m := range []string{"a", "b", "c"} {
		c.send(&wire.QuerySub{QueryID: m, MapName: m})
		expect[*wire.QueryResp](c)
	}
	w := e.dial(t)
	var ops []wire.ClientOp
	var want []string
	for i := 0; i < 30; i++ {
		m := []string{"a", "b", "c", "other"}[(i*7)%4]
		ops = append(ops, putOp(itoa(i+1), m, "k"+itoa(i), "v", cts("w")))
		if m != "other" {
			want = append(want, "SERVER_EVENT "+m+"/k"+itoa(i), "QUERY_UPDATE "+m+"/k"+itoa(i))
		}
	}
	w.write(ops...)
	for i, wm := range want {
		var got string
		switch m := c.next().(type) {
		case *wire.ServerEvent:
			got = "SERVER_EVENT " + m.MapName + "/" + m.Key
		case *wire.QueryUpdate:
			got = "QUERY_UPDATE " + m.QueryID + "/" + m.Key
		default:
			t.Fatalf("message %d: got %s, want %s", i, m.Type(), wm)
		}
		if got != wm {
			t.Fatalf("message %d: got %s, want %s", i, got, wm)
		}
	}
}
