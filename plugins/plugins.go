// Package plugins resolves a storage backend spec (the value of
// STORAGE_BACKEND) to a backend and wraps it in Store, the portable type the
// server core uses.
//
// A spec is one of the built-in backend names, or a path to a wasm plugin:
//
//	"", "redb"   embedded, file-backed (Options.RedbPath)
//	"postgres"   PostgreSQL (Options.DatabaseURL)
//	"null"       in memory, lost on Close
//	"x.wasm"     a wasm storage plugin, loaded by the host package
//	             (Options.Plugin): any value ending in ".wasm" or
//	             containing a path separator
//
// Store holds what every backend shares, once: the description, a
// human-readable location for logs, a cheap reachability check (Ping) and an
// idempotent Close. Backends never see the spec or the environment.
package plugins

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/host"
	"github.com/topgun-go/topgun/internal/setting"
	"github.com/topgun-go/topgun/plugins/null"
	"github.com/topgun-go/topgun/plugins/postgres"
	"github.com/topgun-go/topgun/plugins/redb"
)

// DefaultRedbPath is the redb file used when Options.RedbPath is empty.
const DefaultRedbPath = redb.DefaultPath

// Errors returned by Open and Check, for errors.Is. The returned errors carry
// a longer message that names the spec and says what to do.
var (
	// ErrUnknownBackend: the spec is neither a built-in name nor a plugin path.
	ErrUnknownBackend = errors.New("plugins: unknown storage backend")
	// ErrMissingDatabaseURL: the postgres backend was chosen without a URL.
	ErrMissingDatabaseURL = errors.New("plugins: postgres backend needs a database URL")
	// ErrPluginNotFound: the spec names a wasm plugin file that does not
	// exist or is not a regular file.
	ErrPluginNotFound = errors.New("plugins: plugin file not found")
)

// specError is an error with a user-facing message that still matches its
// sentinel with errors.Is.
type specError struct {
	msg  string
	kind error
}

func (e *specError) Error() string { return e.msg }
func (e *specError) Unwrap() error { return e.kind }

// Options configures Open. The zero value of each field means its default.
type Options struct {
	// RedbPath is the redb file; empty means DefaultRedbPath.
	RedbPath string
	// DatabaseURL is the PostgreSQL connection string (required for postgres).
	DatabaseURL string
	// Plugin configures the wasm host for a plugin spec; nil means
	// host.DefaultOptions(). Its Logger is ignored: the plugin logs as
	// "plugin.<file name>" under Logger.
	Plugin *host.Options
	// Logger is the parent of the backend's logger, which is named
	// "storage.<backend>" under it; nil means no logging.
	Logger hclog.Logger
}

// DefaultOptions returns the options Open uses when given nil.
func DefaultOptions() *Options {
	return &Options{RedbPath: DefaultRedbPath, Logger: hclog.NewNullLogger()}
}

// Validate checks the options that do not depend on the spec.
func (o *Options) Validate() error {
	if strings.IndexByte(o.RedbPath, 0) >= 0 {
		return errors.New("plugins: redb path contains a NUL byte: give a plain file path")
	}
	if strings.IndexByte(o.DatabaseURL, 0) >= 0 {
		return errors.New("plugins: database URL contains a NUL byte: give a postgres:// URL")
	}
	return nil
}

// withDefaults returns a copy of o (nil: DefaultOptions) with empty fields
// set to their defaults.
func withDefaults(o *Options) *Options {
	d := DefaultOptions()
	if o == nil {
		return d
	}
	c := *o
	if c.RedbPath == "" {
		c.RedbPath = d.RedbPath
	}
	if c.Logger == nil {
		c.Logger = d.Logger
	}
	return &c
}

// builtin is one backend compiled into the server.
type builtin struct {
	// check reports, without any I/O, what the backend lacks in opts.
	check func(spec string, opts *Options) error
	// open opens the backend and returns it with its location.
	open func(ctx context.Context, opts *Options, log hclog.Logger) (abi.Backend, string, error)
}

