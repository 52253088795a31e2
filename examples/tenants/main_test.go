package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/client"
	"github.com/topgun-go/topgun/host/hosttest"
	"github.com/topgun-go/topgun/internal/metricstest"
	"github.com/topgun-go/topgun/server/protocol"
)

const secret = "tenants-test-secret"

// cacheDir is the compilation cache every test of the binary shares, so
// each plugin is compiled once per run (hosttest builds each once too).
var cacheDir string

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "tenants-cache-")
	if err != nil {
		panic(err)
	}
	cacheDir = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

// serve opens cfg's tenants with authentication on and serves them on
// 127.0.0.1; cleanup closes the tenants (if the test has not), then the
// listener.
func serve(t *testing.T, cfg *Config) (*Tenants, *httptest.Server) {
	t.Helper()
	auth, err := protocol.NewAuth(secret)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := Open(context.Background(), cfg, Shared{CacheDir: cacheDir, Auth: auth, Logger: hclog.NewNullLogger()})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	srv := httptest.NewServer(ts)
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		if err := ts.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return ts, srv
}

// token is a client JWT for tenant aud.
func token(t *testing.T, aud string) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "user-of-" + aud, "aud": aud, "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func dial(ctx context.Context, srv *httptest.Server, tenant, tok string) (*client.Client, error) {
	o := client.DefaultOptions()
	o.Token = tok
	o.Reconnect = false
	return client.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/t/"+tenant+"/", o)
}

