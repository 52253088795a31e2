package host

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/internal/setting"
)

// Trust selects how much the host trusts a plugin's code.
type Trust string

const (
	// TrustSandboxed (the default) meters guest code (internal/meter) so
	// that a call past its deadline is interrupted even inside a loop, at
	// a cost of about a quarter of guest time. A module the meter cannot
	// rewrite falls back to wazero's WithCloseOnContextDone, which costs
	// several times more.
	TrustSandboxed Trust = "sandboxed"
	// TrustTrusted runs guest code without that instrumentation: faster,
	// but a call that never returns hangs its caller, and the whole
	// process at the next garbage collection, which waits for compiled
	// guest code that Go cannot preempt. For first-party
	// plugins only.
	TrustTrusted Trust = "trusted"
)

// Defaults of Options.
const (
	DefaultMemoryLimitMB    = 256
	DefaultCallTimeout      = 10 * time.Second
	DefaultMaxRequestBytes  = 32 << 20
	DefaultMaxResponseBytes = 32 << 20
	// DefaultDataMaxFiles bounds the files and directories a plugin's
	// data directory holds: far more than a storage engine keeps (logstore
	// two, bbolt one, SQLite a few), far fewer than a file system's inodes,
	// which every tenant and the server share.
	DefaultDataMaxFiles = 100_000
	// MaxPluginFileBytes bounds the size of a plugin file.
	MaxPluginFileBytes = 256 << 20
	// MaxLogLineBytes caps each line a plugin logs (log import, stdout, stderr).
	MaxLogLineBytes = 4096
	// MaxPoolSize bounds Options.PoolSize, and so its default.
	MaxPoolSize = 1024
	// ReservedConfigPrefix starts configuration keys the host sets itself.
	ReservedConfigPrefix = "topgun."
)

// Options configure Load and Inspect. The zero value of a field means its
// default; a nil *Options means all defaults.
type Options struct {
	// CacheDir holds wazero's compilation cache, shared by every plugin the
	// process loads (TOPGUN_PLUGIN_CACHE_DIR). Default DefaultCacheDir();
	// "-" disables the on-disk cache. The host runs the native code it
	// holds, so on Unix Load refuses a directory that belongs to another
	// user or that others may write to. A damaged entry (wazero checks a
	// checksum of the code), or one that cannot be read or written (the
	// directory deleted meanwhile, a full disk), is compiled again without
	// the cache, with a warning.
	CacheDir string
	// SHA256, when set, pins the plugin file: its hex SHA-256 must match
	// or Load fails (TOPGUN_PLUGIN_SHA256).
	SHA256 string
	// DataDir, when set, is the one host directory the plugin may use,
	// mounted at abi.WasmDataDir ("/data") (TOPGUN_PLUGIN_DATA_DIR). It
	// must exist. Without it the plugin sees no files at all. Load resolves
	// it once (every instance uses the directory found then) and locks
	// it (flock) until Close has discarded every instance, and refuses a
	// directory another loaded plugin holds, in this process or another,
	// with abi.CodeUnavailable; a plugin that declares abi.CapShared holds
	// it only while it opens (see the package documentation). Load
	// refuses a DataDir that holds CacheDir or lies inside it: the plugin
	// could replace the code the cache holds.
	DataDir string
	// DataMaxMB bounds the bytes of the files in DataDir, in MiB
	// (TOPGUN_PLUGIN_DATA_MAX_MB). Default 0: not bounded. DataMaxFiles
	// bounds the files and directories there (TOPGUN_PLUGIN_DATA_MAX_FILES),
	// default DefaultDataMaxFiles; a negative number does not bound them
	// (refused with DataMaxMB, whose measurement walks the directory up to
	// DataMaxFiles entries). Both count every instance of the plugin
	// together; past either, the write or creation fails as an I/O error
	// and the failed call names the setting (see the package
	// documentation).
	DataMaxMB    int
	DataMaxFiles int
	// Config is passed to the plugin's open call (TOPGUN_PLUGIN_CONFIG).
	// Keys starting with ReservedConfigPrefix are refused. Load keeps a
	// copy, which every fresh instance opens with: changing the map later
	// changes nothing for a plugin already loaded.
	Config map[string]string
	// MemoryLimitMB caps the linear memory of each instance
	// (TOPGUN_PLUGIN_MEMORY_MB). Default 256.
	MemoryLimitMB int
	// CallTimeout bounds every call, and _initialize
	// (TOPGUN_PLUGIN_CALL_TIMEOUT). Default 10s. Only sandboxed plugins
	// are interrupted; trusted ones run to completion.
	CallTimeout time.Duration
	// MaxRequestBytes bounds an encoded request
	// (TOPGUN_PLUGIN_MAX_REQUEST_BYTES). Default 32 MiB.
	MaxRequestBytes int
	// MaxResponseBytes bounds an encoded response
	// (TOPGUN_PLUGIN_MAX_RESPONSE_BYTES). Default 32 MiB.
	MaxResponseBytes int
	// PoolSize bounds the instances of a plugin that declares
	// abi.CapMultiInstance (TOPGUN_PLUGIN_POOL_SIZE). Default GOMAXPROCS,
	// at most MaxPoolSize.
	// Other plugins always run on one instance.
	PoolSize int
	// Trust is TrustSandboxed (default) or TrustTrusted (TOPGUN_PLUGIN_TRUST).
	Trust Trust
	// BreakerFailures failures (traps, deadlines, exits, out-of-memory,
	// malformed results, instances that cannot start) within BreakerWindow
	// open the plugin's circuit breaker: calls fail at once with
	// abi.CodeUnavailable and Healthy reports the plugin unhealthy until a
	// retry after BreakerBackoff succeeds; each failed retry doubles the
	// wait, up to BreakerMaxBackoff. Defaults 5, 30s, 1s and 1m
	// (TOPGUN_PLUGIN_BREAKER_FAILURES, _WINDOW, _BACKOFF, _MAX_BACKOFF). A
	// negative BreakerFailures disables the breaker.
	BreakerFailures   int
	BreakerWindow     time.Duration
	BreakerBackoff    time.Duration
	BreakerMaxBackoff time.Duration
	// Logger is the parent logger; the plugin logs under
	// Named("plugin.<file name>"). Default hclog.NewNullLogger().
	Logger hclog.Logger
	// SettingName names a setting in the host's errors and notes (such
	// as "raise TOPGUN_PLUGIN_MEMORY_MB"): it is given the server's
	// environment variable for the setting (see the package
	// documentation) and returns what the operators of a program that
	// configures the host another way set instead, such as a field of
	// its configuration file. nil, or a result of "", keeps the
	// variable's name. It is called by Load and when an error is
	// written, from any goroutine.
	SettingName func(env string) string
}

