package protocol

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/plugins/null"
	"github.com/topgun-go/topgun/server/hlc"
	"github.com/topgun-go/topgun/server/record"
	"github.com/topgun-go/topgun/server/store"
	"github.com/topgun-go/topgun/server/wire"
)

const testSecret = "test-e2e-secret"

// logWriter sends logs to t.Log, so they show only when a test fails.
type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t testing.TB, name string) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: name, Output: logWriter{t}, Level: hclog.Debug})
}

// gateBackend wraps a backend so tests can hold or fail commits.
type gateBackend struct {
	abi.Backend
	mu       sync.Mutex
	hold     chan struct{} // non-nil: Apply waits until it is closed
	fail     error         // non-nil: Apply fails with it
	scanHook func() error  // non-nil: called by every Scan, which fails with its error
	scanned  func()        // non-nil: called when a Scan has read its page
	getHook  func()        // non-nil: called by every Get once it has read
	applied  atomic.Int64  // mutations committed
	held     atomic.Int64  // Apply calls waiting on hold
	scans    atomic.Int64  // scans started (first pages asked for)
	scanErrs atomic.Int64  // Scan calls that failed
	durable  bool
}

func (g *gateBackend) Describe() abi.Description {
	d := g.Backend.Describe()
	if g.durable {
		d.Capabilities |= abi.CapDurable
	}
	return d
}

func (g *gateBackend) Apply(ctx context.Context, b *abi.Batch) error {
	g.mu.Lock()
	hold, fail := g.hold, g.fail
	g.mu.Unlock()
	if hold != nil {
		g.held.Add(1)
		select {
		case <-hold:
			g.held.Add(-1)
		case <-ctx.Done():
			g.held.Add(-1)
			return ctx.Err()
		}
	}
	if fail != nil {
		return fail
	}
	if err := g.Backend.Apply(ctx, b); err != nil {
		return err
	}
	g.applied.Add(int64(len(b.Mutations)))
	return nil
}

// holdCommits makes every commit wait; the returned func releases them.
func (g *gateBackend) holdCommits() func() {
	ch := make(chan struct{})
	g.mu.Lock()
	g.hold = ch
	g.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			g.hold = nil
			g.mu.Unlock()
			close(ch)
		})
	}
}

// setScanHook makes every Scan call hook first and fail with what it
// returns (nil: scan normally); nil removes the hook.
func (g *gateBackend) setScanHook(hook func() error) {
	g.mu.Lock()
	g.scanHook = hook
	g.mu.Unlock()
}

func (g *gateBackend) Scan(ctx context.Context, req abi.ScanRequest) (abi.Page, error) {
	if len(req.Cursor) == 0 {
		g.scans.Add(1)
	}
	g.mu.Lock()
	hook := g.scanHook
	g.mu.Unlock()
	if hook != nil {
		if err := hook(); err != nil {
			return abi.Page{}, err
		}
	}
	page, err := g.Backend.Scan(ctx, req)
	if err != nil {
		g.scanErrs.Add(1)
	}
	g.mu.Lock()
	scanned := g.scanned
	g.mu.Unlock()
	if scanned != nil {
		scanned()
	}
	return page, err
}

// setGetHook makes every Get call hook once it has read (before it
// returns); nil removes it.
func (g *gateBackend) setGetHook(hook func()) {
	g.mu.Lock()
	g.getHook = hook
	g.mu.Unlock()
}

func (g *gateBackend) Get(ctx context.Context, mapName string, backup bool, keys []string) ([]abi.Record, error) {
	recs, err := g.Backend.Get(ctx, mapName, backup, keys)
	g.mu.Lock()
	hook := g.getHook
	g.mu.Unlock()
	if hook != nil {
		hook()
	}
	return recs, err
}

func (g *gateBackend) setFail(err error) {
	g.mu.Lock()
	g.fail = err
	g.mu.Unlock()
}

