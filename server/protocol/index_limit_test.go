package protocol

import (
	"strings"
	"testing"

	"github.com/topgun-go/topgun/server/store"
	"github.com/topgun-go/topgun/server/wire"
)

// At the index limit an OP_BATCH's op that would add a key gets its own
// OP_REJECTED naming the setting, while the ops around it are stored and
// acknowledged by the OP_ACK of the last op.
func TestWrites_indexLimitRefusesOneOpOfABatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{storeOpts: func(o *store.Options) { o.MaxIndexBytes = 16 << 10 }})
	c := e.dial(t)
	n := 0
	for ; n < 1000; n++ {
		got, err := c.roundTrip(nil, putOp(itoa(n+1), "m", "k"+itoa(n), "v", cts("c")))
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := got[0].(*wire.OpRejected); ok {
			break
		}
	}
	if n == 1000 {
		t.Fatal("no key refused at the index limit")
	}
	ops := []wire.ClientOp{
		putOp("2001", "m", "k0", "w", cts("c")),
		putOp("2002", "m", "new", "w", cts("c")),
		putOp("2003", "m", "k1", "w", cts("c")),
	}
	got, err := c.roundTrip(nil, ops...)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("answers %+v, want OP_REJECTED 2002 then OP_ACK 2003", got)
	}
	if rej, ok := got[0].(*wire.OpRejected); !ok || rej.OpID != "2002" || !strings.Contains(rej.Reason, "TOPGUN_MAX_INDEX_MB") {
		t.Fatalf("answer %+v, want OP_REJECTED 2002 naming TOPGUN_MAX_INDEX_MB", got[0])
	}
	if ack, ok := got[1].(*wire.OpAck); !ok || ack.LastID != "2003" {
		t.Fatalf("answer %+v, want OP_ACK 2003", got[1])
	}
	for _, k := range []string{"k0", "k1"} {
		if v, _, ok := e.getLWW("m", k); !ok || v.Text() != "w" {
			t.Errorf("m/%s: %v %v, want w", k, v, ok)
		}
	}
	if _, _, ok := e.getLWW("m", "new"); ok {
		t.Error("the refused key was stored")
	}
}
