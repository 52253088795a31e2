package client

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/hashicorp/go-hclog"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/topgun-go/topgun/server/wire"
)

// State is the connection state of a Client.
type State int32

// Connection states.
const (
	StateDisconnected State = iota // between a drop and the next successful reconnect
	StateConnected                 // authenticated (or on a no-auth server) and serving calls
	StateClosed                    // closed by Close or failed for good (see Err)
)

func (s State) String() string {
	switch s {
	case StateDisconnected:
		return "disconnected"
	case StateConnected:
		return "connected"
	case StateClosed:
		return "closed"
	}
	return fmt.Sprintf("State(%d)", int32(s))
}

// Session is what the server told the client about itself at the handshake.
type Session struct {
	Authenticated bool   // the server asked for auth and acknowledged the token
	UserID        string // the JWT's sub, from AUTH_ACK
	DeviceID      string
	DeviceToken   string // the latest device token the server issued
}

// Client is a connection to a TopGun-compatible server over WebSocket.
// All methods are safe for concurrent use.
type Client struct {
	url  string
	opts Options
	log  hclog.Logger
	hlc  *hlc

	ctx    context.Context // lives until Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// sendLock (a 1-slot semaphore, so a caller can give up waiting for
	// it) orders sends: writes and the reconnect replay hold it, so a
	// replay of old ops is never overtaken by new ones, and ops go out in
	// id order.
	sendLock chan struct{}
	notes    *notifier // runs OnStateChange and OnServerError

	mu       sync.Mutex
	conn     *conn // nil while disconnected
	state    State
	err      error // terminal error once StateClosed
	session  Session
	nextOpID uint64
	pending  map[uint64]*pendingOp  // the replay set: unacknowledged writes
	byKey    map[opKey][]*pendingOp // pending LWW ops per (map, key), by id
	// superseded holds writes settle dropped from the replay set whose
	// own ack has not come: they fail with ErrSuperseded once it cannot.
	superseded map[*pendingOp]bool
	unsent     []*pendingOp            // pending ops not yet sent on conn, by id
	groups     map[string][]*pendingOp // lastId of a sent CLIENT_OP/OP_BATCH → its ops
	// storeRetry is the last wait before sending again a write the server
	// could not store (storeFailed); 0 once a write is acknowledged.
	// retry holds such writes until that wait is over (nil: none waits).
	storeRetry time.Duration
	retry      *retryRound
	subs       map[string]*Subscription
	nextSub    uint64
	syncs      map[string]*mapSyncs
	syncSent   uint64   // sync requests sent, all maps: the place of each in the server's answers
	orGets     []*orGet // ORGets waiting on the current connection, in request order
	pings      map[uint64]chan struct{}
	lastPing   uint64

	// unsubs are the QUERY_UNSUBs of closed subscriptions still to be
	// sent on conn (cleared with each new connection, which never had
	// them). A QUERY_SUB is sent after them: the server would otherwise
	// count the closed queries against its limits on live queries.
	unsubs []string

	// pruneQueued is the cut-off of the OnGCPrune call waiting to run, if
	// any (guarded by mu); droppedErrors counts the ERRORs not passed to
	// OnServerError while it was behind (the dispatcher's only).
	pruneQueued   *wire.Timestamp
	droppedErrors uint64
}

// conn is one WebSocket connection and its reader.
type conn struct {
	ws       *websocket.Conn
	in       chan wire.Message // decoded frames; closed when the reader stops
	done     chan struct{}     // closed when the connection is finished with
	readErr  error             // why the reader stopped (valid after in is closed)
	lastPong atomic.Int64      // unix ms of the last PONG (or of the connect, or of a frame's bytes arriving)
	// writing (a 1-slot semaphore) is held from the start of a frame
	// write to its end, which can come after its caller gave up: the next
	// write waits for it, so frames still go out whole and in order.
	writing chan struct{}
}

