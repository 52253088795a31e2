package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/topgun-go/topgun/host"
	"github.com/topgun-go/topgun/server/protocol"
)

// Config is the tenants file, for example:
//
//	{"max_connections": 10000,
//	 "tenants": [
//	  {"name": "acme", "plugin": "bin/plugins/logstore.wasm", "data_dir": "data/acme",
//	   "memory_mb": 64, "call_timeout": "5s", "data_max_mb": 1024, "data_max_files": 1000,
//	   "max_index_mb": 128},
//	  {"name": "globex", "plugin": "bin/plugins/null.wasm"}
//	]}
type Config struct {
	// MaxConnections is the most WebSocket connections and POST /sync
	// requests the process serves at once, all tenants together (default
	// protocol.DefaultMaxConnections, 10000, what one topgun-server
	// serves): each takes a file descriptor and memory from the whole
	// process. One beyond it is answered 503 with Retry-After, as a
	// protocol server answers past its own limit.
	MaxConnections int `json:"max_connections"`

	Tenants []TenantConfig `json:"tenants"`
}

// TenantConfig is one tenant. Only name and plugin are required.
type TenantConfig struct {
	// Name is the tenant's URL path segment (/t/<name>/), its log name
	// (tenant.<name>) and the aud claim its clients' tokens must carry.
	Name string `json:"name"`
	// Plugin is the path of the tenant's wasm storage plugin.
	Plugin string `json:"plugin"`
	// DataDir is the one directory the plugin may use (created if
	// missing); empty: no files at all (fine for the null plugin). It may
	// not hold, nor lie inside, another tenant's, nor hold a plugin file.
	DataDir string `json:"data_dir"`
	// MemoryMB caps each plugin instance's linear memory (default 256).
	MemoryMB int `json:"memory_mb"`
	// CallTimeout bounds each call into the plugin, as a Go duration
	// (default 10s).
	CallTimeout string `json:"call_timeout"`
	// DataMaxMB bounds the bytes the plugin keeps in DataDir, in MiB
	// (default 0: no quota); DataMaxFiles the files and directories there
	// (default 100,000; negative: no limit, not with data_max_mb). Past
	// either the plugin's writes fail, so one tenant cannot fill the disk
	// or use up the inodes the others share.
	DataMaxMB    int `json:"data_max_mb"`
	DataMaxFiles int `json:"data_max_files"`
	// MaxIndexMB bounds the tenant's record index, in MiB (default
	// DefaultMaxIndexMB; negative: no limit): the index of every stored
	// key is on the process's heap, outside the plugin's memory_mb, so a
	// plugin listing endless made-up keys at start, or clients writing
	// endless new keys, would otherwise make the process, every tenant
	// with it, run out of memory. Past it the tenant does not open, and
	// its writes of new keys are refused (store.Options.MaxIndexBytes).
	MaxIndexMB int `json:"max_index_mb"`

	callTimeout time.Duration
}

// DefaultMaxIndexMB is a tenant's max_index_mb when the tenants file
// leaves it out: as much as memory_mb's default, about 2.5 million records
// of short keys, so that a tenant's index takes no more of the process
// than one plugin instance may.
const DefaultMaxIndexMB = 256

// maxIndexBytes is the tenant's store.Options.MaxIndexBytes.
func (t *TenantConfig) maxIndexBytes() int64 {
	switch {
	case t.MaxIndexMB == 0:
		return DefaultMaxIndexMB << 20
	case t.MaxIndexMB < 0:
		return 0
	}
	return int64(t.MaxIndexMB) << 20
}