// setting is the name of the setting read from the environment variable
// env in o's errors (see SettingName).
func (o *Options) setting(env string) string {
	if o == nil {
		return env
	}
	return setting.Name(o.SettingName, env)
}

// DefaultOptions returns the options with every default filled in.
func DefaultOptions() *Options {
	return &Options{
		CacheDir:          DefaultCacheDir(),
		MemoryLimitMB:     DefaultMemoryLimitMB,
		CallTimeout:       DefaultCallTimeout,
		MaxRequestBytes:   DefaultMaxRequestBytes,
		MaxResponseBytes:  DefaultMaxResponseBytes,
		PoolSize:          min(runtime.GOMAXPROCS(0), MaxPoolSize),
		DataMaxFiles:      DefaultDataMaxFiles,
		Trust:             TrustSandboxed,
		BreakerFailures:   DefaultBreakerFailures,
		BreakerWindow:     DefaultBreakerWindow,
		BreakerBackoff:    DefaultBreakerBackoff,
		BreakerMaxBackoff: DefaultBreakerMaxBackoff,
		Logger:            hclog.NewNullLogger(),
	}
}

// DefaultCacheDir is the default compilation cache directory:
// <user cache dir>/topgun/wasm, or <temp dir>/topgun-wasm-cache-<uid> when
// the user has no cache directory. Either must belong to the server's user
// and be writable by it alone (see Options.CacheDir).
func DefaultCacheDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "topgun", "wasm")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("topgun-wasm-cache-%d", os.Getuid()))
}

