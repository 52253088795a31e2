package protocol

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/topgun-go/topgun/server/wire"
)

func TestNewAuth_errors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, secret string
	}{
		{"empty", ""},
		// Whitespace alone (a stray space after JWT_SECRET= in an env
		// file) is no secret: anyone could sign tokens with it.
		{"space", " "},
		{"whitespace", " \t\r\n"},
		{"escaped newlines", `\n\n`},
		{"pem that is not a key", "-----BEGIN PUBLIC KEY-----\\nAAAA\\n-----END PUBLIC KEY-----"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewAuth(tc.secret); err == nil || !strings.HasPrefix(err.Error(), "protocol: ") {
				t.Fatalf("NewAuth(%q) = %v, want a protocol error", tc.secret, err)
			}
		})
	}
}

func rsaKeyPEM(t *testing.T) (*rsa.PrivateKey, string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	p := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	// As it would sit in an environment variable: on one line, with
	// literal \n sequences.
	return key, strings.ReplaceAll(string(p), "\n", `\n`)
}

func TestAuth_Verify(t *testing.T) {
	t.Parallel()
	hs := mustAuth(t, testSecret)
	key, pemText := rsaKeyPEM(t)
	rs := mustAuth(t, pemText)
	if hs.Algorithm() != "HS256" || rs.Algorithm() != "RS256" || rs.RSAKey() == nil {
		t.Fatalf("algorithms %s/%s", hs.Algorithm(), rs.Algorithm())
	}
	exp := time.Now().Add(time.Hour).Unix()
	rsToken := func(claims jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodRS256, claims).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	noneToken, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "u", "exp": exp}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	for _, tc := range []struct {
		name  string
		a     *Auth
		token string
		user  string // "" = must fail
		roles []string
	}{
		{"hs256 ok", hs, hsToken(t, testSecret, jwt.MapClaims{"sub": "alice", "roles": []string{"admin", "x"}, "exp": exp}), "alice", []string{"admin", "x"}},
		{"hs256 no roles", hs, hsToken(t, testSecret, jwt.MapClaims{"sub": "bob", "exp": exp}), "bob", nil},
		{"expired beyond leeway", hs, hsToken(t, testSecret, jwt.MapClaims{"sub": "a", "exp": time.Now().Add(-2 * time.Minute).Unix()}), "", nil},
		{"expired within leeway", hs, hsToken(t, testSecret, jwt.MapClaims{"sub": "a", "exp": time.Now().Add(-30 * time.Second).Unix()}), "a", nil},
		{"no exp", hs, hsToken(t, testSecret, jwt.MapClaims{"sub": "a"}), "", nil},
		{"no sub", hs, hsToken(t, testSecret, jwt.MapClaims{"exp": exp}), "", nil},
		{"numeric sub", hs, hsToken(t, testSecret, jwt.MapClaims{"sub": 42, "exp": exp}), "", nil},
		{"roles not an array", hs, hsToken(t, testSecret, jwt.MapClaims{"sub": "a", "roles": "admin", "exp": exp}), "", nil},
		{"not yet valid", hs, hsToken(t, testSecret, jwt.MapClaims{"sub": "a", "nbf": time.Now().Add(10 * time.Minute).Unix(), "exp": exp}), "", nil},
		{"wrong secret", hs, hsToken(t, "other", jwt.MapClaims{"sub": "a", "exp": exp}), "", nil},
		{"alg none", hs, noneToken, "", nil},
		{"garbage", hs, "not.a.jwt", "", nil},
		{"rs256 ok", rs, rsToken(jwt.MapClaims{"sub": "carol", "exp": exp}), "carol", nil},
		{"hs256 token on rs256 server", rs, hsToken(t, pemText, jwt.MapClaims{"sub": "a", "exp": exp}), "", nil},
		{"rs256 token on hs256 server", hs, rsToken(jwt.MapClaims{"sub": "a", "exp": exp}), "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := tc.a.Verify(tc.token)
			if tc.user == "" {
				if !errors.Is(err, ErrAuth) {
					t.Fatalf("Verify = %+v, %v; want ErrAuth", p, err)
				}
				return
			}
			if err != nil || p.UserID != tc.user || strings.Join(p.Roles, ",") != strings.Join(tc.roles, ",") {
				t.Fatalf("Verify = %+v, %v; want user %q roles %v", p, err, tc.user, tc.roles)
			}
		})
	}
}

