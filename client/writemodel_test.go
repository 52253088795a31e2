package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/plugins/null"
	"github.com/topgun-go/topgun/server/protocol"
	"github.com/topgun-go/topgun/server/record"
	"github.com/topgun-go/topgun/server/store"
	"github.com/topgun-go/topgun/server/wire"
)

// Outcomes of one op of a write call, as its call's result tells.
const (
	wmUnknown  = iota // ctx ended, superseded, or after the op that failed the call
	wmAcked           // the call returned nil, or failed on a later op
	wmRejected        // OP_REJECTED: not applied
)

// wmOp is one op of a write call of the model test.
type wmOp struct {
	client     int
	call       int // index of its call in the client's calls
	op         Op
	lo, hi     wire.Timestamp // the client's clock before the call and after it returned
	start, end time.Time
	status     int
	bad        bool // written to a reserved map or a key the store refuses
}

// The write model's maps and keys.
const (
	wmLWW      = "wm-lww"
	wmOR       = "wm-or"
	wmReserved = "_topgun_wm"
	wmBadKey   = "bad\x00key" // refused by the store (a NUL byte), not by the client
)

var wmLWWKeys = []string{"k0", "k1", "k2"}
var wmORKeys = []string{"o0", "o1"}

func tsFromRecord(t record.Timestamp) wire.Timestamp {
	return wire.Timestamp{Millis: t.Millis, Counter: t.Counter, NodeID: t.NodeID}
}

func wmCompare(a, b wire.Timestamp) int {
	return record.Timestamp{Millis: a.Millis, Counter: a.Counter, NodeID: a.NodeID}.Compare(
		record.Timestamp{Millis: b.Millis, Counter: b.Counter, NodeID: b.NodeID})
}

// noGoroutinesLeft fails t unless the client's goroutines are back to
// before within waitFor.
func noGoroutinesLeft(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	n, dump := clientGoroutines()
	for n > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		n, dump = clientGoroutines()
	}
	if n > before {
		t.Errorf("%d client goroutines left after Close (%d before)\n%s", n, before, dump)
	}
}

// clientGoroutines counts the goroutines running the clients' code.
func clientGoroutines() (int, string) {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	var dump []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "topgun/client.(*Client)") || strings.Contains(g, "topgun/client.(*notifier)") {
			n++
			dump = append(dump, g)
		}
	}
	return n, strings.Join(dump, "\n\n")
}

// Two clients, three goroutines each, make random LWW puts, removes, OR adds
// and removes and mixed batches (with ops the server refuses: a reserved
// map, a key the store refuses) on a few shared keys, many with contexts
// that end at once or within milliseconds, while their connections are cut
// again and again and the server acknowledges batches only in part
// (MaxBatchOps 3, below the client's). Every call's result must hold once
// the writes are quiescent: an op whose call succeeded is applied (its
// record, or a newer one by HLC timestamp, is what the store holds), a
// rejected op is not, what the store holds was written by an op that was
// not rejected, ErrSuperseded comes only with another write of the key by
// the same client, no call fails otherwise (or, in the runs that close a
// client while its calls run, with anything but ErrClosed), and no client
// goroutine is left after Close. Some runs add heartbeats, whose PINGs
// contend for the send lock, and some fail every seventh commit.
func TestWrites_modelAcrossForcedReconnects(t *testing.T) {
	for seed := uint64(1); seed <= 3; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { runWriteModel(t, seed) })
	}
}

