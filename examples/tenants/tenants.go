package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/topgun-go/topgun/host"
	"github.com/topgun-go/topgun/server/hlc"
	"github.com/topgun-go/topgun/server/metrics"
	"github.com/topgun-go/topgun/server/protocol"
	recordstore "github.com/topgun-go/topgun/server/store"
)

// cacheBytesPerTenant bounds each tenant's cache of record values. The
// server's default (64 MiB) is meant for one store per process; here it
// is paid once per tenant, outside any plugin's memory limit.
const cacheBytesPerTenant = 16 << 20

// Shared is what every tenant of the process shares.
type Shared struct {
	// CacheDir is the wasm compilation cache ("" for the default, "-" for
	// none): one plugin file used by many tenants is compiled once.
	CacheDir string
	// Auth verifies client tokens; each tenant accepts only tokens whose
	// aud claim names it. nil turns authentication off (loopback only).
	Auth *protocol.Auth
	// Logger is the parent of each tenant's logger, tenant.<name>.
	Logger hclog.Logger
}

// Tenants serves every tenant on one http.Handler:
//
//	GET  /t/<name>/ or /t/<name>/ws   TopGun's WebSocket protocol
//	POST /t/<name>/sync               TopGun's HTTP sync (and its CORS preflight)
//	GET  /t/<name>/ready              200 while the tenant's storage is healthy
//	GET  /health                      200 while the process runs
//	GET  /metrics                     Prometheus metrics, each tenant's labelled tenant="<name>"
//
// A tenant Start has not opened yet is answered 503 with Retry-After on
// its paths, saying why (see Start).
type Tenants struct {
	mux *http.ServeMux
	// conns is Config.MaxConnections, shared by every tenant's protocol
	// server: each counts its own clients only.
	conns *protocol.ConnectionLimit
	// commits observes every tenant's group commits as they happen.
	commits *metrics.Commits

	mu      sync.RWMutex
	tenants map[string]*tenant
	// starting holds the tenants Start is still opening, each until it
	// serves (moved to tenants) or is removed.
	starting map[string]*starting
	// closed is set by Close: an open ending after it is not served.
	closed bool

	// stop cancels Start's opens and retries; openers counts the
	// goroutines running them, which Close waits for.
	stop    context.CancelFunc
	openers sync.WaitGroup
}

// tenant is one tenant's stack: plugin, record store, protocol server.
type tenant struct {
	backend *host.Backend
	store   *recordstore.Store
	proto   *protocol.Server
	// requests counts the HTTP requests in this tenant's handlers (a
	// WebSocket's lasts as long as the connection), so that closing waits
	// for them before it closes the store under them.
	requests sync.WaitGroup
}

// Open opens every tenant of cfg, one after another, and returns once all
// serve. If one fails, those already open are closed and the error names
// the tenant. Start is the form for a server: it serves each tenant as
// soon as it is open and keeps retrying those that fail.
func Open(ctx context.Context, cfg *Config, sh Shared) (*Tenants, error) {
	if err := checkRealPaths(cfg); err != nil {
		return nil, err
	}
	ts, sh := newTenants(cfg, sh)
	for _, tc := range cfg.Tenants {
		t, err := ts.openTenant(ctx, tc, sh)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("tenant %s: %w", tc.Name, err), ts.Close())
		}
		ts.tenants[tc.Name] = t
		ts.logServing(tc, sh, t)
	}
	return ts, nil
}

