package protocol

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/topgun-go/topgun/server/merkle"
	"github.com/topgun-go/topgun/server/record"
	"github.com/topgun-go/topgun/server/store"
	"github.com/topgun-go/topgun/server/wire"
)

// A randomized, protocol-aware test of the server's state machine over
// real WebSockets. Devices (raw connections, not the client) interleave
// handshakes (AUTH valid, invalid and repeated; DEVICE_HELLO with their
// own, a new, a garbage or another user's device token), writes (LWW PUT
// and REMOVE, OR_ADD with TTLs and OR_REMOVE; CLIENT_OP and OP_BATCH;
// re-sent ops, re-used op ids, one key several times in a batch, stale
// timestamps), live queries (QUERY_SUB, re-subscribes under one id with
// another query, QUERY_UNSUB of live and unknown ids), Merkle sync messages
// while writes are in flight, PINGs, abrupt closes, reconnects and
// takeovers of their own device identity, and tombstone collection on a
// fake wall clock. A model holds the maps (LWW by timestamp, OR by tag),
// and at quiescent points the test checks that every write was
// acknowledged in order, each live query's result equals the model's, a
// Merkle walk of a fresh connection finds exactly the model (and the root
// hashes agree), the connections open when tombstones were collected got
// the cut-off, and that the server closed no connection but those it
// documents closing. At the end no goroutine is left behind.
//
// Each run prints its seed; TOPGUN_MODEL_SEED=<seed> replays its messages
// (the server's interleaving stays its own).

const (
	sfTombstoneTTL = 10 * time.Second
	sfLongTTL      = uint64(10 * time.Hour / time.Millisecond) // never expires within a run
)

var sfMaps = []string{"m", "m2"}

func sfQueries() []wire.Query {
	lim := func(n uint32) *uint32 { return &n }
	return []wire.Query{
		{},
		{Where: map[string]any{"g": true}},
		{Sort: []wire.SortField{{Field: "s", Direction: wire.Desc}}, Limit: lim(3)},
		{Predicate: &wire.Predicate{Op: wire.OpGte, Attribute: "s", Value: int64(4)},
			Sort: []wire.SortField{{Field: "s", Direction: wire.Asc}}, Limit: lim(2)},
	}
}

// sfLWW is the model of one LWW key.
type sfLWW struct {
	value    any // normalised; nil for a tombstone
	ts       wire.Timestamp
	ttl      uint64
	commitMs int64 // wall clock when it was last stored
}

// sfOR is the model of one OR key.
type sfOR struct {
	recs  map[string]wire.ORMapRecord // by tag
	tombs map[string]bool
}

type sfModel struct {
	lww map[string]map[string]*sfLWW // map -> key
	or  map[string]map[string]*sfOR
	log map[string][]string // map/key -> what happened to it, for failures
}

func (m *sfModel) note(mapName, key, format string, args ...any) {
	k := mapName + "/" + key
	m.log[k] = append(m.log[k], fmt.Sprintf(format, args...))
}

func (m *sfModel) apply(op *wire.ClientOp, wall int64) {
	switch op.OpType {
	case "PUT", "REMOVE":
		keys := m.lww[op.MapName]
		cur := keys[op.Key]
		if cur != nil && tsFromWire(op.Record.Timestamp).Compare(tsFromWire(cur.ts)) <= 0 {
			return
		}
		r := &sfLWW{ts: op.Record.Timestamp, commitMs: wall}
		if op.OpType == "PUT" {
			r.value, r.ttl = sfNorm(op.Record.Value), ttlOf(op.Record.TTLMs)
		}
		keys[op.Key] = r
	case "OR_ADD":
		o := m.orKey(op.MapName, op.Key)
		tag := op.ORRecord.Tag
		if o.tombs[tag] {
			return
		}
		if _, ok := o.recs[tag]; ok {
			return
		}
		r := *op.ORRecord
		r.Value = sfNorm(r.Value)
		o.recs[tag] = r
	case "OR_REMOVE":
		o := m.orKey(op.MapName, op.Key)
		delete(o.recs, *op.ORTag)
		o.tombs[*op.ORTag] = true
	}
}

func (m *sfModel) orKey(mapName, key string) *sfOR {
	o := m.or[mapName][key]
	if o == nil {
		o = &sfOR{recs: map[string]wire.ORMapRecord{}, tombs: map[string]bool{}}
		m.or[mapName][key] = o
	}
	return o
}

// collect does what Store.CollectTombstones does to the model at wall
// clock now: it returns the cut-off and how many tombstones go.
func (m *sfModel) collect(now int64) (uint64, int) {
	ttl := sfTombstoneTTL.Milliseconds()
	since := now - ttl
	cutoff := uint64(since)
	floor := uint64(max(now-4*ttl, 0))
	for _, keys := range m.lww {
		for _, r := range keys {
			if r.value == nil && r.ts.Millis < uint64(since) && r.commitMs >= since {
				cutoff = min(cutoff, max(r.ts.Millis, floor))
			}
		}
	}
	n := 0
	for name, keys := range m.lww {
		for k, r := range keys {
			if r.value == nil && r.ts.Millis < cutoff && r.commitMs < since {
				delete(keys, k)
				n++
				m.note(name, k, "collected at wall %d (cut-off %d)", now, cutoff)
			}
		}
	}
	return cutoff, n
}

// result is what a fresh QUERY_SUB of q on mapName answers.
func (m *sfModel) result(mapName string, q wire.Query) map[string]any {
	var all []wire.QueryResult
	for k, r := range m.lww[mapName] {
		if r.value != nil {
			all = append(all, wire.QueryResult{Key: k, Value: r.value})
		}
	}
	out := map[string]any{}
	for _, r := range q.Apply(all) {
		out[r.Key] = r.Value
	}
	return out
}

