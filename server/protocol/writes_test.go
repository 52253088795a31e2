package protocol

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/server/record"
	"github.com/topgun-go/topgun/server/wire"
)

func TestWrite_ackOnlyAfterDurable(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{durable: true})
	c := e.dial(t)
	release := e.be.holdCommits()
	defer release()
	c.send(&wire.ClientOpMessage{ClientOp: putOp("7", "todos", "a", map[string]any{"title": "x"}, cts("c1"))})
	c.quiet(150 * time.Millisecond) // the commit is held: no ack
	if e.be.applied.Load() != 0 {
		t.Fatal("backend committed while held")
	}
	release()
	ack := expect[*wire.OpAck](c)
	if ack.LastID != "7" || ack.AchievedLevel != wire.Persisted {
		t.Fatalf("OP_ACK = %+v, want lastId 7 PERSISTED", ack)
	}
	if e.be.applied.Load() != 1 {
		t.Fatalf("backend has %d mutations after the ack, want 1", e.be.applied.Load())
	}
	if v, _, ok := e.getLWW("todos", "a"); !ok || v.Type() != record.TypeMap {
		t.Fatalf("record after ack: %v %v", v, ok)
	}
}

func TestWrite_notDurableBackendAcksApplied(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	c := e.dial(t)
	if ack := c.write(putOp("1", "m", "k", 1, cts("c1"))); ack.AchievedLevel != wire.Applied {
		t.Fatalf("OP_ACK = %+v, want APPLIED on a non-durable backend", ack)
	}
}

func TestWrite_noAckOnBackendFailure(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	c := e.dial(t)
	e.be.setFail(errInjected)
	op := putOp("1", "todos", "a", "x", cts("c1"))
	c.send(&wire.OpBatch{Ops: []wire.ClientOp{op}})
	m := expect[*wire.ErrorMessage](c)
	// It names the message it answers, as an OP_ACK would (the Go client
	// sends that one again).
	if m.Code != 500 || !strings.Contains(m.Message, "re-send") || !strings.HasSuffix(m.Message, `; lastId "1"`) {
		t.Fatalf("ERROR = %+v", m)
	}
	c.ping() // the connection survives, and no OP_ACK came before the PONG
	// The client re-sends the same op once the backend is back: applied.
	e.be.setFail(nil)
	if ack := c.write(op); ack.LastID != "1" {
		t.Fatalf("OP_ACK = %+v", ack)
	}
	if _, _, ok := e.getLWW("todos", "a"); !ok {
		t.Fatal("re-sent op not applied after the failure")
	}
}

func TestWrite_acksInOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	c := e.dial(t)
	release := e.be.holdCommits()
	const n = 50
	for i := 1; i <= n; i++ {
		c.send(&wire.OpBatch{Ops: []wire.ClientOp{putOp(itoa(i), "m", "k"+itoa(i), i, cts("c1"))}})
	}
	time.Sleep(20 * time.Millisecond)
	release()
	for i := 1; i <= n; i++ {
		if ack := expect[*wire.OpAck](c); ack.LastID != itoa(i) {
			t.Fatalf("ack %d has lastId %s", i, ack.LastID)
		}
	}
}

func TestWrite_rejectedOps(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	c := e.dial(t)
	c.write(orAddOp("1", "mixed", "or-key", "v", cts("c1")))
	future := cts("c1")
	future.Millis += uint64(10 * time.Minute / time.Millisecond)
	c.send(&wire.OpBatch{Ops: []wire.ClientOp{
		putOp("2", "mixed", "ok", "fine", cts("c1")),
		putOp("3", "mixed", "or-key", "lww on an or key", cts("c1")),
		putOp("4", "mixed", "drift", "from the future", future),
		putOp("5", "_topgun_device_credentials", "x", "sneaky", cts("c1")),
		putOp("6", "_TopGun_Device_Credentials", "x", "sneaky", cts("c1")), // any case
		putOp("7", "mixed", "ok2", "fine", cts("c1")),
	}})
	var rejected []string
	for {
		m := c.next()
		if r, ok := m.(*wire.OpRejected); ok {
			if r.Reason == "" || r.Code == nil {
				t.Fatalf("OP_REJECTED without reason or code: %+v", r)
			}
			rejected = append(rejected, r.OpID)
			continue
		}
		ack, ok := m.(*wire.OpAck)
		if !ok {
			t.Fatalf("got %s", m.Type())
		}
		if ack.LastID != "7" {
			t.Fatalf("OP_ACK = %+v", ack)
		}
		break
	}
	if strings.Join(rejected, ",") != "3,4,5,6" {
		t.Fatalf("rejected ops %v, want 3,4,5,6 in order", rejected)
	}
	for _, k := range []string{"ok", "ok2"} {
		if _, _, ok := e.getLWW("mixed", k); !ok {
			t.Fatalf("valid op %s of the batch not applied", k)
		}
	}
	if _, _, ok := e.getLWW("mixed", "drift"); ok {
		t.Fatal("a write from too far in the future was applied")
	}
}

