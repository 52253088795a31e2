package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/topgun-go/topgun/server/wire"
)

// orValues returns the values of an ORGet entry's records, sorted, and its
// tags.
func orValues(t *testing.T, e wire.ORMapEntry) (vals, tags []string) {
	t.Helper()
	for _, r := range e.Records {
		s, ok := r.Value.(string)
		if !ok {
			t.Fatalf("record %+v: value is not a string", r)
		}
		vals = append(vals, s)
		tags = append(tags, r.Tag)
	}
	slices.Sort(vals)
	slices.Sort(tags)
	return vals, tags
}

// nextEvent returns the next map event of sub, failing after waitFor.
func nextEvent(t *testing.T, sub *Subscription) *wire.ServerEvent {
	t.Helper()
	for {
		select {
		case u, ok := <-sub.Updates:
			if !ok {
				t.Fatalf("subscription closed: %v", sub.Err())
			}
			if u.Event != nil {
				return u.Event
			}
		case <-time.After(waitFor):
			t.Fatal("no map event")
		}
	}
}

func TestOR_addRemoveGetAgainstServer(t *testing.T) {
	t.Parallel()
	url := realServer(t)
	c1 := dial(t, url, testOptions(t))
	c2 := dial(t, url, testOptions(t))
	sub, err := c1.Subscribe(ctxT(t), "tags", nil)
	if err != nil {
		t.Fatal(err)
	}

	t1, err := c2.ORAdd(ctxT(t), "tags", "k", "a", 0)
	if err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, sub); ev.EventType != "OR_ADD" || ev.Key != "k" || ev.ORRecord == nil || ev.ORRecord.Tag != t1 || ev.ORRecord.Value != "a" {
		t.Fatalf("event %+v (record %+v), want OR_ADD of a tagged %s", ev, ev.ORRecord, t1)
	}
	if t1 != "" && t1 == c2.NewTag() {
		t.Fatal("NewTag repeated a tag")
	}
	// Both adds are kept beside each other: an OR set, not LWW.
	if _, err := c1.ORAdd(ctxT(t), "tags", "k", "b", time.Hour); err != nil {
		t.Fatal(err)
	}
	es, err := c2.ORGet(ctxT(t), "tags", "k", "none", "k")
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || es[0].Key != "k" || es[1].Key != "none" || len(es[1].Records) != 0 {
		t.Fatalf("ORGet = %+v, want k then an empty none", es)
	}
	if vals, _ := orValues(t, es[0]); !slices.Equal(vals, []string{"a", "b"}) {
		t.Fatalf("values %v, want [a b]", vals)
	}
	for _, r := range es[0].Records {
		if r.Value == "b" && (r.TTLMs == nil || *r.TTLMs != uint64(time.Hour.Milliseconds())) {
			t.Fatalf("the add with a TTL came back with ttlMs %v", r.TTLMs)
		}
	}

	if err := c2.ORRemove(ctxT(t), "tags", "k", t1); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, sub); ev.EventType != "OR_REMOVE" || ev.ORTag != t1 {
		t.Fatalf("event %+v, want OR_REMOVE of %s", ev, t1)
	}
	// An add of a removed tag arriving later is ignored: remove wins.
	if err := c1.Batch(ctxT(t), Op{Map: "tags", Key: "k", Value: "again", OR: true, Tag: t1}); err != nil {
		t.Fatal(err)
	}
	es, err = c1.ORGet(ctxT(t), "tags", "k")
	if err != nil {
		t.Fatal(err)
	}
	if vals, _ := orValues(t, es[0]); !slices.Equal(vals, []string{"b"}) || !slices.Equal(es[0].Tombstones, []string{t1}) {
		t.Fatalf("after the remove: values %v, tombstones %v; want [b], [%s]", vals, es[0].Tombstones, t1)
	}
}