// withDefaults returns a copy of o (nil: defaults) with zero fields set to
// their defaults.
func (o *Options) withDefaults() *Options {
	d := DefaultOptions()
	if o == nil {
		return d
	}
	c := *o
	// Every fresh instance opens with Config: a caller reusing the map for
	// its next load (another tenant) must not change this plugin's.
	c.Config = maps.Clone(o.Config)
	if c.CacheDir == "" {
		c.CacheDir = d.CacheDir
	}
	if c.MemoryLimitMB == 0 {
		c.MemoryLimitMB = d.MemoryLimitMB
	}
	if c.CallTimeout == 0 {
		c.CallTimeout = d.CallTimeout
	}
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = d.MaxRequestBytes
	}
	if c.MaxResponseBytes == 0 {
		c.MaxResponseBytes = d.MaxResponseBytes
	}
	if c.PoolSize == 0 {
		c.PoolSize = d.PoolSize
	}
	if c.Trust == "" {
		c.Trust = d.Trust
	}
	if c.DataMaxFiles == 0 {
		c.DataMaxFiles = d.DataMaxFiles
	}
	if c.BreakerFailures == 0 {
		c.BreakerFailures = d.BreakerFailures
	}
	if c.BreakerWindow == 0 {
		c.BreakerWindow = d.BreakerWindow
	}
	if c.BreakerBackoff == 0 {
		c.BreakerBackoff = d.BreakerBackoff
	}
	if c.BreakerMaxBackoff == 0 {
		c.BreakerMaxBackoff = d.BreakerMaxBackoff
	}
	if c.Logger == nil {
		c.Logger = d.Logger
	}
	return &c
}

// Validate reports every problem of o (after defaults) at once.
func (o *Options) Validate() error {
	c := o.withDefaults()
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("host: "+format, args...)) }
	name := c.setting
	if c.SHA256 != "" {
		h := strings.TrimPrefix(strings.ToLower(c.SHA256), "sha256:")
		if len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" {
			bad("%s %q is not a hex SHA-256 (64 hex digits, e.g. from sha256sum)", name("TOPGUN_PLUGIN_SHA256"), c.SHA256)
		}
	}
	if c.DataDir != "" {
		if st, err := os.Stat(c.DataDir); err != nil {
			bad("%s %q: %v; create the directory first", name("TOPGUN_PLUGIN_DATA_DIR"), c.DataDir, err)
		} else if !st.IsDir() {
			bad("%s %q is not a directory", name("TOPGUN_PLUGIN_DATA_DIR"), c.DataDir)
		}
	}
	for k := range c.Config {
		if strings.HasPrefix(k, ReservedConfigPrefix) {
			bad("%s key %q is reserved (keys starting with %q are set by the host); rename it", name("TOPGUN_PLUGIN_CONFIG"), k, ReservedConfigPrefix)
		}
	}
	if c.MemoryLimitMB < 1 || c.MemoryLimitMB > 4096 {
		bad("%s %d is out of range; use 1 to 4096", name("TOPGUN_PLUGIN_MEMORY_MB"), c.MemoryLimitMB)
	}
	if c.CallTimeout < time.Millisecond || c.CallTimeout > time.Hour {
		bad("%s %s is out of range; use 1ms to 1h", name("TOPGUN_PLUGIN_CALL_TIMEOUT"), c.CallTimeout)
	}
	minBody := abi.MaxValueBytes + 64<<10
	if c.MaxRequestBytes < minBody || c.MaxRequestBytes > 1<<30 {
		bad("%s %d is out of range; use %d (the largest value plus overhead) to %d", name("TOPGUN_PLUGIN_MAX_REQUEST_BYTES"), c.MaxRequestBytes, minBody, 1<<30)
	}
	if c.MaxResponseBytes < minBody || c.MaxResponseBytes > 1<<30 {
		bad("%s %d is out of range; use %d (the largest value plus overhead) to %d", name("TOPGUN_PLUGIN_MAX_RESPONSE_BYTES"), c.MaxResponseBytes, minBody, 1<<30)
	}
	if c.PoolSize < 1 || c.PoolSize > MaxPoolSize {
		bad("%s %d is out of range; use 1 to %d", name("TOPGUN_PLUGIN_POOL_SIZE"), c.PoolSize, MaxPoolSize)
	}
	if c.DataMaxMB < 0 || c.DataMaxMB > 1<<30 {
		bad("%s %d is out of range; use 0 (no quota) to %d", name("TOPGUN_PLUGIN_DATA_MAX_MB"), c.DataMaxMB, 1<<30)
	}
	if c.DataMaxFiles > 1<<30 {
		bad("%s %d is out of range; use 1 to %d, or a negative number for no limit", name("TOPGUN_PLUGIN_DATA_MAX_FILES"), c.DataMaxFiles, 1<<30)
	}
	if c.DataMaxMB > 0 && c.DataMaxFiles < 0 {
		bad("%s needs a limit on the files (the host measures the directory by reading it); set %s to a positive number, or leave it out for %d", name("TOPGUN_PLUGIN_DATA_MAX_MB"), name("TOPGUN_PLUGIN_DATA_MAX_FILES"), DefaultDataMaxFiles)
	}
	if c.Trust != TrustSandboxed && c.Trust != TrustTrusted {
		bad("%s %q is unknown; use %q or %q", name("TOPGUN_PLUGIN_TRUST"), c.Trust, TrustSandboxed, TrustTrusted)
	}
	if c.BreakerFailures > 1000 {
		bad("%s %d is out of range; use 1 to 1000, or a negative number to disable the breaker", name("TOPGUN_PLUGIN_BREAKER_FAILURES"), c.BreakerFailures)
	}
	if c.BreakerWindow < time.Millisecond || c.BreakerBackoff < time.Millisecond || c.BreakerMaxBackoff < c.BreakerBackoff || c.BreakerMaxBackoff > 24*time.Hour {
		bad("%s %s, %s %s and %s %s are out of range; use durations of at least 1ms with backoff <= maximum backoff <= 24h",
			name("TOPGUN_PLUGIN_BREAKER_WINDOW"), c.BreakerWindow, name("TOPGUN_PLUGIN_BREAKER_BACKOFF"), c.BreakerBackoff, name("TOPGUN_PLUGIN_BREAKER_MAX_BACKOFF"), c.BreakerMaxBackoff)
	}
	return errors.Join(errs...)
}

