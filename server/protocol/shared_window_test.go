package protocol

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/plugins/null"
	"github.com/topgun-go/topgun/server/hlc"
	"github.com/topgun-go/topgun/server/record"
	"github.com/topgun-go/topgun/server/store"
	"github.com/topgun-go/topgun/server/wire"
)

// watchedBackend is a null backend the store takes for shared storage
// (abi.CapShared) whose Watch the test drives: "another server" writes to
// the inner backend directly and then calls notify, at the moment the test
// chooses.
type watchedBackend struct {
	*gateBackend
	inner abi.Backend
	mu    sync.Mutex
	fn    func(abi.Changed)
}

var _ abi.Watcher = (*watchedBackend)(nil)

func newWatchedBackend() *watchedBackend {
	inner := null.Open()
	return &watchedBackend{gateBackend: &gateBackend{Backend: inner}, inner: inner}
}

func (w *watchedBackend) Describe() abi.Description {
	d := w.gateBackend.Describe()
	d.Capabilities |= abi.CapShared
	return d
}

func (w *watchedBackend) Watch(ctx context.Context, fn func(abi.Changed)) error {
	w.mu.Lock()
	w.fn = fn
	w.mu.Unlock()
	return nil
}

func (w *watchedBackend) notify(t *testing.T, c abi.Changed) {
	t.Helper()
	w.mu.Lock()
	fn := w.fn
	w.mu.Unlock()
	if fn == nil {
		t.Fatal("the store never called Watch")
	}
	fn(c)
}

// writeElsewhere commits an LWW record as another server would: to
// storage, behind the store's back, without notifying.
func (w *watchedBackend) writeElsewhere(t *testing.T, m, k, v string, ts record.Timestamp) {
	t.Helper()
	rv := record.NewLWW(record.StringValue(v), ts)
	enc, err := record.Encode(nil, &rv)
	if err != nil {
		t.Fatal(err)
	}
	b := &abi.Batch{Now: time.Now().UnixMilli()}
	b.Put(m, k, false, enc, 0)
	if err := w.inner.Apply(context.Background(), b); err != nil {
		t.Fatal(err)
	}
}

func startWatched(t *testing.T, w *watchedBackend) *env {
	t.Helper()
	e := &env{t: t, be: w.gateBackend}
	e.start(w, "server-b", envConfig{})
	return e
}

// elsewhereTS is a timestamp of "another server", after every cts so far.
func elsewhereTS() record.Timestamp {
	c := cts("a")
	return record.Timestamp{Millis: c.Millis, Counter: c.Counter, NodeID: "server-a"}
}

// pauseNextScan makes the next Scan page read wait, once it has read, until
// the returned release is called; read is closed once it has read.
func pauseNextScan(g *gateBackend) (read chan struct{}, release func()) {
	read = make(chan struct{})
	gate := make(chan struct{})
	var once sync.Once
	g.mu.Lock()
	g.scanned = func() {
		once.Do(func() {
			close(read)
			<-gate
		})
	}
	g.mu.Unlock()
	var ronce sync.Once
	return read, func() { ronce.Do(func() { close(gate) }) }
}

// Another server's commit that this server re-reads and publishes while a
// QUERY_SUB is reading the map, after the read passed the key: the
// SERVER_EVENT goes out at once, before the QUERY_RESP, which holds the
// older value the read saw, and the buffered change follows the QUERY_RESP
// as QUERY_UPDATE. A client that rebuilds the result from QUERY_RESP and
// SERVER_EVENT alone, ignoring QUERY_UPDATE, keeps the older value.
func TestSharedWindow_changeDuringSubscribeReadFollowsAsUpdate(t *testing.T) {
	w := newWatchedBackend()
	w.writeElsewhere(t, "m", "k", "old", elsewhereTS())
	e := startWatched(t, w)
	c := e.dial(t)

	read, release := pauseNextScan(w.gateBackend)
	defer release()
	c.send(&wire.QuerySub{QueryID: "q", MapName: "m"})
	<-read // the query's read saw "old"

	w.writeElsewhere(t, "m", "k", "new", elsewhereTS())
	w.notify(t, abi.Changed{Map: "m", Keys: []string{"k"}})
	ev := expect[*wire.ServerEvent](c)
	if ev.Key != "k" || ev.Record == nil || ev.Record.Value != "new" {
		t.Fatalf("SERVER_EVENT %+v", ev)
	}
	release()
	resp := expect[*wire.QueryResp](c)
	if len(resp.Results) != 1 || resp.Results[0].Value != "old" {
		t.Fatalf("QUERY_RESP %+v, want the value the read saw", resp.Results)
	}
	u := expect[*wire.QueryUpdate](c)
	if u.Key != "k" || u.ChangeType != wire.Update || u.Value != "new" {
		t.Fatalf("QUERY_UPDATE %+v, want UPDATE k=new", u)
	}
	c.ping()
}

