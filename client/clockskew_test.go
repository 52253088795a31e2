package client

import (
	"math"
	"testing"
	"time"

	"github.com/topgun-go/topgun/plugins/null"
	"github.com/topgun-go/topgun/server/wire"
)

// setWall shifts c's wall clock by d.
func setWall(c *Client, d time.Duration) {
	c.hlc.mu.Lock()
	defer c.hlc.mu.Unlock()
	c.hlc.wall = func() uint64 { return uint64(time.Now().Add(d).UnixMilli()) }
}

// Two clients whose clocks are within the server's drift bound of its
// clock, one fast and one slow, can be further apart than that bound. A
// record the fast one wrote, accepted by the server, is then further ahead
// of the slow one's wall clock than the bound: the slow one's write made
// after reading that record must still win over it, as the client's docs
// promise (its later writes win over the records it has seen): the server
// bounds stamps by its own clock, which the client learns from SyncMap's
// SYNC_RESP_ROOT (and its heartbeat's PONGs).
func TestHLC_writeAfterReadingARecordOfAFastClientWins(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	url, _ := serveBackend(t, null.Open(), 0, nil)
	fast := dial(t, url, testOptions(t))
	setWall(fast, 45*time.Second)
	slow := dial(t, url, testOptions(t))
	setWall(slow, -25*time.Second)

	if err := fast.Put(ctx, "m", "k", "fast"); err != nil {
		t.Fatal(err)
	}
	r, err := slow.SyncMap(ctx, "m", nil)
	if err != nil || len(r.Records) != 1 {
		t.Fatalf("SyncMap = %+v, %v; want the fast client's record", r, err)
	}
	if err := slow.Put(ctx, "m", "k", "slow"); err != nil {
		t.Fatal(err)
	}
	r, err = fast.SyncMap(ctx, "m", nil)
	if err != nil || len(r.Records) != 1 {
		t.Fatalf("SyncMap = %+v, %v", r, err)
	}
	if got := r.Records[0].Record; got.Value != "slow" {
		t.Errorf("after the slow client read the record and wrote over it, the server holds %v stamped %v; want its write", got.Value, got.Timestamp)
	}
}

// A device whose clock is minutes behind receives map events of clients
// whose clocks are right: its write made after one must win over it,
// though the record is further ahead of its wall clock than the drift
// bound: it is not ahead of the server's, as the device's PONGs say.
func TestHLC_clientClockFarBehindWinsAfterAnEvent(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	url, _ := serveBackend(t, null.Open(), 0, nil)
	right := dial(t, url, testOptions(t))
	behind := dial(t, url, testOptions(t))
	setWall(behind, -10*time.Minute)
	if _, err := behind.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	sub, err := behind.Subscribe(ctx, "m", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := right.Put(ctx, "m", "k", "right"); err != nil {
		t.Fatal(err)
	}
	for u := range sub.Updates {
		if u.Event != nil {
			break
		}
	}
	if err := behind.Put(ctx, "m", "k", "behind"); err != nil {
		t.Fatal(err)
	}
	r, err := right.SyncMap(ctx, "m", nil)
	if err != nil || len(r.Records) != 1 {
		t.Fatalf("SyncMap = %+v, %v", r, err)
	}
	if got := r.Records[0].Record; got.Value != "behind" {
		t.Errorf("after the device saw the record's event and wrote over it, the server holds %v stamped %v; want its write", got.Value, got.Timestamp)
	}
}

// The server's clock read from a PONG is believed only so far: a broken or
// hostile server's serverTime at the top of the range must not let a
// timestamp there stop the clock.
func TestHLC_serverTimeFarAheadIsBounded(t *testing.T) {
	t.Parallel()
	h := newHLC("c", testLogger(t))
	h.ServerTime(math.MaxUint64)
	h.Update(wire.Timestamp{Millis: math.MaxUint64, Counter: math.MaxUint32, NodeID: "evil"})
	if a, b := h.Now(), h.Now(); a.Millis > uint64(time.Now().Add(2*maxServerAhead).UnixMilli()) || a.Compare(b) >= 0 {
		t.Errorf("after a PONG and a timestamp at the top of the range, Now = %v then %v", a, b)
	}
}

// A timestamp further ahead of the server's clock than the drift bound is
// ignored, as the client's docs say, also when the client's own clock runs
// ahead of the server's: followed, it would stamp the client's next writes
// past the server's bound, which the server refuses.
func TestHLC_judgedByServerClockWhenServerIsBehind(t *testing.T) {
	t.Parallel()
	const wall = uint64(1_800_000_000_000)
	h := newHLC("c", testLogger(t))
	h.wall = func() uint64 { return wall }
	h.ServerTime(wall - 30_000)                                   // the server's clock 30 s behind this one
	far := wire.Timestamp{Millis: wall + 40_000, NodeID: "other"} // 70 s ahead of the server's
	h.Update(far)
	if now := h.Now(); now.Compare(far) > 0 {
		t.Errorf("after a timestamp 70 s ahead of the server's clock, Now = %v; want it ignored (Now before %v)", now, far)
	}
	// Within the bound of the server's clock it is followed.
	near := wire.Timestamp{Millis: wall + 20_000, NodeID: "other"} // 50 s ahead of the server's
	h.Update(near)
	if now := h.Now(); now.Compare(near) <= 0 {
		t.Errorf("after a timestamp 50 s ahead of the server's clock, Now = %v; want after %v", now, near)
	}
}