// newTenants makes the handler of cfg's tenants, serving none yet.
func newTenants(cfg *Config, sh Shared) (*Tenants, Shared) {
	if sh.Logger == nil {
		sh.Logger = hclog.NewNullLogger()
	}
	maxConns := cfg.MaxConnections
	if maxConns == 0 {
		maxConns = protocol.DefaultMaxConnections
	}
	ts := &Tenants{
		mux:      http.NewServeMux(),
		conns:    protocol.NewConnectionLimit(maxConns, "max_connections in the tenants file"),
		commits:  metrics.NewCommits([]string{"tenant"}),
		tenants:  map[string]*tenant{},
		starting: map[string]*starting{},
		stop:     func() {},
	}
	// The protocol's handlers do not look at the path, so they can be
	// mounted under a prefix as they are, without http.StripPrefix.
	ws := ts.route(func(t *tenant, w http.ResponseWriter, r *http.Request) { t.proto.ServeWS(w, r) }, false)
	ts.mux.HandleFunc("GET /t/{tenant}", ws)
	ts.mux.HandleFunc("GET /t/{tenant}/{$}", ws)
	ts.mux.HandleFunc("GET /t/{tenant}/ws", ws)
	httpSync := ts.route(func(t *tenant, w http.ResponseWriter, r *http.Request) { t.proto.ServeHTTPSync(w, r) }, false)
	ts.mux.HandleFunc("POST /t/{tenant}/sync", httpSync)
	ts.mux.HandleFunc("OPTIONS /t/{tenant}/sync", httpSync)
	ts.mux.HandleFunc("GET /t/{tenant}/ready", ts.route((*tenant).ready, true))
	ts.mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	// One collector reads every tenant's counters when scraped, and one
	// observes their commits, so a tenant adds label values, not metrics
	// or registries, and a removed one leaves no series behind. The help
	// texts name the settings as settingNames does.
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewCollector([]string{"tenant"}, ts.samples, &metrics.Options{SettingName: settingName}),
		ts.commits, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	ts.mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return ts, sh
}

func (ts *Tenants) logServing(tc TenantConfig, sh Shared, t *tenant) {
	sh.Logger.Named("tenant."+tc.Name).Info("serving", "path", "/t/"+tc.Name+"/", "plugin", t.backend.Describe().Name, "data_dir", tc.DataDir)
}

// samples reads the counters of every tenant being served: its protocol
// server's, its record store's index and its plugin's.
func (ts *Tenants) samples() []metrics.Sample {
	ts.mu.RLock()
	defer ts.mu.RUnlock()
	out := make([]metrics.Sample, 0, len(ts.tenants))
	for name, t := range ts.tenants {
		p, st := t.backend.Stats(), t.store.Stats()
		out = append(out, metrics.Sample{
			LabelValues: []string{name},
			Backend:     t.backend.Describe().Name,
			Protocol:    t.proto.Stats(),
			Plugin:      &p,
			Store:       &st,
		})
	}
	return out
}

// openTenant opens one tenant's plugin, record store and protocol server.
// On failure it closes what it opened and removes the tenant's commit
// series, so that a tenant not served has none.
func (ts *Tenants) openTenant(ctx context.Context, tc TenantConfig, sh Shared) (_ *tenant, err error) {
	conns := ts.conns
	log := sh.Logger.Named("tenant." + tc.Name)
	if tc.DataDir != "" {
		if err := os.MkdirAll(tc.DataDir, 0o700); err != nil {
			return nil, err
		}
	}
	t := &tenant{}
	defer func() {
		if err != nil {
			err = errors.Join(err, t.close())
			ts.commits.Delete(tc.Name)
		}
	}()
	// Each Load gets its own wazero runtime, memory limit, call deadline,
	// open-file cap, circuit breaker and data directory (locked while
	// loaded, with its own quota); the plugin logs as tenant.<name>.plugin.<file>.
	t.backend, err = host.Load(ctx, tc.Plugin, &host.Options{
		DataDir:       tc.DataDir,
		MemoryLimitMB: tc.MemoryMB,
		CallTimeout:   tc.callTimeout,
		DataMaxMB:     tc.DataMaxMB,
		DataMaxFiles:  tc.DataMaxFiles,
		CacheDir:      sh.CacheDir,
		Logger:        log,
		SettingName:   settingName,
	})
	if err != nil {
		return nil, err
	}
	clock, err := hlc.New(hlc.DefaultNodeID(), &hlc.Options{Logger: log})
	if err != nil {
		return nil, err
	}
	t.store, err = recordstore.Open(ctx, t.backend, &recordstore.Options{
		Clock:         clock,
		CacheBytes:    cacheBytesPerTenant,
		MaxIndexBytes: tc.maxIndexBytes(),
		Logger:        log.Named("store"),
		OnCommit:      ts.commits.Observer(tc.Name),
		SettingName:   settingName,
	})
	if err != nil {
		return nil, err
	}
	var auth *protocol.Auth
	if sh.Auth != nil {
		// One key for all tenants, but a token for one is refused by the
		// others: without this a client of one tenant could use another's
		// data.
		auth = sh.Auth.WithClaims("", tc.Name)
	}
	t.proto, err = protocol.New(t.store, &protocol.Options{
		Auth: auth,
		// The process's limit, for the tenant too: its own count never
		// passes the shared one, so only the shared one refuses, with a
		// message naming max_connections.
		MaxConnections:    conns.Max(),
		SharedConnections: conns,
		Logger:            log.Named("protocol"),
		SettingName:       settingName,
	})
	return t, err
}

