package protocol

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/topgun-go/topgun/server/wire"
)

// TopGun's server answers ENTRY_PROCESS and ENTRY_PROCESS_BATCH at once
// with success false (it runs no processors); its client waits 30 s for
// that answer and then fails the call with a timeout instead of returning
// the result the application checks.
func TestConn_entryProcess_refusedAsTopGun(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join("..", "wire", "testdata", "fixtures", "ENTRY_PROCESS.msgpack"))
	if err != nil {
		t.Skipf("TopGun fixtures not found: %v", err)
	}
	e := newEnv(t, envConfig{})
	c := e.dial(t)

	c.sendRaw(raw) // requestId ep-1, as TopGun's client encodes it
	c.send(&wire.Ping{Timestamp: 1})
	r := expect[*wire.EntryProcessResponse](c)
	if r.RequestID != "ep-1" || r.Success || r.Error == "" {
		t.Fatalf("ENTRY_PROCESS_RESPONSE %+v, want requestId ep-1, success false and an error", r)
	}
	expect[*wire.Pong](c)

	c.send(&wire.EntryProcessBatch{RequestID: "epb-1", MapName: "counters", Keys: []string{"a", "b"}})
	c.send(&wire.Ping{Timestamp: 2})
	b := expect[*wire.EntryProcessBatchResponse](c)
	if b.RequestID != "epb-1" || len(b.Results) != 2 {
		t.Fatalf("ENTRY_PROCESS_BATCH_RESPONSE %+v, want requestId epb-1 and a result per key", b)
	}
	for k, res := range b.Results {
		if (k != "a" && k != "b") || res.Success || res.Error == "" {
			t.Fatalf("result for %q: %+v, want success false and an error", k, res)
		}
	}
	expect[*wire.Pong](c)
}