// env is a protocol server on a null store behind an httptest server on
// 127.0.0.1.
type env struct {
	t     testing.TB
	be    *gateBackend
	st    *store.Store
	srv   *Server
	http  *httptest.Server
	wall  *atomic.Int64 // store's and clock's wall clock (ms); 0 = real time
	mux   *http.ServeMux
	clock *hlc.Clock
}

type envConfig struct {
	backend    abi.Backend // default: a fresh null backend
	opts       Options
	storeOpts  func(*store.Options)
	fakeWall   bool // a settable wall clock for the store and the HLC
	hook       func()
	readyHook  func()              // Server.readyHook
	diffHook   func()              // Server.resyncDiffHook
	changeHook func(*subscription) // Server.changeHook
	durable    bool
}

func newEnv(t testing.TB, cfg envConfig) *env {
	t.Helper()
	var inner abi.Backend = null.Open()
	if cfg.backend != nil {
		inner = cfg.backend
	}
	e := &env{t: t, be: &gateBackend{Backend: inner, durable: cfg.durable}, wall: &atomic.Int64{}}
	if cfg.fakeWall {
		e.wall.Store(time.Now().UnixMilli())
	}
	e.start(e.be, "server-1", cfg)
	return e
}

// start runs a store and protocol server on be, stamping with node id
// node, behind an httptest server; everything closes with the test.
func (e *env) start(be abi.Backend, node string, cfg envConfig) {
	t := e.t
	t.Helper()
	if e.wall == nil {
		e.wall = &atomic.Int64{}
	}
	now := func() time.Time {
		if ms := e.wall.Load(); ms != 0 {
			return time.UnixMilli(ms)
		}
		return time.Now()
	}
	clock, err := hlc.New(node, &hlc.Options{WallClock: now})
	if err != nil {
		t.Fatal(err)
	}
	e.clock = clock
	so := &store.Options{Clock: clock, WallClock: now, Logger: testLogger(t, node+"-store"),
		ReapInterval: time.Hour, GCInterval: time.Hour, GCStartDelay: time.Hour}
	if cfg.storeOpts != nil {
		cfg.storeOpts(so)
	}
	e.st, err = store.Open(context.Background(), be, so)
	if err != nil {
		t.Fatal(err)
	}
	o := cfg.opts
	if o.Logger == nil {
		o.Logger = testLogger(t, node)
	}
	e.srv, err = newServer(e.st, &o, cfg.hook)
	if err != nil {
		t.Fatal(err)
	}
	e.srv.readyHook = cfg.readyHook
	e.srv.resyncDiffHook = cfg.diffHook
	e.srv.changeHook = cfg.changeHook
	e.mux = http.NewServeMux()
	e.mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	e.srv.Register(e.mux)
	e.http = httptest.NewServer(e.mux)
	t.Cleanup(func() {
		e.srv.Close()
		e.http.Close()
		e.st.Close()
		be.Close()
	})
}

func (e *env) wsURL(path string) string {
	return "ws" + strings.TrimPrefix(e.http.URL, "http") + path
}

// client is a raw WebSocket client speaking server/wire.
type client struct {
	t    testing.TB
	ws   *websocket.Conn
	msgs chan wire.Message
	done chan struct{}
	err  error // why reading stopped (valid after done)
	// start, when not nil, holds reading back until closed (dialPaused).
	start chan struct{}
	raw   atomic.Int64
}

func (e *env) dial(t testing.TB) *client {
	t.Helper()
	return e.dialPath(t, "/ws")
}

// dialPaused dials /ws with a client that reads nothing until resume.
func (e *env) dialPaused(t testing.TB) *client {
	t.Helper()
	return e.dialWith(t, "/ws", make(chan struct{}))
}

// resume lets a client from dialPaused read.
func (c *client) resume() { close(c.start) }

func (e *env) dialPath(t testing.TB, path string) *client {
	t.Helper()
	return e.dialWith(t, path, nil)
}

