package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"path"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/host"
	"github.com/topgun-go/topgun/plugins"
	"github.com/topgun-go/topgun/server/hlc"
	"github.com/topgun-go/topgun/server/protocol"
)

// config is the server's whole configuration, read from the environment and
// the command line.
type config struct {
	storageBackend string
	redbPath       string
	databaseURL    string
	port           int
	bindAddr       string
	logLevel       hclog.Level
	logJSON        bool

	jwtSecret       string
	jwtIssuer       string
	jwtAudience     string
	allowedOrigins  []string
	noAuth          bool
	maxMessageBytes int
	maxBatchOps     int
	maxOutbound     int64
	maxConnections  int
	maxQueryResults int
	nodeID          string // "" = hlc.DefaultNodeID() at start
	maxDrift        time.Duration
	cacheMB         int64         // 0 disables the value cache
	maxIndexMB      int64         // 0: no bound on the record index
	tombstoneTTL    time.Duration // negative keeps tombstones forever
	commitTimeout   time.Duration

	pluginEnv map[string]string // TOPGUN_PLUGIN_* values
	// pluginFlags names the flag of each TOPGUN_PLUGIN_* value given as
	// one, for host.OptionsFromEnv's errors, which name the variable.
	pluginFlags map[string]string
	plugin      *host.Options
	// given names each setting given a value (by flag or environment) as
	// it was given, so a setting the backend does not use can be warned
	// about.
	given map[string]string
}

// setting is one configuration value: an environment variable mirrored by a
// flag. set parses a value into c; its error says what is wrong and how to
// fix it, without naming the setting (the caller prefixes the name).
type setting struct {
	env  string
	flag string
	def  string
	help string
	set  func(c *config, v string) error
}

