package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	neturl "net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/plugins/postgres/pgtest"
)

// watchInto starts b's Watch and returns the channel of what it reports.
func watchInto(t *testing.T, b *Backend) <-chan abi.Changed {
	t.Helper()
	ch := make(chan abi.Changed, 64)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := b.Watch(ctx, func(c abi.Changed) { ch <- c }); err != nil {
		t.Fatal(err)
	}
	return ch
}

func nextChanged(t *testing.T, ch <-chan abi.Changed) abi.Changed {
	t.Helper()
	select {
	case c := <-ch:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no notification within 10s")
	}
	return abi.Changed{}
}

// A commit through one backend is reported to the Watch of another on the
// same table, with the keys it changed, and not to its own.
func TestWatch_reportsOtherBackendsCommits(t *testing.T) {
	t.Parallel()
	a, url := openFresh(t)
	b := openURL(t, url)
	fromA, fromB := watchInto(t, a), watchInto(t, b)

	batch := &abi.Batch{Now: 1}
	batch.Put("m", "k1", false, []byte("v"), 0)
	batch.Put("m", "k2", false, []byte("v"), 0)
	batch.Put("m", "kb", true, []byte("backup"), 0) // backups are not reported
	batch.Delete("n", "gone", false)
	apply(t, a, batch)
	got := map[string][]string{}
	for len(got) < 2 {
		c := nextChanged(t, fromB)
		got[c.Map] = append(got[c.Map], c.Keys...)
	}
	if !slices.Equal(got["m"], []string{"k1", "k2"}) || !slices.Equal(got["n"], []string{"gone"}) {
		t.Fatalf("B heard %v, want m: k1 k2 and n: gone", got)
	}
	// A transaction of several statements notifies too (a record deleted
	// and put again).
	batch = &abi.Batch{Now: 2}
	batch.Delete("m", "k1", false)
	batch.Put("m", "k1", false, []byte("again"), 0)
	apply(t, a, batch)
	if c := nextChanged(t, fromB); c.Map != "m" || !slices.Equal(c.Keys, []string{"k1"}) {
		t.Fatalf("B heard %+v", c)
	}
	select {
	case c := <-fromA:
		t.Fatalf("A heard its own commit: %+v", c)
	case <-time.After(200 * time.Millisecond):
	}
}

// Notifications stay under PostgreSQL's payload limit: many keys are
// split over several, and a map named by keys too long for one is named
// whole.
func TestNotices_split(t *testing.T) {
	b := &Backend{origin: "o"}
	var ids []recordID
	for i := 0; i < 2000; i++ {
		ids = append(ids, recordID{mapName: "m", key: fmt.Sprintf("key-%04d-%s", i, strings.Repeat("é", i%9))})
	}
	ids = append(ids, recordID{mapName: "z", key: strings.Repeat("y", maxNotice)})
	slices.SortFunc(ids, compareID)
	notes := b.notices(ids)
	named, whole := 0, false
	for _, n := range notes {
		if len(n) > maxNotice {
			t.Fatalf("notice of %d bytes", len(n))
		}
		var nt notice
		if err := json.Unmarshal([]byte(n), &nt); err != nil || nt.O != "o" {
			t.Fatalf("notice %q: %v", n, err)
		}
		switch nt.M {
		case "m":
			named += len(nt.K)
		case "z":
			whole = nt.K == nil
		}
	}
	if len(notes) < 5 || named != len(ids)-1 || !whole {
		t.Fatalf("%d notices naming %d of the %d keys of m; map z named whole: %v", len(notes), named, len(ids)-1, whole)
	}
}

