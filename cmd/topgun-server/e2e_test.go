package main

// End-to-end tests of the client protocol: the Go client (package client)
// against the server binary started as a process on 127.0.0.1, as an
// application would use them.

import (
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/topgun-go/topgun/client"
	"github.com/topgun-go/topgun/plugins/postgres/pgtest"
	"github.com/topgun-go/topgun/server/wire"
)

// TestE2E_restartThenSyncReturnsSameRecords writes LWW puts and removes to
// several maps, syncs them, stops the server with SIGTERM, restarts it on
// the same redb file, and syncs again from an empty local state with a new
// client: the records (tombstones included, timestamps exact) and the
// Merkle roots are the same.
func TestE2E_restartThenSyncReturnsSameRecords(t *testing.T) {
	t.Parallel()
	ctx := e2eContext(t)
	env := map[string]string{"TOPGUN_REDB_PATH": filepath.Join(t.TempDir(), "data.redb")}
	p := startServer(t, env)
	c := dialClient(t, ctx, p, "writer")

	milk := map[string]any{"title": "milk", "done": false}
	mustBatch := func(ops ...client.Op) {
		t.Helper()
		if err := c.Batch(ctx, ops...); err != nil {
			t.Fatalf("batch: %v", err)
		}
	}
	mustBatch(
		client.Op{Map: "todos", Key: "a", Value: milk},
		client.Op{Map: "todos", Key: "b", Value: "bread"},
		client.Op{Map: "todos", Key: "c", Value: "coffee"},
		client.Op{Map: "notes", Key: "x", Value: "first note"},
		client.Op{Map: "notes", Key: "y", Value: map[string]any{"body": "second", "tags": []any{"a", "b"}}},
		client.Op{Map: "users", Key: "u1", Value: map[string]any{"name": "Ann"}},
		client.Op{Map: "users", Key: "u2", Value: map[string]any{"name": "Bob"}},
	)
	if err := c.Put(ctx, "todos", "a", map[string]any{"title": "oat milk", "done": true}); err != nil {
		t.Fatal(err)
	}
	if err := c.Remove(ctx, "todos", "b"); err != nil {
		t.Fatal(err)
	}
	if err := c.Remove(ctx, "notes", "x"); err != nil {
		t.Fatal(err)
	}
	mustBatch(
		client.Op{Map: "users", Key: "u1", Remove: true},
		client.Op{Map: "users", Key: "u3", Value: map[string]any{"name": "Cy"}},
		client.Op{Map: "todos", Key: "c", Value: "tea"},
	)
	// What each map must hold: the last value of each key, nil for a
	// tombstone.
	want := map[string]map[string]any{
		"todos": {"a": map[string]any{"title": "oat milk", "done": true}, "b": nil, "c": "tea"},
		"notes": {"x": nil, "y": map[string]any{"body": "second", "tags": []any{"a", "b"}}},
		"users": {"u1": nil, "u2": map[string]any{"name": "Bob"}, "u3": map[string]any{"name": "Cy"}},
	}

	type mapState struct {
		records map[string]wire.LWWRecord
		root    uint32
	}
	syncAll := func(c *client.Client) map[string]mapState {
		t.Helper()
		out := map[string]mapState{}
		for name := range want {
			res := syncMap(t, ctx, c, name, nil)
			out[name] = mapState{records: recordsOf(t, res), root: res.ServerRoot}
		}
		return out
	}
	before := syncAll(c)
	for name, keys := range want {
		got := before[name].records
		if len(got) != len(keys) {
			t.Errorf("map %s: synced %d records, want %d", name, len(got), len(keys))
		}
		for k, v := range keys {
			r, ok := got[k]
			switch {
			case !ok:
				t.Errorf("map %s: key %s not synced", name, k)
			case !reflect.DeepEqual(r.Value, v):
				t.Errorf("map %s: key %s = %#v, want %#v", name, k, r.Value, v)
			case r.Timestamp.NodeID != c.NodeID():
				t.Errorf("map %s: key %s stamped by %q, want the writer's own stamp (%s)", name, k, r.Timestamp.NodeID, c.NodeID())
			}
		}
	}

	c.Close()
	if code := p.stop(t); code != exitOK {
		t.Fatalf("exit code after SIGTERM = %d, want 0", code)
	}
	p = startServer(t, env)
	c = dialClient(t, ctx, p, "reader")
	after := syncAll(c)
	for name := range want {
		if !reflect.DeepEqual(after[name].records, before[name].records) {
			t.Errorf("map %s after the restart:\n got %v\nwant %v", name, after[name].records, before[name].records)
		}
		if after[name].root != before[name].root || after[name].root == 0 {
			t.Errorf("map %s: root %08x after the restart, %08x before", name, after[name].root, before[name].root)
		}
		// The client's own hash of what it received is the server's root.
		if res := syncMap(t, ctx, c, name, after[name].records); !res.InSync || res.LocalRoot != res.ServerRoot {
			t.Errorf("map %s: local root %08x, server root %08x after a full sync", name, res.LocalRoot, res.ServerRoot)
		}
	}
}

