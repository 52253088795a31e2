package main

import (
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/host"
	"github.com/topgun-go/topgun/plugins"
	"github.com/topgun-go/topgun/server/protocol"
)

// GET /metrics serves Prometheus metrics. The collector reads the counters
// the protocol server and the plugin host already keep when it is scraped,
// so the hot paths carry no metric updates of their own.

// pluginStats is implemented by the wasm host's backend.
type pluginStats interface{ Stats() host.Stats }

type collector struct {
	proto   *protocol.Server
	plugin  pluginStats // nil unless the backend is a wasm plugin
	backend string

	info, connections, opsApplied, opsResent, slowDropped, refused, queriesRefused, feedLags *prometheus.Desc

	pluginCalls, pluginFailures, pluginStarted, pluginDiscarded, pluginLive, pluginMemory *prometheus.Desc
	breakerState, breakerOpened, breakerRejected                                          *prometheus.Desc
}

func newCollector(proto *protocol.Server, store *plugins.Store) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("topgun_"+name, help, labels, nil)
	}
	c := &collector{
		proto: proto,
		// A plugin's name is checked at load; a label value that is not
		// valid UTF-8 would make the metrics library panic in Collect.
		backend:        strings.ToValidUTF8(store.Describe().Name, "\uFFFD"),
		info:           d("backend_info", "The storage backend in use (value 1).", "backend"),
		connections:    d("connections", "Open WebSocket connections."),
		opsApplied:     d("ops_applied_total", "Client operations handed to the record store."),
		opsResent:      d("ops_resent_total", "Re-sent client operations recognised and skipped."),
		slowDropped:    d("slow_clients_dropped_total", "Connections cut because their client did not read its messages (TOPGUN_MAX_OUTBOUND_BYTES)."),
		refused:        d("clients_refused_total", "WebSocket upgrades and POST /sync requests refused at TOPGUN_MAX_CONNECTIONS."),
		queriesRefused: d("queries_refused_total", "QUERY_SUBs refused at the live-query limits (TOPGUN_MAX_QUERY_RESULTS, the 1024 queries per connection and their memory, 8 × TOPGUN_MAX_MESSAGE_BYTES, and the cost of a filter, 10000)."),
		feedLags:       d("feed_lags_total", "Times the server, or one connection's matching of its live queries, fell behind the record store's changes and closed the connections concerned (1013) so that their clients sync again."),
	}
	if p, ok := store.Backend().(pluginStats); ok {
		c.plugin = p
		c.pluginCalls = d("plugin_calls_total", "Calls that reached a plugin instance.")
		c.pluginFailures = d("plugin_failures_total", "Calls that poisoned their plugin instance (a trap, a deadline, an exit, a malformed result), and fresh instances that could not start.")
		c.pluginStarted = d("plugin_instances_started_total", "Plugin instances started, the first included.")
		c.pluginDiscarded = d("plugin_instances_discarded_total", "Plugin instances discarded after a failure.")
		c.pluginLive = d("plugin_instances", "Plugin instances alive.")
		c.pluginMemory = d("plugin_memory_bytes", "Linear memory of the live plugin instances.")
		c.breakerState = d("plugin_breaker_state", "1 for the circuit breaker's current state: closed, open or half-open.", "state")
		c.breakerOpened = d("plugin_breaker_opened_total", "Openings of the plugin's circuit breaker.")
		c.breakerRejected = d("plugin_breaker_rejected_total", "Calls that failed fast because the plugin's circuit breaker was open.")
	}
	return c
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	s := c.proto.Stats()
	gauge(c.info, 1, c.backend)
	gauge(c.connections, float64(s.Connections))
	counter(c.opsApplied, float64(s.OpsApplied))
	counter(c.opsResent, float64(s.OpsResent))
	counter(c.slowDropped, float64(s.SlowClientsDropped))
	counter(c.refused, float64(s.ClientsRefused))
	counter(c.queriesRefused, float64(s.QueriesRefused))
	counter(c.feedLags, float64(s.FeedLags))
	if c.plugin == nil {
		return
	}
	p := c.plugin.Stats()
	counter(c.pluginCalls, float64(p.Calls))
	counter(c.pluginFailures, float64(p.Failures))
	counter(c.pluginStarted, float64(p.InstancesStarted))
	counter(c.pluginDiscarded, float64(p.InstancesDiscarded))
	gauge(c.pluginLive, float64(p.Live))
	gauge(c.pluginMemory, float64(p.MemoryBytes))
	for _, state := range []string{"closed", "open", "half-open"} {
		v := 0.0
		if p.Breaker.State == state {
			v = 1
		}
		gauge(c.breakerState, v, state)
	}
	counter(c.breakerOpened, float64(p.Breaker.Opened))
	counter(c.breakerRejected, float64(p.Breaker.Rejected))
}

// serverMetrics is the registry of GET /metrics. The record store's
// commits are observed as they happen (store.Options.OnCommit): a latency
// histogram needs every observation, which no counter read at scrape time
// gives.
type serverMetrics struct {
	reg            *prometheus.Registry
	commitSeconds  prometheus.Histogram
	commitRecords  prometheus.Counter
	commitFailures prometheus.Counter
}

func newServerMetrics() *serverMetrics {
	m := &serverMetrics{
		reg: prometheus.NewRegistry(),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "topgun_store_commit_seconds",
			Help:    "Time the storage backend took to make one group commit durable (or to fail it).",
			Buckets: prometheus.ExponentialBuckets(100e-6, 2.5, 16), // 100 us to 93 s, past the default commit timeout (30 s)
		}),
		commitRecords: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "topgun_store_committed_records_total",
			Help: "Records written to the storage backend by successful group commits.",
		}),
		commitFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "topgun_store_commit_failures_total",
			Help: "Group commits the storage backend failed (their writes were not acknowledged).",
		}),
	}
	m.reg.MustRegister(m.commitSeconds, m.commitRecords, m.commitFailures,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// observeCommit is the record store's OnCommit.
func (m *serverMetrics) observeCommit(records int, took time.Duration, err error) {
	m.commitSeconds.Observe(took.Seconds())
	if err != nil {
		// On shared storage (postgres) a commit that another server's
		// write overtook fails with CodeConflict and store.Apply merges
		// its ops again and commits them: their writes are not lost, so
		// it is no failure of the commit's writes.
		if abi.CodeOf(err) != abi.CodeConflict {
			m.commitFailures.Inc()
		}
		return
	}
	m.commitRecords.Add(float64(records))
}

// handler adds the protocol's and the backend's counters and serves the
// metrics with Go's runtime and the process's own (memory, descriptors,
// CPU). Call it once.
func (m *serverMetrics) handler(proto *protocol.Server, store *plugins.Store) http.Handler {
	m.reg.MustRegister(newCollector(proto, store))
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
