package protocol

import (
	"bytes"
	"context"
	"net/http"
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
