package protocol

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/internal/setting"
)

// Defaults of Options.
const (
	DefaultMaxMessageBytes = 2 << 20 // 2 MiB, TopGun's WebSocket message and HTTP body limit
	DefaultMaxBatchOps     = 10_000
	DefaultAuthTimeout     = 10 * time.Second
	DefaultIdleTimeout     = 60 * time.Second
	DefaultWriteTimeout    = 10 * time.Second
	DefaultOutboundQueue   = 1024
	DefaultOutboundBytes   = 64 << 20
	DefaultMaxQueries      = 1024
	DefaultMaxConnections  = 10_000
	DefaultMaxQueryResults = 1_000_000
	DefaultShutdownTimeout = 5 * time.Second
)

// MinWriteRate is the slowest a client may read a message, in bytes per
// second, beyond Options.WriteTimeout (see writeTimeout): about a 0.5
// Mbit/s link.
const MinWriteRate = 64 << 10

// writeTimeout is the time the write of a message of n bytes may take.
func (o *Options) writeTimeout(n int) time.Duration {
	return o.WriteTimeout + time.Duration(n)*time.Second/MinWriteRate
}

// MinOutboundBytes is the smallest Options.OutboundBytes accepted.
const MinOutboundBytes = 64 << 10

// Options configure a Server. The zero value of a field means its default;
// nil Options mean all defaults (and no authentication).
type Options struct {
	// Auth verifies the JWTs clients present. nil disables authentication:
	// no AUTH_REQUIRED is sent and every message is served.
	Auth *Auth

	// MaxMessageBytes is the largest WebSocket message and POST /sync body
	// accepted (TOPGUN_MAX_MESSAGE_BYTES). A larger message is answered
	// with ERROR 413 and skipped; the connection survives. So is one that
	// would take more than wire.DecodedBytesPerMessageByte (32) times it
	// in memory once decoded (wire.Limits.MaxDecodedBytes). A WebSocket
	// message over 8 times it closes the connection (1009). The live
	// queries of one connection may take 8 times it in memory, decoded and
	// compiled (see the package doc, Live queries).
	MaxMessageBytes int

	// MaxBatchOps is the most operations one OP_BATCH, ORMAP_PUSH_DIFF or
	// POST /sync may ask the store to apply (TOPGUN_MAX_BATCH_OPS). Ops the
	// connection already made durable and re-sends (TopGun's client re-sends
	// every unacknowledged op with each new write) are not counted, nor
	// are the repeats of an op within one POST /sync. An OP_BATCH or POST
	// /sync with more, whose op ids are ascending numbers (as TopGun's
	// client's are), is applied up to the limit and acknowledged up to the
	// last op applied; the client sends the rest again. An ORMAP_PUSH_DIFF
	// with more is applied in parts of whole entries within the limit,
	// each answered with its OP_ACK (an entry over it alone is refused).
	// Otherwise it is refused with ERROR 413 (POST /sync: error 413, no
	// ack).
	MaxBatchOps int

	// AuthTimeout closes a connection that has not authenticated in time.
	AuthTimeout time.Duration

	// IdleTimeout closes a connection from which nothing (not even PING)
	// arrived for this long, unless the server reads nothing from it
	// meanwhile: its writes wait for storage, or it is reading an answer
	// (then the write's own deadline bounds it, see WriteTimeout).
	// TopGun's client pings every 5 s. It also
	// bounds the time a POST /sync body may take to arrive (408 after it).
	IdleTimeout time.Duration

	// WriteTimeout bounds the write of one message to a client, plus the
	// time its size takes at MinWriteRate: a client on a slow link still
	// receives a large answer (a POST /sync answer may hold OutboundBytes).
	WriteTimeout time.Duration

	// OutboundQueue is twice the number of messages queued for one client
	// from which answers to its requests wait, as over half of
	// OutboundBytes (see waitRoom).
	// Messages pushed to it are bounded by OutboundBytes alone (each counted
	// with a small overhead): one commit can push more messages than any
	// fixed number (an OP_BATCH of thousands of ops, many live queries on
	// a map) to a client that reads them all.
	OutboundQueue int

	// OutboundBytes bounds the bytes of the messages queued for one client
	// (TOPGUN_MAX_OUTBOUND_BYTES). Answers to the client's own requests
	// (sync, queries) hold its reader back while the queue is over half of
	// it, so a client that asks for much is slowed down, not cut off;
	// messages pushed to it (changes of its live queries)
	// that would pass it disconnect the client, before they exhaust the
	// server's memory (behind an answer larger than half of it, once they
	// take half of it). A single message larger than the bound is still
	// sent when nothing else is queued. It also bounds the bytes of stored
	// records one POST /sync answer holds (see httpsync.go).
	OutboundBytes int64

	// MaxQueries is the most live queries one connection may hold.
	MaxQueries int

	// MaxQueryResults bounds the records the live queries of one connection
	// hold in their results (TOPGUN_MAX_QUERY_RESULTS): the server keeps
	// each result's keys to send its updates. A QUERY_SUB whose result would
	// pass it is answered with an error (code LIMIT) and not kept. Results
	// that grow later through live updates are not cut. It also bounds the
	// records one POST /sync answer holds (see httpsync.go).
	MaxQueryResults int

	// MaxConnections is the most WebSocket connections and POST /sync
	// requests served at once (TOPGUN_MAX_CONNECTIONS); an upgrade or a
	// request beyond it is answered 503 with Retry-After, and TopGun's
	// client retries. A few upgrades beyond it (1% of it, at least 1
	// and at most 100) are admitted on trial instead, each served only if
	// it takes over its device's open connection and its slot, else
	// closed with 1013 (see the package doc, Connections).
	MaxConnections int

	// SharedConnections, when set, is a limit on clients that this Server
	// shares with others (NewConnectionLimit), such as all the tenants of
	// one process: an upgrade or a request is also refused, the same way,
	// when it would pass that limit (with a reserve of its own for
	// connections on trial).
	SharedConnections *ConnectionLimit

	// OriginPatterns restricts the Origin of WebSocket upgrades and POST
	// /sync requests from browsers (host[:port] patterns as in path.Match,
	// "*" for any, "null" for pages without a host such as file: pages,
	// which "*" admits too; a request without Origin, or from the server's
	// own origin, is always served; without Auth, the own origin only when
	// the server is addressed as localhost or by IP address, since a DNS
	// name can be rebound to this machine by a page elsewhere). nil means:
	// with Auth, every origin (clients authenticate with a token, not
	// cookies, so a cross-site page gains nothing); without Auth, pages
	// served from this machine (localhost, 127.0.0.1, [::1], any port), so
	// that a web page from elsewhere cannot read or change an open server
	// through a visitor's browser.
	OriginPatterns []string

	// ShutdownTimeout bounds how long Close waits for acknowledgements of
	// writes in flight before cutting connections.
	ShutdownTimeout time.Duration

	// Logger receives the server's logs. Default: a null logger.
	Logger hclog.Logger

	// SettingName names a setting in the server's messages to clients and
	// its logs (such as "raise TOPGUN_MAX_MESSAGE_BYTES"): it is given
	// topgun-server's environment variable for the setting and returns
	// what the operators of a program that configures its protocol
	// servers another way set instead, as host.Options.SettingName does
	// for the host. nil, or a result of "", keeps the variable's name
	// (SharedConnections' refusals name the ConnectionLimit's own). It is
	// called when a message is written, from any goroutine.
	SettingName func(env string) string
}