// TestE2E_liveUpdatesBetweenClients: A holds a whole-map subscription and
// a filtered query on a map; each write of B reaches A at once as a
// SERVER_EVENT and, when it changes the query's results, a QUERY_UPDATE.
// Neither client hears of its own writes.
func TestE2E_liveUpdatesBetweenClients(t *testing.T) {
	t.Parallel()
	ctx := e2eContext(t)
	p := startServer(t, map[string]string{"STORAGE_BACKEND": "null"})
	a := dialClient(t, ctx, p, "A")
	b := dialClient(t, ctx, p, "B")

	all, err := a.Subscribe(ctx, "chat", nil)
	if err != nil {
		t.Fatal(err)
	}
	goRoom, err := a.Subscribe(ctx, "chat", &wire.Query{Where: map[string]any{"room": "go"}})
	if err != nil {
		t.Fatal(err)
	}
	bAll, err := b.Subscribe(ctx, "chat", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Initial)+len(goRoom.Initial)+len(bAll.Initial) != 0 {
		t.Fatalf("initial results of an empty map: %v %v %v", all.Initial, goRoom.Initial, bAll.Initial)
	}

	put := func(c *client.Client, key string, v any) {
		t.Helper()
		if err := c.Put(ctx, "chat", key, v); err != nil {
			t.Fatal(err)
		}
	}
	hi := map[string]any{"room": "go", "text": "hi"}
	put(b, "m1", hi)
	expectUpdates(t, all, hi, "event PUT m1", "query ENTER m1")
	expectUpdates(t, goRoom, hi, "event PUT m1", "query ENTER m1")

	rust := map[string]any{"room": "rust", "text": "hello"}
	put(b, "m2", rust)
	expectUpdates(t, all, rust, "event PUT m2", "query ENTER m2")
	expectUpdates(t, goRoom, rust, "event PUT m2") // not in the query's results

	edited := map[string]any{"room": "go", "text": "hi, edited"}
	put(b, "m1", edited)
	expectUpdates(t, all, edited, "event PUT m1", "query UPDATE m1")
	expectUpdates(t, goRoom, edited, "event PUT m1", "query UPDATE m1")

	moved := map[string]any{"room": "go", "text": "hello"}
	put(b, "m2", moved)
	expectUpdates(t, all, moved, "event PUT m2", "query UPDATE m2")
	expectUpdates(t, goRoom, moved, "event PUT m2", "query ENTER m2")

	if err := b.Remove(ctx, "chat", "m1"); err != nil {
		t.Fatal(err)
	}
	expectUpdates(t, all, nil, "event REMOVE m1", "query LEAVE m1")
	expectUpdates(t, goRoom, nil, "event REMOVE m1", "query LEAVE m1")

	// B's own five writes were committed before A's write below, and a
	// connection's events leave in commit order: had any of them been
	// echoed to B, it would arrive before A's.
	fromA := map[string]any{"room": "go", "text": "from A"}
	put(a, "a1", fromA)
	expectUpdates(t, bAll, fromA, "event PUT a1", "query ENTER a1")
	// Likewise A must not hear of its own write: the next thing A gets is
	// B's next one.
	last := map[string]any{"room": "rust", "text": "last"}
	put(b, "m3", last)
	expectUpdates(t, all, last, "event PUT m3", "query ENTER m3")
	expectUpdates(t, goRoom, last, "event PUT m3")
}