func runWriteModel(t *testing.T, seed uint64) {
	t.Logf("seed %d", seed)
	before, _ := clientGoroutines()
	quiet := hclog.New(&hclog.LoggerOptions{Name: "test", Level: hclog.Warn, Output: testWriter{t}})
	// In some runs commits fail now and then: the server answers ERROR 500
	// and the client sends the write again.
	be := &failingApply{Backend: null.Open()}
	if seed >= 2 {
		be.every = 7
	}
	srvURL, st := serveBackend(t, be, 0, func(o *protocol.Options) {
		o.Logger = quiet
		if seed%3 != 0 {
			o.MaxBatchOps = 3
		}
	})
	proxy, url := newCutProxy(t, srvURL)
	const clients, workers, steps, maxCuts = 2, 3, 50, 30

	var mu sync.Mutex
	var ops []*wmOp
	calls := make([][][]*wmOp, clients) // client → call → its ops
	orTags := map[string][]string{}     // key → tags of adds made (any outcome)
	var superseded [][]*wmOp            // calls that failed with ErrSuperseded

	cs := make([]*Client, clients)
	for i := range cs {
		o := testOptions(t)
		o.Logger = quiet
		o.MaxBatchOps = 4
		o.WriteTimeout = 2 * time.Second
		if seed%2 == 0 {
			o.PingInterval = 5 * time.Millisecond
			o.PongTimeout = 10 * time.Second
		}
		cs[i] = dial(t, url, o)
	}
	// In some runs client 1 is closed while its calls run.
	closeAt := -1
	if seed%4 == 1 {
		closeAt = int(seed*7) % (steps * workers)
	}
	var c1calls atomic.Int32
	closed := make(chan struct{})

	var cuts atomic.Int32
	stopCuts := make(chan struct{})
	cutsDone := make(chan struct{})
	go func() {
		defer close(cutsDone)
		rng := rand.New(rand.NewPCG(seed, 99))
		for cuts.Load() < maxCuts {
			select {
			case <-stopCuts:
				return
			case <-time.After(time.Duration(3+rng.IntN(15)) * time.Millisecond):
			}
			proxy.cut()
			cuts.Add(1)
		}
	}()

	var wg sync.WaitGroup
	for ci, c := range cs {
		for w := 0; w < workers; w++ {
			rng := rand.New(rand.NewPCG(seed, uint64(ci*workers+w+1)))
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < steps; i++ {
					val := fmt.Sprintf("c%d-w%d-%d", ci, w, i)
					lwwOp := func(n int) Op {
						k := wmLWWKeys[rng.IntN(len(wmLWWKeys))]
						if rng.IntN(4) == 0 {
							return Op{Map: wmLWW, Key: k, Remove: true}
						}
						return Op{Map: wmLWW, Key: k, Value: fmt.Sprintf("%s/%d", val, n)}
					}
					orOp := func(n int) Op {
						k := wmORKeys[rng.IntN(len(wmORKeys))]
						mu.Lock()
						tags := orTags[k]
						mu.Unlock()
						if len(tags) > 0 && rng.IntN(3) == 0 {
							return Op{Map: wmOR, Key: k, OR: true, Remove: true, Tag: tags[rng.IntN(len(tags))]}
						}
						return Op{Map: wmOR, Key: k, OR: true, Value: fmt.Sprintf("%s/%d", val, n), Tag: c.NewTag()}
					}
					var batch []Op
					switch r := rng.IntN(10); {
					case r < 3:
						batch = []Op{lwwOp(0)}
					case r < 5:
						batch = []Op{orOp(0)}
					default:
						for n := range 2 + rng.IntN(5) {
							switch rng.IntN(9) {
							case 0:
								batch = append(batch, Op{Map: wmReserved, Key: "r", Value: val})
							case 1:
								batch = append(batch, Op{Map: wmLWW, Key: wmBadKey, Value: val})
							case 2, 3, 4:
								batch = append(batch, orOp(n))
							default:
								batch = append(batch, lwwOp(n))
							}
						}
					}
					mu.Lock()
					call := len(calls[ci])
					rec := make([]*wmOp, len(batch))
					for n, o := range batch {
						rec[n] = &wmOp{client: ci, call: call, op: o, bad: o.Map == wmReserved || o.Key == wmBadKey}
						if o.OR && !o.Remove {
							orTags[o.Key] = append(orTags[o.Key], o.Tag)
						}
					}
					calls[ci] = append(calls[ci], rec)
					ops = append(ops, rec...)
					mu.Unlock()

					ctx, cancel := context.WithTimeout(context.Background(), waitFor)
					switch rng.IntN(5) {
					case 0:
						cancel()
						ctx, cancel = context.WithCancel(context.Background())
						cancel()
					case 1:
						cancel()
						ctx, cancel = context.WithTimeout(context.Background(), time.Duration(1+rng.IntN(20))*time.Millisecond)
					}
					lo, start := c.hlc.Now(), time.Now()
					var err error
					if len(batch) == 1 && batch[0].OR && !batch[0].Remove {
						// ORAdd picks its own tag.
						var tag string
						tag, err = c.ORAdd(ctx, batch[0].Map, batch[0].Key, batch[0].Value, 0)
						mu.Lock()
						orTags[batch[0].Key] = append(orTags[batch[0].Key], tag)
						rec[0].op.Tag = tag
						mu.Unlock()
					} else {
						err = c.Batch(ctx, batch...)
					}
					ctxErr := ctx.Err()
					cancel()
					if ci == 1 && int(c1calls.Add(1)) == closeAt {
						go func() { _ = c.Close(); close(closed) }()
					}
					hi, end := c.hlc.Now(), time.Now()

					mu.Lock()
					for _, r := range rec {
						r.lo, r.hi, r.start, r.end = lo, hi, start, end
					}
					var rej *RejectedError
					switch {
					case err == nil:
						for _, r := range rec {
							if r.bad {
								t.Errorf("client %d: %+v succeeded, want rejected", ci, r.op)
							}
							r.status = wmAcked
						}
					case errors.As(err, &rej):
						// Batch reports the first op that failed, in order:
						// the ones before it were acknowledged.
						at := slices.IndexFunc(rec, func(r *wmOp) bool { return r.bad })
						if at < 0 {
							t.Errorf("client %d: a call with no refused op was rejected: %v (%+v)", ci, err, batch)
							break
						}
						for _, r := range rec[:at] {
							r.status = wmAcked
						}
						rec[at].status = wmRejected
					case errors.Is(err, ErrSuperseded):
						superseded = append(superseded, rec)
					case errors.Is(err, ErrClosed) && ci == 1 && closeAt >= 0:
					case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
						if ctxErr == nil {
							t.Errorf("client %d: %v before the call's ctx ended (%+v)", ci, err, batch)
						}
					default:
						t.Errorf("client %d: unexpected error %v (%+v)", ci, err, batch)
					}
					mu.Unlock()
				}
			}()
		}
	}
	waited := make(chan struct{})
	go func() { wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(2 * waitFor):
		buf := make([]byte, 4<<20)
		t.Fatalf("write calls did not return\n%s", buf[:runtime.Stack(buf, true)])
	}
	close(stopCuts)
	<-cutsDone
	if t.Failed() {
		return
	}

	// Quiescence: a last write sends what callers whose ctx ended left
	// queued, and every write is then acknowledged.
	for ci, c := range cs {
		if ci == 1 && closeAt >= 0 {
			<-closed
			continue
		}
		if err := c.Put(ctxT(t), wmLWW, "last", ci); err != nil {
			t.Fatalf("client %d: last Put: %v", ci, err)
		}
		eventually(t, fmt.Sprintf("client %d with no pending writes", ci), func() bool { return c.Pending() == 0 })
	}

	// ErrSuperseded needs a later write of the key by the same client:
	// another op of the call, or of a call that began before it returned.
	for _, rec := range superseded {
		later := false
		for i, r := range rec {
			if r.op.OR || r.op.Map != wmLWW {
				continue
			}
			for _, o := range ops {
				if o.client == r.client && o.op.Map == wmLWW && o.op.Key == r.op.Key &&
					((o.call == r.call && slices.Index(rec, o) > i) || (o.call != r.call && o.start.Before(r.end))) {
					later = true
				}
			}
		}
		if !later {
			t.Errorf("client %d: ErrSuperseded with no other write of its keys (%+v)", rec[0].client, rec[0].op)
		}
	}

	lwwKeys := append(slices.Clone(wmLWWKeys), wmBadKey)
	es, err := st.Entries(ctxT(t), wmLWW, store.KindLWW, lwwKeys)
	if err != nil {
		t.Fatal(err)
	}
	held := map[string]store.Entry{}
	for _, e := range es {
		held[e.Key] = e
	}
	nAcked, nUnknown, nRejected := 0, 0, 0
	for _, o := range ops {
		switch o.status {
		case wmAcked:
			nAcked++
		case wmRejected:
			nRejected++
		default:
			nUnknown++
		}
	}
	t.Logf("%d ops: %d acknowledged, %d unknown, %d rejected; %d calls superseded; %d cuts", len(ops), nAcked, nUnknown, nRejected, len(superseded), cuts.Load())
	if _, ok := held[wmBadKey]; ok {
		t.Errorf("the store holds the refused key %q", wmBadKey)
	}
	for _, k := range wmLWWKeys {
		e, ok := held[k]
		var keyOps []*wmOp
		for _, o := range ops {
			if o.op.Map == wmLWW && o.op.Key == k {
				keyOps = append(keyOps, o)
			}
		}
		if !ok {
			for _, o := range keyOps {
				if o.status == wmAcked {
					t.Errorf("key %s: holds nothing, but %+v was acknowledged", k, o.op)
				}
			}
			continue
		}
		if e.Record.Kind != record.KindLWW {
			t.Errorf("key %s: holds a %v record", k, e.Record.Kind)
			continue
		}
		ts := tsFromRecord(e.Record.LWW.Timestamp)
		val := e.Record.LWW.Value
		// The op that wrote it: its value (or a remove), stamped within
		// its call.
		writer := slices.IndexFunc(keyOps, func(o *wmOp) bool {
			if wmCompare(o.lo, ts) >= 0 || wmCompare(ts, o.hi) >= 0 {
				return false
			}
			if o.op.Remove {
				return val.IsNull()
			}
			return val.Type() == record.TypeString && val.Text() == o.op.Value
		})
		if writer < 0 {
			t.Errorf("key %s: holds %v at %v, which no op wrote", k, val, ts)
			continue
		}
		if w := keyOps[writer]; w.status == wmRejected {
			t.Errorf("key %s: holds the value of the rejected op %+v", k, w.op)
		}
		for _, o := range keyOps {
			if o.status == wmAcked && wmCompare(ts, o.lo) <= 0 {
				t.Errorf("key %s: acknowledged op %+v (client %d, stamped after %v) is lost: the store holds %v at %v",
					k, o.op, o.client, o.lo, val, ts)
			}
		}
	}

	es, err = st.Entries(ctxT(t), wmOR, store.KindOR, wmORKeys)
	if err != nil {
		t.Fatal(err)
	}
	type orKey struct {
		records    map[string]string
		tombstones map[string]bool
	}
	orHeld := map[string]orKey{}
	for _, e := range es {
		s := orKey{records: map[string]string{}, tombstones: map[string]bool{}}
		for _, r := range e.Record.ORMap.Records {
			s.records[r.Tag] = r.Value.Text()
		}
		for _, tomb := range e.Record.ORMap.Tombstones {
			s.tombstones[tomb] = true
		}
		orHeld[e.Key] = s
	}
	adds := map[string]*wmOp{}
	removedBy := map[string][]*wmOp{}
	for _, o := range ops {
		if o.op.Map != wmOR {
			continue
		}
		if o.op.Remove {
			removedBy[o.op.Tag] = append(removedBy[o.op.Tag], o)
		} else {
			adds[o.op.Tag] = o
		}
	}
	for tag, o := range adds {
		s := orHeld[o.op.Key]
		v, present := s.records[tag]
		maybeRemoved := slices.ContainsFunc(removedBy[tag], func(r *wmOp) bool { return r.status != wmRejected })
		switch {
		case o.status == wmAcked && !maybeRemoved && (!present || v != o.op.Value):
			t.Errorf("OR key %s: acknowledged add %s of %v lost (holds %q, %v)", o.op.Key, tag, o.op.Value, v, present)
		case o.status == wmRejected && present:
			t.Errorf("OR key %s: rejected add %s is present", o.op.Key, tag)
		}
	}
	for tag, rs := range removedBy {
		for _, r := range rs {
			s := orHeld[r.op.Key]
			if r.status == wmAcked && (!s.tombstones[tag] || s.records[tag] != "") {
				t.Errorf("OR key %s: acknowledged remove of %s: tombstoned %v, still held %v", r.op.Key, tag, s.tombstones[tag], s.records[tag] != "")
			}
		}
	}
	for k, s := range orHeld {
		for tag, v := range s.records {
			o := adds[tag]
			if o == nil || o.op.Key != k || o.op.Value != v {
				t.Errorf("OR key %s: holds %s=%q that no add made", k, tag, v)
			}
		}
	}

	for _, c := range cs {
		_ = c.Close()
	}
	noGoroutinesLeft(t, before)
}