func mustDial(t *testing.T, ctx context.Context, srv *httptest.Server, tenant string) *client.Client {
	t.Helper()
	c, err := dial(ctx, srv, tenant, token(t, tenant))
	if err != nil {
		t.Fatalf("dial tenant %s: %v", tenant, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// read returns the records of a map as the tenant's server holds them.
func read(t *testing.T, ctx context.Context, c *client.Client, mapName string) map[string]any {
	t.Helper()
	sub, err := c.Subscribe(ctx, mapName, nil)
	if err != nil {
		t.Fatalf("subscribe %s: %v", mapName, err)
	}
	defer sub.Close()
	out := map[string]any{}
	for _, r := range sub.Initial {
		out[r.Key] = r.Value
	}
	return out
}

func status(t *testing.T, method, url string) int {
	t.Helper()
	code, _, _ := get(t, method, url)
	return code
}

// dirHolds reports whether any file under dir contains s.
func dirHolds(t *testing.T, dir, s string) bool {
	t.Helper()
	found := false
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		found = found || bytes.Contains(b, []byte(s))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// TestTenants_isolation runs two tenants on the durable example plugin
// behind one handler: a write to one is read back from it and is absent
// from the other, lands in its own data directory only, a token for one is
// refused by the other, and closing one leaves the other serving.
func TestTenants_isolation(t *testing.T) {
	wasm := hosttest.BuildPlugin(t, "../plugins/logstore/cmd/logstore")
	dirA, dirB := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	cfg := &Config{Tenants: []TenantConfig{
		{Name: "a", Plugin: wasm, DataDir: dirA, MemoryMB: 64},
		{Name: "b", Plugin: wasm, DataDir: dirB},
	}}
	ts, srv := serve(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	ca, cb := mustDial(t, ctx, srv, "a"), mustDial(t, ctx, srv, "b")
	const secretOfA = "written-to-tenant-a-only"
	if err := ca.Put(ctx, "notes", "n1", secretOfA); err != nil {
		t.Fatalf("put to a: %v", err)
	}
	if got := read(t, ctx, ca, "notes"); got["n1"] != secretOfA {
		t.Fatalf("a reads %v, want n1=%q", got, secretOfA)
	}
	if got := read(t, ctx, cb, "notes"); len(got) != 0 {
		t.Fatalf("b reads a's write: %v", got)
	}
	if !dirHolds(t, dirA, secretOfA) || dirHolds(t, dirB, secretOfA) {
		t.Fatalf("a's record is not (only) in a's data directory: in a %v, in b %v", dirHolds(t, dirA, secretOfA), dirHolds(t, dirB, secretOfA))
	}

	// One key signs every tenant's tokens; aud keeps them apart.
	if c, err := dial(ctx, srv, "b", token(t, "a")); !errors.Is(err, client.ErrAuthFailed) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("b with a's token: err = %v, want ErrAuthFailed", err)
	}
	// The routes reach the tenant's protocol server (POST /sync without a
	// token: 401), and an unknown tenant is 404.
	if got := status(t, "POST", srv.URL+"/t/a/sync"); got != http.StatusUnauthorized {
		t.Fatalf("POST /t/a/sync without a token: %d, want 401", got)
	}
	if got := status(t, "GET", srv.URL+"/t/nope/"); got != http.StatusNotFound {
		t.Fatalf("GET /t/nope/: %d, want 404", got)
	}

	if err := ts.Remove("a"); err != nil {
		t.Fatalf("Remove(a): %v", err)
	}
	if got := status(t, "GET", srv.URL+"/t/a/ws"); got != http.StatusNotFound {
		t.Fatalf("GET /t/a/ws after Remove: %d, want 404", got)
	}
	if err := cb.Put(ctx, "notes", "n2", "b still serves"); err != nil {
		t.Fatalf("put to b after a closed: %v", err)
	}
	if got := read(t, ctx, cb, "notes"); len(got) != 1 || got["n2"] != "b still serves" {
		t.Fatalf("b reads %v after a closed", got)
	}
	if got := status(t, "GET", srv.URL+"/t/b/ready"); got != http.StatusOK {
		t.Fatalf("GET /t/b/ready: %d", got)
	}

	// Closing a released its data directory and kept its data: it opens
	// again, in another set of tenants, with the record.
	_, srv2 := serve(t, &Config{Tenants: cfg.Tenants[:1]})
	if got := read(t, ctx, mustDial(t, ctx, srv2, "a"), "notes"); got["n1"] != secretOfA {
		t.Fatalf("a after reopening reads %v", got)
	}
}

// TestTenants_slowNeighbour runs a tenant whose plugin loops on every
// write to map "loop" beside one on the example null plugin: while the
// first one's calls run to their deadline and fail, the other's writes
// are acknowledged, and the looping tenant still closes.
func TestTenants_slowNeighbour(t *testing.T) {
	null := hosttest.BuildPlugin(t, "../plugins/null")
	hostile := hosttest.BuildPlugin(t, "../../host/testdata/plugins/hostile")
	cfg, err := ParseConfig([]byte(`{"tenants": [
		{"name": "good", "plugin": "` + null + `"},
		{"name": "bad", "plugin": "` + hostile + `", "call_timeout": "1s"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	ts, srv := serve(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	o := client.DefaultOptions()
	o.Token = token(t, "bad")
	o.Reconnect = false
	// The client re-sends the failed write at once, so that the plugin
	// loops nearly all the time while good is written (until its breaker
	// opens after 5 failures).
	o.BackoffInitial, o.BackoffMax = time.Millisecond, time.Millisecond
	bad, err := client.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/t/bad/", o)
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	badCtx, stopBad := context.WithCancel(ctx)
	badDone := make(chan error, 1)
	go func() { badDone <- bad.Put(badCtx, "loop", "k", "never stored") }()
	ts.mu.RLock()
	badBackend := ts.tenants["bad"].backend
	ts.mu.RUnlock()
	for badBackend.Stats().Failures == 0 {
		select {
		case err := <-badDone:
			t.Fatalf("the looping write returned %v before any call failed", err)
		case <-ctx.Done():
			t.Fatal("the looping plugin's call never failed")
		case <-time.After(10 * time.Millisecond):
		}
	}

	good := mustDial(t, ctx, srv, "good")
	for i := range 3 {
		if err := good.Put(ctx, "notes", "k", i); err != nil {
			t.Fatalf("put %d to good beside the looping tenant: %v", i, err)
		}
	}
	if got := read(t, ctx, good, "notes"); got["k"] != int64(2) {
		t.Fatalf("good reads %v", got)
	}
	select {
	case err := <-badDone:
		t.Fatalf("the looping write returned %v", err)
	default:
	}
	stopBad()
	if err := <-badDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("the looping write: %v, want context.Canceled", err)
	}
	bad.Close()
	// Bounded by the call timeout: an instance still looping is abandoned.
	if err := ts.Remove("bad"); err != nil {
		t.Logf("Remove(bad): %v", err) // may report an abandoned instance
	}
	if err := good.Put(ctx, "notes", "k2", "after"); err != nil {
		t.Fatalf("put to good after bad closed: %v", err)
	}
}

// TestOpen_failureClosesTheOthers: when a tenant cannot open, Open fails
// naming it, and closes the tenants it had opened, releasing their data
// directories.
func TestOpen_failureClosesTheOthers(t *testing.T) {
	wasm := hosttest.BuildPlugin(t, "../plugins/logstore/cmd/logstore")
	dir := t.TempDir()
	cfg := &Config{Tenants: []TenantConfig{
		{Name: "a", Plugin: wasm, DataDir: dir},
		{Name: "b", Plugin: filepath.Join(t.TempDir(), "missing.wasm")},
	}}
	ts, err := Open(context.Background(), cfg, Shared{CacheDir: cacheDir})
	if err == nil {
		ts.Close()
		t.Fatal("Open succeeded with a missing plugin")
	}
	if !strings.Contains(err.Error(), "tenant b:") {
		t.Fatalf("error does not name the tenant: %v", err)
	}
	serve(t, &Config{Tenants: cfg.Tenants[:1]}) // fails if a's directory is still locked
}

func TestParseConfig_errors(t *testing.T) {
	for _, tc := range []struct{ json, want string }{
		{`{}`, "no tenants"},
		{`{"tenants": [{"name": "a", "plugin": "p.wasm", "datadir": "x"}]}`, `unknown field "datadir"`},
		{`{"tenants": [{"name": "A.b", "plugin": "p.wasm"}]}`, "name must be"},
		{`{"tenants": [{"name": "a", "plugin": "p.wasm"}, {"name": "a", "plugin": "p.wasm"}]}`, "names must be unique"},
		{`{"tenants": [{"name": "a"}]}`, "plugin is missing"},
		{`{"tenants": [{"name": "a", "plugin": "p.wasm", "data_dir": "d"}, {"name": "b", "plugin": "p.wasm", "data_dir": "./d/"}]}`, `is also tenant "a"'s`},
		{`{"tenants": [{"name": "a", "plugin": "p.wasm", "memory_mb": 5000}]}`, "memory_mb 5000 is out of range"},
		{`{"tenants": [{"name": "a", "plugin": "p.wasm", "call_timeout": "5"}]}`, `call_timeout "5" is not a duration`},
		{`{"tenants": [{"name": "a", "plugin": "p.wasm", "max_index_mb": 2000000000}]}`, "max_index_mb 2000000000 is out of range"},
		{`{"max_connections": -1, "tenants": [{"name": "a", "plugin": "p.wasm"}]}`, "max_connections -1 is out of range"},
		{`{"tenants": [{"name": "a", "plugin": "p.wasm"}]}` + "\n" + `{"tenants": [{"name": "b", "plugin": "p.wasm"}]}`, "more after the closing brace"},
		{`{"tenants": [{"name": "a", "plugin": "p.wasm"}]}}`, "more after the closing brace"},
		// encoding/json keeps a field's last value (matching names
		// regardless of case) without a word.
		{`{"tenants": [{"name": "a", "plugin": "p.wasm", "data_dir": "d", "data_dir": "e"}]}`, `field "data_dir" is given more than once`},
		{`{"tenants": [{"name": "a", "plugin": "p.wasm", "Plugin": "q.wasm"}]}`, `field "Plugin" is given more than once`},
		{`{"tenants": [{"name": "a", "plugin": "p.wasm"}], "tenants": [{"name": "b", "plugin": "p.wasm"}]}`, `field "tenants" is given more than once`},
	} {
		_, err := ParseConfig([]byte(tc.json))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.json, err, tc.want)
		}
	}
	// White space after the object is fine.
	if _, err := ParseConfig([]byte(`{"tenants": [{"name": "a", "plugin": "p.wasm"}]}` + "\n\n")); err != nil {
		t.Errorf("one object and a newline: %v", err)
	}
	// Every problem at once.
	_, err := ParseConfig([]byte(`{"tenants": [{"name": "", "memory_mb": -1}]}`))
	if err == nil || strings.Count(err.Error(), "\n") != 2 {
		t.Errorf("want three problems, got %v", err)
	}
}

func TestAuthAndAddr(t *testing.T) {
	for _, tc := range []struct {
		secret, noAuth, addr string
		want                 string // the listen address, or part of the error
		auth                 bool
	}{
		{"", "", "", "set JWT_SECRET", false},
		{"", "1", "", "127.0.0.1:8080", false},
		{"", "true", "[::1]:9000", "[::1]:9000", false},
		{"", "1", ":8080", "reachable from other machines", false},
		{"", "1", "0.0.0.0:8080", "reachable from other machines", false},
		{"", "maybe", "", "TOPGUN_NO_AUTH", false},
		{"", "Yes", "", "127.0.0.1:8080", false},
		{"", "on", "", "127.0.0.1:8080", false},
		{"", "off", "", "set JWT_SECRET", false},
		{"s3cret", "", "", ":8080", true},
		{"s3cret", "0", "10.0.0.1:80", "10.0.0.1:80", true},
		{" ", "", "", "JWT_SECRET holds only whitespace", false},
	} {
		auth, addr, err := authAndAddr(tc.secret, tc.noAuth, tc.addr)
		got := addr
		if err != nil {
			got = err.Error()
		}
		if !strings.Contains(got, tc.want) || (auth != nil) != tc.auth {
			t.Errorf("authAndAddr(%q, %q, %q) = %v, %q, %v; want %q, auth %v", tc.secret, tc.noAuth, tc.addr, auth, addr, err, tc.want, tc.auth)
		}
	}
}

// TestRun_cacheDirFromEnv: without -cache-dir the program uses the
// server's TOPGUN_PLUGIN_CACHE_DIR (here a directory others may write to,
// which the host refuses: the start fails, as no tenant could open).
func TestRun_cacheDirFromEnv(t *testing.T) {
	// Built first: hosttest keeps the plugins it builds in the user cache
	// directory, for the other tests too.
	null := hosttest.BuildPlugin(t, "../plugins/null")
	t.Setenv("XDG_CACHE_HOME", t.TempDir()) // where the default would go
	cfgPath := filepath.Join(t.TempDir(), "tenants.json")
	if err := os.WriteFile(cfgPath, []byte(`{"tenants": [{"name": "a", "plugin": "`+null+`"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(t.TempDir(), "open")
	if err := os.Mkdir(open, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"JWT_SECRET": secret, "TOPGUN_PLUGIN_CACHE_DIR": open}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stderr bytes.Buffer
	err := run(ctx, []string{"-config", cfgPath, "-addr", "127.0.0.1:0"}, func(k string) string { return env[k] }, &stderr)
	if err == nil || !strings.Contains(err.Error(), "compilation cache "+open) || !strings.Contains(err.Error(), "-cache-dir") {
		t.Fatalf("run with TOPGUN_PLUGIN_CACHE_DIR=%s (mode 0777): %v, want the start refused naming that cache and -cache-dir", open, err)
	}
}

// TestTenants_maxConnections: max_connections bounds the WebSocket
// connections and POST /sync requests of all tenants together, each
// tenant's protocol server counting only its own. One beyond it (and its
// reserve for a device's takeover of its connection, one here) is
// refused as a protocol server refuses past its own limit (503 with
// Retry-After, counted in the tenant's ClientsRefused), and a slot
// freed is taken again.
func TestTenants_maxConnections(t *testing.T) {
	null := hosttest.BuildPlugin(t, "../plugins/null")
	ts, srv := serve(t, &Config{MaxConnections: 2, Tenants: []TenantConfig{
		{Name: "a", Plugin: null}, {Name: "b", Plugin: null},
	}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ca := mustDial(t, ctx, srv, "a")
	mustDial(t, ctx, srv, "b")
	// Admitted on trial into the reserve; it says nothing.
	trial, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/t/b/ws", nil)
	if err != nil {
		t.Fatalf("a WebSocket on trial: %v", err)
	}
	defer trial.CloseNow()

	req, err := http.NewRequest("GET", srv.URL+"/t/a/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Upgrade", "websocket")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "max_connections") {
		t.Fatalf("a third WebSocket (tenant a) with 2 open and max_connections 2: %d, Retry-After %q, %q; want 503, Retry-After, a message naming max_connections",
			resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if got := status(t, "POST", srv.URL+"/t/b/sync"); got != http.StatusServiceUnavailable {
		t.Fatalf("POST /t/b/sync with 2 WebSockets open and max_connections 2: %d, want 503", got)
	}
	ts.mu.RLock()
	refusedA, refusedB := ts.tenants["a"].proto.Stats().ClientsRefused, ts.tenants["b"].proto.Stats().ClientsRefused
	ts.mu.RUnlock()
	if refusedA != 1 || refusedB != 1 {
		t.Fatalf("ClientsRefused: a %d, b %d; want 1 each", refusedA, refusedB)
	}

	// The server side of a closed connection ends a moment later.
	ca.Close()
	// Bounded by the test's ctx, not a count: a loaded machine may take
	// a while to end it.
	for {
		c, err := dial(ctx, srv, "b", token(t, "b"))
		if err == nil {
			c.Close()
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no connection admitted after one closed: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// scrapeMetrics reads GET /metrics into name{label="value",...} (labels
// sorted by name) -> value; a histogram's is its count of observations.
func scrapeMetrics(t *testing.T, srv *httptest.Server) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for name, f := range metricstest.Scrape(t, srv) {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+strconv.Quote(l.GetValue()))
			}
			slices.Sort(labels)
			out[name+"{"+strings.Join(labels, ",")+"}"] = m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
		}
	}
	return out
}

// TestTenants_metrics: GET /metrics serves each tenant's connections, ops
// and plugin under its tenant label, from one registry, and a tenant
// removed leaves no series.
func TestTenants_metrics(t *testing.T) {
	null := hosttest.BuildPlugin(t, "../plugins/null")
	ts, srv := serve(t, &Config{Tenants: []TenantConfig{
		{Name: "a", Plugin: null}, {Name: "b", Plugin: null},
	}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ca := mustDial(t, ctx, srv, "a")
	for i := range 3 {
		if err := ca.Put(ctx, "notes", "k", i); err != nil {
			t.Fatal(err)
		}
	}
	m := scrapeMetrics(t, srv)
	for key, want := range map[string]float64{
		`topgun_connections{tenant="a"}`:                         1,
		`topgun_connections{tenant="b"}`:                         0,
		`topgun_ops_applied_total{tenant="a"}`:                   3,
		`topgun_ops_applied_total{tenant="b"}`:                   0,
		`topgun_clients_refused_total{tenant="b"}`:               0,
		`topgun_plugin_breaker_state{state="closed",tenant="a"}`: 1,
		`topgun_plugin_breaker_state{state="open",tenant="b"}`:   0,
		`topgun_plugin_failures_total{tenant="a"}`:               0,
		`topgun_backend_info{backend="null",tenant="b"}`:         1,
		`topgun_plugin_instances{tenant="b"}`:                    1,
	} {
		if got, ok := m[key]; !ok || got != want {
			t.Errorf("%s = %v (served: %v), want %v", key, got, ok, want)
		}
	}
	if _, ok := m[`go_goroutines{}`]; !ok {
		t.Error("no go_goroutines: the Go runtime's metrics are not served")
	}

	if err := ts.Remove("b"); err != nil {
		t.Fatal(err)
	}
	for key := range scrapeMetrics(t, srv) {
		if strings.Contains(key, `tenant="b"`) {
			t.Errorf("%s is served after tenant b was removed", key)
		}
	}
}

// TestTenants_commitMetrics: each tenant's record store commits are
// served under its tenant label, with the server's names: a tenant's
// commits move its own series only.
func TestTenants_commitMetrics(t *testing.T) {
	null := hosttest.BuildPlugin(t, "../plugins/null")
	_, srv := serve(t, &Config{Tenants: []TenantConfig{
		{Name: "a", Plugin: null}, {Name: "b", Plugin: null},
	}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ca := mustDial(t, ctx, srv, "a")
	// Connecting stores the client's device before PONG; count from here.
	if _, err := ca.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	before := scrapeMetrics(t, srv)
	for _, key := range []string{
		`topgun_store_commit_seconds{tenant="a"}`, `topgun_store_commit_seconds{tenant="b"}`,
		`topgun_store_committed_records_total{tenant="a"}`, `topgun_store_committed_records_total{tenant="b"}`,
		`topgun_store_commit_failures_total{tenant="a"}`, `topgun_store_commit_failures_total{tenant="b"}`,
	} {
		if _, ok := before[key]; !ok {
			t.Fatalf("%s is not served", key)
		}
	}
	for i := range 3 {
		if err := ca.Put(ctx, "notes", strconv.Itoa(i), i); err != nil {
			t.Fatal(err)
		}
	}
	after := scrapeMetrics(t, srv)
	moved := func(key string) float64 { return after[key] - before[key] }
	if d := moved(`topgun_store_committed_records_total{tenant="a"}`); d != 3 {
		t.Errorf("tenant a's topgun_store_committed_records_total moved by %v after 3 puts, want 3", d)
	}
	if d := moved(`topgun_store_commit_seconds{tenant="a"}`); d < 1 {
		t.Errorf("tenant a's topgun_store_commit_seconds observed %v commits after 3 puts, want at least 1", d)
	}
	for _, key := range []string{
		`topgun_store_commit_seconds{tenant="b"}`, `topgun_store_committed_records_total{tenant="b"}`,
		`topgun_store_commit_failures_total{tenant="a"}`, `topgun_store_commit_failures_total{tenant="b"}`,
	} {
		if after[key] != 0 {
			t.Errorf("%s = %v, want 0", key, after[key])
		}
	}
}

// TestTenants_metricsHelpNamesTheTenantsSettings: the help texts of
// /metrics name the settings as this process has them (max_connections,
// the protocol.Options fields it leaves at their defaults), not the
// server's TOPGUN_* variables, which it does not read.
func TestTenants_metricsHelpNamesTheTenantsSettings(t *testing.T) {
	null := hosttest.BuildPlugin(t, "../plugins/null")
	_, srv := serve(t, &Config{Tenants: []TenantConfig{{Name: "a", Plugin: null}}})
	fams := metricstest.Scrape(t, srv)
	for name, f := range fams {
		if strings.Contains(f.GetHelp(), "TOPGUN_") {
			t.Errorf("%s's help names a server variable: %q", name, f.GetHelp())
		}
	}
	for name, want := range map[string][]string{
		"topgun_clients_refused_total":      {"max_connections"},
		"topgun_slow_clients_dropped_total": {"protocol.Options.OutboundBytes"},
		"topgun_queries_refused_total":      {"protocol.Options.MaxQueryResults", "8 × protocol.Options.MaxMessageBytes"},
	} {
		f := fams[name]
		if f == nil {
			t.Fatalf("%s is not served", name)
		}
		for _, w := range want {
			if !strings.Contains(f.GetHelp(), w) {
				t.Errorf("%s's help %q does not name %s", name, f.GetHelp(), w)
			}
		}
	}
}

// The tenants file shipped with the example is valid.
func TestParseConfig_example(t *testing.T) {
	c, err := LoadConfig("tenants.json")
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxConnections != 10000 || len(c.Tenants) != 3 {
		t.Fatalf("tenants.json: max_connections %d, %d tenants", c.MaxConnections, len(c.Tenants))
	}
}

// TestTenants_errorsNameTheTenantsFile: the host's errors and notes name
// the tenants file's fields (and -cache-dir), which the operator sets,
// not the server's TOPGUN_PLUGIN_* variables, which the example does not
// read (but for -cache-dir's default).
func TestTenants_errorsNameTheTenantsFile(t *testing.T) {
	logstore := hosttest.BuildPlugin(t, "../plugins/logstore/cmd/logstore")
	openErr := func(t *testing.T, cfg *Config, cache string) error {
		t.Helper()
		ts, err := Open(context.Background(), cfg, Shared{CacheDir: cache})
		if err == nil {
			ts.Close()
			t.Fatal("Open succeeded")
		}
		return err
	}
	check := func(t *testing.T, err error, want string) {
		t.Helper()
		if !strings.Contains(err.Error(), want) || strings.Contains(strings.Replace(err.Error(), want, "", 1), "TOPGUN_") {
			t.Fatalf("error %q: want it to name %q, and no TOPGUN_PLUGIN_* variable", err, want)
		}
	}

	t.Run("memory_mb", func(t *testing.T) {
		err := openErr(t, &Config{Tenants: []TenantConfig{{Name: "a", Plugin: logstore, MemoryMB: 1}}}, cacheDir)
		check(t, err, "limit of 1 MiB (memory_mb)")
	})
	t.Run("data_dir", func(t *testing.T) {
		dir := t.TempDir()
		serve(t, &Config{Tenants: []TenantConfig{{Name: "a", Plugin: logstore, DataDir: dir}}})
		err := openErr(t, &Config{Tenants: []TenantConfig{{Name: "b", Plugin: logstore, DataDir: dir}}}, cacheDir)
		check(t, err, "its own data_dir")
	})
	t.Run("cache-dir", func(t *testing.T) {
		open := filepath.Join(t.TempDir(), "open")
		if err := os.Mkdir(open, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(open, 0o777); err != nil { // others may write: refused
			t.Fatal(err)
		}
		err := openErr(t, &Config{Tenants: []TenantConfig{{Name: "a", Plugin: logstore}}}, open)
		check(t, err, "set -cache-dir (or TOPGUN_PLUGIN_CACHE_DIR) to")
	})
	t.Run("data_max_mb", func(t *testing.T) {
		ts, _ := serve(t, &Config{Tenants: []TenantConfig{{Name: "a", Plugin: logstore, DataDir: t.TempDir(), DataMaxMB: 1}}})
		ts.mu.RLock()
		b := ts.tenants["a"].backend
		ts.mu.RUnlock()
		value := bytes.Repeat([]byte("v"), 60<<10)
		var err error
		for i := 0; i < 40 && err == nil; i++ {
			batch := &abi.Batch{Now: int64(i + 1)}
			batch.Put("m", strconv.Itoa(i), false, value, 0)
			err = b.Apply(context.Background(), batch)
		}
		if err == nil {
			t.Fatal("40 batches of 60 KiB were all stored under data_max_mb 1")
		}
		check(t, err, "at its quota (data_max_mb=1)")
	})
}

// TestTenants_refusalsNameTheTenantsSettings: a tenant's clients are
// told the setting to raise as the example has it
// (protocol.Options.SettingName), not the server's TOPGUN_* variables,
// which the example does not read.
func TestTenants_refusalsNameTheTenantsSettings(t *testing.T) {
	null := hosttest.BuildPlugin(t, "../plugins/null")
	post := func(t *testing.T, url, tok, origin string, body []byte) (int, string) {
		t.Helper()
		req, err := http.NewRequest("POST", url, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-msgpack")
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(out)
	}
	check := func(t *testing.T, what string, code, want int, msg, name string) {
		t.Helper()
		if code != want || !strings.Contains(msg, name) || strings.Contains(msg, "TOPGUN_") {
			t.Fatalf("%s: %d %q; want %d naming %s and no TOPGUN_ variable", what, code, msg, want, name)
		}
	}

	t.Run("body over the limit", func(t *testing.T) {
		_, srv := serve(t, &Config{Tenants: []TenantConfig{{Name: "a", Plugin: null}}})
		code, msg := post(t, srv.URL+"/t/a/sync", token(t, "a"), "", make([]byte, protocol.DefaultMaxMessageBytes+1))
		check(t, "POST /t/a/sync over the limit", code, http.StatusRequestEntityTooLarge, msg, "protocol.Options.MaxMessageBytes")
	})
	t.Run("origin refused", func(t *testing.T) {
		// Without authentication only pages of this machine are served.
		ts, err := Open(context.Background(), &Config{Tenants: []TenantConfig{{Name: "a", Plugin: null}}},
			Shared{CacheDir: cacheDir, Logger: hclog.NewNullLogger()})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		srv := httptest.NewServer(ts)
		t.Cleanup(srv.Close)
		t.Cleanup(func() {
			if err := ts.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		code, msg := post(t, srv.URL+"/t/a/sync", "", "https://elsewhere.example", nil)
		check(t, "POST /t/a/sync from a page elsewhere", code, http.StatusForbidden, msg, "protocol.Options.OriginPatterns")
	})
}

// A plugin sees everything under its data directory, so no tenant's
// data_dir may hold another's, nor a plugin file.
func TestParseConfig_dataDirsApart(t *testing.T) {
	for _, tc := range []struct{ json, want string }{
		{`{"tenants": [{"name": "a", "plugin": "p.wasm", "data_dir": "d"}, {"name": "b", "plugin": "p.wasm", "data_dir": "d/b"}]}`, `tenant 2 ("b"): data_dir "d/b" is inside tenant "a"'s`},
		{`{"tenants": [{"name": "a", "plugin": "p.wasm", "data_dir": "d/x/a"}, {"name": "b", "plugin": "p.wasm", "data_dir": "./d"}]}`, `tenant 1 ("a"): data_dir "d/x/a" is inside tenant "b"'s`},
		{`{"tenants": [{"name": "a", "plugin": "p.wasm", "data_dir": "d"}, {"name": "b", "plugin": "d/plugins/p.wasm"}]}`, `tenant 2 ("b"): plugin "d/plugins/p.wasm" is inside tenant "a"'s data_dir`},
	} {
		_, err := ParseConfig([]byte(tc.json))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.json, err, tc.want)
		}
	}
	// Names that only begin alike are apart.
	if _, err := ParseConfig([]byte(`{"tenants": [{"name": "a", "plugin": "p.wasm", "data_dir": "d"}, {"name": "b", "plugin": "d-b.wasm", "data_dir": "d-b"}]}`)); err != nil {
		t.Errorf("directories apart: %v", err)
	}
}

// A tenant's plugin listing endless made-up keys filled the process's
// heap with its index at start, every tenant with it. Its index is
// bounded (max_index_mb, 256 MiB by default): the tenant's start fails
// with an error naming it and the setting, and closes the tenants opened
// before it, which open again.
func TestOpen_endlessKeysRefused(t *testing.T) {
	null := hosttest.BuildPlugin(t, "../plugins/null")
	endless := hosttest.BuildPlugin(t, "../../host/testdata/plugins/endless")
	cfg, err := ParseConfig([]byte(`{"tenants": [
		{"name": "good", "plugin": "` + null + `"},
		{"name": "bad", "plugin": "` + endless + `", "max_index_mb": 4}]}`))
	if err != nil {
		t.Fatal(err)
	}
	ts, err := Open(context.Background(), cfg, Shared{CacheDir: cacheDir})
	if err == nil {
		ts.Close()
		t.Fatal("Open indexed a plugin's 300,000 made-up keys past max_index_mb 4")
	}
	t.Log(err)
	for _, want := range []string{"tenant bad:", "max_index_mb", "records"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if !errors.Is(err, abi.ErrResourceExhausted) {
		t.Errorf("error %v, want resource exhausted", err)
	}
	_, srv := serve(t, &Config{Tenants: cfg.Tenants[:1]})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := mustDial(t, ctx, srv, "good").Put(ctx, "notes", "k", "v"); err != nil {
		t.Fatalf("put to good: %v", err)
	}
}

// A tenant's clients cannot grow its index past max_index_mb either: a
// write of a new key past it is refused, naming the setting, while an
// update of a stored key passes.
func TestTenants_newKeysRefusedAtIndexLimit(t *testing.T) {
	null := hosttest.BuildPlugin(t, "../plugins/null")
	cfg, err := ParseConfig([]byte(`{"tenants": [{"name": "a", "plugin": "` + null + `", "max_index_mb": 1}]}`))
	if err != nil {
		t.Fatal(err)
	}
	_, srv := serve(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := mustDial(t, ctx, srv, "a")
	var refused error
	for i := 0; i < 20_000 && refused == nil; i++ {
		refused = c.Put(ctx, "m", fmt.Sprintf("key-%06d", i), i)
	}
	if refused == nil {
		t.Fatal("20,000 new keys stored at max_index_mb 1")
	}
	t.Log(refused)
	if !strings.Contains(refused.Error(), "max_index_mb") {
		t.Fatalf("refusal %q does not name max_index_mb", refused)
	}
	if err := c.Put(ctx, "m", "key-000000", "updated"); err != nil {
		t.Fatalf("update of a stored key at the limit: %v", err)
	}
}

// Each tenant's index is served under its tenant label, with its
// max_index_mb (named in the help texts) and the writes refused at it:
// a tenant's refusals move its own series only.
func TestTenants_indexMetrics(t *testing.T) {
	null := hosttest.BuildPlugin(t, "../plugins/null")
	cfg, err := ParseConfig([]byte(`{"tenants": [
		{"name": "a", "plugin": "` + null + `", "max_index_mb": 1},
		{"name": "b", "plugin": "` + null + `"},
		{"name": "c", "plugin": "` + null + `", "max_index_mb": -1}]}`))
	if err != nil {
		t.Fatal(err)
	}
	ts, srv := serve(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := mustDial(t, ctx, srv, "a")
	stored := 0
	for ; stored < 20_000; stored++ {
		if err := c.Put(ctx, "m", fmt.Sprintf("key-%06d", stored), stored); err != nil {
			if !errors.Is(err, client.ErrRejected) {
				t.Fatal(err)
			}
			break
		}
	}
	if stored == 20_000 {
		t.Fatal("20,000 new keys stored at max_index_mb 1")
	}
	if err := c.Put(ctx, "m", "new", 1); !errors.Is(err, client.ErrRejected) {
		t.Fatalf("put of a new key at the limit: %v, want it rejected", err)
	}
	m := scrapeMetrics(t, srv)
	ts.mu.RLock()
	indexA, indexB := ts.tenants["a"].store.IndexBytes(), ts.tenants["b"].store.IndexBytes()
	ts.mu.RUnlock()
	for key, want := range map[string]float64{
		`topgun_store_index_bytes{tenant="a"}`:          float64(indexA),
		`topgun_store_index_bytes{tenant="b"}`:          float64(indexB),
		`topgun_store_index_limit_bytes{tenant="a"}`:    1 << 20,
		`topgun_store_index_limit_bytes{tenant="b"}`:    DefaultMaxIndexMB << 20,
		`topgun_store_index_limit_bytes{tenant="c"}`:    0,
		`topgun_store_index_refusals_total{tenant="a"}`: 2,
		`topgun_store_index_refusals_total{tenant="b"}`: 0,
		`topgun_store_index_refusals_total{tenant="c"}`: 0,
	} {
		if got, ok := m[key]; !ok || got != want {
			t.Errorf("%s = %v (served: %v), want %v", key, got, ok, want)
		}
	}
	if indexA <= indexB || indexA > 1<<20 {
		t.Errorf("tenant a's index of %d bytes at its limit of 1 MiB, b's %d", indexA, indexB)
	}
	for name, f := range metricstest.Scrape(t, srv) {
		if strings.HasPrefix(name, "topgun_store_index_") && !strings.Contains(f.GetHelp(), "max_index_mb") {
			t.Errorf("%s's help %q does not name max_index_mb", name, f.GetHelp())
		}
	}
}

// Directories apart as written can still lead into one another through
// symbolic links: Open checks the real paths, once the data directories
// exist, as ParseConfig checks the written ones.
func TestOpen_dataDirsApartThroughLinks(t *testing.T) {
	null := hosttest.BuildPlugin(t, "../plugins/null")
	base := t.TempDir()
	a := filepath.Join(base, "a")
	if err := os.Mkdir(a, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(a, link); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(null)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(a, "p.wasm"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  []TenantConfig
		want string
	}{
		{"data_dir", []TenantConfig{{Name: "a", Plugin: null, DataDir: a}, {Name: "b", Plugin: null, DataDir: filepath.Join(link, "b")}},
			`data_dir "` + filepath.Join(link, "b") + `" is inside tenant "a"'s`},
		{"data_dir holding another's", []TenantConfig{{Name: "b", Plugin: null, DataDir: filepath.Join(link, "c")}, {Name: "a", Plugin: null, DataDir: a}},
			`data_dir "` + filepath.Join(link, "c") + `" is inside tenant "a"'s`},
		{"plugin", []TenantConfig{{Name: "a", Plugin: null, DataDir: a}, {Name: "b", Plugin: filepath.Join(link, "p.wasm")}},
			`plugin "` + filepath.Join(link, "p.wasm") + `" is inside tenant "a"'s data_dir`},
		// One directory under two names: a plugin declaring shared would
		// otherwise serve both tenants from it.
		{"same data_dir", []TenantConfig{{Name: "a", Plugin: null, DataDir: a}, {Name: "b", Plugin: null, DataDir: link}},
			`data_dir "` + link + `" is also tenant "a"'s`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &Config{Tenants: tc.cfg}
			ts, err := Open(context.Background(), cfg, Shared{CacheDir: cacheDir, Logger: hclog.NewNullLogger()})
			if err == nil {
				ts.Close()
				t.Fatalf("Open succeeded, want it refused: %s", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// -h prints the usage, as asked: the program then exits 0, not 1 with
// "flag: help requested" as if it had failed.
func TestExitStatus_help(t *testing.T) {
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"-h"}, func(string) string { return "" }, &stderr)
	if !strings.Contains(stderr.String(), "-config") {
		t.Errorf("-h printed no usage:\n%s", &stderr)
	}
	var out bytes.Buffer
	if code := exitStatus(err, &out); code != 0 || out.Len() != 0 {
		t.Errorf("after -h: exit status %d, printed %q; want 0 and nothing more", code, &out)
	}
	out.Reset()
	err = run(context.Background(), nil, func(string) string { return "" }, &stderr)
	if code := exitStatus(err, &out); code != 1 || !strings.Contains(out.String(), "tenants: -config is required") {
		t.Errorf("without -config: exit status %d, printed %q; want 1 and the error", code, &out)
	}
}