// TestE2E_offlineClientConverges: A syncs a map and goes offline; B
// overwrites and removes keys A holds, adds keys, and writes keys with a
// short TTL that expire. A reconnects with its old local state: merging
// what SyncMap returns gives exactly B's view, and A's Merkle root equals
// the server's.
func TestE2E_offlineClientConverges(t *testing.T) {
	t.Parallel()
	ctx := e2eContext(t)
	p := startServer(t, map[string]string{"TOPGUN_REDB_PATH": filepath.Join(t.TempDir(), "data.redb")})
	const m = "notes"
	b := dialClient(t, ctx, p, "B")
	var seed []client.Op
	for i := 1; i <= 6; i++ {
		seed = append(seed, client.Op{Map: m, Key: fmt.Sprintf("k%d", i), Value: fmt.Sprintf("v%d", i)})
	}
	if err := b.Batch(ctx, seed...); err != nil {
		t.Fatal(err)
	}

	a := dialClient(t, ctx, p, "A")
	first := syncMap(t, ctx, a, m, nil)
	aLocal := recordsOf(t, first)
	if len(aLocal) != 6 {
		t.Fatalf("A synced %d records, want 6", len(aLocal))
	}
	a.Close() // A is offline from here on

	// B watches the map to see the expiries happen.
	watch, err := b.Subscribe(ctx, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Batch(ctx,
		client.Op{Map: m, Key: "k1", Value: "v1 by B"},
		client.Op{Map: m, Key: "k2", Value: map[string]any{"v": "2 by B"}},
		client.Op{Map: m, Key: "k3", Remove: true},
		client.Op{Map: m, Key: "k4", Remove: true},
		client.Op{Map: m, Key: "n1", Value: "new 1"},
	); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, m, "n2", "new 2"); err != nil {
		t.Fatal(err)
	}
	// The Go client has no TTL writes: send them as TopGun's TS client
	// does, puts whose record carries ttlMs. k5 (which A holds) and t1 get
	// a short TTL, t2 an hour.
	raw := dialServer(t, p)
	short, long := uint64(300), uint64(time.Hour/time.Millisecond)
	ts := wire.Timestamp{Millis: nowMs() + 1, NodeID: "ttl-writer"} // after every earlier stamp
	ttlPut := func(id, key string, v any, ttl uint64) wire.ClientOp {
		r := &wire.LWWRecord{Value: v, Timestamp: ts, TTLMs: &ttl}
		ts.Counter++
		return wire.ClientOp{ID: id, MapName: m, Key: key, OpType: "PUT", Record: r}
	}
	raw.send(&wire.OpBatch{Ops: []wire.ClientOp{
		ttlPut("1", "k5", "v5 for a moment", short),
		ttlPut("2", "t1", "gone soon", short),
		ttlPut("3", "t2", "stays an hour", long),
	}})
	if ack := raw.expect(wire.TypeOpAck).(*wire.OpAck); ack.LastID != "3" {
		t.Fatalf("OP_ACK %+v, want lastId 3", ack)
	}
	// Wait for the server to turn the expired records into tombstones
	// (REMOVE events; it looks for expired records every second).
	removed := map[string]bool{}
	deadline := time.After(15 * time.Second)
	for !removed["k5"] || !removed["t1"] {
		select {
		case u, ok := <-watch.Updates:
			if !ok {
				t.Fatalf("subscription closed: %v", watch.Err())
			}
			if u.Event != nil && u.Event.EventType == wire.EventRemove {
				if u.Event.Record == nil || u.Event.Record.Value != nil {
					t.Errorf("expiry of %s: event record %+v, want a tombstone", u.Key, u.Event.Record)
				}
				removed[u.Key] = true
			}
		case <-deadline:
			t.Fatalf("expired records not removed within 15s (removed: %v)", removed)
		}
	}
	watch.Close()

	// B's view: what a fresh query on the server returns.
	view, err := b.Subscribe(ctx, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	bView := map[string]any{}
	for _, r := range view.Initial {
		bView[r.Key] = r.Value
	}
	wantView := map[string]any{
		"k1": "v1 by B", "k2": map[string]any{"v": "2 by B"}, "k6": "v6",
		"n1": "new 1", "n2": "new 2", "t2": "stays an hour",
	}
	if !reflect.DeepEqual(bView, wantView) {
		t.Fatalf("B's view %v, want %v", bView, wantView)
	}

	// A comes back with its old state.
	a = dialClient(t, ctx, p, "A-again")
	res := syncMap(t, ctx, a, m, aLocal)
	if res.InSync {
		t.Fatal("A's stale state reported in sync")
	}
	newer := map[string]bool{}
	for _, r := range res.Newer {
		newer[r.Key] = true
	}
	changed := mergeLWW(aLocal, res.Records)
	if want := []string{"k1", "k2", "k3", "k4", "k5", "n1", "n2", "t1", "t2"}; !reflect.DeepEqual(changed, want) {
		t.Errorf("the merge changed %v, want %v", changed, want)
	}
	for _, k := range changed {
		if !newer[k] {
			t.Errorf("SyncResult.Newer lacks %s, which won the merge", k)
		}
	}
	if len(newer) != len(changed) {
		t.Errorf("SyncResult.Newer has %d keys, the merge changed %d", len(newer), len(changed))
	}
	for _, k := range []string{"k3", "k4", "k5", "t1"} {
		if aLocal[k].Value != nil {
			t.Errorf("A's %s = %v after the merge, want a tombstone", k, aLocal[k].Value)
		}
	}
	if r := aLocal["t2"]; r.TTLMs == nil || *r.TTLMs != long {
		t.Errorf("A's t2 has ttlMs %v, want %d", r.TTLMs, long)
	}
	if got := visible(aLocal, nowMs()); !reflect.DeepEqual(got, bView) {
		t.Errorf("A's view after reconnecting %v, B's %v", got, bView)
	}
	// The client's hash of its merged state is the server's root.
	again := syncMap(t, ctx, a, m, aLocal)
	if !again.InSync || again.LocalRoot != again.ServerRoot || again.Messages != 2 {
		t.Errorf("after the merge: in sync %v, local root %08x, server root %08x, %d messages; want in sync in 2 messages",
			again.InSync, again.LocalRoot, again.ServerRoot, again.Messages)
	}
}

// TestE2E_inSyncReconnectIsOneRoundTripPerMap: after a full sync of three
// maps, a reconnect and SyncMap of each exchanges exactly SYNC_INIT and
// SYNC_RESP_ROOT per map.
func TestE2E_inSyncReconnectIsOneRoundTripPerMap(t *testing.T) {
	t.Parallel()
	ctx := e2eContext(t)
	p := startServer(t, map[string]string{"TOPGUN_REDB_PATH": filepath.Join(t.TempDir(), "data.redb")})
	maps := []string{"alpha", "beta", "gamma"}
	w := dialClient(t, ctx, p, "writer")
	for i, name := range maps {
		var ops []client.Op
		for k := range 40 * (i + 1) {
			ops = append(ops, client.Op{Map: name, Key: fmt.Sprintf("key-%03d", k), Value: map[string]any{"n": fmt.Sprint(k)}})
		}
		ops = append(ops, client.Op{Map: name, Key: "key-000", Remove: true})
		if err := w.Batch(ctx, ops...); err != nil {
			t.Fatal(err)
		}
	}

	a := dialClient(t, ctx, p, "A")
	local := map[string]map[string]wire.LWWRecord{}
	for i, name := range maps {
		res := syncMap(t, ctx, a, name, nil)
		local[name] = recordsOf(t, res)
		if n := len(local[name]); n != 40*(i+1) {
			t.Fatalf("map %s: full sync returned %d records, want %d", name, n, 40*(i+1))
		}
		if res.Messages <= 2 {
			t.Errorf("map %s: a full sync from nothing took %d messages", name, res.Messages)
		}
		t.Logf("map %s: full sync of %d records in %d messages (%d bucket requests)", name, len(res.Records), res.Messages, res.BucketRequests)
	}
	a.Close()

	a = dialClient(t, ctx, p, "A-again")
	for _, name := range maps {
		res := syncMap(t, ctx, a, name, local[name])
		if !res.InSync || res.Messages != 2 || res.BucketRequests != 0 || len(res.Records) != 0 {
			t.Errorf("map %s: in sync %v in %d messages, %d bucket requests, %d records; want in sync in 2 messages (SYNC_INIT, SYNC_RESP_ROOT)",
				name, res.InSync, res.Messages, res.BucketRequests, len(res.Records))
		}
	}
}

// TestE2E_twoServersOnOneDatabase: two servers share one PostgreSQL
// database. A client of one hears, live, what a client of the other
// writes, and a client syncing from either gets every record, whichever
// server took the write.
func TestE2E_twoServersOnOneDatabase(t *testing.T) {
	t.Parallel()
	ctx := e2eContext(t)
	db := pgtest.FreshSchema(t)
	env := map[string]string{"STORAGE_BACKEND": "postgres", "DATABASE_URL": db}
	p1, p2 := startServer(t, env), startServer(t, env)
	a := dialClient(t, ctx, p1, "A@1")
	b := dialClient(t, ctx, p2, "B@2")

	all, err := a.Subscribe(ctx, "chat", nil)
	if err != nil {
		t.Fatal(err)
	}
	hi := map[string]any{"text": "hi"}
	if err := b.Put(ctx, "chat", "m1", hi); err != nil {
		t.Fatal(err)
	}
	expectUpdates(t, all, hi, "event PUT m1", "query ENTER m1")
	if err := b.Remove(ctx, "chat", "m1"); err != nil {
		t.Fatal(err)
	}
	expectUpdates(t, all, nil, "event REMOVE m1", "query LEAVE m1")

	for i, c := range []*client.Client{a, b} {
		if err := c.Put(ctx, "notes", fmt.Sprintf("n%d", i), i); err != nil {
			t.Fatal(err)
		}
	}
	// Each server hears of the other's commit within milliseconds; a sync
	// from either returns both notes.
	for _, c := range []*client.Client{a, b} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			got := recordsOf(t, syncMap(t, ctx, c, "notes", nil))
			if len(got) == 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("sync returned %d of the 2 notes after 10s: %v", len(got), got)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
