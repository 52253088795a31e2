package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/topgun-go/topgun/host"
	"net"
	"os"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/server/protocol"
)

// withNoAuth returns m plus TOPGUN_NO_AUTH=1 unless m sets TOPGUN_NO_AUTH or
// JWT_SECRET, so tests of other settings start.
func withNoAuth(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	_, secret := m["JWT_SECRET"]
	if _, set := m["TOPGUN_NO_AUTH"]; !set && !secret {
		out["TOPGUN_NO_AUTH"] = "1"
	}
	return out
}

// withProtocolDefaults returns c with the protocol settings at their
// defaults (and authentication off, as withNoAuth sets it).
func withProtocolDefaults(c config) config {
	c.noAuth = true
	c.maxMessageBytes = 2 << 20
	c.maxBatchOps = 10000
	c.maxOutbound = 64 << 20
	c.maxConnections = 10000
	c.maxQueryResults = 1000000
	c.maxDrift = time.Minute
	c.cacheMB = 64
	c.tombstoneTTL = 168 * time.Hour
	c.commitTimeout = 30 * time.Second
	return c
}

// envOf returns a lookupEnv over m.
func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func TestParseConfig_sources(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want config
	}{
		{
			name: "defaults",
			// Without authentication (withNoAuth), loopback, as TopGun.
			want: config{storageBackend: "redb", redbPath: "./topgun.redb", port: 8080, bindAddr: "127.0.0.1", logLevel: hclog.Info},
		},
		{
			name: "environment",
			env: map[string]string{
				"STORAGE_BACKEND": "postgres", "DATABASE_URL": "postgres://u@h/db", "TOPGUN_REDB_PATH": "/d/x.redb",
				"PORT": "0", "TOPGUN_BIND_ADDR": "127.0.0.1", "TOPGUN_LOG_LEVEL": "DEBUG", "TOPGUN_LOG_FORMAT": "json",
			},
			want: config{storageBackend: "postgres", databaseURL: "postgres://u@h/db", redbPath: "/d/x.redb", port: 0, bindAddr: "127.0.0.1", logLevel: hclog.Debug, logJSON: true},
		},
		{
			name: "flags_override_environment",
			args: []string{"--port=9000", "-storage-backend", "null", "--log-format=text"},
			env:  map[string]string{"PORT": "abc", "STORAGE_BACKEND": "postgres", "TOPGUN_LOG_FORMAT": "xml"},
			want: config{storageBackend: "null", redbPath: "./topgun.redb", port: 9000, bindAddr: "127.0.0.1", logLevel: hclog.Info},
		},
		{
			name: "empty_environment_means_default",
			env:  map[string]string{"PORT": "", "STORAGE_BACKEND": "", "TOPGUN_LOG_LEVEL": ""},
			want: config{storageBackend: "redb", redbPath: "./topgun.redb", port: 8080, bindAddr: "127.0.0.1", logLevel: hclog.Info},
		},
		{
			name: "protocol_settings",
			env: map[string]string{
				"STORAGE_BACKEND": "null", "JWT_SECRET": "s3cret", "TOPGUN_MAX_MESSAGE_BYTES": "65536", "TOPGUN_MAX_BATCH_OPS": "500",
				"TOPGUN_MAX_OUTBOUND_BYTES": "1048576", "TOPGUN_MAX_CONNECTIONS": "50",
				"TOPGUN_MAX_QUERY_RESULTS": "5000",
				"TOPGUN_NODE_ID":           "node-7", "TOPGUN_MAX_DRIFT_MS": "1500", "TOPGUN_CACHE_MB": "0", "TOPGUN_TOMBSTONE_TTL": "off",
				"TOPGUN_COMMIT_TIMEOUT": "5s", "TOPGUN_MAX_INDEX_MB": "512",
				"TOPGUN_JWT_ISSUER": "https://id.example", "TOPGUN_JWT_AUDIENCE": "topgun", "TOPGUN_ALLOWED_ORIGINS": " app.example.com, localhost:* ,",
			},
			// With authentication the default bind is every address.
			want: config{storageBackend: "null", redbPath: "./topgun.redb", port: 8080, bindAddr: "0.0.0.0", logLevel: hclog.Info,
				jwtSecret: "s3cret", jwtIssuer: "https://id.example", jwtAudience: "topgun", allowedOrigins: []string{"app.example.com", "localhost:*"}, maxMessageBytes: 65536, maxBatchOps: 500, maxOutbound: 1 << 20, maxConnections: 50, maxQueryResults: 5000, nodeID: "node-7", maxDrift: 1500 * time.Millisecond,
				cacheMB: 0, maxIndexMB: 512, tombstoneTTL: -1, commitTimeout: 5 * time.Second},
		},
		{
			name: "no_auth_values",
			env:  map[string]string{"TOPGUN_NO_AUTH": "TRUE", "JWT_SECRET": "ignored", "STORAGE_BACKEND": "null"},
			want: withProtocolDefaults(config{storageBackend: "null", redbPath: "./topgun.redb", port: 8080, bindAddr: "127.0.0.1", logLevel: hclog.Info, jwtSecret: "ignored"}),
		},
		{
			// --no-auth is a switch: bare, it means true and does not take
			// the next argument as its value.
			name: "no_auth_switch",
			args: []string{"--no-auth", "--storage-backend=null"},
			env:  map[string]string{"JWT_SECRET": "s3cret"},
			want: withProtocolDefaults(config{storageBackend: "null", redbPath: "./topgun.redb", port: 8080, bindAddr: "127.0.0.1", logLevel: hclog.Info, jwtSecret: "s3cret"}),
		},
		{
			name: "no_auth_switch_off",
			args: []string{"--storage-backend=null", "--no-auth=false"},
			env:  map[string]string{"JWT_SECRET": "s3cret", "TOPGUN_NO_AUTH": "1"},
			want: func() config {
				c := withProtocolDefaults(config{storageBackend: "null", redbPath: "./topgun.redb", port: 8080, bindAddr: "0.0.0.0", logLevel: hclog.Info, jwtSecret: "s3cret"})
				c.noAuth = false
				return c
			}(),
		},
		{
			name: "ipv6_bind_address",
			env:  map[string]string{"TOPGUN_BIND_ADDR": "::1", "STORAGE_BACKEND": "null"},
			want: config{storageBackend: "null", redbPath: "./topgun.redb", port: 8080, bindAddr: "::1", logLevel: hclog.Info},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseConfig(tt.args, envOf(withNoAuth(tt.env)), &bytes.Buffer{})
			if err != nil {
				t.Fatalf("parseConfig = %v", err)
			}
			if tt.want.maxMessageBytes == 0 {
				tt.want = withProtocolDefaults(tt.want)
			}
			if got.plugin == nil || got.plugin.MemoryLimitMB != host.DefaultMemoryLimitMB || got.plugin.Trust != host.TrustSandboxed {
				t.Errorf("plugin options = %+v, want the defaults", got.plugin)
			}
			got.pluginEnv, got.plugin = nil, nil // checked by TestParseConfig_plugin
			got.given = nil                      // checked by TestRun_warnsAboutIgnoredSettings
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("parseConfig = %+v, want %+v", *got, tt.want)
			}
		})
	}
}