// sfNorm is v as it comes back from the server (msgpack's integer kinds).
func sfNorm(v any) any {
	b, err := wire.Encode(&wire.QueryUpdate{QueryID: "n", Key: "k", Value: v, ChangeType: wire.Update})
	if err != nil {
		panic(err)
	}
	m, err := wire.Decode(b)
	if err != nil {
		panic(err)
	}
	return m.(*wire.QueryUpdate).Value
}

type sfView struct {
	q        wire.Query
	queued   []wire.Query // re-subscribes whose QUERY_RESP is still to come
	rows     map[string]any
	answered bool
	closing  bool // QUERY_UNSUB sent, PONG not yet seen
}

type sfWrite struct {
	lastID string
	ops    []wire.ClientOp
	fresh  []bool // the op's first sending on its connection (one sent again may be skipped)
}

type sfConn struct {
	cl      *client
	dev     *sfDevice
	name    string
	writes  []sfWrite       // sent, not yet acknowledged, in order
	history []wire.ClientOp // ops sent on this connection
	sentOps map[string]bool // ops sent on this connection (the server skips them sent again)
	views   map[string]*sfView
	pongs   []func()
	hellos  []string // device ids the AUTH_ACKs and DEVICE_ACKs still to come must name
	syncs   int      // sync answers still to come
	errs    int      // ERROR 400s still to come (bad paths)
	prune   uint64   // greatest GC_PRUNE cut-off received (millis)
	pruned  bool
	acked   bool // AUTH acknowledged: a repeated one is ignored
	wantGC  uint64
	checkGC bool
}

type sfDevice struct {
	name    string
	user    string
	watcher bool
	c       *sfConn
	id      string
	token   string
	counter uint32
	nextID  int
	carry   []wire.ClientOp // unacknowledged ops of a closed connection
	queries map[string]wire.Query
	conns   int
}

type sfRun struct {
	t       *testing.T
	seed    uint64
	rng     *rand.Rand
	e       *env
	auth    bool
	model   *sfModel
	devs    []*sfDevice
	gcs     int
	tokens  map[string]string // device token -> user, for presenting another user's
	queries []wire.Query
	stats   map[string]int
}

func (r *sfRun) fatalf(format string, args ...any) {
	r.t.Helper()
	r.t.Fatalf("seed %d (TOPGUN_MODEL_SEED=%d replays it): %s", r.seed, r.seed, fmt.Sprintf(format, args...))
}

func (r *sfRun) wall() int64 { return r.e.wall.Load() }

// connect opens a connection for d presenting token, and checks the
// identity it gets.
func (r *sfRun) connect(d *sfDevice, token string) *sfConn {
	r.t.Helper()
	d.conns++
	c := &sfConn{cl: r.e.dial(r.t), dev: d, name: fmt.Sprintf("%s#%d", d.name, d.conns), sentOps: map[string]bool{}, views: map[string]*sfView{}}
	var id, got string
	if r.auth {
		expect[*wire.AuthRequired](c.cl)
		c.cl.send(&wire.Auth{Token: userToken(r.t, d.user), DeviceToken: token})
		a := expect[*wire.AuthAck](c.cl)
		id, got = a.DeviceID, a.DeviceToken
		c.acked = true
	} else if r.rng.IntN(2) == 0 {
		c.cl.send(&wire.DeviceHello{DeviceToken: token})
		a := expect[*wire.DeviceAck](c.cl)
		id, got = a.DeviceID, a.DeviceToken
	} else {
		c.cl.send(&wire.Auth{DeviceToken: token})
		a := expect[*wire.AuthAck](c.cl)
		id, got = a.DeviceID, a.DeviceToken
		c.acked = true
	}
	own := token != "" && token == d.token
	switch {
	case own && (id != d.id || got != ""):
		r.fatalf("%s presented its token: got device %q token %q, want %q and no token", c.name, id, got, d.id)
	case !own && (got == "" || id == d.id || id == ""):
		r.fatalf("%s presented token %q, not its own: got device %q token %q, want a new identity", c.name, token, id, got)
	}
	if !own {
		d.id, d.token = id, got
		r.tokens[got] = d.user
	}
	return c
}

// send sends m on c, which the server must not have closed.
func (r *sfRun) send(c *sfConn, m wire.Message) {
	r.t.Helper()
	select {
	case <-c.cl.done:
		r.pump(c)
		r.fatalf("%s closed by the server: %v", c.name, c.cl.err)
	default:
	}
	c.cl.send(m)
}

// sendOps sends ops as one write message.
func (r *sfRun) sendOps(c *sfConn, ops []wire.ClientOp, single bool) {
	var m wire.Message
	last := lastOpID(ops)
	if single && len(ops) == 1 {
		m = &wire.ClientOpMessage{ClientOp: ops[0]}
	} else {
		m = &wire.OpBatch{Ops: ops}
	}
	fresh := make([]bool, len(ops))
	for i := range ops {
		fp := sfFingerprint(&ops[i])
		fresh[i] = !c.sentOps[fp]
		r.model.note(ops[i].MapName, ops[i].Key, "wall %d %s sends %s (again on it: %v)", r.wall(), c.name, fp, c.sentOps[fp])
		if !c.sentOps[fp] {
			// The server skips an op sent again on one connection (as the
			// store would, but for a tombstone collected meanwhile).
			r.model.apply(&ops[i], r.wall())
		}
		c.sentOps[fp] = true
	}
	c.writes = append(c.writes, sfWrite{lastID: last, ops: ops, fresh: fresh})
	if len(c.history) < 1000 {
		c.history = append(c.history, ops...)
	}
	r.send(c, m)
}

