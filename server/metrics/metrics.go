// Package metrics serves the counters a protocol server, a record store's
// index and a wasm plugin's host already keep as Prometheus metrics, read
// when scraped, so the hot paths carry no metric updates of their own
// (Collector), and a record store's group commits, observed as they
// happen (Commits): a latency histogram needs every observation, which no
// counter read at scrape time gives. topgun-server serves one server's; a
// process hosting many (examples/tenants) serves them all from one
// Collector and one Commits, each under its own label values (such as
// tenant="acme").
package metrics

import (
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/host"
	"github.com/topgun-go/topgun/internal/setting"
	"github.com/topgun-go/topgun/server/protocol"
	"github.com/topgun-go/topgun/server/store"
)

// Options are a Collector's; nil means the defaults.
type Options struct {
	// SettingName names a setting in the help texts (such as "refused at
	// TOPGUN_MAX_CONNECTIONS"): it is given topgun-server's environment
	// variable for the setting and returns what the operators of a
	// program that configures its protocol servers another way set
	// instead, as host.Options.SettingName does for the host. nil, or a
	// result of "", keeps the variable's name. NewCollector calls it.
	SettingName func(env string) string
}

var (
	_ prometheus.Collector = (*Collector)(nil)
	_ prometheus.Collector = (*Commits)(nil)
)

// Sample is one protocol server's counters and its backend's.
type Sample struct {
	// LabelValues are the values of the Collector's labels, in order.
	LabelValues []string
	// Backend is the storage backend's name (topgun_backend_info).
	Backend string
	// Protocol is the protocol server's Stats.
	Protocol protocol.Stats
	// Plugin is the wasm host's Stats, nil unless the backend is a wasm
	// plugin (then no topgun_plugin_* metric is served for it).
	Plugin *host.Stats
	// Store is the record store's Stats, nil to serve no
	// topgun_store_index_* metric for the sample.
	Store *store.Stats
}

// Collector is a prometheus.Collector of the Samples its read function
// returns at each scrape.
type Collector struct {
	read func() []Sample

	info, connections, opsApplied, opsResent, slowDropped, refused, queriesRefused, feedLags *prometheus.Desc

	pluginCalls, pluginFailures, pluginStarted, pluginDiscarded, pluginLive, pluginMemory *prometheus.Desc
	breakerState, breakerOpened, breakerRejected                                          *prometheus.Desc

	indexBytes, indexLimit, indexRefused *prometheus.Desc
}

// NewCollector returns a Collector of the metrics read returns, each
// with the labels named (none for a process serving one store).
func NewCollector(labels []string, read func() []Sample, opts *Options) *Collector {
	d := func(name, help string, more ...string) *prometheus.Desc {
		return prometheus.NewDesc("topgun_"+name, help, append(append([]string(nil), labels...), more...), nil)
	}
	set := func(env string) string {
		if opts == nil {
			return env
		}
		return setting.Name(opts.SettingName, env)
	}
	return &Collector{
		read:            read,
		info:            d("backend_info", "The storage backend in use (value 1).", "backend"),
		connections:     d("connections", "Open WebSocket connections."),
		opsApplied:      d("ops_applied_total", "Client operations handed to the record store."),
		opsResent:       d("ops_resent_total", "Re-sent client operations recognised and skipped."),
		slowDropped:     d("slow_clients_dropped_total", "Connections cut because their client did not read its messages ("+set("TOPGUN_MAX_OUTBOUND_BYTES")+")."),
		refused:         d("clients_refused_total", "WebSocket connections and POST /sync requests refused at "+set("TOPGUN_MAX_CONNECTIONS")+"."),
		queriesRefused:  d("queries_refused_total", "QUERY_SUBs refused at the live-query limits ("+set("TOPGUN_MAX_QUERY_RESULTS")+", the 1024 queries per connection and their memory, 8 × "+set("TOPGUN_MAX_MESSAGE_BYTES")+", and the cost of a filter, 10000)."),
		feedLags:        d("feed_lags_total", "Times the server, or one connection's matching of its live queries, fell behind the record store's changes and closed the connections concerned (1013) so that their clients sync again."),
		pluginCalls:     d("plugin_calls_total", "Calls that reached a plugin instance."),
		pluginFailures:  d("plugin_failures_total", "Calls that poisoned their plugin instance (a trap, a deadline, an exit, a malformed result), and fresh instances that could not start."),
		pluginStarted:   d("plugin_instances_started_total", "Plugin instances started, the first included."),
		pluginDiscarded: d("plugin_instances_discarded_total", "Plugin instances discarded after a failure."),
		pluginLive:      d("plugin_instances", "Plugin instances alive."),
		pluginMemory:    d("plugin_memory_bytes", "Linear memory of the live plugin instances."),
		breakerState:    d("plugin_breaker_state", "1 for the circuit breaker's current state: closed, open or half-open.", "state"),
		breakerOpened:   d("plugin_breaker_opened_total", "Openings of the plugin's circuit breaker."),
		breakerRejected: d("plugin_breaker_rejected_total", "Calls that failed fast because the plugin's circuit breaker was open."),
		indexBytes:      d("store_index_bytes", "Size of the record store's in-memory index of keys, as "+set("TOPGUN_MAX_INDEX_MB")+" bounds it (about the heap bytes it holds)."),
		indexLimit:      d("store_index_limit_bytes", "The bound on topgun_store_index_bytes ("+set("TOPGUN_MAX_INDEX_MB")+"; 0: no limit)."),
		indexRefused:    d("store_index_refusals_total", "Writes (client operations) refused because they would take the in-memory index past "+set("TOPGUN_MAX_INDEX_MB")+"."),
	}
}

