package protocol

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ErrAuth is matched (errors.Is) by every error Auth.Verify returns.
var ErrAuth = errors.New("protocol: authentication failed")

// clockSkew is the leeway on exp (TopGun's jwt_clock_skew_secs).
const clockSkew = 60 * time.Second

// minRSABits is the smallest RSA key crypto/rsa verifies signatures with.
const minRSABits = 1024

// Auth verifies the JWTs clients present in AUTH and in the Authorization
// header of POST /sync, as TopGun's server does: one algorithm per server
// (HS256 with a shared secret, or RS256 with an RSA public key), exp
// required (60 s leeway), a string sub required, roles an optional array of
// strings.
type Auth struct {
	alg    string
	key    any
	parser *jwt.Parser
}

// Principal is who a verified token speaks for.
type Principal struct {
	// UserID is the token's sub claim.
	UserID string
	// Roles is the token's roles claim (nil when absent).
	Roles []string
}

// NewAuth builds the verifier for a JWT_SECRET value. As in TopGun, literal
// `\n` sequences are first turned into newlines (so a PEM fits on one line
// of an environment variable); a value that then starts with "-----BEGIN"
// is an RSA public key in PEM form and tokens must be RS256, anything else
// is the HS256 secret itself, unless it holds a public key in another form
// (looksLikePublicKey), which is refused.
func NewAuth(jwtSecret string) (*Auth, error) {
	if jwtSecret == "" {
		return nil, errors.New("protocol: JWT_SECRET is empty; set it to an HS256 secret or an RSA public key PEM, or set TOPGUN_NO_AUTH=1 to disable authentication")
	}
	secret := strings.ReplaceAll(jwtSecret, `\n`, "\n")
	if strings.TrimSpace(secret) == "" {
		// A stray space after JWT_SECRET= is a mistake, not a secret:
		// anyone could sign tokens with it.
		return nil, errors.New("protocol: JWT_SECRET holds only whitespace; set it to an HS256 secret (such as the output of openssl rand -base64 32) or an RSA public key PEM, or set TOPGUN_NO_AUTH=1 to disable authentication")
	}
	a := &Auth{}
	if strings.HasPrefix(strings.TrimSpace(secret), "-----BEGIN") {
		key, err := jwt.ParseRSAPublicKeyFromPEM([]byte(strings.TrimSpace(secret)))
		if err != nil {
			return nil, fmt.Errorf("protocol: JWT_SECRET looks like a PEM but is not an RSA public key (%v); give the PEM of the RSA public key that verifies RS256 tokens", err)
		}
		// crypto/rsa refuses to verify with a key under 1024 bits: such a
		// key would start the server and then fail every client's token.
		if n := key.N.BitLen(); n < minRSABits {
			return nil, fmt.Errorf("protocol: JWT_SECRET is a %d-bit RSA public key, under the %d bits Go verifies tokens with; give the public key of an RSA key of at least 2048 bits", n, minRSABits)
		}
		a.alg, a.key = jwt.SigningMethodRS256.Alg(), key
	} else {
		if looksLikePublicKey(secret) {
			return nil, errors.New("protocol: JWT_SECRET holds a public key, but not as a PEM block at its start (quotes, text before it, bare base64, or a JSON Web Key); as an HS256 secret anyone with the public key could sign tokens: give the PEM itself, starting with -----BEGIN PUBLIC KEY-----")
		}
		a.alg, a.key = jwt.SigningMethodHS256.Alg(), []byte(secret)
	}
	a.parser = a.newParser("", "")
	return a, nil
}

// looksLikePublicKey reports whether an HS256 secret is in fact a public
// key (or certificate) in a form NewAuth does not read as one: a PEM block
// somewhere in it, bare base64 DER, or a JSON Web Key (or key set), as
// identity providers publish keys. Used as an HMAC secret, a public value
// would let anyone sign tokens.
func looksLikePublicKey(secret string) bool {
	if strings.Contains(secret, "-----BEGIN") || isPublicJWK(secret) {
		return true
	}
	der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(secret), ""))
	if err != nil {
		return false
	}
	if _, err := x509.ParsePKIXPublicKey(der); err == nil {
		return true
	}
	if _, err := x509.ParsePKCS1PublicKey(der); err == nil {
		return true
	}
	_, err = x509.ParseCertificate(der)
	return err == nil
}

