package client

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/topgun-go/topgun/server/wire"
)

// Op is one write of a Batch: on an LWW map a put of Value or a remove; on
// an OR-Map (OR set) an add of Value or the remove of the entry tagged Tag.
type Op struct {
	Map    string
	Key    string
	Value  any
	Remove bool
	// TTL, when positive, makes the record (or OR entry) expire that long
	// after the op's timestamp (sent as ttlMs, whole milliseconds).
	TTL time.Duration
	// OR makes the op an OR-Map op (OR_ADD, or OR_REMOVE with Remove).
	OR bool
	// Tag names an OR entry: the one an OR remove removes (required), or
	// the tag of an OR add; an add without one gets its timestamp's text
	// form ("millis:counter:nodeId"), as TopGun's client tags entries.
	// Use NewTag for a tag known before the add is sent; ORAdd returns
	// the one it used.
	Tag string
}

// pendingOp is a write waiting for its OP_ACK.
type pendingOp struct {
	id   uint64
	call uint64 // id of the first op of its Batch call: a call's ops go out together
	op   wire.ClientOp
	done chan error // receives exactly one result
	// rejected: the server refused it (OP_REJECTED); the OP_ACK that
	// still covers it must neither report success nor supersede older
	// writes to its key. Guarded by Client.mu.
	rejected bool
}

func (p *pendingOp) finish(err error) {
	select {
	case p.done <- err:
	default:
	}
}

// opKey is the (map, key) an LWW op writes.
type opKey struct{ mapName, key string }

// lwwKey returns the (map, key) of an LWW put or remove; OR-Map ops have
// none.
func lwwKey(op *wire.ClientOp) (opKey, bool) {
	switch op.Kind() {
	case wire.OpPut, wire.OpRemove:
		return opKey{op.MapName, op.Key}, true
	}
	return opKey{}, false
}

// Put writes value under key in an LWW map and waits until the server
// acknowledges it (OP_ACK). While disconnected the write is queued and sent
// after reconnecting; if ctx ends first, Put returns ctx.Err() but the
// write stays queued (sent with the next write or after a reconnect) until
// it is acknowledged: writes are at-least-once. TopGun stamps every write
// with its own clock when it arrives, so the last write to arrive wins
// whatever timestamp the client gave it. The client therefore stops
// re-sending a write once a later write to the same key is acknowledged:
// its Put still waits for its own ack, and fails with ErrSuperseded once
// that cannot come (the connection it went out on is gone, or it was never
// sent). This project's server keeps the client's timestamp instead: there
// a write stamped before the key's record is acknowledged and changes
// nothing (see the package doc, and its Values for what value is stored).
func (c *Client) Put(ctx context.Context, mapName, key string, value any) error {
	return c.Batch(ctx, Op{Map: mapName, Key: key, Value: value})
}

// Remove deletes key from an LWW map (a REMOVE op with a nil-valued,
// timestamped record, as TopGun's TS client sends) and waits for the ack.
// It is queued and re-sent as Put is.
func (c *Client) Remove(ctx context.Context, mapName, key string) error {
	return c.Batch(ctx, Op{Map: mapName, Key: key, Remove: true})
}