// Dial connects to url (ws://host:port/ or /ws), completes TopGun's
// handshake and returns a connected Client. With Options.Token it sends AUTH
// and waits for AUTH_ACK; without it it sends DEVICE_HELLO. A server that
// stays silent for Options.NoAuthGrace, or answers DEVICE_ACK, has auth
// off. Dial fails if this first connection fails (when ctx ends, at once:
// the connection is dropped without waiting for the server); later drops
// are handled by reconnecting (Options.Reconnect).
func Dial(ctx context.Context, url string, opts *Options) (*Client, error) {
	if opts == nil {
		opts = DefaultOptions()
	}
	o := *opts
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.NodeID == "" {
		var b [4]byte
		_, _ = crand.Read(b[:])
		o.NodeID = "go-client-" + hex.EncodeToString(b[:])
	}
	log := o.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	log = log.Named("client")
	c := &Client{
		url:        url,
		opts:       o,
		log:        log,
		hlc:        newHLC(o.NodeID, log),
		sendLock:   make(chan struct{}, 1),
		pending:    map[uint64]*pendingOp{},
		byKey:      map[opKey][]*pendingOp{},
		superseded: map[*pendingOp]bool{},
		groups:     map[string][]*pendingOp{},
		subs:       map[string]*Subscription{},
		syncs:      map[string]*mapSyncs{},
		pings:      map[uint64]chan struct{}{},
	}
	c.session.DeviceToken = o.DeviceToken
	c.ctx, c.cancel = context.WithCancel(context.Background())

	cn, leftover, err := c.connect(ctx)
	if err != nil {
		c.cancel()
		return nil, err
	}
	c.notes = newNotifier()
	c.install(cn)
	c.wg.Add(1)
	go c.run(cn, leftover)
	return c, nil
}

// State returns the current connection state.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Err returns why the client stopped for good (ErrClosed after Close), or
// nil while it is connected or reconnecting.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Session returns what the server said at the last handshake.
func (c *Client) Session() Session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.session
}

// NodeID returns the node id of the client's HLC timestamps.
func (c *Client) NodeID() string { return c.opts.NodeID }

// Close closes the connection and stops reconnecting. Calls waiting for the
// server fail with ErrClosed and subscriptions are closed. Close is
// idempotent. It waits for the Options callbacks already queued
// (OnStateChange up to StateClosed), except when called from one of them.
func (c *Client) Close() error {
	defer c.notes.wait()
	c.mu.Lock()
	if c.state == StateClosed {
		c.mu.Unlock()
		c.wg.Wait()
		return nil
	}
	c.mu.Unlock()
	// Closed first, then the connection taken: a call in between would
	// otherwise see no connection and no close, and report ErrNotConnected.
	c.fail(ErrClosed)
	c.mu.Lock()
	cn := c.conn
	c.conn = nil
	c.mu.Unlock()
	if cn != nil {
		_ = cn.ws.Close(websocket.StatusNormalClosure, "client closed")
	}
	c.cancel()
	c.wg.Wait()
	return nil
}

// fail stops the client for good with err: pending writes, pings and syncs
// fail with it and subscriptions close.
func (c *Client) fail(err error) {
	c.mu.Lock()
	if c.state == StateClosed {
		c.mu.Unlock()
		return
	}
	c.state = StateClosed
	c.err = err
	pending := c.pending
	c.pending = map[uint64]*pendingOp{}
	c.byKey = map[opKey][]*pendingOp{}
	c.superseded = map[*pendingOp]bool{} // waitAck reports the close
	c.unsent = nil
	c.groups = map[string][]*pendingOp{}
	subs := c.subs
	c.subs = map[string]*Subscription{}
	syncs := c.syncs
	c.syncs = map[string]*mapSyncs{}
	pings := c.pings
	c.pings = map[uint64]chan struct{}{}
	c.failORGets(err)
	c.notifyState(StateClosed)
	c.notes.stop()
	c.mu.Unlock()

	for _, p := range pending {
		p.finish(err)
	}
	for _, s := range subs {
		s.closeWith(err)
	}
	for _, ms := range syncs {
		ms.abort(err)
	}
	for _, ch := range pings {
		close(ch)
	}
	c.cancel()
}

// notifyState queues the OnStateChange callback for s. Caller holds mu, so
// callbacks come in the order of the state changes.
func (c *Client) notifyState(s State) {
	if f := c.opts.OnStateChange; f != nil {
		c.notes.push(func() { f(s) })
	}
}

// sendFailed is the error of a call whose send failed for a reason other
// than its ctx: the client's own error once it is closed (Close cuts
// blocked writes and waits for the send lock short), else ErrDisconnected.
func (c *Client) sendFailed(err error) error {
	if cerr := c.Err(); cerr != nil {
		return cerr
	}
	return fmt.Errorf("%w: %v", ErrDisconnected, err)
}

// closedErr is the error of a call that found the client closed.
func (c *Client) closedErr() error {
	if err := c.Err(); err != nil {
		return err
	}
	return ErrClosed
}

