package client

import (
	"testing"

	"github.com/topgun-go/topgun/server/protocol"
)

// A subscription closed before the next Subscribe is gone from the
// server before that QUERY_SUB arrives: on a server allowing one live
// query per connection, closing one and subscribing again never hits
// the limit.
func TestSubscribe_afterCloseIsNotRefusedForTheClosedQuery(t *testing.T) {
	t.Parallel()
	url := realServerWith(t, func(o *protocol.Options) { o.MaxQueries = 1 })
	c := dial(t, url, testOptions(t))
	for i := 0; i < 200; i++ {
		s, err := c.Subscribe(ctxT(t), "m", nil)
		if err != nil {
			t.Fatalf("Subscribe %d after closing the previous one: %v", i, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