func TestWrite_batchLimitErrorKeepsConnection(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{opts: Options{MaxBatchOps: 10}})
	c := e.dial(t)
	// Ids that are not ascending numbers cannot be acknowledged in part
	// (see TestWrite_backlogOverBatchLimitIsAcknowledgedInParts).
	ops := make([]wire.ClientOp, 11)
	for i := range ops {
		ops[i] = putOp("op-"+itoa(i+1), "m", "k"+itoa(i), i, cts("c1"))
	}
	c.send(&wire.OpBatch{Ops: ops})
	m := expect[*wire.ErrorMessage](c)
	if m.Code != 413 || !strings.Contains(m.Message, "TOPGUN_MAX_BATCH_OPS") || !strings.Contains(m.Message, "10") {
		t.Fatalf("ERROR = %+v, want 413 naming TOPGUN_MAX_BATCH_OPS", m)
	}
	c.ping()
	if e.be.applied.Load() != 0 {
		t.Fatal("ops of a refused batch were applied")
	}
	if ack := c.write(ops[:10]...); ack.LastID != "op-10" {
		t.Fatalf("OP_ACK = %+v", ack)
	}
}

func TestWrite_messageTooLargeKeepsConnection(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{opts: Options{MaxMessageBytes: 4096}})
	c := e.dial(t)
	c.send(&wire.OpBatch{Ops: []wire.ClientOp{putOp("1", "m", "big", strings.Repeat("x", 10_000), cts("c1"))}})
	m := expect[*wire.ErrorMessage](c)
	if m.Code != 413 || !strings.Contains(m.Message, "TOPGUN_MAX_MESSAGE_BYTES") || !strings.Contains(m.Message, "4096") {
		t.Fatalf("ERROR = %+v, want 413 naming TOPGUN_MAX_MESSAGE_BYTES", m)
	}
	c.ping()
	c.write(putOp("2", "m", "small", "y", cts("c1")))
	if _, _, ok := e.getLWW("m", "big"); ok {
		t.Fatal("the oversized write was applied")
	}
}

// TestWrite_topgunResends replays what TopGun's client does with 100 quick
// writes: each new write re-sends every op not yet acknowledged, so the
// 100 OP_BATCHes carry 1+2+...+100 = 5,050 ops. All must be acknowledged
// without any limit tripping (MaxBatchOps is set far below 100 here), and
// each op must reach the store once.
func TestWrite_topgunResends(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{opts: Options{MaxBatchOps: 5}})
	c := e.dial(t)
	var ops []wire.ClientOp
	sent := 0
	for i := 1; i <= 100; i++ {
		ops = append(ops, putOp(itoa(i), "todos", "k"+itoa(i%37), map[string]any{"n": int64(i)}, cts("c1")))
		c.send(&wire.OpBatch{Ops: append([]wire.ClientOp(nil), ops...)})
		sent += len(ops)
	}
	if sent != 5050 {
		t.Fatalf("sent %d ops", sent)
	}
	for i := 1; i <= 100; i++ {
		m := c.next()
		ack, ok := m.(*wire.OpAck)
		if !ok {
			t.Fatalf("batch %d answered with %s %+v", i, m.Type(), m)
		}
		if ack.LastID != itoa(i) {
			t.Fatalf("ack %d: lastId %s", i, ack.LastID)
		}
	}
	st := e.srv.Stats()
	if st.OpsApplied != 100 || st.OpsResent != 4950 {
		t.Fatalf("stats %+v: want 100 ops applied and 4950 re-sends skipped", st)
	}
	// The last write of each key won.
	for k := 0; k < 37; k++ {
		last := 100 - (100-k)%37
		if k == 0 {
			last = 74
		}
		v, _, ok := e.getLWW("todos", "k"+itoa(k))
		if !ok {
			t.Fatalf("key k%d missing", k)
		}
		if n, _ := v.Get("n"); n.Int() != int64(last) {
			t.Fatalf("k%d = %v, want n=%d", k, v, last)
		}
	}
}