func TestOR_refusals(t *testing.T) {
	t.Parallel()
	url := realServer(t)
	c := dial(t, url, testOptions(t))
	if err := c.ORRemove(ctxT(t), "tags", "k", ""); err == nil {
		t.Fatal("an OR remove without a tag was sent")
	}
	if err := c.Put(ctxT(t), "tags", "lww", "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ORAdd(ctxT(t), "tags", "lww", "y", 0); !errors.Is(err, ErrRejected) {
		t.Fatalf("OR add on an LWW key: %v, want ErrRejected", err)
	}
	var ge *ORGetError
	if _, err := c.ORGet(ctxT(t), "_topgun_internal", "k"); !errors.As(err, &ge) || ge.Code != 403 {
		t.Fatalf("ORGet of a reserved map: %v, want an *ORGetError 403", err)
	}
	// The server cannot decode a key that is not valid UTF-8: its ERROR
	// answers that request.
	if _, err := c.ORGet(ctxT(t), "tags", "k\xff"); !errors.As(err, &ge) || ge.Code != 400 {
		t.Fatalf("ORGet of a key that is not UTF-8: %v, want an *ORGetError 400", err)
	}
	// The refusals answered their own requests: the next read gets its answer.
	es, err := c.ORGet(ctxT(t), "tags", "lww")
	if err != nil || len(es) != 1 || es[0].Key != "lww" || len(es[0].Records) != 0 {
		t.Fatalf("ORGet after a refused one = %+v, %v", es, err)
	}
}

// An ORGet given up before its answer leaves the answer to nobody: the
// next ORGet of the same key gets its own, not the late one.
func TestORGet_abandonedAnswerIsNotTakenByTheNext(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, "")
	held := make(chan *fakeConn, 1)
	var n atomic.Int32
	fs.setIntercept(func(c *fakeConn, m wire.Message) bool {
		r, ok := m.(*wire.ORMapDiffRequest)
		if !ok {
			return false
		}
		if n.Add(1) == 1 {
			held <- c // answered with the second
			return true
		}
		fs.send(c, &wire.ORMapDiffResponse{MapName: r.MapName, Entries: []wire.ORMapEntry{{Key: "k", Records: []wire.ORMapRecord{}, Tombstones: []string{}}}})
		fs.send(c, &wire.ORMapDiffResponse{MapName: r.MapName, Entries: []wire.ORMapEntry{{Key: "k",
			Records: []wire.ORMapRecord{{Value: "v", Tag: "1:0:n"}}, Tombstones: []string{}}}})
		return true
	})
	c := dial(t, fs.URL, testOptions(t))
	ctx, cancel := context.WithCancel(ctxT(t))
	go func() {
		<-held
		// Cancelled once its request is written (a write cut short drops
		// the connection): the PING goes out after it, under the send lock.
		_, _ = c.Ping(ctxT(t))
		cancel()
	}()
	if _, err := c.ORGet(ctx, "m", "k"); !errors.Is(err, context.Canceled) {
		t.Fatalf("first ORGet: %v, want canceled", err)
	}
	es, err := c.ORGet(ctxT(t), "m", "k")
	if err != nil || len(es) != 1 || es[0].Key != "k" || len(es[0].Records) != 1 {
		t.Fatalf("second ORGet = %+v, %v; want its own answer", es, err)
	}
}

// A request the server never answers fails once a later one is answered,
// and does not take that answer.
func TestORGet_unansweredFailsWhenALaterIsAnswered(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, "")
	seen := make(chan struct{}, 1)
	fs.setIntercept(func(c *fakeConn, m wire.Message) bool {
		r, ok := m.(*wire.ORMapDiffRequest)
		if !ok {
			return false
		}
		if r.Keys[0] == "lost" {
			seen <- struct{}{}
			return true
		}
		fs.send(c, &wire.ORMapDiffResponse{MapName: r.MapName, Entries: []wire.ORMapEntry{{Key: r.Keys[0], Records: []wire.ORMapRecord{}, Tombstones: []string{}}}})
		return true
	})
	c := dial(t, fs.URL, testOptions(t))
	lost := make(chan error, 1)
	go func() { _, err := c.ORGet(ctxT(t), "m", "lost"); lost <- err }()
	<-seen
	es, err := c.ORGet(ctxT(t), "m", "k")
	if err != nil || len(es) != 1 || es[0].Key != "k" {
		t.Fatalf("second ORGet = %+v, %v", es, err)
	}
	if err := <-lost; err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("unanswered ORGet: %v, want it failed by the later answer", err)
	}
}

