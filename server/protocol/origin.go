package protocol

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
)

// loopbackOrigins are the hosts of pages served from this machine: what
// a server without authentication serves by default (Options.OriginPatterns).
// (Brackets are escaped: path.Match reads them as a character class.)
var loopbackOrigins = []string{"localhost", "localhost:*", "127.0.0.1", "127.0.0.1:*", `\[::1\]`, `\[::1\]:*`}

// originAllowed reports whether a request may be served by the rule of
// Options.OriginPatterns. Browsers send Origin on WebSocket upgrades and
// cross-site POSTs; other clients send none.
func (s *Server) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	patterns := s.opts.OriginPatterns
	if patterns == nil {
		if s.opts.Auth != nil {
			return true
		}
		patterns = loopbackOrigins
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		// "null" (a sandboxed page, a file: page, an app loaded from
		// files) has no host: only "*" or "null" lets it in.
		return slices.Contains(patterns, "*") || slices.Contains(patterns, "null")
	}
	host := strings.ToLower(u.Host)
	if host == strings.ToLower(r.Host) && (s.opts.Auth != nil || !rebindable(host)) {
		// The server's own origin. Without authentication only when it is
		// addressed as localhost or by IP address: Host and Origin both
		// name whatever host the page came from, so a page elsewhere whose
		// DNS name has been rebound to this machine would otherwise pass.
		return true
	}
	// A browser leaves the scheme's default port out of Origin; a pattern
	// with a port (localhost:*, app.example.com:443) covers it too.
	withPort := host
	if u.Port() == "" {
		switch strings.ToLower(u.Scheme) {
		case "http", "ws":
			withPort = host + ":80"
		case "https", "wss":
			withPort = host + ":443"
		}
	}
	for _, p := range patterns {
		p = strings.ToLower(p)
		if ok, _ := path.Match(p, host); ok {
			return true
		}
		if ok, _ := path.Match(p, withPort); ok && strings.Contains(p, ":") {
			return true
		}
	}
	return false
}

// rebindable reports whether host (host[:port]) is a DNS name that could
// resolve to this machine for a page from elsewhere (DNS rebinding): any
// name but localhost and IP addresses.
func rebindable(host string) bool {
	h := host
	if sh, _, err := net.SplitHostPort(host); err == nil {
		h = sh
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	return h != "localhost" && net.ParseIP(h) == nil
}

func (s *Server) originRefused(r *http.Request) string {
	if s.opts.Auth == nil && s.opts.OriginPatterns == nil {
		return fmt.Sprintf("origin %q may not use this server: without authentication it serves only pages of this machine; list the origin in TOPGUN_ALLOWED_ORIGINS", r.Header.Get("Origin"))
	}
	return fmt.Sprintf("origin %q may not use this server; list it in TOPGUN_ALLOWED_ORIGINS", r.Header.Get("Origin"))
}