// ApplyChecked applies only over what the caller expects: a record
// another backend changed since is a conflict, and nothing of the batch is
// applied.
func TestApplyChecked_conflict(t *testing.T) {
	t.Parallel()
	a, url := openFresh(t)
	b := openURL(t, url)
	ctx := testCtx(t)
	put := func(v string) *abi.Batch {
		batch := &abi.Batch{Now: 1}
		batch.Put("m", "k", false, []byte(v), 0)
		batch.Put("m", "other", false, []byte(v), 0)
		return batch
	}
	// Expecting absence over an absent record.
	if err := a.ApplyChecked(ctx, put("a1"), []abi.Expect{{Map: "m", Key: "k"}}); err != nil {
		t.Fatal(err)
	}
	// B read "a1" and writes over it.
	if err := b.ApplyChecked(ctx, put("b1"), []abi.Expect{{Map: "m", Key: "k", Present: true, Value: []byte("a1")}}); err != nil {
		t.Fatal(err)
	}
	// A still expects "a1": a conflict, and "other" is not written either.
	err := a.ApplyChecked(ctx, put("a2"), []abi.Expect{{Map: "m", Key: "k", Present: true, Value: []byte("a1")}})
	if abi.CodeOf(err) != abi.CodeConflict {
		t.Fatalf("want a conflict, got %v", err)
	}
	// Expecting absence over a present record is a conflict too.
	err = a.ApplyChecked(ctx, put("a3"), []abi.Expect{{Map: "m", Key: "k"}})
	if abi.CodeOf(err) != abi.CodeConflict {
		t.Fatalf("want a conflict, got %v", err)
	}
	recs, err := a.Get(ctx, "m", false, []string{"k", "other"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if string(r.Value) != "b1" {
			t.Fatalf("%s = %q, want b1 (the conflicting batches applied nothing)", r.Key, r.Value)
		}
	}
}

// jsonSize is exactly the length encoding/json gives a key.
func TestJSONSize(t *testing.T) {
	for _, k := range []string{"", "plain-key_1", `q"uote`, `back\slash`, "<&>", "tab\t", "é", "\u2028", "中文", "\x01"} {
		b, _ := json.Marshal(k)
		if got := jsonSize(k); got != len(b) {
			t.Errorf("jsonSize(%q) = %d, json.Marshal gives %d bytes", k, got, len(b))
		}
	}
}

// A key that encoding/json escapes at six bytes a character ("<", "&",
// control characters) is still named to the other servers, even at the
// key and map name limits: named whole instead, its map was re-read in
// full by every other server on each write of that key.
func TestWatch_namesKeysJSONEscapes(t *testing.T) {
	t.Parallel()
	a, url := openFresh(t)
	b := openURL(t, url)
	fromB := watchInto(t, b)
	m := strings.Repeat("\x01", abi.MaxMapNameBytes)
	keys := []string{
		strings.Repeat("<", abi.MaxKeyBytes),
		strings.Repeat("\x1f", abi.MaxKeyBytes),
		strings.Repeat("&", 1200) + "plain",
		"plain",
	}
	batch := &abi.Batch{Now: 1}
	for _, k := range keys {
		batch.Put(m, k, false, []byte("v"), 0)
	}
	apply(t, a, batch)
	var heard []string
	for len(heard) < len(keys) {
		c := nextChanged(t, fromB)
		if c.All || c.Map != m || c.Keys == nil {
			t.Fatalf("B was told to re-read all (%v) or the whole map, not the keys written: %d keys named", c.All, len(c.Keys))
		}
		heard = append(heard, c.Keys...)
	}
	slices.Sort(heard)
	slices.Sort(keys)
	if !slices.Equal(heard, keys) {
		t.Fatalf("B heard %d keys, not the %d written", len(heard), len(keys))
	}
	for _, n := range a.notices([]recordID{{mapName: m, key: keys[0]}, {mapName: m, key: keys[1]}}) {
		if len(n) > maxNotice {
			t.Fatalf("notice of %d bytes", len(n))
		}
	}
}

// freezingProxy forwards loopback TCP connections to the database until
// freeze; from then on the connections open then forward nothing either
// way and are not closed, as over a network path that died silently (no
// RST, no FIN). Connections made after freeze are forwarded.
type freezingProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []*frozenConn
}

type frozenConn struct {
	client, server net.Conn
	frozen         atomic.Bool
}

func newFreezingProxy(t *testing.T, target string) *freezingProxy {
	t.Helper()
	p := &freezingProxy{target: target}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		p.mu.Lock()
		for _, fc := range p.conns {
			fc.client.Close()
			fc.server.Close()
		}
		p.mu.Unlock()
		wg.Wait()
	})
	p.ln = serveProxy(t, target, func(c, s net.Conn) {
		fc := &frozenConn{client: c, server: s}
		p.mu.Lock()
		p.conns = append(p.conns, fc)
		p.mu.Unlock()
		wg.Go(func() { fc.copy(s, c) })
		wg.Go(func() { fc.copy(c, s) })
	})
	return p
}