func TestParseConfig_plugin(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	got, err := parseConfig([]string{"--plugin-trust=trusted"}, envOf(withNoAuth(map[string]string{
		"TOPGUN_PLUGIN_DATA_DIR": dir, "TOPGUN_PLUGIN_MEMORY_MB": "64", "TOPGUN_PLUGIN_CALL_TIMEOUT": "250ms",
		"TOPGUN_PLUGIN_CONFIG": `{"sync":"always","segment_mb":8}`, "TOPGUN_PLUGIN_SHA256": strings.Repeat("ab", 32),
	})), &bytes.Buffer{})
	if err != nil {
		t.Fatalf("parseConfig = %v", err)
	}
	p := got.storageOptions(nil).Plugin
	if p == nil || p.DataDir != dir || p.MemoryLimitMB != 64 || p.CallTimeout != 250*time.Millisecond ||
		p.Trust != host.TrustTrusted || p.Config["sync"] != "always" || p.Config["segment_mb"] != "8" || p.SHA256 != strings.Repeat("ab", 32) {
		t.Fatalf("plugin options = %+v", p)
	}
}

func TestParseConfig_problems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		env  map[string]string
		auth bool     // leave the authentication settings as env has them
		want []string // each problem must be named
	}{
		{name: "no_auth_setting", auth: true, want: []string{"1 problem", "set JWT_SECRET", "or set TOPGUN_NO_AUTH=1"}},
		{name: "empty_auth_settings", auth: true, env: map[string]string{"JWT_SECRET": "", "TOPGUN_NO_AUTH": ""}, want: []string{"set JWT_SECRET", "TOPGUN_NO_AUTH=1"}},
		{name: "bad_pem", auth: true, env: map[string]string{"JWT_SECRET": "-----BEGIN PUBLIC KEY-----\\nxx\\n-----END PUBLIC KEY-----"}, want: []string{"JWT_SECRET looks like a PEM"}},
		{name: "small_rsa_key", auth: true, env: map[string]string{"JWT_SECRET": "-----BEGIN PUBLIC KEY-----\\nMFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBALWTKsqlr5fhuqRNJGRnx0nkfPPAw6IT\\nwfWLmFtKr34Cm1ziEEHsOJfki70WIhnsIuHKGMffIDsrA5HCvtyVxs8CAwEAAQ==\\n-----END PUBLIC KEY-----"}, want: []string{"JWT_SECRET is a 512-bit RSA public key"}},
		{name: "whitespace_secret", auth: true, env: map[string]string{"JWT_SECRET": " "}, want: []string{"JWT_SECRET holds only whitespace"}},
		{name: "no_auth_not_boolean", env: map[string]string{"TOPGUN_NO_AUTH": "maybe"}, want: []string{`TOPGUN_NO_AUTH="maybe" is not a boolean`}},
		{name: "message_bytes", env: map[string]string{"TOPGUN_MAX_MESSAGE_BYTES": "10"}, want: []string{`TOPGUN_MAX_MESSAGE_BYTES="10" is not a message size`}},
		{name: "batch_ops", env: map[string]string{"TOPGUN_MAX_BATCH_OPS": "0"}, want: []string{`TOPGUN_MAX_BATCH_OPS="0"`}},
		{name: "outbound_bytes", env: map[string]string{"TOPGUN_MAX_OUTBOUND_BYTES": "1000"}, want: []string{`TOPGUN_MAX_OUTBOUND_BYTES="1000" is not a queue size`}},
		{name: "connections", env: map[string]string{"TOPGUN_MAX_CONNECTIONS": "0"}, want: []string{`TOPGUN_MAX_CONNECTIONS="0" is not a connection count`}},
		{name: "query_results", env: map[string]string{"TOPGUN_MAX_QUERY_RESULTS": "-1"}, want: []string{`TOPGUN_MAX_QUERY_RESULTS="-1" is not a record count`}},
		{name: "node_id", env: map[string]string{"TOPGUN_NODE_ID": "a:b"}, want: []string{`TOPGUN_NODE_ID="a:b" is not a usable node id`}},
		{name: "drift", env: map[string]string{"TOPGUN_MAX_DRIFT_MS": "-5"}, want: []string{`TOPGUN_MAX_DRIFT_MS="-5"`}},
		{name: "cache", env: map[string]string{"TOPGUN_CACHE_MB": "lots"}, want: []string{`TOPGUN_CACHE_MB="lots"`}},
		{name: "max_index", env: map[string]string{"TOPGUN_MAX_INDEX_MB": "-1"}, want: []string{`TOPGUN_MAX_INDEX_MB="-1" is not an index size`}},
		{name: "tombstone_ttl", env: map[string]string{"TOPGUN_TOMBSTONE_TTL": "7d"}, want: []string{`TOPGUN_TOMBSTONE_TTL="7d" is not a tombstone lifetime`}},
		{name: "commit_timeout_short", env: map[string]string{"TOPGUN_COMMIT_TIMEOUT": "10ms"}, want: []string{`TOPGUN_COMMIT_TIMEOUT="10ms" is not a commit timeout`}},
		{name: "commit_timeout_long", env: map[string]string{"TOPGUN_COMMIT_TIMEOUT": "2h"}, want: []string{`TOPGUN_COMMIT_TIMEOUT="2h" is not a commit timeout`}},
		{name: "commit_timeout_unit", env: map[string]string{"TOPGUN_COMMIT_TIMEOUT": "30"}, want: []string{`TOPGUN_COMMIT_TIMEOUT="30" is not a commit timeout`}},
		{name: "port_not_a_number", env: map[string]string{"PORT": "abc"}, want: []string{`PORT="abc" is not a port number`}},
		{name: "port_out_of_range", env: map[string]string{"PORT": "70000"}, want: []string{`PORT="70000"`}},
		{name: "port_flag", args: []string{"--port=-1"}, want: []string{`--port="-1"`}},
		{name: "bind_with_port", env: map[string]string{"TOPGUN_BIND_ADDR": "0.0.0.0:80"}, want: []string{`TOPGUN_BIND_ADDR="0.0.0.0:80"`}},
		{name: "log_level", env: map[string]string{"TOPGUN_LOG_LEVEL": "loud"}, want: []string{`TOPGUN_LOG_LEVEL="loud"`}},
		{name: "origin_url", env: map[string]string{"TOPGUN_ALLOWED_ORIGINS": "https://app.example.com"}, want: []string{`TOPGUN_ALLOWED_ORIGINS="https://app.example.com" has "https://app.example.com": give hosts`}},
		{name: "origin_pattern", env: map[string]string{"TOPGUN_ALLOWED_ORIGINS": "app[.example.com"}, want: []string{`is not a valid pattern`}},
		{name: "unknown_backend", env: map[string]string{"STORAGE_BACKEND": "mysql"}, want: []string{"valid: null, postgres, redb, or a path to a .wasm plugin"}},
		{name: "missing_wasm_backend", env: map[string]string{"STORAGE_BACKEND": "./kv.wasm"}, want: []string{"STORAGE_BACKEND=./kv.wasm names a wasm plugin, but"}},
		{name: "plugin_settings", env: map[string]string{"TOPGUN_PLUGIN_MEMORY_MB": "lots", "TOPGUN_PLUGIN_TRUST": "yolo", "TOPGUN_PLUGIN_CONFIG": "a=b"}, want: []string{"TOPGUN_PLUGIN_MEMORY_MB", "TOPGUN_PLUGIN_CONFIG"}},
		{name: "plugin_flags", args: []string{"--plugin-memory-mb=-1", "--plugin-breaker-backoff=0"}, env: map[string]string{"TOPGUN_PLUGIN_BREAKER_MAX_BACKOFF": "soon"}, want: []string{"--plugin-memory-mb -1", "--plugin-breaker-backoff=0", "TOPGUN_PLUGIN_BREAKER_MAX_BACKOFF"}},
		{name: "unknown_flag", args: []string{"--nope"}, want: []string{"-nope"}},
		{name: "positional_argument", args: []string{"serve"}, want: []string{`unexpected argument "serve"`}},
		{
			name: "all_together",
			env:  map[string]string{"PORT": "abc", "TOPGUN_LOG_FORMAT": "xml", "STORAGE_BACKEND": "postgres"},
			want: []string{"3 problems", `PORT="abc"`, `TOPGUN_LOG_FORMAT="xml"`, "STORAGE_BACKEND=postgres requires DATABASE_URL"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := tt.env
			if _, ok := env["TOPGUN_NO_AUTH"]; !ok && !tt.auth {
				env = withNoAuth(env)
			}
			_, err := parseConfig(tt.args, envOf(env), &bytes.Buffer{})
			var ce *configError
			if !errors.As(err, &ce) {
				t.Fatalf("parseConfig = %v, want a *configError", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
		})
	}
}

// TestRun_dataDirHoldingCacheIsAConfigProblem checks that a plugin data
// directory holding the compilation cache, or inside it, is reported with
// the other settings (status 2), as the host would refuse it anyway: found
// at load, it was an exit 1 after the plugin's compile, which had written
// the cache's entries into the plugin's data directory by then.
func TestRun_dataDirHoldingCacheIsAConfigProblem(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	wasm := dir + "/kv.wasm"
	if err := os.WriteFile(wasm, []byte("\x00asm\x01\x00\x00\x00"), 0o600); err != nil {
		t.Fatal(err)
	}
	data := dir + "/data"
	for _, tc := range []struct{ name, data, cache string }{
		{"cache inside data", data, data + "/cache"},
		{"data inside cache", data + "/cache", data},
		{"one directory", data, data},
	} {
		for _, d := range []string{tc.data, tc.cache} {
			if err := os.MkdirAll(d, 0o700); err != nil {
				t.Fatal(err)
			}
		}
		var stdout, stderr bytes.Buffer
		env := withNoAuth(map[string]string{"STORAGE_BACKEND": wasm, "TOPGUN_PLUGIN_DATA_DIR": tc.data, "PORT": "0", "TOPGUN_BIND_ADDR": "127.0.0.1"})
		code := run(context.Background(), []string{"--plugin-cache-dir=" + tc.cache}, envOf(env), &stdout, &stderr)
		if code != exitConfig {
			t.Errorf("%s: exit code = %d, want %d; stderr:\n%s", tc.name, code, exitConfig, &stderr)
			continue
		}
		for _, w := range []string{"TOPGUN_PLUGIN_DATA_DIR", "--plugin-cache-dir", tc.data, tc.cache} {
			if !strings.Contains(stderr.String(), w) {
				t.Errorf("%s: stderr does not name %q:\n%s", tc.name, w, &stderr)
			}
		}
	}
	// A cache not made yet, which the host would make inside the data
	// directory at the plugin's first compile.
	{
		var stderr bytes.Buffer
		env := withNoAuth(map[string]string{"STORAGE_BACKEND": wasm, "TOPGUN_PLUGIN_DATA_DIR": data, "TOPGUN_PLUGIN_CACHE_DIR": data + "/new/cache", "PORT": "0", "TOPGUN_BIND_ADDR": "127.0.0.1"})
		if code := run(context.Background(), nil, envOf(env), &bytes.Buffer{}, &stderr); code != exitConfig {
			t.Errorf("cache to be made inside data: exit code = %d, want %d; stderr:\n%s", code, exitConfig, &stderr)
		}
	}
	// Directories apart pass this check.
	cache := dir + "/cache"
	if err := os.MkdirAll(cache, 0o700); err != nil {
		t.Fatal(err)
	}
	env := withNoAuth(map[string]string{"STORAGE_BACKEND": wasm, "TOPGUN_PLUGIN_DATA_DIR": data, "TOPGUN_PLUGIN_CACHE_DIR": cache})
	if _, err := parseConfig(nil, envOf(env), &bytes.Buffer{}); err != nil {
		t.Errorf("data and cache apart: %v", err)
	}
}

// TestRun_configProblemsTogether checks that one start reports every
// problem, each with its fix, and exits 2 without opening anything.
func TestRun_configProblemsTogether(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	env := map[string]string{"PORT": "abc", "TOPGUN_LOG_FORMAT": "xml", "STORAGE_BACKEND": "postgres"}
	code := run(context.Background(), nil, envOf(env), &stdout, &stderr)
	if code != exitConfig {
		t.Fatalf("exit code = %d, want %d; stderr:\n%s", code, exitConfig, &stderr)
	}
	out := stderr.String()
	for _, w := range []string{
		`PORT="abc" is not a port number: use an integer from 0 to 65535`,
		`TOPGUN_LOG_FORMAT="xml" is not a log format: use text or json`,
		"STORAGE_BACKEND=postgres requires DATABASE_URL (for example postgres://",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("stderr does not say %q:\n%s", w, out)
		}
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout = %q, want nothing", &stdout)
	}
}

