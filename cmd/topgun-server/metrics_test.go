package main

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/topgun-go/topgun/client"
	"github.com/topgun-go/topgun/host"
	"github.com/topgun-go/topgun/internal/metricstest"
	"github.com/topgun-go/topgun/plugins"
	"github.com/topgun-go/topgun/server/hlc"
	"github.com/topgun-go/topgun/server/protocol"
	recordstore "github.com/topgun-go/topgun/server/store"
)

// metricsServer serves the binary's mux (/metrics, the protocol) on store.
func metricsServer(t *testing.T, store *plugins.Store) *httptest.Server {
	t.Helper()
	srv, _ := metricsServerIndex(t, store, 0)
	return srv
}

// metricsServerIndex is metricsServer with the record store's
// MaxIndexBytes, and returns the record store too.
func metricsServerIndex(t *testing.T, store *plugins.Store, maxIndexBytes int64) (*httptest.Server, *recordstore.Store) {
	t.Helper()
	clock, err := hlc.New("metrics-test", nil)
	if err != nil {
		t.Fatal(err)
	}
	metrics := newServerMetrics()
	st, err := recordstore.Open(context.Background(), store.Backend(), &recordstore.Options{
		Clock: clock, Logger: testLogger(t), OnCommit: metrics.observeCommit, MaxIndexBytes: maxIndexBytes,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	proto, err := protocol.New(st, &protocol.Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proto.Close() })
	mux := newMux(store, nil, testLogger(t), nil)
	mux.Handle("GET /metrics", metrics.handler(proto, st, store))
	proto.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, st
}

// metricValue returns the value of the metric of fams named name whose
// labels include labels (name=value pairs), and whether there is one.
func metricValue(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		}
	}
	return 0, false
}

func mustMetric(t *testing.T, fams map[string]*dto.MetricFamily, name string, want float64, labels ...string) {
	t.Helper()
	v, ok := metricValue(fams, name, labels...)
	if !ok {
		t.Fatalf("metric %s%v missing", name, labels)
	}
	if v != want {
		t.Fatalf("%s%v = %v, want %v", name, labels, v, want)
	}
}

// nullMetricsServer is metricsServer on a fresh null backend.
func nullMetricsServer(t *testing.T) *httptest.Server {
	t.Helper()
	store, err := plugins.Open(context.Background(), "null", &plugins.Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return metricsServer(t, store)
}

func TestMetrics_protocolAndRuntime(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := nullMetricsServer(t)
	fams := metricstest.Scrape(t, srv)
	mustMetric(t, fams, "topgun_backend_info", 1, "backend", "null")
	mustMetric(t, fams, "topgun_connections", 0)
	mustMetric(t, fams, "topgun_ops_applied_total", 0)
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "topgun_slow_clients_dropped_total", "topgun_clients_refused_total", "topgun_queries_refused_total", "topgun_feed_lags_total"} {
		if _, ok := metricValue(fams, name); !ok {
			t.Errorf("metric %s missing", name)
		}
	}
	if _, ok := metricValue(fams, "topgun_plugin_calls_total"); ok {
		t.Error("plugin metrics on a built-in backend")
	}

	c := dialMetricsServer(ctx, t, srv)
	if _, err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	// Connecting stores the client's device before PONG; count from here.
	before, _ := metricValue(metricstest.Scrape(t, srv), "topgun_store_committed_records_total")
	if err := c.Batch(ctx, client.Op{Map: "m", Key: "a", Value: "1"}, client.Op{Map: "m", Key: "b", Value: "2"}); err != nil {
		t.Fatal(err)
	}
	fams = metricstest.Scrape(t, srv)
	mustMetric(t, fams, "topgun_connections", 1)
	mustMetric(t, fams, "topgun_ops_applied_total", 2)
	mustMetric(t, fams, "topgun_store_committed_records_total", before+2)
	mustMetric(t, fams, "topgun_store_commit_failures_total", 0)
	h := fams["topgun_store_commit_seconds"]
	if h == nil || len(h.GetMetric()) != 1 || h.GetMetric()[0].GetHistogram().GetSampleCount() < 1 {
		t.Fatalf("topgun_store_commit_seconds: %v", h)
	}
}

