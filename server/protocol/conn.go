package protocol

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/server/record"
	"github.com/topgun-go/topgun/server/wire"
)

// conn is one client connection. Its goroutines:
//
//   - the reader (the HTTP handler's goroutine): reads frames and handles
//     them; requests are answered from here, writes go to the worker;
//   - the writer: the only one writing to the socket, draining the bounded
//     outbound queue;
//   - the write worker (writes.go): applies writes and sends the acks.
//
// Everything else that talks to the client (the change-feed fan-out, query
// resyncs, timers) only enqueues on the outbound queue, never blocking: a
// client that lets the queue fill up is disconnected.
type conn struct {
	s   *Server
	id  uint64 // the origin passed to store.Apply
	ws  *websocket.Conn
	log hclog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // writer, write worker and feed worker

	// feed carries to feedWorker, in commit order, the changes of the
	// maps this connection holds live queries on and the GC_PRUNE offers
	// (see Server.dispatch). Matching changes against a connection's
	// queries runs there, not on the one goroutine that serves the change
	// feed to every client: queries slow to match (a regex over long
	// strings) hold up only their own connection, which is closed when it
	// falls feedQueue commits behind.
	feed   feedBacklog
	feedOn atomic.Bool // feedWorker runs (from the first live query on)

	out     outQueue
	queued  atomic.Int64  // bytes of the messages in out, msgOverhead each included
	pushed  atomic.Int64  // the part of queued sent without being asked for (send)
	wrote   chan struct{} // signalled by the writer after each message (for the reader)
	wroteW  chan struct{} // the same, for the write worker
	closing atomic.Bool   // a close is queued or done: send nothing more
	// roomWait: the reader waits for room (waitRoom), reading nothing, so
	// nothing arriving is not the client's idleness; the write in progress
	// has its own deadline.
	roomWait atomic.Bool

	// Reader-owned handshake state; authed is read by other goroutines.
	authed      atomic.Bool
	authAcked   bool
	principal   Principal
	deviceID    string
	deviceBound bool
	// deviceKey is the identity this connection owns in Server.devices
	// (set once by the reader, read under Server.mu).
	deviceKey string
	// trial: admitted over the connection limit (set before start).
	// onTrial (reader-owned): still so, served nothing until it takes
	// over its device's open connection (claimDevice) or a slot freed
	// meanwhile (Server.promote). reserved: it holds slots of the limits'
	// reserves, not regular ones (under Server.mu; a takeover trades them
	// with the displaced connection's).
	trial    bool
	onTrial  bool
	reserved bool
	refusal  string // a connection on trial's close reason (trialRefusal)
	// pruneSent: the store's tombstone cut-off was offered to this
	// connection, at its first sync (reader-owned; see sendPruneOnce).
	pruneSent bool

	writes  chan *writeJob
	settled *settledSet // write worker only

	mu           sync.Mutex // guards pending, queuedWrites, draining, drained, prune*, staleRead, greeted
	pending      int        // write jobs queued or running
	queuedWrites int        // decoded size of those jobs
	writesFreed  chan struct{}
	draining     bool
	drained      chan struct{}
	// prune is the greatest tombstone cut-off held back (havePrune) while
	// writes are pending or a stale read is being answered (offerPrune).
	prune     record.Timestamp
	havePrune bool
	// writeFailed: a write of the connection was refused whole (400, 403,
	// 413) before its ops were known, or left unstored ops that cannot be
	// recognised when sent again (set by the write worker or the reader
	// before its answer; see pruneHeldLocked and writeRefused).
	writeFailed atomic.Bool
	// unstored holds the fingerprints of ops a failed, refused or partly
	// acknowledged write left unstored, until the client sends them again
	// and they are settled (write worker only); unstoredN is its size,
	// stored before the jobs are counted done (see noteUnstored).
	unstored  map[uint64]struct{}
	unstoredN atomic.Int64
	// staleRead: the reader is answering with state it read while writes
	// of the connection were pending (beginStateRead).
	staleRead bool
	// greeted: the reader has handled a frame of the authenticated client
	// (its AUTH or DEVICE_HELLO first, answered); see noteGreeted.
	greeted bool

	subsMu sync.Mutex
	subs   map[string]*subscription // by query id
	// queryBytes is the memory the queries of subs take (subscription.
	// bytes; bounded by queryBudget when a query starts), under subsMu.
	queryBytes int
	// queryResults is the records held in the results of subs (bounded
	// by Options.MaxQueryResults when a query starts).
	queryResults atomic.Int64

	idle      *time.Timer
	authTimer *time.Timer
}

