package loadgen

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/server/wire"
)

// Options configure a load run. Zero fields take the defaults of
// DefaultOptions; URL is required.
type Options struct {
	// URL is the server's WebSocket endpoint, e.g. ws://127.0.0.1:8080/ws.
	URL string
	// Token is the JWT sent in AUTH; empty for a server started with
	// TOPGUN_NO_AUTH (the connections then send DEVICE_HELLO).
	Token string
	// Connections is the number of WebSocket connections, each with one
	// batch in flight at a time (default 1).
	Connections int
	// BatchSize is the number of puts per batch (default 1). One op is sent
	// as CLIENT_OP, more as OP_BATCH.
	BatchSize int
	// Maps is the number of maps the batches are spread over, round-robin
	// (default 1). They are named MapPrefix + "0", "1", ...
	Maps int
	// MapPrefix names the maps (default "loadgen-").
	MapPrefix string
	// ValueBytes is the length of each value, a string (default 100).
	ValueBytes int
	// Duration caps the time spent sending (default 10s).
	Duration time.Duration
	// MaxOps caps the ops sent; 0 means no cap.
	MaxOps int64
	// Progress, when set, receives a progress line every second.
	Progress io.Writer
	// DialTimeout bounds the dial and handshake of one connection
	// (default 10s).
	DialTimeout time.Duration
	// AckTimeout bounds the wait for one batch's OP_ACK; a batch without
	// one is counted as an error and its connection re-dialled (default
	// 30s).
	AckTimeout time.Duration
	// Logger receives warnings about dropped connections (default none).
	Logger hclog.Logger
}

// DefaultOptions returns the defaults: one connection, batches of one op,
// one map named "loadgen-0", 100-byte values, 10 s, no op cap, 10 s dial
// timeout, 30 s ack timeout.
func DefaultOptions() *Options {
	return &Options{
		Connections: 1,
		BatchSize:   1,
		Maps:        1,
		MapPrefix:   "loadgen-",
		ValueBytes:  100,
		Duration:    10 * time.Second,
		DialTimeout: 10 * time.Second,
		AckTimeout:  30 * time.Second,
	}
}

// Limits of Validate.
const (
	maxConnections = 10_000
	maxBatchSize   = 100_000
	maxMaps        = 100_000
	maxValueBytes  = 1 << 20
	// opOverhead is a generous estimate of the encoded bytes of one put
	// besides its value (id, map, key, op type, timestamp).
	opOverhead = 160
)

// Validate fills in the defaults of zero fields and reports every setting
// that cannot work, each with its fix.
func (o *Options) Validate() error {
	d := DefaultOptions()
	var probs []string
	bad := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }
	if o.URL == "" {
		bad("URL is empty; give the server's WebSocket URL, e.g. ws://127.0.0.1:8080/ws")
	} else if u, err := url.Parse(o.URL); err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		bad("URL %q is not a WebSocket URL; use ws://host:port/ws (or wss://)", o.URL)
	}
	fill := func(name string, v *int, def, limit int) {
		switch {
		case *v == 0:
			*v = def
		case *v < 0 || *v > limit:
			bad("%s is %d; use 1 to %d", name, *v, limit)
		}
	}
	fill("Connections", &o.Connections, d.Connections, maxConnections)
	fill("BatchSize", &o.BatchSize, d.BatchSize, maxBatchSize)
	fill("Maps", &o.Maps, d.Maps, maxMaps)
	if o.ValueBytes == 0 {
		o.ValueBytes = d.ValueBytes
	} else if o.ValueBytes < 0 || o.ValueBytes > maxValueBytes {
		bad("ValueBytes is %d; use 1 to %d", o.ValueBytes, maxValueBytes)
	}
	if o.MapPrefix == "" {
		o.MapPrefix = d.MapPrefix
	}
	durations := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{{"Duration", &o.Duration, d.Duration}, {"DialTimeout", &o.DialTimeout, d.DialTimeout}, {"AckTimeout", &o.AckTimeout, d.AckTimeout}}
	for _, x := range durations {
		if *x.v == 0 {
			*x.v = x.def
		} else if *x.v < 0 {
			bad("%s is %v; use a positive duration", x.name, *x.v)
		}
	}
	if o.MaxOps < 0 {
		bad("MaxOps is %d; use 0 (no cap) or more", o.MaxOps)
	}
	if len(probs) == 0 {
		if frame := o.BatchSize * (o.ValueBytes + opOverhead); frame > wire.DefaultMaxMessageBytes {
			bad("a batch of %d ops with %d-byte values is about %d bytes, over the server's default message limit of %d bytes (TOPGUN_MAX_MESSAGE_BYTES); lower BatchSize or ValueBytes",
				o.BatchSize, o.ValueBytes, frame, wire.DefaultMaxMessageBytes)
		}
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if len(probs) > 0 {
		return fmt.Errorf("loadgen: invalid options: %s", strings.Join(probs, "; "))
	}
	return nil
}