// Batch sends ops together (one OP_BATCH, split every Options.MaxBatchOps;
// a single op goes as CLIENT_OP) and waits until all are acknowledged.
// TopGun's server acks a batch with the id of its last op, and answers a
// failed batch with an ERROR it cannot tie to the request (see
// Options.OnServerError), so a failed batch shows up here as ctx expiring.
func (c *Client) Batch(ctx context.Context, ops ...Op) error {
	if len(ops) == 0 {
		return nil
	}
	ps := make([]*pendingOp, len(ops))
	for i, o := range ops {
		if o.Map == "" {
			return fmt.Errorf("client: op %d has an empty map name", i)
		}
		// The server cannot decode such a frame and answers an ERROR
		// naming no op: queued, the op would never be acknowledged, and
		// replayed in one OP_BATCH with the others it would keep them
		// from being acknowledged too.
		if !utf8.ValidString(o.Map) || !utf8.ValidString(o.Key) || (o.OR && !utf8.ValidString(o.Tag)) {
			return fmt.Errorf("client: op %d (%q/%q) has a map name, key or tag that is not valid UTF-8", i, o.Map, o.Key)
		}
		var ttl *uint64
		if o.TTL > 0 && !o.Remove {
			ms := uint64(max(o.TTL.Milliseconds(), 1))
			ttl = &ms
		}
		var op wire.ClientOp
		switch {
		case o.OR && o.Remove:
			if o.Tag == "" {
				return fmt.Errorf("client: OR remove %d (%s/%s) has no tag", i, o.Map, o.Key)
			}
			op = wire.ClientOp{MapName: o.Map, Key: o.Key, OpType: "OR_REMOVE", ORTag: &o.Tag}
		case o.OR:
			rec := &wire.ORMapRecord{Value: o.Value, Timestamp: c.hlc.Now(), Tag: o.Tag, TTLMs: ttl}
			if rec.Tag == "" {
				rec.Tag = rec.Timestamp.String()
			}
			op = wire.ClientOp{MapName: o.Map, Key: o.Key, OpType: "OR_ADD", ORRecord: rec}
		case o.Remove:
			op = wire.ClientOp{MapName: o.Map, Key: o.Key, OpType: "REMOVE", Record: &wire.LWWRecord{Timestamp: c.hlc.Now()}}
		default:
			op = wire.ClientOp{MapName: o.Map, Key: o.Key, OpType: "PUT", Record: &wire.LWWRecord{Value: o.Value, Timestamp: c.hlc.Now(), TTLMs: ttl}}
		}
		ps[i] = &pendingOp{op: op, done: make(chan error, 1)}
	}
	if err := c.enqueue(ps); err != nil {
		return err
	}
	if err := c.lockSend(ctx); err != nil {
		return err // the ops stay queued for the next flush or replay
	}
	c.flush(ctx)
	c.unlockSend()
	for _, p := range ps {
		if err := c.waitAck(ctx, p); err != nil {
			return err
		}
	}
	return nil
}

// enqueue gives ps their ids and adds them to the replay set and to the
// queue of ops to send.
func (c *Client) enqueue(ps []*pendingOp) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == StateClosed {
		return c.err
	}
	if len(c.pending)+len(ps) > c.opts.MaxPendingOps {
		return ErrBacklogFull
	}
	for _, p := range ps {
		c.nextOpID++
		p.id = c.nextOpID
		p.call = ps[0].id
		p.op.ID = strconv.FormatUint(p.id, 10)
		c.pending[p.id] = p
		if k, ok := lwwKey(&p.op); ok {
			c.byKey[k] = append(c.byKey[k], p)
		}
	}
	c.unsent = append(c.unsent, ps...)
	return nil
}

// waitAck waits for p's own ack.
func (c *Client) waitAck(ctx context.Context, p *pendingOp) error {
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-c.ctx.Done():
		// fail has finished every op still in the replay set; one dropped
		// from it (superseded) learns of the close here.
		select {
		case err := <-p.done:
			return err
		default:
			return c.closedErr()
		}
	}
}

// flush sends the queued ops on the current connection in id order, each
// Batch call's ops together. The caller holds the send lock. What is not
// sent when ctx ends stays queued for the next flush (or, if a failed write
// dropped the connection, for the next install's replay).
func (c *Client) flush(ctx context.Context) {
	c.mu.Lock()
	cn := c.conn
	if cn == nil { // install will replay them all
		c.mu.Unlock()
		return
	}
	queue := make([]*pendingOp, 0, len(c.unsent))
	var never []*pendingOp
	for _, p := range c.unsent {
		switch {
		case c.pending[p.id] == p:
			queue = append(queue, p)
		case c.superseded[p]: // never sent, so no ack can come
			delete(c.superseded, p)
			never = append(never, p)
		}
	}
	c.unsent = nil
	c.mu.Unlock()
	for _, p := range never {
		p.finish(ErrSuperseded)
	}
	for len(queue) > 0 {
		n := 1
		for n < len(queue) && queue[n].call == queue[0].call {
			n++
		}
		sent, err := c.sendOps(ctx, cn, queue[:n], false)
		if err != nil {
			c.mu.Lock()
			c.unsent = append(queue[sent:], c.unsent...)
			c.mu.Unlock()
			return
		}
		queue = queue[n:]
	}
}