type outItem struct {
	b      []byte
	close  *closeReq
	pushed bool // counted in conn.pushed
}

// msgOverhead is what one queued message costs besides its bytes (its
// queue slot and allocation), counted against Options.OutboundBytes so
// that many small messages are bounded as well as a few large ones.
const msgOverhead = 64

// outQueue is a connection's outbound FIFO. It is bounded by the bytes
// counted in conn.queued, not by a number of messages: one commit can push
// a message per change and live query to a client (an OP_BATCH of
// thousands of ops, hundreds of queries on a map), far more than any fixed
// number of slots, to a client that reads all of it.
type outQueue struct {
	mu    sync.Mutex
	items []outItem
	head  int
	ready chan struct{} // signalled after a push (capacity 1)
}

func (q *outQueue) push(it outItem) {
	q.mu.Lock()
	if q.head > 0 && q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	} else if q.head >= 256 && q.head >= len(q.items)/2 {
		// Move the queued items down over the ones already popped: a
		// queue that never drains to empty would otherwise grow its
		// backing array with every message that ever went through it.
		// A burst's large backing array is not kept either.
		rest := q.items[q.head:]
		if cap(q.items) > 1024 && len(rest) < cap(q.items)/4 {
			q.items = append(make([]outItem, 0, 2*len(rest)), rest...)
		} else {
			n := copy(q.items, rest)
			clear(q.items[n:])
			q.items = q.items[:n]
		}
		q.head = 0
	}
	q.items = append(q.items, it)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// pop returns the oldest item, false when the queue is empty.
func (q *outQueue) pop() (outItem, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head == len(q.items) {
		return outItem{}, false
	}
	it := q.items[q.head]
	q.items[q.head] = outItem{}
	q.head++
	if q.head == len(q.items) {
		// Drained: a burst's large backing array is not kept.
		if cap(q.items) > 1024 {
			q.items = nil
		} else {
			q.items = q.items[:0]
		}
		q.head = 0
	}
	return it, true
}

func (q *outQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) - q.head
}

// next waits for the oldest item; false when done is closed first.
func (q *outQueue) next(done <-chan struct{}) (outItem, bool) {
	for {
		if it, ok := q.pop(); ok {
			return it, true
		}
		select {
		case <-q.ready:
		case <-done:
			return outItem{}, false
		}
	}
}

type closeReq struct {
	code   websocket.StatusCode
	reason string
}

func (s *Server) newConn(ws *websocket.Conn, remote string) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	id := s.origins.Add(1)
	c := &conn{
		s: s, id: id, ws: ws,
		log:         s.log.With("conn", id, "remote", remote),
		ctx:         ctx,
		cancel:      cancel,
		out:         outQueue{ready: make(chan struct{}, 1)},
		wrote:       make(chan struct{}, 1),
		wroteW:      make(chan struct{}, 1),
		writes:      make(chan *writeJob, 256),
		settled:     newSettledSet(),
		drained:     make(chan struct{}),
		writesFreed: make(chan struct{}, 1),
		subs:        map[string]*subscription{},
	}
	if s.opts.Auth == nil {
		c.authed.Store(true)
	}
	return c
}

