package protocol

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/topgun-go/topgun/server/wire"
)

func TestOptions_Validate(t *testing.T) {
	t.Parallel()
	o := Options{}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	d := DefaultOptions()
	d.Logger = o.Logger
	if !reflect.DeepEqual(*d, o) || o.Logger == nil {
		t.Fatalf("zero options did not become the defaults: %+v", o)
	}
	for _, tc := range []struct {
		name string
		o    Options
	}{
		{"tiny message limit", Options{MaxMessageBytes: 10}},
		{"huge batch limit", Options{MaxBatchOps: 1 << 30}},
		{"negative batch limit", Options{MaxBatchOps: -1}},
		{"negative idle", Options{IdleTimeout: -time.Second}},
		{"negative queue", Options{OutboundQueue: -1}},
		{"origin pattern with a scheme", Options{OriginPatterns: []string{"https://app.example.com"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.o.Validate(); err == nil || !strings.HasPrefix(err.Error(), "protocol: ") {
				t.Fatalf("Validate = %v", err)
			}
		})
	}
	if _, err := New(nil, nil); err == nil {
		t.Fatal("New(nil) succeeded")
	}
}

func TestTransport_routes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	for _, tc := range []struct {
		path string
		code int
	}{
		{"/health", 200}, // the binary's route is not shadowed
		{"/", http.StatusUpgradeRequired},
		{"/ws", http.StatusUpgradeRequired},
		{"/other", 404},
	} {
		resp, err := http.Get(e.http.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("GET %s = %d, want %d", tc.path, resp.StatusCode, tc.code)
		}
	}
	// The upgrade works at / as well as /ws.
	c := e.dialPath(t, "/")
	c.ping()
}

func TestConn_pingPongAndIdleClose(t *testing.T) {
	t.Parallel()
	// Long enough that a loaded machine does not leave a pinging client
	// silent for as long; the test takes about this long.
	const idle = 2 * time.Second
	e := newEnv(t, envConfig{opts: Options{IdleTimeout: idle}})
	// alive is connected (it answered) before c: when c is closed as idle,
	// alive has been connected for longer than the idle timeout.
	alive := e.dial(t)
	alive.ping()
	c := e.dial(t)
	before := uint64(time.Now().UnixMilli())
	lastActive := time.Now() // the server hears from c after this
	c.send(&wire.Ping{Timestamp: 1700000000000})
	p := expect[*wire.Pong](c)
	if p.Timestamp != 1700000000000 || p.ServerTime < before || p.ServerTime > uint64(time.Now().UnixMilli()) {
		t.Fatalf("PONG %+v", p)
	}
	// A silent client is closed, not before the idle timeout; one that
	// keeps pinging meanwhile stays connected past it.
	deadline := time.After(idle + waitFor)
	for open := true; open; {
		select {
		case <-c.done:
			open = false
		case <-deadline:
			t.Fatalf("silent connection still open %s after its last message (idle timeout %s)", idle+waitFor, idle)
		case <-time.After(50 * time.Millisecond):
			alive.ping()
		}
	}
	if d := time.Since(lastActive); d < idle {
		t.Fatalf("closed as idle %s after its last message, before the idle timeout %s", d, idle)
	}
	if code := websocket.CloseStatus(c.err); code != websocket.StatusGoingAway {
		t.Fatalf("idle close status %v (%v)", code, c.err)
	}
	alive.ping()
}