func sfFingerprint(op *wire.ClientOp) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%q|%q|%q|%s", op.ID, op.MapName, op.Key, op.OpType)
	switch {
	case op.Record != nil:
		fmt.Fprintf(&b, "|%s", op.Record.Timestamp)
	case op.ORRecord != nil:
		fmt.Fprintf(&b, "|%s|%q", op.ORRecord.Timestamp, op.ORRecord.Tag)
	case op.ORTag != nil:
		fmt.Fprintf(&b, "|%q", *op.ORTag)
	}
	return b.String()
}

// handle applies one message c received to what the test knows.
func (r *sfRun) handle(c *sfConn, msg wire.Message) {
	r.t.Helper()
	r.stats[msg.Type()]++
	switch m := msg.(type) {
	case *wire.OpAck:
		if len(c.writes) == 0 {
			r.fatalf("%s: OP_ACK %q with no write pending", c.name, m.LastID)
		}
		w := c.writes[0]
		if m.LastID != w.lastID {
			r.fatalf("%s: OP_ACK %q, want %q (acknowledgements out of order)", c.name, m.LastID, w.lastID)
		}
		c.writes = c.writes[1:]
		for i := range w.ops {
			if w.fresh[i] {
				r.checkStored(c, &w.ops[i])
			}
		}
	case *wire.OpRejected:
		r.fatalf("%s: OP_REJECTED %+v of a valid op", c.name, m)
	case *wire.ErrorMessage:
		if m.Code != 400 || c.errs == 0 {
			r.fatalf("%s: ERROR %d %q", c.name, m.Code, m.Message)
		}
		c.errs--
	case *wire.Pong:
		if len(c.pongs) == 0 {
			r.fatalf("%s: PONG with no PING pending", c.name)
		}
		f := c.pongs[0]
		c.pongs = c.pongs[1:]
		if f != nil {
			f()
		}
	case *wire.AuthAck, *wire.DeviceAck:
		id := ""
		switch a := m.(type) {
		case *wire.AuthAck:
			id = a.DeviceID
			if a.DeviceToken != "" {
				r.fatalf("%s: repeated handshake minted token %q", c.name, a.DeviceToken)
			}
		case *wire.DeviceAck:
			id = a.DeviceID
			if a.DeviceToken != "" {
				r.fatalf("%s: repeated handshake minted token %q", c.name, a.DeviceToken)
			}
		}
		if len(c.hellos) == 0 || c.hellos[0] != id {
			r.fatalf("%s: unexpected %s naming device %q (want %q)", c.name, msg.Type(), id, c.hellos)
		}
		c.hellos = c.hellos[1:]
	case *wire.GCPrune:
		c.pruned = true
		c.prune = max(c.prune, m.OlderThan.Millis)
	case *wire.SyncRespRoot, *wire.SyncRespBuckets, *wire.SyncRespLeaf,
		*wire.ORMapSyncRespRoot, *wire.ORMapSyncRespBuckets, *wire.ORMapSyncRespLeaf, *wire.ORMapDiffResponse:
		if c.syncs == 0 {
			r.fatalf("%s: unasked %s", c.name, msg.Type())
		}
		c.syncs--
	case *wire.ServerEvent:
		if !c.dev.watcher {
			r.fatalf("%s holds no live query but got SERVER_EVENT %+v", c.name, m)
		}
	case *wire.QueryResp:
		v := c.views[m.QueryID]
		if v == nil || len(v.queued) == 0 {
			r.fatalf("%s: QUERY_RESP of %q, not subscribed", c.name, m.QueryID)
		}
		if m.Error != "" {
			r.fatalf("%s: QUERY_RESP of %q: error %q", c.name, m.QueryID, m.Error)
		}
		v.q, v.queued = v.queued[0], v.queued[1:]
		v.rows = map[string]any{}
		for _, x := range m.Results {
			v.rows[x.Key] = x.Value
		}
		v.answered = true
	case *wire.QueryUpdate:
		v := c.views[m.QueryID]
		if v == nil {
			r.fatalf("%s: QUERY_UPDATE %s %q of %q after its QUERY_UNSUB was handled", c.name, m.ChangeType, m.Key, m.QueryID)
		}
		if !v.answered {
			r.fatalf("%s: QUERY_UPDATE %s %q of %q before its QUERY_RESP", c.name, m.ChangeType, m.Key, m.QueryID)
		}
		_, held := v.rows[m.Key]
		switch m.ChangeType {
		case wire.Enter:
			if held {
				r.fatalf("%s: query %q: ENTER of %q, already in the result", c.name, m.QueryID, m.Key)
			}
			v.rows[m.Key] = m.Value
		case wire.Update:
			if !held {
				r.fatalf("%s: query %q: UPDATE of %q, not in the result", c.name, m.QueryID, m.Key)
			}
			v.rows[m.Key] = m.Value
		case wire.Leave:
			if !held {
				r.fatalf("%s: query %q: LEAVE of %q, not in the result", c.name, m.QueryID, m.Key)
			}
			delete(v.rows, m.Key)
		}
		if v.q.Limit != nil && len(v.rows) > int(*v.q.Limit) {
			r.fatalf("%s: query %q holds %d records, over its limit %d", c.name, m.QueryID, len(v.rows), *v.q.Limit)
		}
	default:
		r.fatalf("%s: unexpected %s %+v", c.name, msg.Type(), msg)
	}
}