// start launches the writer and the write worker and the timers, and opens
// the handshake.
func (c *conn) start() {
	if c.ws != nil {
		c.wg.Add(1)
		go c.writer()
	}
	c.wg.Add(1)
	go c.writeWorker()
	c.idle = time.AfterFunc(c.s.opts.IdleTimeout, func() {
		if c.ctx.Err() != nil {
			return // ended: the timer must not start again
		}
		c.mu.Lock()
		busy := c.pending > 0 || c.roomWait.Load()
		c.mu.Unlock()
		if busy {
			// Its writes wait for storage (the reader, held behind them,
			// reads no PING meanwhile): the client is not idle, and
			// closing it would only make it send them all again.
			c.touch()
			return
		}
		if !c.closing.Load() {
			c.log.Debug("closing idle connection", "idle_timeout", c.s.opts.IdleTimeout)
			c.closeGraceful(websocket.StatusGoingAway, "idle timeout")
		}
	})
	if !c.authed.Load() {
		c.authTimer = time.AfterFunc(c.s.opts.AuthTimeout, func() {
			if !c.authed.Load() && !c.closing.Load() {
				if c.trial {
					c.log.Debug("closing connection on trial that took over no device's connection", "auth_timeout", c.s.opts.AuthTimeout)
					c.closeGraceful(websocket.StatusTryAgainLater, c.refusal)
					return
				}
				c.log.Debug("closing connection that did not authenticate", "auth_timeout", c.s.opts.AuthTimeout)
				c.closeGraceful(websocket.StatusPolicyViolation, "authentication timeout")
			}
		})
		if c.s.opts.Auth != nil {
			// (Without Auth, only a connection on trial waits: TopGun's
			// client would take AUTH_REQUIRED for a demand of a token.)
			c.sendMsg(&wire.AuthRequired{})
		}
	}
}

// touch records activity: the idle timer starts over.
func (c *conn) touch() {
	if c.idle != nil {
		c.idle.Reset(c.s.opts.IdleTimeout)
	}
}

// send queues an encoded message. It never blocks: when the queue is full
// (in bytes), the client is too slow and is disconnected.
func (c *conn) send(b []byte) { c.enqueue(b, false) }

// enqueue queues b; with requested (an answer the reader waited for room
// for, see reply) the byte bound does not apply.
//
// A message sent without being asked for disconnects the client when the
// queue would pass the bound while such messages take over half of it:
// the other half is the answers' (waitRoom), and an answer larger than
// that, which the client asked for and may be reading as fast as it can,
// does not leave the changes that follow it without room.
func (c *conn) enqueue(b []byte, requested bool) {
	if c.closing.Load() {
		return
	}
	n := int64(len(b)) + msgOverhead
	q := c.queued.Add(n)
	if !requested {
		p := c.pushed.Add(n)
		if bound := c.s.opts.OutboundBytes; q > bound && p > bound/2 && q != n {
			c.queued.Add(-n)
			c.pushed.Add(-n)
			c.log.Warn("disconnecting a client that does not read its messages", "queued_bytes", q-n, "message_bytes", n,
				"limit_bytes", bound)
			c.s.slowDrops.Add(1)
			c.abort()
			return
		}
	}
	c.out.push(outItem{b: b, pushed: !requested})
}

// sendMsg encodes and queues a message.
func (c *conn) sendMsg(m wire.Message) {
	b, err := wire.Encode(m)
	if err != nil {
		c.log.Error("cannot encode message", "type", m.Type(), "error", err)
		return
	}
	c.send(b)
}

// reply queues the answer to a request the reader is handling. Unlike
// sendMsg it first waits for room (waitRoom), and the answer is queued
// even when it is larger than what is left: the reader reads no further
// requests until the client has read the answers it asked for, so a client
// that asks for much (a whole map's sync, many queries) is slowed down
// rather than disconnected, and what it has queued stays under half the
// bound plus one answer.
func (c *conn) reply(m wire.Message) {
	c.waitRoom()
	c.replyNow(m)
}

// answerWrite queues an answer of the write worker (OP_ACK, OP_REJECTED,
// ERROR) as reply does for the reader: it waits for room instead of
// disconnecting the client, which is reading what it asked for (a batch of
// refused ops gets one OP_REJECTED per op, faster than any client reads).
// While the worker waits, the reader's write queue fills and it stops
// reading: backpressure through the socket.
func (c *conn) answerWrite(m wire.Message) {
	c.waitRoomOn(c.wroteW)
	c.replyNow(m)
}

// replyNow queues an answer the reader already waited for room for.
func (c *conn) replyNow(m wire.Message) {
	b, err := wire.Encode(m)
	if err != nil {
		c.log.Error("cannot encode message", "type", m.Type(), "error", err)
		return
	}
	c.enqueue(b, true)
}

