package protocol

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/server/wire"
)

// lineCounter counts the log lines holding a string, and sends every line
// to t.Log.
type lineCounter struct {
	t    testing.TB
	want string
	mu   sync.Mutex
	n    int
}

func (c *lineCounter) Write(p []byte) (int, error) {
	c.mu.Lock()
	if strings.Contains(string(p), c.want) {
		c.n++
	}
	c.mu.Unlock()
	c.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (c *lineCounter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// A client hammering a server at TOPGUN_MAX_CONNECTIONS is refused each
// time (and counted in ClientsRefused), but does not get a warning logged
// per attempt: anyone who can reach the port could flood the log. The
// server warns once when it starts refusing.
func TestServer_refusalsAtTheLimitDoNotFloodTheLog(t *testing.T) {
	t.Parallel()
	lc := &lineCounter{t: t, want: "[WARN]"}
	log := hclog.New(&hclog.LoggerOptions{Output: lc, Level: hclog.Info})
	e := newEnv(t, envConfig{opts: Options{MaxConnections: 1, Logger: log}})
	a := e.dial(t)
	a.ping()
	const attempts = 50
	for i := 0; i < attempts; i++ {
		if code, out := e.postRaw(t, nil, ""); code != http.StatusServiceUnavailable {
			t.Fatalf("POST /sync %d with every slot taken: %d %s", i, code, out)
		}
	}
	if n := e.srv.Stats().ClientsRefused; n != attempts {
		t.Fatalf("ClientsRefused = %d, want %d", n, attempts)
	}
	if n := lc.count(); n != 1 {
		t.Errorf("%d warnings logged for %d refused attempts, want 1", n, attempts)
	}
}

// Anyone who reaches the port can present a bad token, over POST /sync
// (one request after another on one keep-alive connection) or in an
// AUTH. Each is refused, but the log gets one line at info per spell of
// failures (at most one per sparselog.Every, with the count of those
// since), the rest at debug: otherwise an unauthenticated client would
// write the log at the rate it sends requests.
func TestServer_authFailuresDoNotFloodTheLog(t *testing.T) {
	t.Parallel()
	lc := &lineCounter{t: t, want: "authentication failed"}
	log := hclog.New(&hclog.LoggerOptions{Output: lc, Level: hclog.Info})
	e := newEnv(t, envConfig{opts: Options{Auth: mustAuth(t, testSecret), Logger: log}})
	const attempts = 30
	for i := 0; i < attempts; i++ {
		if code, out := e.postRaw(t, nil, "bad.token.here"); code != http.StatusUnauthorized {
			t.Fatalf("POST /sync %d with a bad token: %d %s", i, code, out)
		}
	}
	for i := 0; i < 5; i++ {
		c := e.dial(t)
		expect[*wire.AuthRequired](c)
		c.send(&wire.Auth{Token: "bad.token.here"})
		expect[*wire.AuthFail](c)
		c.closed()
	}
	// The first failure is logged at info; within sparselog.Every of it
	// (longer than this test) the others are not.
	if n := lc.count(); n != 1 {
		t.Errorf("%d lines logged at info for %d failed authentications, want 1", n, attempts+5)
	}
}

// While storage fails, every write a client sends fails too, and the
// client sends it again: a warning per failed write would let clients
// (or a plugin failing each call) write the log at the rate they send
// writes. The first failure is warned of; the others within
// sparselog.Every are logged at debug (and counted in the next warning).
func TestServer_storageFailuresDoNotFloodTheLog(t *testing.T) {
	t.Parallel()
	lc := &lineCounter{t: t, want: "write failed"}
	log := hclog.New(&hclog.LoggerOptions{Output: lc, Level: hclog.Info})
	e := newEnv(t, envConfig{opts: Options{Logger: log}})
	c := e.dial(t)
	e.be.setFail(errInjected)
	const writes = 20
	for i := 0; i < writes; i++ {
		c.send(&wire.OpBatch{Ops: []wire.ClientOp{putOp(itoa(i), "todos", "k"+itoa(i), "x", cts("c1"))}})
		if m := expect[*wire.ErrorMessage](c); m.Code != 500 {
			t.Fatalf("ERROR = %+v", m)
		}
	}
	for i := 0; i < writes; i++ {
		resp := e.postSync(t, &wire.HTTPSyncRequest{ClientID: "c2", ClientHLC: cts("c2"),
			Operations: []wire.ClientOp{putOp(itoa(i), "todos", "h"+itoa(i), "x", cts("c2"))}}, "")
		if len(resp.Errors) == 0 || resp.Errors[0].Code != 500 {
			t.Fatalf("POST /sync answer %+v", resp)
		}
	}
	if n := lc.count(); n != 1 {
		t.Errorf("%d write failures logged at info or above for %d failed writes, want 1", n, 2*writes)
	}
}

// The query id a client chooses is cut in the warning of a query whose
// map cannot be read: it is as long as the client likes (up to the
// message size), and the log line would be too.
func TestServer_storageWarningCutsTheQueryID(t *testing.T) {
	t.Parallel()
	logs := &lineLog{t: t}
	e := newEnv(t, envConfig{opts: Options{Logger: hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Info})}})
	e.be.setScanHook(func() error { return abi.Errorf(abi.CodeUnavailable, "test: storage down") })
	c := e.dial(t)
	c.send(&wire.QuerySub{QueryID: strings.Repeat("q", 100_000), MapName: "m"})
	if r := expect[*wire.QueryResp](c); r.Code != "UNAVAILABLE" {
		t.Fatalf("want an error, got %+v", r)
	}
	eventually(t, "the warning", func() bool { return logs.count("cannot read the map of a live query") == 1 })
	logs.mu.Lock()
	defer logs.mu.Unlock()
	for _, l := range logs.lines {
		if len(l) > 1000 {
			t.Errorf("a log line of %d bytes: %.200s...", len(l), l)
		}
	}
}