// settingNames names the settings of the host's errors and notes
// (host.Options.SettingName), of the record stores' errors
// (store.Options.SettingName), of the protocol servers' messages to
// clients and logs (protocol.Options.SettingName) and of the /metrics
// help texts (metrics.Options.SettingName) as this example sets them: a
// field of the tenants file, the -cache-dir flag (whose default is
// TOPGUN_PLUGIN_CACHE_DIR), or, for a setting every tenant gets the
// default of, the host.Options or protocol.Options field to set in
// openTenant. Without it they would name the server's TOPGUN_*
// variables, which the example does not read.
var settingNames = map[string]string{
	"TOPGUN_PLUGIN_DATA_DIR":            "data_dir",
	"TOPGUN_PLUGIN_MEMORY_MB":           "memory_mb",
	"TOPGUN_PLUGIN_CALL_TIMEOUT":        "call_timeout",
	"TOPGUN_PLUGIN_DATA_MAX_MB":         "data_max_mb",
	"TOPGUN_PLUGIN_DATA_MAX_FILES":      "data_max_files",
	"TOPGUN_PLUGIN_CACHE_DIR":           "-cache-dir (or TOPGUN_PLUGIN_CACHE_DIR)",
	"TOPGUN_PLUGIN_CONFIG":              "host.Options.Config",
	"TOPGUN_PLUGIN_SHA256":              "host.Options.SHA256",
	"TOPGUN_PLUGIN_MAX_REQUEST_BYTES":   "host.Options.MaxRequestBytes",
	"TOPGUN_PLUGIN_MAX_RESPONSE_BYTES":  "host.Options.MaxResponseBytes",
	"TOPGUN_PLUGIN_POOL_SIZE":           "host.Options.PoolSize",
	"TOPGUN_PLUGIN_TRUST":               "host.Options.Trust",
	"TOPGUN_PLUGIN_BREAKER_FAILURES":    "host.Options.BreakerFailures",
	"TOPGUN_PLUGIN_BREAKER_WINDOW":      "host.Options.BreakerWindow",
	"TOPGUN_PLUGIN_BREAKER_BACKOFF":     "host.Options.BreakerBackoff",
	"TOPGUN_PLUGIN_BREAKER_MAX_BACKOFF": "host.Options.BreakerMaxBackoff",
	"TOPGUN_MAX_CONNECTIONS":            "max_connections",
	"TOPGUN_MAX_INDEX_MB":               "max_index_mb",
	"TOPGUN_MAX_OUTBOUND_BYTES":         "protocol.Options.OutboundBytes",
	"TOPGUN_MAX_QUERY_RESULTS":          "protocol.Options.MaxQueryResults",
	"TOPGUN_MAX_MESSAGE_BYTES":          "protocol.Options.MaxMessageBytes",
	"TOPGUN_MAX_BATCH_OPS":              "protocol.Options.MaxBatchOps",
	"TOPGUN_ALLOWED_ORIGINS":            "protocol.Options.OriginPatterns",
}

// settingName is the SettingName of the host, of the record stores, of
// the protocol servers and of /metrics ("" keeps the variable's name).
func settingName(env string) string { return settingNames[env] }