// sendOps sends ops on cn as CLIENT_OP (one op, unless batch) or OP_BATCH
// messages of at most MaxBatchOps ops and at most the frame limit,
// registering each message's ack group first. The caller holds the send
// lock. It stops at the first failed write and returns how many of ps were
// dealt with before it; the others stay pending.
func (c *Client) sendOps(ctx context.Context, cn *conn, ps []*pendingOp, batch bool) (int, error) {
	done := 0
	for done < len(ps) {
		n := min(len(ps)-done, c.opts.MaxBatchOps)
		sent, err := c.sendChunk(ctx, cn, ps[done:done+n], batch)
		done += sent
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// opValueDepth is how many maps and arrays hold an op's value in an
// OP_BATCH: the message, its payload, the ops, the op and its record.
const opValueDepth = 5

func (c *Client) sendChunk(ctx context.Context, cn *conn, ps []*pendingOp, batch bool) (int, error) {
	var m wire.Message
	if len(ps) == 1 && !batch {
		m = &wire.ClientOpMessage{ClientOp: ps[0].op}
	} else {
		ops := make([]wire.ClientOp, len(ps))
		for i, p := range ps {
			ops[i] = p.op
		}
		m = &wire.OpBatch{Ops: ops}
	}
	// The server counts the levels above a value against MaxDepth too,
	// the encoder only the value's own: an op the server cannot decode
	// in an OP_BATCH (as a replay sends it) is refused here.
	l := c.opts.Limits
	l.MaxDepth = max(l.MaxDepth-opValueDepth, 1)
	b, err := l.Encode(m)
	if err == nil {
		err = c.checkWriteFrame(b)
	}
	if err != nil && len(ps) > 1 {
		// Split until the op that cannot go is alone, so that it fails
		// by itself and not the other writes it was batched with (a
		// replay batches every caller's writes together).
		half := len(ps) / 2
		n, err := c.sendChunk(ctx, cn, ps[:half], batch)
		if err != nil {
			return n, err
		}
		n, err = c.sendChunk(ctx, cn, ps[half:], batch)
		return half + n, err
	}
	if err != nil {
		err = fmt.Errorf("client: op on %s/%s: %w", ps[0].op.MapName, ps[0].op.Key, err)
		// The op can never be sent: fail it rather than replaying it forever.
		c.mu.Lock()
		for _, p := range ps {
			c.forget(p)
		}
		c.mu.Unlock()
		for _, p := range ps {
			p.finish(err)
		}
		return len(ps), nil
	}
	if err := ctx.Err(); err != nil {
		return 0, err // not sent, so no ack group
	}
	id := ps[len(ps)-1].op.ID
	c.mu.Lock()
	c.groups[id] = ps
	c.mu.Unlock()
	if err := c.write(ctx, cn, b); err != nil {
		c.log.Debug("write failed; ops stay queued", "ops", len(ps), "error", err)
		// No ack can answer the group: nothing was sent (ctx ended just
		// before), or the connection is dropped. Left, it could take a
		// later partial ack naming one of its ops from the group that is.
		c.mu.Lock()
		if g := c.groups[id]; len(g) > 0 && g[0] == ps[0] {
			delete(c.groups, id)
		}
		c.mu.Unlock()
		return 0, err
	}
	return len(ps), nil
}

// checkWriteFrame reports why the server would refuse the encoded write
// b without acknowledging any of its ops: a frame over the frame limit, or
// one that would take more memory once decoded than the server lets a
// message take (wire.Limits.MaxDecodedBytes; it answers an ERROR 413 that
// names no op, so the ops would wait for an ack forever). No frame takes
// more than about 200 times its bytes once decoded (one-entry maps), so a
// frame of at most 1/256 of the limit is not decoded to check: decoding
// tripled the client's work per ordinary batch.
func (c *Client) checkWriteFrame(b []byte) error {
	l := c.opts.Limits
	if len(b) > l.MaxMessageBytes {
		return fmt.Errorf("encodes to %d bytes, over the %d-byte frame limit", len(b), l.MaxMessageBytes)
	}
	limit := int64(l.MaxDecodedBytes)
	if limit == 0 {
		limit = wire.DecodedBytesPerMessageByte * int64(l.MaxMessageBytes)
	}
	if int64(len(b)) <= limit/256 {
		return nil
	}
	if _, err := l.Decode(b); errors.Is(err, wire.ErrDecodedTooLarge) {
		return fmt.Errorf("would take more than the %d bytes of memory the server lets a message take once decoded (Limits.MaxDecodedBytes)", limit)
	}
	return nil
}

// ack resolves the writes an OP_ACK acknowledges: the CLIENT_OP or
// OP_BATCH whose last op id is lastID. The id of another op of a message
// sent is a partial ack of that message: this project's server applies an
// OP_BATCH of more ops than its TOPGUN_MAX_BATCH_OPS up to the limit,
// acknowledges up to the last op it applied and expects the rest again, so
// the rest is queued to be re-sent. An id that matches no op sent on this
// connection is read as TopGun's TS client reads it: every op with a
// numeric id up to it, of the messages sent on this connection (a write
// still queued cannot have been received).
func (c *Client) ack(lastID string) {
	var done, resend []*pendingOp
	c.mu.Lock()
	if g, ok := c.groups[lastID]; ok {
		delete(c.groups, lastID)
		done = g
	} else if n, err := strconv.ParseUint(lastID, 10, 64); err == nil {
		// The message that holds op n, if any, is the only one this ack
		// is about: re-sent remainders go out after later messages, so
		// ids no longer tell which messages the server has answered.
		only := ""
		for k, g := range c.groups {
			if slices.ContainsFunc(g, func(p *pendingOp) bool { return p.id == n }) {
				only = k
				break
			}
		}
		for k, g := range c.groups {
			if g[0].id > n || (only != "" && k != only) {
				continue // not covered: its own ack is still to come
			}
			delete(c.groups, k)
			for _, p := range g {
				switch {
				case p.id <= n:
					done = append(done, p) // as for a group's own ack
				case c.pending[p.id] == p || c.superseded[p]:
					// The server will not answer these: send them again
					// (flush fails the superseded ones with ErrSuperseded).
					resend = append(resend, p)
				}
			}
		}
	} else {
		c.log.Debug("ignoring OP_ACK with a non-numeric id", "last_id", lastID)
	}
	acked := make([]*pendingOp, 0, len(done)) // not in place: done may be a sender's slice
	for _, p := range done {
		delete(c.superseded, p) // its own ack came
		if p.rejected {
			continue // already failed and forgotten by reject
		}
		c.settle(p)
		acked = append(acked, p)
	}
	if len(acked) > 0 {
		// Storage stores again: the writes it failed need wait no longer.
		c.storeRetry = 0
		if r := c.retry; r != nil {
			c.stopRetryLocked()
			resend = append(resend, r.ops...)
		}
	}
	if len(resend) > 0 {
		c.resendLocked(resend)
	}
	c.mu.Unlock()
	for _, p := range acked {
		p.finish(nil)
	}
}

// resendLocked queues ps, sent and never to be answered, and sends them
// again on the current connection (a new connection replays them anyway).
// Caller holds mu.
func (c *Client) resendLocked(ps []*pendingOp) {
	c.unsent = append(ps, c.unsent...)
	slices.SortFunc(c.unsent, func(a, b *pendingOp) int { return cmp.Compare(a.id, b.id) })
	// Not on the connection's goroutine, which must keep reading while
	// the frame is written.
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		if c.lockSend(c.ctx) != nil {
			return // closed
		}
		defer c.unlockSend()
		c.flush(c.ctx)
	}()
}

// storeFailedID returns the lastId of the write an ERROR answers when it
// is this project's server's answer to a write it could not store: it
// asks for the write again and keeps the connection, so no reconnect
// would replay it.
func storeFailedID(m *wire.ErrorMessage) (string, bool) {
	if m.Code != 500 || !strings.HasPrefix(m.Message, "protocol: the write could not be stored") {
		return "", false
	}
	i := strings.LastIndex(m.Message, "; lastId ")
	if i < 0 {
		return "", false
	}
	id, err := strconv.Unquote(m.Message[i+len("; lastId "):])
	return id, err == nil
}

// retryRound is the writes the server could not store on cn, held back
// until the wait before sending them again is over: not queued before,
// where every later write's flush would send them at once, and again
// after each failure, as many times as the client writes.
type retryRound struct {
	cn   *conn
	ops  []*pendingOp
	stop chan struct{} // closed when the round no longer waits
}

// stopRetryLocked ends the waiting round, if any, leaving its writes to
// the caller. Caller holds mu.
func (c *Client) stopRetryLocked() {
	if c.retry != nil {
		close(c.retry.stop)
		c.retry = nil
	}
}

// storeFailed sends again the write with lastId id, which the server could
// not store on cn, after Options.BackoffInitial, doubling up to BackoffMax
// while the server keeps failing (its store may be down). The writes that
// fail while a round waits join it; an ack (storage stores again) ends
// the wait.
func (c *Client) storeFailed(cn *conn, id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	group, ok := c.groups[id]
	if !ok {
		return
	}
	delete(c.groups, id)
	var resend []*pendingOp
	for _, p := range group {
		// As for a partial ack's rest: flush fails the superseded ones
		// with ErrSuperseded.
		if c.pending[p.id] == p || c.superseded[p] {
			resend = append(resend, p)
		}
	}
	if len(resend) == 0 {
		return
	}
	if r := c.retry; r != nil && r.cn == cn {
		r.ops = append(r.ops, resend...)
		return
	}
	wait := c.storeRetry
	switch {
	case wait <= 0 && c.opts.BackoffInitial > 0:
		wait = c.opts.BackoffInitial
	case wait <= 0:
		wait = time.Second // reconnecting is off: no backoff is set
	default:
		wait = min(2*wait, max(c.opts.BackoffMax, wait))
	}
	c.storeRetry = wait
	c.log.Debug("the server could not store a write; sending it again", "ops", len(resend), "retry_in", wait)
	c.stopRetryLocked()
	r := &retryRound{cn: cn, ops: resend, stop: make(chan struct{})}
	c.retry = r
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		// Jittered as reconnecting is: the writes of many clients failed
		// by one storage outage would otherwise come back all at once.
		t := time.NewTimer(jitter(wait))
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.stop: // an ack re-sent them, or a new connection replays them
			return
		case <-c.ctx.Done():
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.retry != r {
			return
		}
		c.retry = nil
		c.resendLocked(r.ops)
	}()
}

