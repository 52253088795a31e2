package main

import (
	"context"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"

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
	clock, err := hlc.New("metrics-test", nil)
	if err != nil {
		t.Fatal(err)
	}
	metrics := newServerMetrics()
	st, err := recordstore.Open(context.Background(), store.Backend(), &recordstore.Options{Clock: clock, Logger: testLogger(t), OnCommit: metrics.observeCommit})
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
	mux.Handle("GET /metrics", metrics.handler(proto, store))
	proto.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
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

	opts := client.DefaultOptions()
	opts.Logger = testLogger(t)
	opts.Reconnect = false
	c, err := client.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
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