// ParseConfig parses TOPGUN_PLUGIN_CONFIG: a JSON object whose values are
// strings (numbers and booleans are taken as their JSON text), e.g.
// {"sync":"always","segment_mb":64}. The empty string is an empty map; a
// key given twice is refused.
func ParseConfig(s string) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return nil, fmt.Errorf("host: TOPGUN_PLUGIN_CONFIG is not a JSON object (%v); write it like {\"key\":\"value\"}", err)
	}
	if raw == nil {
		return nil, fmt.Errorf("host: TOPGUN_PLUGIN_CONFIG is null; write a JSON object like {\"key\":\"value\"}")
	}
	// A key given twice decodes as its last value without a word: the
	// operator would believe the other one set.
	if k, ok := repeatedKey(s); ok {
		return nil, fmt.Errorf("host: TOPGUN_PLUGIN_CONFIG key %q is given more than once; keep one", k)
	}
	for k, v := range raw {
		var str string
		// null decodes into a string without error, as "" (and into a
		// number or a boolean too): refuse it like any other non-value.
		if strings.TrimSpace(string(v)) == "null" {
			return nil, fmt.Errorf("host: TOPGUN_PLUGIN_CONFIG key %q has value null; values must be strings, numbers or booleans (leave the key out for the plugin's default)", k)
		}
		if err := json.Unmarshal(v, &str); err == nil {
			out[k] = str
			continue
		}
		var num json.Number
		var b bool
		switch {
		case json.Unmarshal(v, &num) == nil:
			out[k] = num.String()
		case json.Unmarshal(v, &b) == nil:
			out[k] = strconv.FormatBool(b)
		default:
			return nil, fmt.Errorf("host: TOPGUN_PLUGIN_CONFIG key %q has value %s; values must be strings, numbers or booleans", k, v)
		}
	}
	return out, nil
}

// repeatedKey returns a key that the JSON object s, already known to
// decode, holds more than once (compared as decoded, so "a" and "\u0061"
// are one key).
func repeatedKey(s string) (string, bool) {
	dec := json.NewDecoder(strings.NewReader(s))
	if _, err := dec.Token(); err != nil { // the object's {
		return "", false
	}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		k, ok := t.(string)
		if err != nil || !ok {
			return "", false
		}
		if seen[k] {
			return k, true
		}
		seen[k] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return "", false
		}
	}
	return "", false
}

