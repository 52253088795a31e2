package protocol

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/plugins/null"
	"github.com/topgun-go/topgun/server/wire"
)

// requestLimitBackend refuses a batch whose values pass limit bytes, as a
// wasm plugin refuses a request over TOPGUN_PLUGIN_MAX_REQUEST_BYTES.
type requestLimitBackend struct {
	abi.Backend
	limit int
}

func (b *requestLimitBackend) Apply(ctx context.Context, batch *abi.Batch) error {
	n := 0
	for _, m := range batch.Mutations {
		n += len(m.Value)
	}
	if n > b.limit {
		return abi.Errorf(abi.CodeResourceExhausted, "request of %d bytes exceeds the limit of %d bytes", n, b.limit)
	}
	return b.Backend.Apply(ctx, batch)
}

// groupOverLimit has a connection queue, behind a held first write, three
// OP_BATCHes of 600 KB writes (one fits the backend's 1 MiB request limit,
// two do not), each holding the ops batch(i) gives, then releases the
// store, checks every batch is acknowledged and returns the env.
func groupOverLimit(t *testing.T, batch func(i int, big string) []wire.ClientOp) *env {
	t.Helper()
	e := newEnv(t, envConfig{backend: &requestLimitBackend{Backend: null.Open(), limit: 1 << 20}})
	c := e.dial(t)
	release := e.be.holdCommits()
	defer release()
	c.send(&wire.OpBatch{Ops: []wire.ClientOp{putOp("1", "m", "first", "v", cts("c"))}})
	eventually(t, "the first write held", func() bool { return e.be.held.Load() == 1 })
	big := strings.Repeat("x", 600<<10)
	for i := 2; i <= 4; i++ {
		c.send(&wire.OpBatch{Ops: batch(i, big)})
	}
	eventually(t, "the big writes queued", func() bool {
		var conn *conn
		e.srv.mu.RLock()
		for sc := range e.srv.conns {
			conn = sc
		}
		e.srv.mu.RUnlock()
		conn.mu.Lock()
		defer conn.mu.Unlock()
		return conn.pending >= 4
	})
	release()
	for acked := 0; acked < 4; {
		switch m := c.next().(type) {
		case *wire.OpAck:
			acked++
		case *wire.ErrorMessage:
			t.Fatalf("a write within the backend's limit failed: %d %s", m.Code, m.Message)
		}
	}
	return e
}

// The writes one connection queued while the store was busy are applied
// with one store.Apply: together over a backend's request limit, each of
// them within it, they are applied one by one, not all refused (ERROR 500,
// again at every re-send, grouped again).
func TestWrites_groupOverTheBackendsRequestLimitAppliedOneByOne(t *testing.T) {
	t.Parallel()
	e := groupOverLimit(t, func(i int, big string) []wire.ClientOp {
		return []wire.ClientOp{putOp(itoa(i), "m", "k"+itoa(i), big, cts("c"))}
	})
	for i := 2; i <= 4; i++ {
		if _, _, ok := e.getLWW("m", "k"+itoa(i)); !ok {
			t.Errorf("k%d not stored", i)
		}
	}
}

// Writes split one by one after the backend refused them together count
// each re-sent op they skip once: TopGun's client re-sends every op not yet
// acknowledged, and OpsResent (topgun_ops_resent_total) counted those of a
// split group twice, once for the group and once for the job.
func TestWrites_groupSplitCountsResentOpsOnce(t *testing.T) {
	t.Parallel()
	var ops []wire.ClientOp
	e := groupOverLimit(t, func(i int, big string) []wire.ClientOp {
		// As TopGun's client: each write re-sends those not acknowledged.
		ops = append(ops, putOp(itoa(i), "m", "k"+itoa(i), big, cts("c")))
		return append([]wire.ClientOp(nil), ops...)
	})
	// k2 is re-sent twice, k3 once.
	if st := e.srv.Stats(); st.OpsApplied != 4 || st.OpsResent != 3 {
		t.Fatalf("stats %+v: want 4 ops applied and 3 re-sends skipped", st)
	}
}