// The record store's index is served as the limit counts it, with its
// limit (TOPGUN_MAX_INDEX_MB, named in the help texts) and the writes
// refused at it, so operators see how close the server is.
func TestMetrics_index(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	t.Run("no limit", func(t *testing.T) {
		t.Parallel()
		fams := metricstest.Scrape(t, nullMetricsServer(t))
		mustMetric(t, fams, "topgun_store_index_limit_bytes", 0)
		mustMetric(t, fams, "topgun_store_index_refusals_total", 0)
		if _, ok := metricValue(fams, "topgun_store_index_bytes"); !ok {
			t.Error("metric topgun_store_index_bytes missing")
		}
	})
	const limit = 64 << 10
	store, err := plugins.Open(ctx, "null", &plugins.Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	srv, st := metricsServerIndex(t, store, limit)
	fams := metricstest.Scrape(t, srv)
	mustMetric(t, fams, "topgun_store_index_limit_bytes", limit)
	mustMetric(t, fams, "topgun_store_index_bytes", float64(st.IndexBytes()))
	mustMetric(t, fams, "topgun_store_index_refusals_total", 0)
	for _, name := range []string{"topgun_store_index_bytes", "topgun_store_index_limit_bytes", "topgun_store_index_refusals_total"} {
		if f := fams[name]; !strings.Contains(f.GetHelp(), "TOPGUN_MAX_INDEX_MB") {
			t.Errorf("%s's help %q does not name TOPGUN_MAX_INDEX_MB", name, f.GetHelp())
		}
	}

	c := dialMetricsServer(ctx, t, srv)
	stored := 0
	for ; stored < 10_000; stored++ {
		if err := c.Put(ctx, "m", fmt.Sprintf("key-%05d", stored), stored); err != nil {
			if !errors.Is(err, client.ErrRejected) {
				t.Fatal(err)
			}
			break
		}
	}
	if stored == 10_000 {
		t.Fatalf("10,000 new keys stored at an index limit of %d bytes", limit)
	}
	// Two more new keys are refused; an update of a stored key is not.
	for _, k := range []string{"new-1", "new-2"} {
		if err := c.Put(ctx, "m", k, 1); !errors.Is(err, client.ErrRejected) {
			t.Fatalf("put of a new key at the limit: %v, want it rejected", err)
		}
	}
	if err := c.Put(ctx, "m", "key-00000", "updated"); err != nil {
		t.Fatalf("update of a stored key at the limit: %v", err)
	}
	fams = metricstest.Scrape(t, srv)
	mustMetric(t, fams, "topgun_store_index_refusals_total", 3)
	mustMetric(t, fams, "topgun_store_index_limit_bytes", limit)
	n := st.IndexBytes()
	mustMetric(t, fams, "topgun_store_index_bytes", float64(n))
	if n <= limit*7/8 || n > limit {
		t.Errorf("index of %d bytes with %d keys stored and new ones refused at a limit of %d", n, stored, limit)
	}
}

// A plugin backend adds the host's counters: a trap shows as a failure, a
// discarded instance and a started one.
func TestMetrics_plugin(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// A plugin whose get of map "evil" traps (see host/testdata/wat).
	store, err := plugins.Open(ctx, "../../host/testdata/wat/trap.wasm", &plugins.Options{Plugin: host.DefaultOptions(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	srv := metricsServer(t, store)
	fams := metricstest.Scrape(t, srv)
	mustMetric(t, fams, "topgun_plugin_failures_total", 0)
	mustMetric(t, fams, "topgun_plugin_instances", 1)
	mustMetric(t, fams, "topgun_plugin_breaker_state", 1, "state", "closed")
	calls, _ := metricValue(fams, "topgun_plugin_calls_total")
	if _, err := store.Backend().Get(ctx, "evil", false, []string{"k"}); err == nil {
		t.Fatal("Get(evil) succeeded, want the trap")
	}
	fams = metricstest.Scrape(t, srv)
	mustMetric(t, fams, "topgun_plugin_failures_total", 1)
	mustMetric(t, fams, "topgun_plugin_instances_discarded_total", 1)
	mustMetric(t, fams, "topgun_plugin_calls_total", calls+1)
	if v, _ := metricValue(fams, "topgun_plugin_memory_bytes"); v < 0 {
		t.Fatalf("plugin memory %v", v)
	}
}

// TestREADME_namesEveryMetric keeps README's description of GET /metrics
// true: every topgun_ metric it names is served, and every topgun_ metric
// served is named there (the plugin's under topgun_plugin_*), so an
// operator building dashboards and alerts from it finds what it lists.
func TestREADME_namesEveryMetric(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatalf("read README.md: %v", err)
	}
	text := string(readme)
	start := strings.Index(text, "`GET /metrics` serves")
	end := strings.Index(text, "Go's runtime and process metrics")
	if start < 0 || end < start {
		t.Fatal("README.md has no paragraph on GET /metrics (from \"`GET /metrics` serves\" to \"Go's runtime and process metrics\")")
	}
	para := text[start:end]
	named := map[string]bool{}
	for _, m := range regexp.MustCompile("`(topgun_[a-z_]+)`").FindAllStringSubmatch(para, -1) {
		named[m[1]] = true
	}
	if !strings.Contains(para, "`topgun_plugin_*`") {
		t.Error("README.md does not name the plugin metrics (`topgun_plugin_*`)")
	}
	// A plugin backend, so that the plugin's metrics are served too.
	store, err := plugins.Open(context.Background(), "../../host/testdata/wat/trap.wasm", &plugins.Options{Plugin: host.DefaultOptions(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	fams := metricstest.Scrape(t, metricsServer(t, store))
	for name := range named {
		if fams[name] == nil {
			t.Errorf("README.md names the metric %s, which /metrics does not serve", name)
		}
	}
	plugin := 0
	for name := range fams {
		switch {
		case strings.HasPrefix(name, "topgun_plugin_"):
			plugin++
		case strings.HasPrefix(name, "topgun_") && !named[name]:
			t.Errorf("/metrics serves %s, which README.md does not name", name)
		}
	}
	if plugin == 0 {
		t.Error("/metrics serves no topgun_plugin_* metric on a plugin backend")
	}
}

// dialMetricsServer connects a client, without reconnecting, to the
// server srv serves.
func dialMetricsServer(ctx context.Context, t *testing.T, srv *httptest.Server) *client.Client {
	t.Helper()
	opts := client.DefaultOptions()
	opts.Logger = testLogger(t)
	opts.Reconnect = false
	c, err := client.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
