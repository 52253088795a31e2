package protocol

import (
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// FuzzOriginAllowed checks the rule of a server without authentication and
// without OriginPatterns against fuzzed Origin and Host headers: a page
// (whose browser writes Origin as scheme://host[:port]) may use it only if the Origin's host is localhost or an IP address (of
// this machine, or the one the request was sent to), never a DNS name a
// page elsewhere could rebind.
func FuzzOriginAllowed(f *testing.F) {
	for _, o := range []string{
		"http://localhost:5173", "http://127.0.0.1", "http://[::1]:3000", "https://evil.example",
		"null", "http://localhost.evil.example", "http://LOCALHOST", "http://localhost:80@evil.example",
		"http://[::1]", "ws://127.0.0.1:*", "http://evil.example:8080",
	} {
		f.Add(o, "127.0.0.1:8080")
		f.Add(o, "evil.example:8080")
	}
	s := &Server{}
	f.Fuzz(func(t *testing.T, origin, host string) {
		r := &http.Request{Host: host, Header: http.Header{}}
		r.Header.Set("Origin", origin)
		if !s.originAllowed(r) || origin == "" {
			return
		}
		u, err := url.Parse(origin)
		if err != nil {
			return // not an origin a browser sends
		}
		// After an IPv6 literal's brackets, at most one colon, with digits
		// after it: url.Parse takes "127.0.0.1::" or "127.0.0.1:8:9" for a
		// host with an empty or numeric port, and its Hostname then keeps
		// a colon, which no browser writes.
		rest := u.Host[strings.LastIndexByte(u.Host, ']')+1:]
		if u.Scheme+"://"+u.Host != origin || strings.Trim(u.Port(), "0123456789") != "" ||
			strings.Count(rest, ":") > 1 || strings.HasSuffix(rest, ":") {
			// Not an origin a browser sends (scheme://host[:port]); other
			// clients may leave Origin out altogether.
			return
		}
		h := strings.ToLower(u.Hostname())
		if h != "localhost" && net.ParseIP(h) == nil {
			t.Fatalf("origin %q (Host %q) allowed: its host %q is a DNS name", origin, host, h)
		}
	})
}
