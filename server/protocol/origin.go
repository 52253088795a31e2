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
		p = ipv6Literal(strings.ToLower(p))
		if ok, _ := path.Match(p, host); ok {
			return true
		}
		if ok, _ := path.Match(p, withPort); ok && strings.Contains(p, ":") {
			return true
		}
	}
	return false
}

// ipv6Literal escapes the brackets of a pattern that starts with an IPv6
// address ("[::1]:3000"), as an Origin writes it: path.Match would read
// them as a character class, and the pattern would never match its host.
func ipv6Literal(p string) string {
	if !strings.HasPrefix(p, "[") {
		return p
	}
	end := strings.IndexByte(p, ']')
	if end < 0 || net.ParseIP(p[1:end]) == nil {
		return p
	}
	return `\[` + p[1:end] + `\]` + p[end+1:]
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
		return fmt.Sprintf("origin %q may not use this server: without authentication it serves only pages of this machine; list the origin in %s", r.Header.Get("Origin"), s.opts.setting("TOPGUN_ALLOWED_ORIGINS"))
	}
	return fmt.Sprintf("origin %q may not use this server; list it in %s", r.Header.Get("Origin"), s.opts.setting("TOPGUN_ALLOWED_ORIGINS"))
}

// allowOrigin lets a browser page whose origin may use the server (checked
// by the caller) read the answer to its POST /sync: without
// Access-Control-Allow-Origin naming its origin, the browser hides the
// answer (the ack) from the page. No credentials are allowed: clients
// authenticate with a bearer token, not cookies.
func allowOrigin(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Add("Vary", "Origin")
	if origin := r.Header.Get("Origin"); origin != "" {
		h.Set("Access-Control-Allow-Origin", origin)
	}
}

// servePreflight answers the CORS preflight (OPTIONS /sync) a browser
// sends before a POST /sync with TopGun's content type
// (application/x-msgpack) or an Authorization header: allowed by the rule
// of originAllowed, with the headers the page asked to send.
func (s *Server) servePreflight(w http.ResponseWriter, r *http.Request) {
	if !s.originAllowed(r) {
		httpError(w, http.StatusForbidden, s.originRefused(r))
		return
	}
	allowOrigin(w, r)
	h := w.Header()
	h.Set("Allow", "POST, OPTIONS")
	h.Set("Access-Control-Allow-Methods", "POST")
	headers := "Authorization, Content-Type"
	if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
		headers = req
	}
	h.Set("Access-Control-Allow-Headers", headers)
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}
