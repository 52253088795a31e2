package protocol

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/internal/sparselog"
	"github.com/topgun-go/topgun/server/store"
	"github.com/topgun-go/topgun/server/wire"
)

// resyncWorkers is the number of goroutines re-reading maps for live
// queries in the background.
const resyncWorkers = 2

// Server speaks TopGun's client protocol over WebSocket and HTTP on top of
// a record store. It does not own the store.
type Server struct {
	store    *store.Store
	opts     Options
	log      hclog.Logger
	limits   wire.Limits
	ackLevel wire.WriteConcern
	origins  atomic.Uint64 // origin ids of connections and HTTP requests
	clients  atomic.Int64  // WebSocket connections being upgraded or open, and POST /sync requests
	refusing atomic.Bool   // a refusal at MaxConnections was warned of and no client admitted since
	// reserved counts the WebSocket connections admitted over the limit
	// on trial (at most reserve; see admit and claimDevice).
	reserved atomic.Int64
	reserve  int64

	// authFails: failed authentications (noteAuthFailed).
	authFails sparselog.Log
	// storageWarns: warnings of storage failures met serving a client's
	// message, which clients (and a plugin failing each call) cause at
	// the rate they send messages.
	storageWarns sparselog.ByMessage

	mu    sync.RWMutex
	conns map[*conn]struct{}
	byMap map[string]map[*subscription]struct{} // live queries by map
	// devices: the connection owning each device identity (deviceKey),
	// as TopGun's registry keeps it: a newer connection bound to an
	// identity displaces the older one (see claimDevice).
	devices map[string]*conn
	closed  bool
	connWG  sync.WaitGroup

	resyncMu   sync.Mutex
	resyncCond *sync.Cond
	resyncQ    []*subscription
	resyncStop bool

	stop      chan struct{}
	wg        sync.WaitGroup // feed loop and resync workers
	closeOnce sync.Once

	opsApplied atomic.Uint64 // ops handed to the store
	opsSkipped atomic.Uint64 // re-sent ops skipped
	slowDrops  atomic.Uint64 // connections cut for not reading
	refused    atomic.Uint64 // connections and requests refused at MaxConnections or SharedConnections
	queriesCut atomic.Uint64 // QUERY_SUBs refused at MaxQueries, MaxQueryResults, their memory or wire.MaxQueryCost
	feedLags   atomic.Uint64 // times the change feed fell behind
	// resyncsQueued counts the re-reads of a map queued for live queries.
	resyncsQueued atomic.Int64

	dispatchHook   func()              // tests: runs before each commit is dispatched
	readyHook      func()              // tests: runs once a query's read is made ready, before its result is replaced
	resyncDiffHook func()              // tests: runs as a resync starts comparing its read with the result the client holds
	changeHook     func(*subscription) // tests: runs as a live query is handed a change
}

// Stats are counters of a Server since New.
type Stats struct {
	// Connections is the number of open WebSocket connections.
	Connections int
	// OpsApplied counts the client operations handed to the store.
	OpsApplied uint64
	// OpsResent counts the re-sent operations recognised and skipped.
	OpsResent uint64
	// SlowClientsDropped counts connections cut because their client did
	// not read its messages (OutboundBytes).
	SlowClientsDropped uint64
	// ClientsRefused counts WebSocket upgrades and POST /sync requests
	// refused at MaxConnections or SharedConnections, and the connections
	// admitted over them on trial that took over no device's connection.
	ClientsRefused uint64
	// QueriesRefused counts QUERY_SUBs refused at MaxQueries,
	// MaxQueryResults, the connection's query memory or the cost of their
	// filter (wire.MaxQueryCost).
	QueriesRefused uint64
	// FeedLags counts the times the server fell behind the store's change
	// feed and closed the connections holding live queries, or one
	// connection's feed worker fell behind and it was closed, so that
	// their clients sync again the changes they were not sent.
	FeedLags uint64
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	return Stats{
		Connections:        s.Connections(),
		OpsApplied:         s.opsApplied.Load(),
		OpsResent:          s.opsSkipped.Load(),
		SlowClientsDropped: s.slowDrops.Load(),
		ClientsRefused:     s.refused.Load(),
		QueriesRefused:     s.queriesCut.Load(),
		FeedLags:           s.feedLags.Load(),
	}
}

// New returns a Server on st. It subscribes to the store's change feed at
// once, so every change committed from now on reaches live queries.
func New(st *store.Store, opts *Options) (*Server, error) {
	return newServer(st, opts, nil)
}

