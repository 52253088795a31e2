package main

// End-to-end tests of the client protocol through the real binary: a raw
// WebSocket client speaking server/wire against a server process.

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/topgun-go/topgun/server/wire"
)

// wsClient is a minimal protocol client.
type wsClient struct {
	t  *testing.T
	ws *websocket.Conn
}

func dialServer(t *testing.T, p *proc) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://127.0.0.1:"+strconv.Itoa(p.port)+"/ws", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	return &wsClient{t: t, ws: ws}
}

func (c *wsClient) send(m wire.Message) {
	c.t.Helper()
	b, err := wire.Encode(m)
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageBinary, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// recv returns the next message, or the read error.
func (c *wsClient) recv() (wire.Message, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, b, err := c.ws.Read(ctx)
	if err != nil {
		return nil, err
	}
	return wire.Decode(b)
}

func (c *wsClient) expect(typ string) wire.Message {
	c.t.Helper()
	m, err := c.recv()
	if err != nil {
		c.t.Fatalf("waiting for %s: %v", typ, err)
	}
	if m.Type() != typ {
		c.t.Fatalf("got %s %+v, want %s", m.Type(), m, typ)
	}
	return m
}

func putOp(id, key string, value any) wire.ClientOp {
	ts := wire.Timestamp{Millis: uint64(time.Now().UnixMilli()), NodeID: "test-client"}
	return wire.ClientOp{ID: id, MapName: "todos", Key: key, Record: &wire.LWWRecord{Value: value, Timestamp: ts}}
}

func TestBinary_protocolWithoutAuth(t *testing.T) {
	t.Parallel()
	p := startServer(t, map[string]string{"STORAGE_BACKEND": "null"})
	c := dialServer(t, p)
	c.send(&wire.Ping{Timestamp: 42})
	if pong := c.expect(wire.TypePong).(*wire.Pong); pong.Timestamp != 42 || pong.ServerTime == 0 {
		t.Fatalf("PONG %+v", pong)
	}
	c.send(&wire.OpBatch{Ops: []wire.ClientOp{putOp("1", "a", map[string]any{"title": "milk"})}})
	if ack := c.expect(wire.TypeOpAck).(*wire.OpAck); ack.LastID != "1" {
		t.Fatalf("OP_ACK %+v", ack)
	}
	// SIGTERM with a client connected: the client is told, the process exits 0.
	if code := p.stop(t); code != exitOK {
		t.Errorf("exit code after SIGTERM = %d, want 0", code)
	}
	if _, err := c.recv(); websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Errorf("client saw %v, want a going-away close", err)
	}
	lines := p.logLines(t, "protocol ready")
	if len(lines) != 1 || lines[0]["auth"] != "off" {
		t.Errorf("protocol ready log lines %v, want one with auth off", lines)
	}
	if w := p.logLines(t, "authentication is off (TOPGUN_NO_AUTH) and the server listens beyond this machine: anyone who reaches it can read and change all data; set TOPGUN_BIND_ADDR=127.0.0.1 or JWT_SECRET"); len(w) != 0 {
		t.Errorf("warned about a public bind on loopback: %v", w)
	}
}

func TestBinary_noAuthWarnsBeyondLoopback(t *testing.T) {
	t.Parallel()
	p := startServer(t, map[string]string{"STORAGE_BACKEND": "null", "TOPGUN_BIND_ADDR": "0.0.0.0"})
	if code := p.stop(t); code != exitOK {
		t.Errorf("exit code = %d", code)
	}
	if !strings.Contains(p.stderr.String(), "authentication is off (TOPGUN_NO_AUTH) and the server listens beyond this machine") {
		t.Errorf("no warning about serving without authentication on 0.0.0.0:\n%s", p.stderr)
	}
}

func TestBinary_protocolWithAuth(t *testing.T) {
	t.Parallel()
	const secret = "binary-test-secret"
	p := startServer(t, map[string]string{"STORAGE_BACKEND": "null", "TOPGUN_NO_AUTH": "", "JWT_SECRET": secret})
	c := dialServer(t, p)
	c.expect(wire.TypeAuthRequired)
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	c.send(&wire.Auth{Token: token})
	if ack := c.expect(wire.TypeAuthAck).(*wire.AuthAck); ack.UserID != "alice" {
		t.Fatalf("AUTH_ACK %+v", ack)
	}
	bad := dialServer(t, p)
	bad.expect(wire.TypeAuthRequired)
	bad.send(&wire.Auth{Token: "nope"})
	bad.expect(wire.TypeAuthFail)
	if _, err := bad.recv(); websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
		t.Errorf("after AUTH_FAIL: %v, want a policy-violation close", err)
	}
	if code := p.stop(t); code != exitOK {
		t.Errorf("exit code = %d", code)
	}
	if l := p.logLines(t, "protocol ready"); len(l) != 1 || l[0]["auth"] != "HS256" {
		t.Errorf("protocol ready log lines %v", l)
	}
	if strings.Contains(p.stderr.String(), secret) {
		t.Error("the JWT secret was logged")
	}
}

func TestBinary_refusesToStartWithoutAuthSettings(t *testing.T) {
	t.Parallel()
	p := launch(t, map[string]string{"STORAGE_BACKEND": "null", "TOPGUN_NO_AUTH": ""})
	if code := p.wait(t, startTimeout); code != exitConfig {
		t.Errorf("exit code = %d, want %d", code, exitConfig)
	}
	for _, name := range []string{"JWT_SECRET", "TOPGUN_NO_AUTH=1"} {
		if !strings.Contains(p.stderr.String(), name) {
			t.Errorf("stderr does not name %s:\n%s", name, p.stderr)
		}
	}
	if p.stdout.String() != "" {
		t.Errorf("stdout %q, want nothing", p.stdout.String())
	}
}

// TestBinary_protocolWritesSurviveRestart writes through the protocol to
// redb, restarts the server on the file and reads the record back with a
// live query.
func TestBinary_protocolWritesSurviveRestart(t *testing.T) {
	t.Parallel()
	env := map[string]string{"TOPGUN_REDB_PATH": filepath.Join(t.TempDir(), "data.redb")}
	p := startServer(t, env)
	c := dialServer(t, p)
	c.send(&wire.OpBatch{Ops: []wire.ClientOp{putOp("1", "a", map[string]any{"title": "kept"}), putOp("2", "b", "gone")}})
	if ack := c.expect(wire.TypeOpAck).(*wire.OpAck); ack.LastID != "2" || ack.AchievedLevel != wire.Persisted {
		t.Fatalf("OP_ACK %+v, want lastId 2 PERSISTED", ack)
	}
	rm := putOp("3", "b", nil)
	rm.OpType, rm.Record.Timestamp.Counter = "REMOVE", 1
	c.send(&wire.ClientOpMessage{ClientOp: rm})
	c.expect(wire.TypeOpAck)
	if code := p.stop(t); code != exitOK {
		t.Fatalf("exit code = %d", code)
	}

	p = startServer(t, env)
	c = dialServer(t, p)
	c.send(&wire.QuerySub{QueryID: "q", MapName: "todos"})
	resp := c.expect(wire.TypeQueryResp).(*wire.QueryResp)
	if len(resp.Results) != 1 || resp.Results[0].Key != "a" || resp.Results[0].Value.(map[string]any)["title"] != "kept" {
		t.Fatalf("after restart: %+v", resp.Results)
	}
	if code := p.stop(t); code != exitOK {
		t.Fatalf("exit code = %d", code)
	}
}