// settings is every setting the server reads, in the order --help shows
// them. Empty values count as unset and take the default.
var settings = []setting{
	{"STORAGE_BACKEND", "storage-backend", "redb", "storage backend: null, postgres, redb, or a path to a .wasm plugin", func(c *config, v string) error { c.storageBackend = v; return nil }},
	{"TOPGUN_REDB_PATH", "redb-path", plugins.DefaultRedbPath, "file of the redb backend", func(c *config, v string) error { c.redbPath = v; return nil }},
	{"DATABASE_URL", "database-url", "", "PostgreSQL URL of the postgres backend, e.g. postgres://user:password@host:5432/db", func(c *config, v string) error { c.databaseURL = v; return nil }},
	{"PORT", "port", "8080", "TCP port to listen on; 0 picks a free port", setPort},
	{"TOPGUN_BIND_ADDR", "bind-addr", "", "IP address or host name to listen on; default 0.0.0.0, or 127.0.0.1 when TOPGUN_NO_AUTH is set (as TopGun)", setBindAddr},
	{"TOPGUN_LOG_LEVEL", "log-level", "info", "log level: trace, debug, info, warn, error or off", setLogLevel},
	{"TOPGUN_LOG_FORMAT", "log-format", "text", "log format: text or json", setLogFormat},
	{"JWT_SECRET", "jwt-secret", "", "key that verifies client JWTs: an HS256 secret, or an RSA public key PEM for RS256 (\\n for newlines); required unless TOPGUN_NO_AUTH is set", func(c *config, v string) error { c.jwtSecret = v; return nil }},
	{"TOPGUN_JWT_ISSUER", "jwt-issuer", "", "when set, a client JWT's iss claim must equal it", func(c *config, v string) error { c.jwtIssuer = v; return nil }},
	{"TOPGUN_JWT_AUDIENCE", "jwt-audience", "", "when set, a client JWT's aud claim must name it (so tokens your identity provider issues for other services are refused)", func(c *config, v string) error { c.jwtAudience = v; return nil }},
	{"TOPGUN_ALLOWED_ORIGINS", "allowed-origins", "", "comma-separated origins (host[:port] patterns, * for any) whose web pages may connect; unset: any with authentication, this machine's pages without", setAllowedOrigins},
	{"TOPGUN_NO_AUTH", "no-auth", "false", "1 or true serves clients without authentication (for development)", setNoAuth},
	{"TOPGUN_MAX_MESSAGE_BYTES", "max-message-bytes", strconv.Itoa(protocol.DefaultMaxMessageBytes), "largest WebSocket message or POST /sync body accepted, in bytes", setMaxMessageBytes},
	{"TOPGUN_MAX_BATCH_OPS", "max-batch-ops", strconv.Itoa(protocol.DefaultMaxBatchOps), "most new operations one OP_BATCH or POST /sync may carry (re-sent ones do not count)", setMaxBatchOps},
	{"TOPGUN_MAX_OUTBOUND_BYTES", "max-outbound-bytes", strconv.Itoa(protocol.DefaultOutboundBytes), "bytes of messages queued for one client (a client that lets more pile up unread is disconnected), and of records in one POST /sync answer", setMaxOutbound},
	{"TOPGUN_MAX_CONNECTIONS", "max-connections", strconv.Itoa(protocol.DefaultMaxConnections), "most WebSocket connections and POST /sync requests served at once; more are answered 503 and retry (1% more WebSocket connections are admitted on trial, for a device taking over its half-open connection)", setMaxConnections},
	{"TOPGUN_MAX_QUERY_RESULTS", "max-query-results", strconv.Itoa(protocol.DefaultMaxQueryResults), "most records the live queries of one connection may hold when a query starts (a query over it is refused), and one POST /sync answer may hold (deltas come in pages)", setMaxQueryResults},
	{"TOPGUN_NODE_ID", "node-id", "", "node id in the server's timestamps; default: the host name plus a random suffix", setNodeID},
	{"TOPGUN_MAX_DRIFT_MS", "max-drift-ms", "60000", "writes stamped further ahead of the server clock than this (ms) are rejected", setMaxDrift},
	{"TOPGUN_CACHE_MB", "cache-mb", "64", "memory for cached record values, in MiB; 0 disables the cache", setCacheMB},
	{"TOPGUN_MAX_INDEX_MB", "max-index-mb", "0", "memory the index of stored keys may take, in MiB (about 80 bytes plus the key per record, plus some per map and Merkle leaf): past it the server does not start, and writes of new keys are refused; 0: no limit", setMaxIndexMB},
	{"TOPGUN_TOMBSTONE_TTL", "tombstone-ttl", "168h", "how long deletes are remembered for offline clients (e.g. 168h); off keeps them forever", setTombstoneTTL},
	{"TOPGUN_COMMIT_TIMEOUT", "commit-timeout", "30s", "longest a commit waits for the storage backend; its writes then fail unacknowledged (clients re-send them) and the server finds out later whether storage applied them", setCommitTimeout},
	{"TOPGUN_PLUGIN_CACHE_DIR", "plugin-cache-dir", "", "directory of the wasm compilation cache, so a plugin is compiled once; default: topgun/wasm under the user cache directory (~/.cache); - disables it", pluginSetting("TOPGUN_PLUGIN_CACHE_DIR")},
	{"TOPGUN_PLUGIN_SHA256", "plugin-sha256", "", "hex SHA-256 the plugin file must have, or it is refused", pluginSetting("TOPGUN_PLUGIN_SHA256")},
	{"TOPGUN_PLUGIN_DATA_DIR", "plugin-data-dir", "", "the one directory a plugin may use (it sees it as /data); unset: no files at all", pluginSetting("TOPGUN_PLUGIN_DATA_DIR")},
	{"TOPGUN_PLUGIN_DATA_MAX_MB", "plugin-data-max-mb", "0", "bytes the plugin's data directory may hold, in MiB, all its instances together (a write past it fails); 0: no quota", pluginSetting("TOPGUN_PLUGIN_DATA_MAX_MB")},
	{"TOPGUN_PLUGIN_DATA_MAX_FILES", "plugin-data-max-files", strconv.Itoa(host.DefaultDataMaxFiles), "files and directories the plugin's data directory may hold (creating one past it fails); negative: no limit (not with TOPGUN_PLUGIN_DATA_MAX_MB)", pluginSetting("TOPGUN_PLUGIN_DATA_MAX_FILES")},
	{"TOPGUN_PLUGIN_CONFIG", "plugin-config", "", `plugin configuration as a JSON object of the keys the plugin reads, e.g. {"compact_min_bytes":67108864} for the logstore example`, pluginSetting("TOPGUN_PLUGIN_CONFIG")},
	{"TOPGUN_PLUGIN_MEMORY_MB", "plugin-memory-mb", strconv.Itoa(host.DefaultMemoryLimitMB), "memory limit of each plugin instance, in MiB", pluginSetting("TOPGUN_PLUGIN_MEMORY_MB")},
	{"TOPGUN_PLUGIN_CALL_TIMEOUT", "plugin-call-timeout", host.DefaultCallTimeout.String(), "deadline of each call into a plugin", pluginSetting("TOPGUN_PLUGIN_CALL_TIMEOUT")},
	{"TOPGUN_PLUGIN_MAX_REQUEST_BYTES", "plugin-max-request-bytes", strconv.Itoa(host.DefaultMaxRequestBytes), "largest request sent to a plugin, in bytes", pluginSetting("TOPGUN_PLUGIN_MAX_REQUEST_BYTES")},
	{"TOPGUN_PLUGIN_MAX_RESPONSE_BYTES", "plugin-max-response-bytes", strconv.Itoa(host.DefaultMaxResponseBytes), "largest response accepted from a plugin, in bytes", pluginSetting("TOPGUN_PLUGIN_MAX_RESPONSE_BYTES")},
	{"TOPGUN_PLUGIN_POOL_SIZE", "plugin-pool-size", "", "instances of a plugin that declares multi_instance; default: the number of CPUs, at most 1024", pluginSetting("TOPGUN_PLUGIN_POOL_SIZE")},
	{"TOPGUN_PLUGIN_TRUST", "plugin-trust", string(host.TrustSandboxed), "sandboxed (deadlines stop running plugin code) or trusted (first-party plugins: faster, deadlines only between calls)", pluginSetting("TOPGUN_PLUGIN_TRUST")},
	{"TOPGUN_PLUGIN_BREAKER_FAILURES", "plugin-breaker-failures", strconv.Itoa(host.DefaultBreakerFailures), "failures of a plugin within the breaker window that open its circuit breaker (calls then fail fast); negative: no breaker", pluginSetting("TOPGUN_PLUGIN_BREAKER_FAILURES")},
	{"TOPGUN_PLUGIN_BREAKER_WINDOW", "plugin-breaker-window", host.DefaultBreakerWindow.String(), "window in which the breaker counts a plugin's failures", pluginSetting("TOPGUN_PLUGIN_BREAKER_WINDOW")},
	{"TOPGUN_PLUGIN_BREAKER_BACKOFF", "plugin-breaker-backoff", host.DefaultBreakerBackoff.String(), "wait before an open breaker lets one call retry; doubles after each failed retry", pluginSetting("TOPGUN_PLUGIN_BREAKER_BACKOFF")},
	{"TOPGUN_PLUGIN_BREAKER_MAX_BACKOFF", "plugin-breaker-max-backoff", "1m", "longest wait of an open breaker", pluginSetting("TOPGUN_PLUGIN_BREAKER_MAX_BACKOFF")},
}

