package host

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name, in string
		want     map[string]string
		wantErr  string
	}{
		{"Empty", "", map[string]string{}, ""},
		{"Strings", `{"sync":"always","dir":"a,b=c"}`, map[string]string{"sync": "always", "dir": "a,b=c"}, ""},
		{"NumbersAndBools", `{"mb":64,"ratio":0.5,"on":true}`, map[string]string{"mb": "64", "ratio": "0.5", "on": "true"}, ""},
		{"NotObject", `a=b,c=d`, nil, "not a JSON object"},
		{"Nested", `{"a":{"b":1}}`, nil, `key "a"`},
		{"Null", `null`, nil, "null"},
		// null would decode as "": a plugin could take it for a setting.
		{"NullValue", `{"sync":null}`, nil, `key "sync" has value null`},
		// Decoded as the last value, the first would be dropped unsaid.
		{"RepeatedKey", `{"sync":"always","mb":64,"sync":"never"}`, nil, `key "sync" is given more than once`},
		{"RepeatedKeyEscaped", `{"a":1,"\u0061":2}`, nil, `key "a" is given more than once`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseConfig(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseConfig(%q) = %v, %v; want an error about %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ParseConfig(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestOptionsFromEnv(t *testing.T) {
	env := map[string]string{
		"TOPGUN_PLUGIN_MEMORY_MB":    "64",
		"TOPGUN_PLUGIN_CALL_TIMEOUT": "1500ms",
		"TOPGUN_PLUGIN_CONFIG":       `{"k":"v"}`,
		"TOPGUN_PLUGIN_TRUST":        "trusted",
		"TOPGUN_PLUGIN_DATA_DIR":     t.TempDir(),

		"TOPGUN_PLUGIN_BREAKER_FAILURES":    "-1",
		"TOPGUN_PLUGIN_BREAKER_WINDOW":      "10s",
		"TOPGUN_PLUGIN_BREAKER_BACKOFF":     "2s",
		"TOPGUN_PLUGIN_BREAKER_MAX_BACKOFF": "5m",
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	o, err := OptionsFromEnv(lookup)
	if err != nil {
		t.Fatal(err)
	}
	if o.MemoryLimitMB != 64 || o.CallTimeout != 1500*time.Millisecond || o.Config["k"] != "v" || o.Trust != TrustTrusted {
		t.Errorf("options = %+v", o)
	}
	if o.BreakerFailures != -1 || o.BreakerWindow != 10*time.Second || o.BreakerBackoff != 2*time.Second || o.BreakerMaxBackoff != 5*time.Minute {
		t.Errorf("breaker options = %d %s %s %s", o.BreakerFailures, o.BreakerWindow, o.BreakerBackoff, o.BreakerMaxBackoff)
	}

	// Every problem is reported at once.
	env = map[string]string{
		"TOPGUN_PLUGIN_MEMORY_MB":    "lots",
		"TOPGUN_PLUGIN_CALL_TIMEOUT": "soon",
		"TOPGUN_PLUGIN_CONFIG":       "a=b",
	}
	_, err = OptionsFromEnv(lookup)
	for _, name := range []string{"TOPGUN_PLUGIN_MEMORY_MB", "TOPGUN_PLUGIN_CALL_TIMEOUT", "TOPGUN_PLUGIN_CONFIG"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("error %v does not name %s", err, name)
		}
	}

	// A setting that does not parse does not hide another one's range
	// problem.
	env = map[string]string{
		"TOPGUN_PLUGIN_MEMORY_MB": "lots",
		"TOPGUN_PLUGIN_POOL_SIZE": "1025",
	}
	_, err = OptionsFromEnv(lookup)
	for _, name := range []string{"TOPGUN_PLUGIN_MEMORY_MB", "TOPGUN_PLUGIN_POOL_SIZE"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("error %v does not name %s", err, name)
		}
	}

	// Zero is the default only when unset: written, it is refused (a
	// breaker of 0 failures reads as "no breaker", which is -1).
	zeros := []string{"TOPGUN_PLUGIN_MEMORY_MB", "TOPGUN_PLUGIN_CALL_TIMEOUT", "TOPGUN_PLUGIN_POOL_SIZE",
		"TOPGUN_PLUGIN_BREAKER_FAILURES", "TOPGUN_PLUGIN_BREAKER_WINDOW", "TOPGUN_PLUGIN_MAX_REQUEST_BYTES"}
	env = map[string]string{}
	for _, name := range zeros {
		env[name] = "0"
	}
	env["TOPGUN_PLUGIN_CALL_TIMEOUT"], env["TOPGUN_PLUGIN_BREAKER_WINDOW"] = "0s", "0s"
	_, err = OptionsFromEnv(lookup)
	for _, name := range zeros {
		if err == nil || !strings.Contains(err.Error(), name+"=0 is out of range") {
			t.Errorf("error %v does not refuse %s=0", err, name)
		}
	}
}

// Every setting Validate names goes through SettingName, and without it
// (or where it returns "") the variable's name is kept.
func TestOptions_Validate_settingName(t *testing.T) {
	o := &Options{Config: map[string]string{"topgun.x": "1"}, DataDir: "/nonexistent/dir", SHA256: "xyz",
		MemoryLimitMB: -1, CallTimeout: -1, MaxRequestBytes: 10, MaxResponseBytes: 10, PoolSize: -1,
		DataMaxMB: 1 << 31, DataMaxFiles: -1, Trust: "yolo", BreakerFailures: 2000, BreakerWindow: -1}
	plain := o.Validate().Error()
	o.SettingName = func(env string) string { return "«" + env + "»" }
	named := o.Validate().Error()
	if got := strings.NewReplacer("«", "", "»", "").Replace(named); got != plain {
		t.Fatalf("with SettingName:\n%s\nwithout:\n%s", named, plain)
	}
	if n := strings.Count(named, "«TOPGUN_PLUGIN_"); n != strings.Count(plain, "TOPGUN_PLUGIN_") || n < 16 {
		t.Fatalf("%d of %d names went through SettingName:\n%s", n, strings.Count(plain, "TOPGUN_PLUGIN_"), named)
	}
	o.SettingName = func(string) string { return "" }
	if got := o.Validate().Error(); got != plain {
		t.Fatalf("SettingName returning \"\": %s, want %s", got, plain)
	}
}

func TestOptions_Validate(t *testing.T) {
	if err := (*Options)(nil).Validate(); err != nil {
		t.Errorf("nil options: %v", err)
	}
	o := &Options{Config: map[string]string{"topgun.data_dir": "/etc"}, DataDir: "/nonexistent/dir", SHA256: "xyz", MaxRequestBytes: 10, PoolSize: -1}
	err := o.Validate()
	for _, name := range []string{"reserved", "TOPGUN_PLUGIN_DATA_DIR", "TOPGUN_PLUGIN_SHA256", "TOPGUN_PLUGIN_MAX_REQUEST_BYTES", "TOPGUN_PLUGIN_POOL_SIZE"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("Validate error %v does not mention %s", err, name)
		}
	}
}