// close closes, in order, the protocol server (acknowledging writes in
// flight, then closing its connections), the record store once no request
// uses it, and the plugin (which releases its data directory).
func (t *tenant) close() error {
	if t.proto != nil {
		t.proto.Close()
	}
	t.requests.Wait()
	var errs []error
	if t.store != nil {
		errs = append(errs, t.store.Close())
	}
	if t.backend != nil {
		errs = append(errs, t.backend.Close())
	}
	return errors.Join(errs...)
}

// route hands a request to the tenant its path names, answers 503 for a
// tenant still starting (in JSON for /ready), or 404.
func (ts *Tenants) route(serve func(*tenant, http.ResponseWriter, *http.Request), asJSON bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("tenant")
		ts.mu.RLock()
		t := ts.tenants[name]
		if t != nil {
			// Under the lock: once Remove has taken the tenant out of the
			// map, no request can start on it, and its Wait is safe.
			t.requests.Add(1)
		}
		var why string
		var retry time.Duration
		if st := ts.starting[name]; t == nil && st != nil {
			why, retry = st.status(name, time.Now())
		}
		ts.mu.RUnlock()
		if t == nil {
			if why == "" {
				http.Error(w, "no such tenant", http.StatusNotFound)
				return
			}
			w.Header().Set("Retry-After", strconv.Itoa(int(max(time.Second, retry.Round(time.Second))/time.Second)))
			if asJSON {
				writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "starting", "error": why})
			} else {
				http.Error(w, why, http.StatusServiceUnavailable)
			}
			return
		}
		defer t.requests.Done()
		serve(t, w, r)
	}
}

// ready answers 503 while the tenant's plugin has its circuit breaker
// open or a commit has been stuck on it for 2 s more than its size may
// take (store.Store.CommitStalled).
func (t *tenant) ready(w http.ResponseWriter, r *http.Request) {
	err := t.backend.Healthy()
	if err == nil {
		err = t.store.CommitStalled(2 * time.Second)
	}
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (ts *Tenants) ServeHTTP(w http.ResponseWriter, r *http.Request) { ts.mux.ServeHTTP(w, r) }

// Remove stops serving one tenant and closes it (see tenant.close); the
// others keep serving. Its path then answers 404. A tenant Start is still
// opening stops opening: Remove waits for the open in progress, if any,
// to end (at the plugin's next call, or its call's deadline) and closes
// what it opened.
func (ts *Tenants) Remove(name string) error {
	ts.mu.Lock()
	t := ts.tenants[name]
	delete(ts.tenants, name)
	st := ts.starting[name]
	delete(ts.starting, name)
	ts.mu.Unlock()
	if st != nil {
		st.cancel()
		<-st.done
		return nil
	}
	if t == nil {
		return fmt.Errorf("no tenant %q", name)
	}
	err := t.close()
	ts.commits.Delete(name)
	if err != nil {
		return fmt.Errorf("tenant %s: %w", name, err)
	}
	return nil
}

// Close stops the opens and retries Start has in progress, waits for them
// (each closes what it opened), then removes every tenant, all at once:
// closing one waits for its clients' acknowledgements (up to
// protocol.DefaultShutdownTimeout).
func (ts *Tenants) Close() error {
	ts.mu.Lock()
	ts.closed = true
	ts.starting = map[string]*starting{}
	ts.mu.Unlock()
	ts.stop()
	ts.openers.Wait()

	ts.mu.RLock()
	var names []string
	for n := range ts.tenants {
		names = append(names, n)
	}
	ts.mu.RUnlock()
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Go(func() { errs[i] = ts.Remove(n) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func writeJSON(w http.ResponseWriter, status int, body map[string]string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body)
}
