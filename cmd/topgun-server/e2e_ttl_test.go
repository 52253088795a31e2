package main

import (
	"testing"
	"time"

	"github.com/topgun-go/topgun/client"
)

// TestE2E_clientTTL: a write with a TTL from the Go client carries ttlMs
// in sync leaves, and the server hides the record once it has expired.
func TestE2E_clientTTL(t *testing.T) {
	t.Parallel()
	ctx := e2eContext(t)
	p := startServer(t, map[string]string{"STORAGE_BACKEND": "null"})
	c := dialClient(t, ctx, p, "ttl")
	// s1 must still be live when the sync below reads it: once expired
	// (and reaped, within a second) it is a tombstone without ttlMs. The
	// TTL leaves a loaded machine time for the sync.
	if err := c.Batch(ctx, client.Op{Map: "sessions", Key: "s1", Value: "short", TTL: 3 * time.Second},
		client.Op{Map: "sessions", Key: "s2", Value: "long", TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	recs := recordsOf(t, syncMap(t, ctx, c, "sessions", nil))
	if r := recs["s1"]; r.TTLMs == nil || *r.TTLMs != 3000 {
		t.Fatalf("s1 synced as %+v, want ttlMs 3000", r)
	}
	if r := recs["s2"]; r.TTLMs == nil || *r.TTLMs != 3_600_000 {
		t.Fatalf("s2 synced as %+v, want ttlMs 3600000", r)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		sub, err := c.Subscribe(ctx, "sessions", nil)
		if err != nil {
			t.Fatal(err)
		}
		keys := map[string]bool{}
		for _, r := range sub.Initial {
			keys[r.Key] = true
		}
		sub.Close()
		if !keys["s1"] && keys["s2"] {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("expired record still served after 30s: %v", keys)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
