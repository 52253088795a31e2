package postgres

import (
	"context"
	"errors"
	"io"
	"net"
	neturl "net/url"
	"sync"
	"testing"
	"time"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/plugins/postgres/pgtest"
)

// holdingProxy forwards loopback TCP connections to the database. hold
// stops forwarding what the client sends on the connections open then,
// keeping it, as a dead link keeps it in the sender's kernel (and a client
// that closed the connection still has it sent); deliver sends it on, as
// the link coming back does. Connections made after hold are forwarded.
type holdingProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []*heldConn
}

type heldConn struct {
	mu     sync.Mutex
	client net.Conn
	server net.Conn
	held   bool
	buf    []byte
	eof    bool // the client closed its side while held
}

func newHoldingProxy(t *testing.T, target string) *holdingProxy {
	t.Helper()
	p := &holdingProxy{target: target}
	t.Cleanup(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, hc := range p.conns {
			hc.client.Close()
			hc.server.Close()
		}
	})
	p.ln = serveProxy(t, target, func(c, s net.Conn) {
		hc := &heldConn{client: c, server: s}
		p.mu.Lock()
		p.conns = append(p.conns, hc)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(c, s); c.Close() }()
		go hc.forward(c)
	})
	return p
}

// serveProxy listens on loopback and, for each connection it accepts,
// dials target and hands both ends to pair (on the accept loop). The
// listener closes at cleanup, before the caller's cleanups registered
// earlier run.
func serveProxy(t *testing.T, target string, pair func(client, server net.Conn)) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			pair(c, s)
		}
	}()
	return ln
}

func (hc *heldConn) forward(c net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		hc.mu.Lock()
		if hc.held {
			hc.buf = append(hc.buf, buf[:n]...)
			hc.eof = err != nil
		} else if n > 0 {
			_, _ = hc.server.Write(buf[:n])
		}
		if err != nil && !hc.held {
			hc.server.(*net.TCPConn).CloseWrite()
		}
		hc.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func (p *holdingProxy) hold() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, hc := range p.conns {
		hc.mu.Lock()
		hc.held = true
		hc.mu.Unlock()
	}
}

// deliver sends on what the held connections kept, and reports how many
// bytes.
func (p *holdingProxy) deliver() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, hc := range p.conns {
		hc.mu.Lock()
		if hc.held {
			n += len(hc.buf)
			_, _ = hc.server.Write(hc.buf)
			hc.buf, hc.held = nil, false
			if hc.eof {
				hc.server.(*net.TCPConn).CloseWrite()
			}
		}
		hc.mu.Unlock()
	}
	return n
}

