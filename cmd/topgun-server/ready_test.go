package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/topgun-go/topgun/host"
	"github.com/topgun-go/topgun/plugins"
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
	srv := httptest.NewServer(newMux(store, testLogger(t), nil))
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
	srv := httptest.NewServer(newMux(store, testLogger(t), &draining))
	defer srv.Close()
	if code, body := getJSON(t, srv.Client(), srv.URL+"/ready"); code != http.StatusOK {
		t.Fatalf("/ready = %d %v, want 200", code, body)
	}
	draining.Store(true)
	if code, body := getJSON(t, srv.Client(), srv.URL+"/ready"); code != http.StatusServiceUnavailable || body["status"] != "shutting down" {
		t.Fatalf("/ready while draining = %d %v, want 503 shutting down", code, body)
	}
}
