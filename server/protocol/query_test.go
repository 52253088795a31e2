package protocol

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/coder/websocket"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/plugins/null"
	"github.com/topgun-go/topgun/server/store"
	"github.com/topgun-go/topgun/server/wire"
)

func person(name string, age int64) map[string]any {
	return map[string]any{"name": name, "age": age}
}

func adultsQuery(id string) *wire.QuerySub {
	lim := uint32(50)
	return &wire.QuerySub{QueryID: id, MapName: "users", Query: wire.Query{
		Where: map[string]any{"age": map[string]any{"$gt": int64(18)}},
		Sort:  []wire.SortField{{Field: "age", Direction: wire.Desc}},
		Limit: &lim,
	}}
}

func TestQuery_initialResultsSortedAndFiltered(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	w := e.dial(t)
	w.write(
		putOp("1", "users", "u1", person("Ann", 30), cts("w")),
		putOp("2", "users", "u2", person("Bob", 12), cts("w")),
		putOp("3", "users", "u3", person("Cid", 45), cts("w")),
		putOp("4", "users", "u4", person("Dee", 19), cts("w")),
		putOp("5", "users", "u5", "not a map", cts("w")),
		orAddOp("6", "users", "u6", person("Orr", 99), cts("w")),
	)
	w.write(removeOp("7", "users", "u4", cts("w")))
	e.feedCaughtUp(t) // c hears of no write above: only results
	c := e.dial(t)
	c.send(adultsQuery("q1"))
	resp := expect[*wire.QueryResp](c)
	var keys []string
	for _, r := range resp.Results {
		keys = append(keys, r.Key)
	}
	if len(keys) != 2 || keys[0] != "u3" || keys[1] != "u1" {
		t.Fatalf("results %v, want [u3 u1] (age desc, minors, tombstones and OR keys excluded)", keys)
	}
	if resp.HasMore == nil || *resp.HasMore {
		t.Fatalf("hasMore %v", resp.HasMore)
	}
	// A predicate tree takes precedence over where.
	c.send(&wire.QuerySub{QueryID: "qp", MapName: "users", Query: wire.Query{
		Where: map[string]any{"name": "nobody"},
		Predicate: &wire.Predicate{Op: wire.OpOr, Children: []*wire.Predicate{
			{Op: wire.OpLt, Attribute: "age", Value: int64(13)},
			{Op: wire.OpStartsWith, Attribute: "name", Value: "Ci"},
		}},
		Sort: []wire.SortField{{Field: "name", Direction: wire.Asc}},
	}})
	rp := expect[*wire.QueryResp](c)
	if len(rp.Results) != 2 || rp.Results[0].Key != "u2" || rp.Results[1].Key != "u3" || rp.HasMore != nil {
		t.Fatalf("predicate results %+v", rp.Results)
	}
	// Projection.
	c.send(&wire.QuerySub{QueryID: "q2", MapName: "users", Query: wire.Query{Where: map[string]any{"name": "Ann"}}, Fields: []string{"name"}})
	r2 := expect[*wire.QueryResp](c)
	if len(r2.Results) != 1 || len(r2.Results[0].Value.(map[string]any)) != 1 {
		t.Fatalf("projected results %+v", r2.Results)
	}
	// Aggregations are refused with an error, not silently wrong.
	c.send(&wire.QuerySub{QueryID: "q3", MapName: "users", Query: wire.Query{GroupBy: []string{"age"}}})
	if r := expect[*wire.QueryResp](c); r.Error == "" || r.Code != "UNSUPPORTED" {
		t.Fatalf("aggregate query: %+v", r)
	}
}

func TestQuery_liveUpdatesAndEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	sub := e.dial(t)
	sub.send(adultsQuery("adults"))
	if r := expect[*wire.QueryResp](sub); len(r.Results) != 0 {
		t.Fatalf("initial %+v", r)
	}
	other := e.dial(t) // subscribed too: sees the subscriber's own writes
	other.send(adultsQuery("adults-2"))
	expect[*wire.QueryResp](other)
	bystander := e.dial(t) // no query on the map: no events
	w := e.dial(t)

	ttl := uint64(90_000)
	op := putOp("1", "users", "u1", person("Ann", 30), cts("w"))
	op.Record.TTLMs = &ttl
	w.write(op)
	ev := expect[*wire.ServerEvent](sub)
	if ev.EventType != wire.EventPut || ev.Key != "u1" || ev.Record == nil || ev.Record.TTLMs == nil || *ev.Record.TTLMs != ttl {
		t.Fatalf("SERVER_EVENT %+v", ev)
	}
	if u := expect[*wire.QueryUpdate](sub); u.ChangeType != wire.Enter || u.Key != "u1" || u.QueryID != "adults" {
		t.Fatalf("QUERY_UPDATE %+v", u)
	}

	w.write(putOp("2", "users", "u1", person("Ann", 31), cts("w")))
	expect[*wire.ServerEvent](sub)
	if u := expect[*wire.QueryUpdate](sub); u.ChangeType != wire.Update || u.Value.(map[string]any)["age"] != int64(31) {
		t.Fatalf("QUERY_UPDATE %+v", u)
	}

	w.write(putOp("3", "users", "u1", person("Ann", 15), cts("w")))
	expect[*wire.ServerEvent](sub)
	if u := expect[*wire.QueryUpdate](sub); u.ChangeType != wire.Leave || u.Value != nil {
		t.Fatalf("QUERY_UPDATE %+v", u)
	}

	w.write(putOp("4", "users", "u2", person("Bo", 40), cts("w")))
	expect[*wire.ServerEvent](sub)
	expect[*wire.QueryUpdate](sub) // ENTER u2
	rm := cts("w")
	w.write(removeOp("5", "users", "u2", rm))
	ev = expect[*wire.ServerEvent](sub)
	if ev.EventType != wire.EventRemove || ev.Record == nil || ev.Record.Value != nil || ev.Record.Timestamp != rm {
		t.Fatalf("REMOVE event %+v, want the tombstone", ev)
	}
	if u := expect[*wire.QueryUpdate](sub); u.ChangeType != wire.Leave || u.Key != "u2" {
		t.Fatalf("QUERY_UPDATE %+v", u)
	}

	// The subscriber's own write: no event and no update for it, but the
	// other subscriber hears of it, and the result state follows.
	sub.send(&wire.OpBatch{Ops: []wire.ClientOp{putOp("10", "users", "u3", person("Cy", 50), cts("s"))}})
	expect[*wire.OpAck](sub)          // nothing else before the ack...
	sub.quiet(100 * time.Millisecond) // ...nor after it
	for range 5 {                     // the other subscriber saw the five earlier changes too
		skipUntil[*wire.ServerEvent](other)
	}
	if ev := skipUntil[*wire.ServerEvent](other); ev.Key != "u3" {
		t.Fatalf("other subscriber: %+v", ev)
	}
	if u := skipUntil[*wire.QueryUpdate](other); u.Key != "u3" || u.ChangeType != wire.Enter {
		t.Fatalf("other subscriber: %+v", u)
	}
	w.write(putOp("6", "users", "u3", person("Cy", 5), cts("w")))
	expect[*wire.ServerEvent](sub)
	if u := expect[*wire.QueryUpdate](sub); u.ChangeType != wire.Leave || u.Key != "u3" {
		t.Fatalf("after own ENTER, a LEAVE: %+v", u)
	}
	bystander.quiet(50 * time.Millisecond)

	// Unsubscribed: nothing more.
	sub.send(&wire.QueryUnsub{QueryID: "adults"})
	sub.ping()
	w.write(putOp("7", "users", "u9", person("Zed", 70), cts("w")))
	sub.quiet(100 * time.Millisecond)
}