// copy forwards src to dst; once frozen it drops what it reads and closes
// nothing (the test's cleanup does).
func (fc *frozenConn) copy(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !fc.frozen.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !fc.frozen.Load() {
				dst.Close()
			}
			return
		}
	}
}

// freeze stops the connections open now.
func (p *freezingProxy) freeze() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, fc := range p.conns {
		fc.frozen.Store(true)
	}
	return len(p.conns)
}

// The listening connection's network path dies silently (no RST): Watch
// notices it by its own check, connects again and reports everything
// changed, instead of hearing nothing until TCP keepalive gives up
// (minutes, while other servers' commits go unheard). Close then ends the
// listener.
func TestWatch_noticesSilentlyDeadConnection(t *testing.T) {
	t.Parallel()
	url := pgtest.FreshSchema(t)
	u, err := neturl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	p := newFreezingProxy(t, u.Host)
	u.Host = p.ln.Addr().String()
	writer := openURL(t, url)
	a := openURL(t, u.String())
	// Checks a link silent for 20 ms; a slow database is given a second
	// (a check timing out early only re-reads everything once more).
	a.watchIdle, a.watchTimeout = 20*time.Millisecond, time.Second
	fromA := watchInto(t, a)

	put := func(k string, now int64) {
		bt := &abi.Batch{Now: now}
		bt.Put("m", k, false, []byte("v"), 0)
		apply(t, writer, bt)
	}
	// heard waits for a report matching ok, skipping others (re-reads
	// after a check that timed out on a slow machine).
	heard := func(what string, ok func(abi.Changed) bool) {
		t.Helper()
		for range 1000 {
			if c := nextChanged(t, fromA); ok(c) {
				return
			}
		}
		t.Fatalf("A never heard %s", what)
	}
	named := func(k string) func(abi.Changed) bool {
		return func(c abi.Changed) bool { return c.Map == "m" && slices.Equal(c.Keys, []string{k}) }
	}
	put("k1", 1)
	heard("k1 before the freeze", named("k1"))

	if p.freeze() == 0 {
		t.Fatal("no connection to freeze")
	}
	put("k2", 2) // its notification is lost with the link
	heard("that it must re-read everything", func(c abi.Changed) bool { return c.All })
	put("k3", 3) // heard on the new connection
	heard("k3 after reconnecting", named("k3"))

	// Close ends the listener, which closes its connection.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
}