var builtins = map[string]builtin{
	null.Name: {
		open: func(context.Context, *Options, hclog.Logger) (abi.Backend, string, error) {
			return null.Open(), "memory", nil
		},
	},
	redb.Name: {
		open: func(ctx context.Context, opts *Options, log hclog.Logger) (abi.Backend, string, error) {
			ro := redb.DefaultOptions()
			ro.Logger = log
			b, err := redb.Open(ctx, opts.RedbPath, ro)
			if err != nil {
				return nil, "", err
			}
			loc := opts.RedbPath
			if abs, err := filepath.Abs(loc); err == nil {
				loc = abs
			}
			return b, loc, nil
		},
	},
	postgres.Name: {
		check: func(spec string, opts *Options) error {
			if opts.DatabaseURL == "" {
				return &specError{
					msg:  "plugins: STORAGE_BACKEND=postgres requires DATABASE_URL (for example postgres://user:password@127.0.0.1:5432/topgun)",
					kind: ErrMissingDatabaseURL,
				}
			}
			if err := postgres.CheckURL(opts.DatabaseURL); err != nil {
				return fmt.Errorf("plugins: DATABASE_URL: %w", err)
			}
			return nil
		},
		open: func(ctx context.Context, opts *Options, log hclog.Logger) (abi.Backend, string, error) {
			po := postgres.DefaultOptions()
			po.Logger = log
			b, err := postgres.Open(ctx, opts.DatabaseURL, po)
			if err != nil {
				return nil, "", err
			}
			return b, postgres.RedactURL(opts.DatabaseURL), nil
		},
	},
}

