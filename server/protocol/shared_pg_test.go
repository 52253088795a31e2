package protocol

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/plugins/postgres"
	"github.com/topgun-go/topgun/plugins/postgres/pgtest"
	"github.com/topgun-go/topgun/server/record"
	"github.com/topgun-go/topgun/server/wire"
)

// sharedEnvs starts two protocol servers, each on its own store and
// postgres backend, sharing one fresh schema, once before has written to
// it (nil: nothing).
func sharedEnvs(t *testing.T, before func(be *postgres.Backend)) (a, b *env) {
	t.Helper()
	url := pgtest.FreshSchema(t)
	if before != nil {
		be, err := postgres.Open(context.Background(), url, nil)
		if err != nil {
			t.Fatal(err)
		}
		before(be)
		be.Close()
	}
	mk := func(node string) *env {
		be, err := postgres.Open(context.Background(), url, nil)
		if err != nil {
			t.Fatal(err)
		}
		// Not behind a gateBackend, which would hide the backend's
		// Watcher and CheckedApplier from the store.
		e := &env{t: t}
		e.start(be, node, envConfig{})
		return e
	}
	return mk("server-a"), mk("server-b")
}

// One OR add a client of A makes to a key holding a few thousand entries
// and tombstones is one SERVER_EVENT for a client of B with a live query
// on the map (announcing the key whole sent one per entry and tombstone,
// more than a connection's queue holds, and cut the client off).
func TestShared_ORAddOnAIsOneEventOnB(t *testing.T) {
	// A key with 2000 entries and 2000 tombstones, there before the
	// servers start (4000 adds through the protocol re-encode the key per
	// op).
	const n = 2000
	var recs []record.ORMapEntry
	var tombs []string
	for i := 0; i < n; i++ {
		recs = append(recs, record.ORMapEntry{Value: record.IntValue(int64(i)), Tag: fmt.Sprint("e", i), Timestamp: record.Timestamp{Millis: 1, Counter: uint32(i), NodeID: "w"}})
		tombs = append(tombs, fmt.Sprint("r", i))
	}
	rv := record.NewORMap(recs, tombs)
	enc, err := record.Encode(nil, &rv)
	if err != nil {
		t.Fatal(err)
	}
	a, b := sharedEnvs(t, func(be *postgres.Backend) {
		batch := &abi.Batch{Now: 1}
		batch.Put("o", "k", false, enc, 0)
		if err := be.Apply(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	})
	wa := a.dial(t)
	rb := b.dial(t)
	rb.send(&wire.QuerySub{QueryID: "q", MapName: "o"})
	expect[*wire.QueryResp](rb)
	wa.write(orAddOp("x", "o", "k", "one more", cts("w")))
	// The first event may take a while on a loaded machine; a whole-key
	// announcement would follow it at once.
	events := 0
	deadline := time.After(waitFor)
	for {
		select {
		case m := <-rb.msgs:
			if _, ok := m.(*wire.ServerEvent); ok {
				events++
				if events == 1 {
					deadline = time.After(time.Second)
				}
			}
			continue
		case <-rb.done:
			t.Fatalf("B disconnected its client after one OR add on A (%d events received first): %v", events, rb.err)
		case <-deadline:
		}
		break
	}
	if events != 1 {
		t.Errorf("one OR add on A: B's client got %d SERVER_EVENTs", events)
	}
}
