package main

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/host"
	"github.com/topgun-go/topgun/plugins"
	"github.com/topgun-go/topgun/server/metrics"
	"github.com/topgun-go/topgun/server/protocol"
)

// GET /metrics serves Prometheus metrics: the counters the protocol
// server and the plugin host keep, read when scraped (server/metrics), and
// the record store's commits.

// pluginStats is implemented by the wasm host's backend.
type pluginStats interface{ Stats() host.Stats }

// newCollector reads proto's counters, and the plugin's if store's backend
// is a wasm plugin.
func newCollector(proto *protocol.Server, store *plugins.Store) *metrics.Collector {
	name := store.Describe().Name
	plugin, _ := store.Backend().(pluginStats)
	return metrics.NewCollector(nil, func() []metrics.Sample {
		s := metrics.Sample{Backend: name, Protocol: proto.Stats()}
		if plugin != nil {
			p := plugin.Stats()
			s.Plugin = &p
		}
		return []metrics.Sample{s}
	})
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
