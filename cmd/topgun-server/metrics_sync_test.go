package main

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/server/wire"
)

// topgun_ops_applied_total counts the client operations handed to the
// record store, whichever endpoint they came through: the writes of a
// POST /sync count as those of a WebSocket do.
func TestMetrics_opsAppliedCountsPostSync(t *testing.T) {
	t.Parallel()
	srv := nullMetricsServer(t)
	now := wire.Timestamp{Millis: uint64(time.Now().UnixMilli()), NodeID: "sync-client"}
	put := func(id, key string) wire.ClientOp {
		return wire.ClientOp{ID: id, MapName: "m", Key: key, OpType: "PUT", Record: &wire.LWWRecord{Value: "v", Timestamp: now}}
	}
	body, err := wire.EncodeHTTPSyncRequest(&wire.HTTPSyncRequest{ClientID: "c", ClientHLC: now, Operations: []wire.ClientOp{put("1", "a"), put("2", "b")}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Post(srv.URL+"/sync", "application/msgpack", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /sync = %d", resp.StatusCode)
	}
	fams := scrape(t, srv)
	mustMetric(t, fams, "topgun_store_committed_records_total", 2)
	mustMetric(t, fams, "topgun_ops_applied_total", 2)
	mustMetric(t, fams, "topgun_connections", 0)
}

// topgun_store_commit_failures_total counts commits whose writes were not
// acknowledged. A commit on shared PostgreSQL that another server's write
// overtook fails with a conflict, and the record store merges its ops
// again and commits them (acknowledged): that is not such a failure.
func TestMetrics_conflictRetriedIsNotACommitFailure(t *testing.T) {
	t.Parallel()
	m := newServerMetrics()
	m.observeCommit(3, time.Millisecond, abi.Errorf(abi.CodeConflict, "postgres: apply: record %q of map %q changed since it was read (another server wrote it); merge again", "k", "m"))
	m.observeCommit(3, time.Millisecond, nil)
	m.observeCommit(2, time.Millisecond, abi.Errorf(abi.CodeInternal, "disk full"))
	value := func(c prometheus.Counter) float64 {
		var d dto.Metric
		if err := c.Write(&d); err != nil {
			t.Fatal(err)
		}
		return d.GetCounter().GetValue()
	}
	if got := value(m.commitFailures); got != 1 {
		t.Errorf("topgun_store_commit_failures_total = %v after a retried conflict and one real failure, want 1", got)
	}
	if got := value(m.commitRecords); got != 3 {
		t.Errorf("topgun_store_committed_records_total = %v, want 3", got)
	}
}

// topgun_store_commit_seconds must tell slow commits apart up to the
// commit timeout: with buckets ending at 2.4 s, a commit of 3 s, one of
// 29 s and one cut off at the default TOPGUN_COMMIT_TIMEOUT (30 s) all
// fell into +Inf alone, though the help text promised about 2 minutes.
func TestMetrics_commitHistogramReachesCommitTimeout(t *testing.T) {
	t.Parallel()
	m := newServerMetrics()
	m.observeCommit(1, 3*time.Second, nil)
	m.observeCommit(1, 29*time.Second, nil)
	var d dto.Metric
	if err := m.commitSeconds.Write(&d); err != nil {
		t.Fatal(err)
	}
	buckets := d.GetHistogram().GetBucket()
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
