package protocol

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzAuthVerify verifies tokens signed with the server's secret over
// fuzzed header and claims bytes, and fuzzed token strings. Verify must
// not panic, must fail with ErrAuth, and must accept a token only when its
// header names HS256 and its claims, read by their exact names as TopGun
// reads them, hold a number exp and a non-empty string sub; the principal
// is then that sub and those roles.
func FuzzAuthVerify(f *testing.F) {
	a, err := NewAuth(testSecret)
	if err != nil {
		f.Fatal(err)
	}
	exp := time.Now().Add(24 * time.Hour).Unix()
	for _, c := range []string{
		`{"sub":"alice","exp":` + jsonInt(exp) + `}`,
		`{"sub":"alice","roles":["admin"],"exp":` + jsonInt(exp) + `}`,
		`{"sub":"alice","Sub":"bob","exp":` + jsonInt(exp) + `}`,
		`{"sub":"","exp":` + jsonInt(exp) + `}`,
		`{"sub":"a","exp":"soon"}`,
		`{"sub":"a","exp":"` + jsonInt(exp) + `"}`,
		`{"sub":"a","exp":` + jsonInt(exp) + `,"roles":[1]}`,
	} {
		f.Add([]byte(`{"alg":"HS256","typ":"JWT"}`), []byte(c), "")
	}
	f.Add([]byte(`{"alg":"none"}`), []byte(`{}`), "a.b.c")
	f.Add([]byte(``), []byte(``), "eyJ.eyJ.")
	b64 := base64.RawURLEncoding
	f.Fuzz(func(t *testing.T, header, claims []byte, raw string) {
		if p, err := a.Verify(raw); err != nil && !errors.Is(err, ErrAuth) {
			t.Fatalf("Verify(%q) = %+v, %v; want ErrAuth", raw, p, err)
		}
		signing := b64.EncodeToString(header) + "." + b64.EncodeToString(claims)
		sig, err := jwt.SigningMethodHS256.Sign(signing, []byte(testSecret))
		if err != nil {
			t.Fatal(err)
		}
		p, err := a.Verify(signing + "." + b64.EncodeToString(sig))
		if err != nil {
			if !errors.Is(err, ErrAuth) {
				t.Fatalf("Verify = %v; want ErrAuth", err)
			}
			return
		}
		var h struct {
			Alg string `json:"alg"`
		}
		var m map[string]json.RawMessage
		if json.Unmarshal(header, &h) != nil || json.Unmarshal(claims, &m) != nil {
			t.Fatalf("accepted a token whose header or claims are not JSON objects: %q %q", header, claims)
		}
		var hm map[string]json.RawMessage
		_ = json.Unmarshal(header, &hm)
		var alg string
		if json.Unmarshal(hm["alg"], &alg) != nil || alg != "HS256" {
			t.Fatalf("accepted header %q (alg %q)", header, h.Alg)
		}
		var sub string
		var expNum json.Number
		if json.Unmarshal(m["sub"], &sub) != nil || sub == "" || json.Unmarshal(m["exp"], &expNum) != nil ||
			bytes.HasPrefix(bytes.TrimSpace(m["exp"]), []byte(`"`)) {
			t.Fatalf("accepted claims %q without a string sub and a number exp", claims)
		}
		if p.UserID != sub {
			t.Fatalf("claims %q: principal %q, want the sub claim %q", claims, p.UserID, sub)
		}
		var roles []string
		if r, ok := m["roles"]; ok {
			_ = json.Unmarshal(r, &roles)
		}
		if !slices.Equal(p.Roles, roles) {
			t.Fatalf("claims %q: roles %q, want the roles claim %q", claims, p.Roles, roles)
		}
	})
}

func jsonInt(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