// isPublicJWK reports whether s is a JSON Web Key of an asymmetric key
// (kty RSA, EC or OKP), or a key set or array holding one, quoted or not,
// also as a JSON string (as a JSON or YAML config quotes it). A symmetric
// key ("oct") is a secret, not a public value.
func isPublicJWK(s string) bool {
	var v any
	if json.Unmarshal([]byte(strings.TrimSpace(s)), &v) != nil {
		if json.Unmarshal([]byte(strings.Trim(strings.TrimSpace(s), `'"`)), &v) != nil {
			return false
		}
	}
	if str, ok := v.(string); ok {
		if json.Unmarshal([]byte(strings.TrimSpace(str)), &v) != nil {
			return false
		}
	}
	var public func(v any, depth int) bool
	public = func(v any, depth int) bool {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if kty, ok := x.(string); ok && strings.EqualFold(k, "kty") {
					switch strings.ToUpper(kty) {
					case "RSA", "EC", "OKP":
						return true
					}
				}
			}
			return depth == 0 && public(v["keys"], 1)
		case []any:
			return depth <= 1 && slices.ContainsFunc(v, func(x any) bool { return public(x, 2) })
		}
		return false
	}
	return public(v, 0)
}

// WithClaims returns a verifier that also requires a token's iss claim to
// be issuer and its aud claim to name audience (TopGun's
// TOPGUN_JWT_ISSUER and TOPGUN_JWT_AUDIENCE). An empty one is not checked,
// as in TopGun. Without an audience, a server sharing its identity
// provider's key with other services accepts tokens issued for them.
func (a *Auth) WithClaims(issuer, audience string) *Auth {
	b := *a
	b.parser = a.newParser(issuer, audience)
	return &b
}

func (a *Auth) newParser(issuer, audience string) *jwt.Parser {
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{a.alg}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(clockSkew),
	}
	if issuer != "" {
		opts = append(opts, jwt.WithIssuer(issuer))
	}
	if audience != "" {
		opts = append(opts, jwt.WithAudience(audience))
	}
	return jwt.NewParser(opts...)
}

// Algorithm returns the one algorithm tokens must use: "HS256" or "RS256".
func (a *Auth) Algorithm() string { return a.alg }

// RSAKey returns the RSA public key of an RS256 verifier, nil for HS256.
func (a *Auth) RSAKey() *rsa.PublicKey {
	k, _ := a.key.(*rsa.PublicKey)
	return k
}

type claims struct {
	jwt.RegisteredClaims
	Roles []string `json:"roles,omitempty"`
}

// UnmarshalJSON reads the claims by their exact names, as TopGun does, and
// refuses a claim it reads given twice (TopGun's decoder does too).
// encoding/json matches names regardless of case, the last match winning,
// so a "Sub" or "ROLES" claim after "sub" or "roles" (custom claims an
// identity provider may let its users set) would otherwise choose the
// principal or its roles.
func (c *claims) UnmarshalJSON(b []byte) error {
	// date: a NumericDate, which is a JSON number (RFC 7519); the library
	// would take a string holding one too, which TopGun refuses.
	type field struct {
		name string
		dst  any
		date bool
	}
	fields := [...]field{
		{"iss", &c.Issuer, false}, {"sub", &c.Subject, false}, {"aud", &c.Audience, false},
		{"exp", &c.ExpiresAt, true}, {"nbf", &c.NotBefore, true}, {"iat", &c.IssuedAt, true},
		{"jti", &c.ID, false}, {"roles", &c.Roles, false},
	}
	var seen [len(fields)]bool
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil {
		return err
	} else if t != json.Delim('{') {
		return errors.New("the claims are not a JSON object")
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		name, _ := t.(string) // an object's keys are strings
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return err
		}
		k := slices.IndexFunc(fields[:], func(f field) bool { return f.name == name })
		if k < 0 {
			continue
		}
		if seen[k] {
			return fmt.Errorf("claim %q given twice", name)
		}
		seen[k] = true
		if fields[k].date && len(raw) > 0 && raw[0] == '"' {
			return fmt.Errorf("claim %q is a string, not a number", name)
		}
		if err := json.Unmarshal(raw, fields[k].dst); err != nil {
			return fmt.Errorf("claim %q: %w", name, err)
		}
	}
	_, err := dec.Token()
	return err
}

// Verify checks a token and returns its principal. Every error matches
// ErrAuth; its text says what was wrong with the token, for logs (clients
// are only told "Authentication failed", as TopGun does).
func (a *Auth) Verify(token string) (Principal, error) {
	var c claims
	_, err := a.parser.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return a.key, nil })
	if err != nil {
		return Principal{}, fmt.Errorf("%w: %v", ErrAuth, err)
	}
	if c.Subject == "" {
		return Principal{}, fmt.Errorf("%w: missing sub claim in JWT", ErrAuth)
	}
	return Principal{UserID: c.Subject, Roles: c.Roles}, nil
}