// waitRoom waits until the outbound queue is at most half full, in
// messages and in bytes, or the connection ends. The other half is left
// to the messages sent without waiting (changes), whose senders cannot be
// held up. Only the reader and the write worker wait (each on its own
// signal, so that neither takes the other's), never while holding a lock
// others need.
func (c *conn) waitRoom() {
	c.roomWait.Store(true)
	defer c.roomWait.Store(false)
	c.waitRoomOn(c.wrote)
}

func (c *conn) waitRoomOn(wrote chan struct{}) {
	for !c.closing.Load() {
		if c.queued.Load() <= c.s.opts.OutboundBytes/2 && c.out.len() < (c.s.opts.OutboundQueue+1)/2 {
			return
		}
		select {
		case <-wrote:
			// The client reads; that nothing arrives from it now is the
			// reader's doing, so it does not count as idleness.
			c.touch()
		case <-c.ctx.Done():
			return
		}
	}
}

// closeGraceful queues a close after the messages already queued (an
// AUTH_FAIL, acks), so they reach the client first.
func (c *conn) closeGraceful(code websocket.StatusCode, reason string) {
	if c.closing.Swap(true) {
		return
	}
	c.out.push(outItem{close: &closeReq{code: code, reason: reason}})
}

// abort drops the connection at once.
func (c *conn) abort() {
	c.closing.Store(true)
	c.cancel()
	if c.ws != nil {
		go c.ws.CloseNow()
	}
}

// sent records that the writer is done with it (written, or failed):
// its bytes leave the queue and a reader waiting for room looks again.
func (c *conn) sent(it outItem) {
	c.queued.Add(-int64(len(it.b)) - msgOverhead)
	if it.pushed {
		c.pushed.Add(-int64(len(it.b)) - msgOverhead)
	}
	select {
	case c.wrote <- struct{}{}:
	default:
	}
	select {
	case c.wroteW <- struct{}{}:
	default:
	}
}

// writer writes queued messages to the socket until the connection ends.
func (c *conn) writer() {
	defer c.wg.Done()
	for {
		it, ok := c.out.next(c.ctx.Done())
		if !ok {
			return
		}
		if it.close != nil {
			_ = c.ws.Close(it.close.code, it.close.reason)
			c.abort()
			return
		}
		ctx, cancel := context.WithTimeout(c.ctx, c.s.opts.writeTimeout(len(it.b)))
		err := c.ws.Write(ctx, websocket.MessageBinary, it.b)
		cancel()
		c.sent(it)
		if err != nil {
			if c.ctx.Err() == nil && !c.closing.Load() {
				c.log.Debug("write to client failed", "error", err)
			}
			c.abort()
			return
		}
	}
}

// touchReader reads a message, recording activity as its bytes arrive.
type touchReader struct {
	r io.Reader
	c *conn
}

func (t *touchReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 {
		t.c.touch()
	}
	return n, err
}

// errFrameTooLarge: the frame is over MaxMessageBytes (it was read to its
// end and dropped).
var errFrameTooLarge = errors.New("protocol: frame too large")

// readLoop reads frames until the connection ends.
func (c *conn) readLoop() {
	max := int64(c.s.opts.MaxMessageBytes)
	// One per connection, not per message: boxed afresh into an
	// io.Reader it was an allocation per frame read.
	tr := &touchReader{c: c}
	for {
		typ, r, err := c.ws.Reader(c.ctx)
		if err != nil {
			if c.ctx.Err() == nil && websocket.CloseStatus(err) == -1 && !c.closing.Load() {
				c.log.Debug("read from client ended", "error", err)
			}
			return
		}
		c.touch()
		// Each part of a message arriving is activity too: a client on a
		// slow link would otherwise be closed as idle halfway through a
		// large message, and send it again, in vain, at every reconnection.
		tr.r = r
		r = tr
		if typ != websocket.MessageBinary {
			// TopGun's protocol is binary only; text frames are ignored.
			if _, err := io.Copy(io.Discard, r); err != nil {
				return
			}
			c.log.Debug("ignoring a text frame")
			continue
		}
		limit := max
		if !c.authed.Load() && limit > maxFrameBeforeAuth {
			// Only AUTH is read before authentication: a stranger must
			// not make the server buffer megabytes per connection.
			limit = maxFrameBeforeAuth
		}
		frame, err := io.ReadAll(io.LimitReader(r, limit+1))
		if err == nil && int64(len(frame)) > limit {
			_, err = io.Copy(io.Discard, r)
			if err == nil {
				err = errFrameTooLarge
			}
		}
		switch {
		case errors.Is(err, errFrameTooLarge):
			if c.authed.Load() {
				// Unread, its type is unknown: it may be a write.
				c.writeRefused("")
				c.reply(c.s.tooLargeError())
			}
			continue
		case err != nil:
			return // the frame itself is unreadable
		}
		if c.isDraining() {
			continue
		}
		c.handleFrame(frame, 0)
		c.noteGreeted()
	}
}

