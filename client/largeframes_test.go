package client

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/topgun-go/topgun/server/wire"
)

// The server's answers are not held to the 2 MiB limit on what it accepts:
// a QUERY_RESP carries every result of the query in one frame. With the
// default options Subscribe must return such results, not drop the
// connection on the frame and reconnect (and re-subscribe) again and again.
func TestSubscribe_initialResultsLargerThanTheSendLimit(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, "")
	big := strings.Repeat("x", 1<<20) // 3 records of 1 MiB: a 3 MiB QUERY_RESP
	for _, k := range []string{"a", "b", "c"} {
		fs.put("docs", k, wire.LWWRecord{Value: big, Timestamp: wire.Timestamp{Millis: 1, NodeID: "s"}})
	}
	o := testOptions(t)
	c := dial(t, fs.URL, o)
	sub, err := c.Subscribe(ctxT(t), "docs", nil)
	if err != nil {
		t.Fatalf("Subscribe = %v (connections accepted: %d)", err, fs.upgrades.Load())
	}
	if len(sub.Initial) != 3 {
		t.Fatalf("Initial has %d results, want 3", len(sub.Initial))
	}
	if n := fs.upgrades.Load(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}

// A frame over Options.MaxReadBytes is ignored, not a reason to drop the
// connection: the client stays connected (no reconnect loop) and goes on
// serving calls.
func TestReadLimit_oversizedFrameIsIgnoredAndTheConnectionSurvives(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, "")
	fs.put("docs", "a", wire.LWWRecord{Value: strings.Repeat("x", 256<<10), Timestamp: wire.Timestamp{Millis: 1, NodeID: "s"}})
	o := testOptions(t)
	o.MaxReadBytes = 64 << 10
	c := dial(t, fs.URL, o)
	// Its only answer was too large: it fails with ErrTooLarge (see
	// TestSubscribe_replyOverMaxReadBytes), not by the deadline.
	ctx, cancel := context.WithTimeout(ctxT(t), 5*time.Second)
	defer cancel()
	if _, err := c.Subscribe(ctx, "docs", nil); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Subscribe = %v, want ErrTooLarge (its only answer was too large)", err)
	}
	if err := c.Put(ctxT(t), "docs", "b", "small"); err != nil {
		t.Fatal(err)
	}
	if n := fs.upgrades.Load(); n != 1 {
		t.Errorf("%d connections, want 1: the oversized frame dropped the connection", n)
	}
}

// The same against this project's server, which answers QUERY_SUB with
// all the results in one frame.
func TestSubscribe_realServerResultsLargerThanTheSendLimit(t *testing.T) {
	t.Parallel()
	url := realServer(t)
	c := dial(t, url, testOptions(t))
	big := strings.Repeat("x", 1<<20)
	for _, k := range []string{"a", "b", "c"} {
		if err := c.Put(ctxT(t), "docs", k, big); err != nil {
			t.Fatal(err)
		}
	}
	sub, err := c.Subscribe(ctxT(t), "docs", nil)
	if err != nil {
		t.Fatalf("Subscribe = %v", err)
	}
	if len(sub.Initial) != 3 {
		t.Fatalf("Initial has %d results, want 3", len(sub.Initial))
	}
}

// A SYNC_RESP_LEAF over MaxReadBytes is dropped unread: SyncMap must fail
// at once, not wait SyncIdleTimeout and report success with the leaf
// counted as one of TopGun's unanswered empty paths. The caller would take
// the map for synced while the leaf's records never arrive, at every sync.
func TestSyncMap_leafOverMaxReadBytesFails(t *testing.T) {
	t.Parallel()
	url := realServer(t)
	w := dial(t, url, testOptions(t))
	if err := w.Put(ctxT(t), "docs", "a", strings.Repeat("x", 128<<10)); err != nil {
		t.Fatal(err)
	}
	o := testOptions(t)
	o.MaxReadBytes = 64 << 10
	o.SyncIdleTimeout = 2 * time.Second
	c := dial(t, url, o)
	res, err := c.SyncMap(ctxT(t), "docs", nil)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("SyncMap = %+v, %v; want ErrTooLarge (its leaf was over MaxReadBytes)", res, err)
	}
	// The connection survives, and a later sync of another map works.
	if err := w.Put(ctxT(t), "small", "b", "v"); err != nil {
		t.Fatal(err)
	}
	if res, err := c.SyncMap(ctxT(t), "small", nil); err != nil || len(res.Records) != 1 {
		t.Fatalf("SyncMap(small) = %+v, %v", res, err)
	}
}