// Builtins returns the names of the built-in backends, sorted.
func Builtins() []string {
	names := make([]string, 0, len(builtins))
	for n := range builtins {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// isPluginPath reports whether spec names a wasm plugin rather than a
// built-in backend.
func isPluginPath(spec string) bool {
	return strings.HasSuffix(spec, ".wasm") || strings.ContainsRune(spec, '/') || strings.ContainsRune(spec, os.PathSeparator)
}

// Check reports, without opening anything, whether Open(ctx, spec, opts)
// has what it needs: a known spec and the settings that spec requires.
// Callers that validate all their configuration up front use it to report
// storage problems together with their own.
func Check(spec string, opts *Options) error {
	opts = withDefaults(opts)
	if err := opts.Validate(); err != nil {
		return err
	}
	if strings.Contains(spec, "://") {
		// Most likely the database URL in the wrong variable: never echo
		// its password.
		return &specError{
			msg:  fmt.Sprintf("plugins: STORAGE_BACKEND=%s is a URL, not a backend; for PostgreSQL set STORAGE_BACKEND=postgres and DATABASE_URL to the URL", postgres.RedactURL(spec)),
			kind: ErrUnknownBackend,
		}
	}
	if isPluginPath(spec) {
		return checkPlugin(spec, opts)
	}
	name := spec
	if name == "" {
		name = redb.Name
	}
	b, ok := builtins[name]
	if !ok {
		return &specError{
			msg:  fmt.Sprintf("plugins: unknown STORAGE_BACKEND %q (valid: %s, or a path to a .wasm plugin)", spec, strings.Join(Builtins(), ", ")),
			kind: ErrUnknownBackend,
		}
	}
	if b.check != nil {
		return b.check(spec, opts)
	}
	return nil
}

// Open resolves spec to a backend and opens it. The empty spec means redb.
// Errors from a backend keep their type for errors.As and their code for
// errors.Is with the abi sentinels.
func Open(ctx context.Context, spec string, opts *Options) (*Store, error) {
	opts = withDefaults(opts)
	if err := Check(spec, opts); err != nil {
		return nil, err
	}
	if isPluginPath(spec) {
		return openPlugin(ctx, spec, opts)
	}
	name := spec
	if name == "" {
		name = redb.Name
	}
	b, loc, err := builtins[name].open(ctx, opts, opts.Logger.Named("storage."+name))
	if err != nil {
		return nil, err
	}
	return newStore(b, loc), nil
}

// checkPlugin reports whether the plugin at path exists and the host
// options are valid; the file itself is verified when it is loaded.
func checkPlugin(path string, opts *Options) error {
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() {
		why := "it is not a regular file"
		if err != nil {
			why = err.Error()
		}
		return &specError{
			msg:  fmt.Sprintf("plugins: STORAGE_BACKEND=%s names a wasm plugin, but %s; give the path of a .wasm file (or one of: %s)", path, why, strings.Join(Builtins(), ", ")),
			kind: ErrPluginNotFound,
		}
	}
	if p := opts.Plugin; p != nil {
		if err := p.Validate(); err != nil {
			return fmt.Errorf("plugins: STORAGE_BACKEND=%s: %w", path, err)
		}
		// The host refuses it too, but only once the plugin is compiled,
		// by then into its data directory: a mistake in the settings.
		if p.DataDir != "" && !host.DataDirApartFromCache(p.DataDir, p.CacheDir) {
			cache := p.CacheDir
			if cache == "" {
				cache = host.DefaultCacheDir()
			}
			return fmt.Errorf("plugins: %s %s and %s %s overlap (one holds the other), and the server runs the native code the cache holds: the plugin could replace it; give them directories apart",
				setting.Name(p.SettingName, "TOPGUN_PLUGIN_DATA_DIR"), p.DataDir, setting.Name(p.SettingName, "TOPGUN_PLUGIN_CACHE_DIR"), cache)
		}
	}
	return nil
}

// openPlugin loads the wasm storage plugin at path through the host.
func openPlugin(ctx context.Context, path string, opts *Options) (*Store, error) {
	ho := host.DefaultOptions()
	if opts.Plugin != nil {
		c := *opts.Plugin
		ho = &c
	}
	ho.Logger = opts.Logger
	b, err := host.Load(ctx, path, ho)
	if err != nil {
		return nil, err
	}
	loc := path
	if abs, err := filepath.Abs(path); err == nil {
		loc = abs
	}
	return newStore(b, loc), nil
}

// Store is the portable storage handle the server core uses: one opened
// backend with its description and location. It is safe for concurrent use.
type Store struct {
	b        abi.Backend
	desc     abi.Description
	location string

	closeOnce sync.Once
	closeErr  error
}

func newStore(b abi.Backend, location string) *Store {
	return &Store{b: b, desc: b.Describe(), location: location}
}

// Backend returns the backend behind the store.
func (s *Store) Backend() abi.Backend { return s.b }

// Describe returns the backend's description, read once at Open.
func (s *Store) Describe() abi.Description { return s.desc }

// Location says where the data lives, fit for logs: the absolute redb file
// path, the PostgreSQL URL with its password redacted, "memory" for null,
// or the plugin path.
func (s *Store) Location() string { return s.location }

// pingMap is the map Ping reads; it need not exist.
const pingMap = "__topgun_ping"

// healthReporter is implemented by backends with a health state of their
// own beyond answering calls: a wasm plugin (host.Backend) whose circuit
// breaker is open after repeated crashes. It is host health, not a storage
// capability, so it is found by type assertion rather than declared in the
// backend's description.
type healthReporter interface{ Healthy() error }

// Ping checks cheaply that the backend answers: it reads one key of a map
// the server never writes, which costs one read transaction (redb) or one
// round trip (postgres). It returns the backend's error, with its code. A
// backend that reports itself unhealthy (a plugin whose circuit breaker is
// open) fails without the read.
func (s *Store) Ping(ctx context.Context) error {
	if h, ok := s.b.(healthReporter); ok {
		if err := h.Healthy(); err != nil {
			return fmt.Errorf("plugins: %s backend at %s is unhealthy: %w", s.desc.Name, s.location, err)
		}
	}
	if _, err := s.b.Get(ctx, pingMap, false, []string{"ping"}); err != nil {
		return fmt.Errorf("plugins: %s backend at %s does not answer: %w", s.desc.Name, s.location, err)
	}
	return nil
}

// Close closes the backend. It is idempotent: later calls return the result
// of the first.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.b.Close() })
	return s.closeErr
}
