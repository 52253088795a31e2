package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/host"
	"github.com/topgun-go/topgun/host/hosttest"
	"github.com/topgun-go/topgun/server/protocol"
)

// logBuffer collects a logger's output (written from many goroutines) and
// sends it to t.Log as well.
type logBuffer struct {
	t  *testing.T
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.t.Log(strings.TrimSuffix(string(p), "\n"))
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// start starts cfg's tenants with authentication on and serves them on
// 127.0.0.1; cleanup closes the listener, then the tenants (if the test
// has not).
func start(t *testing.T, cfg *Config) (*Tenants, *httptest.Server, *logBuffer) {
	t.Helper()
	auth, err := protocol.NewAuth(secret)
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{t: t}
	ts, err := Start(context.Background(), cfg, Shared{CacheDir: cacheDir, Auth: auth, Logger: hclog.New(&hclog.LoggerOptions{Output: logs})})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := ts.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	srv := httptest.NewServer(ts)
	t.Cleanup(srv.Close)
	return ts, srv, logs
}

// get answers a request: its status, its Retry-After and its body.
func get(t *testing.T, method, url string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After"), string(b)
}

// startWait bounds a Start test: the first open of a plugin in the test
// binary compiles it, which under the race detector on a loaded machine
// takes over a minute.
const startWait = 5 * time.Minute

// await polls cond every 20 ms until it holds; it fails the test when ctx
// ends first.
func await(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("%s: never happened", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// readyError is the error of a tenant's /ready: "" when it answers 200.
func readyError(t *testing.T, srv *httptest.Server, name string) (string, string) {
	t.Helper()
	code, retry, body := get(t, "GET", srv.URL+"/t/"+name+"/ready")
	if code == http.StatusOK {
		return "", ""
	}
	var r map[string]string
	if err := json.Unmarshal([]byte(body), &r); err != nil || code != http.StatusServiceUnavailable || r["status"] != "starting" || retry == "" {
		t.Fatalf("GET /t/%s/ready: %d, Retry-After %q, %q; want 200, or 503 with Retry-After and status starting", name, code, retry, body)
	}
	return r["error"], retry
}

// TestStart_slowTenantDoesNotHoldOthers: a tenant whose open never ends
// (its plugin's scan of the index rebuild pages forever, each call well
// within its deadline) leaves the other tenant serving writes, is
// answered 503 saying it is starting, and Close stops its open and
// releases its data directory.
func TestStart_slowTenantDoesNotHoldOthers(t *testing.T) {
	endless := hosttest.BuildPlugin(t, "../../host/testdata/plugins/slowscan")
	null := hosttest.BuildPlugin(t, "../plugins/null")
	dir := t.TempDir()
	ts, srv, _ := start(t, &Config{Tenants: []TenantConfig{
		{Name: "slow", Plugin: endless, DataDir: dir},
		{Name: "good", Plugin: null},
	}})
	ctx, cancel := context.WithTimeout(context.Background(), startWait)
	defer cancel()

	await(t, ctx, "the slow tenant's scan begins", func() bool {
		_, err := os.Stat(filepath.Join(dir, "scanning"))
		return err == nil
	})
	await(t, ctx, "tenant good serves", func() bool {
		why, _ := readyError(t, srv, "good")
		return why == ""
	})
	good := mustDial(t, ctx, srv, "good")
	for i := range 3 {
		if err := good.Put(ctx, "notes", "k", i); err != nil {
			t.Fatalf("put %d to good beside the slow tenant: %v", i, err)
		}
	}
	if got := read(t, ctx, good, "notes"); got["k"] != int64(2) {
		t.Fatalf("good reads %v", got)
	}

	if why, _ := readyError(t, srv, "slow"); !strings.Contains(why, "tenant slow is starting") || !strings.Contains(why, "opening") {
		t.Fatalf("GET /t/slow/ready: %q, want it to say the tenant is starting, opening", why)
	}
	for _, path := range []string{"POST /t/slow/sync", "GET /t/slow/ws"} {
		method, p, _ := strings.Cut(path, " ")
		code, retry, body := get(t, method, srv.URL+p)
		if code != http.StatusServiceUnavailable || retry == "" || !strings.Contains(body, "tenant slow is starting") {
			t.Fatalf("%s: %d, Retry-After %q, %q; want 503 with Retry-After saying the tenant is starting", path, code, retry, body)
		}
	}

	// The open is in its scan: Close stops it at its next call, closes
	// the plugin and so releases the data directory.
	if err := ts.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	b, err := host.Load(ctx, endless, &host.Options{DataDir: dir, CacheDir: cacheDir})
	if err != nil {
		t.Fatalf("loading a plugin on the slow tenant's data directory after Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := get(t, "GET", srv.URL+"/t/slow/ready"); code != http.StatusNotFound {
		t.Fatalf("GET /t/slow/ready after Close: %d, want 404", code)
	}
}

// TestStart_failedTenantIsRetried: a tenant that cannot open (its data
// directory is locked, as by another process) is logged and answered 503
// with the reason while the other serves, has no series in /metrics, and
// is served once the lock is released.
func TestStart_failedTenantIsRetried(t *testing.T) {
	logstore := hosttest.BuildPlugin(t, "../plugins/logstore/cmd/logstore")
	null := hosttest.BuildPlugin(t, "../plugins/null")
	dir := t.TempDir()
	release, err := host.LockDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if release != nil {
			release()
		}
	}()
	_, srv, logs := start(t, &Config{Tenants: []TenantConfig{
		{Name: "a", Plugin: null},
		{Name: "b", Plugin: logstore, DataDir: dir},
	}})
	ctx, cancel := context.WithTimeout(context.Background(), startWait)
	defer cancel()

	await(t, ctx, "tenant a serves", func() bool {
		why, _ := readyError(t, srv, "a")
		return why == ""
	})
	ca := mustDial(t, ctx, srv, "a")
	if err := ca.Put(ctx, "notes", "k", "a serves"); err != nil {
		t.Fatalf("put to a beside the failing tenant: %v", err)
	}
	var why string
	await(t, ctx, "tenant b's open fails", func() bool {
		why, _ = readyError(t, srv, "b")
		return strings.Contains(why, "failed")
	})
	if !strings.Contains(why, "tenant b is starting") || !strings.Contains(why, "in use by another loaded plugin") {
		t.Fatalf("GET /t/b/ready: %q, want it to say b is starting and why its open failed", why)
	}
	code, retry, body := get(t, "POST", srv.URL+"/t/b/sync")
	if code != http.StatusServiceUnavailable || retry == "" || !strings.Contains(body, "in use by another loaded plugin") {
		t.Fatalf("POST /t/b/sync: %d, Retry-After %q, %q; want 503 with Retry-After and the reason", code, retry, body)
	}
	// The failure is logged just after its reason is served.
	await(t, ctx, "the log names tenant b and its error", func() bool {
		l := logs.String()
		return strings.Contains(l, "tenant.b: cannot open the tenant") && strings.Contains(l, "in use by another loaded plugin")
	})
	m := scrapeMetrics(t, srv)
	if _, ok := m[`topgun_connections{tenant="a"}`]; !ok {
		t.Error("/metrics serves no topgun_connections for tenant a")
	}
	for key := range m {
		if strings.Contains(key, `tenant="b"`) {
			t.Errorf("%s is served for tenant b, which is not open", key)
		}
	}

	if err := release(); err != nil {
		t.Fatal(err)
	}
	release = nil
	await(t, ctx, "tenant b serves once its data directory is free", func() bool {
		why, _ := readyError(t, srv, "b")
		return why == ""
	})
	cb := mustDial(t, ctx, srv, "b")
	if err := cb.Put(ctx, "notes", "k", "b serves"); err != nil {
		t.Fatalf("put to b after it opened: %v", err)
	}
	if got := read(t, ctx, cb, "notes"); got["k"] != "b serves" {
		t.Fatalf("b reads %v", got)
	}
}

// TestStart_removeStopsTheOpen: Remove of a tenant still opening stops its
// open and releases its data directory, and its path then answers 404.
func TestStart_removeStopsTheOpen(t *testing.T) {
	endless := hosttest.BuildPlugin(t, "../../host/testdata/plugins/slowscan")
	dir := t.TempDir()
	ts, srv, _ := start(t, &Config{Tenants: []TenantConfig{{Name: "slow", Plugin: endless, DataDir: dir}}})
	ctx, cancel := context.WithTimeout(context.Background(), startWait)
	defer cancel()
	await(t, ctx, "the slow tenant's scan begins", func() bool {
		_, err := os.Stat(filepath.Join(dir, "scanning"))
		return err == nil
	})
	if err := ts.Remove("slow"); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	release, err := host.LockDataDir(dir)
	if err != nil {
		t.Fatalf("the data directory is still held after Remove: %v", err)
	}
	release()
	if code, _, _ := get(t, "GET", srv.URL+"/t/slow/ready"); code != http.StatusNotFound {
		t.Fatalf("GET /t/slow/ready after Remove: %d, want 404", code)
	}
}

// TestStart_missingPlugin: a plugin file missing is a mistake in the
// tenants file, refused at start naming the tenant, as before.
func TestStart_missingPlugin(t *testing.T) {
	null := hosttest.BuildPlugin(t, "../plugins/null")
	_, err := Start(context.Background(), &Config{Tenants: []TenantConfig{
		{Name: "a", Plugin: null},
		{Name: "b", Plugin: filepath.Join(t.TempDir(), "missing.wasm")},
	}}, Shared{CacheDir: cacheDir})
	if err == nil || !strings.Contains(err.Error(), `tenant 2 ("b"): plugin:`) {
		t.Fatalf("Start with a missing plugin: %v, want an error naming tenant b's plugin", err)
	}
}

// A data_dir holding the compilation cache, or inside it, stops the start,
// as the host would refuse it at every open.
func TestStart_dataDirOverlappingTheCache(t *testing.T) {
	null := hosttest.BuildPlugin(t, "../plugins/null")
	base := t.TempDir()
	cache := filepath.Join(base, "cache")
	for _, dir := range []string{base, filepath.Join(cache, "inside")} {
		_, err := Start(context.Background(), &Config{Tenants: []TenantConfig{
			{Name: "a", Plugin: null, DataDir: t.TempDir()},
			{Name: "b", Plugin: null, DataDir: dir},
		}}, Shared{CacheDir: cache})
		if err == nil || !strings.Contains(err.Error(), `tenant 2 ("b"): data_dir `+dir+` holds the compilation cache or lies inside it`) {
			t.Fatalf("Start with data_dir %s and cache %s: %v, want tenant b refused", dir, cache, err)
		}
	}
}

// A tenant whose retry is due but which waits for a free open slot says
// so, and is asked again after startingRetryAfter, not at once.
func TestStarting_retryDueWaitsItsTurn(t *testing.T) {
	now := time.Now()
	st := &starting{since: now.Add(-time.Minute), failures: 1, err: errors.New("boom"), retryAt: now.Add(-time.Second)}
	why, retry := st.status("a", now)
	if !strings.Contains(why, "waiting its turn to open") || strings.Contains(why, "next open in") || retry != startingRetryAfter {
		t.Fatalf("status = %q, %v; want waiting its turn, asked again after %v", why, retry, startingRetryAfter)
	}
	st.retryAt = now.Add(30 * time.Second)
	if why, retry := st.status("a", now); !strings.Contains(why, "next open in 30s") || retry != 30*time.Second {
		t.Fatalf("status = %q, %v; want the next open in 30s", why, retry)
	}
}

// A data_dir that cannot be a directory (a file, or under one) stops the
// start with an error naming the field, so the operator knows which path
// of the tenants file to fix.
func TestStart_dataDirNotADirectory(t *testing.T) {
	null := hosttest.BuildPlugin(t, "../plugins/null")
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{file, filepath.Join(file, "sub")} {
		_, err := Start(context.Background(), &Config{Tenants: []TenantConfig{
			{Name: "a", Plugin: null, DataDir: dir},
		}}, Shared{CacheDir: cacheDir})
		if err == nil || !strings.Contains(err.Error(), `tenant a: data_dir "`+dir+`"`) {
			t.Errorf("Start with data_dir %s: %v, want an error naming tenant a's data_dir", dir, err)
		}
	}
}