// connect dials and completes the handshake. leftover is a message that
// arrived during the handshake and must still be dispatched.
func (c *Client) connect(ctx context.Context) (_ *conn, leftover wire.Message, err error) {
	dctx, cancel := context.WithTimeout(ctx, c.opts.DialTimeout)
	defer cancel()
	ws, _, err := websocket.Dial(dctx, c.url, &websocket.DialOptions{HTTPHeader: c.opts.Header})
	if err != nil {
		return nil, nil, fmt.Errorf("client: dial %s: %w", c.url, err)
	}
	// readLoop bounds each frame by MaxReadBytes itself, so that a larger
	// one is skipped rather than closing the connection (which a
	// reconnect's re-subscribe would then meet again, forever).
	ws.SetReadLimit(-1)
	cn := &conn{ws: ws, in: make(chan wire.Message, 64), done: make(chan struct{}), writing: make(chan struct{}, 1)}
	cn.lastPong.Store(time.Now().UnixMilli())
	go c.readLoop(cn)

	leftover, err = c.handshake(ctx, cn)
	if err != nil {
		// The library's Close waits up to 5 s for its close frame to be
		// written and answered: behind a handshake frame still being
		// written (left so only when ctx ended, and nobody waits for it
		// any longer) or from a server that stopped reading. A caller
		// that gave up waits for neither.
		// Nor does one whose ctx ends while the server is yet to answer
		// (one reading and never answering holds Close the whole 5 s, and
		// CloseNow cannot cut it short): that Close ends on its own.
		if ctx.Err() != nil || c.ctx.Err() != nil {
			_ = ws.CloseNow()
		} else {
			closed := make(chan struct{})
			c.wg.Add(1) // Dial's client is not out yet; else run holds wg
			go func() {
				defer c.wg.Done()
				defer close(closed)
				_ = ws.Close(websocket.StatusPolicyViolation, "handshake failed")
			}()
			select {
			case <-closed:
			case <-ctx.Done():
			case <-c.ctx.Done():
			}
		}
		close(cn.done)
		return nil, nil, err
	}
	return cn, leftover, nil
}

func (c *Client) handshake(ctx context.Context, cn *conn) (wire.Message, error) {
	c.mu.Lock()
	deviceToken := c.session.DeviceToken
	c.mu.Unlock()
	token := c.opts.Token
	var first wire.Message = &wire.DeviceHello{DeviceToken: deviceToken}
	if token != "" {
		first = &wire.Auth{Token: token, DeviceToken: deviceToken}
	}
	if err := c.send(ctx, cn, first); err != nil {
		return nil, fmt.Errorf("client: send %s: %w", first.Type(), err)
	}

	grace := time.NewTimer(c.opts.NoAuthGrace)
	defer grace.Stop()
	var authDeadline <-chan time.Time
	for {
		select {
		case m, ok := <-cn.in:
			if !ok {
				return nil, fmt.Errorf("client: connection closed during the handshake: %w", cn.readErr)
			}
			switch m := m.(type) {
			case *wire.AuthRequired:
				if token == "" {
					return nil, ErrAuthRequired
				}
				if authDeadline == nil {
					grace.Stop()
					t := time.NewTimer(c.opts.AuthTimeout)
					defer t.Stop()
					authDeadline = t.C
				}
			case *wire.AuthAck:
				c.mu.Lock()
				c.session.Authenticated = true
				c.session.UserID = m.UserID
				if m.DeviceID != "" {
					c.session.DeviceID = m.DeviceID
				}
				if m.DeviceToken != "" {
					c.session.DeviceToken = m.DeviceToken
				}
				c.mu.Unlock()
				return nil, nil
			case *droppedFrame:
				continue // nothing waits for a reply yet
			case *wire.AuthFail:
				msg := m.Error
				return nil, &AuthError{Message: msg}
			case *wire.DeviceAck:
				if authDeadline != nil {
					continue // auth pending; device identity comes with AUTH_ACK
				}
				c.mu.Lock()
				c.session.Authenticated = false
				c.session.DeviceID = m.DeviceID
				if m.DeviceToken != "" {
					c.session.DeviceToken = m.DeviceToken
				}
				c.mu.Unlock()
				return nil, nil
			default:
				if authDeadline != nil {
					continue
				}
				// A server with auth off speaks without a handshake.
				return m, nil
			}
		case <-grace.C:
			// Silence: a server with auth off (TopGun sends nothing, and
			// ignores AUTH).
			if token != "" {
				c.log.Debug("server did not ask for auth; continuing without it")
			}
			return nil, nil
		case <-authDeadline:
			return nil, fmt.Errorf("client: no AUTH_ACK within %v", c.opts.AuthTimeout)
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.ctx.Done():
			return nil, ErrClosed
		}
	}
}

