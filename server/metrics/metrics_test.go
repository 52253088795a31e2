package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/host"
	"github.com/topgun-go/topgun/server/protocol"
	"github.com/topgun-go/topgun/server/store"
)

// gather registers c alone and returns its families by name.
func gather(t *testing.T, c prometheus.Collector) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		out[f.GetName()] = f
	}
	return out
}

// series returns the metric of f whose tenant label is tenant.
func series(t *testing.T, f *dto.MetricFamily, tenant string) *dto.Metric {
	t.Helper()
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "tenant" && l.GetValue() == tenant {
				return m
			}
		}
	}
	t.Fatalf("%s has no series of tenant %q", f.GetName(), tenant)
	return nil
}

// topgun_store_commit_failures_total counts commits whose writes were not
// acknowledged. A commit on shared PostgreSQL that another server's write
// overtook fails with a conflict, and the record store merges its ops
// again and commits them (acknowledged): that is not such a failure.
func TestCommits_conflictRetriedIsNotACommitFailure(t *testing.T) {
	t.Parallel()
	c := NewCommits([]string{"tenant"})
	observe := c.Observer("a")
	observe(3, time.Millisecond, abi.Errorf(abi.CodeConflict, "postgres: apply: record %q of map %q changed since it was read (another server wrote it); merge again", "k", "m"))
	observe(3, time.Millisecond, nil)
	observe(2, time.Millisecond, abi.Errorf(abi.CodeInternal, "disk full"))
	fams := gather(t, c)
	if got := series(t, fams["topgun_store_commit_failures_total"], "a").GetCounter().GetValue(); got != 1 {
		t.Errorf("topgun_store_commit_failures_total = %v after a retried conflict and one real failure, want 1", got)
	}
	if got := series(t, fams["topgun_store_committed_records_total"], "a").GetCounter().GetValue(); got != 3 {
		t.Errorf("topgun_store_committed_records_total = %v, want 3", got)
	}
}

// topgun_store_commit_seconds must tell slow commits apart up to the
// commit timeout: with buckets ending at 2.4 s, a commit of 3 s, one of
// 29 s and one cut off at the default TOPGUN_COMMIT_TIMEOUT (30 s) all
// fell into +Inf alone, though the help text promised about 2 minutes.
func TestCommits_histogramReachesCommitTimeout(t *testing.T) {
	t.Parallel()
	c := NewCommits(nil)
	observe := c.Observer()
	observe(1, 3*time.Second, nil)
	observe(1, 29*time.Second, nil)
	buckets := gather(t, c)["topgun_store_commit_seconds"].GetMetric()[0].GetHistogram().GetBucket()
	top := buckets[len(buckets)-1].GetUpperBound()
	if top < (30 * time.Second).Seconds() {
		t.Errorf("largest finite bucket of topgun_store_commit_seconds is %vs, under the default commit timeout of 30s", top)
	}
	// The 3 s and the 29 s commits land in different finite buckets.
	var le3, le29 uint64
	for _, b := range buckets {
		if b.GetUpperBound() >= 3 && le3 == 0 {
			le3 = b.GetCumulativeCount()
		}
		if b.GetUpperBound() >= 29 && le29 == 0 {
			le29 = b.GetCumulativeCount()
		}
	}
	if le3 != 1 || le29 != 2 {
		t.Errorf("cumulative counts at 3 s and 29 s = %d, %d; want 1, 2", le3, le29)
	}
}

// A store's series are served from its Observer on, at zero, and a
// deleted store's not at all, even if its Observer is called after.
func TestCommits_Delete(t *testing.T) {
	t.Parallel()
	c := NewCommits([]string{"tenant"})
	observeA := c.Observer("a")
	c.Observer("b")
	observeA(2, time.Millisecond, nil)
	fams := gather(t, c)
	if got := series(t, fams["topgun_store_committed_records_total"], "b").GetCounter().GetValue(); got != 0 {
		t.Errorf("tenant b's topgun_store_committed_records_total = %v before any commit, want 0", got)
	}
	c.Delete("a")
	observeA(2, time.Millisecond, nil)
	for name, f := range gather(t, c) {
		if len(f.GetMetric()) != 1 {
			t.Errorf("%s has %d series after tenant a was deleted, want b's alone", name, len(f.GetMetric()))
		}
	}
}

// The help texts name a setting as SettingName gives it, and keep the
// variable's name without SettingName or when it returns "".
func TestNewCollector_SettingName(t *testing.T) {
	t.Parallel()
	help := func(opts *Options) string {
		ch := make(chan *prometheus.Desc, 64)
		NewCollector(nil, func() []Sample { return nil }, opts).Describe(ch)
		close(ch)
		var b strings.Builder
		for d := range ch {
			b.WriteString(d.String() + "\n")
		}
		return b.String()
	}
	plain := help(nil)
	// Four protocol limits, and TOPGUN_MAX_INDEX_MB in the three index
	// metrics.
	if n := strings.Count(plain, "TOPGUN_"); n != 7 {
		t.Fatalf("%d TOPGUN_ names in the help texts, want 7:\n%s", n, plain)
	}
	if got := help(&Options{SettingName: func(string) string { return "" }}); got != plain {
		t.Errorf("SettingName returning \"\":\n%s\nwant\n%s", got, plain)
	}
	named := help(&Options{SettingName: func(env string) string { return "«" + strings.ToLower(env) + "»" }})
	if strings.Contains(named, "TOPGUN_") || strings.Count(named, "«topgun_max_") != 7 {
		t.Errorf("with SettingName:\n%s", named)
	}
}