// The other order: this server re-reads another server's commit, then,
// before it publishes it, that server commits a newer value, which a
// QUERY_SUB reads. The older change reaches the client after the QUERY_RESP
// as a SERVER_EVENT only (it is older than the result: no QUERY_UPDATE),
// and the newer one's notification then publishes it.
func TestSharedWindow_olderRefreshAfterSubscribeRead(t *testing.T) {
	w := newWatchedBackend()
	w.writeElsewhere(t, "m", "k", "v0", elsewhereTS())
	e := startWatched(t, w)
	c := e.dial(t)
	// q0 holds v0: the older change still reaches a result it is newer
	// than, beside q's, which is newer than it.
	c.send(&wire.QuerySub{QueryID: "q0", MapName: "m"})
	expect[*wire.QueryResp](c)

	// The refresh of v1 reads it, then waits before publishing.
	got := make(chan struct{})
	gate := make(chan struct{})
	var once sync.Once
	e.be.setGetHook(func() { once.Do(func() { close(got); <-gate }) })
	w.writeElsewhere(t, "m", "k", "v1", elsewhereTS())
	w.notify(t, abi.Changed{Map: "m", Keys: []string{"k"}})
	<-got
	e.be.setGetHook(nil)
	w.writeElsewhere(t, "m", "k", "v2", elsewhereTS())

	c.send(&wire.QuerySub{QueryID: "q", MapName: "m"})
	resp := expect[*wire.QueryResp](c)
	if len(resp.Results) != 1 || resp.Results[0].Value != "v2" {
		t.Fatalf("QUERY_RESP %+v, want v2", resp.Results)
	}
	close(gate)
	// q0 read v0 and hears v1: one SERVER_EVENT for the connection, one
	// QUERY_UPDATE for q0, none for q (older than its result).
	if ev := expect[*wire.ServerEvent](c); ev.Record == nil || ev.Record.Value != "v1" {
		t.Fatalf("SERVER_EVENT %+v", ev)
	}
	if u := expect[*wire.QueryUpdate](c); u.QueryID != "q0" || u.Value != "v1" {
		t.Fatalf("QUERY_UPDATE %+v, want q0's", u)
	}
	c.ping()
	w.notify(t, abi.Changed{Map: "m", Keys: []string{"k"}})
	if ev := expect[*wire.ServerEvent](c); ev.Record == nil || ev.Record.Value != "v2" {
		t.Fatalf("SERVER_EVENT %+v", ev)
	}
	if u := expect[*wire.QueryUpdate](c); u.QueryID != "q0" || u.Value != "v2" {
		t.Fatalf("QUERY_UPDATE %+v, want q0's", u)
	}
	c.ping()
}

// Start-up: another server commits after this one's index rebuild read the
// key, and its notification arrives during the rebuild (Watch listens
// before the rebuild starts). The re-read after the rebuild installs it;
// a query started afterwards reads it, and the Merkle index holds it.
func TestSharedWindow_commitDuringRebuild(t *testing.T) {
	w := newWatchedBackend()
	w.writeElsewhere(t, "m", "k", "old", elsewhereTS())
	var once sync.Once
	w.gateBackend.scanned = func() {
		once.Do(func() {
			w.writeElsewhere(t, "m", "k", "new", elsewhereTS())
			w.notify(t, abi.Changed{Map: "m", Keys: []string{"k"}})
		})
	}
	e := startWatched(t, w)
	w.gateBackend.mu.Lock()
	w.gateBackend.scanned = nil
	w.gateBackend.mu.Unlock()
	c := e.dial(t)
	c.send(&wire.QuerySub{QueryID: "q", MapName: "m"})
	resp := expect[*wire.QueryResp](c)
	if len(resp.Results) != 1 || resp.Results[0].Value != "new" {
		t.Fatalf("QUERY_RESP %+v", resp.Results)
	}
	// The index matches storage: a store rebuilt from it now has the same
	// Merkle root.
	clock, err := hlc.New("check", nil)
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := store.Open(context.Background(), w.inner, &store.Options{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	want := fresh.Root("m", store.KindLWW)
	eventually(t, "the index holding the newer record", func() bool { return e.st.Root("m", store.KindLWW) == want })
}