// pluginSetting records a TOPGUN_PLUGIN_* value; parseConfig hands them all
// to host.OptionsFromEnv, which owns their parsing and checks.
func pluginSetting(name string) func(c *config, v string) error {
	return func(c *config, v string) error {
		if c.pluginEnv == nil {
			c.pluginEnv = map[string]string{}
		}
		c.pluginEnv[name] = v
		return nil
	}
}

// nameFlags rewrites a host error naming a TOPGUN_PLUGIN_* variable to
// name the flag it was given as instead, so the operator fixes the right
// setting.
func (c *config) nameFlags(problem string) string {
	for env, flag := range c.pluginFlags {
		// Whole names only: no variable is followed by a letter, digit or
		// underscore in an error.
		for i := 0; ; {
			j := strings.Index(problem[i:], env)
			if j < 0 {
				break
			}
			j += i
			end := j + len(env)
			if end < len(problem) && (problem[end] == '_' || 'A' <= problem[end] && problem[end] <= 'Z' || '0' <= problem[end] && problem[end] <= '9') {
				i = end
				continue
			}
			problem = problem[:j] + flag + problem[end:]
			i = j + len(flag)
		}
	}
	return problem
}

func setNoAuth(c *config, v string) error {
	switch strings.ToLower(v) {
	case "1", "true", "yes", "on":
		c.noAuth = true
	case "0", "false", "no", "off":
		c.noAuth = false
	default:
		return errors.New("is not a boolean: use 1 or true to disable authentication, 0 or false to keep it")
	}
	return nil
}