// Result is what a run measured.
type Result struct {
	// Connections and BatchSize repeat the options, for printing.
	Connections, BatchSize int
	// Ops is the number of ops the server acknowledged (OP_ACK) and did
	// not reject.
	Ops int64
	// Batches is the number of batches acknowledged.
	Batches int64
	// Elapsed runs from the moment every connection was up to the last ack.
	Elapsed time.Duration
	// OpsPerSec is Ops / Elapsed.
	OpsPerSec float64
	// P50 and P99 are quantiles of the per-batch ack latency; Max is the
	// largest one seen.
	P50, P99, Max time.Duration
	// Errors counts failed batches: answered with ERROR, rejected in part
	// (OP_REJECTED), not acknowledged within AckTimeout, or cut by a dropped
	// connection; plus failed re-dials.
	Errors int64
	// Rejected counts ops the server refused with OP_REJECTED.
	Rejected int64
	// AckLevel is the achievedLevel of the acks (PERSISTED on a durable
	// backend of this project's server, APPLIED otherwise).
	AckLevel string
	// FirstError describes the first failure, nil when there was none.
	FirstError error
}

// String formats the result on one line.
func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d conns x %d ops/batch: %d ops acknowledged in %v = %.0f ops/s; batch ack latency p50 %v p99 %v max %v; %d errors",
		r.Connections, r.BatchSize, r.Ops, r.Elapsed.Round(time.Millisecond), r.OpsPerSec,
		roundLatency(r.P50), roundLatency(r.P99), roundLatency(r.Max), r.Errors)
	if r.Rejected > 0 {
		fmt.Fprintf(&b, " (%d ops rejected)", r.Rejected)
	}
	if r.AckLevel != "" {
		fmt.Fprintf(&b, "; acks %s", r.AckLevel)
	}
	if r.FirstError != nil {
		fmt.Fprintf(&b, "; first error: %v", r.FirstError)
	}
	return b.String()
}

func roundLatency(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	default:
		return d.Round(time.Microsecond)
	}
}

// run is the shared state of one Run.
type run struct {
	o        Options
	runID    string
	deadline time.Time
	value    string

	sent     atomic.Int64 // ops sent (reserved against MaxOps)
	ops      atomic.Int64 // ops acknowledged
	batches  atomic.Int64
	errs     atomic.Int64
	rejected atomic.Int64

	mu       sync.Mutex // guards the fields below
	firstErr error
	ackLevel string
	hist     histogram
	max      time.Duration
	lastAck  time.Time // when the last OP_ACK arrived; zero before the first
}

func (r *run) fail(err error) {
	r.errs.Add(1)
	r.mu.Lock()
	if r.firstErr == nil {
		r.firstErr = err
	}
	r.mu.Unlock()
}

// Run drives the server as Options say and returns what it measured. It
// fails at once if a connection cannot be opened; later failures are
// counted in Result.Errors, and Run fails only if no op at all was
// acknowledged. If ctx ends first, Run returns the result so far with
// ctx.Err().
func Run(ctx context.Context, opts Options) (Result, error) {
	o := opts
	if err := o.Validate(); err != nil {
		return Result{}, err
	}
	var idb [4]byte
	_, _ = crand.Read(idb[:])
	r := &run{o: o, runID: hex.EncodeToString(idb[:]), value: makeValue(o.ValueBytes, idb[:])}

	workers := make([]*worker, o.Connections)
	for i := range workers {
		workers[i] = &worker{r: r, idx: i, nodeID: "loadgen-" + r.runID + "-" + strconv.Itoa(i)}
	}
	if err := dialAll(ctx, workers); err != nil {
		for _, w := range workers {
			w.close()
		}
		return Result{}, err
	}

	start := time.Now()
	r.deadline = start.Add(o.Duration)
	stopProgress := startProgress(o.Progress, r, start)
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.loop(ctx)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	stopProgress()
	r.mu.Lock()
	if !r.lastAck.IsZero() {
		// To the last ack: a batch that failed at the end (its AckTimeout,
		// a re-dial) is no part of the time the acknowledged ops took.
		elapsed = r.lastAck.Sub(start)
	}
	r.mu.Unlock()

	for _, w := range workers {
		w.close()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	res := Result{
		Connections: o.Connections,
		BatchSize:   o.BatchSize,
		Ops:         r.ops.Load(),
		Batches:     r.batches.Load(),
		Elapsed:     elapsed,
		P50:         min(r.hist.quantile(0.50), r.max),
		P99:         min(r.hist.quantile(0.99), r.max),
		Max:         r.max,
		Errors:      r.errs.Load(),
		Rejected:    r.rejected.Load(),
		AckLevel:    r.ackLevel,
		FirstError:  r.firstErr,
	}
	if elapsed > 0 {
		res.OpsPerSec = float64(res.Ops) / elapsed.Seconds()
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if res.Ops == 0 && res.Errors > 0 {
		return res, fmt.Errorf("loadgen: no write was acknowledged (%d failed batches); first failure: %w", res.Errors, res.FirstError)
	}
	return res, nil
}

// makeValue returns n printable bytes, varied by seed.
func makeValue(n int, seed []byte) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	x := uint32(2166136261)
	for _, s := range seed {
		x = (x ^ uint32(s)) * 16777619
	}
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = alphabet[x%uint32(len(alphabet))]
	}
	return string(b)
}

