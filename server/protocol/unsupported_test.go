package protocol

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/topgun-go/topgun/server/wire"
)

// rawConn is a WebSocket client that decodes the server's frames as plain
// MsgPack, as TopGun's client does, so that it reads reply types package
// wire does not model.
type rawConn struct {
	t  *testing.T
	ws *websocket.Conn
}

func (e *env) dialRaw(t *testing.T) *rawConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, e.wsURL("/ws"), nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	return &rawConn{t: t, ws: ws}
}

func (c *rawConn) send(frame []byte) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageBinary, frame); err != nil {
		c.t.Fatal(err)
	}
}

// next returns the next message as TopGun's client sees it.
func (c *rawConn) next() map[string]any {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	_, b, err := c.ws.Read(ctx)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	var m map[string]any
	if err := msgpack.Unmarshal(b, &m); err != nil {
		c.t.Fatalf("undecodable frame %x: %v", b, err)
	}
	return m
}

// payload returns the payload of m, which must be of type typ.
func (c *rawConn) payload(m map[string]any, typ string) map[string]any {
	c.t.Helper()
	if m["type"] != typ {
		c.t.Fatalf("got %v, want %s", m, typ)
	}
	p, ok := m["payload"].(map[string]any)
	if !ok {
		c.t.Fatalf("%s without payload: %v", typ, m)
	}
	return p
}

// intOf returns v as an integer when it was encoded as one.
func intOf(v any) (int64, bool) {
	switch n := v.(type) {
	case int8:
		return int64(n), true
	case int16:
		return int64(n), true
	case int32:
		return int64(n), true
	case int64:
		return n, true
	case uint8:
		return int64(n), true
	case uint16:
		return int64(n), true
	case uint32:
		return int64(n), true
	case uint64:
		return int64(n), true
	}
	return 0, false
}

