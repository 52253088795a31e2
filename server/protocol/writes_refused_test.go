package protocol

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/coder/websocket"
	"github.com/topgun-go/topgun/internal/faultbackend"
	"github.com/topgun-go/topgun/plugins/null"
	"github.com/topgun-go/topgun/server/wire"
)

// roundTrip sends one OP_BATCH and returns the answers up to its OP_ACK or
// an ERROR, from any goroutine (it fails nothing itself). written, when not
// nil, is called once the frame is sent.
func (c *client) roundTrip(written func(), ops ...wire.ClientOp) ([]wire.Message, error) {
	b, err := wire.Encode(&wire.OpBatch{Ops: ops})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageBinary, b); err != nil {
		return nil, err
	}
	if written != nil {
		written()
	}
	var got []wire.Message
	for {
		select {
		case m := <-c.msgs:
			switch m.(type) {
			case *wire.ServerEvent, *wire.QueryUpdate:
				continue
			}
			got = append(got, m)
			switch m.(type) {
			case *wire.OpAck, *wire.ErrorMessage:
				return got, nil
			}
		case <-c.done:
			return got, fmt.Errorf("connection ended: %v", c.err)
		case <-ctx.Done():
			return got, fmt.Errorf("no OP_ACK or ERROR within %s (got %d messages)", waitFor, len(got))
		}
	}
}

// A write storage refuses for what it holds (a plugin's stricter rule for
// one map, on commit or on the read merging it) is refused alone, with
// OP_REJECTED naming storage's reason and the OP_ACK that ends its
// client's re-sends; writes of other clients gathered into the same group
// commit, or merged behind it, are stored. Before, the group commit failed
// whole: every write in it, and those merged behind it, got ERROR 500 on
// every connection, and the refused write, re-sent for ever by its client,
// kept failing others.
func TestWrites_storageRefusalRejectsOnlyTheRefusedWrite(t *testing.T) {
	t.Parallel()
	inner := null.Open()
	e := newEnv(t, envConfig{backend: &faultbackend.MapRefusing{Backend: inner, Refused: "bad"}})
	const writers, rounds = 4, 40
	good := make([]*client, writers)
	for i := range good {
		good[i] = e.dial(t)
	}
	bad := e.dial(t)

	// Every client's first write waits behind a held commit, so that the
	// store gathers them into one group commit.
	release := e.be.holdCommits()
	defer release()
	first := e.dial(t)
	first.send(&wire.OpBatch{Ops: []wire.ClientOp{putOp("1", "m", "first", "v", cts("f"))}})
	eventually(t, "the first write held", func() bool { return e.be.held.Load() == 1 })

	var wg sync.WaitGroup
	var sent sync.WaitGroup
	sent.Add(writers + 1)
	wg.Add(writers + 1)
	for w := range writers {
		go func() {
			defer wg.Done()
			node := "good" + itoa(w)
			for r := 1; r <= rounds; r++ {
				id := itoa(r)
				op := putOp(id, "m"+itoa(w), "k"+id, "v", cts(node))
				if r%2 == 0 { // an OR write needs a merge read
					op = orAddOp(id, "or"+itoa(w), "k"+id, "v", cts(node))
				}
				got, err := good[w].roundTrip(sentOnce(r, &sent), op)
				if err != nil {
					t.Errorf("writer %d, write %d: %v", w, r, err)
					return
				}
				for _, m := range got {
					switch m := m.(type) {
					case *wire.OpAck:
						if m.LastID != id {
							t.Errorf("writer %d, write %d: OP_ACK %q", w, r, m.LastID)
						}
					case *wire.ErrorMessage:
						t.Errorf("writer %d, write %d failed for another client's refused write: ERROR %d %s", w, r, m.Code, m.Message)
					default:
						t.Errorf("writer %d, write %d: %s %+v", w, r, m.Type(), m)
					}
				}
			}
		}()
	}
	go func() {
		defer wg.Done()
		for r := 1; r <= rounds; r++ {
			id := itoa(r)
			op := putOp(id, "bad", "k"+id, "v", cts("bad"))
			if r%2 == 0 { // refused at the merge's read
				op = orAddOp(id, "bad", "k"+id, "v", cts("bad"))
			}
			got, err := bad.roundTrip(sentOnce(r, &sent), op)
			if err != nil {
				t.Errorf("refused write %d: %v", r, err)
				return
			}
			if len(got) != 2 {
				t.Errorf("refused write %d answered %d messages, want OP_REJECTED and OP_ACK: %+v", r, len(got), got)
				continue
			}
			rej, ok := got[0].(*wire.OpRejected)
			if !ok || rej.OpID != id || !strings.Contains(rej.Reason, `map "bad" is not allowed by this plugin`) || !strings.Contains(rej.Reason, "invalid argument") {
				t.Errorf("refused write %d: %s %+v, want OP_REJECTED with storage's reason", r, got[0].Type(), got[0])
			}
			if ack, ok := got[1].(*wire.OpAck); !ok || ack.LastID != id {
				t.Errorf("refused write %d: then %s %+v, want OP_ACK %q", r, got[1].Type(), got[1], id)
			}
		}
	}()
	sent.Wait()
	eventually(t, "every first write read", func() bool {
		e.srv.mu.RLock()
		defer e.srv.mu.RUnlock()
		for sc := range e.srv.conns {
			sc.mu.Lock()
			p := sc.pending
			sc.mu.Unlock()
			if p < 1 {
				return false
			}
		}
		return true
	})
	release()
	wg.Wait()
	if ack := expect[*wire.OpAck](first); ack.LastID != "1" {
		t.Fatalf("first write: OP_ACK %q", ack.LastID)
	}
	for w := range writers {
		for r := 1; r <= rounds; r += 2 {
			if _, _, ok := e.getLWW("m"+itoa(w), "k"+itoa(r)); !ok {
				t.Errorf("writer %d, write %d not stored", w, r)
			}
		}
	}
	if recs, err := inner.Get(t.Context(), "bad", false, []string{"k1", "k2"}); err != nil || len(recs) != 0 {
		t.Errorf("the refused writes: %d stored, %v", len(recs), err)
	}
}

