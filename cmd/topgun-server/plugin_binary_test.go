package main

import (
	"path/filepath"
	"testing"

	"github.com/topgun-go/topgun/host/hosttest"
	"github.com/topgun-go/topgun/server/wire"
)

// TestBinary_pluginBackend runs the server on the durable example plugin
// (STORAGE_BACKEND=path.wasm): writes acknowledged over the protocol are
// there after a restart, and the plugin sees only its data directory.
func TestBinary_pluginBackend(t *testing.T) {
	t.Parallel()
	wasm := hosttest.BuildPlugin(t, "../../examples/plugins/logstore/cmd/logstore")
	env := map[string]string{
		"STORAGE_BACKEND":         wasm,
		"TOPGUN_PLUGIN_DATA_DIR":  t.TempDir(),
		"TOPGUN_PLUGIN_CACHE_DIR": filepath.Join(t.TempDir(), "cache"),
	}
	p := startServer(t, env)
	c := dialServer(t, p)
	c.send(&wire.OpBatch{Ops: []wire.ClientOp{putOp("1", "a", map[string]any{"title": "kept"})}})
	if ack := c.expect(wire.TypeOpAck).(*wire.OpAck); ack.LastID != "1" {
		t.Fatalf("OP_ACK %+v", ack)
	}
	if code := p.stop(t); code != exitOK {
		t.Fatalf("exit code = %d", code)
	}
	// Read once the process has exited, so all of its stderr is in.
	if line := p.storageLine(t); line["backend"] != "logstore" {
		t.Fatalf("storage log line %v, want backend logstore", line)
	}
	p = startServer(t, env)
	c = dialServer(t, p)
	c.send(&wire.QuerySub{QueryID: "q", MapName: "todos"})
	resp := c.expect(wire.TypeQueryResp).(*wire.QueryResp)
	if len(resp.Results) != 1 || resp.Results[0].Key != "a" {
		t.Fatalf("after restart on the plugin: %+v", resp.Results)
	}
	if code := p.stop(t); code != exitOK {
		t.Fatalf("exit code = %d", code)
	}
}