func TestRun_help(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"--help", "-h"} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), []string{arg}, envOf(nil), &stdout, &stderr); code != exitOK {
			t.Fatalf("run(%s) = %d, want 0; stderr:\n%s", arg, code, &stderr)
		}
		lines := strings.Split(stdout.String(), "\n")
		for _, s := range settings {
			def := s.def
			if def == "" {
				def = "(none)"
			}
			if !hasLineWith(lines, "--"+s.flag+" ", s.env+" ", def+" ") {
				t.Errorf("%s output has no line with --%s, %s and default %s:\n%s", arg, s.flag, s.env, def, &stdout)
			}
		}
	}
}

// hasLineWith reports whether one of lines contains every part, in order.
func hasLineWith(lines []string, parts ...string) bool {
next:
	for _, l := range lines {
		rest := l
		for _, p := range parts {
			i := strings.Index(rest, p)
			if i < 0 {
				continue next
			}
			rest = rest[i+len(p):]
		}
		return true
	}
	return false
}

// TestREADME_listsEverySetting keeps the README's settings table in step with
// the settings table: one row per setting, with its flag and default.
func TestREADME_listsEverySetting(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatalf("read README.md: %v", err)
	}
	var rows []string
	for _, l := range strings.Split(string(readme), "\n") {
		if strings.HasPrefix(l, "|") {
			rows = append(rows, l)
		}
	}
	for _, s := range settings {
		def := "`" + s.def + "`"
		if s.def == "" {
			def = "(none)"
		}
		if !hasLineWith(rows, "`"+s.env+"`", "`--"+s.flag+"`", def) {
			t.Errorf("README.md has no table row | `%s` | `--%s` | %s |", s.env, s.flag, def)
		}
	}
	// And the other way: every row of the settings table (a variable and
	// a flag) is a setting the server reads, under that flag.
	row := regexp.MustCompile("^\\| `([A-Z0-9_]+)` \\| `--([a-z0-9-]+)` \\|")
	n := 0
	for _, l := range rows {
		m := row.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		n++
		if !slices.ContainsFunc(settings, func(s setting) bool { return s.env == m[1] && s.flag == m[2] }) {
			t.Errorf("README.md documents %s (--%s), which the server does not read:\n%s", m[1], m[2], l)
		}
	}
	if n != len(settings) {
		t.Errorf("README.md's settings table has %d rows, the server %d settings", n, len(settings))
	}
}