// intSetting parses an integer setting that must lie in [min, max]; an
// error reads "is not <what>: use <unit> from <min> to <max> (default
// <def>)".
func intSetting(what, unit string, min, max, def int64, set func(c *config, n int64)) func(*config, string) error {
	return func(c *config, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < min || n > max {
			return fmt.Errorf("is not %s: use %s from %d to %d (default %d)", what, unit, min, max, def)
		}
		set(c, n)
		return nil
	}
}

var (
	setMaxMessageBytes = intSetting("a message size", "a number of bytes", 1024, 1<<30, protocol.DefaultMaxMessageBytes,
		func(c *config, n int64) { c.maxMessageBytes = int(n) })
	setMaxBatchOps = intSetting("an operation count", "an integer", 1, abi.MaxBatchOps, protocol.DefaultMaxBatchOps,
		func(c *config, n int64) { c.maxBatchOps = int(n) })
	setMaxOutbound = intSetting("a queue size", "a number of bytes", protocol.MinOutboundBytes, 1<<40, protocol.DefaultOutboundBytes,
		func(c *config, n int64) { c.maxOutbound = n })
	setMaxConnections = intSetting("a connection count", "an integer", 1, 1_000_000, protocol.DefaultMaxConnections,
		func(c *config, n int64) { c.maxConnections = int(n) })
	setMaxQueryResults = intSetting("a record count", "an integer", 1, 1<<30, protocol.DefaultMaxQueryResults,
		func(c *config, n int64) { c.maxQueryResults = int(n) })
)

func setNodeID(c *config, v string) error {
	if v == "" {
		c.nodeID = ""
		return nil
	}
	if err := hlc.ValidateNodeID(v); err != nil {
		return errors.New("is not a usable node id: " + strings.TrimPrefix(err.Error(), "hlc: "))
	}
	c.nodeID = v
	return nil
}

func setMaxDrift(c *config, v string) error {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 || n > 365*24*3600*1000 {
		return errors.New("is not a drift bound: use a number of milliseconds from 1 to 31536000000, a year (default 60000)")
	}
	c.maxDrift = time.Duration(n) * time.Millisecond
	return nil
}

func setCacheMB(c *config, v string) error {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > 1<<30 {
		return errors.New("is not a cache size: use a number of MiB from 0 (no cache) to 1073741824 (default 64)")
	}
	c.cacheMB = n
	return nil
}

func setMaxIndexMB(c *config, v string) error {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > 1<<30 {
		return errors.New("is not an index size: use a number of MiB from 1 to 1073741824, or 0 for no limit (default 0)")
	}
	c.maxIndexMB = n
	return nil
}

func setTombstoneTTL(c *config, v string) error {
	switch strings.ToLower(v) {
	case "off", "forever", "never":
		c.tombstoneTTL = -1
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < time.Minute {
		return errors.New("is not a tombstone lifetime: use a duration of at least 1m such as 168h, or off to keep tombstones forever")
	}
	c.tombstoneTTL = d
	return nil
}

func setCommitTimeout(c *config, v string) error {
	d, err := time.ParseDuration(v)
	if err != nil || d < time.Second || d > time.Hour {
		return errors.New("is not a commit timeout: use a duration from 1s to 1h such as 30s (default 30s)")
	}
	c.commitTimeout = d
	return nil
}

func setPort(c *config, v string) error {
	p, err := strconv.Atoi(v)
	if err != nil || p < 0 || p > 65535 {
		return errors.New("is not a port number: use an integer from 0 to 65535 (0 picks a free port)")
	}
	c.port = p
	return nil
}

func setAllowedOrigins(c *config, v string) error {
	c.allowedOrigins = nil
	for _, p := range strings.Split(v, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if strings.Contains(p, "://") || strings.Contains(p, "/") {
			return fmt.Errorf("has %q: give hosts with an optional port (app.example.com, localhost:*), not URLs", p)
		}
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("has %q, which is not a valid pattern: %v", p, err)
		}
		c.allowedOrigins = append(c.allowedOrigins, p)
	}
	return nil
}

