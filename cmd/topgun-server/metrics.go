package main

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/topgun-go/topgun/host"
	"github.com/topgun-go/topgun/plugins"
	"github.com/topgun-go/topgun/server/metrics"
	"github.com/topgun-go/topgun/server/protocol"
	recordstore "github.com/topgun-go/topgun/server/store"
)

// GET /metrics serves Prometheus metrics: the counters the protocol
// server, the record store's index and the plugin host keep, read when
// scraped, and the record store's commits, observed as they happen
// (server/metrics).

// pluginStats is implemented by the wasm host's backend.
type pluginStats interface{ Stats() host.Stats }

// newCollector reads proto's counters, st's, and the plugin's if store's
// backend is a wasm plugin.
func newCollector(proto *protocol.Server, st *recordstore.Store, store *plugins.Store) *metrics.Collector {
	name := store.Describe().Name
	plugin, _ := store.Backend().(pluginStats)
	return metrics.NewCollector(nil, func() []metrics.Sample {
		sst := st.Stats()
		s := metrics.Sample{Backend: name, Protocol: proto.Stats(), Store: &sst}
		if plugin != nil {
			p := plugin.Stats()
			s.Plugin = &p
		}
		return []metrics.Sample{s}
	}, nil)
}

// serverMetrics is the registry of GET /metrics. The record store's
// commits are observed as they happen (store.Options.OnCommit).
type serverMetrics struct {
	reg *prometheus.Registry
	// observeCommit is the record store's OnCommit.
	observeCommit func(records int, took time.Duration, err error)
}

func newServerMetrics() *serverMetrics {
	commits := metrics.NewCommits(nil)
	m := &serverMetrics{reg: prometheus.NewRegistry(), observeCommit: commits.Observer()}
	m.reg.MustRegister(commits,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// handler adds the protocol's, the record store's and the backend's
// counters and serves the metrics with Go's runtime and the process's own
// (memory, descriptors, CPU). Call it once.
func (m *serverMetrics) handler(proto *protocol.Server, st *recordstore.Store, store *plugins.Store) http.Handler {
	m.reg.MustRegister(newCollector(proto, st, store))
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