// TestRun_badDatabaseURLIsAConfigProblem checks README's promise that every
// configuration problem is reported together at start with exit 2: a
// DATABASE_URL that cannot be parsed is one, found without connecting, and
// its password is never shown.
func TestRun_badDatabaseURLIsAConfigProblem(t *testing.T) {
	t.Parallel()
	const secret = "pw-must-not-leak"
	for _, url := range []string{"postgres://u:" + secret + "@127.0.0.1:notaport/x", "   "} {
		var stdout, stderr bytes.Buffer
		env := withNoAuth(map[string]string{"PORT": "abc", "STORAGE_BACKEND": "postgres", "DATABASE_URL": url})
		code := run(context.Background(), nil, envOf(env), &stdout, &stderr)
		if code != exitConfig {
			t.Errorf("DATABASE_URL %q: exit code = %d, want %d; stderr:\n%s", url, code, exitConfig, &stderr)
			continue
		}
		out := stderr.String()
		for _, w := range []string{"2 problems", `PORT="abc"`, "DATABASE_URL", "database URL"} {
			if !strings.Contains(out, w) {
				t.Errorf("DATABASE_URL %q: stderr does not say %q:\n%s", url, w, out)
			}
		}
		if strings.Contains(out, secret) {
			t.Errorf("the password was printed:\n%s", out)
		}
	}
}

