package client

import (
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/server/wire"
)

// DecodedBytesPerReadByte is how many times MaxReadBytes a frame from the
// server may take once decoded when Options.MaxReadDecodedBytes is zero.
const DecodedBytesPerReadByte = 8

// Options configure a Client. A nil *Options means DefaultOptions().
type Options struct {
	// Token is the JWT sent in AUTH. Leave it empty for servers started
	// with TOPGUN_NO_AUTH; a server that asks for auth then fails Dial with
	// ErrAuthRequired.
	Token string
	// DeviceToken is presented in AUTH or DEVICE_HELLO to keep a device
	// identity across processes. The client keeps the one the server issues
	// for its own reconnects (see Client.Session). A server closes a
	// connection whose device identity a newer connection presents, so
	// clients running at once must not share one.
	DeviceToken string
	// NodeID names this client in its HLC timestamps. It must be valid
	// UTF-8 without ':'. Default: "go-client-" and 8 random hex digits. A
	// NodeID set here must not be shared by clients running at once: OR
	// tags are its timestamps, and an add under a tag another add used is
	// dropped by the server as a re-send, though acknowledged.
	NodeID string
	// Header is sent with the WebSocket upgrade request.
	Header http.Header
	// Logger receives the client's logs (named "client"). Default: none.
	Logger hclog.Logger

	// DialTimeout bounds one WebSocket dial (TCP + upgrade).
	DialTimeout time.Duration
	// AuthTimeout bounds the wait for AUTH_ACK after the server asked for
	// auth (TopGun closes unauthenticated sockets after 10 s).
	AuthTimeout time.Duration
	// NoAuthGrace is how long the client waits after connecting for the
	// server to speak. A server with auth on sends AUTH_REQUIRED at once; one
	// with auth off sends nothing (or DEVICE_ACK), so silence for this long
	// means "no auth". TopGun's TS client waits 500 ms.
	NoAuthGrace time.Duration
	// WriteTimeout bounds one frame write. A write cut short leaves part
	// of a frame on the wire, so it drops the connection (and the client
	// reconnects and re-sends what was not acknowledged). The ctx of the
	// call that makes the write does not cut it short: a call whose ctx
	// ends during its write returns then, and its frame goes on.
	WriteTimeout time.Duration

	// PingInterval is the heartbeat period (TopGun's server reaps a
	// connection that sends no PING for 60 s; the TS client pings every 5 s).
	// Zero disables the heartbeat.
	PingInterval time.Duration
	// PongTimeout drops a connection that has sent no PONG, nor any part
	// of a frame, for this long (the TS client uses 15 s): a large frame on
	// a slow link, the PONGs queued behind it, keeps the connection while
	// its bytes arrive. Ignored when PingInterval is zero.
	PongTimeout time.Duration

	// Reconnect re-dials after a connection drops, with exponential
	// backoff from BackoffInitial doubling up to BackoffMax (±20 % jitter),
	// re-authenticates, re-sends every unacknowledged write and
	// re-subscribes every live query. TopGun's TS client uses 1 s and 30 s.
	// The same backoff spaces the sends of a write this project's server
	// could not store (1 s to begin with when BackoffInitial is not set).
	Reconnect      bool
	BackoffInitial time.Duration
	BackoffMax     time.Duration
	// MaxReconnectAttempts stops reconnecting after this many failed
	// attempts in a row; the client then fails with ErrReconnectFailed.
	// Zero means keep trying until Close.
	MaxReconnectAttempts int

	// MaxPendingOps bounds writes waiting for OP_ACK (including those
	// queued while disconnected); beyond it writes fail with ErrBacklogFull.
	MaxPendingOps int
	// MaxBatchOps is the most ops sent in one OP_BATCH; larger Batch calls
	// and reconnect replays are split.
	MaxBatchOps int
	// SubscriptionBuffer is the capacity of each Subscription's Updates
	// channel. A subscriber that falls this far behind is closed with
	// ErrSlowConsumer rather than stalling the connection (Subscribe
	// itself fails so when that many map events precede the initial
	// results).
	SubscriptionBuffer int
	// SyncIdleTimeout ends a SyncMap whose outstanding bucket requests get
	// no reply for this long. TopGun's server does not answer a request for
	// a path that holds nothing; such requests are counted in
	// SyncResult.Unanswered. It is also how long replies still due to a
	// finished SyncMap are kept from the next SyncMap of the map.
	SyncIdleTimeout time.Duration

	// Limits bound the frames the client sends (MaxMessageBytes: the
	// server's own limit, TopGun's 2 MiB; MaxDecodedBytes: what this
	// project's server lets a message take once decoded, writes being split
	// to fit both) and the decoding of the frames it receives (MaxDepth,
	// MaxBatchItems); the size of a received frame is bounded by
	// MaxReadBytes instead, and its decoded size by MaxReadDecodedBytes.
	Limits wire.Limits
	// MaxReadBytes bounds one frame from the server. The server's answers
	// are not held to the limit on what it accepts: a QUERY_RESP carries
	// every result of a query, a SYNC_RESP_LEAF every record of a leaf.
	// A larger frame is read to its end and ignored (logged as an error),
	// as frames that do not decode are; the connection survives. The
	// ORGet or SyncMap waiting for it fails, and a subscription whose
	// results or change it was closes, with ErrTooLarge; a map event
	// (SERVER_EVENT) closes every subscription on its map so, even one
	// whose query the change is outside.
	MaxReadBytes int
	// MaxReadDecodedBytes bounds the memory one frame from the server may
	// take once decoded, as package wire counts it while decoding
	// (wire.Limits.MaxDecodedBytes; values count the record values a
	// server would make of them too, so the client holds at most the
	// count, ordinary documents a half to three quarters of it). It bounds
	// each frame, not the frames decoded ahead of the client's dispatch
	// (up to 64) or held by subscriptions (SubscriptionBuffer each).
	// A frame over it is refused as soon as the count passes it, having
	// allocated no more, and is then handled as one over MaxReadBytes:
	// logged as an error and ignored, the connection survives
	// (unacknowledged writes stay queued), and what waited for it fails,
	// or closes, with ErrTooLarge.
	// Zero means DecodedBytesPerReadByte (8) × MaxReadBytes: 2 GiB at the
	// default. That holds a QUERY_RESP of TOPGUN_MAX_QUERY_RESULTS
	// (1,000,000) small documents (about 1.2 GiB counted) and any record
	// this project's server stored (at most 64 MiB counted there, at most
	// about 3.3 times that here: arrays of one-entry maps), while a hostile
	// server can make a frame cost no more than it besides the frame's
	// bytes (before, a 256 MiB frame could take over 10 GiB). It does not
	// hold every answer the server may send at its default limits: records
	// of many small containers count up to about 144 times their bytes
	// here, so a QUERY_RESP or SYNC_RESP_LEAF holding ten records of 1.5
	// MiB of one-entry maps (a 15 MiB frame) passes it, and so does a
	// million documents counted over about 2.1 KiB each (one of four
	// fields, a nested map and a list of two tags, counts 1.9 KiB). A
	// client reading such maps raises it; one that must stay small lowers
	// it, with MaxReadBytes.
	MaxReadDecodedBytes int

	// OnServerError is called for every ERROR the server sends. TopGun
	// cannot correlate them with a request: it answers a failed OP_BATCH
	// with ERROR 500 or 429 and a failed CLIENT_OP with nothing at all. It
	// runs on the callback goroutine described at OnStateChange. While
	// 1,024 of its calls wait to run (behind a slow or blocked callback),
	// further ERRORs are not passed to it, only counted in the log: the
	// server decides how many it sends.
	OnServerError func(*wire.ErrorMessage)
	// OnGCPrune is called for every GC_PRUNE: the server has dropped its
	// tombstones older than the timestamp, and a client that keeps records
	// for SyncMap must drop its own (LWW records with a nil value and an
	// older timestamp), as TopGun's TS client does, or its Merkle root never
	// equals the server's again. This project's server sends one when it
	// collects and one before the root of each connection's first sync, so
	// the same cut-off may come again (dropping is idempotent). It runs on
	// the callback goroutine described at OnStateChange; GC_PRUNEs arriving
	// while a call waits to run come to it as one, with the greatest
	// cut-off.
	OnGCPrune func(olderThan wire.Timestamp)
	// OnStateChange is called when the connection state changes. Both
	// callbacks run on a goroutine of their own, one call at a time, in the
	// order of the events; the client never waits for them, so a callback
	// may block and may call any Client method, Close included. A slow
	// callback only delays the ones after it. Close waits for the callbacks
	// already queued (up to StateClosed) unless it is called from one.
	OnStateChange func(State)
}

