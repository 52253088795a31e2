package protocol

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/topgun-go/topgun/server/wire"
)

// TestFixtures_topgunClientFrames sends TopGun's own client fixtures (as its
// TypeScript client encodes them: large integers as float64 and so on) and
// checks each gets the answer TopGun's client expects.
func TestFixtures_topgunClientFrames(t *testing.T) {
	t.Parallel()
	dir := filepath.Join("..", "wire", "testdata", "fixtures")
	load := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name+".msgpack"))
		if err != nil {
			t.Skipf("TopGun fixtures not found in %s: %v", dir, err)
		}
		return b
	}
	e := newEnv(t, envConfig{})
	c := e.dial(t)

	c.sendRaw(load("PING"))
	if p := expect[*wire.Pong](c); p.Timestamp != 1700000000000 {
		t.Fatalf("PONG %+v", p)
	}
	c.sendRaw(load("CLIENT_OP"))
	if a := expect[*wire.OpAck](c); a.LastID != "op-1" {
		t.Fatalf("CLIENT_OP: %+v", a)
	}
	c.sendRaw(load("OP_BATCH"))
	if a := expect[*wire.OpAck](c); a.LastID != "op-2" {
		t.Fatalf("OP_BATCH: %+v", a)
	}
	v, ts, ok := e.getLWW("users", "user-2")
	if !ok || v.Text() != "Bob" || ts.Millis != 1700000000001 || ts.NodeID != "node-2" {
		t.Fatalf("user-2 = %v %+v %v", v, ts, ok)
	}
	// CLIENT_OP wrote user-1 in 2023 with ttlMs 60000: long expired, hidden.
	if _, _, ok := e.getLWW("users", "user-1"); ok {
		t.Fatal("user-1 is live although its TTL passed")
	}
	c.write(
		putOp("w1", "users", "user-3", map[string]any{"age": int64(40), "createdAt": int64(5)}, cts("t")),
		putOp("w2", "users", "user-4", map[string]any{"age": 20.5, "createdAt": int64(9)}, cts("t")),
		putOp("w3", "users", "user-5", map[string]any{"age": int64(18), "createdAt": int64(7)}, cts("t")),
	)
	c.sendRaw(load("QUERY_SUB")) // where age > 18, sort createdAt desc, limit 50
	r := expect[*wire.QueryResp](c)
	if r.QueryID != "q-001" || len(r.Results) != 2 || r.Results[0].Key != "user-4" || r.Results[1].Key != "user-3" {
		t.Fatalf("QUERY_RESP %+v", r)
	}
	c.sendRaw(load("SYNC_INIT"))
	if root := expect[*wire.SyncRespRoot](c); root.MapName != "users" || root.RootHash == 0 {
		t.Fatalf("SYNC_RESP_ROOT %+v", root)
	}
	c.sendRaw(load("ORMAP_SYNC_INIT"))
	if root := expect[*wire.ORMapSyncRespRoot](c); root.MapName != "tags" || root.RootHash != 0 {
		t.Fatalf("ORMAP_SYNC_RESP_ROOT %+v", root)
	}
	c.sendRaw(load("MERKLE_REQ_BUCKET")) // path "0/1/2" is illustrative, not a trie path
	if m := expect[*wire.ErrorMessage](c); m.Code != 400 {
		t.Fatalf("%+v", m)
	}
	c.sendRaw(load("QUERY_SUB_GROUPBY_AGG"))
	if r := expect[*wire.QueryResp](c); r.Code != "UNSUPPORTED" {
		t.Fatalf("%+v", r)
	}
	c.sendRaw(load("QUERY_UNSUB"))
	c.sendRaw(load("TOPIC_PUB")) // out of scope: refused
	if m := expect[*wire.ErrorMessage](c); m.Code != 501 {
		t.Fatalf("%+v", m)
	}
	c.sendRaw(load("SERVER_EVENT")) // server-to-client type: ignored
	c.ping()
}