func TestQuery_limitRefills(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	w := e.dial(t)
	w.write(
		putOp("1", "scores", "a", map[string]any{"s": int64(10)}, cts("w")),
		putOp("2", "scores", "b", map[string]any{"s": int64(20)}, cts("w")),
		putOp("3", "scores", "c", map[string]any{"s": int64(30)}, cts("w")),
	)
	// Else, under load, c could hear of a, b and c too: their SERVER_EVENTs
	// in place of d's.
	e.feedCaughtUp(t)
	lim := uint32(2)
	c := e.dial(t)
	c.send(&wire.QuerySub{QueryID: "top", MapName: "scores", Query: wire.Query{Sort: []wire.SortField{{Field: "s", Direction: wire.Desc}}, Limit: &lim}})
	r := expect[*wire.QueryResp](c)
	if len(r.Results) != 2 || r.Results[0].Key != "c" || r.Results[1].Key != "b" || r.HasMore == nil || !*r.HasMore {
		t.Fatalf("initial %+v", r)
	}
	// A better record enters and pushes the last one out.
	w.write(putOp("4", "scores", "d", map[string]any{"s": int64(40)}, cts("w")))
	expect[*wire.ServerEvent](c)
	u1, u2 := expect[*wire.QueryUpdate](c), expect[*wire.QueryUpdate](c)
	if u1.Key != "b" || u1.ChangeType != wire.Leave || u2.Key != "d" || u2.ChangeType != wire.Enter {
		t.Fatalf("updates %+v %+v", u1, u2)
	}
	// A member leaves: the result refills from the records outside it.
	w.write(removeOp("5", "scores", "c", cts("w")))
	expect[*wire.ServerEvent](c)
	if u := expect[*wire.QueryUpdate](c); u.Key != "c" || u.ChangeType != wire.Leave {
		t.Fatalf("update %+v", u)
	}
	if u := expect[*wire.QueryUpdate](c); u.Key != "b" || u.ChangeType != wire.Enter {
		t.Fatalf("refill %+v", u)
	}
}

// Numbers past 2^53 sort exactly, integers against floats too: rounded,
// 2^60-1 and 2^60+1 both equal 2^60.0 and the order went round in a
// circle (ties broken by key), so a limited query's live result depended
// on the order of the writes and differed from a fresh QUERY_SUB of it.
// (A TopGun client sends integers above 2^32 as floats, a Go client as
// integers.)
func TestQuery_limitedSortOfBigNumbersMatchesFreshQuery(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	w := e.dial(t)
	lim := uint32(1)
	q := wire.Query{Sort: []wire.SortField{{Field: "v", Direction: wire.Asc}}, Limit: &lim}
	c := e.dial(t)
	c.send(&wire.QuerySub{QueryID: "least", MapName: "m", Query: q})
	if r := expect[*wire.QueryResp](c); len(r.Results) != 0 {
		t.Fatalf("initial %+v", r)
	}
	for i, kv := range []struct {
		key string
		v   any
	}{{"k1", int64(1<<60 + 1)}, {"k3", int64(1<<60 - 1)}, {"k2", float64(1 << 60)}, {"kz", "after every number"}} {
		w.write(putOp(itoa(i), "m", kv.key, map[string]any{"v": kv.v}, cts("w")))
	}
	// A change's updates follow its SERVER_EVENT and come before the next
	// change's: those of k2 have all come once kz's event has.
	live := map[string]bool{}
	for events := 0; events < 4; {
		switch m := c.next().(type) {
		case *wire.ServerEvent:
			events++
		case *wire.QueryUpdate:
			if m.ChangeType == wire.Leave {
				delete(live, m.Key)
			} else {
				live[m.Key] = true
			}
		}
	}
	c.send(&wire.QuerySub{QueryID: "fresh", MapName: "m", Query: q})
	r := skipUntil[*wire.QueryResp](c)
	if len(r.Results) != 1 || r.Results[0].Key != "k3" || len(live) != 1 || !live["k3"] {
		t.Fatalf("least of 2^60+1, 2^60-1, 2^60.0: live %v, fresh %+v; want k3 (2^60-1)", live, r.Results)
	}
}