// TestConn_unsupportedRequests sends the requests of TopGun features this
// server does not serve, as TopGun's client sends them, and checks each is
// refused at once in a form its client understands: a search or SQL query
// gets its reply type with an error (the client fails the call with it),
// anything else ERROR 501 naming the type. Without an answer the client
// waits for one (30 s for a search, a lock's ttl plus 5 s) and then fails
// with a timeout.
func TestConn_unsupportedRequests(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	c := e.dialRaw(t)
	fixture := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("..", "wire", "testdata", "fixtures", name+".msgpack"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	wrapped := func(typ string, payload map[string]any) []byte {
		return mustEncodeMap(t, map[string]any{"type": typ, "payload": payload})
	}
	emptyList := func(p map[string]any, field string) {
		t.Helper()
		if l, ok := p[field].([]any); !ok || len(l) != 0 {
			t.Fatalf("%s = %#v, want an empty list", field, p[field])
		}
	}
	zero := func(p map[string]any, field string) {
		t.Helper()
		if n, ok := intOf(p[field]); !ok || n != 0 {
			t.Fatalf("%s = %#v, want the integer 0", field, p[field])
		}
	}
	refused := func(p map[string]any, typ string) {
		t.Helper()
		if msg, _ := p["error"].(string); !strings.Contains(msg, typ+" is not supported") {
			t.Fatalf("error = %#v, want one saying %s is not supported", p["error"], typ)
		}
	}

	// One-shot requests: the reply type, empty, with the error.
	c.send(fixture("SEARCH"))
	p := c.payload(c.next(), "SEARCH_RESP")
	if p["requestId"] != "sr-001" || len(p) != 4 {
		t.Fatalf("SEARCH_RESP %v", p)
	}
	emptyList(p, "results")
	zero(p, "totalCount")
	refused(p, "SEARCH")

	c.send(wrapped("SQL_QUERY", map[string]any{"sql": "SELECT 1", "queryId": "q-1"}))
	p = c.payload(c.next(), "SQL_QUERY_RESP")
	if p["queryId"] != "q-1" || p["code"] != "FEATURE_DISABLED" || len(p) != 5 {
		t.Fatalf("SQL_QUERY_RESP %v", p)
	}
	emptyList(p, "columns")
	emptyList(p, "rows")
	refused(p, "SQL_QUERY")

	c.send(wrapped("VECTOR_SEARCH", map[string]any{"id": "v-1", "mapName": "docs", "queryVector": []byte{0, 0, 128, 63}, "k": 10}))
	p = c.payload(c.next(), "VECTOR_SEARCH_RESP")
	if p["id"] != "v-1" || len(p) != 5 {
		t.Fatalf("VECTOR_SEARCH_RESP %v", p)
	}
	emptyList(p, "results")
	zero(p, "totalCandidates")
	zero(p, "searchTimeMs")
	refused(p, "VECTOR_SEARCH")

	c.send(wrapped("HYBRID_SEARCH", map[string]any{"requestId": "h-1", "mapName": "docs", "queryText": "x", "methods": []string{"fullText"}, "k": 10}))
	p = c.payload(c.next(), "HYBRID_SEARCH_RESP")
	if p["requestId"] != "h-1" || len(p) != 4 {
		t.Fatalf("HYBRID_SEARCH_RESP %v", p)
	}
	emptyList(p, "results")
	zero(p, "searchTimeMs")
	refused(p, "HYBRID_SEARCH")

	// The rest of what TopGun's client sends of such features: ERROR 501.
	for _, name := range []string{
		"LOCK_REQUEST", "LOCK_RELEASE", "TOPIC_SUB", "TOPIC_UNSUB", "TOPIC_PUB",
		"COUNTER_REQUEST", "COUNTER_SYNC", "JOURNAL_SUBSCRIBE", "SEARCH_SUB", "SEARCH_UNSUB",
		"PARTITION_MAP_REQUEST", "REGISTER_RESOLVER", "LIST_RESOLVERS",
	} {
		c.send(fixture(name))
		p := c.payload(c.next(), "ERROR")
		if n, _ := intOf(p["code"]); n != 501 {
			t.Fatalf("%s: ERROR %v", name, p)
		}
		if msg, _ := p["message"].(string); !strings.Contains(msg, name+" is not supported") {
			t.Fatalf("%s: ERROR %v", name, p)
		}
	}
	// A search without its id cannot be answered in kind.
	c.send(wrapped("SEARCH", map[string]any{"mapName": "m", "query": "q"}))
	if p := c.payload(c.next(), "ERROR"); !strings.Contains(p["message"].(string), "SEARCH is not supported") {
		t.Fatalf("ERROR %v", p)
	}

	// In a BATCH, each inner message is answered in its turn.
	ping, _ := wire.Encode(&wire.Ping{Timestamp: 7})
	b, err := wire.PackBatch(fixture("SEARCH"), ping, fixture("TOPIC_PUB"))
	if err != nil {
		t.Fatal(err)
	}
	c.send(mustEncode(t, b))
	c.payload(c.next(), "SEARCH_RESP")
	if m := c.next(); m["type"] != "PONG" {
		t.Fatalf("got %v, want PONG", m)
	}
	c.payload(c.next(), "ERROR")
}

// TestConn_unsupportedBeforeAuth: before authentication such requests are
// dropped without a word, as every message but AUTH is.
func TestConn_unsupportedBeforeAuth(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{opts: Options{Auth: mustAuth(t, testSecret)}})
	c := e.dialRaw(t)
	if m := c.next(); m["type"] != "AUTH_REQUIRED" {
		t.Fatalf("got %v", m)
	}
	c.send(mustEncodeMap(t, map[string]any{"type": "SEARCH", "payload": map[string]any{"requestId": "r", "mapName": "m", "query": "q"}}))
	c.send(mustEncodeMap(t, map[string]any{"type": "TOPIC_PUB", "payload": map[string]any{"topic": "x", "data": 1}}))
	c.send(mustEncode(t, &wire.Auth{Token: userToken(t, "alice")}))
	if m := c.next(); m["type"] != "AUTH_ACK" {
		t.Fatalf("got %v, want AUTH_ACK first", m)
	}
}