// OptionsFromEnv builds Options from the TOPGUN_PLUGIN_* settings found by
// lookup (os.LookupEnv in cmd/), reporting every problem at once. Unset
// settings keep their defaults. Logger is left nil.
func OptionsFromEnv(lookup func(string) (string, bool)) (*Options, error) {
	o := &Options{}
	var errs []error
	get := func(name string) (string, bool) {
		v, ok := lookup(name)
		return strings.TrimSpace(v), ok && strings.TrimSpace(v) != ""
	}
	// Zero in Options means "the default"; written explicitly it is
	// refused rather than silently replaced (BREAKER_FAILURES=0 reads as
	// "no breaker", which is a negative number).
	def := DefaultOptions()
	// Each error says what to give instead (rng, as Validate states it),
	// however the value is wrong.
	zero := func(name string, dflt any, rng string) {
		errs = append(errs, fmt.Errorf("host: %s=0 is out of range; use %s, or unset it for the default (%v)", name, rng, dflt))
	}
	atoi := func(name, v, rng string) (int, bool) {
		n, err := strconv.Atoi(v)
		switch {
		case errors.Is(err, strconv.ErrRange):
			errs = append(errs, fmt.Errorf("host: %s=%q is out of range; use %s", name, v, rng))
		case err != nil:
			errs = append(errs, fmt.Errorf("host: %s=%q is not an integer; use %s", name, v, rng))
		}
		return n, err == nil
	}
	num := func(name string, dst *int, dflt int, rng string) {
		if v, ok := get(name); ok {
			n, ok := atoi(name, v, rng)
			if !ok {
				return
			}
			if n == 0 {
				zero(name, dflt, rng)
				return
			}
			*dst = n
		}
	}
	bodyRange := fmt.Sprintf("%d (the largest value plus overhead) to %d", abi.MaxValueBytes+64<<10, 1<<30)
	if v, ok := get("TOPGUN_PLUGIN_CACHE_DIR"); ok {
		o.CacheDir = v
	}
	if v, ok := get("TOPGUN_PLUGIN_SHA256"); ok {
		o.SHA256 = v
	}
	if v, ok := get("TOPGUN_PLUGIN_DATA_DIR"); ok {
		o.DataDir = v
	}
	if v, ok := get("TOPGUN_PLUGIN_CONFIG"); ok {
		cfg, err := ParseConfig(v)
		if err != nil {
			errs = append(errs, err)
		}
		o.Config = cfg
	}
	num("TOPGUN_PLUGIN_MEMORY_MB", &o.MemoryLimitMB, def.MemoryLimitMB, "1 to 4096")
	dur := func(name string, dst *time.Duration, dflt time.Duration, rng string) {
		if v, ok := get(name); ok {
			d, err := time.ParseDuration(v)
			if err != nil {
				// Also a duration past time.Duration's range (9999999h).
				errs = append(errs, fmt.Errorf("host: %s=%q is not a duration written like 10s or 500ms; use %s", name, v, rng))
				return
			}
			if d == 0 {
				zero(name, dflt, rng)
				return
			}
			*dst = d
		}
	}
	dur("TOPGUN_PLUGIN_CALL_TIMEOUT", &o.CallTimeout, def.CallTimeout, "a duration from 1ms to 1h")
	num("TOPGUN_PLUGIN_BREAKER_FAILURES", &o.BreakerFailures, def.BreakerFailures, "1 to 1000, or a negative number to disable the breaker")
	dur("TOPGUN_PLUGIN_BREAKER_WINDOW", &o.BreakerWindow, def.BreakerWindow, "a duration of at least 1ms")
	dur("TOPGUN_PLUGIN_BREAKER_BACKOFF", &o.BreakerBackoff, def.BreakerBackoff, "a duration of at least 1ms, at most the maximum backoff")
	dur("TOPGUN_PLUGIN_BREAKER_MAX_BACKOFF", &o.BreakerMaxBackoff, def.BreakerMaxBackoff, "a duration from 1ms (and at least the backoff) to 24h")
	num("TOPGUN_PLUGIN_MAX_REQUEST_BYTES", &o.MaxRequestBytes, def.MaxRequestBytes, bodyRange)
	num("TOPGUN_PLUGIN_MAX_RESPONSE_BYTES", &o.MaxResponseBytes, def.MaxResponseBytes, bodyRange)
	num("TOPGUN_PLUGIN_POOL_SIZE", &o.PoolSize, def.PoolSize, fmt.Sprintf("1 to %d", MaxPoolSize))
	// 0 is the default (no quota) here, so it may be written.
	if v, ok := get("TOPGUN_PLUGIN_DATA_MAX_MB"); ok {
		if n, ok := atoi("TOPGUN_PLUGIN_DATA_MAX_MB", v, fmt.Sprintf("0 (no quota) to %d", 1<<30)); ok {
			o.DataMaxMB = n
		}
	}
	num("TOPGUN_PLUGIN_DATA_MAX_FILES", &o.DataMaxFiles, def.DataMaxFiles, fmt.Sprintf("1 to %d, or a negative number for no limit", 1<<30))
	if v, ok := get("TOPGUN_PLUGIN_TRUST"); ok {
		o.Trust = Trust(v)
	}
	// A setting that did not parse above was left at its zero (the
	// default), so Validate reports the other settings' problems with it.
	if err := o.Validate(); err != nil {
		errs = append(errs, err)
	}
	return o, errors.Join(errs...)
}

// MaxOpenFiles bounds the files a plugin has open in its data directory at
// once, all its instances together.
const MaxOpenFiles = 1024