// A QUERY_RESP over MaxReadBytes fails Subscribe at once, and a
// QUERY_UPDATE over it closes the subscription with ErrTooLarge: the
// subscription would otherwise miss its results, or a change, for good.
func TestSubscribe_replyOverMaxReadBytes(t *testing.T) {
	t.Parallel()
	url := realServer(t)
	w := dial(t, url, testOptions(t))
	big := strings.Repeat("x", 128<<10)
	if err := w.Put(ctxT(t), "docs", "a", big); err != nil {
		t.Fatal(err)
	}
	o := testOptions(t)
	o.MaxReadBytes = 64 << 10
	c := dial(t, url, o)
	if _, err := c.Subscribe(ctxT(t), "docs", nil); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Subscribe with results over MaxReadBytes: %v, want ErrTooLarge", err)
	}
	sub, err := c.Subscribe(ctxT(t), "other", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Put(ctxT(t), "other", "b", big); err != nil {
		t.Fatal(err)
	}
	for range sub.Updates {
	}
	if err := sub.Err(); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("subscription after a change over MaxReadBytes: Err = %v, want ErrTooLarge", err)
	}
	// The connection survives.
	if _, err := c.Ping(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}

// A SERVER_EVENT over MaxReadBytes closes the subscriptions on its map
// with ErrTooLarge, as a QUERY_UPDATE over it does, even when the change
// is outside their query (no QUERY_UPDATE comes for it): they would
// otherwise miss a map event without knowing. Those on other maps stay.
func TestSubscribe_mapEventOverMaxReadBytes(t *testing.T) {
	t.Parallel()
	url := realServer(t)
	w := dial(t, url, testOptions(t))
	o := testOptions(t)
	o.MaxReadBytes = 64 << 10
	c := dial(t, url, o)
	small := &wire.Query{Predicate: &wire.Predicate{Op: wire.OpEq, Attribute: "kind", Value: "small"}}
	sub, err := c.Subscribe(ctxT(t), "docs", small)
	if err != nil {
		t.Fatal(err)
	}
	other, err := c.Subscribe(ctxT(t), "other", nil)
	if err != nil {
		t.Fatal(err)
	}
	big := map[string]any{"kind": "big", "data": strings.Repeat("x", 128<<10)}
	if err := w.Put(ctxT(t), "docs", "a", big); err != nil {
		t.Fatal(err)
	}
	// Its events come after the big one's: seen with sub still open, the
	// big one was lost unnoticed.
	if err := w.Put(ctxT(t), "docs", "b", map[string]any{"kind": "small"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(ctxT(t), 10*time.Second)
	defer cancel()
	for open := true; open; {
		select {
		case u, ok := <-sub.Updates:
			if ok && u.Key == "b" {
				t.Fatalf("got %q's update after the event of %q over MaxReadBytes was dropped, subscription still open", u.Key, "a")
			}
			open = ok
		case <-ctx.Done():
			t.Fatal("the subscription neither closed nor got the next change")
		}
	}
	if err := sub.Err(); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("subscription after a map event over MaxReadBytes: Err = %v, want ErrTooLarge", err)
	}
	// The subscription on another map is still live.
	if err := w.Put(ctxT(t), "other", "c", "v"); err != nil {
		t.Fatal(err)
	}
	select {
	case u, ok := <-other.Updates:
		if !ok {
			t.Fatalf("the subscription on another map closed: %v", other.Err())
		}
		if u.Key != "c" {
			t.Fatalf("other got %+v, want an update of c", u)
		}
	case <-ctx.Done():
		t.Fatal("no update on the other map's subscription")
	}
}