func newServer(st *store.Store, opts *Options, dispatchHook func()) (*Server, error) {
	if st == nil {
		return nil, errors.New("protocol: New needs a store")
	}
	o := Options{}
	if opts != nil {
		o = *opts
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	s := &Server{
		store: st, opts: o, log: o.Logger,
		limits:   wire.Limits{MaxMessageBytes: o.MaxMessageBytes, MaxDepth: wire.DefaultMaxDepth, MaxBatchItems: wire.DefaultMaxBatchItems},
		ackLevel: wire.Applied,
		conns:    map[*conn]struct{}{},
		byMap:    map[string]map[*subscription]struct{}{},
		devices:  map[string]*conn{},
		reserve:  takeoverReserve(int64(o.MaxConnections)),
		stop:     make(chan struct{}),

		dispatchHook: dispatchHook,
	}
	if st.Backend().Describe().Capabilities.Has(abi.CapDurable) {
		// Acks are sent once the write is durable in the backend.
		s.ackLevel = wire.Persisted
	}
	s.resyncCond = sync.NewCond(&s.resyncMu)
	sub := st.Subscribe()
	s.wg.Add(1 + resyncWorkers)
	go s.feedLoop(sub)
	for i := 0; i < resyncWorkers; i++ {
		go s.resyncWorker()
	}
	return s, nil
}

// Register mounts the protocol's endpoints: the WebSocket upgrade at GET /
// and GET /ws, and POST /sync (with OPTIONS /sync, its CORS preflight). It
// leaves every other path (such as /health and /ready) to the caller.
//
// The caller's http.Server should bound every request (ReadHeaderTimeout,
// ReadTimeout, WriteTimeout and MaxHeaderBytes, as topgun-server's do):
// POST /sync extends the deadlines of its connection for its body
// (IdleTimeout) and its answer (WriteTimeout), and a WebSocket leaves
// them at the upgrade, but a request refused before its body is read, or
// one to another path, is held by its client as long as they allow.
func (s *Server) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", s.serveWS)
	mux.HandleFunc("GET /ws", s.serveWS)
	mux.HandleFunc("POST /sync", s.serveHTTPSync)
	mux.HandleFunc("OPTIONS /sync", s.serveHTTPSync) // browsers' CORS preflight
}

// ServeWS is the WebSocket endpoint, for callers that route it themselves.
func (s *Server) ServeWS(w http.ResponseWriter, r *http.Request) { s.serveWS(w, r) }

// ServeHTTPSync is the POST /sync endpoint (and its CORS preflight,
// OPTIONS), for callers that route it themselves.
func (s *Server) ServeHTTPSync(w http.ResponseWriter, r *http.Request) { s.serveHTTPSync(w, r) }

func isUpgrade(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	if !isUpgrade(r) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Upgrade", "websocket")
		w.WriteHeader(http.StatusUpgradeRequired)
		_, _ = w.Write([]byte("TopGun-compatible server: connect a TopGun client to this URL over WebSocket (ws:// or wss://)\n"))
		return
	}
	if s.isClosed() {
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		return
	}
	// Counted before the upgrade, so that a flood of connections is refused
	// before each costs its goroutines and queue.
	trial, limit, setting, msg, ok := s.admit(w, r, true)
	if !ok {
		http.Error(w, msg, http.StatusServiceUnavailable)
		return
	}
	var c *conn
	defer func() {
		reserved := trial
		if c != nil {
			// A takeover may have traded the connection's slots.
			s.mu.RLock()
			reserved = c.reserved
			s.mu.RUnlock()
		}
		s.release(reserved)
	}()
	if !s.originAllowed(r) {
		s.log.Debug("websocket upgrade refused: origin not allowed", "remote", r.RemoteAddr, "origin", r.Header.Get("Origin"))
		http.Error(w, s.originRefused(r), http.StatusForbidden)
		return
	}
	// Checked above, by the same rule as POST /sync.
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		s.log.Debug("websocket upgrade refused", "remote", r.RemoteAddr, "error", err)
		return
	}
	// Frames up to this size are read and, when over MaxMessageBytes,
	// answered with an ERROR; a larger one closes the connection.
	ws.SetReadLimit(int64(s.opts.MaxMessageBytes) * 8)
	c = s.newConn(ws, r.RemoteAddr)
	if trial {
		// Served only once it takes over its device's open connection
		// (claimDevice): until then it is not authenticated, even
		// without Auth.
		c.reserved, c.trial, c.onTrial = true, true, true
		c.refusal = trialRefusal(setting)
		c.authed.Store(false)
	}
	if !s.addConn(c) {
		_ = ws.Close(websocket.StatusGoingAway, "server shutting down")
		return
	}
	if trial {
		c.log.Debug("connected over the connection limit, on trial: served only if it takes over its device's connection", "limit", limit)
	} else {
		c.log.Debug("connected")
	}
	c.start()
	c.readLoop()
	c.finish()
	if c.onTrial {
		// Refused after all, as it would have been at the upgrade.
		s.noteRefused(r, limit, "closed: it took over no open connection of its device")
	}
}