// readLoop decodes binary frames into cn.in until the connection fails.
// Text frames, frames over MaxReadBytes (read to their end, never held
// whole) and frames that do not decode are ignored, as TopGun does.
func (c *Client) readLoop(cn *conn) {
	defer close(cn.in)
	// What the server accepts does not bound its answers: they have
	// limits of their own (Options.MaxReadDecodedBytes).
	limits := c.opts.readLimits()
	// One per connection, not per frame: boxed afresh into an io.Reader
	// it was an allocation per frame read.
	alive := &aliveReader{cn: cn}
	for {
		typ, r, err := cn.ws.Reader(c.ctx)
		if err != nil {
			cn.readErr = err
			return
		}
		// A large frame on a slow link may take longer than PongTimeout,
		// the PONGs queued behind it: its bytes arriving show the server
		// alive, else the client would drop the connection halfway and be
		// sent the same frame on the next.
		alive.r = r
		r = alive
		if typ != websocket.MessageBinary {
			if _, err := io.Copy(io.Discard, r); err != nil {
				cn.readErr = err
				return
			}
			continue
		}
		data, err := io.ReadAll(io.LimitReader(r, int64(c.opts.MaxReadBytes)+1))
		if err != nil {
			cn.readErr = err
			return
		}
		if len(data) > c.opts.MaxReadBytes {
			lost := droppedHead(data)
			data = nil
			n, err := io.Copy(io.Discard, r)
			if err != nil {
				cn.readErr = err
				return
			}
			c.log.Error("ignoring a frame over Options.MaxReadBytes", "bytes", int64(c.opts.MaxReadBytes)+1+n, "max_read_bytes", c.opts.MaxReadBytes, "type", lost.typ)
			// A call or subscription may wait for it: it fails, in the
			// order of the frames around it.
			if lost.awaited() && !c.deliver(cn, lost) {
				return
			}
			continue
		}
		m, lost := readFrame(limits, data)
		if lost != nil {
			if errors.Is(lost.err, wire.ErrDecodedTooLarge) {
				c.log.Error("ignoring a frame over Options.MaxReadDecodedBytes once decoded", "bytes", len(data),
					"max_read_decoded_bytes", limits.MaxDecodedBytes, "type", lost.typ)
			} else {
				c.log.Debug("ignoring frame", "error", lost.err)
			}
			// A reply nested past Limits.MaxDepth, say (a value the
			// server took 3 levels below a CLIENT_OP is 6 below an
			// ORGet's answer), or one over MaxReadDecodedBytes: what
			// waits for it fails, as for one over MaxReadBytes.
			if lost.awaited() && !c.deliver(cn, lost) {
				return
			}
			continue
		}
		if !c.deliver(cn, m) {
			return
		}
	}
}

// aliveReader reads a frame, recording the server alive as its bytes
// arrive (see heartbeat).
type aliveReader struct {
	r  io.Reader
	cn *conn
}

func (a *aliveReader) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if n > 0 {
		a.cn.lastPong.Store(time.Now().UnixMilli())
	}
	return n, err
}

// readFrame decodes a frame of the server under l; a frame that does not
// decode (or would take more than l.MaxDecodedBytes decoded, refused
// before it is allocated) gives what droppedHead reads of it instead.
func readFrame(l wire.Limits, data []byte) (wire.Message, *droppedFrame) {
	m, err := l.Decode(data)
	if err == nil {
		return m, nil
	}
	lost := droppedHead(data)
	lost.err = err
	return nil, lost
}

// deliver hands m to cn's dispatcher; false when the connection or the
// client is done.
func (c *Client) deliver(cn *conn, m wire.Message) bool {
	select {
	case cn.in <- m:
		return true
	case <-cn.done:
		return false
	case <-c.ctx.Done():
		return false
	}
}

// droppedFrame stands for a frame dropped (over MaxReadBytes, or not
// decodable): its type and the string fields its payload starts with, as
// far as droppedHead read them (the map and path of a sync reply, the
// query id of a QUERY_RESP or QUERY_UPDATE).
type droppedFrame struct {
	wire.Message // nil: never encoded
	typ          string
	head         map[string]string
	err          error // why it could not be decoded (or over MaxReadDecodedBytes); nil: over MaxReadBytes
}

func (d *droppedFrame) Type() string { return d.typ }

// awaited reports whether a call or subscription may wait for the frame.
func (d *droppedFrame) awaited() bool {
	switch d.typ {
	case wire.TypeORMapDiffResponse, wire.TypeSyncRespRoot, wire.TypeSyncRespBuckets, wire.TypeSyncRespLeaf,
		wire.TypeQueryResp, wire.TypeQueryUpdate, wire.TypeServerEvent, wire.TypeServerBatchEvent:
		return true
	}
	return false
}

