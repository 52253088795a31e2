package main

import (
	"io"
	"maps"
	"net"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/topgun-go/topgun/plugins/postgres/pgtest"
	"github.com/topgun-go/topgun/server/wire"
)

// freezingProxy forwards TCP connections to target until freeze is called;
// from then on it forwards nothing and closes nothing, as a database behind
// a dead network link: writes are accepted, no answer ever comes.
type freezingProxy struct {
	ln      net.Listener
	target  string
	frozen  chan struct{}
	release chan struct{}
	once    sync.Once
}

func newFreezingProxy(t *testing.T, target string) *freezingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezingProxy{ln: ln, target: target, frozen: make(chan struct{}), release: make(chan struct{})}
	t.Cleanup(func() { close(p.release); ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *freezingProxy) freeze() { p.once.Do(func() { close(p.frozen) }) }

func (p *freezingProxy) serve(c net.Conn) {
	defer c.Close()
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer s.Close()
	done := make(chan struct{}, 2)
	go func() { p.copy(s, c); done <- struct{}{} }()
	go func() { p.copy(c, s); done <- struct{}{} }()
	<-done
}

// copy forwards src to dst until the proxy freezes; then it holds the
// connection open, unanswered, until the test ends.
func (p *freezingProxy) copy(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		select {
		case <-p.frozen:
			<-p.release
			return
		default:
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// startBehindFreezingProxy starts the server with env on PostgreSQL
// reached through a freezingProxy, and returns it with a client whose
// first write was acknowledged.
func startBehindFreezingProxy(t *testing.T, env map[string]string) (*proc, *freezingProxy, *wsClient) {
	t.Helper()
	u, err := url.Parse(pgtest.FreshSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := newFreezingProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	all := map[string]string{"STORAGE_BACKEND": "postgres", "DATABASE_URL": u.String()}
	maps.Copy(all, env)
	p := startServer(t, all)
	c := dialServer(t, p)
	c.send(&wire.ClientOpMessage{ClientOp: putOp("1", "a", "before")})
	c.expect(wire.TypeOpAck)
	return p, proxy, c
}

// TestBinary_shutdownBoundedWhileStorageHangs stops the server while a
// commit waits for a database that no longer answers: shutdown must still
// end within its bounds, with exit 1 and a message saying why, rather than
// wait for TCP to give up on the link (minutes, or never).
func TestBinary_shutdownBoundedWhileStorageHangs(t *testing.T) {
	t.Parallel()
	p, proxy, c := startBehindFreezingProxy(t, nil)

	proxy.freeze()
	c.send(&wire.ClientOpMessage{ClientOp: putOp("2", "b", "never acknowledged")})
	time.Sleep(300 * time.Millisecond) // the commit is now waiting on the frozen link

	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The protocol's shutdown (5 s, cut 2 s later), the HTTP drain and the
	// storage's close bound sum to under 20 s here; 40 s leaves room for
	// a loaded machine.
	code := p.wait(t, 40*time.Second)
	t.Logf("stopped in %v with exit code %d", time.Since(start).Round(time.Millisecond), code)
	if code != exitFailed {
		t.Errorf("exit code = %d, want %d (the storage was not closed)", code, exitFailed)
	}
	if !strings.Contains(p.stderr.String(), "storage did not close") {
		t.Errorf("stderr does not say the storage did not close:\n%s", p.stderr)
	}
}

// TestBinary_writeFailsWhileStorageHangs writes while the database no
// longer answers: the write must get an ERROR within about
// TOPGUN_COMMIT_TIMEOUT, unacknowledged, rather than no answer until TCP
// gives up on the link (minutes, or never), as every write behind it did.
func TestBinary_writeFailsWhileStorageHangs(t *testing.T) {
	t.Parallel()
	_, proxy, c := startBehindFreezingProxy(t, map[string]string{"TOPGUN_COMMIT_TIMEOUT": "1s"})

	proxy.freeze()
	start := time.Now()
	c.send(&wire.ClientOpMessage{ClientOp: putOp("2", "b", "never acknowledged")})
	m := c.expect(wire.TypeError) // within recv's 10 s
	t.Logf("answered in %v: %+v", time.Since(start).Round(time.Millisecond), m)
	if e := m.(*wire.ErrorMessage); e.Code != 500 || !strings.Contains(e.Message, "not acknowledged") {
		t.Fatalf("ERROR %+v, want 500 saying the write was not acknowledged", e)
	}
}

// TestBinary_secondSignalEndsAtOnce checks README's promise that a second
// SIGINT or SIGTERM ends the server at once: an operator whose server
// waits through its shutdown bounds (here for a database that no longer
// answers) can stop it without SIGKILL.
func TestBinary_secondSignalEndsAtOnce(t *testing.T) {
	t.Parallel()
	p, proxy, c := startBehindFreezingProxy(t, nil)

	proxy.freeze()
	c.send(&wire.ClientOpMessage{ClientOp: putOp("2", "b", "never acknowledged")})
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(p.stderr.String(), "shutting down"); {
		if time.Now().After(deadline) {
			t.Fatalf("the server did not start shutting down:\n%s", p.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Killed by the signal (exit code -1), not ended by the shutdown
	// bounds with exit 1, which take over 10 s here.
	if code := p.wait(t, 40*time.Second); code != -1 {
		t.Errorf("exit code = %d, want death by the second signal; stderr:\n%s", code, p.stderr)
	}
}
