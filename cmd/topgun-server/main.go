// Command topgun-server is a TopGun-compatible data server whose storage is
// pluggable. The server's library packages read no environment; this
// command does, and every setting is listed by `topgun-server --help` and in
// README.md.
//
// On start it validates the whole configuration (reporting every problem at
// once and exiting 2; client authentication needs JWT_SECRET unless
// TOPGUN_NO_AUTH is set), opens the storage backend and the record store on
// it, listens on TOPGUN_BIND_ADDR:PORT and prints `PORT=<port>` on stdout.
// It serves TopGun's client protocol (WebSocket at / and /ws, POST /sync),
// GET /health (the process is up) and GET /ready (the storage answers and
// no commit waits on it longer than its size explains). On SIGINT or
// SIGTERM it closes the client connections once their writes in flight are
// acknowledged, drains requests for at most drainTimeout, closes the
// record store and the storage (for at most storageCloseTimeout, else it
// exits 1 without them) and exits 0.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/plugins"
	"github.com/topgun-go/topgun/server/hlc"
	"github.com/topgun-go/topgun/server/protocol"
	recordstore "github.com/topgun-go/topgun/server/store"
)

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1 // the storage or the listener could not be opened, or closing failed
	exitConfig = 2 // the configuration is invalid
)

const (
	// drainTimeout bounds how long shutdown waits for requests in flight.
	drainTimeout = 10 * time.Second
	// readyTimeout bounds the storage check of GET /ready.
	readyTimeout = 2 * time.Second
	// storageCloseTimeout bounds closing the record store and the backend
	// at shutdown. A commit waiting on a database behind a dead link holds
	// both until TCP gives up (minutes, or never); its writes were not
	// acknowledged, so their clients send them again.
	storageCloseTimeout = 10 * time.Second

	// The HTTP server's bounds on a client. A WebSocket leaves them at the
	// upgrade, and POST /sync sets its own for its body (the protocol's
	// IdleTimeout) and its answer (WriteTimeout). Without the read and
	// write timeouts, a request whose declared body never comes (its
	// handler done, the server reads the rest before the next request) or
	// a client that never reads its answers holds a connection and a
	// goroutine forever, whoever it is: these do not count against
	// TOPGUN_MAX_CONNECTIONS.
	httpReadHeaderTimeout = 10 * time.Second
	httpReadTimeout       = 15 * time.Second
	// Past httpReadTimeout, so that a request refused before its body was
	// read, whose body the server reads to its end first, still gets its
	// answer.
	httpWriteTimeout = 30 * time.Second
	httpIdleTimeout  = 2 * time.Minute
	// httpMaxHeaderBytes bounds a request's headers (431 beyond): a JWT
	// takes a few KiB; Go's default is 1 MiB per connection.
	httpMaxHeaderBytes = 64 << 10
)

func main() {
	sig, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		// After the first signal, a second one kills the process at once:
		// the default handling is back before the shutdown starts.
		<-sig.Done()
		stop()
		cancel()
	}()
	os.Exit(run(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr))
}