// droppedHead reads what a dropped frame starts with: its type, and the
// fields of its payload up to the first that is not a string. Both servers
// write the type first and, in the replies a caller waits for, the ids
// before the bulk; nothing past them is decoded (it might be nested as
// deep as the frame is long).
func droppedHead(prefix []byte) *droppedFrame {
	f := &droppedFrame{head: map[string]string{}}
	r := bytes.NewReader(prefix)
	d := msgpack.NewDecoder(r)
	// A DecodeString of its own: the library's allocates up to 1 MiB for
	// the length a header claims before finding the bytes missing.
	str := func() (string, error) {
		n, err := d.DecodeBytesLen()
		if err != nil || n <= 0 {
			return "", err
		}
		if n > r.Len() {
			return "", io.ErrUnexpectedEOF
		}
		b := make([]byte, n)
		_, err = io.ReadFull(r, b)
		return string(b), err
	}
	n, err := d.DecodeMapLen()
	if err != nil || n < 1 {
		return f
	}
	if k, err := str(); err != nil || k != "type" {
		return f
	}
	if f.typ, err = str(); err != nil || n < 2 {
		return f
	}
	if k, err := str(); err != nil || k != "payload" {
		return f
	}
	n, err = d.DecodeMapLen()
	for i := 0; err == nil && i < min(n, 4); i++ {
		var k, v string
		if k, err = str(); err == nil {
			if v, err = str(); err == nil {
				f.head[k] = v
			}
		}
	}
	return f
}

// droppedError is what a call or subscription waiting for the dropped
// frame f fails with; what names the frame.
func (c *Client) droppedError(f *droppedFrame, what string) error {
	switch {
	case errors.Is(f.err, wire.ErrDecodedTooLarge):
		return fmt.Errorf("%w: %s would take more than %d bytes once decoded (Options.MaxReadDecodedBytes)",
			ErrTooLarge, what, c.opts.maxReadDecoded())
	case f.err != nil:
		return fmt.Errorf("client: %s could not be decoded and was dropped: %w", what, f.err)
	}
	return fmt.Errorf("%w: %s (Options.MaxReadBytes is %d)", ErrTooLarge, what, c.opts.MaxReadBytes)
}

// dropped fails what waited for a dropped frame: an ORGet (the
// oldest waiting; its place would take the answer of the next ORGet of the
// same keys), a SyncMap (it would count the leaf as a path holding nothing
// and report success without its records), a subscription (it would miss
// its results, a change or a map event, for good).
func (c *Client) dropped(f *droppedFrame) {
	err := c.droppedError(f, f.typ)
	switch f.typ {
	case wire.TypeORMapDiffResponse:
		c.answerORGet("", orGetResult{err: err})
	case wire.TypeSyncRespRoot:
		c.toSync(f.head["mapName"], syncKey{init: true}, f)
	case wire.TypeSyncRespBuckets, wire.TypeSyncRespLeaf:
		if p, ok := f.head["path"]; ok {
			c.toSync(f.head["mapName"], syncKey{path: p}, f)
		}
	case wire.TypeQueryResp, wire.TypeQueryUpdate:
		c.mu.Lock()
		s := c.subs[f.head["queryId"]]
		c.mu.Unlock()
		if s != nil {
			s.unsubscribe(err)
		}
	case wire.TypeServerEvent, wire.TypeServerBatchEvent:
		// Every subscription on the event's map misses it; with no map
		// known (a batch, or a payload not starting with it), every one.
		name, known := f.head["mapName"]
		c.mu.Lock()
		var lost []*Subscription
		for _, s := range c.subs {
			if !known || s.MapName == name {
				lost = append(lost, s)
			}
		}
		c.mu.Unlock()
		for _, s := range lost {
			s.unsubscribe(err)
		}
	}
}

// install makes cn the current connection: it replays unacknowledged
// writes and live subscriptions before any new send can use it.
func (c *Client) install(cn *conn) {
	if c.lockSend(c.ctx) != nil { // closed
		_ = cn.ws.Close(websocket.StatusNormalClosure, "client closed")
		return
	}
	defer c.unlockSend()
	c.mu.Lock()
	if c.state == StateClosed {
		c.mu.Unlock()
		_ = cn.ws.Close(websocket.StatusNormalClosure, "client closed")
		return
	}
	c.conn = cn
	c.state = StateConnected
	c.unsubs = nil
	ops := c.pendingInOrder()
	c.unsent = nil // all of them are in ops
	c.groups = map[string][]*pendingOp{}
	c.stopRetryLocked() // its writes are in ops too
	// The connection the superseded writes went out on is gone with
	// their acks.
	superseded := c.superseded
	c.superseded = map[*pendingOp]bool{}
	subs := make([]*Subscription, 0, len(c.subs))
	for _, s := range c.subs {
		subs = append(subs, s)
	}
	c.notifyState(StateConnected)
	c.mu.Unlock()
	for p := range superseded {
		p.finish(ErrSuperseded)
	}

	if len(ops) > 0 {
		// All unacknowledged writes go as OP_BATCH, as the TS client does.
		c.log.Debug("re-sending unacknowledged writes", "ops", len(ops))
		// A failed write drops cn; the next connection replays again.
		_, _ = c.sendOps(c.ctx, cn, ops, true)
	}
	for _, s := range subs {
		if err := c.send(c.ctx, cn, s.subMessage()); err != nil {
			c.log.Debug("re-subscribe failed", "query_id", s.ID, "error", err)
		}
	}
	if c.opts.PingInterval > 0 {
		c.wg.Add(1)
		go c.heartbeat(cn)
	}
}