func setBindAddr(c *config, v string) error {
	if net.ParseIP(v) == nil && strings.ContainsAny(v, ":/[] ") {
		return errors.New("is not an IP address or host name: give one without a port (set the port with PORT)")
	}
	c.bindAddr = v
	return nil
}

func setLogLevel(c *config, v string) error {
	l := hclog.LevelFromString(v)
	if l == hclog.NoLevel {
		return errors.New("is not a log level: use trace, debug, info, warn, error or off")
	}
	c.logLevel = l
	return nil
}

func setLogFormat(c *config, v string) error {
	switch strings.ToLower(v) {
	case "text":
		c.logJSON = false
	case "json":
		c.logJSON = true
	default:
		return errors.New("is not a log format: use text or json")
	}
	return nil
}

// switchFlag is a setting that defaults to false given as a flag: bare, it
// is "true"; with =value, the value (checked by the setting's set).
type switchFlag string

func (f *switchFlag) String() string     { return string(*f) }
func (f *switchFlag) Set(v string) error { *f = switchFlag(v); return nil }
func (f *switchFlag) IsBoolFlag() bool   { return true }

// errHelp is returned by parseConfig when --help was asked for; the usage has
// been written to stdout.
var errHelp = errors.New("help requested")

// configError lists every configuration problem found at once.
type configError struct {
	problems []string
}

func (e *configError) Error() string {
	var b strings.Builder
	n := len(e.problems)
	fmt.Fprintf(&b, "topgun-server: the configuration has %d problem", n)
	if n != 1 {
		b.WriteString("s")
	}
	b.WriteString(" (run with --help to list every setting):")
	for _, p := range e.problems {
		b.WriteString("\n  - ")
		b.WriteString(p)
	}
	return b.String()
}

// parseConfig reads every setting from args and lookupEnv (flags win over
// the environment, which wins over the defaults) and validates all of them,
// storage included, reporting every problem in one *configError. A request
// for --help prints the usage to stdout and returns errHelp.
func parseConfig(args []string, lookupEnv func(string) (string, bool), stdout io.Writer) (*config, error) {
	fs := flag.NewFlagSet("topgun-server", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	flagValues := make([]string, len(settings))
	for i, s := range settings {
		if s.def == "false" {
			// A switch: --no-auth alone means true, as users expect.
			flagValues[i] = s.def
			fs.Var((*switchFlag)(&flagValues[i]), s.flag, s.help)
			continue
		}
		fs.StringVar(&flagValues[i], s.flag, s.def, s.help)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			writeUsage(stdout)
			return nil, errHelp
		}
		return nil, &configError{problems: []string{err.Error()}}
	}
	setFlags := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { setFlags[f.Name] = true })

	c := &config{}
	var problems []string
	if fs.NArg() > 0 {
		problems = append(problems, fmt.Sprintf("unexpected argument %q: settings are given as --name=value flags or environment variables", fs.Arg(0)))
	}
	for i, s := range settings {
		v, source := s.def, ""
		if setFlags[s.flag] {
			v, source = flagValues[i], "--"+s.flag
			if strings.HasPrefix(s.env, "TOPGUN_PLUGIN_") {
				if c.pluginFlags == nil {
					c.pluginFlags = map[string]string{}
				}
				c.pluginFlags[s.env] = source
			}
		} else if ev, ok := lookupEnv(s.env); ok && ev != "" {
			v, source = ev, s.env
		}
		if source != "" {
			if c.given == nil {
				c.given = map[string]string{}
			}
			c.given[s.env] = source
		}
		if err := s.set(c, v); err != nil {
			if source == "" {
				source = s.env + " default"
			}
			problems = append(problems, fmt.Sprintf("%s=%q %v", source, v, err))
		}
	}
	po, err := host.OptionsFromEnv(func(name string) (string, bool) {
		v, ok := c.pluginEnv[name]
		return v, ok
	})
	if err != nil {
		for _, e := range strings.Split(err.Error(), "\n") {
			problems = append(problems, c.nameFlags(e))
		}
	} else {
		c.plugin = po
	}
	if err := plugins.Check(c.storageBackend, c.storageOptions(nil)); err != nil {
		problems = append(problems, c.nameFlags(err.Error()))
	}
	switch {
	case c.noAuth:
	case c.jwtSecret == "":
		problems = append(problems, "client authentication needs a key: set JWT_SECRET to the HS256 secret (or the RSA public key PEM) that verifies your clients' tokens, or set TOPGUN_NO_AUTH=1 to serve clients without authentication")
	default:
		if _, err := protocol.NewAuth(c.jwtSecret); err != nil {
			problems = append(problems, strings.TrimPrefix(err.Error(), "protocol: "))
		}
	}
	if c.bindAddr == "" {
		// As TopGun: without authentication, only this machine by default.
		c.bindAddr = "0.0.0.0"
		if c.noAuth {
			c.bindAddr = "127.0.0.1"
		}
	}
	if len(problems) > 0 {
		return nil, &configError{problems: problems}
	}
	return c, nil
}

