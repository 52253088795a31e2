package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/topgun-go/topgun/client"
	"github.com/topgun-go/topgun/host/hosttest"
	"github.com/topgun-go/topgun/internal/testbin"
	"github.com/topgun-go/topgun/plugins/postgres/pgtest"
	"github.com/topgun-go/topgun/server/wire"
)

// httpSync polls POST /sync for the deltas of maps since the given point
// and returns them by map and key.
func httpSync(t *testing.T, p *proc, since wire.Timestamp, maps ...string) (map[string]map[string]wire.DeltaRecord, wire.Timestamp) {
	t.Helper()
	req := &wire.HTTPSyncRequest{ClientID: "http-client", ClientHLC: wire.Timestamp{Millis: uint64(time.Now().UnixMilli()), NodeID: "http-client"}}
	for _, m := range maps {
		req.SyncMaps = append(req.SyncMaps, wire.SyncMapEntry{MapName: m, LastSyncTimestamp: since})
	}
	body, err := wire.EncodeHTTPSyncRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post("http://127.0.0.1:"+strconv.Itoa(p.port)+"/sync", "application/msgpack", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /sync = %d: %s", resp.StatusCode, raw)
	}
	r, err := wire.DecodeHTTPSyncResponse(raw)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]wire.DeltaRecord{}
	var point wire.Timestamp
	for _, d := range r.Deltas {
		if out[d.MapName] == nil {
			out[d.MapName] = map[string]wire.DeltaRecord{}
		}
		for _, rec := range d.Records {
			out[d.MapName][rec.Key] = rec
		}
		point = d.ServerSyncTimestamp
	}
	return out, point
}

// TestE2E_copyBetweenBackends: data written through the real server on
// redb, copied to PostgreSQL and from there to a new redb file, is served
// the same by servers on each copy: Merkle sync, OR reads, a device's id,
// TTL expiry, and an HTTP sync client resuming from a point taken before.
func TestE2E_copyBetweenBackends(t *testing.T) {
	t.Parallel()
	ctx := e2eContext(t)
	copyBin := testbin.Build(t, "../topgun")
	dir := t.TempDir()
	src := filepath.Join(dir, "src.redb")
	env := map[string]string{"TOPGUN_REDB_PATH": src}
	p := startServer(t, env)
	c := dialClient(t, ctx, p, "writer")
	sess := c.Session()
	if err := c.Batch(ctx,
		client.Op{Map: "todos", Key: "a", Value: map[string]any{"title": "milk"}},
		client.Op{Map: "todos", Key: "b", Value: "bread"},
		client.Op{Map: "todos", Key: "e", Value: ""},
		// Both expire long after the test ends: one expiring between the
		// first read and the last reads differently on the copies, failing
		// a run slower than its TTL (the copy into the plugin alone took
		// 4 s with the CPUs busy).
		client.Op{Map: "sessions", Key: "short", Value: "s", TTL: 10 * time.Minute},
		client.Op{Map: "sessions", Key: "long", Value: "l", TTL: time.Hour},
	); err != nil {
		t.Fatal(err)
	}
	_, point := httpSync(t, p, wire.Timestamp{}, "todos", "sessions")
	if err := c.Remove(ctx, "todos", "b"); err != nil {
		t.Fatal(err)
	}
	if err := c.Put(ctx, "todos", "c", "coffee"); err != nil {
		t.Fatal(err)
	}
	tag1, err := c.ORAdd(ctx, "tags", "k", "x", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ORAdd(ctx, "tags", "k", "y", 0); err != nil {
		t.Fatal(err)
	}
	if err := c.ORRemove(ctx, "tags", "k", tag1); err != nil {
		t.Fatal(err)
	}
	lwwMaps := []string{"todos", "sessions"}
	type state struct {
		lww  map[string]map[string]wire.LWWRecord
		root map[string]uint32
		or   []wire.ORMapEntry
		http map[string]map[string]wire.DeltaRecord
	}
	read := func(p *proc) state {
		t.Helper()
		c := dialClient(t, ctx, p, "reader")
		s := state{lww: map[string]map[string]wire.LWWRecord{}, root: map[string]uint32{}}
		for _, m := range lwwMaps {
			res := syncMap(t, ctx, c, m, nil)
			s.lww[m], s.root[m] = recordsOf(t, res), res.ServerRoot
		}
		or, err := c.ORGet(ctx, "tags", "k")
		if err != nil {
			t.Fatal(err)
		}
		s.or = or
		s.http, _ = httpSync(t, p, point, lwwMaps...)
		c.Close()
		return s
	}
	want := read(p)
	c.Close()
	if code := p.stop(t); code != exitOK {
		t.Fatalf("server exit %d", code)
	}

	cache := filepath.Join(dir, "cache")
	runCopy := func(from, to string, more ...string) {
		t.Helper()
		cmd := exec.CommandContext(ctx, copyBin, append([]string{"copy", "--no-progress", "--from", from, "--to", to}, more...)...)
		cmd.Env = []string{"TOPGUN_PLUGIN_CACHE_DIR=" + cache}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("copy %s -> %s: %v\n%s", from, to, err, out)
		}
		t.Logf("copy: %s", out)
	}
	pg := pgtest.FreshSchema(t)
	runCopy("redb:"+src, "postgres:"+pg)
	dst := filepath.Join(dir, "dst.redb")
	runCopy("postgres:"+pg, "redb:"+dst)
	wasm := hosttest.BuildPlugin(t, "../../examples/plugins/logstore/cmd/logstore")
	data := filepath.Join(dir, "plugin-data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	runCopy("redb:"+src, wasm, "--to-data-dir", data)

	for _, e := range []map[string]string{
		{"STORAGE_BACKEND": "postgres", "DATABASE_URL": pg},
		{"TOPGUN_REDB_PATH": dst},
		{"STORAGE_BACKEND": wasm, "TOPGUN_PLUGIN_DATA_DIR": data, "TOPGUN_PLUGIN_CACHE_DIR": cache},
	} {
		p := startServer(t, e)
		got := read(p)
		for _, m := range lwwMaps {
			if !reflect.DeepEqual(got.lww[m], want.lww[m]) || got.root[m] != want.root[m] {
				t.Errorf("%v: map %s:\n got %v (root %08x)\nwant %v (root %08x)", e, m, got.lww[m], got.root[m], want.lww[m], want.root[m])
			}
		}
		if !reflect.DeepEqual(got.or, want.or) {
			t.Errorf("%v: OR entries %v, want %v", e, got.or, want.or)
		}
		// The HTTP client resuming from its old point gets every record
		// it would have got from the source, and more (everything copied).
		for _, m := range lwwMaps {
			for k, r := range want.http[m] {
				if g, ok := got.http[m][k]; !ok || !reflect.DeepEqual(g.Record, r.Record) {
					t.Errorf("%v: HTTP sync from the old point: map %s key %s = %v (%v), want %v", e, m, k, g, ok, r)
				}
			}
		}
		// The device keeps its id.
		opts := client.DefaultOptions()
		opts.Reconnect = false
		opts.DeviceToken = sess.DeviceToken
		dc, err := client.Dial(ctx, p.wsURL(), opts)
		if err != nil {
			t.Fatal(err)
		}
		if sess.DeviceID != "" && dc.Session().DeviceID != sess.DeviceID {
			t.Errorf("%v: device id %q, want %q", e, dc.Session().DeviceID, sess.DeviceID)
		}
		t.Logf("device %q -> %q", sess.DeviceID, dc.Session().DeviceID)
		dc.Close()
		p.stop(t)
	}
}
