package client

import (
	"errors"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/topgun-go/topgun/plugins/redb"
	srvhlc "github.com/topgun-go/topgun/server/hlc"
	"github.com/topgun-go/topgun/server/record"
	"github.com/topgun-go/topgun/server/store"
	"github.com/topgun-go/topgun/server/wire"
)

// A server whose clock ran an hour ahead for a while left records stamped
// then in storage; the server, its clock right again, refuses writes
// stamped further ahead than its drift bound, and does not move its own
// clock to those records. A client that reads such a record must not
// either: its clock would carry every later write of it past that bound,
// and the server would refuse them all (OP_REJECTED) for the hour.
func TestHLC_recordFarAheadDoesNotCarryLaterWritesPastTheDriftBound(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "db")
	ctx := ctxT(t)
	be, err := redb.Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	skewed, err := srvhlc.New("skewed", &srvhlc.Options{WallClock: func() time.Time { return time.Now().Add(time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, be, &store.Options{Clock: skewed, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	res, err := st.Apply(ctx, []store.Op{{Map: "m", Key: "ahead", Kind: store.OpPut, Value: record.IntValue(1)}}, 0)
	if err != nil || res[0].Err != nil {
		t.Fatalf("Apply = %v %+v", err, res)
	}
	_ = st.Close()
	_ = be.Close()

	be, err = redb.Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	url, _ := serveBackend(t, be, 0, nil)
	c := dial(t, url, testOptions(t))
	r, err := c.SyncMap(ctx, "m", nil)
	if err != nil || len(r.Records) != 1 {
		t.Fatalf("SyncMap = %+v, %v; want the record stamped ahead", r, err)
	}
	if err := c.Put(ctx, "m", "k", 1); err != nil {
		t.Fatalf("Put after reading a record stamped an hour ahead = %v, want it stored", err)
	}
}

// A timestamp at the top of the range (a hostile or broken server) must
// not stop the clock: NewTag must keep returning tags no other add has,
// and writes timestamps that order after the earlier ones.
func TestHLC_hostileTimestampDoesNotRepeatTags(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, "")
	c := dial(t, fs.URL, testOptions(t))
	before := c.NewTag()
	c.hlc.Update(wire.Timestamp{Millis: math.MaxUint64, Counter: math.MaxUint32, NodeID: "evil"})
	a, b := c.NewTag(), c.NewTag()
	if a == b || a == before {
		t.Errorf("NewTag repeated a tag: %s, then %s and %s", before, a, b)
	}
	if err := c.Put(ctxT(t), "m", "k", 1); err != nil && !errors.Is(err, ErrRejected) {
		t.Fatal(err)
	}
}