func TestQuery_expiryReachesSubscribers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{fakeWall: true})
	c := e.dial(t)
	c.send(&wire.QuerySub{QueryID: "all", MapName: "sessions"})
	expect[*wire.QueryResp](c)
	w := e.dial(t)
	ts := wire.Timestamp{Millis: uint64(e.wall.Load()), NodeID: "w"}
	ttl := uint64(1000)
	op := putOp("1", "sessions", "s1", "token", ts)
	op.Record.TTLMs = &ttl
	w.write(op)
	expect[*wire.ServerEvent](c)
	expect[*wire.QueryUpdate](c)

	e.wall.Add(5000)
	if n, err := e.st.ReapExpired(context.Background()); err != nil || n != 1 {
		t.Fatalf("ReapExpired = %d, %v", n, err)
	}
	ev := expect[*wire.ServerEvent](c)
	if ev.EventType != wire.EventRemove || ev.Key != "s1" || ev.Record == nil || ev.Record.Value != nil {
		t.Fatalf("expiry event %+v", ev)
	}
	if u := expect[*wire.QueryUpdate](c); u.ChangeType != wire.Leave || u.Key != "s1" {
		t.Fatalf("expiry update %+v", u)
	}
}

func TestQuery_gcPruneReachesClients(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{fakeWall: true, storeOpts: func(o *store.Options) { o.TombstoneTTL = time.Minute }})
	w := e.dial(t)
	listener := e.dial(t)
	listener.ping()
	ts := wire.Timestamp{Millis: uint64(e.wall.Load()), NodeID: "w"}
	w.write(putOp("1", "m", "k", "v", ts))
	ts.Counter++
	w.write(removeOp("2", "m", "k", ts))
	e.wall.Add(int64(2 * time.Minute / time.Millisecond))
	if n, err := e.st.CollectTombstones(context.Background()); err != nil || n != 1 {
		t.Fatalf("CollectTombstones = %d, %v", n, err)
	}
	p := expect[*wire.GCPrune](listener)
	if p.OlderThan.Millis == 0 || p.OlderThan.Millis <= ts.Millis {
		t.Fatalf("GC_PRUNE %+v", p)
	}
}

// When the server falls behind the change feed, the SERVER_EVENTs of the
// commits it missed are gone: the connections holding a live query (the
// ones sent events) are closed with 1013 so that their clients reconnect
// and sync. A connection without one stays open, and a new subscriber
// reads every record.
func TestQuery_laggedFeedClosesQueryHolders(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})
	var blocked = make(chan struct{}, 1)
	hook := func() {
		select {
		case blocked <- struct{}{}:
		default:
		}
		<-gate
	}
	e := newEnv(t, envConfig{hook: hook, storeOpts: func(o *store.Options) { o.FeedBuffer = 2 }})
	c := e.dial(t)
	c.send(&wire.QuerySub{QueryID: "all", MapName: "m"})
	expect[*wire.QueryResp](c)
	w := e.dial(t)
	// The feed reader is stuck on the first commit while more commit.
	w.write(putOp("1", "m", "k0", int64(0), cts("w")))
	<-blocked
	for i := 1; i <= 5; i++ {
		w.write(putOp(itoa(i+1), "m", "k"+itoa(i), int64(i), cts("w")))
	}
	close(gate)
	if code := c.closed(); code != websocket.StatusTryAgainLater {
		t.Fatalf("query holder closed with %v, want %v", code, websocket.StatusTryAgainLater)
	}
	if n := e.srv.Stats().FeedLags; n != 1 {
		t.Fatalf("FeedLags = %d, want 1", n)
	}
	w.ping() // the writer, which held no query, is still served
	c2 := e.dial(t)
	c2.send(&wire.QuerySub{QueryID: "all", MapName: "m"})
	if r := expect[*wire.QueryResp](c2); len(r.Results) != 6 {
		t.Fatalf("subscribing again: %d results, want 6", len(r.Results))
	}
	// The feed serves the new subscriber.
	w.write(putOp("9", "m", "k9", int64(9), cts("w")))
	if u := skipUntil[*wire.QueryUpdate](c2); u.Key != "k9" || u.ChangeType != wire.Enter {
		t.Fatalf("update %+v, want k9 ENTER", u)
	}
}

