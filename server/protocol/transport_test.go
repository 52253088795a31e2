package protocol

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/topgun-go/topgun/server/wire"
)

// rawWS is a WebSocket client writing frames by hand, as a hostile or
// unusual client may.
type rawWS struct {
	c  net.Conn
	br *bufio.Reader
}

// rawDial upgrades a connection to e's /ws, offering the extensions ext
// (if not empty), and returns it with the server's answer.
func rawDial(t *testing.T, e *env, ext string) (*rawWS, *http.Response) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(e.http.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	req := "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	if ext != "" {
		req += "Sec-WebSocket-Extensions: " + ext + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	w := &rawWS{c: c, br: bufio.NewReader(c)}
	resp, err := http.ReadResponse(w.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: status %d", resp.StatusCode)
	}
	return w, resp
}

// frame writes one masked frame (with a zero mask) of opcode op.
func (w *rawWS) frame(t *testing.T, fin, rsv1 bool, op byte, p []byte) {
	t.Helper()
	b0 := op
	if fin {
		b0 |= 0x80
	}
	if rsv1 {
		b0 |= 0x40
	}
	h := []byte{b0}
	switch {
	case len(p) < 126:
		h = append(h, 0x80|byte(len(p)))
	case len(p) < 1<<16:
		h = append(h, 0x80|126)
		h = binary.BigEndian.AppendUint16(h, uint16(len(p)))
	default:
		h = append(h, 0x80|127)
		h = binary.BigEndian.AppendUint64(h, uint64(len(p)))
	}
	h = append(h, 0, 0, 0, 0)
	if _, err := w.c.Write(append(h, p...)); err != nil {
		t.Fatalf("write frame: %v", err)
	}
}

// next returns the opcode and payload of the server's next frame.
func (w *rawWS) next(t *testing.T) (byte, []byte) {
	t.Helper()
	_ = w.c.SetReadDeadline(time.Now().Add(waitFor))
	var h [2]byte
	if _, err := io.ReadFull(w.br, h[:]); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("no frame from the server within %s", waitFor)
		}
		t.Fatalf("read frame: %v", err)
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var x [2]byte
		_, _ = io.ReadFull(w.br, x[:])
		n = uint64(binary.BigEndian.Uint16(x[:]))
	case 127:
		var x [8]byte
		_, _ = io.ReadFull(w.br, x[:])
		n = binary.BigEndian.Uint64(x[:])
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(w.br, p); err != nil {
		t.Fatalf("read frame: %v", err)
	}
	return h[0] & 0x0f, p
}

// permessage-deflate is not negotiated: a small compressed frame cannot
// inflate past the message limits, nor hold a window per connection. A
// client sending one anyway is closed (1002, protocol error).
func TestConn_noCompression(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	w, resp := rawDial(t, e, "permessage-deflate; client_max_window_bits")
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); ext != "" {
		t.Fatalf("extensions negotiated: %q", ext)
	}
	w.frame(t, true, true, 0x2, []byte{0x4b, 0x04, 0x00})
	op, p := w.next(t)
	if op != 0x8 || len(p) < 2 || binary.BigEndian.Uint16(p) != 1002 {
		t.Fatalf("after a compressed frame: opcode %d payload %q, want close 1002", op, p)
	}
}

// A message arriving slowly, in frames, is activity: a client on a slow
// link whose message takes longer than IdleTimeout to arrive is not
// closed as idle halfway (it would send the message again at each
// reconnection, never getting through).
func TestConn_slowMessageIsNotIdle(t *testing.T) {
	t.Parallel()
	const idle = time.Second
	e := newEnv(t, envConfig{opts: Options{IdleTimeout: idle}})
	w, _ := rawDial(t, e, "")
	msg, err := wire.Encode(&wire.Ping{Timestamp: 1700000000000})
	if err != nil {
		t.Fatal(err)
	}
	// The message's bytes arrive over three times the idle timeout, none
	// more than a third of it after the one before.
	const parts = 9
	for i, b := range msg {
		op := byte(0x2)
		if i > 0 {
			op = 0x0
		}
		w.frame(t, i == len(msg)-1, false, op, []byte{b})
		if i < parts {
			time.Sleep(idle / 3)
		}
	}
	if op, p := w.next(t); op != 0x2 {
		t.Fatalf("answer to a message sent slowly: opcode %d payload %q, want PONG", op, p)
	}
}
