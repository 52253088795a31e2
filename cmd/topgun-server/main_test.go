package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/plugins"
)

// tWriter sends what is written to t.Log.
type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t testing.TB) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Level: hclog.Trace, Output: tWriter{t}})
}

// getJSON fetches url and decodes its JSON object body.
func getJSON(t testing.TB, client *http.Client, url string) (int, map[string]string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	var body map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("GET %s: status %d, body is not a JSON object: %v", url, resp.StatusCode, err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET %s: Content-Type = %q, want application/json", url, ct)
	}
	return resp.StatusCode, body
}

func TestNewMux_healthAndReady(t *testing.T) {
	t.Parallel()
	store, err := plugins.Open(context.Background(), "null", &plugins.Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(newMux(store, nil, testLogger(t), nil))
	defer srv.Close()
	client := srv.Client()

	if code, body := getJSON(t, client, srv.URL+"/health"); code != http.StatusOK || body["status"] != "ok" {
		t.Errorf("/health = %d %v, want 200 ok", code, body)
	}
	if code, body := getJSON(t, client, srv.URL+"/ready"); code != http.StatusOK || body["status"] != "ready" {
		t.Errorf("/ready = %d %v, want 200 ready", code, body)
	}

	// A store that no longer answers makes the server unready, not unhealthy.
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	code, body := getJSON(t, client, srv.URL+"/ready")
	if code != http.StatusServiceUnavailable || body["status"] != "unavailable" || body["error"] == "" {
		t.Errorf("/ready on a closed store = %d %v, want 503 with the error", code, body)
	}
	if code, body := getJSON(t, client, srv.URL+"/health"); code != http.StatusOK || body["status"] != "ok" {
		t.Errorf("/health on a closed store = %d %v, want 200 ok", code, body)
	}

	resp, err := client.Post(srv.URL+"/health", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /health = %d, want 405", resp.StatusCode)
	}
}

// TestRun_servesUntilCanceled runs the whole server in process (so the race
// detector sees it): it prints PORT=, serves, and exits 0 when ctx is done.
func TestRun_servesUntilCanceled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdoutR, stdoutW := io.Pipe()
	env := map[string]string{"STORAGE_BACKEND": "null", "PORT": "0", "TOPGUN_BIND_ADDR": "127.0.0.1", "TOPGUN_LOG_LEVEL": "debug", "TOPGUN_NO_AUTH": "1"}

	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() }) // no logging after the test ends
	code := -1
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer stdoutW.Close()
		code = run(ctx, nil, envOf(env), stdoutW, tWriter{t})
	}()

	portc := make(chan int, 1)
	go func() {
		sc := bufio.NewScanner(stdoutR)
		for sc.Scan() {
			if p, ok := strings.CutPrefix(sc.Text(), "PORT="); ok {
				n, _ := strconv.Atoi(p)
				portc <- n
			}
		}
		close(portc)
	}()
	var port int
	select {
	case port = <-portc:
	case <-time.After(15 * time.Second):
		t.Fatal("no PORT= line on stdout within 15s")
	}
	if port <= 0 {
		wg.Wait()
		t.Fatalf("no usable PORT= line (port %d); run exited with %d", port, code)
	}

	client := &http.Client{Timeout: 5 * time.Second}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	if c, body := getJSON(t, client, base+"/health"); c != http.StatusOK || body["status"] != "ok" {
		t.Errorf("/health = %d %v", c, body)
	}
	if c, body := getJSON(t, client, base+"/ready"); c != http.StatusOK {
		t.Errorf("/ready = %d %v", c, body)
	}

	cancel()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(drainTimeout + 5*time.Second):
		t.Fatal("run did not return after ctx was canceled")
	}
	if code != exitOK {
		t.Errorf("run = %d, want 0", code)
	}
}

// TestRun_stopRequestedDuringStart checks that a stop request that arrives
// before the server listens still ends in a clean exit 0, without a PORT=.
func TestRun_stopRequestedDuringStart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stdout strings.Builder
	for _, backend := range []string{"null", "redb"} {
		env := map[string]string{"STORAGE_BACKEND": backend, "TOPGUN_REDB_PATH": t.TempDir() + "/data.redb", "PORT": "0", "TOPGUN_BIND_ADDR": "127.0.0.1", "TOPGUN_NO_AUTH": "1"}
		if code := run(ctx, nil, envOf(env), &stdout, tWriter{t}); code != exitOK {
			t.Errorf("%s: run with a canceled context = %d, want 0", backend, code)
		}
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout = %q, want nothing", stdout.String())
	}
}