// The live queries of one connection hold at most MaxQueryResults records
// when a query starts; one that would pass it is refused with LIMIT and
// not kept, and the budget comes back when a query ends.
func TestQuery_resultBudget(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{opts: Options{MaxQueryResults: 10}})
	w := e.dial(t)
	var ops []wire.ClientOp
	for i := 0; i < 8; i++ {
		ops = append(ops, putOp(itoa(i+1), "m", "k"+itoa(i), map[string]any{"n": int64(i)}, cts("w")))
	}
	w.write(ops...)
	c := e.dial(t)
	sub := func(id string, limit uint32) *wire.QueryResp {
		q := wire.Query{}
		if limit > 0 {
			q.Limit = &limit
		}
		c.send(&wire.QuerySub{QueryID: id, MapName: "m", Query: q})
		return skipUntil[*wire.QueryResp](c)
	}
	if r := sub("all", 0); r.Error != "" || len(r.Results) != 8 {
		t.Fatalf("first query: %+v", r)
	}
	r := sub("again", 0)
	if r.Code != "LIMIT" || !strings.Contains(r.Error, "TOPGUN_MAX_QUERY_RESULTS") || len(r.Results) != 0 {
		t.Fatalf("query over the budget: %+v", r)
	}
	if r := sub("top2", 2); r.Error != "" || len(r.Results) != 2 {
		t.Fatalf("query within the budget: %+v", r)
	}
	// The refused query was not kept: a write reaches the others only.
	w.write(putOp("9", "m", "k8", map[string]any{"n": int64(8)}, cts("w")))
	u := skipUntil[*wire.QueryUpdate](c)
	if u.QueryID != "all" || u.Key != "k8" || u.ChangeType != wire.Enter {
		t.Fatalf("update %+v", u)
	}
	// Ending a query frees its share: "all" held 9 records now, "top2"
	// holds 2, so 9 more fit only once both are gone.
	c.send(&wire.QueryUnsub{QueryID: "all"})
	if r := sub("again", 0); r.Code != "LIMIT" || !strings.Contains(r.Error, "would hold 11 records") {
		t.Fatalf("with 2 records held: %+v", r)
	}
	c.send(&wire.QueryUnsub{QueryID: "top2"})
	if r := sub("again", 0); r.Error != "" || len(r.Results) != 9 {
		t.Fatalf("after unsubscribing: %+v", r)
	}
	if n := e.srv.Stats().QueriesRefused; n != 2 {
		t.Fatalf("QueriesRefused = %d, want 2", n)
	}
}

// A QUERY_SUB answered UNAVAILABLE (the map could not be read) is not
// kept: the client hears nothing more of it and may subscribe again.
func TestQuery_failedSubscribeIsNotKept(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	e.be.setScanHook(func() error { return abi.Errorf(abi.CodeUnavailable, "test: storage down") })
	c := e.dial(t)
	c.send(&wire.QuerySub{QueryID: "q", MapName: "m"})
	if r := expect[*wire.QueryResp](c); r.Code != "UNAVAILABLE" {
		t.Fatalf("want an error, got %+v", r)
	}
	e.be.setScanHook(nil)
	w := e.dial(t)
	w.write(putOp("1", "m", "a", "v", cts("w")))
	c.quiet(300 * time.Millisecond) // no QUERY_UPDATE (nor SERVER_EVENT: no live query on m)
	c.send(&wire.QuerySub{QueryID: "q", MapName: "m"})
	if r := expect[*wire.QueryResp](c); r.Error != "" || len(r.Results) != 1 {
		t.Fatalf("subscribing again: %+v", r)
	}
}

// A resync that cannot read the map keeps what committed meanwhile and is
// tried again: with limit 1, "a" leaves (a resync refills), "c" is written
// while the resync's scan fails; "c" still enters, and the retried resync
// settles the result on "b", which ranks above it. Before, the buffered
// "c" was dropped and the result stayed empty for good.
func TestQuery_failedResyncKeepsChangesAndRetries(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	w := e.dial(t)
	w.write(
		putOp("1", "m", "a", map[string]any{"s": int64(30)}, cts("w")),
		putOp("2", "m", "b", map[string]any{"s": int64(10)}, cts("w")),
	)
	lim := uint32(1)
	c := e.dial(t)
	c.send(&wire.QuerySub{QueryID: "top", MapName: "m", Query: wire.Query{Sort: []wire.SortField{{Field: "s", Direction: wire.Desc}}, Limit: &lim}})
	if r := expect[*wire.QueryResp](c); len(r.Results) != 1 || r.Results[0].Key != "a" {
		t.Fatalf("initial %+v", r)
	}
	entered := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	e.be.setScanHook(func() error {
		fail := false
		once.Do(func() { close(entered); <-release; fail = true })
		if fail {
			return abi.Errorf(abi.CodeUnavailable, "test: storage down")
		}
		return nil
	})
	w.write(removeOp("3", "m", "a", cts("w")))
	<-entered // the resync is scanning
	w.write(putOp("4", "m", "c", map[string]any{"s": int64(5)}, cts("w")))
	// The feed hands "c" to the subscription while it scans (the ack does
	// not wait for the feed).
	var sub *subscription
	e.srv.mu.RLock()
	for sc := range e.srv.conns {
		sc.subsMu.Lock()
		if s := sc.subs["top"]; s != nil {
			sub = s
		}
		sc.subsMu.Unlock()
	}
	e.srv.mu.RUnlock()
	eventually(t, "change buffered during the resync", func() bool {
		sub.mu.Lock()
		defer sub.mu.Unlock()
		return len(sub.pending) == 1
	})
	close(release)
	var got []string
	for len(got) < 4 {
		if u, ok := c.next().(*wire.QueryUpdate); ok {
			got = append(got, u.Key+":"+string(u.ChangeType))
		}
	}
	if want := []string{"a:LEAVE", "c:ENTER", "c:LEAVE", "b:ENTER"}; !slices.Equal(got, want) {
		t.Fatalf("updates %v, want %v", got, want)
	}
}

// afterScanBackend calls hook after each Scan has read its page, so a test
// can hold a scan that already took its snapshot.
type afterScanBackend struct {
	abi.Backend
	mu   sync.Mutex
	hook func()
}

func (b *afterScanBackend) Scan(ctx context.Context, req abi.ScanRequest) (abi.Page, error) {
	p, err := b.Backend.Scan(ctx, req)
	b.mu.Lock()
	hook := b.hook
	b.mu.Unlock()
	if hook != nil {
		hook()
	}
	return p, err
}