// checkStored checks that an acknowledged op is in the store, or
// superseded. (Tombstones are collected only at quiescent points, when
// every op sent before is acknowledged.)
func (r *sfRun) checkStored(c *sfConn, op *wire.ClientOp) {
	r.t.Helper()
	kind := store.KindLWW
	if op.OpType == "OR_ADD" || op.OpType == "OR_REMOVE" {
		kind = store.KindOR
	}
	// Entries holds tombstones too.
	es, err := r.e.st.Entries(context.Background(), op.MapName, kind, []string{op.Key})
	if err != nil {
		r.fatalf("entries: %v", err)
	}
	var en store.Entry
	ok := len(es) == 1
	if ok {
		en = es[0]
	}
	switch op.OpType {
	case "PUT", "REMOVE":
		if !ok || en.Record.Kind != record.KindLWW || en.Record.LWW.Timestamp.Compare(tsFromWire(op.Record.Timestamp)) < 0 {
			r.fatalf("%s: %s acknowledged, the store holds %+v (present %v)", c.name, sfFingerprint(op), en.Record, ok)
		}
	case "OR_ADD", "OR_REMOVE":
		tag := ""
		if op.ORTag != nil {
			tag = *op.ORTag
		} else {
			tag = op.ORRecord.Tag
		}
		found := false
		if ok && en.Record.Kind != record.KindLWW {
			for _, x := range en.Record.ORMap.Records {
				found = found || x.Tag == tag && op.OpType == "OR_ADD"
			}
			found = found || slices.Contains(en.Record.ORMap.Tombstones, tag)
		}
		if !found {
			r.fatalf("%s: %s acknowledged, the store holds %+v (present %v)", c.name, sfFingerprint(op), en.Record, ok)
		}
	}
}

// pump handles what c has received so far.
func (r *sfRun) pump(c *sfConn) {
	r.t.Helper()
	for {
		select {
		case m := <-c.cl.msgs:
			r.handle(c, m)
		default:
			return
		}
	}
}

// await handles c's messages until cond holds.
func (r *sfRun) await(c *sfConn, what string, cond func() bool) {
	r.t.Helper()
	deadline := time.After(waitFor)
	for !cond() {
		select {
		case m := <-c.cl.msgs:
			r.handle(c, m)
		case <-c.cl.done:
			r.pump(c)
			if !cond() {
				r.fatalf("%s closed by the server while waiting for %s: %v", c.name, what, c.cl.err)
			}
		case <-deadline:
			r.fatalf("%s: no %s within %s", c.name, what, waitFor)
		}
	}
}

// drop ends c (closed by the test, or by the server as expected): the
// messages it received are handled, its unacknowledged ops carried to
// its device's next connection.
func (r *sfRun) drop(c *sfConn) {
	r.t.Helper()
	<-c.cl.done
	r.pump(c)
	for _, w := range c.writes {
		c.dev.carry = append(c.dev.carry, w.ops...)
	}
	c.writes = nil
	if c.dev.c == c {
		c.dev.c = nil
	}
}

// reconnect gives d a new connection presenting token: a takeover of its
// open one when token is its own.
func (r *sfRun) reconnect(d *sfDevice, token string) {
	r.t.Helper()
	old := d.c
	c := r.connect(d, token)
	if old != nil {
		if token != d.token {
			r.fatalf("reconnect of an open device without its token")
		}
		// The displaced connection is closed after what was queued for it.
		select {
		case <-old.cl.done:
		case <-time.After(waitFor):
			r.fatalf("%s not closed when %s took its device over", old.name, c.name)
		}
		r.pump(old)
		var ce websocket.CloseError
		if !errors.As(old.cl.err, &ce) || ce.Code != websocket.StatusPolicyViolation || ce.Reason != takeoverReason {
			r.fatalf("%s displaced by %s: closed with %v, want 1008 %q", old.name, c.name, old.cl.err, takeoverReason)
		}
		r.drop(old)
	}
	d.c = c
	if len(d.carry) > 0 {
		ops := d.carry
		d.carry = nil
		r.sendOps(c, ops, false)
	}
	for id, q := range d.queries {
		r.subscribe(c, id, q)
	}
}

func (r *sfRun) subscribe(c *sfConn, id string, q wire.Query) {
	v := c.views[id]
	if v == nil {
		v = &sfView{}
		c.views[id] = v
	}
	v.queued = append(v.queued, q)
	c.dev.queries[id] = q
	r.send(c, &wire.QuerySub{QueryID: id, MapName: sfQueryMap(id), Query: q})
}

// sfQueryMap: a query id names its map.
func sfQueryMap(id string) string { return sfMaps[int(id[1]-'0')%len(sfMaps)] }

func (r *sfRun) ping(c *sfConn, then func()) {
	c.pongs = append(c.pongs, then)
	r.send(c, &wire.Ping{Timestamp: uint64(len(c.pongs))})
}

func (r *sfRun) ts(d *sfDevice, stale bool) wire.Timestamp {
	d.counter++
	ms := uint64(r.wall())
	if stale {
		// Within a TTL back, so that the cut-off never sinks to its
		// floor (documented: clients then prune what the server keeps).
		ms -= uint64(r.rng.IntN(int(sfTombstoneTTL.Milliseconds()) / 2))
	}
	return wire.Timestamp{Millis: ms, Counter: d.counter, NodeID: d.name}
}

func (r *sfRun) value() any {
	return map[string]any{"s": int64(r.rng.IntN(10)), "g": r.rng.IntN(2) == 0}
}