func TestWrite_largeBatchWithinDefaults(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	c := e.dial(t)
	ops := make([]wire.ClientOp, 5050)
	for i := range ops {
		ops[i] = putOp(itoa(i+1), "bulk", "k"+itoa(i), int64(i), cts("c1"))
	}
	if ack := c.write(ops...); ack.LastID != "5050" {
		t.Fatalf("OP_ACK = %+v", ack)
	}
	if n := e.be.applied.Load(); n != 5050 {
		t.Fatalf("backend has %d records, want 5050", n)
	}
}

func TestWrite_idempotentResendAcrossConnections(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	op := putOp("1", "todos", "a", "first", cts("c1"))
	c := e.dial(t)
	c.write(op)
	newer := putOp("2", "todos", "a", "second", cts("c1"))
	c.write(newer)
	// A reconnecting client re-sends its old op: the newer value stays.
	c2 := e.dial(t)
	if ack := c2.write(op); ack.LastID != "1" {
		t.Fatalf("OP_ACK = %+v", ack)
	}
	if v, _, _ := e.getLWW("todos", "a"); v.Text() != "second" {
		t.Fatalf("value %v after re-sending an older op", v)
	}
}

func TestWrite_kinds(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	c := e.dial(t)
	add := orAddOp("2", "tags", "t", "red", cts("c1"))
	c.write(
		putOp("1", "todos", "a", "x", cts("c1")),
		add,
		wire.ClientOp{ID: "3", MapName: "todos", Key: "nothing"}, // PUT without record: acked, nothing stored
	)
	c.write(removeOp("4", "todos", "a", cts("c1")), orRemoveOp("5", "tags", "t", add.ORRecord.Tag))
	if _, _, ok := e.getLWW("todos", "a"); ok {
		t.Fatal("removed key still live")
	}
	if _, _, ok := e.getLWW("todos", "nothing"); ok {
		t.Fatal("a PUT without record stored something")
	}
	en, ok, _ := e.st.Get(t.Context(), "tags", "t")
	if ok {
		t.Fatalf("OR key still live: %+v", en)
	}
	// A CLIENT_OP without id is acknowledged as "unknown".
	c.send(&wire.ClientOpMessage{ClientOp: putOp("", "todos", "b", 1, cts("c1"))})
	if ack := expect[*wire.OpAck](c); ack.LastID != "unknown" {
		t.Fatalf("OP_ACK = %+v", ack)
	}
	c.send(&wire.OpBatch{Ops: []wire.ClientOp{}})
	if ack := expect[*wire.OpAck](c); ack.LastID != "unknown" {
		t.Fatalf("empty batch: OP_ACK = %+v", ack)
	}
}

// A batch whose ops are all refused gets one OP_REJECTED per op and its
// OP_ACK, on a connection that reads its messages: refusals answer the
// client's own writes and must not disconnect it as a slow reader.
func TestWrite_manyRejectionsDoNotDisconnectReadingClient(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	c := e.dial(t)
	const n = 5000
	ops := make([]wire.ClientOp, n)
	for i := range ops {
		ops[i] = putOp(itoa(i+1), "_topgun_x", "k"+itoa(i), i, cts("c1"))
	}
	c.send(&wire.OpBatch{Ops: ops})
	for i := 0; i < n; i++ {
		m := expect[*wire.OpRejected](c)
		if m.OpID != itoa(i+1) {
			t.Fatalf("rejection %d is for op %s", i, m.OpID)
		}
	}
	if ack := expect[*wire.OpAck](c); ack.LastID != itoa(n) {
		t.Fatalf("OP_ACK = %+v", ack)
	}
	c.ping()
	if d := e.srv.Stats().SlowClientsDropped; d != 0 {
		t.Fatalf("%d clients dropped as slow", d)
	}
}