// A connection that drops before the answer fails the ORGet.
func TestORGet_disconnected(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, "")
	fs.setIntercept(func(c *fakeConn, m wire.Message) bool {
		if _, ok := m.(*wire.ORMapDiffRequest); ok {
			go fs.dropAll()
			return true
		}
		return false
	})
	c := dial(t, fs.URL, testOptions(t))
	if _, err := c.ORGet(ctxT(t), "m", "k"); !errors.Is(err, ErrDisconnected) {
		t.Fatalf("ORGet: %v, want ErrDisconnected", err)
	}
}

func TestLiveEntries_leavesOutExpired(t *testing.T) {
	ttl := func(ms uint64) *uint64 { return &ms }
	now := time.UnixMilli(10_000)
	es := liveEntries([]wire.ORMapEntry{{Key: "k", Records: []wire.ORMapRecord{
		{Value: "forever", Timestamp: wire.Timestamp{Millis: 1}},
		{Value: "zero", Timestamp: wire.Timestamp{Millis: 1}, TTLMs: ttl(0)},
		{Value: "expired", Timestamp: wire.Timestamp{Millis: 9_000}, TTLMs: ttl(1_000)},
		{Value: "live", Timestamp: wire.Timestamp{Millis: 9_000}, TTLMs: ttl(1_001)},
		{Value: "huge", Timestamp: wire.Timestamp{Millis: 9_000}, TTLMs: ttl(^uint64(0))},
		{Value: "future", Timestamp: wire.Timestamp{Millis: 20_000}, TTLMs: ttl(1)},
	}}}, now)
	var got []string
	for _, r := range es[0].Records {
		got = append(got, r.Value.(string))
	}
	if want := []string{"forever", "zero", "live", "huge", "future"}; !slices.Equal(got, want) {
		t.Fatalf("live %v, want %v", got, want)
	}
}

// TopGun's server answers ORMAP_DIFF_REQUEST with one entry per key named
// (its sync handler), repeats included: ORGet takes that answer too, and
// still returns one entry per distinct key.
func TestORGet_repeatedKeysAnsweredPerKeyNamed(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, "")
	fs.setIntercept(func(c *fakeConn, m wire.Message) bool {
		r, ok := m.(*wire.ORMapDiffRequest)
		if !ok {
			return false
		}
		es := make([]wire.ORMapEntry, 0, len(r.Keys))
		for _, k := range r.Keys {
			es = append(es, wire.ORMapEntry{Key: k, Records: []wire.ORMapRecord{{Value: "v-" + k, Tag: "1:0:n"}}, Tombstones: []string{}})
		}
		fs.send(c, &wire.ORMapDiffResponse{MapName: r.MapName, Entries: es})
		return true
	})
	c := dial(t, fs.URL, testOptions(t))
	es, err := c.ORGet(ctxT(t), "m", "a", "b", "a")
	if err != nil {
		t.Fatalf("ORGet: %v", err)
	}
	if len(es) != 2 || es[0].Key != "a" || es[1].Key != "b" || len(es[0].Records) != 1 || len(es[1].Records) != 1 {
		t.Fatalf("ORGet = %+v; want one entry each for a and b", es)
	}
}

// A tag (or map name, or key) that is not valid UTF-8 can never be sent:
// the server cannot decode the frame and answers an ERROR naming no op, so
// the write would wait for an ack forever and, replayed after a reconnect
// in one OP_BATCH with every other unacknowledged write, keep those from
// being acknowledged too. Batch refuses it at once instead.
func TestBatch_invalidUTF8IsRefusedAndDoesNotBlockTheReplay(t *testing.T) {
	t.Parallel()
	proxy, url := newCutProxy(t, realServer(t))
	c := dial(t, url, testOptions(t))
	for _, tc := range []struct {
		name string
		op   Op
	}{
		{"OR remove tag", Op{Map: "tags", Key: "k", OR: true, Remove: true, Tag: "\xff"}},
		{"OR add tag", Op{Map: "tags", Key: "k", Value: "v", OR: true, Tag: "1:0:\xff"}},
		{"key", Op{Map: "tags", Key: "k\xff", Value: "v", OR: true}},
		{"map", Op{Map: "tags\xff", Key: "k", Value: "v"}},
	} {
		// Bounded: without the check the write waits for an ack that
		// never comes, and stays queued.
		ctx, cancel := context.WithTimeout(ctxT(t), time.Second)
		err := c.Batch(ctx, tc.op)
		cancel()
		if err == nil || errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: Batch = %v, want it refused", tc.name, err)
		}
	}
	if n := c.Pending(); n != 0 {
		t.Errorf("%d writes still queued", n)
	}
	// The replay after a cut must carry a good write through.
	proxy.cut()
	if err := c.Put(ctxT(t), "docs", "k", "v"); err != nil {
		t.Fatalf("Put after the cut: %v", err)
	}
}