// A sample's index metrics are served from its Store, and none for a
// sample without one.
func TestCollector_storeIndex(t *testing.T) {
	t.Parallel()
	c := NewCollector([]string{"tenant"}, func() []Sample {
		return []Sample{
			{LabelValues: []string{"a"}, Backend: "null", Store: &store.Stats{IndexBytes: 1234, MaxIndexBytes: 1 << 20, IndexRefused: 5}},
			{LabelValues: []string{"b"}, Backend: "null"},
		}
	}, nil)
	fams := gather(t, c)
	for name, want := range map[string]float64{
		"topgun_store_index_bytes":          1234,
		"topgun_store_index_limit_bytes":    1 << 20,
		"topgun_store_index_refusals_total": 5,
	} {
		f := fams[name]
		if f == nil || len(f.GetMetric()) != 1 {
			t.Fatalf("%s: %v, want tenant a's series alone", name, f)
		}
		m := series(t, f, "a")
		if got := m.GetGauge().GetValue() + m.GetCounter().GetValue(); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if fams["topgun_store_index_refusals_total"].GetType() != dto.MetricType_COUNTER || fams["topgun_store_index_bytes"].GetType() != dto.MetricType_GAUGE {
		t.Error("topgun_store_index_refusals_total must be a counter and topgun_store_index_bytes a gauge")
	}
}

// Every counter a Sample carries is served under its own metric: each
// field is given a value no other has, so a metric reading the wrong
// field (or none) shows.
func TestCollector_everyFieldItsMetric(t *testing.T) {
	t.Parallel()
	c := NewCollector(nil, func() []Sample {
		return []Sample{{
			Backend: "plug",
			Protocol: protocol.Stats{Connections: 1, OpsApplied: 2, OpsResent: 3, SlowClientsDropped: 4,
				ClientsRefused: 5, QueriesRefused: 6, FeedLags: 7},
			Store: &store.Stats{IndexBytes: 8, MaxIndexBytes: 9, IndexRefused: 10},
			Plugin: &host.Stats{Calls: 11, Failures: 12, InstancesStarted: 13, InstancesDiscarded: 14, Live: 15, MemoryBytes: 16,
				Breaker: host.BreakerStats{State: "half-open", Opened: 17, Rejected: 18}},
		}}
	}, nil)
	fams := gather(t, c)
	want := map[string]float64{
		"topgun_backend_info":                     1,
		"topgun_connections":                      1,
		"topgun_ops_applied_total":                2,
		"topgun_ops_resent_total":                 3,
		"topgun_slow_clients_dropped_total":       4,
		"topgun_clients_refused_total":            5,
		"topgun_queries_refused_total":            6,
		"topgun_feed_lags_total":                  7,
		"topgun_store_index_bytes":                8,
		"topgun_store_index_limit_bytes":          9,
		"topgun_store_index_refusals_total":       10,
		"topgun_plugin_calls_total":               11,
		"topgun_plugin_failures_total":            12,
		"topgun_plugin_instances_started_total":   13,
		"topgun_plugin_instances_discarded_total": 14,
		"topgun_plugin_instances":                 15,
		"topgun_plugin_memory_bytes":              16,
		"topgun_plugin_breaker_opened_total":      17,
		"topgun_plugin_breaker_rejected_total":    18,
	}
	for name, v := range want {
		f := fams[name]
		if f == nil || len(f.GetMetric()) != 1 {
			t.Errorf("%s: %v, want one series", name, f)
			continue
		}
		m := f.GetMetric()[0]
		if got := m.GetGauge().GetValue() + m.GetCounter().GetValue(); got != v {
			t.Errorf("%s = %v, want %v", name, got, v)
		}
		if strings.HasSuffix(name, "_total") != (f.GetType() == dto.MetricType_COUNTER) {
			t.Errorf("%s is a %v", name, f.GetType())
		}
	}
	if l := fams["topgun_backend_info"].GetMetric()[0].GetLabel(); len(l) != 1 || l[0].GetValue() != "plug" {
		t.Errorf("topgun_backend_info labels %v, want backend=plug", l)
	}
	states := map[string]float64{}
	for _, m := range fams["topgun_plugin_breaker_state"].GetMetric() {
		states[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
	}
	if len(states) != 3 || states["half-open"] != 1 || states["open"] != 0 || states["closed"] != 0 {
		t.Errorf("topgun_plugin_breaker_state %v, want half-open alone at 1", states)
	}
	for name := range fams {
		if _, ok := want[name]; !ok && name != "topgun_plugin_breaker_state" {
			t.Errorf("%s is served but not checked here", name)
		}
	}
}