// A ConnectionLimit is a cap on the WebSocket connections and POST /sync
// requests of several Servers together (Options.SharedConnections).
// Each Server's MaxConnections counts its own clients only, so a process
// serving many stores on one listener needs this to bound them all.
type ConnectionLimit struct {
	max      int64
	setting  string
	clients  atomic.Int64
	reserved atomic.Int64 // connections over max on trial (see Server.admit)
	reserve  int64
}

// NewConnectionLimit returns a limit of n clients at once (at least 1).
// setting names it in the refusal's message, such as "max_connections",
// for the operator to raise. Like MaxConnections, it admits a few
// WebSocket connections over it on trial, each served only if it takes
// over its device's open connection (see the package doc, Connections).
func NewConnectionLimit(n int, setting string) *ConnectionLimit {
	m := int64(max(n, 1))
	return &ConnectionLimit{max: m, setting: setting, reserve: takeoverReserve(m)}
}

// takeoverReserve is how many WebSocket connections a limit of n admits
// over it on trial: 1% of n, at least 1 and at most 100. A device
// reconnecting after a network change while its half-open connection
// still holds a slot could otherwise not get in before the idle timeout
// freed it; clients without such a connection cannot pass the limit by
// more than this, each for up to AuthTimeout and the close
// handshake after it (up to 5 s).
func takeoverReserve(n int64) int64 { return min(max(n/100, 1), 100) }

// Max returns the limit.
func (l *ConnectionLimit) Max() int { return int(l.max) }

// admit takes one of the MaxConnections slots shared by WebSocket
// connections and POST /sync requests, and one of SharedConnections'.
// When either has none free and onTrial is set (a WebSocket upgrade),
// it takes a slot of their reserves instead (trial true) if both have one
// free: the connection is then served only if it takes over its device's
// open connection, whose slots it gets (claimDevice); limit is the limit
// that was full. Otherwise it sets Retry-After and returns the refusal's
// message and false; the caller answers 503 with it. A caller admitted
// releases the slots with s.release.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, onTrial bool) (trial bool, limit int64, setting string, _ string, _ bool) {
	msg, limit, setting := s.takeSlots()
	if msg != "" {
		if onTrial && s.takeReserve() {
			return true, limit, setting, "", true
		}
		s.noteRefused(r, limit, "")
		w.Header().Set("Retry-After", "5")
		return false, 0, "", msg, false
	}
	s.noteAdmitted()
	return false, 0, "", "", true
}

// takeSlots takes one of the MaxConnections slots and one of
// SharedConnections'. When either has none free it takes neither and
// returns the refusal's message, and the limit that refused and the name
// of its setting.
func (s *Server) takeSlots() (string, int64, string) {
	// The shared slot is taken first and released last, so that this
	// Server's count never passes it: with an equal MaxConnections only
	// the shared limit refuses.
	l := s.opts.SharedConnections
	if l != nil && l.clients.Add(1) > l.max {
		l.clients.Add(-1)
		return fmt.Sprintf("too many connections: this process serves at most %d at once (%s); retry later", l.max, l.setting), l.max, l.setting
	}
	if s.clients.Add(1) > int64(s.opts.MaxConnections) {
		s.clients.Add(-1)
		if l != nil {
			l.clients.Add(-1)
		}
		return s.tooManyClients(), int64(s.opts.MaxConnections), s.opts.setting("TOPGUN_MAX_CONNECTIONS")
	}
	return "", 0, ""
}