// run dispatches messages of the current connection and reconnects when it
// drops, until Close or a terminal error.
func (c *Client) run(cn *conn, leftover wire.Message) {
	defer c.wg.Done()
	for {
		if leftover != nil {
			c.dispatch(cn, leftover)
		}
		for m := range cn.in {
			c.dispatch(cn, m)
		}
		close(cn.done)
		_ = cn.ws.CloseNow()

		c.mu.Lock()
		if c.state == StateClosed {
			c.mu.Unlock()
			return
		}
		c.conn = nil
		c.state = StateDisconnected
		syncs := c.syncs
		c.syncs = map[string]*mapSyncs{}
		pings := c.pings
		c.pings = map[uint64]chan struct{}{}
		c.failORGets(ErrDisconnected)
		c.notifyState(StateDisconnected)
		c.mu.Unlock()
		c.log.Warn("connection lost", "error", cn.readErr)
		for _, ms := range syncs {
			ms.abort(ErrDisconnected)
		}
		for _, ch := range pings {
			close(ch)
		}

		if !c.opts.Reconnect {
			c.fail(fmt.Errorf("%w: %v", ErrReconnectFailed, cn.readErr))
			return
		}
		cn, leftover = c.reconnect()
		if cn == nil {
			return
		}
		c.install(cn)
	}
}

// jitter returns d scaled by a random factor in [0.8, 1.2), so that
// clients failed by one event do not all try again at the same moments.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// reconnect dials with exponential backoff until it succeeds, the client is
// closed, the server refuses the credentials, or the attempts run out.
func (c *Client) reconnect() (*conn, wire.Message) {
	delay := c.opts.BackoffInitial
	for attempt := 1; ; attempt++ {
		t := time.NewTimer(jitter(delay))
		select {
		case <-c.ctx.Done():
			t.Stop()
			return nil, nil
		case <-t.C:
		}
		cn, leftover, err := c.connect(c.ctx)
		if err == nil {
			c.log.Info("reconnected", "attempt", attempt)
			return cn, leftover
		}
		if c.ctx.Err() != nil {
			return nil, nil
		}
		if errors.Is(err, ErrAuthFailed) || errors.Is(err, ErrAuthRequired) {
			c.fail(err)
			return nil, nil
		}
		c.log.Warn("reconnect failed", "attempt", attempt, "retry_in", delay, "error", err)
		if c.opts.MaxReconnectAttempts > 0 && attempt >= c.opts.MaxReconnectAttempts {
			c.fail(fmt.Errorf("%w after %d attempts: %v", ErrReconnectFailed, attempt, err))
			return nil, nil
		}
		delay = min(delay*2, c.opts.BackoffMax)
	}
}

// heartbeat sends PING every PingInterval and drops a connection that has
// not answered with PONG for PongTimeout.
func (c *Client) heartbeat(cn *conn) {
	defer c.wg.Done()
	// The silence counts from now: the handshake and the replay before
	// this (which may outlast PongTimeout) sent no PING to answer.
	cn.lastPong.Store(time.Now().UnixMilli())
	t := time.NewTicker(c.opts.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-cn.done:
			return
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		if since := time.Now().UnixMilli() - cn.lastPong.Load(); since > c.opts.PongTimeout.Milliseconds() {
			c.log.Warn("no PONG; dropping the connection", "silent_ms", since)
			_ = cn.ws.CloseNow()
			return
		}
		if err := c.sendLocked(c.ctx, cn, &wire.Ping{Timestamp: c.pingStamp()}); err != nil {
			c.log.Debug("heartbeat ping failed", "error", err)
		}
	}
}

