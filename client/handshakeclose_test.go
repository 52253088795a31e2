package client

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
)

// pipeListener serves connections made with net.Pipe: inside a synctest
// bubble a goroutine blocked on one is durably blocked, so the bubble's
// clock moves on (and a write to a peer that does not read blocks, with
// no socket buffer to fill first).
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

func (l *pipeListener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	c, s := net.Pipe()
	select {
	case l.conns <- s:
		return c, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-l.done:
		return nil, net.ErrClosed
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// A Dial whose ctx ends during the handshake returns then. It waited up
// to 5 s more in the WebSocket library's Close: for its close frame to be
// written behind the handshake's own frame, blocked on a server that does
// not read it (a write nobody waited for any longer), or for a server that
// reads but does not answer to answer it. Timed on the bubble's clock,
// which only moves when every goroutine waits.
func TestDial_returnsWhenItsCtxEndsDuringTheHandshake(t *testing.T) {
	const wait = time.Second
	for _, tc := range []struct {
		name  string
		serve func(w http.ResponseWriter, r *http.Request, release <-chan struct{})
	}{
		{"server not reading: the first frame's write blocks", func(w http.ResponseWriter, r *http.Request, release <-chan struct{}) {
			ws, err := websocket.Accept(w, r, nil)
			if err != nil {
				return
			}
			<-release
			_ = ws.CloseNow()
		}},
		{"server reading, never answering", func(w http.ResponseWriter, r *http.Request, _ <-chan struct{}) {
			// The upgrade by hand: the library's server would answer a
			// close frame.
			sum := sha1.Sum([]byte(r.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
				"Sec-WebSocket-Accept: " + base64.StdEncoding.EncodeToString(sum[:]) + "\r\n\r\n")
			if brw.Flush() == nil {
				_, _ = io.Copy(io.Discard, brw) // until the client closes
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newPipeListener()
				release := make(chan struct{})
				srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					tc.serve(w, r, release)
				})}
				served := make(chan struct{})
				go func() {
					defer close(served)
					_ = srv.Serve(l)
				}()
				tr := &http.Transport{DialContext: l.dial}
				orig := http.DefaultClient // the client dials through it
				http.DefaultClient = &http.Client{Transport: tr}
				defer func() { http.DefaultClient = orig }()

				o := testOptions(t)
				o.NoAuthGrace = time.Hour // only the ctx ends the handshake
				o.WriteTimeout = time.Hour
				ctx, cancel := context.WithTimeout(context.Background(), wait)
				defer cancel()
				start := time.Now()
				c, err := Dial(ctx, "ws://pipe/ws", o)
				took := time.Since(start)
				if err == nil {
					_ = c.Close()
					t.Fatal("Dial succeeded")
				}
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("Dial = %v, want DeadlineExceeded", err)
				}
				if took != wait {
					t.Errorf("Dial returned %v after it started; its ctx ended after %v", took, wait)
				}
				close(release)
				_ = srv.Close()
				<-served
				tr.CloseIdleConnections()
				synctest.Wait()
			})
		})
	}
}
