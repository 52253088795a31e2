// Command tenants hosts many TopGun tenants in one process, each on its own
// sandboxed wasm storage plugin, record store and protocol server, all on
// one HTTP listener under /t/<tenant>/. It is an example to copy: it uses
// only the module's public packages (host, server/store, server/protocol).
//
//	JWT_SECRET=... go run ./examples/tenants -config examples/tenants/tenants.json
//	TOPGUN_NO_AUTH=1 go run ./examples/tenants -config examples/tenants/tenants.json
//
// Tenants come from a JSON file (see Config). Clients connect to
// ws://<addr>/t/<tenant>/ or POST to /t/<tenant>/sync. With JWT_SECRET
// (an HS256 secret or an RSA public key PEM, as for topgun-server) a
// tenant accepts only tokens whose aud claim names it. With TOPGUN_NO_AUTH=1
// instead, anyone who reaches the port can read and change every tenant's
// data, so the listener must be on loopback: another -addr is refused.
// One of the two is required.
//
// The file's max_connections (default 10000) bounds the clients of all
// tenants together; GET /metrics serves every tenant's protocol, commit,
// index and plugin metrics, labelled tenant="<name>", without a token.
//
// It listens at once and opens the tenants in the background, a few at a
// time, serving each as soon as it is open (see Start): until then the
// tenant's paths answer 503 with Retry-After, saying that it is starting
// and, if its open failed, why. A tenant whose open fails is logged and
// opened again, after a wait doubling from 1 s to 1 min; every 10 s the
// log names the tenants not serving yet. Mistakes in the tenants file (a
// missing plugin file included) and a compilation cache the host refuses
// stop the start.
//
// On SIGINT or SIGTERM it stops the opens in progress, stops accepting
// requests, lets those in flight finish (at most 10 s), then closes every
// tenant: its protocol server (acknowledging writes in flight), its record
// store and its plugin.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/server/protocol"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(exitStatus(run(ctx, os.Args[1:], os.Getenv, os.Stderr), os.Stderr))
}

// exitStatus reports err (run's) on stderr and returns the process's exit
// status.
func exitStatus(err error, stderr io.Writer) int {
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0 // -h: the usage is printed, as asked
	case err != nil:
		fmt.Fprintln(stderr, "tenants:", err)
		return 1
	}
	return 0
}

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := flag.NewFlagSet("tenants", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "tenants file (JSON, see tenants.json); required")
	addr := fs.String("addr", "", "listen address (default :8080, or 127.0.0.1:8080 with TOPGUN_NO_AUTH)")
	// The server's TOPGUN_PLUGIN_CACHE_DIR is read too, so that one setting
	// points both programs at one cache.
	cacheDir := fs.String("cache-dir", getenv("TOPGUN_PLUGIN_CACHE_DIR"), "wasm compilation cache shared by all tenants (default: TOPGUN_PLUGIN_CACHE_DIR, else the user cache directory; - for none)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *configPath == "" {
		return errors.New("-config is required: the path of the tenants file")
	}
	auth, listen, err := authAndAddr(getenv("JWT_SECRET"), getenv("TOPGUN_NO_AUTH"), *addr)
	if err != nil {
		return err
	}
	cfg, err := LoadConfig(*configPath)
	if err != nil {
		return err
	}

	log := hclog.New(&hclog.LoggerOptions{Output: stderr})
	// The tenants open in the background, each served once open, so that
	// one slow to open or failing does not keep the others unserved.
	ts, err := Start(ctx, cfg, Shared{CacheDir: *cacheDir, Auth: auth, Logger: log})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return errors.Join(err, ts.Close())
	}
	// As topgun-server's: without the read and write timeouts a request
	// whose declared body never comes, or a client that never reads its
	// answers, holds a connection forever (max_connections does not count
	// them); POST /sync sets its own, and WebSockets leave them at the
	// upgrade.
	srv := &http.Server{
		Handler:           ts,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("listening", "addr", ln.Addr().String(), "tenants", len(cfg.Tenants), "auth", auth != nil)

	select {
	case err = <-served: // the listener failed
	case <-ctx.Done():
		// ctx has stopped the opens in progress (Start). Shutdown
		// stops accepting and waits for POST /sync requests; WebSockets
		// left the HTTP server at the upgrade and are closed by their
		// tenant's protocol server in ts.Close.
		dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if srv.Shutdown(dctx) != nil {
			srv.Close()
		}
	}
	err = errors.Join(err, ts.Close())
	if err == nil {
		log.Info("stopped")
	}
	return err
}

// authAndAddr applies the rule topgun-server follows: authentication is
// required unless explicitly turned off, and then only this machine may
// connect.
func authAndAddr(secret, noAuth, addr string) (*protocol.Auth, string, error) {
	// The forms topgun-server accepts.
	off := false
	switch strings.ToLower(noAuth) {
	case "", "0", "false", "no", "off":
	case "1", "true", "yes", "on":
		off = true
	default:
		return nil, "", fmt.Errorf("TOPGUN_NO_AUTH=%q is not a boolean: use 1 or true to disable authentication, 0 or false to keep it", noAuth)
	}
	if off {
		if addr == "" {
			addr = "127.0.0.1:8080"
		}
		if !loopback(addr) {
			return nil, "", fmt.Errorf("-addr %s is reachable from other machines, and TOPGUN_NO_AUTH lets anyone read and change every tenant's data: listen on 127.0.0.1 or set JWT_SECRET", addr)
		}
		return nil, addr, nil
	}
	if secret == "" {
		return nil, "", errors.New("set JWT_SECRET (tokens must carry the tenant's name in aud), or TOPGUN_NO_AUTH=1 to serve this machine without authentication")
	}
	auth, err := protocol.NewAuth(secret)
	if err != nil {
		return nil, "", err
	}
	if addr == "" {
		addr = ":8080"
	}
	return auth, addr, nil
}

// loopback reports whether addr (host:port) listens on loopback only.
func loopback(addr string) bool {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(h)
	return h == "localhost" || ip != nil && ip.IsLoopback()
}