// pingStamp returns a wall-clock ms strictly greater than the last one, so
// PONGs can be matched to PINGs.
func (c *Client) pingStamp() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	ts := max(uint64(time.Now().UnixMilli()), c.lastPing+1)
	c.lastPing = ts
	return ts
}

// Ping sends PING and waits for the matching PONG, returning the round
// trip time.
func (c *Client) Ping(ctx context.Context) (time.Duration, error) {
	ts := c.pingStamp()
	ch := make(chan struct{}, 1) // the dispatcher never blocks on a caller that gave up
	c.mu.Lock()
	if c.state == StateClosed {
		err := c.err
		c.mu.Unlock()
		return 0, err
	}
	cn := c.conn
	if cn == nil {
		c.mu.Unlock()
		return 0, ErrNotConnected
	}
	c.pings[ts] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pings, ts)
		c.mu.Unlock()
	}()
	start := time.Now()
	if err := c.sendLocked(ctx, cn, &wire.Ping{Timestamp: ts}); err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return 0, c.sendFailed(err)
	}
	select {
	case _, ok := <-ch:
		if !ok {
			if err := c.Err(); err != nil {
				return 0, err
			}
			return 0, ErrDisconnected
		}
		return time.Since(start), nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// lockSend takes the send lock, giving up when ctx ends or the client is
// closed.
func (c *Client) lockSend(ctx context.Context) error {
	select {
	case c.sendLock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.ctx.Done():
		return c.closedErr()
	}
}

func (c *Client) unlockSend() { <-c.sendLock }

// sendLocked sends m on cn under the send lock.
func (c *Client) sendLocked(ctx context.Context, cn *conn, m wire.Message) error {
	if err := c.lockSend(ctx); err != nil {
		return err
	}
	defer c.unlockSend()
	return c.send(ctx, cn, m)
}

// send encodes and writes one message on cn. The caller holds the send lock
// (or, during the handshake, is the connection's only user).
func (c *Client) send(ctx context.Context, cn *conn, m wire.Message) error {
	b, err := c.opts.Limits.Encode(m)
	if err != nil {
		return err
	}
	return c.write(ctx, cn, b)
}

// write writes one frame on cn, bounded by WriteTimeout. A write that fails
// may have sent part of the frame, which leaves the WebSocket unusable
// (coder/websocket closes it when the deadline cuts a write short), so any
// write error drops the connection: run then reconnects and replays what
// was not acknowledged. The caller's ctx only bounds the wait: the
// library also closes the connection when the ctx of a Write ends before
// the write has finished, even just after its last byte went out, so the
// frame is written under a ctx the caller cannot cancel. If ctx ends
// while the frame is being written, write returns nil at once and the
// frame goes on (whole, or its failure drops the connection), as a frame
// written just before ctx ended would: the caller's wait for an answer
// then ends with ctx.
func (c *Client) write(ctx context.Context, cn *conn, b []byte) error {
	if len(b) > c.opts.Limits.MaxMessageBytes {
		return fmt.Errorf("client: message of %d bytes exceeds the %d-byte frame limit", len(b), c.opts.Limits.MaxMessageBytes)
	}
	select {
	case cn.writing <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err() // nothing written: the connection is intact
	case <-c.ctx.Done():
		return c.closedErr()
	}
	if err := ctx.Err(); err != nil {
		<-cn.writing
		return err
	}
	// Counted in wg under mu while open, so that Close waits for it.
	c.mu.Lock()
	closed := c.state == StateClosed
	if !closed {
		c.wg.Add(1)
	}
	c.mu.Unlock()
	if closed {
		<-cn.writing
		return c.closedErr()
	}
	done := make(chan error, 1)
	go func() {
		defer c.wg.Done()
		defer func() { <-cn.writing }()
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.WriteTimeout)
		defer cancel()
		defer context.AfterFunc(c.ctx, cancel)()
		err := cn.ws.Write(wctx, websocket.MessageBinary, b)
		if err != nil {
			_ = cn.ws.CloseNow()
		}
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return nil
	}
}