// run is the whole server: it returns the process exit code. It shuts down
// when ctx is done.
func run(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) int {
	cfg, err := parseConfig(args, lookupEnv, stdout)
	if errors.Is(err, errHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitConfig
	}

	// The root logger has no name: the server logs under "server" and each
	// backend under "storage.<name>", side by side.
	root := hclog.New(&hclog.LoggerOptions{
		Level:      cfg.logLevel,
		Output:     stderr,
		JSONFormat: cfg.logJSON,
	})
	log := root.Named("server")
	if cfg.logLevel == hclog.Off {
		// Even with logging off, an exit 1 must say why: the server's own
		// errors (all of which stop it) are still written.
		log = hclog.New(&hclog.LoggerOptions{Name: "server", Level: hclog.Error, Output: stderr, JSONFormat: cfg.logJSON})
	}
	if cfg.noAuth {
		if cfg.jwtSecret != "" {
			log.Warn("JWT_SECRET is ignored: TOPGUN_NO_AUTH turns authentication off")
		}
		if cfg.jwtIssuer != "" || cfg.jwtAudience != "" {
			log.Warn("TOPGUN_JWT_ISSUER and TOPGUN_JWT_AUDIENCE are ignored: TOPGUN_NO_AUTH turns authentication off")
		}
		if !cfg.loopbackOnly() {
			log.Warn("authentication is off (TOPGUN_NO_AUTH) and the server listens beyond this machine: anyone who reaches it can read and change all data; set TOPGUN_BIND_ADDR=127.0.0.1 or JWT_SECRET",
				"bind_addr", cfg.bindAddr)
		}
	}

	if cfg.databaseURL != "" && cfg.storageBackend != "postgres" {
		// Most likely STORAGE_BACKEND=postgres was forgotten: say where the
		// data goes instead.
		log.Warn("DATABASE_URL is ignored: it is used only with STORAGE_BACKEND=postgres", "backend", backendName(cfg.storageBackend))
	}
	// Likewise: the data does not go where these settings say.
	redbPath, pluginSettings := cfg.ignoredSettings()
	if redbPath != "" {
		log.Warn(redbPath+" is ignored: it is used only with STORAGE_BACKEND=redb", "backend", backendName(cfg.storageBackend))
	}
	if len(pluginSettings) > 0 {
		log.Warn("plugin settings are ignored: they are used only with a wasm plugin (STORAGE_BACKEND=<path>.wasm)",
			"backend", backendName(cfg.storageBackend), "settings", strings.Join(pluginSettings, ","))
	}

	store, err := plugins.Open(ctx, cfg.storageBackend, cfg.storageOptions(root))
	if err != nil {
		if ctx.Err() != nil {
			// A signal arrived while the backend was opening: a stop request.
			log.Info("stopped before the storage was open", "backend", backendName(cfg.storageBackend))
			return exitOK
		}
		log.Error("cannot open storage", "backend", backendName(cfg.storageBackend), "error", err)
		return exitFailed
	}
	d := store.Describe()
	log.Info("storage opened", "backend", d.Name, "location", store.Location(), "capabilities", strings.Join(d.Capabilities.Names(), ","))
	if ctx.Err() != nil {
		log.Info("stopped before serving")
		return closeStorage(nil, store, log, exitOK)
	}

	code, st := serveProtocol(ctx, cfg, store, root, log, stdout)
	code = closeStorage(st, store, log, code)
	if code == exitOK {
		log.Info("stopped")
	}
	return code
}

// serveProtocol opens the record store on the storage backend and serves
// the client protocol beside /health and /ready until ctx is done. It
// closes, in order, the protocol server (acknowledging the writes in
// flight) and the HTTP server, and returns the record store (nil if it did
// not open) for the caller to close with the backend.
func serveProtocol(ctx context.Context, cfg *config, backend *plugins.Store, root, log hclog.Logger, stdout io.Writer) (int, *recordstore.Store) {
	nodeID := cfg.nodeID
	if nodeID == "" {
		nodeID = hlc.DefaultNodeID()
	}
	clock, err := hlc.New(nodeID, &hlc.Options{MaxDrift: cfg.maxDrift, Logger: log})
	if err != nil {
		log.Error("cannot start the clock", "node_id", nodeID, "error", err)
		return exitFailed, nil
	}
	cacheBytes := cfg.cacheMB << 20
	if cacheBytes == 0 {
		cacheBytes = -1 // disabled
	}
	metrics := newServerMetrics()
	st, err := recordstore.Open(ctx, backend.Backend(), &recordstore.Options{
		Clock:         clock,
		CacheBytes:    cacheBytes,
		MaxIndexBytes: cfg.maxIndexMB << 20,
		TombstoneTTL:  cfg.tombstoneTTL,
		CommitTimeout: cfg.commitTimeout,
		Logger:        root.Named("store"),
		OnCommit:      metrics.observeCommit,
	})
	if err != nil {
		if ctx.Err() != nil {
			log.Info("stopped before the record store was open")
			return exitOK, nil
		}
		log.Error("cannot open the record store", "error", err)
		return exitFailed, nil
	}
	auth, err := cfg.auth()
	if err != nil {
		log.Error("cannot use JWT_SECRET", "error", err) // checked with the configuration already
		return exitFailed, st
	}
	proto, err := protocol.New(st, &protocol.Options{
		Auth:            auth,
		OriginPatterns:  cfg.allowedOrigins,
		MaxMessageBytes: cfg.maxMessageBytes,
		MaxBatchOps:     cfg.maxBatchOps,
		OutboundBytes:   cfg.maxOutbound,
		MaxConnections:  cfg.maxConnections,
		MaxQueryResults: cfg.maxQueryResults,
		Logger:          root.Named("protocol"),
	})
	if err != nil {
		log.Error("cannot start the protocol server", "error", err)
		return exitFailed, st
	}
	defer proto.Close()
	authMode := "off"
	if auth != nil {
		authMode = auth.Algorithm()
	}
	log.Info("protocol ready", "node_id", nodeID, "auth", authMode, "max_message_bytes", cfg.maxMessageBytes, "max_batch_ops", cfg.maxBatchOps)

	var draining atomic.Bool
	mux := newMux(backend, st.CommitStalled, log, &draining)
	mux.Handle("GET /metrics", metrics.handler(proto, st, backend))
	proto.Register(mux)
	code := serve(ctx, cfg, mux, func() {
		// /ready fails while connections drain, so load balancers stop
		// sending new clients before the listener closes.
		draining.Store(true)
		proto.Close()
	}, log, stdout)
	return code, st
}