// dialWith dials path; with start, the client reads only once it is closed.
func (e *env) dialWith(t testing.TB, path string, start chan struct{}) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, e.wsURL(path), nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	ws.SetReadLimit(64 << 20)
	c := &client{t: t, ws: ws, msgs: make(chan wire.Message, 100_000), done: make(chan struct{}), start: start}
	go func() {
		defer close(c.done)
		if start != nil {
			<-start
		}
		for {
			_, b, err := ws.Read(context.Background())
			if err != nil {
				c.err = err
				return
			}
			c.raw.Add(1)
			m, err := wire.Decode(b)
			if err != nil {
				c.err = err
				t.Errorf("server sent an undecodable frame: %v", err)
				return
			}
			c.msgs <- m
		}
	}()
	t.Cleanup(func() { ws.CloseNow() })
	return c
}

func (c *client) send(m wire.Message) {
	c.t.Helper()
	b, err := wire.Encode(m)
	if err != nil {
		c.t.Fatalf("encode %s: %v", m.Type(), err)
	}
	c.sendRaw(b)
}

func (c *client) sendRaw(b []byte) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageBinary, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// waitFor bounds every wait for something the test expects to happen. It
// only bounds a hang: on a loaded machine a message may take seconds.
const waitFor = 30 * time.Second

// eventually polls cond until it holds, failing after waitFor.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(waitFor); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s", what, waitFor)
		}
		time.Sleep(time.Millisecond)
	}
}

// next returns the next message, failing after waitFor.
func (c *client) next() wire.Message {
	c.t.Helper()
	return c.nextWithin(waitFor)
}

// nextWithin returns the next message, failing after d: for answers to
// work that takes long under -race on a loaded machine.
func (c *client) nextWithin(d time.Duration) wire.Message {
	c.t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-c.done:
		select {
		case m := <-c.msgs:
			return m
		default:
		}
		c.t.Fatalf("connection ended while waiting for a message: %v", c.err)
	case <-time.After(d):
		c.t.Fatalf("no message within %s", d)
	}
	return nil
}

// expect returns the next message, which must be of type T.
func expect[T wire.Message](c *client) T {
	c.t.Helper()
	m := c.next()
	v, ok := m.(T)
	if !ok {
		var zero T
		c.t.Fatalf("got %s %+v, want %T", m.Type(), m, zero)
	}
	return v
}

// skipUntil returns the first message of type T, dropping others.
func skipUntil[T wire.Message](c *client) T {
	c.t.Helper()
	deadline := time.After(waitFor)
	for {
		select {
		case m := <-c.msgs:
			if v, ok := m.(T); ok {
				return v
			}
		case <-c.done:
			var zero T
			c.t.Fatalf("connection ended while waiting for %T: %v", zero, c.err)
		case <-deadline:
			var zero T
			c.t.Fatalf("no %T within %s", zero, waitFor)
		}
	}
}

// quiet asserts that no message arrives within d.
func (c *client) quiet(d time.Duration) {
	c.t.Helper()
	select {
	case m := <-c.msgs:
		c.t.Fatalf("unexpected %s %+v", m.Type(), m)
	case <-time.After(d):
	}
}

// ping checks the connection is alive and in order: everything sent
// before is handled (the reader is sequential), and the next message not
// discarded is the PONG.
func (c *client) ping() {
	c.t.Helper()
	c.send(&wire.Ping{Timestamp: 12345})
	p := skipUntil[*wire.Pong](c)
	if p.Timestamp != 12345 {
		c.t.Fatalf("PONG echoes %d, want 12345", p.Timestamp)
	}
}

// closed waits for the server to close the connection and returns the
// close status.
func (c *client) closed() websocket.StatusCode {
	c.t.Helper()
	select {
	case <-c.done:
		return websocket.CloseStatus(c.err)
	case <-time.After(waitFor):
		c.t.Fatalf("connection still open after %s", waitFor)
	}
	return 0
}

