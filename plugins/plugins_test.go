package plugins_test

import (
	"context"
	"errors"
	"github.com/topgun-go/topgun/host"
	"github.com/topgun-go/topgun/host/hosttest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/plugins"
	"github.com/topgun-go/topgun/plugins/postgres/pgtest"
)

// testLogger sends logs to t.Log, so they show only when a test fails.
func testLogger(t testing.TB) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Level: hclog.Trace, Output: tWriter{t}})
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestOpen_spec(t *testing.T) {
	t.Parallel()
	const choices = "valid: null, postgres, redb, or a path to a .wasm plugin"
	tests := []struct {
		name     string
		spec     string
		url      string
		wantName string // backend name on success
		wantErr  error  // sentinel on failure
		wantMsg  string // part of the error message the user reads
	}{
		{name: "null", spec: "null", wantName: "null"},
		{name: "empty_is_redb", spec: "", wantName: "redb"},
		{name: "redb", spec: "redb", wantName: "redb"},
		{name: "unknown", spec: "mysql", wantErr: plugins.ErrUnknownBackend, wantMsg: choices},
		{name: "case_sensitive", spec: "REDB", wantErr: plugins.ErrUnknownBackend, wantMsg: choices},
		{name: "postgres_without_url", spec: "postgres", wantErr: plugins.ErrMissingDatabaseURL, wantMsg: "STORAGE_BACKEND=postgres requires DATABASE_URL"},
		{name: "missing_wasm_file", spec: "store.wasm", wantErr: plugins.ErrPluginNotFound, wantMsg: "STORAGE_BACKEND=store.wasm names a wasm plugin, but"},
		{name: "missing_relative_path", spec: "./x/y", wantErr: plugins.ErrPluginNotFound, wantMsg: "STORAGE_BACKEND=./x/y names a wasm plugin"},
		{name: "missing_absolute_path", spec: "/opt/plugins/kv", wantErr: plugins.ErrPluginNotFound, wantMsg: "give the path of a .wasm file"},
		{name: "directory", spec: "/", wantErr: plugins.ErrPluginNotFound, wantMsg: "not a regular file"},
		{name: "database_url", spec: "postgres://app:Sup3rSecret@db.internal:5432/topgun", wantErr: plugins.ErrUnknownBackend,
			wantMsg: "STORAGE_BACKEND=postgres://app:xxxxx@db.internal:5432/topgun is a URL, not a backend; for PostgreSQL set STORAGE_BACKEND=postgres and DATABASE_URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "data.redb")
			opts := &plugins.Options{RedbPath: path, DatabaseURL: tt.url, Logger: testLogger(t)}

			checkErr := plugins.Check(tt.spec, opts)
			s, err := plugins.Open(context.Background(), tt.spec, opts)
			if tt.wantErr != nil {
				if s != nil {
					s.Close()
				}
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Open(%q) error = %v, want %v", tt.spec, err, tt.wantErr)
				}
				if !errors.Is(checkErr, tt.wantErr) {
					t.Errorf("Check(%q) = %v, want %v", tt.spec, checkErr, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantMsg) {
					t.Errorf("Open(%q) error %q does not say %q", tt.spec, err, tt.wantMsg)
				}
				if strings.Contains(err.Error(), "Sup3rSecret") || strings.Contains(checkErr.Error(), "Sup3rSecret") {
					t.Errorf("Open(%q) error %q shows the password", tt.spec, err)
				}
				if !strings.HasPrefix(err.Error(), "plugins: ") {
					t.Errorf("Open(%q) error %q does not name its package", tt.spec, err)
				}
				return
			}
			if err != nil || checkErr != nil {
				t.Fatalf("Open(%q) = %v, Check = %v; want no error", tt.spec, err, checkErr)
			}
			defer s.Close()
			d := s.Describe()
			if d.Name != tt.wantName || s.Backend().Describe() != d {
				t.Errorf("Describe() = %+v (backend says %+v), want name %q", d, s.Backend().Describe(), tt.wantName)
			}
			if d.ABIMajor != abi.VersionMajor {
				t.Errorf("ABIMajor = %d, want %d", d.ABIMajor, abi.VersionMajor)
			}
			switch tt.wantName {
			case "null":
				if s.Location() != "memory" {
					t.Errorf("Location() = %q, want memory", s.Location())
				}
			case "redb":
				if s.Location() != path {
					t.Errorf("Location() = %q, want %q", s.Location(), path)
				}
				if _, err := os.Stat(path); err != nil {
					t.Errorf("redb file not created at RedbPath: %v", err)
				}
				if !d.Capabilities.Has(abi.CapDurable) {
					t.Errorf("redb capabilities %v lack durable", d.Capabilities.Names())
				}
			}
		})
	}
}

func TestBuiltins_sorted(t *testing.T) {
	t.Parallel()
	got := plugins.Builtins()
	if want := []string{"null", "postgres", "redb"}; !slices.Equal(got, want) {
		t.Errorf("Builtins() = %v, want %v", got, want)
	}
}

func TestCheck_doesNoIO(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "data.redb")
	if err := plugins.Check("redb", &plugins.Options{RedbPath: path}); err != nil {
		t.Fatalf("Check = %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Check created or touched %s (stat: %v)", path, err)
	}
	if err := plugins.Check("postgres", &plugins.Options{DatabaseURL: "postgres://nobody@127.0.0.1:1/none"}); err != nil {
		t.Errorf("Check(postgres with URL) = %v, want nil without connecting", err)
	}
}

