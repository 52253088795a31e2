package client

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/server/merkle"
	"github.com/topgun-go/topgun/server/record"
	"github.com/topgun-go/topgun/server/wire"
)

// testWriter routes logs to t.Log so they show only for failing tests.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t testing.TB) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "test", Level: hclog.Debug, Output: testWriter{t}})
}

// fakeServer speaks enough of TopGun's protocol to exercise the client: the
// handshake (auth on or off), PING, CLIENT_OP/OP_BATCH with OP_ACK, live
// queries with QUERY_RESP/QUERY_UPDATE/SERVER_EVENT, and the LWW Merkle
// drill-down. It listens on 127.0.0.1 only.
type fakeServer struct {
	t   testing.TB
	srv *httptest.Server
	URL string

	secret    atomic.Pointer[string] // JWT secret; "" = auth off
	deviceAck atomic.Bool            // answer DEVICE_HELLO (auth off)
	noAcks    atomic.Bool            // swallow writes without OP_ACK
	noPongs   atomic.Bool            // ignore PING
	reject    atomic.Int32           // refuse this many upgrades with 503
	stall     atomic.Bool            // stop reading frames, as a stuck server does
	// stallOnPing makes the next PING set stall before it is answered, so
	// that no frame after it is read.
	stallOnPing atomic.Bool
	// intercept, when set, sees each message after the handshake first; if
	// it returns true it has handled the message (scripting replies with
	// fs.send), otherwise the default handling follows.
	intercept atomic.Pointer[func(c *fakeConn, m wire.Message) bool]

	upgrades atomic.Int32 // accepted WebSocket connections
	attempts atomic.Int32 // upgrade requests, accepted or not

	mu    sync.Mutex
	data  map[string]map[string]wire.LWWRecord
	conns map[*fakeConn]bool
	seen  []string // message types received, in order
	hlc   *hlc
	wg    sync.WaitGroup
}

type fakeConn struct {
	ws   *websocket.Conn
	n    int // connection number, from 1
	mu   sync.Mutex
	subs map[string]*wire.QuerySub // queryId → sub
}

func newFakeServer(t testing.TB, secret string) *fakeServer {
	t.Helper()
	fs := &fakeServer{
		t:     t,
		data:  map[string]map[string]wire.LWWRecord{},
		conns: map[*fakeConn]bool{},
		hlc:   newHLC("fake-server", hclog.NewNullLogger()),
	}
	fs.secret.Store(&secret)
	fs.deviceAck.Store(true)
	fs.srv = httptest.NewUnstartedServer(http.HandlerFunc(fs.serve))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fs.srv.Listener = l
	fs.srv.Start()
	fs.URL = "ws://" + l.Addr().String() + "/ws"
	t.Cleanup(fs.Close)
	return fs
}

// Close drops every connection, waits for the handlers and stops listening.
func (fs *fakeServer) Close() {
	fs.stall.Store(false)
	fs.dropAll()
	fs.srv.Close()
	fs.wg.Wait()
}

// dropAll closes every WebSocket abruptly, as a crashed server would.
func (fs *fakeServer) dropAll() {
	fs.mu.Lock()
	conns := make([]*fakeConn, 0, len(fs.conns))
	for c := range fs.conns {
		conns = append(conns, c)
	}
	fs.mu.Unlock()
	for _, c := range conns {
		_ = c.ws.CloseNow()
	}
}

func (fs *fakeServer) seenTypes() []string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return append([]string(nil), fs.seen...)
}

func (fs *fakeServer) count(typ string) int {
	n := 0
	for _, s := range fs.seenTypes() {
		if s == typ {
			n++
		}
	}
	return n
}

func (fs *fakeServer) record(mapName, key string) (wire.LWWRecord, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	r, ok := fs.data[mapName][key]
	return r, ok
}

func (fs *fakeServer) put(mapName, key string, r wire.LWWRecord) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.data[mapName] == nil {
		fs.data[mapName] = map[string]wire.LWWRecord{}
	}
	fs.data[mapName][key] = r
}