// A connection whose QUERY_SUB is still reading its map when the server
// falls behind the feed is closed too: the commits it missed would never
// reach the result its read is building.
func TestQuery_laggedFeedClosesPendingSubscriber(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})
	blocked := make(chan struct{}, 1)
	var gated sync.Once
	hook := func() {
		select {
		case blocked <- struct{}{}:
		default:
		}
		gated.Do(func() { <-gate })
	}
	be := &afterScanBackend{Backend: null.Open()}
	scanned := make(chan struct{})
	release := make(chan struct{})
	var first atomic.Bool
	be.hook = func() {
		if first.CompareAndSwap(false, true) {
			close(scanned)
			<-release
		}
	}
	e := newEnv(t, envConfig{backend: be, hook: hook, storeOpts: func(o *store.Options) { o.FeedBuffer = 2 }})
	c := e.dial(t)
	c.send(&wire.QuerySub{QueryID: "all", MapName: "m"})
	<-scanned // the QUERY_SUB read the (empty) map and is held
	w := e.dial(t)
	w.write(putOp("1", "m", "k0", int64(0), cts("w")))
	<-blocked // the feed reader is stuck on k0's commit while more commit
	for i := 1; i <= 5; i++ {
		w.write(putOp(itoa(i+1), "m", "k"+itoa(i), int64(i), cts("w")))
	}
	close(gate) // the feed lags
	close(release)
	if code := c.closed(); code != websocket.StatusTryAgainLater {
		t.Fatalf("subscriber closed with %v, want %v", code, websocket.StatusTryAgainLater)
	}
}

// A QUERY_SUB replaces any query of the same id, whatever its answer: one
// refused as unsupported or forbidden must not leave the previous query of
// that id live behind the refusal.
func TestQuery_refusedResubscribeEndsPreviousQuery(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	c := e.dial(t)
	for _, bad := range []*wire.QuerySub{
		{QueryID: "q", MapName: "m", Query: wire.Query{GroupBy: []string{"x"}}},
		{QueryID: "q", MapName: DeviceMap},
	} {
		c.send(&wire.QuerySub{QueryID: "q", MapName: "m"})
		if r := expect[*wire.QueryResp](c); r.Error != "" {
			t.Fatalf("subscribe: %+v", r)
		}
		c.send(bad)
		if r := expect[*wire.QueryResp](c); r.Error == "" {
			t.Fatalf("want a refusal, got %+v", r)
		}
		w := e.dial(t)
		w.write(putOp("1", "m", "k", "v"+bad.MapName, cts("w")))
		c.quiet(200 * time.Millisecond) // no QUERY_UPDATE for "q", no SERVER_EVENT
	}
}

// The live queries of one connection take at most 8 × MaxMessageBytes of
// memory, their QUERY_SUBs decoded plus their compiled $in sets and
// patterns: past it a QUERY_SUB is refused with LIMIT and not kept, and the
// memory comes back when a query ends. Before, 1024 queries of up to
// 32 × MaxMessageBytes each were kept.
func TestQuery_memoryBudget(t *testing.T) {
	t.Parallel()
	const msg = 64 << 10
	e := newEnv(t, envConfig{opts: Options{MaxMessageBytes: msg}})
	w := e.dial(t)
	w.write(putOp("1", "m", "k", map[string]any{"n": int64(7)}, cts("w")))
	c := e.dial(t)
	in := make([]any, 1500) // about 230 KB decoded and hashed
	for i := range in {
		in[i] = int64(i)
	}
	sub := func(id string) *wire.QueryResp {
		c.send(&wire.QuerySub{QueryID: id, MapName: "m", Query: wire.Query{Where: map[string]any{"n": map[string]any{"$in": in}}}})
		return skipUntil[*wire.QueryResp](c)
	}
	n := 0
	var r *wire.QueryResp
	for ; n < 64; n++ {
		if r = sub("q" + itoa(n)); r.Error != "" {
			break
		}
		if len(r.Results) != 1 {
			t.Fatalf("query %d: %+v", n, r)
		}
	}
	if n < 2 || n >= 64 || r.Code != "LIMIT" || !strings.Contains(r.Error, "TOPGUN_MAX_MESSAGE_BYTES") || len(r.Results) != 0 {
		t.Fatalf("after %d queries (%d bytes of queries allowed): %+v", n, queryBytesPerMessageByte*msg, r)
	}
	// The refused query was not kept: a write reaches the others only.
	w.write(putOp("2", "m", "k2", map[string]any{"n": int64(8)}, cts("w")))
	for i := 0; i < n; i++ {
		if u := skipUntil[*wire.QueryUpdate](c); u.QueryID == "q"+itoa(n) || u.Key != "k2" {
			t.Fatalf("update %+v", u)
		}
	}
	c.quiet(200 * time.Millisecond)
	// Ending a query frees its memory; a refused one held none.
	if r := sub("again"); r.Code != "LIMIT" {
		t.Fatalf("still full: %+v", r)
	}
	c.send(&wire.QueryUnsub{QueryID: "q0"})
	if r := sub("again"); r.Error != "" || len(r.Results) != 2 {
		t.Fatalf("after unsubscribing: %+v", r)
	}
	// Re-subscribing an id replaces its query's share, not adds to it.
	if r := sub("again"); r.Error != "" || len(r.Results) != 2 {
		t.Fatalf("re-subscribing: %+v", r)
	}
}

