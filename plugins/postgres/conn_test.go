package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/plugins/postgres/pgtest"
)

// withURLParam returns u with one more query parameter.
func withURLParam(t *testing.T, u, key, value string) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Skipf("test database URL is not a URL (%v); set %s to a postgres:// URL", err, pgtest.EnvURL)
	}
	q := p.Query()
	q.Set(key, value)
	p.RawQuery = q.Encode()
	return p.String()
}

// allOps runs one of each operation and returns their errors.
func allOps(ctx context.Context, b abi.Backend, now int64) map[string]error {
	var batch abi.Batch
	batch.Now = now
	batch.Put("m", fmt.Sprint("k", now), false, []byte("v"), 0)
	errs := map[string]error{}
	errs["apply"] = b.Apply(ctx, &batch)
	_, errs["get"] = b.Get(ctx, "m", false, []string{"k1"})
	_, errs["scan"] = b.Scan(ctx, abi.ScanRequest{Map: "m"})
	_, errs["list maps"] = b.ListMaps(ctx)
	_, errs["list expired"] = b.ListExpired(ctx, now, 10)
	return errs
}

// TestBackend_terminatedConnections ends the pool's sessions from another
// connection, as an administrator or a failover would: every operation
// either succeeds (after the backend's retry on a new connection) or fails
// with ErrUnavailable, and the backend recovers without being reopened.
func TestBackend_terminatedConnections(t *testing.T) {
	t.Parallel()
	appName := pgtest.SchemaName(t) // unique
	u := withURLParam(t, pgtest.FreshSchema(t), "application_name", appName)
	b := openURL(t, u)
	admin := sqlConn(t, pgtest.URL(t))
	ctx := testCtx(t)

	for round := range 3 {
		// Fill the pool with several live sessions.
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() { _, _ = b.pool.Exec(ctx, `SELECT pg_sleep(0.05)`) })
		}
		wg.Wait()
		var n int
		if err := admin.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`, appName).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Fatal("found no session to terminate")
		}
		unavailable := 0
		for op, err := range allOps(ctx, b, int64(10+round)) {
			switch {
			case err == nil:
			case errors.Is(err, abi.ErrUnavailable):
				unavailable++
				t.Logf("round %d: %s: %v", round, op, err)
			default:
				t.Fatalf("round %d: %s after terminated sessions: %v (code %v), want success or unavailable", round, op, err, abi.CodeOf(err))
			}
		}
		t.Logf("round %d: terminated %d sessions, %d operations unavailable", round, n, unavailable)
		// Recovery: without reopening, every operation works again.
		for op, err := range allOps(ctx, b, int64(100+round)) {
			if err != nil {
				t.Fatalf("round %d: %s did not recover: %v", round, op, err)
			}
		}
	}
}

// proxy forwards loopback TCP connections to the database, and can be
// taken down (listener closed, every connection cut) and brought back on the
// same address: a database outage the test controls.
type proxy struct {
	t      *testing.T
	target string
	addr   string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newProxy(t *testing.T, target string) *proxy {
	p := &proxy{t: t, target: target, conns: map[net.Conn]struct{}{}}
	p.up("127.0.0.1:0")
	t.Cleanup(func() { p.down(); p.wg.Wait() })
	return p
}

func (p *proxy) up(addr string) {
	var ln net.Listener
	var err error
	for range 50 { // the port may linger for a moment after down
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		p.t.Fatalf("proxy listen %s: %v", addr, err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			d, err := net.DialTimeout("tcp", p.target, 5*time.Second)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[d] = struct{}{}, struct{}{}
			p.mu.Unlock()
			pipe := func(dst, src net.Conn) {
				_, _ = io.Copy(dst, src)
				_ = dst.Close()
				_ = src.Close()
			}
			p.wg.Go(func() { pipe(d, c) })
			p.wg.Go(func() { pipe(c, d) })
		}
	})
}

func (p *proxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		_ = c.Close()
		delete(p.conns, c)
	}
}

// TestBackend_outageAndRecovery cuts the database off: every operation
// fails promptly with ErrUnavailable; when the database is back, the same
// Backend works again and the data is intact.
func TestBackend_outageAndRecovery(t *testing.T) {
	t.Parallel()
	u := pgtest.FreshSchema(t)
	cfg, err := pgconn.ParseConfig(u)
	if err != nil || len(cfg.Host) == 0 || cfg.Host[0] == '/' {
		t.Skipf("test database is not reached over TCP (%v)", err)
	}
	px := newProxy(t, net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))))
	pu, err := url.Parse(u)
	if err != nil {
		t.Skipf("test database URL is not a URL (%v)", err)
	}
	pu.Host = px.addr
	opts := testOptions(t)
	opts.ConnectTimeout = time.Second
	b, err := Open(testCtx(t), pu.String(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	ctx := testCtx(t)
	for op, err := range allOps(ctx, b, 1) {
		if err != nil {
			t.Fatalf("%s before the outage: %v", op, err)
		}
	}

	px.down()
	for i := range 2 {
		start := time.Now()
		for op, err := range allOps(ctx, b, int64(10+i)) {
			if !errors.Is(err, abi.ErrUnavailable) {
				t.Fatalf("%s during the outage: %v (code %v), want unavailable", op, err, abi.CodeOf(err))
			}
			if i == 0 {
				t.Logf("%s: %v", op, err)
			}
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("failing operations took %s", d)
		}
	}

	px.up(px.addr)
	deadline := time.Now().Add(10 * time.Second)
	for attempt := 0; ; attempt++ {
		errs := allOps(ctx, b, int64(100+attempt))
		var failed error
		for op, err := range errs {
			if err != nil {
				failed = fmt.Errorf("%s: %w", op, err)
			}
		}
		if failed == nil {
			t.Logf("recovered after %d attempts", attempt+1)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery after the database came back: %v", failed)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := abi.GetOne(ctx, b, "m", "k1", false); err != nil {
		t.Fatalf("data written before the outage: %v", err)
	}
}