func TestAuth_handshake(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{opts: Options{Auth: mustAuth(t, testSecret)}})
	c := e.dial(t)
	expect[*wire.AuthRequired](c)

	// Before AUTH_ACK everything else is dropped without a reply.
	c.send(&wire.OpBatch{Ops: []wire.ClientOp{putOp("1", "todos", "early", "x", cts("c1"))}})
	c.send(&wire.Ping{Timestamp: 1})
	c.send(&wire.SyncInit{MapName: "todos"})
	c.sendRaw([]byte{0xc1, 0xff}) // malformed: dropped too
	c.send(&wire.Auth{Token: userToken(t, "alice")})
	ack := expect[*wire.AuthAck](c)
	if ack.UserID != "alice" || ack.DeviceID == "" || !strings.HasPrefix(ack.DeviceToken, ack.DeviceID+".") {
		t.Fatalf("AUTH_ACK = %+v", ack)
	}
	c.ping()
	if _, _, ok := e.getLWW("todos", "early"); ok {
		t.Fatal("a write sent before AUTH_ACK was applied")
	}

	// A duplicate AUTH is tolerated: no reply, the connection goes on.
	c.send(&wire.Auth{Token: userToken(t, "alice")})
	c.send(&wire.Auth{Token: "bad"})
	c.ping()
	if ack := c.write(putOp("2", "todos", "late", "y", cts("c1"))); ack.LastID != "2" {
		t.Fatalf("OP_ACK = %+v", ack)
	}
	c.quiet(50 * time.Millisecond)
}

func TestAuth_badTokenFailsAndCloses(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{opts: Options{Auth: mustAuth(t, testSecret)}})
	c := e.dial(t)
	expect[*wire.AuthRequired](c)
	c.send(&wire.Auth{Token: hsToken(t, "wrong", jwt.MapClaims{"sub": "a", "exp": time.Now().Add(time.Hour).Unix()})})
	// Whatever follows a failed AUTH is not served, not even a good AUTH.
	for _, m := range []wire.Message{&wire.Auth{Token: userToken(t, "a")}, &wire.OpBatch{Ops: []wire.ClientOp{putOp("1", "m", "after-fail", "x", cts("c"))}}} {
		b, _ := wire.Encode(m)
		_ = c.ws.Write(t.Context(), websocket.MessageBinary, b)
	}
	f := expect[*wire.AuthFail](c)
	if f.Error != "Authentication failed" {
		t.Fatalf("AUTH_FAIL = %+v", f)
	}
	if code := c.closed(); code != websocket.StatusPolicyViolation {
		t.Fatalf("close status %v, want %v", code, websocket.StatusPolicyViolation)
	}
	if _, _, ok := e.getLWW("m", "after-fail"); ok {
		t.Fatal("a write sent after AUTH_FAIL was applied")
	}
}