// dialAll connects every worker, at most 32 at a time, and fails with the
// first error.
func dialAll(ctx context.Context, workers []*worker) error {
	// The first failure ends the dialling: otherwise each connection not
	// dialled yet could wait its DialTimeout first (minutes for thousands
	// of connections to a server that does not answer).
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, 32)
	errc := make(chan error, len(workers))
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errc <- ctx.Err()
				return
			}
			defer func() { <-sem }()
			if err := w.dial(ctx); err != nil {
				errc <- err // before cancel: the first error is the real one
				cancel()
			}
		}()
	}
	wg.Wait()
	close(errc)
	return <-errc // nil when the channel is empty
}

// conn is one WebSocket connection with its reader.
type conn struct {
	ws   *websocket.Conn
	in   chan wire.Message // closed when the reader stops
	done chan struct{}     // closed by close
	err  error             // why the reader stopped, valid once in is closed
	once sync.Once
}

func (c *conn) close() {
	c.once.Do(func() {
		close(c.done)
		_ = c.ws.CloseNow()
	})
}

func (c *conn) readLoop(ctx context.Context) {
	defer close(c.in)
	for {
		typ, data, err := c.ws.Read(ctx)
		if err != nil {
			c.err = err
			return
		}
		if typ != websocket.MessageBinary {
			continue
		}
		m, err := wire.Decode(data)
		if err != nil {
			continue // a type this tool does not know; TopGun ignores them too
		}
		select {
		case c.in <- m:
		case <-c.done:
			c.err = errors.New("closed")
			return
		}
	}
}

// recv returns the next message, or an error when the connection fails,
// timer fires or ctx ends.
func (c *conn) recv(ctx context.Context, timer <-chan time.Time, timeout time.Duration) (wire.Message, error) {
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case m, ok := <-c.in:
		if !ok {
			return nil, fmt.Errorf("connection lost: %v", c.err)
		}
		return m, nil
	case <-timer:
		return nil, fmt.Errorf("no reply within %v", timeout)
	}
}

// worker is one connection's loop.
type worker struct {
	r      *run
	idx    int
	nodeID string
	c      *conn

	opSeq    uint64 // last op id
	keySeq   uint64
	batchSeq uint64
	millis   uint64
	counter  uint32
	ops      []wire.ClientOp
	recs     []wire.LWWRecord
}

func (w *worker) close() {
	if w.c != nil {
		w.c.close()
		w.c = nil
	}
}

// dial connects and completes the handshake.
func (w *worker) dial(ctx context.Context) error {
	o := &w.r.o
	dctx, cancel := context.WithTimeout(ctx, o.DialTimeout)
	defer cancel()
	ws, resp, err := websocket.Dial(dctx, o.URL, &websocket.DialOptions{HTTPClient: noRedirects})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if resp != nil && resp.StatusCode == http.StatusServiceUnavailable {
			// The server runs and turned the connection away (its
			// TOPGUN_MAX_CONNECTIONS, or it is shutting down): its answer
			// says which, where the hint below would mislead.
			return fmt.Errorf("loadgen: dial %s: the server refused the connection (HTTP 503): %s", o.URL, serverSays(resp))
		}
		return fmt.Errorf("loadgen: dial %s: %w; check that the server runs and the URL ends in / or /ws", o.URL, err)
	}
	ws.SetReadLimit(wire.DefaultMaxMessageBytes + 1024)
	c := &conn{ws: ws, in: make(chan wire.Message, 16), done: make(chan struct{})}
	go c.readLoop(context.WithoutCancel(ctx))
	if err := w.handshake(dctx, c); err != nil {
		c.close()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	w.c = c
	return nil
}