// closeStorage closes the record store st (if not nil), then the backend
// store, and returns code, or exitFailed if closing fails or does not end
// within storageCloseTimeout. Then the process exits without waiting for
// them, as after a crash, which the durable backends survive.
func closeStorage(st *recordstore.Store, store *plugins.Store, log hclog.Logger, code int) int {
	done := make(chan int, 1)
	go func() {
		c := code
		if st != nil {
			if err := st.Close(); err != nil {
				log.Error("cannot close the record store", "error", err)
				c = exitFailed
			}
		}
		if err := store.Close(); err != nil {
			log.Error("cannot close storage", "backend", store.Describe().Name, "error", err)
			c = exitFailed
		}
		done <- c
	}()
	t := time.NewTimer(storageCloseTimeout)
	defer t.Stop()
	select {
	case c := <-done:
		return c
	case <-t.C:
		log.Error("storage did not close in time: a commit is still waiting for the backend; exiting without closing it (its writes were not acknowledged, and clients send them again)",
			"backend", store.Describe().Name, "timeout", storageCloseTimeout)
		return exitFailed
	}
}

// backendName names the backend a spec selects, for logs.
func backendName(spec string) string {
	if spec == "" {
		return "redb"
	}
	return spec
}

// listenFix says what to do about a failure to listen.
func listenFix(err error) string {
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return "another process (another server?) listens on that port: stop it, or choose another with PORT"
	case errors.Is(err, syscall.EACCES):
		return "ports below 1024 need privileges: choose PORT 1024 or above"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "TOPGUN_BIND_ADDR is not an address of this machine: choose one of its addresses, or unset it"
	}
	return "check PORT and TOPGUN_BIND_ADDR"
}

// serve listens and serves HTTP until ctx is done; then it calls stop
// (which closes the WebSocket connections, which the HTTP server does not
// track) and drains the remaining requests.
func serve(ctx context.Context, cfg *config, handler http.Handler, stop func(), log hclog.Logger, stdout io.Writer) int {
	ln, err := net.Listen("tcp", cfg.listenAddr())
	if err != nil {
		log.Error("cannot listen", "addr", cfg.listenAddr(), "error", err, "fix", listenFix(err))
		return exitFailed
	}
	port := ln.Addr().(*net.TCPAddr).Port

	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: httpReadHeaderTimeout,
		ReadTimeout:       httpReadTimeout,
		WriteTimeout:      httpWriteTimeout,
		// Keep-alive connections between requests; without it an idle
		// HTTP client holds its connection forever. (WebSocket connections
		// leave the HTTP server at the upgrade and have their own.)
		IdleTimeout:    httpIdleTimeout,
		MaxHeaderBytes: httpMaxHeaderBytes,
		ErrorLog:       log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	log.Info("listening", "addr", ln.Addr().String())
	fmt.Fprintf(stdout, "PORT=%d\n", port)

	select {
	case err := <-serveErr:
		// Serve returns only on a listener failure before Shutdown.
		log.Error("http server failed", "error", err)
		return exitFailed
	case <-ctx.Done():
	}
	log.Info("shutting down", "drain_timeout", drainTimeout)
	stop()
	dctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	if err := srv.Shutdown(dctx); err != nil {
		log.Warn("requests still in flight after the drain timeout were cut", "error", err)
		srv.Close()
	}
	<-serveErr
	return exitOK
}

// newMux builds the server's own HTTP routes; the protocol server mounts
// its endpoints (/, /ws, /sync) beside them. stalled, if not nil, reports
// a commit that has waited for storage longer than its argument plus the
// time its size may take (store.Store.CommitStalled).
func newMux(store *plugins.Store, stalled func(time.Duration) error, log hclog.Logger, draining *atomic.Bool) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	// unready is set while /ready fails, so that a probe polling a backend
	// that stays down (a plugin whose circuit breaker is open) logs the
	// change of state once, not once per probe.
	var unready atomic.Bool
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) {
		if draining != nil && draining.Load() {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "shutting down"})
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		err := store.Ping(ctx)
		if err == nil && stalled != nil {
			// A read answers while writes can wait behind a lock.
			err = stalled(readyTimeout)
		}
		if err != nil {
			if !unready.Swap(true) {
				log.Warn("not ready", "error", err)
			}
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": err.Error()})
			return
		}
		if unready.Swap(false) {
			log.Info("ready again")
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, body map[string]string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body)
}