// sentOnce is the written callback of round r: the first round's marks sent.
func sentOnce(r int, sent *sync.WaitGroup) func() {
	if r != 1 {
		return nil
	}
	return sent.Done
}

// An OP_BATCH mixing writes storage refuses with writes it takes, and a
// POST /sync the same, store the writes it takes and refuse the others one
// by one, with storage's reason: OP_REJECTED and the OP_ACK over them, the
// errors list (400) and the ack for POST /sync. Before, the whole message
// failed (ERROR 500, error 500), at every re-send of its client.
func TestWrites_storageRefusalInAMixedBatchRejectsItsOpsOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{backend: &faultbackend.MapRefusing{Backend: null.Open(), Refused: "bad"}})
	c := e.dial(t)
	ops := []wire.ClientOp{
		putOp("1", "m", "a", "v", cts("c")),
		putOp("2", "bad", "a", "v", cts("c")),
		putOp("3", "m", "b", "v", cts("c")),
		orAddOp("4", "bad", "b", "v", cts("c")),
		putOp("5", "m", "c", "v", cts("c")),
	}
	got, err := c.roundTrip(nil, ops...)
	if err != nil {
		t.Fatal(err)
	}
	var rejected []string
	for _, m := range got[:len(got)-1] {
		rej, ok := m.(*wire.OpRejected)
		if !ok {
			t.Fatalf("got %s %+v, want OP_REJECTED", m.Type(), m)
		}
		if !strings.Contains(rej.Reason, `map "bad" is not allowed by this plugin`) {
			t.Errorf("OP_REJECTED %s: reason %q does not give storage's", rej.OpID, rej.Reason)
		}
		rejected = append(rejected, rej.OpID)
	}
	if strings.Join(rejected, ",") != "2,4" {
		t.Errorf("rejected %v, want 2,4", rejected)
	}
	if ack, ok := got[len(got)-1].(*wire.OpAck); !ok || ack.LastID != "5" {
		t.Fatalf("got %s %+v, want OP_ACK 5", got[len(got)-1].Type(), got[len(got)-1])
	}
	for _, k := range []string{"a", "b", "c"} {
		if _, _, ok := e.getLWW("m", k); !ok {
			t.Errorf("m/%s not stored", k)
		}
	}

	ops = []wire.ClientOp{
		putOp("1", "m", "d", "v", cts("h")),
		putOp("2", "bad", "d", "v", cts("h")),
		putOp("3", "m", "e", "v", cts("h")),
	}
	resp := e.postSync(t, &wire.HTTPSyncRequest{ClientID: "h", ClientHLC: cts("h"), Operations: ops}, "")
	if resp.Ack == nil || resp.Ack.LastID != "3" {
		t.Fatalf("POST /sync ack %+v, errors %+v", resp.Ack, resp.Errors)
	}
	if len(resp.Errors) != 1 || resp.Errors[0].Context != "2" || resp.Errors[0].Code != 400 ||
		!strings.Contains(resp.Errors[0].Message, `map "bad" is not allowed by this plugin`) {
		t.Fatalf("POST /sync errors %+v", resp.Errors)
	}
	for _, k := range []string{"d", "e"} {
		if _, _, ok := e.getLWW("m", k); !ok {
			t.Errorf("m/%s not stored", k)
		}
	}

	// ORMAP_PUSH_DIFF: its ops storage refuses get OP_REJECTED (no op id:
	// a push has none), then the push's OP_ACK; TopGun's client pushes it
	// again at its next sync only.
	c.send(&wire.ORMapPushDiff{MapName: "bad", Entries: []wire.ORMapEntry{{Key: "k",
		Records: []wire.ORMapRecord{{Value: "v", Timestamp: cts("c"), Tag: "t1"}}}}})
	if rej := expect[*wire.OpRejected](c); !strings.Contains(rej.Reason, `map "bad" is not allowed by this plugin`) {
		t.Errorf("push: OP_REJECTED reason %q", rej.Reason)
	}
	expect[*wire.OpAck](c)
}