// Describe sends every metric's description, the plugin's included:
// a sample with a plugin may come after the registration.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.info, c.connections, c.opsApplied, c.opsResent, c.slowDropped, c.refused, c.queriesRefused, c.feedLags,
		c.pluginCalls, c.pluginFailures, c.pluginStarted, c.pluginDiscarded, c.pluginLive, c.pluginMemory,
		c.breakerState, c.breakerOpened, c.breakerRejected,
		c.indexBytes, c.indexLimit, c.indexRefused,
	} {
		ch <- d
	}
}

// Collect sends the metrics of every sample read returns.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for _, smp := range c.read() {
		lv := smp.LabelValues
		with := func(more ...string) []string { return append(lv[:len(lv):len(lv)], more...) }
		gauge := func(d *prometheus.Desc, v float64, more ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, with(more...)...)
		}
		counter := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, lv...)
		}
		// A plugin's name is checked at load; a label value that is not
		// valid UTF-8 would make the metrics library panic in Collect.
		gauge(c.info, 1, strings.ToValidUTF8(smp.Backend, "\uFFFD"))
		s := smp.Protocol
		gauge(c.connections, float64(s.Connections))
		counter(c.opsApplied, float64(s.OpsApplied))
		counter(c.opsResent, float64(s.OpsResent))
		counter(c.slowDropped, float64(s.SlowClientsDropped))
		counter(c.refused, float64(s.ClientsRefused))
		counter(c.queriesRefused, float64(s.QueriesRefused))
		counter(c.feedLags, float64(s.FeedLags))
		if st := smp.Store; st != nil {
			gauge(c.indexBytes, float64(st.IndexBytes))
			gauge(c.indexLimit, float64(st.MaxIndexBytes))
			counter(c.indexRefused, float64(st.IndexRefused))
		}
		p := smp.Plugin
		if p == nil {
			continue
		}
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
}

// Commits is a prometheus.Collector of record stores' group commits, each
// store's under its own label values.
type Commits struct {
	seconds           *prometheus.HistogramVec
	records, failures *prometheus.CounterVec
}

// NewCommits returns a Commits whose metrics have the labels named (none
// for a process serving one store).
func NewCommits(labels []string) *Commits {
	return &Commits{
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "topgun_store_commit_seconds",
			Help:    "Time the storage backend took to make one group commit durable (or to fail it).",
			Buckets: prometheus.ExponentialBuckets(100e-6, 2.5, 16), // 100 us to 93 s, past the default commit timeout (30 s)
		}, labels),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "topgun_store_committed_records_total",
			Help: "Records written to the storage backend by successful group commits.",
		}, labels),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "topgun_store_commit_failures_total",
			Help: "Group commits the storage backend failed (their writes were not acknowledged).",
		}, labels),
	}
}

// Observer returns the store.Options.OnCommit of the record store whose
// metrics have labelValues (in the order of the labels). Its series are
// served from now on, at zero until its first commit.
func (c *Commits) Observer(labelValues ...string) func(records int, took time.Duration, err error) {
	seconds := c.seconds.WithLabelValues(labelValues...)
	records := c.records.WithLabelValues(labelValues...)
	failures := c.failures.WithLabelValues(labelValues...)
	return func(n int, took time.Duration, err error) {
		seconds.Observe(took.Seconds())
		if err != nil {
			// On shared storage (postgres) a commit that another server's
			// write overtook fails with CodeConflict and store.Apply merges
			// its ops again and commits them: their writes are not lost, so
			// it is no failure of the commit's writes.
			if abi.CodeOf(err) != abi.CodeConflict {
				failures.Inc()
			}
			return
		}
		records.Add(float64(n))
	}
}

// Delete stops serving the series of labelValues, once their record
// store is closed for good. Its Observer, if still called, changes no
// series served.
func (c *Commits) Delete(labelValues ...string) {
	c.seconds.DeleteLabelValues(labelValues...)
	c.records.DeleteLabelValues(labelValues...)
	c.failures.DeleteLabelValues(labelValues...)
}

// Describe sends the descriptions of the commit metrics.
func (c *Commits) Describe(ch chan<- *prometheus.Desc) {
	c.seconds.Describe(ch)
	c.records.Describe(ch)
	c.failures.Describe(ch)
}

// Collect sends the series of every record store observed and not deleted.
func (c *Commits) Collect(ch chan<- prometheus.Metric) {
	c.seconds.Collect(ch)
	c.records.Collect(ch)
	c.failures.Collect(ch)
}