func (fs *fakeServer) serve(w http.ResponseWriter, r *http.Request) {
	fs.attempts.Add(1)
	if fs.reject.Load() > 0 {
		fs.reject.Add(-1)
		http.Error(w, "not ready", http.StatusServiceUnavailable)
		return
	}
	fs.wg.Add(1)
	defer fs.wg.Done()
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	ws.SetReadLimit(wire.DefaultMaxMessageBytes)
	c := &fakeConn{ws: ws, n: int(fs.upgrades.Add(1)), subs: map[string]*wire.QuerySub{}}
	fs.mu.Lock()
	fs.conns[c] = true
	fs.mu.Unlock()
	defer func() {
		fs.mu.Lock()
		delete(fs.conns, c)
		fs.mu.Unlock()
		_ = ws.CloseNow()
	}()

	ctx := context.Background()
	authed := *fs.secret.Load() == ""
	if !authed {
		fs.send(c, &wire.AuthRequired{})
	}
	for {
		for fs.stall.Load() {
			time.Sleep(5 * time.Millisecond)
		}
		typ, data, err := ws.Read(ctx)
		if err != nil {
			return
		}
		if typ != websocket.MessageBinary {
			continue
		}
		m, err := wire.Decode(data)
		if err != nil {
			continue // TopGun ignores undecodable frames
		}
		plainValues(m)
		fs.mu.Lock()
		fs.seen = append(fs.seen, m.Type())
		fs.mu.Unlock()
		if !authed {
			a, ok := m.(*wire.Auth)
			if !ok {
				continue // dropped until AUTH_ACK
			}
			sub, err := fs.verify(a.Token)
			if err != nil {
				fs.send(c, &wire.AuthFail{Error: "Authentication failed"})
				_ = ws.Close(websocket.StatusPolicyViolation, "auth failed")
				return
			}
			authed = true
			fs.send(c, &wire.AuthAck{UserID: sub, DeviceID: "dev-auth"})
			continue
		}
		fs.handle(c, m)
	}
}