// readmeSettingRows returns the rows of README.md's settings table by
// environment variable.
func readmeSettingRows(t *testing.T) map[string]string {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatalf("read README.md: %v", err)
	}
	rows := map[string]string{}
	for _, l := range strings.Split(string(readme), "\n") {
		if env, _, ok := strings.Cut(strings.TrimPrefix(l, "| `"), "` | `--"); ok && strings.HasPrefix(l, "| `") {
			rows[env] = l
		}
	}
	return rows
}

// TestREADME_statesSettingRanges keeps the README's settings table in step
// with the validation of each setting: every bound an out-of-range value is
// refused with ("from A to B", "use A to B", "at least A") appears in the
// setting's row.
func TestREADME_statesSettingRanges(t *testing.T) {
	t.Parallel()
	rows := readmeSettingRows(t)
	bound := regexp.MustCompile(`(?:from|use) (?:a number of \w+ )?(-?[0-9][0-9a-z]*) (?:\([^)]*\) )?to ([0-9][0-9a-z]*)|at least ([0-9][0-9a-z]*)`)
	for _, s := range settings {
		row, ok := rows[s.env]
		if !ok {
			t.Errorf("README.md has no row for %s", s.env)
			continue
		}
		for _, v := range []string{"-99999999999", "99999999999", "0", "1ns"} {
			_, err := parseConfig([]string{"--" + s.flag + "=" + v, "--no-auth"}, envOf(nil), &bytes.Buffer{})
			var ce *configError
			if !errors.As(err, &ce) {
				continue
			}
			for _, p := range ce.problems {
				if !strings.Contains(p, s.env) && !strings.Contains(p, "--"+s.flag+"=") {
					continue
				}
				for _, m := range bound.FindAllStringSubmatch(p, -1) {
					for _, b := range m[1:] {
						if b != "" && !strings.Contains(row, b) {
							t.Errorf("%s=%s is refused with %q, but README.md's row does not give the bound %s:\n%s", s.env, v, p, b, row)
						}
					}
				}
			}
		}
	}
}