// One OP_BATCH of TopGun's client (ascending numeric ids) whose writes
// together pass the backend's request limit, each within it (possible
// with TOPGUN_MAX_MESSAGE_BYTES above a plugin's request limit), is
// applied in part and acknowledged up to its last write applied; the
// client's re-sends of the rest land. Refused whole, it failed again at
// every re-send, for good.
func TestWrites_messageOverTheBackendsRequestLimitAppliedInPart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{backend: &requestLimitBackend{Backend: null.Open(), limit: 1 << 20}})
	c := e.dial(t)
	big := strings.Repeat("x", 400<<10)
	var ops []wire.ClientOp
	for i := 1; i <= 4; i++ {
		ops = append(ops, putOp(itoa(i), "m", "k"+itoa(i), big, cts("c")))
	}
	// As TopGun's client: every op not acknowledged is sent again, until
	// all are. Bounded: each answer acknowledges at least one more.
	for round := 0; len(ops) > 0; round++ {
		if round == 10 {
			t.Fatalf("ops %v still not acknowledged", ops)
		}
		c.send(&wire.OpBatch{Ops: ops})
		var ack *wire.OpAck
		for ack == nil {
			switch m := c.next().(type) {
			case *wire.OpAck:
				ack = m
			case *wire.ErrorMessage:
				t.Fatalf("a write within the backend's limit failed: %d %s", m.Code, m.Message)
			}
		}
		i := slices.IndexFunc(ops, func(op wire.ClientOp) bool { return op.ID == ack.LastID })
		if i < 0 {
			t.Fatalf("OP_ACK lastId %q names none of the ops sent", ack.LastID)
		}
		ops = ops[i+1:]
	}
	for i := 1; i <= 4; i++ {
		if _, _, ok := e.getLWW("m", "k"+itoa(i)); !ok {
			t.Errorf("k%d not stored", i)
		}
	}
}

// POST /sync as OP_BATCH above: writes together over the backend's
// request limit, each within it, are applied in part and acknowledged up
// to the last applied; the client's next polls carry the rest.
func TestHTTPSync_opsOverTheBackendsRequestLimitAppliedInPart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{backend: &requestLimitBackend{Backend: null.Open(), limit: 1 << 20}})
	big := strings.Repeat("x", 400<<10)
	var pending []wire.ClientOp
	for i := 1; i <= 4; i++ {
		pending = append(pending, putOp(itoa(i), "m", "k"+itoa(i), big, cts("c")))
	}
	// A refused op past the part applied is reported when its part is.
	pending = append(pending, putOp("5", "_topgun_device_credentials", "x", int64(1), cts("c")))
	var refused []string
	for round := 0; len(pending) > 0; round++ {
		if round == 10 {
			t.Fatalf("ops %v still not acknowledged", pending)
		}
		var resp *wire.HTTPSyncResponse
		pending, resp = e.httpPoll(t, pending, 1)
		refused = append(refused, refusals(t, round, resp)...)
	}
	if !slices.Equal(refused, []string{"5"}) {
		t.Fatalf("refused %v, want op 5 once", refused)
	}
	for i := 1; i <= 4; i++ {
		if _, _, ok := e.getLWW("m", "k"+itoa(i)); !ok {
			t.Errorf("k%d not stored", i)
		}
	}
}

// An ORMAP_PUSH_DIFF whose entries together pass the backend's request
// limit, each within it, is applied in parts of whole entries, each
// acknowledged. Refused whole (ERROR 500), TopGun's client pushed it
// again at every sync, refused again, and the keys never converged.
func TestWrites_pushOverTheBackendsRequestLimitAppliedInParts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{backend: &requestLimitBackend{Backend: null.Open(), limit: 1 << 20}})
	c := e.dial(t)
	big := strings.Repeat("x", 400<<10)
	push := &wire.ORMapPushDiff{MapName: "tags"}
	for i := 1; i <= 3; i++ {
		push.Entries = append(push.Entries, wire.ORMapEntry{Key: "k" + itoa(i),
			Records: []wire.ORMapRecord{{Value: big, Timestamp: cts("c"), Tag: "t" + itoa(i)}}})
	}
	c.send(push)
	// Two parts (k1; k2 and k3), each acknowledged.
	for acked := 0; acked < 2; {
		switch m := c.next().(type) {
		case *wire.OpAck:
			acked++
		case *wire.ErrorMessage:
			t.Fatalf("a push of entries each within the backend's limit failed: %d %s", m.Code, m.Message)
		}
	}
	for i := 1; i <= 3; i++ {
		en, ok, err := e.st.Get(t.Context(), "tags", "k"+itoa(i))
		if err != nil || !ok || len(en.Record.ORMap.Records) != 1 {
			t.Fatalf("k%d after the push: ok %v err %v", i, ok, err)
		}
	}
}