// dispatch handles one server message.
func (c *Client) dispatch(cn *conn, m wire.Message) {
	switch m := m.(type) {
	case *wire.OpAck:
		c.ack(m.LastID)
	case *wire.OpRejected:
		c.reject(m)
	case *wire.Pong:
		cn.lastPong.Store(time.Now().UnixMilli())
		if m.ServerTime != 0 {
			c.hlc.ServerTime(m.ServerTime)
		}
		c.mu.Lock()
		ch := c.pings[m.Timestamp]
		delete(c.pings, m.Timestamp)
		c.mu.Unlock()
		if ch != nil {
			ch <- struct{}{}
		}
	case *wire.QueryResp:
		c.mu.Lock()
		s := c.subs[m.QueryID]
		c.mu.Unlock()
		if s != nil {
			s.onResp(m)
		}
	case *wire.QueryUpdate:
		c.mu.Lock()
		s := c.subs[m.QueryID]
		c.mu.Unlock()
		if s != nil {
			s.deliver(Update{Key: m.Key, Value: m.Value, Change: m.ChangeType})
		}
	case *wire.ServerEvent:
		c.onEvent(m)
	case *wire.ServerBatchEvent:
		for i := range m.Events {
			c.onEvent(&m.Events[i])
		}
	case *wire.SyncRespRoot:
		// The server's clock (at least its wall clock), before the
		// records it sends next.
		c.hlc.ServerTime(m.Timestamp.Millis)
		c.hlc.Update(m.Timestamp)
		c.toSync(m.MapName, syncKey{init: true}, m)
	case *wire.SyncRespBuckets:
		c.toSync(m.MapName, syncKey{path: m.Path}, m)
	case *wire.SyncRespLeaf:
		c.toSync(m.MapName, syncKey{path: m.Path}, m)
	case *wire.SyncResetRequired:
		c.log.Warn("server requires a full resync", "map", m.MapName, "reason", m.Reason)
		c.resetSync(m.MapName, m)
	case *wire.ORMapDiffResponse:
		c.answerORGet(m.MapName, orGetResult{entries: m.Entries})
	case *droppedFrame:
		c.dropped(m)
	case *wire.ErrorMessage:
		c.log.Warn("server error", "code", m.Code, "message", m.Message)
		if orGetError(m) {
			c.answerORGet("", orGetResult{err: &ORGetError{Code: m.Code, Message: m.Message}})
		}
		if bucketRequestError(m) {
			c.failSyncs(m)
		}
		if id, ok := storeFailedID(m); ok {
			c.storeFailed(cn, id)
		}
		if f := c.opts.OnServerError; f != nil && !c.notes.pushLimited(func() { f(m) }) {
			// Counted, and logged at powers of two: the server may flood.
			if c.droppedErrors++; c.droppedErrors&(c.droppedErrors-1) == 0 {
				c.log.Warn("OnServerError is behind; server errors not passed to it", "dropped", c.droppedErrors)
			}
		}
	case *wire.GCPrune:
		// The client keeps no records: the caller prunes its own. A
		// running SyncMap still to compare roots leaves the pruned
		// tombstones out (this project's server sends GC_PRUNE before
		// the root of a connection's first sync).
		c.toSyncsBeforeRoot(m)
		if f := c.opts.OnGCPrune; f != nil {
			// One call waiting to run takes the greatest cut-off of those
			// arriving meanwhile (pruning by it prunes by the others), so
			// a flood of them queues one call.
			c.mu.Lock()
			queued := c.pruneQueued != nil
			if !queued || m.OlderThan.Compare(*c.pruneQueued) > 0 {
				ts := m.OlderThan
				c.pruneQueued = &ts
			}
			c.mu.Unlock()
			if !queued {
				c.notes.push(func() {
					c.mu.Lock()
					ts := *c.pruneQueued
					c.pruneQueued = nil
					c.mu.Unlock()
					f(ts)
				})
			}
		}
	case *wire.AuthRequired:
		// The server wants auth again (e.g. an expired session).
		if c.opts.Token != "" {
			c.mu.Lock()
			dt := c.session.DeviceToken
			c.mu.Unlock()
			if err := c.sendLocked(c.ctx, cn, &wire.Auth{Token: c.opts.Token, DeviceToken: dt}); err != nil {
				c.log.Debug("re-auth failed", "error", err)
			}
		}
	case *wire.AuthFail:
		c.log.Error("authentication failed", "error", m.Error)
		c.fail(&AuthError{Message: m.Error})
	default:
		c.log.Trace("ignoring message", "type", m.Type())
	}
}

func (c *Client) onEvent(ev *wire.ServerEvent) {
	if ev.Record != nil {
		c.hlc.Update(ev.Record.Timestamp)
	}
	if ev.ORRecord != nil {
		c.hlc.Update(ev.ORRecord.Timestamp)
	}
	c.mu.Lock()
	var targets []*Subscription
	for _, s := range c.subs {
		if s.MapName == ev.MapName {
			targets = append(targets, s)
		}
	}
	c.mu.Unlock()
	for _, s := range targets {
		u := Update{Key: ev.Key, Event: ev}
		if ev.Record != nil {
			u.Value = ev.Record.Value
		} else if ev.ORRecord != nil {
			u.Value = ev.ORRecord.Value
		}
		s.deliver(u)
	}
}
