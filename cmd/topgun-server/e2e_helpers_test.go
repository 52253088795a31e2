package main

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/topgun-go/topgun/client"
	"github.com/topgun-go/topgun/server/wire"
)

// Helpers of the end-to-end tests (e2e_test.go), which drive the server
// binary with the Go client.

// e2eTimeout bounds each end-to-end test's calls.
const e2eTimeout = 60 * time.Second

func e2eContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	t.Cleanup(cancel)
	return ctx
}

func (p *proc) wsURL() string { return "ws://127.0.0.1:" + strconv.Itoa(p.port) + "/ws" }

// dialClient connects a Go client to p, logging to t.Log under name. It
// does not reconnect: a dropped connection fails the calls that follow.
func dialClient(t *testing.T, ctx context.Context, p *proc, name string) *client.Client {
	t.Helper()
	opts := client.DefaultOptions()
	opts.Logger = testLogger(t).Named(name)
	opts.Reconnect = false
	c, err := client.Dial(ctx, p.wsURL(), opts)
	if err != nil {
		t.Fatalf("%s: dial: %v", name, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// syncMap runs SyncMap and fails the test unless every request was
// answered.
func syncMap(t *testing.T, ctx context.Context, c *client.Client, mapName string, local map[string]wire.LWWRecord) *client.SyncResult {
	t.Helper()
	res, err := c.SyncMap(ctx, mapName, local)
	if err != nil {
		t.Fatalf("SyncMap %s: %v", mapName, err)
	}
	if res.Unanswered > 0 {
		t.Fatalf("SyncMap %s: %d bucket requests unanswered", mapName, res.Unanswered)
	}
	return res
}

// recordsOf returns the records a sync received, by key. A key sent twice
// fails the test.
func recordsOf(t *testing.T, res *client.SyncResult) map[string]wire.LWWRecord {
	t.Helper()
	out := make(map[string]wire.LWWRecord, len(res.Records))
	for _, r := range res.Records {
		if _, dup := out[r.Key]; dup {
			t.Fatalf("key %q received twice in one sync", r.Key)
		}
		out[r.Key] = r.Record
	}
	return out
}

// mergeLWW applies received records to local by last-writer-wins, as
// TopGun's client does (a received record wins when local has none or its
// timestamp is strictly greater), and returns the keys that changed.
func mergeLWW(local map[string]wire.LWWRecord, received []wire.LeafRecord) []string {
	var changed []string
	for _, r := range received {
		if l, ok := local[r.Key]; ok && r.Record.Timestamp.Compare(l.Timestamp) <= 0 {
			continue
		}
		local[r.Key] = r.Record
		changed = append(changed, r.Key)
	}
	sort.Strings(changed)
	return changed
}

// expired reports whether r's TTL has passed at nowMs.
func expired(r wire.LWWRecord, nowMs uint64) bool {
	return r.TTLMs != nil && r.Timestamp.Millis+*r.TTLMs <= nowMs
}

// visible is what a client shows of local at nowMs: values by key,
// without tombstones (nil values) and records whose TTL has passed.
func visible(local map[string]wire.LWWRecord, nowMs uint64) map[string]any {
	out := map[string]any{}
	for k, r := range local {
		if r.Value == nil || expired(r, nowMs) {
			continue
		}
		out[k] = r.Value
	}
	return out
}

func nowMs() uint64 { return uint64(time.Now().UnixMilli()) }

// describe names an update for comparisons: "event PUT k" for a
// SERVER_EVENT, "query ENTER k" for a QUERY_UPDATE, "reset" for a resync.
func describe(u client.Update) string {
	switch {
	case u.Event != nil:
		return "event " + string(u.Event.EventType) + " " + u.Key
	case u.Reset:
		return "reset"
	default:
		return "query " + string(u.Change) + " " + u.Key
	}
}

// nextUpdates reads n updates from sub, failing the test if they do not
// arrive within 10 s.
func nextUpdates(t *testing.T, sub *client.Subscription, n int) []client.Update {
	t.Helper()
	out := make([]client.Update, 0, n)
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for len(out) < n {
		select {
		case u, ok := <-sub.Updates:
			if !ok {
				t.Fatalf("subscription %s closed after %d of %d updates: %v", sub.ID, len(out), n, sub.Err())
			}
			out = append(out, u)
		case <-deadline.C:
			t.Fatalf("subscription %s: %d of %d updates within 10s: %v", sub.ID, len(out), n, describeAll(out))
		}
	}
	return out
}

// expectUpdates reads len(want) updates from sub and checks that they are
// the described ones, in any order (a SERVER_EVENT and the QUERY_UPDATE of
// the same change are sent independently), and that every value equals
// value (except removes and leaves, whose value is nil).
func expectUpdates(t *testing.T, sub *client.Subscription, value any, want ...string) {
	t.Helper()
	got := nextUpdates(t, sub, len(want))
	names := describeAll(got)
	sort.Strings(names)
	w := append([]string(nil), want...)
	sort.Strings(w)
	if fmt.Sprint(names) != fmt.Sprint(w) {
		t.Fatalf("subscription %s got %q, want %q", sub.ID, names, w)
	}
	for _, u := range got {
		removal := u.Change == wire.Leave || (u.Event != nil && u.Event.EventType == wire.EventRemove)
		if removal {
			if u.Value != nil {
				t.Errorf("%s carries value %v, want nil", describe(u), u.Value)
			}
			continue
		}
		if fmt.Sprint(u.Value) != fmt.Sprint(value) {
			t.Errorf("%s carries %v, want %v", describe(u), u.Value, value)
		}
	}
}

func describeAll(us []client.Update) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = describe(u)
	}
	return out
}