func TestConn_badFramesNeverHurt(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{opts: Options{MaxMessageBytes: 1 << 16}})
	c := e.dial(t)
	guard := putOp("1", "guard", "k", map[string]any{"v": "precious"}, cts("c"))
	c.write(guard)
	before, _, _ := e.getLWW("guard", "k")

	deep := bytes.Repeat([]byte{0x91}, 300) // 300 nested arrays
	deep = append(deep, 0xc0)
	deepMsg := func() []byte {
		var b bytes.Buffer
		enc := msgpack.NewEncoder(&b)
		enc.EncodeMapLen(2)
		enc.EncodeString("type")
		enc.EncodeString("CLIENT_OP")
		enc.EncodeString("payload")
		b.Write(bytes.Repeat([]byte{0x81, 0xa1, 'x'}, 300))
		b.WriteByte(0xc0)
		return b.Bytes()
	}()
	good, _ := wire.Encode(&wire.OpBatch{Ops: []wire.ClientOp{putOp("2", "guard", "k", "overwritten", cts("c"))}})
	for _, tc := range []struct {
		name  string
		frame []byte
		reply bool // an ERROR is expected
	}{
		{"empty", nil, true},
		{"garbage", []byte{0xc1, 0xc1, 0xc1}, true},
		{"not a map", []byte{0x93, 1, 2, 3}, true},
		{"huge array length", []byte{0xdd, 0xff, 0xff, 0xff, 0xff}, true},
		{"huge map length", []byte{0xdf, 0x7f, 0xff, 0xff, 0xff, 0xa4, 't', 'y', 'p', 'e'}, true},
		{"huge string length", []byte{0x81, 0xa4, 't', 'y', 'p', 'e', 0xdb, 0xff, 0xff, 0xff, 0xf0}, true},
		{"deep nesting", deep, true},
		{"deep payload", deepMsg, true},
		{"truncated good frame", good[:len(good)-3], true},
		{"good frame plus trailing bytes", append(append([]byte{}, good...), 0x00), true},
		{"unknown type", mustEncodeMap(t, map[string]any{"type": "TOPIC_PUB", "payload": map[string]any{"topic": "x"}}), true},
		{"missing type", mustEncodeMap(t, map[string]any{"payload": map[string]any{}}), true},
		{"bad batch", mustEncode(t, &wire.Batch{Count: 3, Data: []byte{0, 0, 0, 9, 1}}), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.sendRaw(tc.frame)
			if tc.reply {
				if m := expect[*wire.ErrorMessage](c); m.Code != 400 && m.Code != 413 && m.Code != 501 {
					t.Fatalf("ERROR %+v", m)
				}
			}
			c.ping()
		})
	}
	// Text frames are ignored.
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, good); err != nil {
		t.Fatal(err)
	}
	c.ping()
	// A frame over the hard read cap is unreadable: the connection closes.
	huge := make([]byte, 8<<16+10)
	_ = c.ws.Write(ctx, websocket.MessageBinary, huge)
	if code := c.closed(); code != websocket.StatusMessageTooBig {
		t.Fatalf("close status %v", code)
	}
	after, _, ok := e.getLWW("guard", "k")
	if !ok || !after.Equal(before) {
		t.Fatalf("guard record changed: %v -> %v", before, after)
	}
}

