package protocol

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/topgun-go/topgun/server/wire"
)

// A browser page may use the server when its origin is allowed: without
// authentication and without OriginPatterns, only pages of this machine
// (and the server's own origin); with authentication, any; with
// OriginPatterns, those. Requests without Origin are not from a browser
// and always pass.
func TestServer_originRule(t *testing.T) {
	t.Parallel()
	open := newEnv(t, envConfig{})
	authed := newEnv(t, envConfig{opts: Options{Auth: mustAuth(t, testSecret)}})
	listed := newEnv(t, envConfig{opts: Options{OriginPatterns: []string{"app.example.com", "*.example.org"}}})
	anyOrigin := newEnv(t, envConfig{opts: Options{OriginPatterns: []string{"*"}}})
	own := "http://" + strings.TrimPrefix(open.http.URL, "http://")
	cases := []struct {
		name   string
		e      *env
		origin string
		want   bool
	}{
		{"no origin", open, "", true},
		{"own origin", open, own, true},
		{"localhost page", open, "http://localhost:5173", true},
		{"loopback page", open, "http://127.0.0.1", true},
		{"ipv6 loopback page", open, "http://[::1]:3000", true},
		{"page elsewhere", open, "https://evil.example", false},
		{"opaque origin", open, "null", false},
		{"look-alike host", open, "http://localhost.evil.example", false},
		{"authenticated server", authed, "https://evil.example", true},
		{"listed", listed, "https://app.example.com", true},
		{"listed by pattern", listed, "https://www.example.org", true},
		{"not listed", listed, "https://evil.example", false},
		{"not listed, no host", listed, "null", false},
		{"any", anyOrigin, "https://evil.example", true},
		{"any, no host (a file: page)", anyOrigin, "null", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := http.Header{}
			if c.origin != "" {
				h.Set("Origin", c.origin)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			ws, resp, err := websocket.Dial(ctx, c.e.wsURL("/ws"), &websocket.DialOptions{HTTPHeader: h})
			if ws != nil {
				ws.CloseNow()
			}
			if c.want && err != nil {
				t.Fatalf("upgrade refused: %v", err)
			}
			if !c.want && (err == nil || resp == nil || resp.StatusCode != http.StatusForbidden) {
				t.Fatalf("upgrade from %q: err %v, response %+v; want 403", c.origin, err, resp)
			}

			// POST /sync by the same rule: a refused one writes nothing.
			body, _ := wire.EncodeHTTPSyncRequest(&wire.HTTPSyncRequest{ClientID: "c", ClientHLC: cts("c"),
				Operations: []wire.ClientOp{putOp("1", "m", "k-"+c.name, "v", cts("c"))}})
			r, _ := http.NewRequest("POST", c.e.http.URL+"/sync", bytes.NewReader(body))
			r.Header.Set("Content-Type", "text/plain") // no preflight for this one
			if c.origin != "" {
				r.Header.Set("Origin", c.origin)
			}
			hr, err := http.DefaultClient.Do(r)
			if err != nil {
				t.Fatal(err)
			}
			hr.Body.Close()
			switch {
			case !c.want && hr.StatusCode != http.StatusForbidden:
				t.Fatalf("POST /sync from %q: %d, want 403", c.origin, hr.StatusCode)
			case c.want && hr.StatusCode == http.StatusForbidden:
				t.Fatalf("POST /sync from %q refused", c.origin)
			}
			if _, _, stored := c.e.getLWW("m", "k-"+c.name); stored != (c.want && c.e.srv.opts.Auth == nil) {
				t.Fatalf("POST /sync from %q: stored %v", c.origin, stored)
			}
		})
	}
}

// Without authentication the server serves pages of this machine only. A
// page elsewhere must not get in through DNS rebinding: once its host name
// resolves to this machine, its requests carry Host and Origin of that
// name, which match each other, but it is not a page of this machine. The
// server's own origin counts only when it is addressed in a way DNS cannot
// rebind (localhost or an IP address).
func TestServer_noAuthRefusesReboundOrigin(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	port := e.http.URL[strings.LastIndex(e.http.URL, ":")+1:]
	cases := []struct {
		host string
		want int
	}{
		{"rebind.evil.example:" + port, http.StatusForbidden},
		{"localhost:" + port, http.StatusSwitchingProtocols},
		{"127.0.0.1:" + port, http.StatusSwitchingProtocols},
	}
	for _, c := range cases {
		origin := "http://" + c.host
		// The WebSocket upgrade.
		r, _ := http.NewRequest("GET", e.http.URL+"/ws", nil)
		r.Host = c.host
		r.Header.Set("Origin", origin)
		r.Header.Set("Connection", "Upgrade")
		r.Header.Set("Upgrade", "websocket")
		r.Header.Set("Sec-WebSocket-Version", "13")
		r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("upgrade from %s with Host %s: %d, want %d", origin, c.host, resp.StatusCode, c.want)
		}

		// POST /sync, by the same rule: a refused one writes nothing.
		key := "k-" + c.host
		body, _ := wire.EncodeHTTPSyncRequest(&wire.HTTPSyncRequest{ClientID: "c", ClientHLC: cts("c"),
			Operations: []wire.ClientOp{putOp("1", "m", key, "v", cts("c"))}})
		r, _ = http.NewRequest("POST", e.http.URL+"/sync", bytes.NewReader(body))
		r.Host = c.host
		r.Header.Set("Origin", origin)
		r.Header.Set("Content-Type", "text/plain")
		resp, err = http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		refused := c.want == http.StatusForbidden
		if (resp.StatusCode == http.StatusForbidden) != refused {
			t.Errorf("POST /sync from %s with Host %s: %d, refused want %v", origin, c.host, resp.StatusCode, refused)
		}
		if _, _, stored := e.getLWW("m", key); stored == refused {
			t.Errorf("POST /sync from %s: stored %v", origin, stored)
		}
	}
}

// A pattern with a port (TOPGUN_ALLOWED_ORIGINS such as localhost:* or
// app.example.com:443) also covers pages on the scheme's default port,
// whose Origin carries no port.
func TestServer_originPatternMatchesDefaultPort(t *testing.T) {
	t.Parallel()
	cases := []struct {
		pattern, origin string
		want            bool
	}{
		{"localhost:*", "http://localhost", true},
		{"localhost:*", "http://localhost:5173", true},
		{"app.example.com:*", "https://app.example.com", true},
		{"app.example.com:443", "https://app.example.com", true},
		{"app.example.com:80", "http://app.example.com", true},
		{"app.example.com:80", "https://app.example.com", false},
		{"app.example.com:8443", "https://app.example.com", false},
		{"app.example.com", "https://app.example.com", true},
		{"app.example.com", "https://app.example.com:8443", false},
		{"app.example.com:*", "https://evil-app.example.com", false},
	}
	for _, c := range cases {
		s := &Server{opts: Options{OriginPatterns: []string{c.pattern}}}
		r := httptest.NewRequest("GET", "http://server.internal/ws", nil)
		r.Header.Set("Origin", c.origin)
		if got := s.originAllowed(r); got != c.want {
			t.Errorf("pattern %q, origin %q: allowed %v, want %v", c.pattern, c.origin, got, c.want)
		}
	}
}