// A message applied in parts after storage refused one of its ops, whose
// later part then fails for a while (storage unreachable), acknowledges
// the ops stored before the failure: it answered ERROR 500, its client
// sent every op again, and an OR add without a tag (stamped by the server)
// was stored a second time.
func TestWrites_failureWhileAppliedInPartsAcknowledgesStoredOps(t *testing.T) {
	t.Parallel()
	down := &faultbackend.MapUnavailable{Backend: null.Open(), Down: "flaky"}
	e := newEnv(t, envConfig{backend: &faultbackend.MapRefusing{Backend: down, Refused: "bad"}})
	c := e.dial(t)
	ops := []wire.ClientOp{
		{ID: "1", MapName: "or", Key: "k", OpType: "OR_ADD", ORRecord: &wire.ORMapRecord{Value: "v"}},
		putOp("2", "bad", "k", "v", cts("c")),
		putOp("3", "flaky", "k", "v", cts("c")),
	}
	down.Failing.Store(true)
	got, err := c.roundTrip(nil, ops...)
	if err != nil {
		t.Fatal(err)
	}
	down.Failing.Store(false)
	t.Logf("answers: %+v", got)
	// Sent again as TopGun's client does: every op not acknowledged.
	resend := ops
	switch last := got[len(got)-1].(type) {
	case *wire.OpAck:
		if last.LastID != "2" {
			t.Fatalf("OP_ACK %q, want 2: the ops stored before the failure", last.LastID)
		}
		if rej, ok := got[0].(*wire.OpRejected); len(got) != 2 || !ok || rej.OpID != "2" {
			t.Fatalf("answers %+v, want OP_REJECTED 2 then OP_ACK 2", got)
		}
		resend = ops[2:]
	case *wire.ErrorMessage:
		t.Errorf("answered ERROR %d %s though ops 1 and 2 were settled", last.Code, last.Message)
	}
	got, err = c.roundTrip(nil, resend...)
	if err != nil {
		t.Fatal(err)
	}
	if ack, ok := got[len(got)-1].(*wire.OpAck); !ok || ack.LastID != "3" {
		t.Fatalf("re-sent: %+v, want OP_ACK 3", got)
	}
	if _, _, ok := e.getLWW("flaky", "k"); !ok {
		t.Error("flaky/k not stored once storage was back")
	}
	en, ok, err := e.st.Get(t.Context(), "or", "k")
	if err != nil || !ok {
		t.Fatalf("or/k: %v %v", ok, err)
	}
	if n := len(en.Record.ORMap.Records); n != 1 {
		t.Fatalf("or/k holds %d entries, want the one add: %+v", n, en.Record.ORMap.Records)
	}

	// POST /sync the same: ack of the ops stored, the rest sent again.
	ops = []wire.ClientOp{
		{ID: "1", MapName: "or", Key: "h", OpType: "OR_ADD", ORRecord: &wire.ORMapRecord{Value: "v"}},
		putOp("2", "bad", "h", "v", cts("h")),
		putOp("3", "flaky", "h", "v", cts("h")),
	}
	down.Failing.Store(true)
	resp := e.postSync(t, &wire.HTTPSyncRequest{ClientID: "h", ClientHLC: cts("h"), Operations: ops}, "")
	down.Failing.Store(false)
	t.Logf("POST /sync: ack %+v, errors %+v", resp.Ack, resp.Errors)
	resend = ops
	if resp.Ack == nil {
		t.Errorf("POST /sync: no ack though ops 1 and 2 were settled: errors %+v", resp.Errors)
	} else if resp.Ack.LastID != "2" || len(resp.Errors) != 1 || resp.Errors[0].Context != "2" || resp.Errors[0].Code != 400 {
		t.Fatalf("POST /sync: ack %+v, errors %+v; want ack 2 and op 2 refused", resp.Ack, resp.Errors)
	} else {
		resend = ops[2:]
	}
	resp = e.postSync(t, &wire.HTTPSyncRequest{ClientID: "h", ClientHLC: cts("h"), Operations: resend}, "")
	if resp.Ack == nil || resp.Ack.LastID != "3" {
		t.Fatalf("POST /sync re-sent: ack %+v, errors %+v", resp.Ack, resp.Errors)
	}
	en, ok, err = e.st.Get(t.Context(), "or", "h")
	if err != nil || !ok {
		t.Fatalf("or/h: %v %v", ok, err)
	}
	if n := len(en.Record.ORMap.Records); n != 1 {
		t.Fatalf("POST /sync: or/h holds %d entries, want the one add: %+v", n, en.Record.ORMap.Records)
	}
}