// TestREADME_settingRangesHold checks the settings table the other way
// round from TestREADME_statesSettingRanges: every range a row states
// ("From A to B", "at least A") is the one the server applies, so A and B
// are accepted and the values just outside them refused. An operator
// setting a bound the README gives must not be refused, nor one past it
// taken.
func TestREADME_settingRangesHold(t *testing.T) {
	t.Parallel()
	rows := readmeSettingRows(t)
	// "From 1 to 1024", "from `1s` to `1h`", "From 8454144 (why) to
	// 1073741824", "From 1 to a year (31536000000)"; "at least `1m`".
	fromTo := regexp.MustCompile("[Ff]rom `?([0-9][0-9a-z]*)`? (?:\\([^)]*\\) )?to (?:[a-z ]+\\()?`?([0-9][0-9a-z]*)`?")
	atLeast := regexp.MustCompile("[Aa]t least `([0-9][0-9a-z]*)`")
	// step returns v moved by one unit (1, or 1ns for a duration).
	step := func(v string, by int64) string {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return strconv.FormatInt(n+by, 10)
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("README bound %q is neither an integer nor a duration", v)
		}
		return (d + time.Duration(by)).String()
	}
	accepts := func(s setting, v string) bool {
		_, err := parseConfig([]string{"--" + s.flag + "=" + v, "--no-auth", "--storage-backend=null"}, envOf(nil), &bytes.Buffer{})
		return err == nil
	}
	// refusal is the problem reported for v, "" if none names s.
	refusal := func(s setting, v string) string {
		_, err := parseConfig([]string{"--" + s.flag + "=" + v, "--no-auth", "--storage-backend=null"}, envOf(nil), &bytes.Buffer{})
		var ce *configError
		if errors.As(err, &ce) {
			for _, p := range ce.problems {
				if strings.Contains(p, "--"+s.flag) {
					return p
				}
			}
		}
		return ""
	}
	// An operator whose value is refused must learn what to give instead,
	// however it is wrong: past the range, too large for a number, not a
	// number at all.
	namesRange := func(s setting, bounds []string, vs ...string) {
		for _, v := range vs {
			p := refusal(s, v)
			for _, b := range bounds {
				if p != "" && !strings.Contains(p, b) {
					t.Errorf("%s=%s is refused without the bound %s README.md gives: %s", s.env, v, b, p)
				}
			}
		}
	}
	checked := 0
	for _, s := range settings {
		row := rows[s.env]
		huge := "99999999999999999999"
		if _, err := strconv.ParseInt(s.def, 10, 64); err != nil {
			if _, err := time.ParseDuration(s.def); err == nil {
				huge = "9999999h" // a duration past time.Duration's range
			}
		}
		if m := fromTo.FindStringSubmatch(row); m != nil {
			checked++
			for _, v := range []string{m[1], m[2]} {
				if !accepts(s, v) {
					t.Errorf("%s=%s is refused, but README.md gives the range %s to %s", s.env, v, m[1], m[2])
				}
			}
			for _, v := range []string{step(m[1], -1), step(m[2], 1)} {
				if accepts(s, v) {
					t.Errorf("%s=%s is accepted, but README.md gives the range %s to %s", s.env, v, m[1], m[2])
				}
			}
			namesRange(s, m[1:3], step(m[1], -1), step(m[2], 1), huge, "x")
		} else if m := atLeast.FindStringSubmatch(row); m != nil {
			checked++
			if v := step(m[1], -1); accepts(s, v) {
				t.Errorf("%s=%s is accepted, but README.md says at least %s", s.env, v, m[1])
			}
			namesRange(s, m[1:2], step(m[1], -1), huge, "x")
		}
	}
	if checked < 15 {
		t.Errorf("found a range in %d rows of README.md's settings table; the test no longer reads them", checked)
	}
}

