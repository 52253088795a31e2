package postgres

import (
	"net/url"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// redacted replaces every password RedactURL finds.
const redacted = "xxxxx"

// unshown stands for a whole connection string whose password RedactURL
// cannot tell apart from the rest.
const unshown = "(a connection string whose password cannot be told apart; not shown)"

var (
	// password=... in a keyword/value connection string, quoted or not.
	// An unquoted value ends at a space not escaped by a backslash.
	kvPassword = regexp.MustCompile(`(?s)\b((?:ssl)?password)\s*=\s*(?:'(?:[^'\\]|\\.)*'|(?:[^\s\v\\]|\\.)*)`)
	// user:password@ in a URL that net/url cannot parse (one with '#' or
	// '?' in the password, which pgx accepts): up to the last '@', which
	// may hide more than the password but never less. Also with blanks
	// before it, a scheme holding ':' (jdbc:postgresql://), one '/', no
	// ':' or '/' after the scheme, or no scheme at all: mistakes pgx
	// reads as keyword/value and fails on.
	urlUserinfo = regexp.MustCompile(`^([\s\v\p{Z}]*(?:[a-zA-Z][a-zA-Z0-9+.:-]*[:/]+)?[^:/@?#\s]*:).*@`)
	// password=... in a URL's query string.
	// pgx reads '#' as part of the value: it knows no fragment.
	urlQueryPassword = regexp.MustCompile(`([?&](?:ssl)?password=)[^&]*`)
)

// RedactURL returns the database URL u fit for a log line: the password in
// its user info and any password or sslpassword parameter are replaced by
// "xxxxx". It accepts postgres:// URLs and keyword/value connection strings
// ("host=... password=..."), and never returns a password it recognises,
// even from a malformed URL.
func RedactURL(u string) string {
	out := redactSyntax(u)
	// pgx parses what net/url refuses; the password it would use must not
	// survive in any spelling, or nothing of the string is shown.
	if cfg, err := pgconn.ParseConfig(u); err == nil && cfg.Password != "" {
		for _, spelling := range []string{cfg.Password, url.QueryEscape(cfg.Password), url.PathEscape(cfg.Password)} {
			if strings.Contains(out, spelling) {
				return unshown
			}
		}
	}
	return out
}

// redactSyntax redacts the passwords RedactURL finds by the syntax of u,
// which it tells apart as pgx does: a URL starts with postgres:// or
// postgresql://, anything else is keyword/value.
func redactSyntax(u string) string {
	if !strings.HasPrefix(u, "postgres://") && !strings.HasPrefix(u, "postgresql://") {
		// Another scheme's URL (given by mistake) is no connection string
		// pgx reads, but its user info holds a password all the same.
		u = urlUserinfo.ReplaceAllString(u, "${1}"+redacted+"@")
		return kvPassword.ReplaceAllString(u, "${1}="+redacted)
	}
	p, err := url.Parse(u)
	// net/url ends the query at '#', pgx does not: a password holding one
	// would be cut in two.
	if err != nil || strings.ContainsRune(u, '#') {
		u = urlUserinfo.ReplaceAllString(u, "${1}"+redacted+"@")
		return urlQueryPassword.ReplaceAllString(u, "${1}"+redacted)
	}
	if p.User != nil {
		if _, has := p.User.Password(); has {
			p.User = url.UserPassword(p.User.Username(), redacted)
		}
	}
	if p.RawQuery != "" {
		parts := strings.Split(p.RawQuery, "&")
		for i, kv := range parts {
			k, _, found := strings.Cut(kv, "=")
			if name, err := url.QueryUnescape(k); found && err == nil && (name == "password" || name == "sslpassword") {
				parts[i] = k + "=" + redacted
			}
		}
		p.RawQuery = strings.Join(parts, "&")
	}
	return p.String()
}