// serverSays returns the text of a refused upgrade's answer (websocket.Dial
// keeps its first 1024 bytes).
func serverSays(resp *http.Response) string {
	if resp.Body == nil {
		return "no reason given"
	}
	b, _ := io.ReadAll(resp.Body)
	if s := strings.TrimSpace(strings.ToValidUTF8(string(b), "\uFFFD")); s != "" {
		return s
	}
	return "no reason given"
}

// noRedirects dials without following redirects: the load (and the token)
// goes to the URL given, never to another address a server names.
var noRedirects = &http.Client{CheckRedirect: func(req *http.Request, via []*http.Request) error {
	return fmt.Errorf("the server redirected to %s; loadgen sends writes only to the URL given (give the URL it redirects to)", req.URL.Redacted())
}}

// noAuthGrace is how long a connection without a token waits for the
// server to speak: a server with auth off may stay silent (TopGun's does).
const noAuthGrace = time.Second

func (w *worker) handshake(ctx context.Context, c *conn) error {
	var first wire.Message = &wire.DeviceHello{}
	if w.r.o.Token != "" {
		first = &wire.Auth{Token: w.r.o.Token}
	}
	if err := w.send(ctx, c, first); err != nil {
		return fmt.Errorf("loadgen: send %s: %w", first.Type(), err)
	}
	grace := time.NewTimer(noAuthGrace)
	defer grace.Stop()
	graceC := grace.C
	for {
		select {
		case m, ok := <-c.in:
			if !ok {
				return fmt.Errorf("loadgen: connection closed during the handshake: %v", c.err)
			}
			switch m := m.(type) {
			case *wire.AuthRequired:
				if w.r.o.Token == "" {
					return errors.New("loadgen: the server requires authentication; pass a JWT (--token)")
				}
				graceC = nil // AUTH was sent; wait for its answer
			case *wire.AuthAck:
				return nil
			case *wire.DeviceAck:
				if w.r.o.Token == "" {
					return nil
				}
			case *wire.AuthFail:
				return fmt.Errorf("loadgen: the server refused the token: %s; pass a valid JWT (--token)", m.Error)
			}
		case <-graceC:
			return nil // silence: a server with authentication off
		case <-ctx.Done():
			return fmt.Errorf("loadgen: no handshake reply from %s within %v", w.r.o.URL, w.r.o.DialTimeout)
		}
	}
}

func (w *worker) send(ctx context.Context, c *conn, m wire.Message) error {
	b, err := wire.Encode(m)
	if err != nil {
		return err
	}
	return c.ws.Write(ctx, websocket.MessageBinary, b)
}

// redialPause separates re-dials of a failed connection.
const redialPause = 200 * time.Millisecond

// pause waits d, or less when the run ends sooner. It reports false when
// the run is over.
func (w *worker) pause(ctx context.Context, d time.Duration) bool {
	left := time.Until(w.r.deadline)
	if left <= 0 {
		return false
	}
	t := time.NewTimer(min(d, left))
	defer t.Stop()
	select {
	case <-t.C:
		return time.Now().Before(w.r.deadline)
	case <-ctx.Done():
		return false
	}
}

// reserve claims up to BatchSize ops against MaxOps; 0 means the cap is
// reached.
func (w *worker) reserve() int {
	n := int64(w.r.o.BatchSize)
	if w.r.o.MaxOps <= 0 {
		w.r.sent.Add(n)
		return int(n)
	}
	for {
		cur := w.r.sent.Load()
		left := w.r.o.MaxOps - cur
		if left <= 0 {
			return 0
		}
		n = min(n, left)
		if w.r.sent.CompareAndSwap(cur, cur+n) {
			return int(n)
		}
	}
}

func (w *worker) loop(ctx context.Context) {
	ackTimer := time.NewTimer(time.Hour)
	ackTimer.Stop()
	defer ackTimer.Stop()
	for ctx.Err() == nil && time.Now().Before(w.r.deadline) {
		if w.c == nil {
			if !w.pause(ctx, redialPause) {
				return
			}
			if err := w.dial(ctx); err != nil {
				if ctx.Err() == nil {
					w.r.fail(err)
				}
				continue
			}
			// The dial may have outlasted the run: look again before
			// sending.
			continue
		}
		n := w.reserve()
		if n == 0 {
			return
		}
		if err := w.batch(ctx, n, ackTimer); err != nil {
			if ctx.Err() != nil {
				return // cut short by the caller: not the server's failure
			}
			w.r.fail(err)
			w.r.o.Logger.Warn("batch failed; re-dialling", "conn", w.idx, "error", err)
			w.close()
		}
	}
}