// noteRefused counts a client refused at limit and logs it. how, when not
// empty, says how a connection admitted on trial was refused.
func (s *Server) noteRefused(r *http.Request, limit int64, how string) {
	s.refused.Add(1)
	args := []any{"remote", r.RemoteAddr, "path", r.URL.Path, "limit", limit}
	if how != "" {
		args = append(args, "refusal", how)
	}
	// Warned once per spell of refusals (they are counted in
	// Stats.ClientsRefused): anyone who reaches the port could otherwise
	// write a warning per attempt.
	if !s.refusing.Swap(true) {
		s.log.Warn("client refused: too many connections; further refusals are logged at debug until a client is admitted again", args...)
	} else {
		s.log.Debug("client refused: too many connections", args...)
	}
}

// noteAuthFailed logs a token refused, at info once per sparselog.Every
// and at debug otherwise: anyone who reaches the port can present bad
// tokens as fast as it sends requests.
func (s *Server) noteAuthFailed(log hclog.Logger, err error, args ...any) {
	s.authFails.Log(log, hclog.Info, "authentication failed", append(args, "error", err)...)
}

// noteAdmitted ends a spell of refusals (see noteRefused).
func (s *Server) noteAdmitted() {
	if s.refusing.Load() {
		s.refusing.Store(false)
	}
}

// takeReserve takes a slot of the reserve of MaxConnections and one of
// SharedConnections' (see takeoverReserve), false when either is used up.
func (s *Server) takeReserve() bool {
	l := s.opts.SharedConnections
	if l != nil && l.reserved.Add(1) > l.reserve {
		l.reserved.Add(-1)
		return false
	}
	if s.reserved.Add(1) > s.reserve {
		s.reserved.Add(-1)
		if l != nil {
			l.reserved.Add(-1)
		}
		return false
	}
	return true
}

// release gives back the slots admit took: those of the reserves when
// reserved.
func (s *Server) release(reserved bool) {
	l := s.opts.SharedConnections
	if reserved {
		s.reserved.Add(-1)
		if l != nil {
			l.reserved.Add(-1)
		}
		return
	}
	s.clients.Add(-1)
	if l != nil {
		l.clients.Add(-1)
	}
}

// promote gives a connection on trial regular slots freed since it was
// admitted, in place of its reserve ones; false when there are none.
func (s *Server) promote(c *conn) bool {
	if msg, _, _ := s.takeSlots(); msg != "" {
		return false
	}
	s.mu.Lock()
	c.reserved = false
	s.mu.Unlock()
	s.release(true)
	c.onTrial = false
	s.noteAdmitted()
	return true
}

func (s *Server) tooManyClients() string {
	return fmt.Sprintf("too many connections: this server serves at most %d at once (%s); retry later", s.opts.MaxConnections, s.opts.setting("TOPGUN_MAX_CONNECTIONS"))
}

func (s *Server) isClosed() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.closed
}

func (s *Server) addConn(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	s.connWG.Add(1)
	return true
}

// removeConn forgets a finished connection and its live queries.
func (s *Server) removeConn(c *conn) {
	c.subsMu.Lock()
	subs := make([]*subscription, 0, len(c.subs))
	for _, sub := range c.subs {
		subs = append(subs, sub)
	}
	c.subsMu.Unlock()
	for _, sub := range subs {
		s.unregister(sub)
	}
	s.mu.Lock()
	_, ok := s.conns[c]
	delete(s.conns, c)
	if c.deviceKey != "" && s.devices[c.deviceKey] == c {
		delete(s.devices, c.deviceKey)
	}
	s.mu.Unlock()
	if ok {
		s.connWG.Done()
	}
}

// Connections returns the number of open client connections.
func (s *Server) Connections() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.conns)
}

// Close stops accepting connections and requests, lets each connection
// finish acknowledging the writes it already received (for at most
// ShutdownTimeout), closes every connection and stops the change-feed
// reader. It does not close the store. It is idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		conns := make([]*conn, 0, len(s.conns))
		for c := range s.conns {
			conns = append(conns, c)
		}
		s.mu.Unlock()

		deadline := time.Now().Add(s.opts.ShutdownTimeout)
		for _, c := range conns {
			go c.drain(deadline)
		}
		done := make(chan struct{})
		go func() { s.connWG.Wait(); close(done) }()
		t := time.NewTimer(time.Until(deadline) + 2*time.Second)
		select {
		case <-done:
		case <-t.C:
			s.log.Warn("connections still open after the shutdown timeout are cut")
			for _, c := range conns {
				c.abort()
			}
			<-done
		}
		t.Stop()

		close(s.stop)
		s.resyncMu.Lock()
		s.resyncStop = true
		s.resyncCond.Broadcast()
		s.resyncMu.Unlock()
		s.wg.Wait()
	})
	return nil
}