// op makes one random valid op of d.
func (r *sfRun) op(d *sfDevice) wire.ClientOp {
	d.nextID++
	id := strconv.Itoa(d.nextID)
	mapName := sfMaps[r.rng.IntN(len(sfMaps))]
	stale := r.rng.IntN(5) == 0
	switch p := r.rng.IntN(20); {
	case p < 9:
		op := putOp(id, mapName, fmt.Sprint("l", r.rng.IntN(6)), r.value(), r.ts(d, stale))
		if r.rng.IntN(4) == 0 {
			ttl := sfLongTTL + uint64(r.rng.IntN(1000))
			op.Record.TTLMs = &ttl
		}
		return op
	case p < 13:
		return removeOp(id, mapName, fmt.Sprint("l", r.rng.IntN(6)), r.ts(d, stale))
	case p < 17:
		ts := r.ts(d, stale)
		op := orAddOp(id, mapName, fmt.Sprint("o", r.rng.IntN(3)), int64(r.rng.IntN(100)), ts)
		op.ORRecord.Tag = d.name + ":" + strconv.Itoa(int(ts.Counter))
		if r.rng.IntN(2) == 0 {
			ttl := sfLongTTL + uint64(r.rng.IntN(1000))
			op.ORRecord.TTLMs = &ttl
		}
		return op
	}
	key := fmt.Sprint("o", r.rng.IntN(3))
	var tags []string
	if o := r.model.or[mapName][key]; o != nil {
		for tag := range o.recs {
			tags = append(tags, tag)
		}
		for tag := range o.tombs {
			tags = append(tags, tag)
		}
	}
	slices.Sort(tags)
	tag := "unknown:" + id
	if len(tags) > 0 && r.rng.IntN(5) > 0 {
		tag = tags[r.rng.IntN(len(tags))]
	}
	return orRemoveOp(id, mapName, key, tag)
}

// pushDiff sends ORMAP_PUSH_DIFF (as a sync's push of keys the server
// lacks): records and tombstones of one or two OR keys. Its OP_ACK names
// "0"; should it go unacknowledged, the same changes are sent again as
// OR_ADD and OR_REMOVE ops (OR state is never collected: the same).
func (r *sfRun) pushDiff(c *sfConn) {
	d := c.dev
	mapName := sfMaps[r.rng.IntN(len(sfMaps))]
	m := &wire.ORMapPushDiff{MapName: mapName}
	var ops []wire.ClientOp
	for i := range 1 + r.rng.IntN(2) {
		key := fmt.Sprint("o", (i+r.rng.IntN(3))%3)
		if slices.ContainsFunc(m.Entries, func(e wire.ORMapEntry) bool { return e.Key == key }) {
			continue
		}
		en := wire.ORMapEntry{Key: key, Records: []wire.ORMapRecord{}, Tombstones: []string{}}
		for range r.rng.IntN(3) {
			d.nextID++
			op := r.op(d)
			for op.OpType != "OR_ADD" {
				op = r.op(d)
			}
			op.MapName, op.Key = mapName, key
			en.Records = append(en.Records, *op.ORRecord)
			ops = append(ops, op)
		}
		for range r.rng.IntN(3) {
			d.nextID++
			op := r.op(d)
			for op.OpType != "OR_REMOVE" {
				op = r.op(d)
			}
			if o := r.model.or[mapName][key]; o != nil && len(o.recs) > 0 {
				tags := slices.Sorted(mapsKeys(o.recs))
				op.ORTag = &tags[r.rng.IntN(len(tags))]
			}
			op.MapName, op.Key = mapName, key
			en.Tombstones = append(en.Tombstones, *op.ORTag)
			ops = append(ops, op)
		}
		m.Entries = append(m.Entries, en)
	}
	fresh := make([]bool, len(ops))
	for i := range ops {
		fresh[i] = true
		r.model.apply(&ops[i], r.wall())
		c.sentOps[sfFingerprint(&ops[i])] = true
		r.model.note(mapName, ops[i].Key, "wall %d %s pushes %s", r.wall(), c.name, sfFingerprint(&ops[i]))
	}
	c.writes = append(c.writes, sfWrite{lastID: pushAckID, ops: ops, fresh: fresh})
	r.send(c, m)
}

// quiesce reconnects every device and waits until every write is
// acknowledged, every ping, handshake and sync answered.
func (r *sfRun) quiesce() {
	r.t.Helper()
	for _, d := range r.devs {
		if d.c == nil {
			r.reconnect(d, d.token)
		}
	}
	for _, d := range r.devs {
		c := d.c
		r.ping(c, nil)
		r.await(c, "acknowledgements and answers", func() bool {
			return len(c.writes) == 0 && len(c.pongs) == 0 && len(c.hellos) == 0 && c.syncs == 0 && c.errs == 0
		})
	}
}

// check verifies the invariants at a quiescent point.
func (r *sfRun) check() {
	r.t.Helper()
	r.quiesce()
	// Every connection open when tombstones were collected got the cut-off.
	for _, d := range r.devs {
		c := d.c
		if c.checkGC {
			r.await(c, fmt.Sprintf("GC_PRUNE of cut-off %d", c.wantGC), func() bool { return c.pruned && c.prune >= c.wantGC })
			c.checkGC = false
		}
	}
	// Live results equal the model's; limited ones may still be refilling
	// in the background.
	deadline := time.Now().Add(waitFor)
	for {
		var diffs []string
		for _, d := range r.devs {
			for id, v := range d.c.views {
				want := r.model.result(sfQueryMap(id), v.q)
				if !v.answered || len(v.queued) > 0 || !reflect.DeepEqual(v.rows, want) {
					diffs = append(diffs, fmt.Sprintf("%s query %s (%+v):\n  live  %v\n  model %v", d.c.name, id, v.q, sortedRows(v.rows), sortedRows(want)))
				}
			}
		}
		if len(diffs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			r.fatalf("live results differ from the model:\n%s", strings.Join(diffs, "\n"))
		}
		time.Sleep(20 * time.Millisecond)
		for _, d := range r.devs {
			r.pump(d.c)
		}
	}
	r.checkSync()
}

