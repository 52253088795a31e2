package host

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzParseConfig feeds arbitrary TOPGUN_PLUGIN_CONFIG values to
// ParseConfig. It must not panic and its errors name the setting; a value
// it accepts is a JSON object whose every key, each given once, holds a
// string, a number or a boolean, and the result holds exactly those keys
// with those values as text.
func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{
		``, `{}`, `null`, `[]`, `{"a":"b"}`, `{"mb":64,"ratio":0.5,"on":true}`,
		`{"a":1,"\u0061":2}`, `{"a":null}`, `{"a":{"b":1}}`, `{"a":"\ud800"}`,
		`{"a":1} {"a":2}`, ` {"k":-0e+1} `, `{"\xff":1,"\xfe":2}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseConfig(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "host: TOPGUN_PLUGIN_CONFIG ") {
				t.Fatalf("ParseConfig(%q): error %q does not name the setting", s, err)
			}
			return
		}
		if strings.TrimSpace(s) == "" {
			if len(got) != 0 {
				t.Fatalf("ParseConfig(%q) = %v, want empty", s, got)
			}
			return
		}
		dec := json.NewDecoder(strings.NewReader(s))
		dec.UseNumber()
		if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
			t.Fatalf("ParseConfig(%q) = %v, accepted a value that is not an object", s, got)
		}
		seen := map[string]bool{}
		for dec.More() {
			tok, err := dec.Token()
			k, ok := tok.(string)
			if err != nil || !ok {
				t.Fatalf("ParseConfig(%q) = %v, accepted an object that does not decode (%v)", s, got, err)
			}
			if seen[k] {
				t.Fatalf("ParseConfig(%q) = %v, accepted key %q twice", s, got, k)
			}
			seen[k] = true
			var v any
			if err := dec.Decode(&v); err != nil {
				t.Fatalf("ParseConfig(%q): value of %q does not decode: %v", s, k, err)
			}
			var want string
			switch v := v.(type) {
			case string:
				want = v
			case json.Number:
				want = v.String()
			case bool:
				want = map[bool]string{true: "true", false: "false"}[v]
			default:
				t.Fatalf("ParseConfig(%q) = %v, accepted key %q of value %v", s, got, k, v)
			}
			if g, ok := got[k]; !ok || g != want {
				t.Fatalf("ParseConfig(%q)[%q] = %q (present %v), want %q", s, k, g, ok, want)
			}
		}
		if len(got) != len(seen) {
			t.Fatalf("ParseConfig(%q) = %v, want the %d keys given", s, got, len(seen))
		}
	})
}