// setting is the name of the setting read from the environment variable
// env in o's messages (see SettingName).
func (o *Options) setting(env string) string {
	if o == nil {
		return env
	}
	return setting.Name(o.SettingName, env)
}

// DefaultOptions returns the defaults: no authentication, TopGun's limits
// and timeouts.
func DefaultOptions() *Options {
	return &Options{
		MaxMessageBytes: DefaultMaxMessageBytes,
		MaxBatchOps:     DefaultMaxBatchOps,
		AuthTimeout:     DefaultAuthTimeout,
		IdleTimeout:     DefaultIdleTimeout,
		WriteTimeout:    DefaultWriteTimeout,
		OutboundQueue:   DefaultOutboundQueue,
		OutboundBytes:   DefaultOutboundBytes,
		MaxQueries:      DefaultMaxQueries,
		MaxConnections:  DefaultMaxConnections,
		MaxQueryResults: DefaultMaxQueryResults,
		ShutdownTimeout: DefaultShutdownTimeout,
	}
}

// Validate fills in defaults and reports settings that cannot work.
func (o *Options) Validate() error {
	d := DefaultOptions()
	if o.MaxMessageBytes == 0 {
		o.MaxMessageBytes = d.MaxMessageBytes
	}
	if o.MaxBatchOps == 0 {
		o.MaxBatchOps = d.MaxBatchOps
	}
	if o.AuthTimeout == 0 {
		o.AuthTimeout = d.AuthTimeout
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = d.IdleTimeout
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = d.WriteTimeout
	}
	if o.OutboundQueue == 0 {
		o.OutboundQueue = d.OutboundQueue
	}
	if o.OutboundBytes == 0 {
		o.OutboundBytes = d.OutboundBytes
	}
	if o.MaxQueries == 0 {
		o.MaxQueries = d.MaxQueries
	}
	if o.MaxConnections == 0 {
		o.MaxConnections = d.MaxConnections
	}
	if o.MaxQueryResults == 0 {
		o.MaxQueryResults = d.MaxQueryResults
	}
	if o.ShutdownTimeout == 0 {
		o.ShutdownTimeout = d.ShutdownTimeout
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	switch {
	case o.MaxMessageBytes < 1024 || o.MaxMessageBytes > 1<<30:
		return fmt.Errorf("protocol: MaxMessageBytes is %d; set it between 1024 and %d (default %d)", o.MaxMessageBytes, 1<<30, DefaultMaxMessageBytes)
	case o.MaxBatchOps < 1 || o.MaxBatchOps > abi.MaxBatchOps:
		return fmt.Errorf("protocol: MaxBatchOps is %d; set it between 1 and %d (default %d)", o.MaxBatchOps, abi.MaxBatchOps, DefaultMaxBatchOps)
	case o.AuthTimeout < 0:
		return fmt.Errorf("protocol: AuthTimeout is %s; it must be positive (default %s)", o.AuthTimeout, DefaultAuthTimeout)
	case o.IdleTimeout < 0:
		return fmt.Errorf("protocol: IdleTimeout is %s; it must be positive (default %s)", o.IdleTimeout, DefaultIdleTimeout)
	case o.WriteTimeout < 0:
		return fmt.Errorf("protocol: WriteTimeout is %s; it must be positive (default %s)", o.WriteTimeout, DefaultWriteTimeout)
	case o.OutboundQueue < 1:
		return fmt.Errorf("protocol: OutboundQueue is %d; set at least 1 (default %d)", o.OutboundQueue, DefaultOutboundQueue)
	case o.OutboundBytes < MinOutboundBytes:
		return fmt.Errorf("protocol: OutboundBytes is %d; set at least %d (default %d)", o.OutboundBytes, MinOutboundBytes, DefaultOutboundBytes)
	case o.MaxQueries < 1:
		return fmt.Errorf("protocol: MaxQueries is %d; set at least 1 (default %d)", o.MaxQueries, DefaultMaxQueries)
	case slices.ContainsFunc(o.OriginPatterns, func(p string) bool { return strings.Contains(p, "/") }):
		return fmt.Errorf("protocol: OriginPatterns %q: give hosts with an optional port (app.example.com, localhost:*), not URLs", o.OriginPatterns)
	case o.MaxQueryResults < 1:
		return fmt.Errorf("protocol: MaxQueryResults is %d; set at least 1 (default %d)", o.MaxQueryResults, DefaultMaxQueryResults)
	case o.MaxConnections < 1:
		return fmt.Errorf("protocol: MaxConnections is %d; set at least 1 (default %d)", o.MaxConnections, DefaultMaxConnections)
	case o.ShutdownTimeout < 0:
		return fmt.Errorf("protocol: ShutdownTimeout is %s; it must be positive (default %s)", o.ShutdownTimeout, DefaultShutdownTimeout)
	}
	return nil
}