func TestAuth_timeoutCloses(t *testing.T) {
	t.Parallel()
	// Long enough for a client that authenticates at once to do so on a
	// loaded machine.
	const timeout = 2 * time.Second
	e := newEnv(t, envConfig{opts: Options{Auth: mustAuth(t, testSecret), AuthTimeout: timeout}})

	// An authenticated connection outlives the timeout: c2 authenticates
	// first (AUTH is handled whenever it arrives) and is still served once
	// the silent connection below, opened after it, was closed.
	token := userToken(t, "bob")
	c2 := e.dial(t)
	c2.send(&wire.Auth{Token: token})
	expect[*wire.AuthRequired](c2)
	expect[*wire.AuthAck](c2)

	start := time.Now()
	c := e.dial(t)
	expect[*wire.AuthRequired](c)
	c.send(&wire.Ping{Timestamp: 1}) // not AUTH: does not count
	if code := c.closed(); code != websocket.StatusPolicyViolation {
		t.Fatalf("close status %v", code)
	}
	if d := time.Since(start); d < timeout {
		t.Fatalf("closed after %s, before the auth timeout", d)
	}
	c2.ping()
}

func TestAuth_RS256Handshake(t *testing.T) {
	t.Parallel()
	key, pemText := rsaKeyPEM(t)
	e := newEnv(t, envConfig{opts: Options{Auth: mustAuth(t, pemText)}})
	token, err := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"sub": "dave", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	c := e.dial(t)
	expect[*wire.AuthRequired](c)
	c.send(&wire.Auth{Token: token})
	if ack := expect[*wire.AuthAck](c); ack.UserID != "dave" {
		t.Fatalf("AUTH_ACK = %+v", ack)
	}
}

func TestAuth_deviceIdentity(t *testing.T) {
	t.Parallel()
	t.Run("no auth: DEVICE_HELLO", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envConfig{})
		c := e.dial(t)
		c.send(&wire.DeviceHello{})
		a := expect[*wire.DeviceAck](c) // no AUTH_REQUIRED first
		if a.DeviceID == "" || !strings.HasPrefix(a.DeviceToken, a.DeviceID+".") {
			t.Fatalf("DEVICE_ACK = %+v", a)
		}
		// A second connection presenting the token keeps the id, no new token.
		c2 := e.dial(t)
		c2.send(&wire.DeviceHello{DeviceToken: a.DeviceToken})
		if b := expect[*wire.DeviceAck](c2); b.DeviceID != a.DeviceID || b.DeviceToken != "" {
			t.Fatalf("re-presented token: DEVICE_ACK = %+v, want id %s and no token", b, a.DeviceID)
		}
		// A forged secret gets a new identity.
		c3 := e.dial(t)
		forged := a.DeviceID + "." + strings.Repeat("0", 64)
		c3.send(&wire.DeviceHello{DeviceToken: forged})
		if b := expect[*wire.DeviceAck](c3); b.DeviceID == a.DeviceID || b.DeviceToken == "" {
			t.Fatalf("forged token: DEVICE_ACK = %+v", b)
		}
		// AUTH on a server without auth is acknowledged, not ignored.
		c4 := e.dial(t)
		c4.send(&wire.Auth{Token: "anything", DeviceToken: a.DeviceToken})
		if b := expect[*wire.AuthAck](c4); b.DeviceID != a.DeviceID {
			t.Fatalf("AUTH_ACK = %+v", b)
		}
		// The credentials map is the server's own.
		c4.send(&wire.SyncInit{MapName: DeviceMap})
		if m := expect[*wire.ErrorMessage](c4); m.Code != 403 {
			t.Fatalf("SYNC_INIT of the device map: %+v", m)
		}
	})
	t.Run("auth: token bound to the user", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envConfig{opts: Options{Auth: mustAuth(t, testSecret)}})
		c := e.dial(t)
		expect[*wire.AuthRequired](c)
		c.send(&wire.DeviceHello{}) // before AUTH: dropped
		c.send(&wire.Auth{Token: userToken(t, "alice")})
		a := expect[*wire.AuthAck](c)
		c.send(&wire.DeviceHello{})
		if b := expect[*wire.DeviceAck](c); b.DeviceID != a.DeviceID || b.DeviceToken != "" {
			t.Fatalf("DEVICE_ACK after AUTH = %+v", b)
		}
		c2 := e.dial(t)
		expect[*wire.AuthRequired](c2)
		c2.send(&wire.Auth{Token: userToken(t, "alice"), DeviceToken: a.DeviceToken})
		if b := expect[*wire.AuthAck](c2); b.DeviceID != a.DeviceID || b.DeviceToken != "" {
			t.Fatalf("same user: AUTH_ACK = %+v", b)
		}
		c3 := e.dial(t)
		expect[*wire.AuthRequired](c3)
		c3.send(&wire.Auth{Token: userToken(t, "mallory"), DeviceToken: a.DeviceToken})
		if b := expect[*wire.AuthAck](c3); b.DeviceID == a.DeviceID {
			t.Fatalf("another user took over the device: %+v", b)
		}
	})
}