func mustEncode(t *testing.T, m wire.Message) []byte {
	t.Helper()
	b, err := wire.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustEncodeMap(t *testing.T, m map[string]any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConn_batchEnvelope(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	c := e.dial(t)
	b, err := wire.PackBatch(
		mustEncode(t, &wire.Ping{Timestamp: 1}),
		mustEncode(t, &wire.OpBatch{Ops: []wire.ClientOp{putOp("1", "m", "k", "v", cts("c"))}}),
		mustEncode(t, &wire.Ping{Timestamp: 2}),
	)
	if err != nil {
		t.Fatal(err)
	}
	c.send(b)
	if p := expect[*wire.Pong](c); p.Timestamp != 1 {
		t.Fatalf("%+v", p)
	}
	var gotAck, gotPong bool
	for !gotAck || !gotPong {
		switch m := c.next().(type) {
		case *wire.OpAck:
			gotAck = true
		case *wire.Pong:
			gotPong = m.Timestamp == 2
		default:
			t.Fatalf("got %s", m.Type())
		}
	}
	// A BATCH inside a BATCH is not unpacked.
	inner, _ := wire.PackBatch(mustEncode(t, &wire.Ping{Timestamp: 3}))
	outer, _ := wire.PackBatch(mustEncode(t, inner))
	c.send(outer)
	if m := expect[*wire.ErrorMessage](c); m.Code != 400 {
		t.Fatalf("%+v", m)
	}
	c.ping()
}

func TestConn_slowClientIsDisconnected(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{opts: Options{OutboundBytes: MinOutboundBytes}})
	// A connection whose writer never runs: its queue fills up. Small
	// messages count msgOverhead each, so they are bounded too.
	c := e.srv.newConn(nil, "test")
	ping, _ := wire.Encode(&wire.Ping{})
	fit := MinOutboundBytes / (len(ping) + msgOverhead)
	for i := 0; i < fit; i++ {
		c.send(ping)
	}
	if c.ctx.Err() != nil {
		t.Fatal("disconnected before the queue was full")
	}
	done := make(chan struct{})
	go func() { c.send(ping); close(done) }()
	select {
	case <-done:
	case <-time.After(waitFor):
		t.Fatal("send blocked on a full queue")
	}
	if c.ctx.Err() == nil {
		t.Fatal("a client that does not read was not disconnected")
	}

	// Through the fan-out: a subscriber that stops reading is cut off and
	// writers and other subscribers go on.
	e = newEnv(t, envConfig{opts: Options{OutboundBytes: 1 << 20}})
	slowWS, _, err := websocket.Dial(context.Background(), e.wsURL("/ws"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slowWS.CloseNow()
	q, _ := wire.Encode(&wire.QuerySub{QueryID: "q", MapName: "big"})
	if err := slowWS.Write(context.Background(), websocket.MessageBinary, q); err != nil {
		t.Fatal(err)
	}
	fast := e.dial(t)
	fast.send(&wire.QuerySub{QueryID: "q", MapName: "big"})
	expect[*wire.QueryResp](fast)
	w := e.dial(t)
	e.waitConnections(3)
	value := strings.Repeat("x", 64<<10)
	for i := 0; i < 1000 && e.srv.Connections() == 3; i++ {
		w.write(putOp(itoa(i+1), "big", "k", value+itoa(i), cts("w")))
		skipUntil[*wire.QueryUpdate](fast)
	}
	if n := e.srv.Connections(); n != 2 {
		t.Fatalf("%d connections: the subscriber that does not read was not dropped", n)
	}
}

// The queue is bounded in bytes too: a subscriber that stops reading while
// large changes stream to it is cut off after a few of them,
// and one large message still goes to a client that reads.
func TestConn_outboundBytesBound(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{opts: Options{OutboundBytes: MinOutboundBytes, WriteTimeout: time.Minute}})
	c := e.srv.newConn(nil, "test")
	c.send(make([]byte, 2*MinOutboundBytes))
	if c.ctx.Err() != nil {
		t.Fatal("a message larger than the bound was refused with nothing else queued")
	}
	c.send(make([]byte, 1))
	if c.ctx.Err() == nil {
		t.Fatal("not disconnected with more bytes queued than the bound")
	}

	// Over the wire: a live query on a map whose records another client
	// overwrites with 50 KB values; the subscriber reads nothing. 200
	// writes make 400 messages (20 MB, more than loopback's socket buffers
	// take), and the write timeout (a minute
	// here) would not cut the subscriber off before.
	e2 := newEnv(t, envConfig{opts: Options{OutboundBytes: 256 << 10, WriteTimeout: time.Minute}})
	slow, _, err := websocket.Dial(context.Background(), e2.wsURL("/ws"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.CloseNow()
	q, _ := wire.Encode(&wire.QuerySub{QueryID: "q", MapName: "big"})
	if err := slow.Write(context.Background(), websocket.MessageBinary, q); err != nil {
		t.Fatal(err)
	}
	w := e2.dial(t)
	e2.waitConnections(2)
	value := strings.Repeat("x", 50<<10)
	for i := 0; i < 200 && e2.srv.Connections() == 2; i++ {
		w.write(putOp(itoa(i+1), "big", "k"+itoa(i%5), value+itoa(i), cts("w")))
	}
	deadline := time.Now().Add(30 * time.Second)
	for e2.srv.Connections() == 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := e2.srv.Connections(); n != 1 {
		t.Fatalf("%d connections: the subscriber that does not read was not dropped", n)
	}
	if n := e2.srv.Stats().SlowClientsDropped; n != 1 {
		t.Fatalf("SlowClientsDropped = %d, want 1", n)
	}
	w.ping() // the writer's connection is untouched
}

// An answer larger than the bound (a QUERY_RESP the client asked for)
// does not leave the changes that follow it without room: a client that
// has not read it all yet is not cut off for one small change behind it.
// Changes still get only half the bound behind it.
func TestConn_bigAnswerLeavesRoomForChanges(t *testing.T) {
	t.Parallel()
	const bound = 256 << 10
	e := newEnv(t, envConfig{opts: Options{OutboundBytes: bound}})
	w := e.dial(t)
	// obs hears of a write made after the puts below once the fan-out
	// (which dispatches commits in order) has passed them: the connection
	// made after must get no event of theirs, which would come between
	// the answer and the change this test queues behind it.
	obs := e.dial(t)
	obs.send(&wire.QuerySub{QueryID: "o", MapName: "marker"})
	expect[*wire.QueryResp](obs)
	const records = 5 // a QUERY_RESP of 500 KB
	value := strings.Repeat("x", 100<<10)
	for i := 0; i < records; i++ {
		w.write(putOp(itoa(i+1), "big", "k"+itoa(i), value, cts("w")))
	}
	w.write(putOp(itoa(records+1), "marker", "m", "v", cts("w")))
	skipUntil[*wire.QueryUpdate](obs)
	// A connection whose writer has not yet written the answer: this
	// test plays the socket.
	c := e.srv.newConn(nil, "test")
	defer func() { c.abort(); e.srv.removeConn(c) }()
	c.handleFrame(mustEncode(t, &wire.QuerySub{QueryID: "q", MapName: "big"}), 0)
	w.write(putOp(itoa(records+2), "big", "small", "v", cts("w")))
	// SERVER_EVENT and QUERY_UPDATE of the change, behind the answer.
	eventually(t, "the change to be queued or the client cut off", func() bool {
		return c.out.len() == 3 || c.ctx.Err() != nil
	})
	if n := e.srv.Stats().SlowClientsDropped; n != 0 || c.ctx.Err() != nil {
		t.Fatalf("a client was cut off (SlowClientsDropped = %d) for one change queued behind the answer it asked for", n)
	}
	var got []wire.Message
	for it, ok := c.out.pop(); ok; it, ok = c.out.pop() {
		m, err := wire.DefaultLimits().Decode(it.b)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, m)
		c.sent(it)
	}
	if r, ok := got[0].(*wire.QueryResp); !ok || len(r.Results) != records {
		t.Fatalf("first %s %+v, want QUERY_RESP with %d results", got[0].Type(), got[0], records)
	}
	if u, ok := got[2].(*wire.QueryUpdate); !ok || u.Key != "small" {
		t.Fatalf("last %s %+v, want QUERY_UPDATE of small", got[2].Type(), got[2])
	}

	// Behind such an answer, changes that pass half the bound still cut
	// the client off.
	sc := e.srv.newConn(nil, "test")
	sc.enqueue(make([]byte, 2*bound), true)
	msg := make([]byte, 1000)
	for i := 0; sc.ctx.Err() == nil && i < bound; i++ {
		sc.send(msg)
	}
	if sc.ctx.Err() == nil {
		t.Fatal("changes behind a large answer were never cut off")
	}
	if p := sc.pushed.Load(); p > bound/2 {
		t.Fatalf("%d bytes of changes queued behind the answer, over half the bound (%d)", p, bound/2)
	}
}

// Answers to requests are not cut off but hold the reader back: a client
// that asks for the same 250 KB query 100 times and reads nothing makes
// the server queue at most half the byte bound plus one answer, and gets
// every answer once it reads.
func TestConn_repliesHoldTheReader(t *testing.T) {
	t.Parallel()
	const bound = 256 << 10
	e := newEnv(t, envConfig{opts: Options{OutboundBytes: bound, WriteTimeout: time.Minute}})
	w := e.dial(t)
	value := strings.Repeat("x", 50<<10)
	for i := 0; i < 5; i++ {
		w.write(putOp(itoa(i+1), "big", "k"+itoa(i), value, cts("w")))
	}
	c := e.dialPaused(t)
	e.waitConnections(2)
	var srvConn *conn
	e.srv.mu.RLock()
	for sc := range e.srv.conns {
		if sc.id != 1 {
			srvConn = sc
		}
	}
	e.srv.mu.RUnlock()
	const queries = 100
	sent := make(chan error, 1)
	go func() {
		for i := 0; i < queries; i++ {
			q, _ := wire.Encode(&wire.QuerySub{QueryID: "q" + itoa(i), MapName: "big"})
			if err := c.ws.Write(context.Background(), websocket.MessageBinary, q); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	// While the client reads nothing, the queue stays bounded.
	maxQueued := int64(0)
	for i := 0; i < 100; i++ {
		maxQueued = max(maxQueued, srvConn.queued.Load())
		time.Sleep(5 * time.Millisecond)
	}
	if limit := int64(bound/2 + 300<<10); maxQueued > limit {
		t.Fatalf("%d bytes queued, over half the bound plus one answer (%d)", maxQueued, limit)
	}
	if e.srv.Connections() != 2 {
		t.Fatal("the client was disconnected for asking")
	}
	c.resume()
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for len(got) < queries {
		r := skipUntil[*wire.QueryResp](c)
		if len(r.Results) != 5 {
			t.Fatalf("answer %s: %d results", r.QueryID, len(r.Results))
		}
		got[r.QueryID] = true
	}
	if n := e.srv.Stats().SlowClientsDropped; n != 0 {
		t.Fatalf("SlowClientsDropped = %d", n)
	}
}

// A reader held back by a client that reads its answers slowly is not
// idle: while the writer makes progress, waiting for room outlives
// IdleTimeout without the connection being closed.
func TestConn_heldReaderIsNotIdle(t *testing.T) {
	t.Parallel()
	// Long enough that a loaded machine does not pause the writer for as
	// long; the test takes one and a half times this.
	const idle = 2 * time.Second
	e := newEnv(t, envConfig{opts: Options{OutboundBytes: MinOutboundBytes, IdleTimeout: idle}})
	c := e.srv.newConn(nil, "test") // no socket: this test plays the writer
	c.start()
	defer c.abort()
	// 120 messages fill the queue to twice the half the reader waits for.
	const n = 120
	msg := make([]byte, MinOutboundBytes/n-msgOverhead)
	for i := 0; i < n; i++ {
		c.send(msg)
	}
	waited := make(chan struct{})
	go func() { c.waitRoom(); close(waited) }()
	// A slow client: one message written every 50 ms, so the queue is
	// back to half after 60 of them, 3 s, over the idle timeout.
	start := time.Now()
	for i := 0; ; i++ {
		select {
		case <-waited:
			if c.closing.Load() {
				t.Fatalf("closed as idle after %d messages written", i)
			}
			if d := time.Since(start); d < idle {
				t.Fatalf("the reader waited %s, less than the idle timeout: nothing was shown", d)
			}
			return
		case <-time.After(50 * time.Millisecond):
		}
		it, _ := c.out.next(nil)
		c.sent(it)
	}
}

// Beyond MaxConnections (and its reserve for takeovers, one connection
// here) an upgrade or a POST /sync gets 503 with Retry-After; a slot
// freed by a closed connection is taken again.
func TestServer_maxConnections(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{opts: Options{MaxConnections: 2}})
	a, b := e.dial(t), e.dial(t)
	a.ping()
	b.ping()
	e.dial(t) // admitted on trial, into the reserve
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, e.wsURL("/ws"), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("third connection: err %v, response %+v", err, resp)
	}
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), "TOPGUN_MAX_CONNECTIONS") {
		t.Fatalf("refusal does not name the setting: %q", body)
	}
	// POST /sync shares the slots.
	if code, out := e.postRaw(t, nil, ""); code != http.StatusServiceUnavailable || !strings.Contains(string(out), "TOPGUN_MAX_CONNECTIONS") {
		t.Fatalf("POST /sync with every slot taken: %d %s", code, out)
	}
	if n := e.srv.Stats().ClientsRefused; n != 2 {
		t.Fatalf("ClientsRefused = %d, want 2", n)
	}
	a.ws.Close(websocket.StatusNormalClosure, "")
	deadline := time.Now().Add(10 * time.Second)
	for e.srv.clients.Load() != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	c := e.dial(t)
	c.ping()
	b.ping()
}

// Servers sharing a ConnectionLimit are bounded together, each counting
// its own clients as well: beyond the shared limit an upgrade or a POST
// /sync on any of them gets 503 with Retry-After and a message naming the
// shared limit's setting, counted in that server's ClientsRefused.
func TestServer_sharedConnections(t *testing.T) {
	t.Parallel()
	shared := NewConnectionLimit(2, "max_connections")
	e1 := newEnv(t, envConfig{opts: Options{SharedConnections: shared}})
	e2 := newEnv(t, envConfig{opts: Options{SharedConnections: shared}})
	a, b := e1.dial(t), e2.dial(t)
	a.ping()
	b.ping()
	e1.dial(t) // admitted on trial, into the shared reserve
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, e1.wsURL("/ws"), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("third connection, on the first server: err %v, response %+v", err, resp)
	}
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), "at most 2 at once (max_connections)") {
		t.Fatalf("refusal does not name the shared limit: %q", body)
	}
	if code, out := e2.postRaw(t, nil, ""); code != http.StatusServiceUnavailable || !strings.Contains(string(out), "max_connections") {
		t.Fatalf("POST /sync on the second server with every shared slot taken: %d %s", code, out)
	}
	if n1, n2 := e1.srv.Stats().ClientsRefused, e2.srv.Stats().ClientsRefused; n1 != 1 || n2 != 1 {
		t.Fatalf("ClientsRefused = %d and %d, want 1 each", n1, n2)
	}
	// A refusal by the shared limit takes no slot of the server's own.
	if n := e1.srv.clients.Load(); n != 1 {
		t.Fatalf("the first server counts %d clients, want 1", n)
	}
	a.ws.Close(websocket.StatusNormalClosure, "")
	deadline := time.Now().Add(10 * time.Second)
	for shared.clients.Load() != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	c := e2.dial(t)
	c.ping()
	b.ping()
}