// Writes TopGun's client queued while the store was busy, applied as one
// group, whose second message crosses the point where applying in parts
// failed: the first is acknowledged whole, the second up to its last op
// stored (after the rejection of the op storage refused), and once the
// client sends the rest again the connection holds no cut-off back.
func TestWrites_failureWhileAppliedInPartsCutsTheGroupsJobAtIt(t *testing.T) {
	t.Parallel()
	down := &faultbackend.MapUnavailable{Backend: null.Open(), Down: "flaky"}
	e := newEnv(t, envConfig{backend: &faultbackend.MapRefusing{Backend: down, Refused: "bad"}})
	c := e.dial(t)
	release := e.be.holdCommits()
	defer release()
	all := []wire.ClientOp{
		putOp("1", "m", "first", "v", cts("c")),
		{ID: "2", MapName: "or", Key: "k", OpType: "OR_ADD", ORRecord: &wire.ORMapRecord{Value: "v", Timestamp: cts("c"), Tag: "t2"}},
		putOp("3", "bad", "k", "v", cts("c")),
		putOp("4", "m", "a", "v", cts("c")),
		putOp("5", "flaky", "k", "v", cts("c")),
		putOp("6", "m", "b", "v", cts("c")),
	}
	c.send(&wire.OpBatch{Ops: all[:1]})
	eventually(t, "the first write held", func() bool { return e.be.held.Load() == 1 })
	// As TopGun's client: each write re-sends those not acknowledged.
	c.send(&wire.OpBatch{Ops: all[:2]})
	c.send(&wire.OpBatch{Ops: all})
	var sc *conn
	eventually(t, "the writes queued", func() bool {
		e.srv.mu.RLock()
		for k := range e.srv.conns {
			sc = k
		}
		e.srv.mu.RUnlock()
		sc.mu.Lock()
		defer sc.mu.Unlock()
		return sc.pending >= 3
	})
	down.Failing.Store(true)
	release()
	var got []string
	for len(got) < 4 {
		switch m := c.next().(type) {
		case *wire.OpAck:
			got = append(got, "ack "+m.LastID)
		case *wire.OpRejected:
			got = append(got, "rejected "+m.OpID)
		case *wire.ErrorMessage:
			got = append(got, fmt.Sprintf("error %d", m.Code))
		}
	}
	if want := []string{"ack 1", "ack 2", "rejected 3", "ack 3"}; !slices.Equal(got, want) {
		t.Fatalf("answers %v, want %v", got, want)
	}
	down.Failing.Store(false)
	resent, err := c.roundTrip(nil, all[3:]...)
	if err != nil {
		t.Fatal(err)
	}
	if ack, ok := resent[len(resent)-1].(*wire.OpAck); !ok || ack.LastID != "6" {
		t.Fatalf("re-sent: %+v, want OP_ACK 6", resent)
	}
	if n := sc.unstoredN.Load(); n != 0 || sc.writeFailed.Load() {
		t.Fatalf("%d ops still unstored (write failed: %v): cut-offs held back", n, sc.writeFailed.Load())
	}
	en, ok, err := e.st.Get(t.Context(), "or", "k")
	if err != nil || !ok || len(en.Record.ORMap.Records) != 1 {
		t.Fatalf("or/k: %+v %v %v, want the one add", en, ok, err)
	}
}