// reject fails the write the server refused with OP_REJECTED. This
// project's server sends it before the OP_ACK that still covers the op;
// TopGun never sends it. The op leaves the replay set (re-sending it would
// be refused again) without superseding older writes to its key.
func (c *Client) reject(m *wire.OpRejected) {
	id, err := strconv.ParseUint(m.OpID, 10, 64)
	if err != nil {
		c.log.Debug("ignoring OP_REJECTED with a non-numeric id", "op_id", m.OpID)
		return
	}
	var p *pendingOp
	c.mu.Lock()
	if q := c.pending[id]; q != nil {
		p = q
		c.forget(p)
	} else {
		for q := range c.superseded {
			if q.id == id {
				p = q
				delete(c.superseded, q)
				break
			}
		}
	}
	if p != nil {
		p.rejected = true
	}
	c.mu.Unlock()
	if p == nil {
		return
	}
	c.log.Warn("the server rejected a write", "op_id", m.OpID, "map", p.op.MapName, "key", p.op.Key, "reason", m.Reason)
	p.finish(&RejectedError{OpID: m.OpID, Reason: m.Reason, Code: m.Code})
}

// settle removes an acknowledged op from the replay set, together with
// every older LWW op on its (map, key): TopGun stamps writes on arrival, so
// replaying one of those after this ack would overwrite the acknowledged
// value. Their callers are not told success: they still wait for their own
// acks, and get ErrSuperseded once those cannot come (see superseded).
// Caller holds mu.
func (c *Client) settle(p *pendingOp) {
	delete(c.pending, p.id)
	k, ok := lwwKey(&p.op)
	if !ok {
		return
	}
	q := c.byKey[k]
	i := 0
	for i < len(q) && q[i].id <= p.id {
		if q[i] != p && c.pending[q[i].id] == q[i] {
			c.superseded[q[i]] = true
		}
		delete(c.pending, q[i].id)
		i++
	}
	if i == len(q) {
		delete(c.byKey, k)
	} else {
		c.byKey[k] = q[i:]
	}
}

// forget removes p from the replay set. Caller holds mu.
func (c *Client) forget(p *pendingOp) {
	delete(c.pending, p.id)
	k, ok := lwwKey(&p.op)
	if !ok {
		return
	}
	q := slices.DeleteFunc(c.byKey[k], func(o *pendingOp) bool { return o == p })
	if len(q) == 0 {
		delete(c.byKey, k)
	} else {
		c.byKey[k] = q
	}
}

// pendingInOrder returns the unacknowledged writes by id. Caller holds mu.
func (c *Client) pendingInOrder() []*pendingOp {
	ps := make([]*pendingOp, 0, len(c.pending))
	for _, p := range c.pending {
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b *pendingOp) int {
		switch {
		case a.id < b.id:
			return -1
		case a.id > b.id:
			return 1
		}
		return 0
	})
	return ps
}

// Pending returns how many writes are waiting for an ack.
func (c *Client) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}