// While the store is slow, a connection holds at most writeQueueFrames
// maximum-size messages of writes: the reader stops reading instead of
// queueing more. Nothing is lost: every write is acknowledged once the
// store catches up.
func TestConn_writeQueueBoundInBytes(t *testing.T) {
	t.Parallel()
	const maxMsg = 64 << 10
	e := newEnv(t, envConfig{opts: Options{MaxMessageBytes: maxMsg}})
	const batches = 40 // 40 x 60 KB: 2.4 MB, well under the 256-job bound
	value := strings.Repeat("v", 60<<10)
	frames := make([][]byte, batches)
	frameMax := 0
	for i := range frames {
		frames[i] = mustEncode(t, &wire.OpBatch{Ops: []wire.ClientOp{putOp(itoa(i+1), "m", "k"+itoa(i+1), value, cts("c"))}})
		frameMax = max(frameMax, len(frames[i]))
	}
	// The reader is held once one more frame would not fit; the queue
	// must then stay put.
	limit := writeQueueFrames * maxMsg
	heldWrites(t, e, frames, func(q, _ int) bool { return q+frameMax > limit }, func(q, _ int) string {
		if q > limit {
			return fmt.Sprintf("%d bytes of writes queued, over the bound of %d", q, limit)
		}
		return ""
	})
}

