package protocol

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/topgun-go/topgun/plugins/postgres"
	"github.com/topgun-go/topgun/plugins/postgres/pgtest"
	"github.com/topgun-go/topgun/server/hlc"
	"github.com/topgun-go/topgun/server/record"
	"github.com/topgun-go/topgun/server/store"
	"github.com/topgun-go/topgun/server/wire"
)

// sharedEnvs starts two protocol servers, each on its own store and
// postgres backend, sharing one fresh schema.
func sharedEnvs(t *testing.T) (a, b *env, url string) {
	t.Helper()
	url = pgtest.FreshSchema(t)
	mk := func(node string) *env {
		be, err := postgres.Open(context.Background(), url, nil)
		if err != nil {
			t.Fatal(err)
		}
		e := &env{t: t}
		clock, err := hlc.New(node, nil)
		if err != nil {
			t.Fatal(err)
		}
		e.clock = clock
		e.st, err = store.Open(context.Background(), be, &store.Options{Clock: clock, Logger: testLogger(t, node+"-store"),
			ReapInterval: time.Hour, GCInterval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		e.srv, err = newServer(e.st, &Options{Logger: testLogger(t, node)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		e.mux = http.NewServeMux()
		e.srv.Register(e.mux)
		e.http = httptest.NewServer(e.mux)
		t.Cleanup(func() {
			e.srv.Close()
			e.http.Close()
			e.st.Close()
			be.Close()
		})
		return e
	}
	return mk("server-a"), mk("server-b"), url
}

// One OR add a client of A makes to a key holding a few thousand entries
// and tombstones is one SERVER_EVENT for a client of B with a live query
// on the map (announcing the key whole sent one per entry and tombstone,
// more than a connection's queue holds, and cut the client off).
func TestShared_ORAddOnAIsOneEventOnB(t *testing.T) {
	a, b, url := sharedEnvs(t)
	wa := a.dial(t)
	// A key with 2000 entries and 2000 tombstones (written directly: 4000
	// adds through the protocol re-encode the key per op).
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
	pgtest.Exec(t, url, `INSERT INTO topgun_maps (map_name, key, value, expiration_time, is_backup, created_at, updated_at) VALUES ('o', 'k', $1, 0, false, 1, 1)`, enc)
	// As a commit of another server would, tell A and B of it.
	pgtest.Exec(t, url, `SELECT pg_notify($1, '{"o":"elsewhere","m":"o","k":["k"]}')`, b.st.Backend().(*postgres.Backend).Channel())
	for deadline := time.Now().Add(5 * time.Second); b.st.Root("o", store.KindOR) == 0 || a.st.Root("o", store.KindOR) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the key never reached the indexes")
		}
		time.Sleep(10 * time.Millisecond)
	}
	rb := b.dial(t)
	rb.send(&wire.QuerySub{QueryID: "q", MapName: "o"})
	expect[*wire.QueryResp](rb)
	time.Sleep(500 * time.Millisecond) // B heard A's batch before rb subscribed? drain anyway
	for len(rb.msgs) > 0 {
		<-rb.msgs
	}
	wa.write(orAddOp("x", "o", "k", "one more", cts("w")))
	events := 0
	deadline := time.After(5 * time.Second)
	for {
		select {
		case m := <-rb.msgs:
			if _, ok := m.(*wire.ServerEvent); ok {
				events++
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
