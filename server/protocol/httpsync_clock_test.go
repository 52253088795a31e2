package protocol

import (
	"sync/atomic"
	"testing"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/plugins/null"
	"github.com/topgun-go/topgun/server/wire"
)

// An HTTP client keeps its serverSyncTimestamp across a restart of the
// server, and takes whatever point the next answer gives. Here the host's
// clock ran two hours ahead while the client polled (further ahead than
// the store resumes commit times past: they restart from the wall clock),
// and was set right before the server restarted. The writes made after the
// restart are committed at times below the client's point: the first
// answer returned none of them and moved the client's point back past
// them, so it never received them.
func TestHTTPSync_deltaAfterRestartOnceClockWasFarAhead(t *testing.T) {
	t.Parallel()
	inner, last := pointFromClockAhead(t)

	// The restarted server's clock is right: two hours behind the first's.
	e2 := newEnv(t, envConfig{backend: keepOpen{inner}, fakeWall: true})
	e2.postSync(t, &wire.HTTPSyncRequest{ClientID: "w", ClientHLC: cts("w"), Operations: []wire.ClientOp{putOp("2", "m", "b", "v", cts("w"))}}, "")
	e2.wall.Add(10)
	got := e2.pollTwice(t, last)
	if !got["b"] {
		t.Fatalf("the write made after the restart never reached the client polling from its earlier point: got %v", got)
	}
}

// As above, but the client polls again only once the wall clock has
// passed its point (a laptop asleep, a tab in the background: TopGun's
// HttpSyncProvider keeps its points in memory while the page lives). The
// point is then no longer past the restarted server's own sync points, so
// it looks like one this server gave out; the writes made since the
// restart, stamped below it, were never sent to that client.
func TestHTTPSync_deltaAfterRestartOnceClockWasFarAheadPolledLate(t *testing.T) {
	t.Parallel()
	inner, last := pointFromClockAhead(t)

	e2 := newEnv(t, envConfig{backend: keepOpen{inner}, fakeWall: true})
	e2.postSync(t, &wire.HTTPSyncRequest{ClientID: "w", ClientHLC: cts("w"), Operations: []wire.ClientOp{putOp("2", "m", "b", "v", cts("w"))}}, "")
	// Another client polls meanwhile: the points this server gives out
	// are its own, and are not answered from the start ("a", stamped
	// ahead, is after every one of them until the clock passes it).
	e2.wall.Add(10)
	other := e2.postSync(t, &wire.HTTPSyncRequest{ClientID: "o", ClientHLC: cts("o"), SyncMaps: []wire.SyncMapEntry{{MapName: "m"}}}, "").Deltas[0].ServerSyncTimestamp
	e2.wall.Add(10)
	for _, r := range e2.postSync(t, &wire.HTTPSyncRequest{ClientID: "o", ClientHLC: cts("o"), SyncMaps: []wire.SyncMapEntry{{MapName: "m", LastSyncTimestamp: other}}}, "").Deltas[0].Records {
		if r.Key == "b" {
			t.Errorf("a client of the restarted server polling from its own point %+v got %q again", other, r.Key)
		}
	}
	e2.wall.Add(clockAhead + 60_000) // the wall clock passes the client's point
	got := e2.pollTwice(t, last)
	if !got["b"] {
		t.Fatalf("the write made after the restart never reached the client polling from its earlier point once the clock passed it: got %v", got)
	}
}

// As the first test, but the server restarts twice before the client
// polls again, the wall clock still behind the commit times stamped ahead:
// both restarted servers restart commit times from the wall clock. The
// write made under the first restarted server is stamped before the second
// one's restart: answered from that restart's time, the client's earlier
// point skipped it for good.
func TestHTTPSync_deltaAfterTwoRestartsOnceClockWasFarAhead(t *testing.T) {
	t.Parallel()
	inner, last := pointFromClockAhead(t)

	// The first restarted server's clock is right; it takes a write,
	// stamped at its (stopped) wall clock.
	e2 := newEnv(t, envConfig{backend: keepOpen{inner}, fakeWall: true})
	e2.postSync(t, &wire.HTTPSyncRequest{ClientID: "w", ClientHLC: cts("w"), Operations: []wire.ClientOp{putOp("2", "m", "b", "v", cts("w"))}}, "")
	e2.srv.Close()
	e2.http.Close()
	e2.st.Close()

	// The second starts a minute later, the clock still far behind "a".
	e3 := &env{t: t, be: &gateBackend{Backend: keepOpen{inner}}, wall: &atomic.Int64{}}
	e3.wall.Store(e2.wall.Load() + 60_000)
	e3.start(e3.be, "server-1", envConfig{})
	if _, _, restarted := e3.st.ClockRestart(); !restarted {
		t.Fatal("the second restarted server did not restart its commit times; the test does not test what it says")
	}
	got := e3.pollTwice(t, last)
	if !got["b"] {
		t.Fatalf("the write made under the first restarted server never reached the client polling from its point of before both restarts: got %v", got)
	}
}

// clockAhead is how far the first server's clock runs ahead in these
// tests: further than the store resumes commit times past.
const clockAhead = 2 * 3600_000

// pointFromClockAhead runs a server whose clock is clockAhead ahead: it
// stores "a" in map m and gives client "r" a sync point, then stops. It
// returns the storage (kept open for the next server) and that point.
func pointFromClockAhead(t *testing.T) (abi.Backend, wire.Timestamp) {
	t.Helper()
	inner := null.Open()
	t.Cleanup(func() { inner.Close() })
	e := newEnv(t, envConfig{backend: keepOpen{inner}, fakeWall: true})
	e.wall.Add(clockAhead)
	e.postSync(t, &wire.HTTPSyncRequest{ClientID: "w", ClientHLC: cts("w"), Operations: []wire.ClientOp{putOp("1", "m", "a", "v", cts("w"))}}, "")
	e.wall.Add(10)
	resp := e.postSync(t, &wire.HTTPSyncRequest{ClientID: "r", ClientHLC: cts("r"), SyncMaps: []wire.SyncMapEntry{{MapName: "m"}}}, "")
	e.srv.Close()
	e.http.Close()
	e.st.Close()
	return inner, resp.Deltas[0].ServerSyncTimestamp
}

// pollTwice polls map m as client "r" from point last, then from the point
// the answer gives (as TopGun's client does), and returns the keys it got.
func (e *env) pollTwice(t *testing.T, last wire.Timestamp) map[string]bool {
	t.Helper()
	got := map[string]bool{}
	for range 2 {
		resp := e.postSync(t, &wire.HTTPSyncRequest{ClientID: "r", ClientHLC: cts("r"), SyncMaps: []wire.SyncMapEntry{{MapName: "m", LastSyncTimestamp: last}}}, "")
		for _, r := range resp.Deltas[0].Records {
			got[r.Key] = true
		}
		last = resp.Deltas[0].ServerSyncTimestamp
		e.wall.Add(10)
	}
	return got
}
