package protocol

import (
	"context"
	"testing"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/plugins/null"
	"github.com/topgun-go/topgun/server/record"
	"github.com/topgun-go/topgun/server/wire"
)

// badKeyBackend's scans end with a record under a key that is not valid
// UTF-8, which no client can have written (the wire decoder refuses
// such keys): a faulty plugin's, or damaged storage's.
type badKeyBackend struct {
	abi.Backend
	value []byte
}

func (b *badKeyBackend) Scan(ctx context.Context, req abi.ScanRequest) (abi.Page, error) {
	p, err := b.Backend.Scan(ctx, req)
	if err == nil && p.Cursor == nil && req.Map == "users" {
		p.Records = append(p.Records, abi.Record{Map: req.Map, Key: "u\xff", Value: b.value, CreatedAt: 1, UpdatedAt: 1})
	}
	return p, err
}

// A query must not answer with a key that is not valid UTF-8: the
// client's decoder refuses the frame, and this project's client drops the
// connection on it, then makes the same query again once reconnected.
func TestQuery_skipsStoredKeyNotUTF8(t *testing.T) {
	t.Parallel()
	rv := record.NewLWW(record.FromWire(person("Bad", 40)), record.Timestamp{Millis: 1, NodeID: "x"})
	enc, err := record.Encode(nil, &rv)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envConfig{backend: &badKeyBackend{Backend: null.Open(), value: enc}})
	w := e.dial(t)
	w.write(putOp("1", "users", "u1", person("Ann", 30), cts("w")))
	c := e.dial(t)
	c.send(adultsQuery("q1"))
	resp := expect[*wire.QueryResp](c)
	for _, r := range resp.Results {
		if r.Key != "u1" {
			t.Fatalf("results hold key %q", r.Key)
		}
	}
}