// A name goes into a URL path and a logger name (where "." separates
// names), so it is kept to a safe alphabet.
var tenantName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// holder returns the tenant whose data directory (in dirs, by absolute
// path) is dir or one of its parents.
func holder(dirs map[string]string, dir string) (string, bool) {
	for {
		if name, ok := dirs[dir]; ok {
			return name, true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

// checkRealPaths repeats ParseConfig's checks that no data_dir is or lies
// inside another's and no plugin file lies inside one, on the real paths
// (symbolic links followed): paths apart as written can lead into one
// another. It creates the data directories, which need not exist before.
func checkRealPaths(cfg *Config) error {
	dirs := map[string]string{}
	real := make([]string, len(cfg.Tenants))
	var errs []error
	for i, t := range cfg.Tenants {
		if t.DataDir == "" {
			continue
		}
		if err := os.MkdirAll(t.DataDir, 0o700); err != nil {
			return fmt.Errorf("tenant %s: data_dir %q: %w", t.Name, t.DataDir, err)
		}
		r, err := realPath(t.DataDir)
		if err != nil {
			return fmt.Errorf("tenant %s: data_dir %q: %w", t.Name, t.DataDir, err)
		}
		// One directory under two names: the host's lock would refuse the
		// second open at every retry, and a plugin declaring shared would
		// serve both tenants from it.
		if other, ok := dirs[r]; ok {
			errs = append(errs, fmt.Errorf("tenant %s: data_dir %q is also tenant %q's (%s); each tenant needs its own", t.Name, t.DataDir, other, r))
			continue
		}
		real[i], dirs[r] = r, t.Name
	}
	for i, t := range cfg.Tenants {
		if real[i] != "" {
			if other, ok := holder(dirs, filepath.Dir(real[i])); ok {
				errs = append(errs, fmt.Errorf("tenant %s: data_dir %q is inside tenant %q's (%s), whose plugin could read and change its files; give each tenant a directory of its own, apart from the others", t.Name, t.DataDir, other, real[i]))
			}
		}
		// A plugin file that does not exist is reported when it loads.
		if r, err := realPath(t.Plugin); err == nil {
			if other, ok := holder(dirs, filepath.Dir(r)); ok {
				errs = append(errs, fmt.Errorf("tenant %s: plugin %q is inside tenant %q's data_dir (%s), whose plugin could replace it; keep plugin files out of every data_dir", t.Name, t.Plugin, other, r))
			}
		}
	}
	return errors.Join(errs...)
}

// realPath is the absolute path of p with its symbolic links followed.
func realPath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(abs)
}

// repeatedField returns a field that an object of the JSON text b, already
// decoded, gives more than once. encoding/json keeps the last one, matching
// names regardless of case, so the operator would believe the other set (a
// second "tenants" list would drop the first's tenants).
func repeatedField(b []byte) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	var walk func() (string, bool)
	walk = func() (string, bool) {
		t, err := dec.Token()
		if err != nil {
			return "", false
		}
		if t != json.Delim('{') && t != json.Delim('[') {
			return "", false
		}
		var seen []string // few: the file's fields are all known
		for dec.More() {
			if t == json.Delim('{') {
				kt, err := dec.Token()
				k, ok := kt.(string)
				if err != nil || !ok {
					return "", false
				}
				for _, s := range seen {
					if strings.EqualFold(s, k) {
						return k, true
					}
				}
				seen = append(seen, k)
			}
			if k, ok := walk(); ok {
				return k, true
			}
		}
		dec.Token() // the closing delimiter
		return "", false
	}
	return walk()
}

// LoadConfig reads and validates the tenants file at path.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tenants file: %w", err)
	}
	return ParseConfig(b)
}

