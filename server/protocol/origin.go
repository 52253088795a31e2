package protocol

import (
	"fmt"
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
	if host == strings.ToLower(r.Host) {
		return true
	}
	for _, p := range patterns {
		if ok, _ := path.Match(strings.ToLower(p), host); ok {
			return true
		}
	}
	return false
}

func (s *Server) originRefused(r *http.Request) string {
	if s.opts.Auth == nil && s.opts.OriginPatterns == nil {
		return fmt.Sprintf("origin %q may not use this server: without authentication it serves only pages of this machine; list the origin in TOPGUN_ALLOWED_ORIGINS", r.Header.Get("Origin"))
	}
	return fmt.Sprintf("origin %q may not use this server; list it in TOPGUN_ALLOWED_ORIGINS", r.Header.Get("Origin"))
}