// WithClaims requires iss and aud when set (TOPGUN_JWT_ISSUER,
// TOPGUN_JWT_AUDIENCE): a token the same key signed for another audience
// or issuer is refused.
func TestAuth_WithClaims(t *testing.T) {
	t.Parallel()
	a := mustAuth(t, testSecret).WithClaims("https://id.example", "topgun")
	exp := time.Now().Add(time.Hour).Unix()
	cases := []struct {
		name   string
		claims jwt.MapClaims
		ok     bool
	}{
		{"both match", jwt.MapClaims{"sub": "u", "exp": exp, "iss": "https://id.example", "aud": "topgun"}, true},
		{"audience among several", jwt.MapClaims{"sub": "u", "exp": exp, "iss": "https://id.example", "aud": []string{"other", "topgun"}}, true},
		{"other audience", jwt.MapClaims{"sub": "u", "exp": exp, "iss": "https://id.example", "aud": "billing"}, false},
		{"no audience", jwt.MapClaims{"sub": "u", "exp": exp, "iss": "https://id.example"}, false},
		{"other issuer", jwt.MapClaims{"sub": "u", "exp": exp, "iss": "https://evil.example", "aud": "topgun"}, false},
		{"no issuer", jwt.MapClaims{"sub": "u", "exp": exp, "aud": "topgun"}, false},
	}
	for _, c := range cases {
		_, err := a.Verify(hsToken(t, testSecret, c.claims))
		if (err == nil) != c.ok {
			t.Errorf("%s: Verify = %v, want ok %v", c.name, err, c.ok)
		}
	}
	// Unset, neither is checked (TopGun's default).
	if _, err := mustAuth(t, testSecret).WithClaims("", "").Verify(hsToken(t, testSecret, jwt.MapClaims{"sub": "u", "exp": exp, "aud": "billing"})); err != nil {
		t.Errorf("without claims to check: %v", err)
	}
}

// An RSA public key Go's crypto/rsa refuses to verify with (under 1024
// bits) must be refused when JWT_SECRET is read, with the reason, rather
// than accepted so that the server starts and then fails every client's
// token.
func TestNewAuth_smallRSAKeyRefused(t *testing.T) {
	t.Parallel()
	// A 512-bit RSA public key (openssl genrsa 512; openssl rsa -pubout).
	const pem512 = "-----BEGIN PUBLIC KEY-----\\n" +
		"MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBALWTKsqlr5fhuqRNJGRnx0nkfPPAw6IT\\n" +
		"wfWLmFtKr34Cm1ziEEHsOJfki70WIhnsIuHKGMffIDsrA5HCvtyVxs8CAwEAAQ==\\n" +
		"-----END PUBLIC KEY-----"
	a, err := NewAuth(pem512)
	if err == nil {
		t.Fatalf("NewAuth accepted a 512-bit RSA key (algorithm %s); every RS256 token would then fail", a.Algorithm())
	}
	if !strings.HasPrefix(err.Error(), "protocol: ") || !strings.Contains(err.Error(), "512") {
		t.Errorf("error = %q, want a protocol error naming the key size", err)
	}
}