// Close ends the listeners of Watch: once it returns, their LISTEN
// sessions end and fn is not called again; it waits for a call of fn in
// progress (a blocked one: until it returns), but not when fn is what
// calls Close. Before, Close returned with the listener still running:
// its LISTEN session stayed open for as long as fn was blocked; and then
// while a call of fn was still running, so a caller could tear down what
// fn uses while fn used it.
func TestBackend_Close_endsWatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name          string
		block, fromFn bool
	}{
		{name: "idle"},
		{name: "fn blocked", block: true},
		{name: "fn calls Close", fromFn: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			app := "topgun_test_watch_close_" + newOrigin()
			url := withURLParam(t, pgtest.FreshSchema(t), "application_name", app)
			a, writer, observer := openURL(t, url), openURL(t, url), openURL(t, url)
			admin := sqlConn(t, pgtest.URL(t))
			listening := func() []uint32 {
				t.Helper()
				rows, err := admin.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'LISTEN %'`, app)
				if err != nil {
					t.Fatal(err)
				}
				pids, err := pgx.CollectRows(rows, pgx.RowTo[uint32])
				if err != nil {
					t.Fatal(err)
				}
				return pids
			}
			fromObserver := watchInto(t, observer)
			put := func(k string) {
				t.Helper()
				bt := &abi.Batch{Now: 1}
				bt.Put("m", k, false, []byte("v"), 0)
				apply(t, writer, bt)
				if c := nextChanged(t, fromObserver); c.Map != "m" || !slices.Equal(c.Keys, []string{k}) {
					t.Fatalf("observer heard %+v", c)
				}
			}

			var calls, late atomic.Int32
			var closed, returned atomic.Bool
			entered, release, closedInFn := make(chan struct{}), make(chan struct{}), make(chan struct{})
			var releaseOnce sync.Once
			t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
			fn := func(abi.Changed) {
				if closed.Load() {
					late.Add(1)
				}
				if calls.Add(1) != 1 {
					return
				}
				close(entered)
				switch {
				case tc.block:
					<-release
					returned.Store(true)
				case tc.fromFn:
					_ = a.Close()
					close(closedInFn)
				}
			}
			wctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(cancel)
			if err := a.Watch(wctx, fn); err != nil {
				t.Fatal(err)
			}
			// Both other backends listen too: one session of a's.
			if n := len(listening()); n != 2 {
				t.Fatalf("%d LISTEN sessions, want 2 (a's and the observer's)", n)
			}
			if tc.block || tc.fromFn {
				put("k1")
				select {
				case <-entered:
				case <-time.After(10 * time.Second):
					t.Fatal("fn not called within 10s")
				}
			}
			if tc.fromFn {
				select {
				case <-closedInFn:
				case <-time.After(10 * time.Second):
					t.Fatal("Close called from fn did not return within 10s")
				}
			} else if tc.block {
				closeErr := make(chan error, 1)
				go func() { closeErr <- a.Close() }()
				// Not a timed assertion: Close must not return before
				// fn does, however long this waits.
				select {
				case err := <-closeErr:
					t.Fatalf("Close returned (%v) while a call of fn was running", err)
				case <-time.After(200 * time.Millisecond):
				}
				releaseOnce.Do(func() { close(release) })
				select {
				case err := <-closeErr:
					if err != nil {
						t.Fatal(err)
					}
				case <-time.After(10 * time.Second):
					t.Fatal("Close did not return within 10s of fn returning")
				}
				if !returned.Load() {
					t.Fatal("Close returned before fn")
				}
			} else if err := a.Close(); err != nil {
				t.Fatal(err)
			}
			closed.Store(true)
			a.watchMu.Lock()
			left := len(a.listeners)
			a.watchMu.Unlock()
			if left != 0 {
				t.Fatalf("%d listeners still running after Close returned", left)
			}
			// Its session ends (the observer's stays); a backend process
			// exits a moment after its client closed the connection.
			for i := 0; ; i++ {
				if n := len(listening()); n == 1 {
					break
				} else if i == 200 {
					t.Fatalf("%d LISTEN sessions 10s after Close, want 1 (the observer's)", n)
				}
				time.Sleep(50 * time.Millisecond)
			}
			put("k2")
			releaseOnce.Do(func() { close(release) })
			put("k3")
			if n := late.Load(); n != 0 {
				t.Fatalf("fn called %d times after Close returned", n)
			}
		})
	}
}

// A second Close, called while the first waits for a call of fn, waits as
// the first does: once it returns, fn is not running. A Close from that
// call of fn meanwhile returns at once.
func TestBackend_Close_secondCloseWaits(t *testing.T) {
	t.Parallel()
	a, url := openFresh(t)
	writer := openURL(t, url)
	entered, release, fnDone := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	var calls atomic.Int32
	var returned atomic.Bool
	fn := func(abi.Changed) {
		if calls.Add(1) != 1 {
			return
		}
		close(entered)
		<-release
		_ = a.Close()
		close(fnDone)
		returned.Store(true)
	}
	wctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := a.Watch(wctx, fn); err != nil {
		t.Fatal(err)
	}
	bt := &abi.Batch{Now: 1}
	bt.Put("m", "k", false, []byte("v"), 0)
	apply(t, writer, bt)
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("fn not called within 10s")
	}

	first, second := make(chan bool, 1), make(chan bool, 1)
	go func() { _ = a.Close(); first <- returned.Load() }()
	for i := 0; !a.closed.Load(); i++ {
		if i == 1000 {
			t.Fatal("first Close did not start within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	go func() { _ = a.Close(); second <- returned.Load() }()
	// Not a timed assertion: neither Close may return before fn does,
	// however long this waits.
	select {
	case <-first:
		t.Fatal("first Close returned while a call of fn was running")
	case <-second:
		t.Fatal("second Close returned while the first waited for a call of fn")
	case <-time.After(200 * time.Millisecond):
	}
	releaseOnce.Do(func() { close(release) })
	select {
	case <-fnDone:
	case <-time.After(10 * time.Second):
		t.Fatal("Close called from fn did not return within 10s")
	}
	for name, ch := range map[string]chan bool{"first": first, "second": second} {
		select {
		case ok := <-ch:
			if !ok {
				t.Fatalf("%s Close returned before fn", name)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s Close did not return within 10s of fn returning", name)
		}
	}
}