// A regex compiles to thousands of times its size (\pL is 1,400 rune
// ranges): the compiled patterns of a query count against the connection's
// query memory, those of the predicate tree included, and a query whose
// patterns would pass it is refused before they are all compiled. Before,
// a 64 KB QUERY_SUB of 4 KB patterns took about 110 MB.
func TestQuery_memoryBudgetCountsPatterns(t *testing.T) {
	t.Parallel()
	const msg = 64 << 10
	e := newEnv(t, envConfig{opts: Options{MaxMessageBytes: msg}})
	w := e.dial(t)
	w.write(putOp("1", "m", "k", map[string]any{"s": "x"}, cts("w")))
	c := e.dial(t)
	var kids []*wire.Predicate
	for i := 0; i < 15; i++ {
		kids = append(kids, &wire.Predicate{Op: wire.OpRegex, Attribute: "s", Value: strings.Repeat(`\pL`, 1300) + itoa(i)})
	}
	c.send(&wire.QuerySub{QueryID: "big", MapName: "m", Query: wire.Query{Predicate: &wire.Predicate{Op: wire.OpOr, Children: kids}}})
	if r := skipUntil[*wire.QueryResp](c); r.Code != "LIMIT" || !strings.Contains(r.Error, "TOPGUN_MAX_MESSAGE_BYTES") {
		t.Fatalf("query with 15 large patterns: %+v", r)
	}
	// Small patterns are cheap, and identical ones in a tree are compiled
	// once.
	kids = kids[:0]
	for i := 0; i < 500; i++ {
		kids = append(kids, &wire.Predicate{Op: wire.OpRegex, Attribute: "s", Value: `^\w$`})
	}
	c.send(&wire.QuerySub{QueryID: "small", MapName: "m", Query: wire.Query{Predicate: &wire.Predicate{Op: wire.OpOr, Children: kids}}})
	if r := skipUntil[*wire.QueryResp](c); r.Error != "" || len(r.Results) != 1 {
		t.Fatalf("query with small patterns: %+v", r)
	}
}

// A QUERY_SUB whose result would pass MaxQueryResults is refused without
// the whole map read into memory first: the read stops once the result
// is known to be over the bound (a map larger than memory must not be
// loaded whole to answer LIMIT).
func TestQuery_resultBudgetStopsTheRead(t *testing.T) {
	t.Parallel()
	// One record per scan page, so pages count the records read.
	e := newEnv(t, envConfig{opts: Options{MaxQueryResults: 10}, storeOpts: func(o *store.Options) { o.ScanBytes = 1 }})
	w := e.dial(t)
	const n = 200
	var ops []wire.ClientOp
	for i := 0; i < n; i++ {
		ops = append(ops, putOp(itoa(i+1), "m", fmt.Sprintf("k%03d", i), map[string]any{"n": int64(i)}, cts("w")))
	}
	w.write(ops...)
	var pages atomic.Int64
	e.be.mu.Lock()
	e.be.scanned = func() { pages.Add(1) }
	e.be.mu.Unlock()
	c := e.dial(t)
	for _, tc := range []struct {
		id    string
		limit *uint32
	}{
		{"all", nil},
		{"limited", func() *uint32 { l := uint32(n); return &l }()},
	} {
		pages.Store(0)
		c.send(&wire.QuerySub{QueryID: tc.id, MapName: "m", Query: wire.Query{Limit: tc.limit}})
		r := skipUntil[*wire.QueryResp](c)
		if r.Code != "LIMIT" || !strings.Contains(r.Error, "TOPGUN_MAX_QUERY_RESULTS") || len(r.Results) != 0 {
			t.Fatalf("%s: query over the budget: %+v", tc.id, r)
		}
		if p := pages.Load(); p > 20 {
			t.Fatalf("%s: the refused query read %d pages of the map's %d records; it should stop past the bound of 10", tc.id, p, n)
		}
	}
	// Within the budget, limited queries are answered as before.
	l := uint32(3)
	c.send(&wire.QuerySub{QueryID: "top3", MapName: "m", Query: wire.Query{Limit: &l}})
	if r := skipUntil[*wire.QueryResp](c); r.Error != "" || len(r.Results) != 3 || r.Results[0].Key != "k000" {
		t.Fatalf("top3: %+v", r)
	}
}

// Resyncs queued for one map at the same time share one read of it: a
// connection holding many limited queries on a large map must not turn
// two small writes (the top key removed, then put back) into one full
// read of the map per query, which would keep the resync workers, shared
// by every client, busy. Both workers are held on reads of other maps
// while the resyncs of n queries on two connections queue up; once
// released, the queries refill with at most one read of the map per
// worker, also when one of the connections closes during the read.
// Before, each query read the map on its own: n reads.
func TestQuery_queuedResyncsShareOneRead(t *testing.T) {
	t.Parallel()
	for _, closeOne := range []bool{false, true} {
		t.Run(fmt.Sprint("closeOne_", closeOne), func(t *testing.T) {
			t.Parallel()
			testQueuedResyncsShareOneRead(t, closeOne)
		})
	}
}

func testQueuedResyncsShareOneRead(t *testing.T, closeOne bool) {
	const n = 64
	e := newEnv(t, envConfig{})
	w := e.dial(t)
	q := resyncMaps(w)
	// The queries of m on two connections (most on the one that may
	// close).
	conns := []*client{e.dial(t), e.dial(t)}
	per := []int{0, 0}
	for i := 0; i < n; i++ {
		ci := min(i%8, 1)
		per[ci]++
		c := conns[ci]
		c.send(&wire.QuerySub{QueryID: "q" + itoa(i), MapName: "m", Query: q})
		if r := skipUntil[*wire.QueryResp](c); len(r.Results) != 1 || r.Results[0].Key != "a" {
			t.Fatalf("q%d: %+v", i, r)
		}
	}
	blk, h, gate := queueResyncsOfM(t, e, w, q, n)
	scans := e.be.scans.Load()
	open := conns
	if closeOne {
		// The read of m is held in turn, and one connection closes. The
		// workers are let go one at a time, so that the first takes every
		// query of m into its read: let go together, the second can take
		// some of the closing connection's alone, and that read rightly
		// ends with the connection.
		gate2 := make(chan struct{})
		e.be.setScanHook(h.hook(gate2))
		gate <- struct{}{}
		<-h.entered
		close(gate)
		conns[1].ws.CloseNow()
		open = conns[:1]
		eventually(t, "the connection closed", func() bool { return e.srv.Connections() == 3 })
		e.be.setScanHook(nil)
		close(gate2)
	} else {
		e.be.setScanHook(nil)
		close(gate)
	}
	for i, c := range open {
		for j := 0; j < per[i]; j++ {
			var u *wire.QueryUpdate
			for u == nil || u.ChangeType != wire.Enter {
				u = skipUntil[*wire.QueryUpdate](c)
			}
			if u.Key != "b" {
				t.Fatalf("connection %d: refill %+v, want b ENTER", i, u)
			}
		}
	}
	for range 4 {
		if u := skipUntil[*wire.QueryUpdate](blk); u.Key != "a" && u.Key != "b" {
			t.Fatalf("blocker: %+v", u)
		}
	}
	if got := e.be.scans.Load() - scans; got > resyncWorkers {
		t.Fatalf("%d queued resyncs of one map read it %d times, want at most %d (one per worker)", n, got, resyncWorkers)
	}
	if got := e.be.scanErrs.Load(); got != 0 {
		t.Fatalf("%d reads failed, want 0 (a closed connection ends only its own queries)", got)
	}
}