// ignoredSettings returns, as they were given, TOPGUN_REDB_PATH if the
// chosen storage backend is not redb, and the TOPGUN_PLUGIN_* settings if
// it is not a wasm plugin: the backend does not use them.
func (c *config) ignoredSettings() (redbPath string, plugin []string) {
	spec := c.storageBackend
	if spec != "" && spec != "redb" {
		redbPath = c.given["TOPGUN_REDB_PATH"]
	}
	if spec == "" || slices.Contains(plugins.Builtins(), spec) {
		for _, s := range settings {
			if g := c.given[s.env]; g != "" && strings.HasPrefix(s.env, "TOPGUN_PLUGIN_") {
				plugin = append(plugin, g)
			}
		}
	}
	return redbPath, plugin
}

// auth returns the verifier of client tokens, nil without authentication.
func (c *config) auth() (*protocol.Auth, error) {
	if c.noAuth {
		return nil, nil
	}
	a, err := protocol.NewAuth(c.jwtSecret)
	if err != nil {
		return nil, err
	}
	return a.WithClaims(c.jwtIssuer, c.jwtAudience), nil
}

// storageOptions returns the plugins options of c, logging under log.
func (c *config) storageOptions(log hclog.Logger) *plugins.Options {
	return &plugins.Options{RedbPath: c.redbPath, DatabaseURL: c.databaseURL, Plugin: c.plugin, Logger: log}
}

// loopbackOnly reports whether the bind address only accepts connections
// from this machine.
func (c *config) loopbackOnly() bool {
	if strings.EqualFold(c.bindAddr, "localhost") {
		return true
	}
	ip := net.ParseIP(c.bindAddr)
	return ip != nil && ip.IsLoopback()
}

// listenAddr is the address to listen on.
func (c *config) listenAddr() string {
	return net.JoinHostPort(c.bindAddr, strconv.Itoa(c.port))
}

// writeUsage prints every setting with its flag, environment variable and
// default.
func writeUsage(w io.Writer) {
	fmt.Fprintln(w, "Usage: topgun-server [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "A TopGun-compatible data server with pluggable storage.")
	fmt.Fprintln(w, "Every setting is read from its environment variable; a flag overrides it.")
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FLAG\tENVIRONMENT\tDEFAULT\tMEANING")
	for _, s := range settings {
		def := s.def
		if def == "" {
			def = "(none)"
		}
		fmt.Fprintf(tw, "--%s\t%s\t%s\t%s\n", s.flag, s.env, def, s.help)
	}
	tw.Flush()
}