// TestRun_warnsAboutIgnoredSettings checks that a setting the chosen
// configuration does not use is not ignored silently: DATABASE_URL without
// STORAGE_BACKEND=postgres (the data then goes to ./topgun.redb, not the
// database), and the JWT claim checks without authentication.
func TestRun_warnsAboutIgnoredSettings(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // stop right after start
	var stdout, stderr bytes.Buffer
	env := map[string]string{
		"STORAGE_BACKEND": "null", "TOPGUN_NO_AUTH": "1",
		"DATABASE_URL":        "postgres://u:pw-must-not-leak@127.0.0.1:5432/db",
		"TOPGUN_JWT_AUDIENCE": "my-api",
		// The data goes to memory, not to this file or a plugin.
		"TOPGUN_REDB_PATH": "/var/lib/topgun/data.redb", "TOPGUN_PLUGIN_MEMORY_MB": "64",
	}
	if code := run(ctx, []string{"--plugin-trust=trusted"}, envOf(env), &stdout, &stderr); code != exitOK {
		t.Fatalf("run = %d, want 0; stderr:\n%s", code, &stderr)
	}
	out := stderr.String()
	for _, w := range []string{"DATABASE_URL is ignored", "TOPGUN_JWT_AUDIENCE are ignored", "TOPGUN_REDB_PATH is ignored",
		"used only with a wasm plugin", "TOPGUN_PLUGIN_MEMORY_MB", "--plugin-trust"} {
		if !strings.Contains(out, w) {
			t.Errorf("stderr does not warn %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "pw-must-not-leak") {
		t.Errorf("the password was printed:\n%s", out)
	}
	// Each backend uses its own settings without a warning.
	wasm := t.TempDir() + "/kv.wasm"
	if err := os.WriteFile(wasm, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, env := range []map[string]string{
		{"TOPGUN_REDB_PATH": "/var/lib/topgun/data.redb"},
		{"STORAGE_BACKEND": "redb", "TOPGUN_REDB_PATH": "/var/lib/topgun/data.redb"},
		{"STORAGE_BACKEND": wasm, "TOPGUN_PLUGIN_MEMORY_MB": "64"},
	} {
		c, err := parseConfig(nil, envOf(withNoAuth(env)), &bytes.Buffer{})
		if err != nil {
			t.Fatalf("%v: %v", env, err)
		}
		if r, p := c.ignoredSettings(); r != "" || p != nil {
			t.Errorf("%v: ignored settings %q, %q; want none", env, r, p)
		}
	}
}

// TestRun_startFailureReportedWithLogsOff checks that a server that cannot
// start says why on stderr even with TOPGUN_LOG_LEVEL=off, rather than
// exiting 1 without a word.
func TestRun_startFailureReportedWithLogsOff(t *testing.T) {
	t.Parallel()
	missing := t.TempDir() + "/no/such/dir/data.redb"
	var stdout, stderr bytes.Buffer
	env := withNoAuth(map[string]string{"TOPGUN_LOG_LEVEL": "off", "TOPGUN_REDB_PATH": missing, "PORT": "0", "TOPGUN_BIND_ADDR": "127.0.0.1"})
	if code := run(context.Background(), nil, envOf(env), &stdout, &stderr); code != exitFailed {
		t.Fatalf("run = %d, want %d; stderr:\n%s", code, exitFailed, &stderr)
	}
	if out := stderr.String(); !strings.Contains(out, "cannot open storage") || !strings.Contains(out, missing) {
		t.Errorf("stderr does not say why the server cannot start:\n%q", out)
	}
}

// TestParseConfig_defaultPoolSizeOnManyCPUs checks that the default of
// TOPGUN_PLUGIN_POOL_SIZE ("the number of CPUs") stays in the range README
// gives (1 to 1024): on a machine with more than 1024 CPUs (or with
// GOMAXPROCS set above it) a server that sets nothing must start, rather
// than be refused over a setting its operator never gave. Not parallel: it
// changes GOMAXPROCS for the process while it runs.
func TestParseConfig_defaultPoolSizeOnManyCPUs(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1100))
	for _, backend := range []string{"null", "redb"} {
		if _, err := parseConfig(nil, envOf(withNoAuth(map[string]string{"STORAGE_BACKEND": backend})), &bytes.Buffer{}); err != nil {
			t.Errorf("STORAGE_BACKEND=%s with GOMAXPROCS=1100 and no TOPGUN_PLUGIN_POOL_SIZE: %v", backend, err)
		}
	}
	if o, err := host.OptionsFromEnv(envOf(nil)); err != nil {
		t.Errorf("host.OptionsFromEnv with nothing set: %v", err)
	} else if err := o.Validate(); err != nil {
		t.Errorf("default host options: %v", err)
	}
}

// TestREADME_statesExitCodes keeps README's exit statuses true: 2 for a
// configuration refused before start, 1 for a server that cannot open its
// storage or its port (which init scripts and supervisors tell apart).
func TestREADME_statesExitCodes(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatalf("read README.md: %v", err)
	}
	text := strings.Join(strings.Fields(string(readme)), " ")
	for _, want := range []string{
		fmt.Sprintf("each with its fix, and the server then exits with status %d", exitConfig),
		fmt.Sprintf("a port in use) is logged with its fix, and the server exits with status %d", exitFailed),
	} {
		if !strings.Contains(text, want) {
			t.Errorf("README.md does not say %q", want)
		}
	}
}