// heldWrites sends frames (OP_BATCHes of ops "1".."n" writing keys k1..kn of
// map m) on a new connection while the store's commits are held, waits
// until the connection's write queue stays put with full reporting true
// (failing at once when over reports a problem), checks that the reader
// stopped before queueing every frame, then releases the commits and
// checks that every write is acknowledged and stored.
func heldWrites(t *testing.T, e *env, frames [][]byte, full func(queued, jobs int) bool, over func(queued, jobs int) string) {
	t.Helper()
	c := e.dial(t)
	c.ping()
	var srvConn *conn
	e.srv.mu.RLock()
	for sc := range e.srv.conns {
		srvConn = sc
	}
	e.srv.mu.RUnlock()
	queued := func() (int, int) {
		srvConn.mu.Lock()
		defer srvConn.mu.Unlock()
		return srvConn.queuedWrites, srvConn.pending
	}
	release := e.be.holdCommits()
	defer release()
	sent := make(chan error, 1)
	go func() {
		for _, b := range frames {
			if err := c.ws.Write(context.Background(), websocket.MessageBinary, b); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	last, stable := -1, 0
	deadline := time.Now().Add(20 * time.Second)
	for stable < 20 && time.Now().Before(deadline) {
		q, jobs := queued()
		if msg := over(q, jobs); msg != "" {
			t.Fatal(msg)
		}
		if q == last && full(q, jobs) {
			stable++
		} else {
			last, stable = q, 0
		}
		time.Sleep(10 * time.Millisecond)
	}
	if q, jobs := queued(); q == 0 || jobs >= len(frames) {
		t.Fatalf("queued %d bytes in %d jobs: the bound did not hold the writes back", q, jobs)
	}
	release()
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	acked := 0
	for acked < len(frames) {
		if m, ok := c.next().(*wire.OpAck); ok {
			acked, _ = strconv.Atoi(m.LastID)
		}
	}
	for i := 1; i <= len(frames); i++ {
		if _, _, ok := e.getLWW("m", "k"+itoa(i)); !ok {
			t.Fatalf("write %d was lost", i)
		}
	}
}

func TestServer_closeAcksWritesInFlight(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	c := e.dial(t)
	c.ping()
	var srvConn *conn
	e.srv.mu.RLock()
	for sc := range e.srv.conns {
		srvConn = sc
	}
	e.srv.mu.RUnlock()
	release := e.be.holdCommits()
	c.send(&wire.OpBatch{Ops: []wire.ClientOp{putOp("1", "m", "k", "v", cts("c"))}})
	// The write is in flight once the reader handed it to the worker (a
	// frame still unread when Close starts is dropped, unacknowledged).
	eventually(t, "the write to be in flight", func() bool {
		srvConn.mu.Lock()
		defer srvConn.mu.Unlock()
		return srvConn.pending == 1
	})
	closed := make(chan struct{})
	go func() { e.srv.Close(); close(closed) }()
	time.Sleep(50 * time.Millisecond)
	select {
	case <-closed:
		t.Fatal("Close returned while a write was in flight")
	default:
	}
	release()
	if ack := expect[*wire.OpAck](c); ack.LastID != "1" {
		t.Fatalf("OP_ACK %+v", ack)
	}
	if code := c.closed(); code != websocket.StatusGoingAway {
		t.Fatalf("close status %v", code)
	}
	<-closed
	// New connections are refused.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, _, err := websocket.Dial(ctx, e.wsURL("/ws"), nil); err == nil {
		t.Fatal("dial after Close succeeded")
	}
	resp, err := http.Post(e.http.URL+"/sync", "application/x-msgpack", nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("POST /sync after Close: %d", resp.StatusCode)
	}
}

// waitConnections waits until the server holds n connections: one is
// registered when the upgrade's handler runs, which may trail the client's
// dial.
func (e *env) waitConnections(n int) {
	e.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); e.srv.Connections() != n; {
		if time.Now().After(deadline) {
			e.t.Fatalf("%d connections, want %d", e.srv.Connections(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// A connection whose writes wait for storage is not idle: its reader,
// held behind them once the write queue is full, reads none of the
// client's PINGs meanwhile, and closing it made the client send every
// write again to a store as slow. Once its writes are answered, a silent
// connection is closed as idle again.
func TestConn_writesWaitingForStorageAreNotIdle(t *testing.T) {
	t.Parallel()
	const idle = time.Second
	e := newEnv(t, envConfig{opts: Options{IdleTimeout: idle}})
	c := e.dial(t)
	release := e.be.holdCommits()
	defer release()
	c.send(&wire.OpBatch{Ops: []wire.ClientOp{putOp("1", "m", "k", "v", cts("c"))}})
	eventually(t, "the write held", func() bool { return e.be.held.Load() == 1 })
	select {
	case <-c.done:
		t.Fatalf("closed while its write waited for storage: %v", c.err)
	case <-time.After(3 * idle):
	}
	release()
	if a := skipUntil[*wire.OpAck](c); a.LastID != "1" {
		t.Fatalf("OP_ACK %+v", a)
	}
	if code := c.closed(); code != websocket.StatusGoingAway {
		t.Fatalf("silent connection closed with %v, want going away (idle)", code)
	}
}
