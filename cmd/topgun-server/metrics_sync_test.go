package main

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/topgun-go/topgun/internal/metricstest"
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
	fams := metricstest.Scrape(t, srv)
	mustMetric(t, fams, "topgun_store_committed_records_total", 2)
	mustMetric(t, fams, "topgun_ops_applied_total", 2)
	mustMetric(t, fams, "topgun_connections", 0)
}