// ParseConfig decodes a tenants file and reports every problem in it at
// once, each naming the tenant and the field.
func ParseConfig(b []byte) (*Config, error) {
	var c Config
	dec := json.NewDecoder(bytes.NewReader(b))
	// A misspelt field ("datadir") would otherwise be ignored, and the
	// tenant run without the data directory the operator meant to give.
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("tenants file: %v; see examples/tenants/tenants.json for the format", err)
	}
	// Decode stops after one value: the tenants of a second object (two
	// files joined) would otherwise be left out without a word.
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("tenants file: more after the closing brace of its object; it must hold one JSON object, see examples/tenants/tenants.json for the format")
	}
	if k, ok := repeatedField(b); ok {
		return nil, fmt.Errorf("tenants file: field %q is given more than once in one object; keep one", k)
	}
	var errs []error
	bad := func(i int, name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("tenants file: tenant %d (%q): %s", i+1, name, fmt.Sprintf(format, args...)))
	}
	if len(c.Tenants) == 0 {
		errs = append(errs, errors.New(`tenants file: no tenants; list them as {"tenants": [{"name": "...", "plugin": "...wasm"}]}`))
	}
	if c.MaxConnections < 0 || c.MaxConnections > 1_000_000 {
		errs = append(errs, fmt.Errorf("tenants file: max_connections %d is out of range; use 1 to 1000000, or leave it out for %d", c.MaxConnections, protocol.DefaultMaxConnections))
	}
	names := map[string]bool{}
	dirs := map[string]string{}
	for i := range c.Tenants {
		t := &c.Tenants[i]
		if !tenantName.MatchString(t.Name) {
			bad(i, t.Name, "name must be 1 to 63 lower-case letters, digits, '-' or '_', starting with a letter or digit")
		} else if names[t.Name] {
			bad(i, t.Name, "name is given to another tenant too; names must be unique")
		}
		names[t.Name] = true
		if t.Plugin == "" {
			bad(i, t.Name, "plugin is missing; give the path of a .wasm storage plugin")
		}
		if t.DataDir != "" {
			// The host would refuse the second load on a directory anyway
			// (it locks it); saying so here names both tenants.
			abs, err := filepath.Abs(t.DataDir)
			if err != nil {
				bad(i, t.Name, "data_dir %q: %v", t.DataDir, err)
			} else if other, ok := dirs[abs]; ok {
				bad(i, t.Name, "data_dir %q is also tenant %q's; each tenant needs its own", t.DataDir, other)
			} else {
				dirs[abs] = t.Name
			}
		}
		if t.MemoryMB < 0 || t.MemoryMB > 4096 {
			bad(i, t.Name, "memory_mb %d is out of range; use 1 to 4096, or leave it out for 256", t.MemoryMB)
		}
		if t.DataMaxMB < 0 || t.DataMaxMB > 1<<30 {
			bad(i, t.Name, "data_max_mb %d is out of range; use 0 (no quota) to %d", t.DataMaxMB, 1<<30)
		}
		if t.DataMaxFiles > 1<<30 {
			bad(i, t.Name, "data_max_files %d is out of range; use 1 to %d, leave it out for %d, or a negative number for no limit", t.DataMaxFiles, 1<<30, host.DefaultDataMaxFiles)
		}
		if t.MaxIndexMB > 1<<30 {
			bad(i, t.Name, "max_index_mb %d is out of range; use 1 to %d, leave it out for %d, or a negative number for no limit", t.MaxIndexMB, 1<<30, DefaultMaxIndexMB)
		}
		if t.DataMaxMB > 0 && t.DataMaxFiles < 0 {
			bad(i, t.Name, "data_max_mb needs a limit on the files (the host measures the directory by reading it); leave data_max_files out for %d", host.DefaultDataMaxFiles)
		}
		if t.CallTimeout != "" {
			d, err := time.ParseDuration(t.CallTimeout)
			if err != nil || d < time.Millisecond || d > time.Hour {
				bad(i, t.Name, "call_timeout %q is not a duration from 1ms to 1h (like \"5s\"); leave it out for 10s", t.CallTimeout)
			}
			t.callTimeout = d
		}
	}
	// A plugin sees everything under its data directory: a tenant whose
	// data_dir holds another's could read and overwrite that tenant's
	// data, and one holding a plugin file could change the code another
	// tenant runs at its next start.
	for i := range c.Tenants {
		t := &c.Tenants[i]
		if t.DataDir != "" {
			if abs, err := filepath.Abs(t.DataDir); err == nil {
				if other, ok := holder(dirs, filepath.Dir(abs)); ok {
					bad(i, t.Name, "data_dir %q is inside tenant %q's, whose plugin could read and change its files; give each tenant a directory of its own, apart from the others", t.DataDir, other)
				}
			}
		}
		if t.Plugin != "" {
			if abs, err := filepath.Abs(t.Plugin); err == nil {
				if other, ok := holder(dirs, filepath.Dir(abs)); ok {
					bad(i, t.Name, "plugin %q is inside tenant %q's data_dir, whose plugin could replace it; keep plugin files out of every data_dir", t.Plugin, other)
				}
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &c, nil
}
