package client

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/topgun-go/topgun/server/wire"
)

// A QUERY_SUB that can never be sent (over the frame limit, nested past
// the depth limit, a value the encoder refuses) or that the server can
// never decode (a map name that is not UTF-8: it answers an ERROR that
// names no query) fails Subscribe at once, as such a write does; it must
// not wait for its ctx, nor be re-sent at every reconnect for nothing.
func TestSubscribe_querySubThatCannotBeSentFailsAtOnce(t *testing.T) {
	t.Parallel()
	url := realServer(t)
	o := testOptions(t)
	o.Limits.MaxMessageBytes = 64 << 10
	c := dial(t, url, o)

	deep := any("x")
	for range wire.DefaultMaxDepth + 1 {
		deep = []any{deep}
	}
	cases := []struct {
		name    string
		mapName string
		q       *wire.Query
	}{
		{"over the frame limit", "m", &wire.Query{Where: map[string]any{"s": strings.Repeat("x", 128<<10)}}},
		{"too deep", "m", &wire.Query{Where: map[string]any{"s": map[string]any{"$in": deep}}}},
		{"unencodable", "m", &wire.Query{Where: map[string]any{"s": make(chan int)}}},
		{"map name not UTF-8", "m\xff", nil},
		{"sort without a direction", "m", &wire.Query{Sort: []wire.SortField{{Field: "n"}}}},
	}
	for _, tc := range cases {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := c.Subscribe(ctx, tc.mapName, tc.q)
		cancel()
		t.Logf("%s: %v", tc.name, err)
		if err == nil || errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: Subscribe = %v, want an error at once", tc.name, err)
		}
	}
	c.mu.Lock()
	n := len(c.subs)
	c.mu.Unlock()
	if n != 0 {
		t.Errorf("%d subscriptions left registered", n)
	}
	// The connection is fine.
	if _, err := c.Subscribe(ctxT(t), "m", nil); err != nil {
		t.Fatal(err)
	}
}