// Writes queued on one connection are applied in groups, but never in one
// over the backend's batch limit: a batch of abi.MaxBatchOps ops (the
// largest TOPGUN_MAX_BATCH_OPS allows) queued behind a small one is applied
// on its own, and both are acknowledged. Grouped, the store refused the
// whole group and both got ERROR 500.
func TestWrite_groupsStayWithinTheBatchLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{opts: Options{MaxBatchOps: abi.MaxBatchOps, MaxMessageBytes: 64 << 20}})
	c := e.dial(t)
	release := e.be.holdCommits()
	defer release()
	c.send(&wire.OpBatch{Ops: []wire.ClientOp{putOp("1", "m", "first", 1, cts("c1"))}})
	small := make([]wire.ClientOp, 10)
	for i := range small {
		small[i] = putOp(itoa(2+i), "m", "s"+itoa(i), i, cts("c1"))
	}
	big := make([]wire.ClientOp, abi.MaxBatchOps)
	for i := range big {
		big[i] = putOp(itoa(12+i), "m", "b"+itoa(i), i, cts("c1"))
	}
	c.send(&wire.OpBatch{Ops: small})
	c.send(&wire.OpBatch{Ops: big})
	c.ping() // both batches are queued behind the held commit
	release()
	// Applying 100,000 ops takes tens of seconds under -race on a busy
	// machine: wait longer than for an ordinary answer.
	for _, want := range []string{"1", "11", itoa(11 + abi.MaxBatchOps)} {
		m := c.nextWithin(5 * time.Minute)
		if ack, ok := m.(*wire.OpAck); !ok || ack.LastID != want {
			t.Fatalf("got %s %+v, want OP_ACK with lastId %s", m.Type(), m, want)
		}
	}
}

// TopGun's client sends its whole backlog of unacknowledged ops in one
// OP_BATCH on connect and with every later write (reference §3.5), with
// ascending numeric ids, and marks synced every op whose id is at most the
// OP_ACK's lastId. A backlog of more new ops than MaxBatchOps (an offline
// client's) must still reach the server: refused whole, it would be
// refused on every re-send and never sync. It is applied in parts, each
// acknowledged up to its last op.
func TestWrite_backlogOverBatchLimitIsAcknowledgedInParts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{opts: Options{MaxBatchOps: 10}})
	c := e.dial(t)
	var pending []wire.ClientOp
	for i := 1; i <= 25; i++ {
		pending = append(pending, putOp(itoa(i), "backlog", "k"+itoa(i), i, cts("c1")))
	}
	// A refused op past the first part is refused when its part is
	// applied, not before.
	pending[14] = putOp("15", "_topgun_device_credentials", "x", 1, cts("c1"))
	var rejected []string
	for round := 0; len(pending) > 0; round++ {
		if round == 5 {
			t.Fatalf("%d ops still unacknowledged after %d rounds", len(pending), round)
		}
		c.send(&wire.OpBatch{Ops: pending})
		var ack *wire.OpAck
		for ack == nil {
			switch m := c.next().(type) {
			case *wire.OpAck:
				ack = m
			case *wire.OpRejected:
				rejected = append(rejected, m.OpID)
			default:
				t.Fatalf("round %d: got %s %+v, want OP_ACK", round, m.Type(), m)
			}
		}
		last, err := strconv.Atoi(ack.LastID)
		if err != nil {
			t.Fatalf("round %d: OP_ACK lastId %q is not an op id", round, ack.LastID)
		}
		// As TopGun's client: drop every op up to lastId.
		pending = slices.DeleteFunc(pending, func(op wire.ClientOp) bool {
			id, _ := strconv.Atoi(op.ID)
			return id <= last
		})
	}
	if !slices.Equal(rejected, []string{"15"}) {
		t.Fatalf("OP_REJECTED for %v, want once for op 15", rejected)
	}
	for i := 1; i <= 25; i++ {
		if _, _, ok := e.getLWW("backlog", "k"+itoa(i)); ok != (i != 15) {
			t.Fatalf("key k%d stored = %v", i, ok)
		}
	}
}