// A request write cut off by WriteTimeout (a server that stopped reading)
// drops the connection: the ORGet fails with ErrDisconnected, as one whose
// connection drops while it waits does, and not with the write's own
// deadline, which the caller would take for its ctx's.
func TestORGet_writeCutOffIsDisconnected(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, "")
	o := testOptions(t)
	o.WriteTimeout = 500 * time.Millisecond
	c := dial(t, fs.URL, o)
	stall(t, fs, c)
	keys := make([]string, 19000) // about 1.9 MB, under the 2 MiB frame limit
	for i := range keys {
		keys[i] = fmt.Sprintf("%0100d", i)
	}
	// Some requests fill the socket buffers, the next write blocks and
	// is cut off.
	type result struct {
		err    error
		ctxErr error
	}
	results := make(chan result, 10)
	for range 10 {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := c.ORGet(ctx, "m", keys...)
			results <- result{err, ctx.Err()}
		}()
	}
	for range 10 {
		r := <-results
		if r.ctxErr == nil && errors.Is(r.err, context.DeadlineExceeded) {
			t.Errorf("ORGet = %v, a deadline while its ctx had not ended", r.err)
		}
	}
	// A write was cut off: the connection was replaced.
	eventually(t, "a new connection", func() bool { return fs.upgrades.Load() > 1 })
}

// An ERROR answering another message that quotes "ORMAP_DIFF_REQUEST" (a
// map name or key chosen by a user) does not fail a waiting ORGet, which
// then gets its own answer.
func TestORGet_otherErrorNamingTheTypeIsNotItsAnswer(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, "")
	fs.setIntercept(func(c *fakeConn, m wire.Message) bool {
		r, ok := m.(*wire.ORMapDiffRequest)
		if !ok {
			return false
		}
		fs.send(c, &wire.ErrorMessage{Code: 403, Message: `protocol: CLIENT_OP refused: map "ORMAP_DIFF_REQUEST" is reserved for the server`})
		fs.send(c, &wire.ORMapDiffResponse{MapName: r.MapName, Entries: []wire.ORMapEntry{{Key: "k",
			Records: []wire.ORMapRecord{{Value: "v", Tag: "1:0:n"}}, Tombstones: []string{}}}})
		return true
	})
	c := dial(t, fs.URL, testOptions(t))
	es, err := c.ORGet(ctxT(t), "m", "k")
	if err != nil || len(es) != 1 || len(es[0].Records) != 1 {
		t.Fatalf("ORGet = %+v, %v; want its own answer", es, err)
	}
}

// An answer over Options.MaxReadBytes, dropped unread, fails its ORGet at
// once; the next ORGet of the same keys gets its own answer, not the
// dropped one's place.
func TestORGet_answerOverMaxReadBytes(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, "")
	var n atomic.Int32
	fs.setIntercept(func(c *fakeConn, m wire.Message) bool {
		r, ok := m.(*wire.ORMapDiffRequest)
		if !ok {
			return false
		}
		v := "small"
		if n.Add(1) == 1 {
			v = strings.Repeat("x", 4096)
		}
		fs.send(c, &wire.ORMapDiffResponse{MapName: r.MapName, Entries: []wire.ORMapEntry{{Key: "k",
			Records: []wire.ORMapRecord{{Value: v, Tag: "1:0:n"}}, Tombstones: []string{}}}})
		return true
	})
	o := testOptions(t)
	o.MaxReadBytes = 1024
	c := dial(t, fs.URL, o)
	if _, err := c.ORGet(ctxT(t), "m", "k"); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ORGet of an answer over MaxReadBytes: %v, want it failed", err)
	}
	es, err := c.ORGet(ctxT(t), "m", "k")
	if err != nil || len(es) != 1 || len(es[0].Records) != 1 || es[0].Records[0].Value != "small" {
		t.Fatalf("next ORGet = %+v, %v; want its own answer", es, err)
	}
}

