package postgres

import (
	"net/url"
	"regexp"
	"strings"
)

// redacted replaces every password RedactURL finds.
const redacted = "xxxxx"

var (
	// password=... in a keyword/value connection string, quoted or not.
	kvPassword = regexp.MustCompile(`\b((?:ssl)?password)\s*=\s*(?:'(?:[^'\\]|\\.)*'|[^\s]*)`)
	// user:password@ in a URL that net/url cannot parse.
	urlUserinfo = regexp.MustCompile(`^([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@?#]*:)[^@/?#]*@`)
	// password=... in a URL's query string.
	urlQueryPassword = regexp.MustCompile(`([?&](?:ssl)?password=)[^&#]*`)
)

// RedactURL returns the database URL u fit for a log line: the password in
// its user info and any password or sslpassword parameter are replaced by
// "xxxxx". It accepts postgres:// URLs and keyword/value connection strings
// ("host=... password=..."), and never returns a password it recognises,
// even from a malformed URL.
func RedactURL(u string) string {
	if !strings.Contains(u, "://") {
		return kvPassword.ReplaceAllString(u, "${1}="+redacted)
	}
	p, err := url.Parse(u)
	if err != nil {
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