// batch sends one batch of n puts and waits for its ack.
func (w *worker) batch(ctx context.Context, n int, ackTimer *time.Timer) error {
	o := &w.r.o
	if cap(w.ops) < n {
		w.ops = make([]wire.ClientOp, n)
		w.recs = make([]wire.LWWRecord, n)
	}
	ops := w.ops[:n]
	mapName := o.MapPrefix + strconv.Itoa((w.idx+int(w.batchSeq))%o.Maps)
	w.batchSeq++
	for i := range ops {
		w.opSeq++
		w.keySeq++
		w.recs[i] = wire.LWWRecord{Value: w.r.value, Timestamp: w.stamp()}
		ops[i] = wire.ClientOp{
			ID:      strconv.FormatUint(w.opSeq, 10),
			MapName: mapName,
			Key:     "k" + w.r.runID + "-" + strconv.Itoa(w.idx) + "-" + strconv.FormatUint(w.keySeq, 10),
			OpType:  "PUT",
			Record:  &w.recs[i],
		}
	}
	lastID := ops[n-1].ID
	c := w.c
	send := func(ops []wire.ClientOp) error {
		var m wire.Message = &wire.OpBatch{Ops: ops}
		if len(ops) == 1 {
			m = &wire.ClientOpMessage{ClientOp: ops[0]}
		}
		b, err := wire.Encode(m)
		if err != nil {
			return fmt.Errorf("loadgen: encode a batch: %w", err)
		}
		wctx, cancel := context.WithTimeout(ctx, o.AckTimeout)
		defer cancel()
		if err := c.ws.Write(wctx, websocket.MessageBinary, b); err != nil {
			return fmt.Errorf("loadgen: send a batch: %w", err)
		}
		return nil
	}

	start := time.Now()
	ackTimer.Reset(o.AckTimeout)
	defer ackTimer.Stop()
	if err := send(ops); err != nil {
		return err
	}
	rest := ops // the ops not acknowledged yet
	rejected := 0
	var firstReject string
	for {
		m, err := c.recv(ctx, ackTimer.C, o.AckTimeout)
		if err != nil {
			return fmt.Errorf("loadgen: batch of %d ops not acknowledged: %w", n, err)
		}
		switch m := m.(type) {
		case *wire.OpAck:
			if m.LastID != lastID {
				// A partial ack: this project's server applies a batch
				// of more ops than its TOPGUN_MAX_BATCH_OPS up to the
				// limit, acknowledges up to the last op applied and
				// expects the rest again. Any other id is not ours
				// (there is one batch in flight).
				k := slices.IndexFunc(rest[:len(rest)-1], func(op wire.ClientOp) bool { return op.ID == m.LastID })
				if k < 0 {
					continue
				}
				rest = rest[k+1:]
				if err := send(rest); err != nil {
					return err
				}
				continue
			}
			lat := time.Since(start)
			w.r.ops.Add(int64(n - rejected))
			w.r.batches.Add(1)
			w.r.mu.Lock()
			w.r.hist.record(lat)
			w.r.max = max(w.r.max, lat)
			if at := start.Add(lat); at.After(w.r.lastAck) {
				w.r.lastAck = at
			}
			if m.AchievedLevel != "" {
				w.r.ackLevel = string(m.AchievedLevel)
			}
			w.r.mu.Unlock()
			if rejected > 0 {
				w.r.rejected.Add(int64(rejected))
				w.r.fail(fmt.Errorf("loadgen: the server rejected %d of %d ops of a batch: %s", rejected, n, firstReject))
			}
			return nil
		case *wire.OpRejected:
			if rejected == 0 {
				firstReject = m.Reason
			}
			rejected++
		case *wire.ErrorMessage:
			return fmt.Errorf("loadgen: the server answered a batch of %d ops with ERROR %d: %s", n, m.Code, m.Message)
		case *wire.AuthFail:
			return fmt.Errorf("loadgen: the server ended the session: %s", m.Error)
		}
	}
}

// stamp returns the next HLC timestamp of this connection.
func (w *worker) stamp() wire.Timestamp {
	now := uint64(time.Now().UnixMilli())
	if now > w.millis {
		w.millis, w.counter = now, 0
	} else {
		w.counter++
	}
	return wire.Timestamp{Millis: w.millis, Counter: w.counter, NodeID: w.nodeID}
}