// openBehindHoldingProxy opens a backend on a fresh schema reached through
// a holdingProxy.
func openBehindHoldingProxy(t *testing.T) (*Backend, *holdingProxy) {
	t.Helper()
	u, err := neturl.Parse(pgtest.FreshSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	p := newHoldingProxy(t, u.Host)
	u.Host = p.ln.Addr().String()
	return openURL(t, u.String()), p
}

// A write cut off by its context while its statement is still on the way
// must not commit after the backend has answered a later read: the next
// operation ends the write's session first. Before, the statement, sent
// on when the link came back, committed after a read had shown the record
// unchanged, so a caller that settled the write as not applied (the
// record store) diverged from storage, and a commit landing after a
// later write undid that write.
func TestBackend_interruptedWriteCannotCommitLater(t *testing.T) {
	t.Parallel()
	b, p := openBehindHoldingProxy(t)
	ctx := testCtx(t)
	put := func(v string, now int64) *abi.Batch {
		bt := &abi.Batch{Now: now}
		bt.Put("m", "k", false, []byte(v), 0)
		return bt
	}
	apply(t, b, put("one", 1))

	p.hold()
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err := b.Apply(cctx, put("two", 2))
	cancel()
	if !errors.Is(err, abi.ErrDeadlineExceeded) {
		t.Fatalf("Apply over a held link: %v (code %v), want deadline exceeded", err, abi.CodeOf(err))
	}
	// The link is back for new connections: the outcome is read.
	recs, err := b.Get(ctx, "m", false, []string{"k"})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || string(recs[0].Value) != "one" {
		t.Fatalf("read %+v, want one", recs)
	}
	// Then the statement kept on the old connection arrives.
	if n := p.deliver(); n == 0 {
		t.Fatal("the proxy held nothing: the test did not interrupt a sent statement")
	}
	time.Sleep(300 * time.Millisecond) // time for it to commit, if it could
	recs, err = b.Get(ctx, "m", false, []string{"k"})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || string(recs[0].Value) != "one" {
		t.Fatalf("after the interrupted write's statement arrived, read %+v, want one: it committed after a read had settled it", recs)
	}
}

// A role whose sessions run as another role (SET ROLE by a role setting or
// the URL's options, as when a login role acts as the owner of the
// table) cannot see its own session's backend_start in pg_stat_activity:
// the connection is used, without a fence. Before, the NULL start time
// failed every new connection, so Open failed.
func TestOpen_sessionRunAsAnotherRole(t *testing.T) {
	t.Parallel()
	url := pgtest.FreshSchema(t)
	conn := sqlConn(t, url)
	ctx := testCtx(t)
	var schema string
	if err := conn.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	owner, login := schema+"_owner", schema+"_login"
	b := openURL(t, roleURL(t, url, login, []string{
		`CREATE ROLE ` + owner + ` NOLOGIN`,
		`CREATE ROLE ` + login + ` LOGIN IN ROLE ` + owner,
		`ALTER ROLE ` + login + ` SET role = ` + owner,
		`GRANT USAGE, CREATE ON SCHEMA ` + schema + ` TO ` + owner,
	}, []string{
		`DROP OWNED BY ` + owner,
		`DROP ROLE IF EXISTS ` + login,
		`DROP ROLE IF EXISTS ` + owner,
	}))
	batch := &abi.Batch{Now: 1}
	batch.Put("m", "k", false, []byte("v"), 0)
	apply(t, b, batch)
	if recs, err := b.Get(ctx, "m", false, []string{"k"}); err != nil || len(recs) != 1 {
		t.Fatalf("Get: %+v %v", recs, err)
	}
}

// An operation waiting while another ends the sessions of interrupted
// writes gives up when its context ends. Before, it waited for the lock
// the other held for up to fenceWait (10 s), and the commit timeout of
// the record store did not bound a commit.
func TestBackend_fenceWaitHonoursContext(t *testing.T) {
	t.Parallel()
	b, p := openBehindHoldingProxy(t)
	ctx := testCtx(t)
	bt := &abi.Batch{Now: 1}
	bt.Put("m", "k", false, []byte("v"), 0)
	apply(t, b, bt)
	// A session to end, and a database that no longer answers on the
	// pool's connections: the first operation's fence query hangs.
	b.fenceMu.Lock()
	b.fences = append(b.fences, session{pid: 1, start: time.Unix(1, 0)})
	b.fencing.Store(true)
	b.fenceMu.Unlock()
	p.hold()
	t.Cleanup(func() { p.deliver() }) // before Close, which waits for the pool
	first := make(chan error, 1)
	go func() {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		_, err := b.Get(cctx, "m", false, []string{"k"})
		first <- err
	}()
	time.Sleep(100 * time.Millisecond) // the first holds the fence
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := b.Get(cctx, "m", false, []string{"k"})
	if took := time.Since(start); took > time.Second {
		t.Fatalf("an operation with a 200ms deadline waited %s for another's fence (error %v)", took, err)
	}
	if !errors.Is(err, abi.ErrDeadlineExceeded) {
		t.Fatalf("error %v (code %v), want deadline exceeded", err, abi.CodeOf(err))
	}
	if err := <-first; err == nil {
		t.Fatal("the fence query over a held link succeeded")
	}
}