// Before AUTH_ACK only AUTH is served, so a frame of any other type must
// be dropped without being decoded: decoding builds the frame's values,
// which take many times the frame's size (about 80 times for an array of
// nils), and an unauthenticated client could otherwise make the server
// hold that much per connection, frame after frame.
func TestAuth_frameBeforeAuthNotDecoded(t *testing.T) {
	e := newEnv(t, envConfig{opts: Options{Auth: mustAuth(t, testSecret)}})
	c := e.srv.newConn(nil, "test")
	defer c.abort()
	frame, err := msgpack.Marshal(map[string]any{"type": "OP_BATCH", "payload": map[string]any{"ops": []any{
		map[string]any{"id": "1", "mapName": "m", "key": "k", "record": map[string]any{
			"value":     make([]any, DefaultMaxMessageBytes-256),
			"timestamp": map[string]any{"millis": 1, "counter": 0, "nodeId": "n"},
		}},
	}}})
	if err != nil || len(frame) > DefaultMaxMessageBytes {
		t.Fatalf("frame of %d bytes: %v", len(frame), err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c.handleFrame(frame, 0)
	runtime.ReadMemStats(&after)
	// Scanning the frame for its type allocates next to nothing; decoding
	// it allocated over 150 MiB.
	if got := after.TotalAlloc - before.TotalAlloc; got > 16<<20 {
		t.Fatalf("an unauthenticated %d-byte OP_BATCH made the server allocate %d MiB", len(frame), got>>20)
	}
	if c.authed.Load() {
		t.Fatal("the connection is authenticated")
	}
}

// TestAuth_largeFramesBeforeAuthNotBuffered: before AUTH_ACK, a frame
// larger than any AUTH is skipped as it arrives, not read into memory (up
// to MaxMessageBytes each, per connection, by anyone who can connect).
func TestAuth_largeFramesBeforeAuthNotBuffered(t *testing.T) {
	e := newEnv(t, envConfig{opts: Options{Auth: mustAuth(t, testSecret)}})
	c := e.dial(t)
	expect[*wire.AuthRequired](c)
	frame := make([]byte, DefaultMaxMessageBytes)
	const frames = 16
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range frames {
		c.sendRaw(frame)
	}
	c.send(&wire.Auth{Token: userToken(t, "alice")})
	expect[*wire.AuthAck](c)
	runtime.ReadMemStats(&after)
	// Buffering them allocated at least their size, 32 MiB.
	if got := after.TotalAlloc - before.TotalAlloc; got > 8<<20 {
		t.Fatalf("%d unauthenticated frames of %d bytes made the process allocate %d MiB", frames, len(frame), got>>20)
	}
	c.ping() // the connection serves on
}

// A public key that NewAuth does not see as a PEM block at the start of
// JWT_SECRET (quoted, as a docker --env-file keeps quotes; after other
// text; bare base64, as identity providers such as Keycloak publish it)
// must not become an HS256 secret: anyone holding the public key, which is
// public, could then sign tokens the server accepts.
func TestNewAuth_publicKeyNotTakenForSecret(t *testing.T) {
	t.Parallel()
	key, pemText := rsaKeyPEM(t)
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour).Unix()
	jwk := `{"kty":"RSA","use":"sig","alg":"RS256","kid":"k1","n":"` +
		base64.RawURLEncoding.EncodeToString(key.PublicKey.N.Bytes()) + `","e":"AQAB"}`
	for _, tc := range []struct{ name, secret string }{
		{"double-quoted pem", `"` + pemText + `"`},
		{"single-quoted pem", `'` + pemText + `'`},
		{"pem after text", `public key:\n` + pemText},
		{"bare base64 pkix", base64.StdEncoding.EncodeToString(der)},
		{"bare base64 pkcs1", base64.StdEncoding.EncodeToString(x509.MarshalPKCS1PublicKey(&key.PublicKey))},
		// As identity providers publish keys at their JWKS endpoint.
		{"jwk", jwk},
		{"jwk set", `{"keys":[` + jwk + `]}`},
		{"single-quoted jwk", `'` + jwk + `'`},
		// A JSON string holding the key, as a JSON or YAML config quotes
		// it, and a bare array of keys.
		{"jwk as a json string", strconv.Quote(jwk)},
		{"jwk array", `[` + jwk + `]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := NewAuth(tc.secret)
			if err == nil {
				forged := hsToken(t, strings.ReplaceAll(tc.secret, `\n`, "\n"), jwt.MapClaims{"sub": "mallory", "exp": exp})
				_, verr := a.Verify(forged)
				t.Fatalf("NewAuth took a public key for an %s secret (a token signed with the public key verifies: %v)", a.Algorithm(), verr == nil)
			}
			if !strings.HasPrefix(err.Error(), "protocol: ") {
				t.Errorf("error = %q, want a protocol error", err)
			}
		})
	}
	// Secrets made as TopGun's docs suggest (openssl rand -base64 32), and
	// a symmetric JSON Web Key (a secret itself), stay HS256 secrets.
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{base64.StdEncoding.EncodeToString(secret), testSecret,
		`{"kty":"oct","k":"` + base64.RawURLEncoding.EncodeToString(secret) + `"}`} {
		if a, err := NewAuth(s); err != nil || a.Algorithm() != "HS256" {
			t.Fatalf("NewAuth(%q) = %v, %v; want an HS256 verifier", s, a, err)
		}
	}
}

// Claims are read by their exact names: a "Sub" or "ROLES" claim (a custom
// claim an identity provider may let its users set) after the real one
// must not choose the principal or its roles.
func TestAuth_Verify_claimNamesExact(t *testing.T) {
	t.Parallel()
	a := mustAuth(t, testSecret)
	exp := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	b64 := base64.RawURLEncoding
	token := func(t *testing.T, claims string) string {
		signing := b64.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + b64.EncodeToString([]byte(claims))
		sig, err := jwt.SigningMethodHS256.Sign(signing, []byte(testSecret))
		if err != nil {
			t.Fatal(err)
		}
		return signing + "." + b64.EncodeToString(sig)
	}
	for _, tc := range []struct {
		name, claims string
	}{
		{"sub", `{"sub":"alice","exp":` + exp + `,"Sub":"bob"}`},
		{"roles", `{"sub":"alice","roles":["reader"],"exp":` + exp + `,"ROLES":["admin"]}`},
		{"foldedRune", `{"sub":"alice","exp":` + exp + `,"ſub":"bob"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := a.Verify(token(t, tc.claims))
			if err != nil {
				t.Fatal(err)
			}
			if p.UserID != "alice" || slices.Contains(p.Roles, "admin") {
				t.Fatalf("claims %s: principal %+v, want alice without admin", tc.claims, p)
			}
		})
	}
	t.Run("twice", func(t *testing.T) {
		claims := `{"sub":"alice","exp":` + exp + `,"sub":"bob"}`
		if p, err := a.Verify(token(t, claims)); !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), `claim "sub" given twice`) {
			t.Fatalf("claims %s: %+v, %v; want ErrAuth naming the claim given twice", claims, p, err)
		}
	})
	t.Run("stringDate", func(t *testing.T) {
		claims := `{"sub":"alice","exp":"` + exp + `"}`
		if p, err := a.Verify(token(t, claims)); !errors.Is(err, ErrAuth) {
			t.Fatalf("claims %s: %+v, %v; want ErrAuth (exp must be a number)", claims, p, err)
		}
	})
	t.Run("issuer", func(t *testing.T) {
		claims := `{"sub":"alice","exp":` + exp + `,"iss":"other","ISS":"mine"}`
		if p, err := a.WithClaims("mine", "").Verify(token(t, claims)); !errors.Is(err, ErrAuth) {
			t.Fatalf("claims %s with issuer mine: %+v, %v; want ErrAuth", claims, p, err)
		}
	})
}