func hsToken(t testing.TB, secret string, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func userToken(t testing.TB, sub string) string {
	return hsToken(t, testSecret, jwt.MapClaims{"sub": sub, "roles": []string{"user"}, "exp": time.Now().Add(time.Hour).Unix()})
}

func mustAuth(t testing.TB, secret string) *Auth {
	t.Helper()
	a, err := NewAuth(secret)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// Client-side op builders.

var clientClock struct {
	mu      sync.Mutex
	millis  uint64
	counter uint32
}

// cts returns a fresh client timestamp near the real clock.
func cts(node string) wire.Timestamp {
	clientClock.mu.Lock()
	defer clientClock.mu.Unlock()
	now := uint64(time.Now().UnixMilli())
	if now > clientClock.millis {
		clientClock.millis, clientClock.counter = now, 0
	} else {
		clientClock.counter++
	}
	return wire.Timestamp{Millis: clientClock.millis, Counter: clientClock.counter, NodeID: node}
}

func putOp(id, mapName, key string, value any, ts wire.Timestamp) wire.ClientOp {
	return wire.ClientOp{ID: id, MapName: mapName, Key: key, OpType: "PUT",
		Record: &wire.LWWRecord{Value: value, Timestamp: ts}}
}

func removeOp(id, mapName, key string, ts wire.Timestamp) wire.ClientOp {
	return wire.ClientOp{ID: id, MapName: mapName, Key: key, OpType: "REMOVE",
		Record: &wire.LWWRecord{Value: nil, Timestamp: ts}}
}

func orAddOp(id, mapName, key string, value any, ts wire.Timestamp) wire.ClientOp {
	return wire.ClientOp{ID: id, MapName: mapName, Key: key, OpType: "OR_ADD",
		ORRecord: &wire.ORMapRecord{Value: value, Timestamp: ts, Tag: ts.String()}}
}

func orRemoveOp(id, mapName, key, tag string) wire.ClientOp {
	return wire.ClientOp{ID: id, MapName: mapName, Key: key, OpType: "OR_REMOVE", ORTag: &tag}
}

func itoa(i int) string { return strconv.Itoa(i) }

// write sends one OP_BATCH and waits for its OP_ACK (failing on anything
// else but events).
func (c *client) write(ops ...wire.ClientOp) *wire.OpAck {
	c.t.Helper()
	c.send(&wire.OpBatch{Ops: ops})
	for {
		switch m := c.next().(type) {
		case *wire.OpAck:
			return m
		case *wire.ServerEvent, *wire.QueryUpdate:
		default:
			c.t.Fatalf("waiting for OP_ACK, got %s %+v", m.Type(), m)
		}
	}
}

// feedCaughtUp returns once the commits acknowledged before it have been
// handed to the live queries. The server reads the store's change feed
// apart from acknowledging writes, so a query registered just after an
// OP_ACK can still hear of that commit: its SERVER_EVENTs, before or after
// the QUERY_RESP that already holds its records. A probe query hears of
// a probe write only once every commit before it was dispatched.
func (e *env) feedCaughtUp(t testing.TB) {
	t.Helper()
	p := e.dial(t)
	p.send(&wire.QuerySub{QueryID: "probe", MapName: "feed_probe"})
	expect[*wire.QueryResp](p)
	e.dial(t).write(putOp("1", "feed_probe", "k", true, cts("probe")))
	skipUntil[*wire.ServerEvent](p)
}

// getLWW reads a live LWW record from the store.
func (e *env) getLWW(mapName, key string) (record.Value, record.Timestamp, bool) {
	e.t.Helper()
	en, ok, err := e.st.Get(context.Background(), mapName, key)
	if err != nil {
		e.t.Fatal(err)
	}
	if !ok || en.Record.Kind != record.KindLWW {
		return record.Value{}, record.Timestamp{}, false
	}
	return en.Record.LWW.Value, en.Record.LWW.Timestamp, true
}

var errInjected = errors.New("injected backend failure")