// The queries sharing one read of their map all buffer the changes that
// commit meanwhile, and there may be as many as a connection holds (1024):
// each must not hold its own copy of every change (416 bytes each), or one
// client's batch of writes landing during the read makes the server hold
// queries × changes copies (4 GiB for 1024 queries and 10,000 changes),
// where reads one by one buffered for two queries at a time. The changes
// are the feed's, held once; a query's buffer holds a reference to each.
func TestQuery_sharedReadBuffersChangesOnce(t *testing.T) {
	t.Parallel()
	const n, k = 128, 1000
	e := newEnv(t, envConfig{})
	w := e.dial(t)
	q := resyncMaps(w)
	c := e.dial(t)
	for i := 0; i < n; i++ {
		c.send(&wire.QuerySub{QueryID: "q" + itoa(i), MapName: "m", Query: q})
		if r := skipUntil[*wire.QueryResp](c); len(r.Results) != 1 {
			t.Fatalf("q%d: %+v", i, r)
		}
	}
	var subs []*subscription
	e.srv.mu.RLock()
	for sc := range e.srv.conns {
		sc.subsMu.Lock()
		for _, sub := range sc.subs {
			if sub.mapName == "m" {
				subs = append(subs, sub)
			}
		}
		sc.subsMu.Unlock()
	}
	e.srv.mu.RUnlock()
	if len(subs) != n {
		t.Fatalf("%d queries of m, want %d", len(subs), n)
	}
	// Both resync workers are held on reads of b0 and b1 while the
	// resyncs of m queue, then on the read(s) of m.
	_, h, gate := queueResyncsOfM(t, e, w, q, n)
	gate2 := make(chan struct{})
	e.be.setScanHook(h.hook(gate2))
	close(gate)
	released := false
	release := func() {
		if !released {
			released = true
			e.be.setScanHook(nil)
			close(gate2)
		}
	}
	defer release()
	buffering := func(sub *subscription) (int, bool) {
		sub.mu.Lock()
		defer sub.mu.Unlock()
		return len(sub.pending), sub.state == subInit
	}
	eventually(t, "every query of m reading it", func() bool {
		for _, sub := range subs {
			if _, init := buffering(sub); !init {
				return false
			}
		}
		return true
	})
	// k changes of m commit during the read.
	ops := make([]wire.ClientOp, k)
	for i := range ops {
		ops[i] = putOp("x"+itoa(i), "m", "x"+itoa(i), map[string]any{"s": int64(1)}, cts("w"))
	}
	w.write(ops...)
	eventually(t, "the changes buffered", func() bool {
		for _, sub := range subs {
			if p, _ := buffering(sub); p != k {
				return false
			}
		}
		return true
	})
	held := 0
	for _, sub := range subs {
		sub.mu.Lock()
		held += len(sub.pending) * int(unsafe.Sizeof(sub.pending[0]))
		sub.mu.Unlock()
	}
	if bound := k*int(unsafe.Sizeof(store.Change{})) + n*k*int(unsafe.Sizeof(uintptr(0))); held > bound {
		t.Fatalf("%d queries sharing a read buffer %d bytes for %d changes, want at most %d (the changes once, a word per query and change)", n, held, k, bound)
	}
	release()
	for j := 0; j < n; j++ {
		var u *wire.QueryUpdate
		for u == nil || u.ChangeType != wire.Enter {
			u = skipUntil[*wire.QueryUpdate](c)
		}
		if u.Key != "b" {
			t.Fatalf("refill %+v, want b ENTER", u)
		}
	}
}

// resyncMaps writes maps m, b0 and b1, each with keys a, b and c (s 30,
// 20, 10), and returns the limited query the resync tests hold on them:
// the top key by s.
func resyncMaps(w *client) wire.Query {
	for _, m := range []string{"m", "b0", "b1"} {
		w.write(
			putOp(m+"1", m, "a", map[string]any{"s": int64(30)}, cts("w")),
			putOp(m+"2", m, "b", map[string]any{"s": int64(20)}, cts("w")),
			putOp(m+"3", m, "c", map[string]any{"s": int64(10)}, cts("w")),
		)
	}
	lim := uint32(1)
	return wire.Query{Sort: []wire.SortField{{Field: "s", Direction: wire.Desc}}, Limit: &lim}
}

// resyncHold holds the resync workers' reads: a scan hook made by hook
// reports each read on entered and waits until its gate is closed (a send
// on the gate lets one read go).
type resyncHold struct{ entered chan struct{} }

func (h resyncHold) hook(gate chan struct{}) func() error {
	return func() error { h.entered <- struct{}{}; <-gate; return nil }
}

