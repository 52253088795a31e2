package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/topgun-go/topgun/host"
	"github.com/topgun-go/topgun/plugins"
	"github.com/topgun-go/topgun/plugins/postgres/pgtest"
	"github.com/topgun-go/topgun/server/hlc"
	"github.com/topgun-go/topgun/server/record"
	recordstore "github.com/topgun-go/topgun/server/store"
)

// TestNewMux_readyBreakerOpen checks that /ready answers 503 naming the
// circuit breaker while a plugin's breaker is open after repeated crashes,
// and 200 again once its retry succeeds.
func TestNewMux_readyBreakerOpen(t *testing.T) {
	t.Parallel()
	ho := host.DefaultOptions()
	ho.BreakerFailures = 2
	// The /ready below must come within the backoff, or it is itself the
	// retry: long enough for a loaded machine (the test waits it out).
	ho.BreakerBackoff = 2 * time.Second
	ho.BreakerMaxBackoff = 2 * time.Second
	ctx := context.Background()
	// A plugin whose get of map "evil" traps (see host/testdata/wat).
	store, err := plugins.Open(ctx, "../../host/testdata/wat/trap.wasm", &plugins.Options{Plugin: ho, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	srv := httptest.NewServer(newMux(store, nil, testLogger(t), nil))
	defer srv.Close()
	client := srv.Client()
	if code, body := getJSON(t, client, srv.URL+"/ready"); code != http.StatusOK {
		t.Fatalf("/ready = %d %v, want 200", code, body)
	}
	for i := 0; i < 2; i++ {
		if _, err := store.Backend().Get(ctx, "evil", false, []string{"k"}); err == nil {
			t.Fatal("Get(evil) succeeded, want the trap")
		}
	}
	code, body := getJSON(t, client, srv.URL+"/ready")
	if code != http.StatusServiceUnavailable || !strings.Contains(body["error"], "circuit breaker is open") {
		t.Fatalf("/ready with the breaker open = %d %v, want 503 naming the breaker", code, body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body = getJSON(t, client, srv.URL+"/ready")
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/ready = %d %v 10s after a 2s backoff, want 200", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// While the server drains its connections at shutdown, /ready fails, so
// that load balancers stop sending it new clients.
func TestReady_failsWhileDraining(t *testing.T) {
	t.Parallel()
	store, err := plugins.Open(context.Background(), "null", &plugins.Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var draining atomic.Bool
	srv := httptest.NewServer(newMux(store, nil, testLogger(t), &draining))
	defer srv.Close()
	if code, body := getJSON(t, srv.Client(), srv.URL+"/ready"); code != http.StatusOK {
		t.Fatalf("/ready = %d %v, want 200", code, body)
	}
	draining.Store(true)
	if code, body := getJSON(t, srv.Client(), srv.URL+"/ready"); code != http.StatusServiceUnavailable || body["status"] != "shutting down" {
		t.Fatalf("/ready while draining = %d %v, want 503 shutting down", code, body)
	}
}

// On PostgreSQL a read answers while every write waits behind a lock
// another session holds; /ready fails while a commit has waited longer
// than its check allows, and passes again once the commit went through.
func TestReady_failsWhileACommitWaitsForALock(t *testing.T) {
	t.Parallel()
	db := pgtest.FreshSchema(t)
	ctx := context.Background()
	store, err := plugins.Open(ctx, "postgres", &plugins.Options{DatabaseURL: db, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	clock, err := hlc.New("ready-test", nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := recordstore.Open(ctx, store.Backend(), &recordstore.Options{Clock: clock, Logger: testLogger(t), CommitTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	put := func(v string) error {
		_, err := st.Apply(ctx, []recordstore.Op{{Map: "m", Key: "k", Kind: recordstore.OpPut, Value: record.StringValue(v)}}, 0)
		return err
	}
	if err := put("v1"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(newMux(store, st.CommitStalled, testLogger(t), nil))
	defer srv.Close()

	// SHARE mode lets reads through and holds every write.
	lock, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close(ctx)
	tx, err := lock.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE topgun_maps IN SHARE MODE"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- put("v2") }()

	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := getJSON(t, srv.Client(), srv.URL+"/ready")
		if code == http.StatusServiceUnavailable && strings.Contains(body["error"], "commit has waited") {
			break
		}
		if code != http.StatusOK {
			t.Fatalf("/ready = %d %v, want 200 or 503 naming the waiting commit", code, body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("/ready = %d %v while a write waited 30 s behind a lock, want 503", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("write after the lock was released: %v", err)
	}
	if code, body := getJSON(t, srv.Client(), srv.URL+"/ready"); code != http.StatusOK {
		t.Fatalf("/ready after the commit = %d %v, want 200", code, body)
	}
}
