package protocol

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/topgun-go/topgun/server/wire"
)

// A page whose origin may use the server (TOPGUN_ALLOWED_ORIGINS) must be
// able to POST /sync from a browser: TopGun's HttpSyncProvider sends
// Content-Type application/x-msgpack and, with authentication,
// Authorization, so the browser first sends a CORS preflight (OPTIONS),
// and then lets the page read the answer only if it names its origin in
// Access-Control-Allow-Origin. A page whose origin is not allowed gets
// neither.
func TestServer_postSyncCORS(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{opts: Options{Auth: mustAuth(t, testSecret), OriginPatterns: []string{"app.example.com"}}})
	const allowed = "https://app.example.com"

	preflight := func(origin string) *http.Response {
		t.Helper()
		r, _ := http.NewRequest("OPTIONS", e.http.URL+"/sync", nil)
		r.Header.Set("Origin", origin)
		r.Header.Set("Access-Control-Request-Method", "POST")
		r.Header.Set("Access-Control-Request-Headers", "authorization,content-type")
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}

	resp := preflight(allowed)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("preflight from an allowed origin: %d, want 2xx", resp.StatusCode)
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != allowed {
		t.Errorf("preflight: Access-Control-Allow-Origin = %q, want %q", got, allowed)
	}
	if got := resp.Header.Get("Access-Control-Allow-Methods"); !strings.Contains(got, "POST") {
		t.Errorf("preflight: Access-Control-Allow-Methods = %q, want POST", got)
	}
	allowHeaders := strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers"))
	for _, h := range []string{"authorization", "content-type"} {
		if !strings.Contains(allowHeaders, h) {
			t.Errorf("preflight: Access-Control-Allow-Headers = %q, want %s", allowHeaders, h)
		}
	}

	if resp := preflight("https://evil.example"); resp.StatusCode/100 == 2 || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from an origin not allowed: %d, Access-Control-Allow-Origin %q; want a refusal",
			resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}

	// The POST itself, as the browser sends it after the preflight.
	body, _ := wire.EncodeHTTPSyncRequest(&wire.HTTPSyncRequest{ClientID: "c", ClientHLC: cts("c"),
		Operations: []wire.ClientOp{putOp("1", "m", "k", "v", cts("c"))}})
	r, _ := http.NewRequest("POST", e.http.URL+"/sync", bytes.NewReader(body))
	r.Header.Set("Origin", allowed)
	r.Header.Set("Content-Type", "application/x-msgpack")
	r.Header.Set("Authorization", "Bearer "+hsToken(t, testSecret, jwt.MapClaims{"sub": "u", "exp": time.Now().Add(time.Hour).Unix()}))
	hr, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	hr.Body.Close()
	if hr.StatusCode != http.StatusOK {
		t.Fatalf("POST /sync: %d, want 200", hr.StatusCode)
	}
	if got := hr.Header.Get("Access-Control-Allow-Origin"); got != allowed {
		t.Errorf("POST /sync: Access-Control-Allow-Origin = %q, want %q (else the page cannot read its ack)", got, allowed)
	}
}

// TOPGUN_ALLOWED_ORIGINS takes host[:port] patterns; a page served from an
// IPv6 address has an Origin host in brackets ([::1]:3000), which must be
// listable as written. path.Match alone reads the brackets as a character
// class, so such a pattern never matched.
func TestServer_originPatternIPv6Literal(t *testing.T) {
	t.Parallel()
	cases := []struct {
		pattern, origin string
		want            bool
	}{
		{"[::1]:3000", "http://[::1]:3000", true},
		{"[::1]:*", "http://[::1]:5173", true},
		{"[2001:db8::1]", "https://[2001:db8::1]", true},
		{"[2001:db8::1]:*", "https://[2001:db8::1]", true},
		{"[::1]:3000", "http://[::1]:3001", false},
		{"[::1]:3000", "http://1:3000", false},
		{"app[0-9].example.com", "https://app7.example.com", true}, // a character class still works
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