// TestREADME_statesTimeouts keeps README's timeouts in step with the ones
// the server applies: operators size load balancer and supervisor
// timeouts, and client keep-alives, from them.
func TestREADME_statesTimeouts(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatalf("read README.md: %v", err)
	}
	text := strings.Join(strings.Fields(string(readme)), " ")
	secs := func(d time.Duration) string { return fmt.Sprintf("%d s", int(d.Seconds())) }
	for _, want := range []string{
		fmt.Sprintf("arrives for %s, none of whose writes is waiting for storage, and which is not reading an answer the server waits for before it reads on, is closed", secs(protocol.DefaultIdleTimeout)),
		fmt.Sprintf("takes longer than %s to arrive is answered 408", secs(protocol.DefaultIdleTimeout)),
		fmt.Sprintf("a WebSocket not authenticated %s after it opened is closed", secs(protocol.DefaultAuthTimeout)),
		fmt.Sprintf("at most %d live queries", protocol.DefaultMaxQueries),
		fmt.Sprintf("answers within about %s", secs(readyTimeout)),
		fmt.Sprintf("closes the client connections (within %s; one whose close has not finished 2 s later is cut), drains HTTP requests for at most %s",
			secs(protocol.DefaultShutdownTimeout), secs(drainTimeout)),
		fmt.Sprintf("after %s the server exits %d without it", secs(storageCloseTimeout), exitFailed),
		fmt.Sprintf("idle keep-alive HTTP connections are closed after %d minutes", int(httpIdleTimeout.Minutes())),
		fmt.Sprintf("A request's headers must arrive within %s (at most %d KiB of them, else 431), the whole request (but a `POST /sync` body) within %s, and an answer (but that of a `POST /sync`) be read within %s of the request's headers",
			secs(httpReadHeaderTimeout), httpMaxHeaderBytes>>10, secs(httpReadTimeout), secs(httpWriteTimeout)),
	} {
		if !strings.Contains(text, want) {
			t.Errorf("README.md does not say %q", want)
		}
	}
}

// A port in use stops the server with exit status 1 and a log line saying
// what to do, as README promises for every start-up failure.
func TestRun_portInUseSaysTheFix(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	var stdout, stderr bytes.Buffer
	env := withNoAuth(map[string]string{"STORAGE_BACKEND": "null", "PORT": port, "TOPGUN_BIND_ADDR": "127.0.0.1"})
	if code := run(context.Background(), nil, envOf(env), &stdout, &stderr); code != exitFailed {
		t.Fatalf("run = %d, want %d; stderr:\n%s", code, exitFailed, &stderr)
	}
	if out := stderr.String(); !strings.Contains(out, "cannot listen") || !strings.Contains(out, "choose another with PORT") {
		t.Errorf("stderr does not say how to fix a port in use:\n%s", out)
	}
}