// nested is v inside n arrays.
func nested(v any, n int) any {
	for range n {
		v = []any{v}
	}
	return v
}

// An answer the client cannot decode (here a value the server took in a
// CLIENT_OP, 3 levels below the message, is 6 below it in the answer,
// past Limits.MaxDepth) is dropped as one over MaxReadBytes is: its ORGet
// fails at once, and the next ORGet of the same key gets its own answer,
// not the dropped one's place.
func TestORGet_answerThatCannotBeDecoded(t *testing.T) {
	t.Parallel()
	c := dial(t, realServer(t), testOptions(t))
	deep := nested("x", wire.DefaultMaxDepth-5)
	tag, err := c.ORAdd(ctxT(t), "deep", "k", deep, 0)
	if err != nil {
		t.Fatalf("ORAdd: %v", err)
	}
	if _, err := c.ORGet(ctxT(t), "deep", "k"); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ORGet of an answer too deep to decode: %v, want it failed", err)
	}
	if err := c.ORRemove(ctxT(t), "deep", "k", tag); err != nil {
		t.Fatalf("ORRemove: %v", err)
	}
	es, err := c.ORGet(ctxT(t), "deep", "k")
	if err != nil || len(es) != 1 || len(es[0].Records) != 0 || !slices.Equal(es[0].Tombstones, []string{tag}) {
		t.Fatalf("next ORGet = %+v, %v; want its own answer (tag %s removed)", es, err, tag)
	}
}

// A value the server cannot decode where a write puts it (in an OP_BATCH,
// 5 levels below the message, which the server counts against
// Limits.MaxDepth; the encoder counts only the value's own levels) is
// refused at once, as one the encoder refuses: sent, it would wait for an
// ack forever and, replayed in one OP_BATCH with the other writes, keep
// those from being acknowledged too.
func TestBatch_valueTooDeepForTheServerIsRefused(t *testing.T) {
	t.Parallel()
	proxy, url := newCutProxy(t, realServer(t))
	c := dial(t, url, testOptions(t))
	tooDeep := []struct {
		name string
		ops  []Op
	}{
		// 3 levels below a CLIENT_OP: past the limit.
		{"put", []Op{{Map: "docs", Key: "k", Value: nested("x", wire.DefaultMaxDepth-2)}}},
		{"OR add", []Op{{Map: "tags", Key: "k", Value: nested("x", wire.DefaultMaxDepth-2), OR: true}}},
		// Within it in a CLIENT_OP, past it in an OP_BATCH.
		{"batch", []Op{{Map: "docs", Key: "a", Value: nested("x", wire.DefaultMaxDepth-4)}, {Map: "docs", Key: "b", Value: "v"}}},
	}
	for _, tc := range tooDeep {
		// Bounded: without the check the write waits for an ack that
		// never comes, and stays queued.
		ctx, cancel := context.WithTimeout(ctxT(t), time.Second)
		err := c.Batch(ctx, tc.ops...)
		cancel()
		if err == nil || errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: Batch = %v, want it refused", tc.name, err)
		}
	}
	// The batch's other op, alone, is acknowledged.
	eventually(t, "no write queued", func() bool { return c.Pending() == 0 })
	// The deepest value the server takes in an OP_BATCH goes.
	ok := nested("x", wire.DefaultMaxDepth-5)
	if err := c.Batch(ctxT(t), Op{Map: "docs", Key: "a", Value: ok}, Op{Map: "docs", Key: "b", Value: ok}); err != nil {
		t.Fatalf("Batch of values %d levels deep: %v", wire.DefaultMaxDepth-5, err)
	}
	// The replay after a cut must carry a good write through.
	proxy.cut()
	if err := c.Put(ctxT(t), "docs", "k", "v"); err != nil {
		t.Fatalf("Put after the cut: %v", err)
	}
}
