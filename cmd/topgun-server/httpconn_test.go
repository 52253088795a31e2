package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// runInProcess runs the whole server in this process on 127.0.0.1 until
// the test ends and returns its address.
func runInProcess(t *testing.T, env map[string]string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdoutR, stdoutW := io.Pipe()
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() }) // no logging after the test ends
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer stdoutW.Close()
		run(ctx, nil, envOf(env), stdoutW, tWriter{t})
	}()
	portc := make(chan int, 1)
	go func() {
		defer close(portc)
		sc := bufio.NewScanner(stdoutR)
		for sc.Scan() {
			if p, ok := strings.CutPrefix(sc.Text(), "PORT="); ok {
				n, _ := strconv.Atoi(p)
				portc <- n
			}
		}
	}()
	select {
	case port := <-portc:
		if port <= 0 {
			t.Fatal("the server stopped before it listened")
		}
		return "127.0.0.1:" + strconv.Itoa(port)
	case <-time.After(15 * time.Second):
		t.Fatal("no PORT= line on stdout within 15s")
	}
	return ""
}

// waitClosed reads c until the server closes it and returns the first
// 4 KiB it read;
// it fails the test if c is still open after wait.
func waitClosed(t *testing.T, c net.Conn, wait time.Duration) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(wait))
	var b strings.Builder
	_, err := io.Copy(&b, io.LimitReader(c, 4<<10))
	if err == nil {
		_, err = io.Copy(io.Discard, c)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the server still holds the connection after %s (read %.200q)", wait, b.String())
	}
	return b.String()
}

// A client that declares a body and never sends it, or sends requests and
// never reads the answers, must not hold a connection (and a goroutine)
// of the server forever: anyone who reaches the port, with no token, could
// open such connections until the process runs out of file descriptors.
// None of these counts against TOPGUN_MAX_CONNECTIONS.
func TestServe_slowClientsDoNotHoldConnections(t *testing.T) {
	t.Parallel()
	addr := runInProcess(t, map[string]string{"STORAGE_BACKEND": "null", "PORT": "0", "TOPGUN_BIND_ADDR": "127.0.0.1",
		"JWT_SECRET": "a-secret-of-the-tests-only-0123456789", "TOPGUN_LOG_LEVEL": "info"})
	// Past every deadline of the HTTP server, with room for a loaded machine.
	wait := httpReadTimeout + httpWriteTimeout + 15*time.Second

	for _, tc := range []struct{ name, req, status string }{
		// Refused before the body is read: no token.
		{"POST /sync", "POST /sync HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-msgpack\r\nContent-Length: 1000\r\n\r\nab", "401"},
		{"POST /sync chunked", "POST /sync HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n", "401"},
		{"POST /sync Expect", "POST /sync HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1000\r\n\r\n", "401"},
		{"POST /health", "POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nab", "405"},
		{"GET /health with a body", "GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nab", "200"},
		{"POST to no endpoint", "POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nab", "404"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := io.WriteString(c, tc.req); err != nil {
				t.Fatal(err)
			}
			got := waitClosed(t, c, wait)
			if !strings.HasPrefix(got, "HTTP/1.1 "+tc.status+" ") {
				t.Errorf("answer %q, want status %s", got, tc.status)
			}
		})
	}

	t.Run("pipelined requests never read", func(t *testing.T) {
		t.Parallel()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// Far more answers than the sockets' buffers hold.
		const n = 20000
		req := strings.Repeat("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", n)
		_ = c.SetWriteDeadline(time.Now().Add(wait))
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		time.Sleep(httpWriteTimeout + 5*time.Second) // not reading
		waitClosed(t, c, wait)
	})
}

// The server's own limit on request headers answers 431.
func TestServe_headersTooLarge(t *testing.T) {
	t.Parallel()
	addr := runInProcess(t, withNoAuth(map[string]string{"STORAGE_BACKEND": "null", "PORT": "0", "TOPGUN_BIND_ADDR": "127.0.0.1"}))
	for _, tc := range []struct {
		name   string
		header func(r *http.Request)
	}{
		{"one large header", func(r *http.Request) { r.Header.Set("X-Big", strings.Repeat("a", 2*httpMaxHeaderBytes)) }},
		{"many headers", func(r *http.Request) {
			for i := range httpMaxHeaderBytes / 8 {
				r.Header.Set(fmt.Sprintf("X-H%d", i), "0123456789")
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/health", nil)
			if err != nil {
				t.Fatal(err)
			}
			tc.header(req)
			resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Errorf("status %d, want 431", resp.StatusCode)
			}
		})
	}
	// A request within the limit (a JWT of several KiB) is served.
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/health", nil)
	req.Header.Set("Authorization", "Bearer "+strings.Repeat("a", 16<<10))
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /health with 16 KiB of Authorization: status %d", resp.StatusCode)
	}
}

// A POST /sync body may take the protocol's idle timeout (60 s) to arrive,
// longer than the HTTP server's write timeout: the answer to a body that
// arrived late, an error as well as a result, must still reach the client.
func TestServe_lateSyncBodyIsAnswered(t *testing.T) {
	t.Parallel()
	addr := runInProcess(t, withNoAuth(map[string]string{"STORAGE_BACKEND": "null", "PORT": "0", "TOPGUN_BIND_ADDR": "127.0.0.1"}))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	body := "not msgpack"
	if _, err := fmt.Fprintf(c, "POST /sync HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-msgpack\r\nContent-Length: %d\r\n\r\n", len(body)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(httpWriteTimeout + 2*time.Second)
	if _, err := io.WriteString(c, body); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer to a body sent %s after its headers: %v", httpWriteTimeout+2*time.Second, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("status %d, want 400", resp.StatusCode)
	}
}
