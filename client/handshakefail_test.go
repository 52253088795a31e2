package client

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/topgun-go/topgun/server/wire"
)

// A Dial whose handshake fails (here: the server asks for auth and the
// client has no token) returns by the end of its ctx, and not 5 s later:
// it waited for the server to answer its close frame in the WebSocket
// library's Close, whatever its ctx said, and a server that reads but
// never answers made every such Dial take that long. Timed on the
// bubble's clock, which only moves when every goroutine waits.
func TestDial_failedHandshakeReturnsWhenItsCtxEnds(t *testing.T) {
	const wait = time.Second
	synctest.Test(t, func(t *testing.T) {
		l := newPipeListener()
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// The upgrade by hand: the library's server would answer a
			// close frame.
			sum := sha1.Sum([]byte(r.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			b, err := wire.Encode(&wire.AuthRequired{})
			if err != nil || len(b) > 125 {
				t.Errorf("AUTH_REQUIRED: %d bytes, %v", len(b), err)
				return
			}
			_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
				"Sec-WebSocket-Accept: " + base64.StdEncoding.EncodeToString(sum[:]) + "\r\n\r\n")
			// One unmasked binary frame.
			_, _ = brw.Write(append([]byte{0x82, byte(len(b))}, b...))
			if brw.Flush() == nil {
				_, _ = io.Copy(io.Discard, brw) // until the client closes
			}
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
		o.NoAuthGrace = time.Hour
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		start := time.Now()
		c, err := Dial(ctx, "ws://pipe/ws", o)
		took := time.Since(start)
		if err == nil {
			_ = c.Close()
			t.Fatal("Dial succeeded")
		}
		if !errors.Is(err, ErrAuthRequired) {
			t.Errorf("Dial = %v, want ErrAuthRequired", err)
		}
		if took > wait {
			t.Errorf("Dial returned %v after it started; its ctx ended after %v", took, wait)
		}
		// The library's Close of the connection goes on after Dial (the
		// server never answers it) until its own 5 s timeout; the bubble's
		// clock stops once this function returns, so it must pass here.
		time.Sleep(6 * time.Second)
		_ = srv.Close()
		<-served
		tr.CloseIdleConnections()
		synctest.Wait()
	})
}