func TestOptions_Validate(t *testing.T) {
	t.Parallel()
	if err := plugins.DefaultOptions().Validate(); err != nil {
		t.Errorf("DefaultOptions().Validate() = %v", err)
	}
	if got := plugins.DefaultOptions().RedbPath; got != "./topgun.redb" {
		t.Errorf("default RedbPath = %q, want ./topgun.redb", got)
	}
	bad := &plugins.Options{RedbPath: "a\x00b"}
	if err := bad.Validate(); err == nil {
		t.Error("Validate accepted a redb path with a NUL byte")
	}
	if _, err := plugins.Open(context.Background(), "redb", bad); err == nil {
		t.Error("Open accepted a redb path with a NUL byte")
	}
}

func TestOpen_nilOptions(t *testing.T) {
	t.Parallel()
	s, err := plugins.Open(context.Background(), "null", nil)
	if err != nil {
		t.Fatalf("Open(null, nil) = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
}

func TestStore_Ping(t *testing.T) {
	t.Parallel()
	for _, spec := range []string{"null", "redb"} {
		t.Run(spec, func(t *testing.T) {
			t.Parallel()
			opts := &plugins.Options{RedbPath: filepath.Join(t.TempDir(), "data.redb"), Logger: testLogger(t)}
			s, err := plugins.Open(context.Background(), spec, opts)
			if err != nil {
				t.Fatal(err)
			}
			testPingAndClose(t, s)
		})
	}
}

// testPingAndClose checks Ping on an open store, then that Close is
// idempotent and that Ping reports the closed backend as unavailable.
func testPingAndClose(t *testing.T, s *plugins.Store) {
	t.Helper()
	if err := s.Ping(context.Background()); err != nil {
		t.Fatalf("Ping on an open store = %v", err)
	}
	if maps, err := s.Backend().ListMaps(context.Background()); err != nil || len(maps) != 0 {
		t.Errorf("Ping left data behind: ListMaps = %v, %v", maps, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Ping(ctx); !errors.Is(err, abi.ErrCanceled) {
		t.Errorf("Ping with a canceled context = %v, want canceled", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	err := s.Ping(context.Background())
	if !errors.Is(err, abi.ErrUnavailable) {
		t.Errorf("Ping after Close = %v, want unavailable", err)
	}
}

func TestStore_redbKeepsData(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	opts := &plugins.Options{RedbPath: filepath.Join(t.TempDir(), "data.redb"), Logger: testLogger(t)}
	s, err := plugins.Open(ctx, "redb", opts)
	if err != nil {
		t.Fatal(err)
	}
	b := &abi.Batch{Now: 1700000000000}
	b.Put("todo-items", "k1", false, []byte("v1"), 0)
	if err := s.Backend().Apply(ctx, b); err != nil {
		t.Fatalf("Apply = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = plugins.Open(ctx, "", opts)
	if err != nil {
		t.Fatalf("reopen = %v", err)
	}
	defer s.Close()
	r, err := abi.GetOne(ctx, s.Backend(), "todo-items", "k1", false)
	if err != nil || string(r.Value) != "v1" {
		t.Errorf("after reopen: GetOne = %+v, %v; want value v1", r, err)
	}
}

func TestStore_postgres(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.FreshSchema(t)
	// The server trusts local connections, so a password in the URL is
	// accepted and must not show in Location.
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatalf("pgtest URL %q: %v", dbURL, err)
	}
	const secret = "pw-must-not-leak"
	u.User = url.UserPassword(u.User.Username(), secret)

	s, err := plugins.Open(context.Background(), "postgres", &plugins.Options{DatabaseURL: u.String(), Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Open(postgres) = %v", err)
	}
	if d := s.Describe(); d.Name != "postgres" || !d.Capabilities.Has(abi.CapShared|abi.CapDurable) {
		t.Errorf("Describe() = %+v, want postgres, durable and shared", d)
	}
	if loc := s.Location(); strings.Contains(loc, secret) || !strings.Contains(loc, u.Hostname()) {
		t.Errorf("Location() = %q: want the host without the password", loc)
	}
	testPingAndClose(t, s)
}

// TestOpen_wasmPlugin opens the null plugin built from examples/ through
// the same Open the server uses: it is an abi backend like the built-ins.
func TestOpen_wasmPlugin(t *testing.T) {
	wasm := hosttest.BuildPlugin(t, "../examples/plugins/null")
	ctx := context.Background()
	s, err := plugins.Open(ctx, wasm, &plugins.Options{Logger: testLogger(t), Plugin: &host.Options{CacheDir: t.TempDir()}})
	if err != nil {
		t.Fatalf("Open(%s) = %v", wasm, err)
	}
	defer s.Close()
	if d := s.Describe(); d.Name != "null" || !d.Capabilities.Has(abi.CapAtomicBatch) {
		t.Fatalf("Describe = %+v", d)
	}
	if s.Location() != wasm {
		t.Errorf("Location = %q, want %q", s.Location(), wasm)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping = %v", err)
	}
	b := &abi.Batch{Now: 1}
	b.Put("todo-items", "k", false, []byte("v"), 0)
	if err := s.Backend().Apply(ctx, b); err != nil {
		t.Fatalf("Apply = %v", err)
	}
	if r, err := abi.GetOne(ctx, s.Backend(), "todo-items", "k", false); err != nil || string(r.Value) != "v" {
		t.Fatalf("GetOne = %+v, %v", r, err)
	}
	bad := &host.Options{MemoryLimitMB: -1}
	if err := plugins.Check(wasm, &plugins.Options{Plugin: bad}); err == nil || !strings.Contains(err.Error(), "TOPGUN_PLUGIN_MEMORY_MB") {
		t.Fatalf("Check with a bad memory limit = %v", err)
	}
}