// checkSync walks the Merkle tries of every map from a fresh connection
// and compares what it finds, and the roots, with the model.
func (r *sfRun) checkSync() {
	r.t.Helper()
	cl := r.e.dial(r.t)
	if r.auth {
		expect[*wire.AuthRequired](cl)
		cl.send(&wire.Auth{Token: userToken(r.t, "syncer")})
		expect[*wire.AuthAck](cl)
	} else {
		// As TopGun's client opens: a GC_PRUNE waits for the handshake.
		cl.send(&wire.DeviceHello{})
		expect[*wire.DeviceAck](cl)
	}
	// A connection's first sync gets the greatest cut-off published
	// first, if any.
	pruned := false
	next := func() wire.Message {
		for {
			m := cl.next()
			if _, ok := m.(*wire.GCPrune); !ok {
				return m
			}
			pruned = true
		}
	}
	for _, mapName := range sfMaps {
		// LWW.
		cl.send(&wire.SyncInit{MapName: mapName})
		rm, ok := next().(*wire.SyncRespRoot)
		if !ok {
			r.fatalf("SYNC_INIT of %q not answered with SYNC_RESP_ROOT", mapName)
		}
		root := rm.RootHash
		if _, published := r.e.st.PruneBefore(); published != pruned {
			r.fatalf("first SYNC_INIT of a connection: GC_PRUNE %v, a cut-off published %v", pruned, published)
		}
		got := map[string]wire.LWWRecord{}
		var orGot map[string]wire.ORMapEntry
		var walk func(path string, or bool)
		walk = func(path string, or bool) {
			if or {
				cl.send(&wire.ORMapMerkleReqBucket{MapName: mapName, Path: path})
			} else {
				cl.send(&wire.MerkleReqBucket{MapName: mapName, Path: path})
			}
			switch m := next().(type) {
			case *wire.SyncRespBuckets:
				for _, d := range slices.Sorted(mapsKeys(m.Buckets)) {
					walk(path+d, false)
				}
			case *wire.ORMapSyncRespBuckets:
				for _, d := range slices.Sorted(mapsKeys(m.Buckets)) {
					walk(path+d, true)
				}
			case *wire.SyncRespLeaf:
				for _, x := range m.Records {
					got[x.Key] = x.Record
				}
			case *wire.ORMapSyncRespLeaf:
				for _, x := range m.Entries {
					orGot[x.Key] = x
				}
			default:
				r.fatalf("sync walk of %q at %q: got %s %+v", mapName, path, m.Type(), m)
			}
		}
		walk("", false)
		tree := merkle.New()
		var diffs []string
		for k, want := range r.model.lww[mapName] {
			tree.Update(k, merkle.LWWItemHash(k, tsFromWire(want.ts)))
			g, ok := got[k]
			delete(got, k)
			if !ok || g.Timestamp != want.ts || ttlOf(g.TTLMs) != want.ttl || !reflect.DeepEqual(g.Value, want.value) {
				diffs = append(diffs, fmt.Sprintf("LWW %s/%s: server %+v (present %v), model %+v", mapName, k, g, ok, *want))
			}
		}
		for k, g := range got {
			diffs = append(diffs, fmt.Sprintf("LWW %s/%s: server %+v, not in the model", mapName, k, g))
		}
		if root != tree.Root() {
			diffs = append(diffs, fmt.Sprintf("LWW %s: root %d, model's %d", mapName, root, tree.Root()))
		}

		// OR.
		cl.send(&wire.ORMapSyncInit{MapName: mapName})
		orm, ok := next().(*wire.ORMapSyncRespRoot)
		if !ok {
			r.fatalf("ORMAP_SYNC_INIT of %q not answered with ORMAP_SYNC_RESP_ROOT", mapName)
		}
		orRoot := orm.RootHash
		orGot = map[string]wire.ORMapEntry{}
		walk("", true)
		orTree := merkle.New()
		for k, want := range r.model.or[mapName] {
			g := orGot[k]
			delete(orGot, k)
			var recs []record.ORMapEntry
			gotRecs := map[string]wire.ORMapRecord{}
			for _, x := range g.Records {
				gotRecs[x.Tag] = x
			}
			for tag, x := range want.recs {
				recs = append(recs, record.ORMapEntry{Value: record.FromWire(x.Value), Tag: tag, Timestamp: tsFromWire(x.Timestamp), TTLMs: ttlOf(x.TTLMs)})
				y, ok := gotRecs[tag]
				delete(gotRecs, tag)
				if !ok || y.Timestamp != x.Timestamp || ttlOf(y.TTLMs) != ttlOf(x.TTLMs) || !reflect.DeepEqual(y.Value, x.Value) {
					diffs = append(diffs, fmt.Sprintf("OR %s/%s tag %s: server %+v (present %v), model %+v", mapName, k, tag, y, ok, x))
				}
			}
			for tag := range gotRecs {
				diffs = append(diffs, fmt.Sprintf("OR %s/%s tag %s: on the server, not in the model", mapName, k, tag))
			}
			gotTombs := map[string]bool{}
			for _, tag := range g.Tombstones {
				gotTombs[tag] = true
			}
			if !reflect.DeepEqual(gotTombs, want.tombs) && (len(gotTombs) > 0 || len(want.tombs) > 0) {
				diffs = append(diffs, fmt.Sprintf("OR %s/%s tombstones: server %v, model %v", mapName, k, g.Tombstones, slices.Sorted(mapsKeys(want.tombs))))
			}
			if h, ok := merkle.ORItemHash(k, recs); ok {
				orTree.Update(k, h)
			}
		}
		for k, g := range orGot {
			diffs = append(diffs, fmt.Sprintf("OR %s/%s: server %+v, not in the model", mapName, k, g))
		}
		if orRoot != orTree.Root() {
			diffs = append(diffs, fmt.Sprintf("OR %s: root %d, model's %d", mapName, orRoot, orTree.Root()))
		}
		if len(diffs) > 0 {
			for k, l := range r.model.log {
				if strings.HasPrefix(k, mapName+"/") {
					diffs = append(diffs, fmt.Sprintf("history of %s:\n  %s", k, strings.Join(l, "\n  ")))
				}
			}
			slices.Sort(diffs)
			r.fatalf("Merkle sync differs from the model:\n%s", strings.Join(diffs, "\n"))
		}
	}
	cl.ws.Close(websocket.StatusNormalClosure, "")
}

func mapsKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// gc collects tombstones after a tombstone TTL on the wall clock, and
// checks it collected what the model says.
func (r *sfRun) gc() {
	r.t.Helper()
	r.quiesce()
	// A connection the test saw closed may still be committing what it
	// had read (its client sent it again since): committed after the
	// collection, a write stamped before it would come back (a tombstone
	// collected, a value it deleted), which only a write seconds late
	// could do at a real TTL of days. Once the server has finished every
	// connection but the devices' own, each of their writes is in.
	eventually(r.t, "closed connections to finish", func() bool {
		r.e.srv.mu.RLock()
		defer r.e.srv.mu.RUnlock()
		return len(r.e.srv.conns) == len(r.devs)
	})
	r.e.wall.Add(sfTombstoneTTL.Milliseconds() + int64(r.rng.IntN(3000)))
	cutoff, want := r.model.collect(r.wall())
	n, err := r.e.st.CollectTombstones(context.Background())
	if err != nil {
		r.fatalf("CollectTombstones: %v", err)
	}
	if n != want {
		var b strings.Builder
		for k, l := range r.model.log {
			fmt.Fprintf(&b, "%s:\n  %s\n", k, strings.Join(l, "\n  "))
		}
		r.fatalf("CollectTombstones removed %d tombstones, the model %d (cut-off %d); history:\n%s", n, want, cutoff, b.String())
	}
	r.stats["collected"] += n
	r.gcs++
	if n > 0 || r.gcs == 1 {
		if p, ok := r.e.st.PruneBefore(); !ok || p.Millis < cutoff {
			r.fatalf("PruneBefore %v %v after a collection of cut-off %d", p, ok, cutoff)
		}
		for _, d := range r.devs {
			d.c.checkGC, d.c.wantGC = true, max(d.c.wantGC, cutoff)
		}
	}
}

func (r *sfRun) step() {
	r.t.Helper()
	rng := r.rng
	d := r.devs[rng.IntN(len(r.devs))]
	if d.c == nil {
		// Away: back with its token, or without one (a new identity), or
		// with a garbage one, or another user's.
		token := d.token
		switch p := rng.IntN(10); {
		case p == 0:
			token = ""
		case p == 1:
			token = "0000." + strings.Repeat("ab", 32)
		case p == 2 && r.auth:
			// Another user's token binds nothing of this user.
			var others []string
			for tk, user := range r.tokens {
				if user != d.user {
					others = append(others, tk)
				}
			}
			slices.Sort(others)
			token = ""
			if len(others) > 0 {
				token = others[rng.IntN(len(others))]
			}
		}
		r.reconnect(d, token)
		return
	}
	c := d.c
	switch p := rng.IntN(100); {
	case p < 40 && !d.watcher:
		var ops []wire.ClientOp
		for range 1 + rng.IntN(4) {
			switch q := rng.IntN(10); {
			case q == 0 && len(ops) > 0:
				// The same key again in one batch.
				op := r.op(d)
				if op.OpType == ops[0].OpType && (op.OpType == "PUT" || op.OpType == "REMOVE") {
					op.MapName, op.Key = ops[0].MapName, ops[0].Key
				}
				ops = append(ops, op)
			case q == 1 && len(ops) > 0:
				ops = append(ops, ops[len(ops)-1]) // an op twice in one batch
			case q == 2:
				// An op id used again for another op.
				op := r.op(d)
				d.nextID--
				op.ID = strconv.Itoa(max(d.nextID, 1))
				ops = append(ops, op)
			default:
				ops = append(ops, r.op(d))
			}
		}
		r.sendOps(c, ops, rng.IntN(3) == 0)
	case p < 45 && !d.watcher:
		// Ops sent before, sent again (TopGun's client re-sends its
		// unacknowledged ops with every write).
		var ops []wire.ClientOp
		for _, w := range c.writes {
			ops = append(ops, w.ops...)
		}
		for range rng.IntN(3) {
			if len(c.history) > 0 {
				ops = append(ops, c.history[rng.IntN(len(c.history))])
			}
		}
		ops = append(ops, r.op(d))
		r.sendOps(c, ops, false)
	case p < 48 && !d.watcher:
		r.pushDiff(c)
	case p < 60 && d.watcher:
		id := fmt.Sprintf("q%d", rng.IntN(4))
		if v := c.views[id]; v != nil && v.closing {
			return
		}
		r.subscribe(c, id, r.queries[rng.IntN(len(r.queries))])
	case p < 66 && d.watcher:
		id := fmt.Sprintf("q%d", rng.IntN(4))
		v := c.views[id]
		if v == nil || v.closing {
			// Unknown: ignored.
			r.send(c, &wire.QueryUnsub{QueryID: id + "-unknown"})
			return
		}
		v.closing = true
		delete(d.queries, id)
		r.send(c, &wire.QueryUnsub{QueryID: id})
		r.ping(c, func() { delete(c.views, id) })
	case p < 74:
		// Sync messages while writes are in flight.
		mapName := sfMaps[rng.IntN(len(sfMaps))]
		path := fmt.Sprintf("%03x", rng.IntN(4096))[:rng.IntN(4)]
		switch rng.IntN(6) {
		case 0:
			r.send(c, &wire.SyncInit{MapName: mapName})
		case 1:
			r.send(c, &wire.MerkleReqBucket{MapName: mapName, Path: path})
		case 2:
			r.send(c, &wire.ORMapSyncInit{MapName: mapName})
		case 3:
			r.send(c, &wire.ORMapMerkleReqBucket{MapName: mapName, Path: path})
		case 4:
			r.send(c, &wire.ORMapDiffRequest{MapName: mapName, Keys: []string{"o0", "o1", "o1", "l0", "nope"}})
		case 5:
			// Not a trie path: ERROR 400, the connection stays.
			c.errs++
			r.send(c, &wire.MerkleReqBucket{MapName: mapName, Path: "xyz0"})
			return
		}
		c.syncs++
	case p < 78:
		r.ping(c, nil)
	case p < 82:
		// A repeated handshake: DEVICE_HELLO names the bound identity
		// whatever token it presents; a repeated AUTH (valid or not) is
		// ignored; a first AUTH after DEVICE_HELLO without auth is
		// acknowledged with the bound identity.
		tok := []string{"", d.token, "garbage"}[rng.IntN(3)]
		if rng.IntN(2) == 0 {
			c.hellos = append(c.hellos, d.id)
			r.send(c, &wire.DeviceHello{DeviceToken: tok})
			return
		}
		jwt := ""
		switch {
		case r.auth && rng.IntN(3) == 0:
			jwt = "not.a.jwt"
		case r.auth:
			jwt = userToken(r.t, d.user)
		}
		if !c.acked {
			c.acked = true
			c.hellos = append(c.hellos, d.id)
		}
		r.send(c, &wire.Auth{Token: jwt, DeviceToken: tok})
	case p < 85:
		// Gone without a close frame.
		c.cl.ws.CloseNow()
		r.drop(c)
	case p < 88:
		r.reconnect(d, d.token) // a takeover
	case p < 90 && r.auth:
		// An invalid AUTH: AUTH_FAIL, then 1008.
		bad := r.e.dial(r.t)
		expect[*wire.AuthRequired](bad)
		bad.send(&wire.Auth{Token: "not.a.jwt"})
		expect[*wire.AuthFail](bad)
		if code := bad.closed(); code != websocket.StatusPolicyViolation {
			r.fatalf("invalid AUTH: closed with %v, want 1008", code)
		}
	case p < 92:
		r.gc()
	}
	r.pump(c)
}