// queueResyncsOfM holds both resync workers on reads of b0 and b1 (q on
// each, on a connection of its own, returned) until gate is closed, then
// removes m's top key and waits until n resyncs of m are queued.
func queueResyncsOfM(t *testing.T, e *env, w *client, q wire.Query, n int) (blk *client, h resyncHold, gate chan struct{}) {
	t.Helper()
	blk = e.dial(t)
	for _, m := range []string{"b0", "b1"} {
		blk.send(&wire.QuerySub{QueryID: m, MapName: m, Query: q})
		if r := skipUntil[*wire.QueryResp](blk); len(r.Results) != 1 {
			t.Fatalf("%s: %+v", m, r)
		}
	}
	h = resyncHold{entered: make(chan struct{}, 4*resyncWorkers)}
	gate = make(chan struct{})
	e.be.setScanHook(h.hook(gate))
	w.write(removeOp("rb0", "b0", "a", cts("w")), removeOp("rb1", "b1", "a", cts("w")))
	for range resyncWorkers {
		<-h.entered
	}
	base := e.srv.resyncsQueued.Load()
	w.write(removeOp("rm", "m", "a", cts("w")))
	eventually(t, "the queries' resyncs queued", func() bool { return e.srv.resyncsQueued.Load()-base == int64(n) })
	return blk, h, gate
}

// A QUERY_SUB on a map name no map can have is the request's fault: it
// gets the code INVALID, not UNAVAILABLE ("subscribe again later", with a
// warning logged), which a failed storage read gets.
func TestQuerySub_invalidMapNameRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	c := e.dial(t)
	for _, name := range []string{"", "m\x00", strings.Repeat("m", abi.MaxMapNameBytes+1)} {
		c.send(&wire.QuerySub{QueryID: "q", MapName: name})
		if r := expect[*wire.QueryResp](c); r.Code != "INVALID" || !strings.Contains(r.Error, "map name") {
			t.Fatalf("map name %.20q: QUERY_SUB answered %+v, want INVALID naming the map name", name, r)
		}
	}
}

// A connection holds at most MaxQueries live queries (1024 by default, as
// README says): one more is refused with LIMIT and counted, a QUERY_SUB
// that replaces a query of the same id is not one more, and ending a
// query makes room.
func TestQuery_maxQueriesPerConnection(t *testing.T) {
	t.Parallel()
	if DefaultMaxQueries != 1024 {
		t.Fatalf("DefaultMaxQueries = %d; README.md and the metric's help say 1024", DefaultMaxQueries)
	}
	e := newEnv(t, envConfig{opts: Options{MaxQueries: 2}})
	c := e.dial(t)
	sub := func(id string) *wire.QueryResp {
		c.send(&wire.QuerySub{QueryID: id, MapName: "m", Query: wire.Query{}})
		return skipUntil[*wire.QueryResp](c)
	}
	for _, id := range []string{"a", "b", "a"} {
		if r := sub(id); r.Error != "" {
			t.Fatalf("query %s within the limit: %+v", id, r)
		}
	}
	if r := sub("c"); r.Code != "LIMIT" || !strings.Contains(r.Error, "2 live queries") {
		t.Fatalf("third query: %+v", r)
	}
	c.send(&wire.QueryUnsub{QueryID: "b"})
	if r := sub("c"); r.Error != "" {
		t.Fatalf("after unsubscribing one: %+v", r)
	}
	if n := e.srv.Stats().QueriesRefused; n != 1 {
		t.Fatalf("QueriesRefused = %d, want 1", n)
	}
}

// A record written and deleted while a QUERY_SUB reads the map, both
// before the read reaches it, is absent from the QUERY_RESP, and nothing
// about it follows: the buffered changes replayed after the read must not
// take the result back to a state older than the one it answered. The
// put was replayed as an ENTER (pushing the window's member out of a
// limited query: LEAVE a, a re-read to refill it) and the delete as a
// LEAVE, so the client saw a record deleted before its answer appear
// and a member that never left leave.
func TestQuery_changesBufferedDuringReadDoNotReplayOlderState(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	w := e.dial(t)
	w.write(putOp("1", "m", "a", map[string]any{"s": int64(5)}, cts("w")))
	started := make(chan struct{})
	gate := make(chan struct{})
	var once sync.Once
	e.be.setScanHook(func() error {
		once.Do(func() { close(started) })
		<-gate
		return nil
	})
	t.Cleanup(func() {
		select {
		case <-gate:
		default:
			close(gate)
		}
	})
	lim := uint32(1)
	c := e.dial(t)
	c.send(&wire.QuerySub{QueryID: "q", MapName: "m", Query: wire.Query{Sort: []wire.SortField{{Field: "s", Direction: wire.Asc}}, Limit: &lim}})
	<-started // registered: the feed buffers the map's changes for it
	w.write(putOp("2", "m", "k", map[string]any{"s": int64(1)}, cts("w")))
	w.write(removeOp("3", "m", "k", cts("w")))
	sub := e.liveSub(t, "m", "q")
	eventually(t, "both changes buffered", func() bool {
		sub.mu.Lock()
		defer sub.mu.Unlock()
		return len(sub.pending) == 2
	})
	close(gate)
	c.send(&wire.Ping{Timestamp: 12345})
	var got []string
	for {
		switch m := c.next().(type) {
		case *wire.ServerEvent:
		case *wire.QueryResp:
			if len(m.Results) != 1 || m.Results[0].Key != "a" {
				t.Fatalf("QUERY_RESP %+v, want a alone", m.Results)
			}
			got = append(got, "RESP")
		case *wire.QueryUpdate:
			got = append(got, string(m.ChangeType)+" "+m.Key)
		case *wire.Pong:
			if len(got) != 1 {
				t.Fatalf("client got %v before PONG, want the QUERY_RESP alone", got)
			}
			return
		default:
			t.Fatalf("unexpected %s %+v", m.Type(), m)
		}
	}
}