// noteGreeted records, once the first frame of the authenticated client is
// handled, that its handshake is answered, and releases a GC_PRUNE held
// back until then: TopGun's client, which opens with AUTH or DEVICE_HELLO,
// takes any other message before AUTH_ACK or DEVICE_ACK for the answer of
// a server without auth (its DEVICE_HELLO's 500 ms grace).
func (c *conn) noteGreeted() {
	if c.greeted || !c.authed.Load() {
		return
	}
	c.mu.Lock()
	c.greeted = true
	c.flushPruneLocked()
	c.mu.Unlock()
}

// maxFrameBeforeAuth is the largest frame read before AUTH_ACK (AUTH is
// the only one served then; a JWT is a few KiB). A larger one is skipped
// unbuffered and unanswered, as any other frame before authentication.
const maxFrameBeforeAuth = 64 << 10

// finish tears the connection down once its reader has returned.
func (c *conn) finish() {
	c.closing.Store(true)
	c.cancel()
	if c.idle != nil {
		c.idle.Stop()
	}
	if c.authTimer != nil {
		c.authTimer.Stop()
	}
	if c.ws != nil {
		_ = c.ws.CloseNow()
	}
	c.wg.Wait()
	c.log.Debug("disconnected")
	c.s.removeConn(c) // after this, Close may return: log nothing more
}

// writeQueueFrames bounds the writes one connection may have waiting for
// its worker: their decoded size (wire.Limits.DecodeSize, which counts
// what the values take once decoded and converted for the store, many
// times their frames' bytes) is at most this times MaxMessageBytes (16 MiB
// by default), or one write of any size.
const writeQueueFrames = 8

// enqueueWrite hands a write to the worker, in arrival order. It blocks
// while the worker's queue is full, in jobs or in decoded size
// (backpressure on the socket): a client cannot make the server hold more
// than a bounded amount of its writes while the store is slow.
func (c *conn) enqueueWrite(j *writeJob) {
	limit := writeQueueFrames * c.s.opts.MaxMessageBytes
	c.mu.Lock()
	for !c.draining && c.queuedWrites > 0 && c.queuedWrites+j.bytes > limit {
		c.mu.Unlock()
		select {
		case <-c.writesFreed:
		case <-c.ctx.Done():
			return // the connection is ending: the write is not acknowledged
		}
		c.mu.Lock()
	}
	if c.draining {
		c.mu.Unlock()
		return
	}
	c.pending++
	c.queuedWrites += j.bytes
	c.mu.Unlock()
	select {
	case c.writes <- j:
	case <-c.ctx.Done():
		c.jobsDone(1, j.bytes)
	}
}

// jobsDone records that n jobs of decoded size bytes are finished.
func (c *conn) jobsDone(n, bytes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending -= n
	c.queuedWrites -= bytes
	select {
	case c.writesFreed <- struct{}{}:
	default:
	}
	// After the jobs' acks, and before a drain's close.
	c.flushPruneLocked()
	if c.draining && c.pending == 0 {
		c.closeDrained()
	}
}

func (c *conn) closeDrained() {
	select {
	case <-c.drained:
	default:
		close(c.drained)
	}
}

func (c *conn) isDraining() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.draining
}

// drain stops taking new frames, waits (until deadline) for the writes in
// flight to be acknowledged, then closes the connection.
func (c *conn) drain(deadline time.Time) {
	c.mu.Lock()
	c.draining = true
	if c.pending == 0 {
		c.closeDrained()
	}
	c.mu.Unlock()
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-c.drained:
	case <-t.C:
	case <-c.ctx.Done():
	}
	c.closeGraceful(websocket.StatusGoingAway, "server shutting down")
}
