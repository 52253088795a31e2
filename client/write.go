package client

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/topgun-go/topgun/server/wire"
)

// Op is one write of a Batch: a put of Value, or a remove.
type Op struct {
	Map    string
	Key    string
	Value  any
	Remove bool
	// TTL, when positive, makes the record expire that long after the
	// op's timestamp (sent as the record's ttlMs, whole milliseconds).
	TTL time.Duration
}

// pendingOp is a write waiting for its OP_ACK.
type pendingOp struct {
	id   uint64
	op   wire.ClientOp
	done chan error // receives exactly one result
}

func (p *pendingOp) finish(err error) {
	select {
	case p.done <- err:
	default:
	}
}

// Put writes value under key in an LWW map and waits until the server
// acknowledges it (OP_ACK). The record carries the client's HLC timestamp.
// While disconnected the write is queued and sent after reconnecting; if
// ctx ends first, Put returns ctx.Err() but the write stays queued until it
// is acknowledged (writes are at-least-once; a re-sent write carries its
// original timestamp).
func (c *Client) Put(ctx context.Context, mapName, key string, value any) error {
	return c.Batch(ctx, Op{Map: mapName, Key: key, Value: value})
}

// Remove deletes key from an LWW map (a REMOVE op with a nil-valued,
// timestamped record, as TopGun's TS client sends) and waits for the ack.
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
		rec := &wire.LWWRecord{Value: o.Value, Timestamp: c.hlc.Now()}
		opType := "PUT"
		if o.Remove {
			opType = "REMOVE"
			rec.Value = nil
		} else if o.TTL > 0 {
			ms := uint64(max(o.TTL.Milliseconds(), 1))
			rec.TTLMs = &ms
		}
		ps[i] = &pendingOp{
			op:   wire.ClientOp{MapName: o.Map, Key: o.Key, OpType: opType, Record: rec},
			done: make(chan error, 1),
		}
	}

	c.sendMu.Lock()
	c.mu.Lock()
	if c.state == StateClosed {
		err := c.err
		c.mu.Unlock()
		c.sendMu.Unlock()
		return err
	}
	if len(c.pending)+len(ps) > c.opts.MaxPendingOps {
		c.mu.Unlock()
		c.sendMu.Unlock()
		return ErrBacklogFull
	}
	for _, p := range ps {
		c.nextOpID++
		p.id = c.nextOpID
		p.op.ID = strconv.FormatUint(p.id, 10)
		c.pending[p.id] = p
	}
	cn := c.conn
	c.mu.Unlock()
	if cn != nil {
		c.sendOps(cn, ps, false)
	}
	c.sendMu.Unlock()

	for _, p := range ps {
		select {
		case err := <-p.done:
			if err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// sendOps sends ops on cn as CLIENT_OP (one op, unless batch) or OP_BATCH
// messages of at most MaxBatchOps ops and at most the frame limit,
// registering each message's ack group first. The caller holds sendMu.
// Send errors are logged: the ops stay pending and are replayed on the next
// connection.
func (c *Client) sendOps(cn *conn, ps []*pendingOp, batch bool) {
	for len(ps) > 0 {
		n := min(len(ps), c.opts.MaxBatchOps)
		c.sendChunk(cn, ps[:n], batch)
		ps = ps[n:]
	}
}

func (c *Client) sendChunk(cn *conn, ps []*pendingOp, batch bool) {
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
	b, err := c.opts.Limits.Encode(m)
	if err == nil && len(b) > c.opts.Limits.MaxMessageBytes {
		if len(ps) > 1 {
			c.sendChunk(cn, ps[:len(ps)/2], batch)
			c.sendChunk(cn, ps[len(ps)/2:], batch)
			return
		}
		err = fmt.Errorf("client: op on %s/%s encodes to %d bytes, over the %d-byte frame limit",
			ps[0].op.MapName, ps[0].op.Key, len(b), c.opts.Limits.MaxMessageBytes)
	}
	if err != nil {
		// The op can never be sent: fail it rather than replaying it forever.
		c.mu.Lock()
		for _, p := range ps {
			delete(c.pending, p.id)
		}
		c.mu.Unlock()
		for _, p := range ps {
			p.finish(err)
		}
		return
	}
	ids := make([]uint64, len(ps))
	for i, p := range ps {
		ids[i] = p.id
	}
	last := ps[len(ps)-1].op.ID
	c.mu.Lock()
	c.groups[last] = ids
	c.mu.Unlock()
	if err := c.write(cn, b); err != nil {
		c.log.Debug("write failed; ops stay queued for the next connection", "ops", len(ps), "error", err)
	}
}

// ack resolves the writes an OP_ACK acknowledges: the CLIENT_OP or
// OP_BATCH whose last op id is lastID. An id that matches no message sent on
// this connection is read as TopGun's TS client reads it: every op with a
// numeric id up to it.
func (c *Client) ack(lastID string) {
	var done []*pendingOp
	c.mu.Lock()
	if ids, ok := c.groups[lastID]; ok {
		delete(c.groups, lastID)
		for _, id := range ids {
			if p := c.pending[id]; p != nil {
				delete(c.pending, id)
				done = append(done, p)
			}
		}
	} else if n, err := strconv.ParseUint(lastID, 10, 64); err == nil {
		for id, p := range c.pending {
			if id <= n {
				delete(c.pending, id)
				done = append(done, p)
			}
		}
		for k := range c.groups {
			if g, err := strconv.ParseUint(k, 10, 64); err == nil && g <= n {
				delete(c.groups, k)
			}
		}
	} else {
		c.log.Debug("ignoring OP_ACK with a non-numeric id", "last_id", lastID)
	}
	c.mu.Unlock()
	for _, p := range done {
		p.finish(nil)
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