func (fs *fakeServer) verify(token string) (string, error) {
	secret := *fs.secret.Load()
	tok, err := jwt.Parse(token, func(*jwt.Token) (any, error) { return []byte(secret), nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired())
	if err != nil {
		return "", err
	}
	sub, err := tok.Claims.GetSubject()
	if err != nil || sub == "" {
		return "", errors.New("missing sub claim in JWT")
	}
	return sub, nil
}

func (fs *fakeServer) send(c *fakeConn, m wire.Message) {
	b, err := wire.Encode(m)
	if err != nil {
		fs.t.Errorf("fake server: encode %s: %v", m.Type(), err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.ws.Write(ctx, websocket.MessageBinary, b)
}

func (fs *fakeServer) handle(c *fakeConn, m wire.Message) {
	if f := fs.intercept.Load(); f != nil && (*f)(c, m) {
		return
	}
	switch m := m.(type) {
	case *wire.DeviceHello:
		if fs.deviceAck.Load() {
			fs.send(c, &wire.DeviceAck{DeviceID: "dev-1", DeviceToken: "dev-1.secret"})
		}
	case *wire.Ping:
		if fs.stallOnPing.CompareAndSwap(true, false) {
			fs.stall.Store(true)
		}
		if !fs.noPongs.Load() {
			fs.send(c, &wire.Pong{Timestamp: m.Timestamp, ServerTime: uint64(time.Now().UnixMilli())})
		}
	case *wire.ClientOpMessage:
		fs.apply(c, &m.ClientOp)
		if !fs.noAcks.Load() {
			id := m.ID
			if id == "" {
				id = "unknown"
			}
			fs.send(c, &wire.OpAck{LastID: id, AchievedLevel: wire.Applied})
		}
	case *wire.OpBatch:
		for i := range m.Ops {
			fs.apply(c, &m.Ops[i])
		}
		if !fs.noAcks.Load() {
			last := "unknown"
			if n := len(m.Ops); n > 0 && m.Ops[n-1].ID != "" {
				last = m.Ops[n-1].ID
			}
			fs.send(c, &wire.OpAck{LastID: last, AchievedLevel: wire.Applied})
		}
	case *wire.QuerySub:
		if m.Query.IsAggregate() {
			fs.send(c, &wire.QueryResp{QueryID: m.QueryID, Results: []wire.QueryResult{},
				Error: "aggregation queries are not supported", Code: "UNSUPPORTED"})
			return
		}
		c.mu.Lock()
		c.subs[m.QueryID] = m
		c.mu.Unlock()
		fs.send(c, &wire.QueryResp{QueryID: m.QueryID, Results: m.Query.Apply(fs.entries(m.MapName))})
	case *wire.QueryUnsub:
		c.mu.Lock()
		delete(c.subs, m.QueryID)
		c.mu.Unlock()
	case *wire.SyncInit:
		tree := newMerkleTree(fs.mapCopy(m.MapName))
		fs.send(c, &wire.SyncRespRoot{MapName: m.MapName, RootHash: tree.Root(), Timestamp: fs.hlc.Now()})
	case *wire.MerkleReqBucket:
		recs := fs.mapCopy(m.MapName)
		tree := newMerkleTree(recs)
		if len(m.Path) < merkle.Depth {
			if buckets := tree.Buckets(m.Path); len(buckets) > 0 {
				fs.send(c, &wire.SyncRespBuckets{MapName: m.MapName, Path: m.Path, Buckets: buckets})
			}
			return // nothing at this path: TopGun sends no reply
		}
		var leaf []wire.LeafRecord
		for _, k := range tree.LeafKeys(m.Path) {
			leaf = append(leaf, wire.LeafRecord{Key: k, Record: recs[k]})
		}
		if len(leaf) > 0 {
			fs.send(c, &wire.SyncRespLeaf{MapName: m.MapName, Path: m.Path, Records: leaf})
		}
	}
}

// apply stores an op and fans out to the other connections' live queries on
// the map, as TopGun does (never back to the writer).
func (fs *fakeServer) apply(writer *fakeConn, op *wire.ClientOp) {
	ev := &wire.ServerEvent{MapName: op.MapName, Key: op.Key}
	var value any
	switch op.Kind() {
	case wire.OpRemove:
		fs.mu.Lock()
		delete(fs.data[op.MapName], op.Key)
		fs.mu.Unlock()
		ev.EventType = wire.EventRemove
	default:
		if op.Record == nil {
			return
		}
		fs.put(op.MapName, op.Key, *op.Record)
		ev.EventType = wire.EventPut
		ev.Record = op.Record
		value = op.Record.Value
	}
	fs.mu.Lock()
	conns := make([]*fakeConn, 0, len(fs.conns))
	for c := range fs.conns {
		if c != writer {
			conns = append(conns, c)
		}
	}
	fs.mu.Unlock()
	for _, c := range conns {
		c.mu.Lock()
		var subs []*wire.QuerySub
		for _, s := range c.subs {
			if s.MapName == op.MapName {
				subs = append(subs, s)
			}
		}
		c.mu.Unlock()
		if len(subs) == 0 {
			continue
		}
		fs.send(c, ev)
		for _, s := range subs {
			change := wire.Enter
			if value == nil || !s.Query.Match(value) {
				change = wire.Leave
				value = nil
			}
			fs.send(c, &wire.QueryUpdate{QueryID: s.QueryID, Key: op.Key, Value: value, ChangeType: change})
		}
	}
}

func (fs *fakeServer) mapCopy(mapName string) map[string]wire.LWWRecord {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	out := make(map[string]wire.LWWRecord, len(fs.data[mapName]))
	for k, v := range fs.data[mapName] {
		out[k] = v
	}
	return out
}

func (fs *fakeServer) entries(mapName string) []wire.QueryResult {
	var out []wire.QueryResult
	for k, r := range fs.mapCopy(mapName) {
		out = append(out, wire.QueryResult{Key: k, Value: r.Value})
	}
	return out
}

// token mints an HS256 JWT like TopGun's test helper.
func token(t testing.TB, secret, sub string) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": sub, "roles": []string{"user"}, "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// setIntercept installs f as fs.intercept.
func (fs *fakeServer) setIntercept(f func(c *fakeConn, m wire.Message) bool) {
	fs.intercept.Store(&f)
}

// testOptions are fast options for tests.
func testOptions(t testing.TB) *Options {
	o := DefaultOptions()
	o.Logger = testLogger(t)
	o.NoAuthGrace = 150 * time.Millisecond
	o.BackoffInitial = 20 * time.Millisecond
	o.BackoffMax = 80 * time.Millisecond
	o.PingInterval = 0
	o.SyncIdleTimeout = 5 * time.Second
	return o
}

// authOptions are testOptions for a fake server with auth on, with token
// as Options.Token. Such a server always sends AUTH_REQUIRED, so the
// client never needs the no-auth grace to pass: a long one keeps a loaded
// machine, slow to deliver AUTH_REQUIRED, from being taken for a server
// with auth off.
func authOptions(t testing.TB, token string) *Options {
	o := testOptions(t)
	o.Token = token
	o.NoAuthGrace = time.Minute
	return o
}

func dial(t testing.TB, url string, o *Options) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	c, err := Dial(ctx, url, o)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// waitFor bounds the waits of the tests for something they expect to
// happen (a reply, a reconnect, a call that must return). It only guards
// against a hang: under -race on a loaded machine a round trip may take
// seconds.
const waitFor = 30 * time.Second

// eventually polls cond every 5 ms for up to waitFor.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	t.Cleanup(cancel)
	return ctx
}

// plainValues puts the record values of a client's writes, which
// wire.Decode gives as the record.Values a server stores, back into the
// value model the fake server keeps and its tests compare.
func plainValues(m wire.Message) {
	plain := func(v *any) {
		if rv, ok := (*v).(record.Value); ok {
			*v = rv.ToWire()
		}
	}
	op := func(op *wire.ClientOp) {
		if op.Record != nil {
			plain(&op.Record.Value)
		}
		if op.ORRecord != nil {
			plain(&op.ORRecord.Value)
		}
	}
	switch m := m.(type) {
	case *wire.ClientOpMessage:
		op(&m.ClientOp)
	case *wire.OpBatch:
		for i := range m.Ops {
			op(&m.Ops[i])
		}
	case *wire.ORMapPushDiff:
		for i := range m.Entries {
			for j := range m.Entries[i].Records {
				plain(&m.Entries[i].Records[j].Value)
			}
		}
	}
}