func runStateFuzz(t *testing.T, seed uint64, steps int) {
	t.Logf("seed %d (TOPGUN_MODEL_SEED=%d replays it)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	// Half the seeds read maps a record per scan page, each a little
	// late, so that commits land while queries and leaves read the map.
	slow := seed%4 >= 2
	cfg := envConfig{fakeWall: true, storeOpts: func(o *store.Options) {
		o.TombstoneTTL = sfTombstoneTTL
		if slow {
			o.ScanBytes = 1
		}
	}}
	auth := seed%2 == 0
	if auth {
		cfg.opts.Auth = mustAuth(t, testSecret)
	}
	e := newEnv(t, cfg)
	if slow {
		e.be.setScanHook(func() error { time.Sleep(100 * time.Microsecond); return nil })
	}
	r := &sfRun{t: t, seed: seed, rng: rng, e: e, auth: auth, queries: sfQueries(), tokens: map[string]string{}, stats: map[string]int{},
		model: &sfModel{lww: map[string]map[string]*sfLWW{}, or: map[string]map[string]*sfOR{}, log: map[string][]string{}}}
	for _, m := range sfMaps {
		r.model.lww[m], r.model.or[m] = map[string]*sfLWW{}, map[string]*sfOR{}
	}
	for i, name := range []string{"d0", "d1", "d2", "w0", "w1"} {
		d := &sfDevice{name: name, user: fmt.Sprint("u", i%2), watcher: name[0] == 'w', queries: map[string]wire.Query{}}
		r.devs = append(r.devs, d)
		r.reconnect(d, "")
	}
	start := time.Now()
	for i := range steps {
		r.step()
		if i%100 == 99 {
			r.check()
		}
		if time.Since(start) > 20*time.Second {
			t.Logf("seed %d: stopped after %d steps (%s)", seed, i+1, time.Since(start))
			break
		}
	}
	r.check()
	t.Logf("seed %d: %d steps in %s; received %v", seed, steps, time.Since(start), r.stats)
}

// TestStateFuzz_protocolModel runs the randomized protocol test: a few
// seeds from the clock, or the one TOPGUN_MODEL_SEED names.
func TestStateFuzz_protocolModel(t *testing.T) {
	before := runtime.NumGoroutine()
	// Two seeds: with authentication (even) and without (odd), slow
	// scans or not (seed%4 >= 2).
	s := uint64(time.Now().UnixNano())
	seeds := []uint64{s, s + 3}
	steps := 600
	if s := os.Getenv("TOPGUN_MODEL_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("TOPGUN_MODEL_SEED: %v", err)
		}
		seeds, steps = []uint64{v}, 2000
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint("seed_", seed), func(t *testing.T) { runStateFuzz(t, seed, steps) })
	}
	// Every connection, query and worker of the runs ended with them.
	deadline := time.Now().Add(waitFor)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines left, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
