package client

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/topgun-go/topgun/server/wire"
)

// A client offline while the server collected a tombstone it holds learns
// the cut-off (GC_PRUNE) when it next syncs: SyncMap leaves the tombstone
// out before comparing, as TopGun's TS client does, and finds the map in
// sync; OnGCPrune drops it from the caller's copy, so later syncs are in
// sync too. Before, the client was never told, and every sync of the map
// walked down to that leaf.
func TestSyncMap_gcPruneAfterOfflineCollection(t *testing.T) {
	t.Parallel()
	srv := &convServer{t: t, path: filepath.Join(t.TempDir(), "prune.redb")}
	srv.start()
	defer srv.stop()
	pruned := make(chan wire.Timestamp, 4)
	dial := func(p *goPeer) {
		t.Helper()
		o := DefaultOptions()
		o.NodeID = p.name
		o.Logger = testLogger(t)
		o.OnGCPrune = func(ts wire.Timestamp) {
			p.prune(ts)
			pruned <- ts
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := Dial(ctx, srv.url(), o)
		if err != nil {
			t.Fatal(err)
		}
		p.c = c
	}
	p := &goPeer{name: "go0", local: map[string]wire.LWWRecord{}, last: map[string]string{}}
	dial(p)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.c.Put(ctx, convLWW, "live", "v"); err != nil {
		t.Fatal(err)
	}
	if err := p.c.Put(ctx, convLWW, "gone", "v"); err != nil {
		t.Fatal(err)
	}
	if err := p.c.Remove(ctx, convLWW, "gone"); err != nil {
		t.Fatal(err)
	}
	p.sync(t)
	if r, ok := p.snapshot()["gone"]; !ok || r.Value != nil {
		t.Fatalf("the client holds %+v for the removed key, want its tombstone", r)
	}
	p.c.Close() // offline while the tombstone is collected

	time.Sleep(convTTL + 100*time.Millisecond)
	if n, err := srv.st.CollectTombstones(ctx); err != nil || n != 1 {
		t.Fatalf("CollectTombstones = %d, %v", n, err)
	}
	select {
	case ts := <-pruned:
		t.Fatalf("a closed client was told to prune before %v", ts)
	default:
	}

	dial(p)
	defer p.c.Close()
	res := p.sync(t)
	if !res.InSync || res.LocalRoot != res.ServerRoot || res.BucketRequests != 0 || len(res.Newer) != 0 {
		t.Fatalf("first sync after the collection: %+v, want in sync from the root", res)
	}
	select {
	case <-pruned:
	case <-time.After(10 * time.Second):
		t.Fatal("OnGCPrune was not called")
	}
	if _, ok := p.snapshot()["gone"]; ok {
		t.Fatal("OnGCPrune kept the collected tombstone")
	}
	if res := p.sync(t); !res.InSync {
		t.Fatalf("second sync: %+v, want in sync", res)
	}
}