// DefaultOptions returns the defaults: no token, 5 s dial timeout, 10 s auth
// timeout, 1 s no-auth grace, 10 s write timeout, 5 s heartbeat with a 15 s
// pong timeout, reconnect with 1 s..30 s backoff and no attempt limit, 10000
// pending ops, 500 ops per batch, 256 buffered updates per subscription, 5 s
// sync idle timeout, wire.DefaultLimits, 256 MiB frames read, taking at
// most 2 GiB decoded (MaxReadDecodedBytes zero: 8 × MaxReadBytes).
func DefaultOptions() *Options {
	return &Options{
		DialTimeout:        5 * time.Second,
		AuthTimeout:        10 * time.Second,
		NoAuthGrace:        time.Second,
		WriteTimeout:       10 * time.Second,
		PingInterval:       5 * time.Second,
		PongTimeout:        15 * time.Second,
		Reconnect:          true,
		BackoffInitial:     time.Second,
		BackoffMax:         30 * time.Second,
		MaxPendingOps:      10000,
		MaxBatchOps:        500,
		SubscriptionBuffer: 256,
		SyncIdleTimeout:    5 * time.Second,
		Limits:             wire.DefaultLimits(),
		MaxReadBytes:       256 << 20,
	}
}

// Validate reports every setting that cannot work, each with its fix.
func (o *Options) Validate() error {
	var probs []string
	bad := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }
	if strings.Contains(o.NodeID, ":") {
		bad("NodeID %q contains ':'; use a name without colons", o.NodeID)
	}
	// It is in every op's timestamp: the server could decode none.
	if !utf8.ValidString(o.NodeID) {
		bad("NodeID %q is not valid UTF-8; use a UTF-8 name", o.NodeID)
	}
	positive := []struct {
		name string
		d    time.Duration
	}{
		{"DialTimeout", o.DialTimeout}, {"AuthTimeout", o.AuthTimeout}, {"NoAuthGrace", o.NoAuthGrace},
		{"WriteTimeout", o.WriteTimeout}, {"SyncIdleTimeout", o.SyncIdleTimeout},
	}
	for _, p := range positive {
		if p.d <= 0 {
			bad("%s is %v; set a positive duration", p.name, p.d)
		}
	}
	if o.PingInterval < 0 {
		bad("PingInterval is %v; set a positive duration or 0 to disable the heartbeat", o.PingInterval)
	}
	if o.PingInterval > 0 && o.PongTimeout <= o.PingInterval {
		bad("PongTimeout %v must be longer than PingInterval %v", o.PongTimeout, o.PingInterval)
	}
	if o.Reconnect {
		if o.BackoffInitial <= 0 || o.BackoffMax < o.BackoffInitial {
			bad("backoff %v..%v is invalid; set 0 < BackoffInitial <= BackoffMax", o.BackoffInitial, o.BackoffMax)
		}
		if o.MaxReconnectAttempts < 0 {
			bad("MaxReconnectAttempts is %d; set 0 (unlimited) or more", o.MaxReconnectAttempts)
		}
	}
	if o.MaxPendingOps < 1 {
		bad("MaxPendingOps is %d; set at least 1", o.MaxPendingOps)
	}
	if o.MaxBatchOps < 1 {
		bad("MaxBatchOps is %d; set at least 1", o.MaxBatchOps)
	}
	if o.SubscriptionBuffer < 1 {
		bad("SubscriptionBuffer is %d; set at least 1", o.SubscriptionBuffer)
	}
	if err := o.Limits.Validate(); err != nil {
		bad("Limits: %v", err)
	}
	if o.MaxReadBytes < 16 {
		bad("MaxReadBytes is %d; set at least 16 (default 256 MiB)", o.MaxReadBytes)
	}
	if o.MaxReadDecodedBytes < 0 {
		bad("MaxReadDecodedBytes is %d; set 0 for %d × MaxReadBytes, or a positive number of bytes", o.MaxReadDecodedBytes, DecodedBytesPerReadByte)
	}
	if len(probs) > 0 {
		return fmt.Errorf("client: invalid options: %s", strings.Join(probs, "; "))
	}
	return nil
}

// readLimits are the limits a frame from the server is decoded under.
func (o *Options) readLimits() wire.Limits {
	l := o.Limits
	l.MaxMessageBytes = o.MaxReadBytes
	l.MaxDecodedBytes = o.maxReadDecoded()
	return l
}

// maxReadDecoded is MaxReadDecodedBytes with its default applied.
func (o *Options) maxReadDecoded() int {
	if o.MaxReadDecodedBytes > 0 {
		return o.MaxReadDecodedBytes
	}
	// In int64, then clamped: 8 × 256 MiB does not fit a 32-bit int.
	return int(min(DecodedBytesPerReadByte*int64(max(o.MaxReadBytes, 0)), math.MaxInt))
}
