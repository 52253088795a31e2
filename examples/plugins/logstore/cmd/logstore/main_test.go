package main

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/abi/abitest"
	"github.com/topgun-go/topgun/examples/plugins/logstore"
	"github.com/topgun-go/topgun/host"
	"github.com/topgun-go/topgun/host/hosttest"
	"github.com/topgun-go/topgun/sdk"
)

func TestOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     map[string]string
		wantMin int64
		wantErr bool
	}{
		{"defaults", map[string]string{sdk.DataDirKey: "/data"}, logstore.DefaultOptions().CompactMinBytes, false},
		{"min bytes", map[string]string{"compact_min_bytes": "1024"}, 1024, false},
		{"ratio", map[string]string{"compact_garbage_ratio": "0.8"}, logstore.DefaultOptions().CompactMinBytes, false},
		{"bad number", map[string]string{"compact_min_bytes": "lots"}, 0, true},
		{"out of range", map[string]string{"compact_garbage_ratio": "2"}, 0, true},
		{"unknown key", map[string]string{"compact_min_byte": "1"}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := options(tt.cfg)
			if tt.wantErr {
				if !errors.Is(err, abi.ErrInvalidArgument) || !strings.HasPrefix(err.Error(), "logstore: ") {
					t.Fatalf("options(%v) = %v, want a logstore: CodeInvalidArgument error", tt.cfg, err)
				}
				return
			}
			if err != nil || o.CompactMinBytes != tt.wantMin {
				t.Fatalf("options(%v) = %+v, %v; want CompactMinBytes %d", tt.cfg, o, err, tt.wantMin)
			}
		})
	}
}

func TestOpen_noDataDir(t *testing.T) {
	t.Parallel()
	_, err := open(map[string]string{})
	if !errors.Is(err, abi.ErrInvalidArgument) || !strings.Contains(err.Error(), "TOPGUN_PLUGIN_DATA_DIR") {
		t.Fatalf("open without a data directory = %v, want CodeInvalidArgument naming TOPGUN_PLUGIN_DATA_DIR", err)
	}
}

func TestFormat(t *testing.T) {
	t.Parallel()
	if got := format("msg", []any{"a", 1, "b", "x", "odd"}); got != "msg a=1 b=x extra=odd" {
		t.Fatalf("format = %q", got)
	}
}

// dirHarness is a conformance harness whose backends live in fresh
// directories under base and are opened by load.
func dirHarness(base string, load func(t abitest.TB, dir string) abi.Backend) abitest.Harness {
	var mu sync.Mutex
	dirs := map[abi.Backend]string{}
	openIn := func(t abitest.TB, dir string) abi.Backend {
		b := load(t, dir)
		mu.Lock()
		dirs[b] = dir
		mu.Unlock()
		return b
	}
	return abitest.Harness{
		Open: func(t abitest.TB) abi.Backend {
			dir, err := os.MkdirTemp(base, "case")
			if err != nil {
				t.Fatalf("%v", err)
			}
			return openIn(t, dir)
		},
		Reopen: func(t abitest.TB, b abi.Backend) abi.Backend {
			mu.Lock()
			dir := dirs[b]
			delete(dirs, b)
			mu.Unlock()
			if err := b.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			return openIn(t, dir)
		},
	}
}

// TestLoopback_conformance runs the suite on the plugin's open function
// through the whole ABI path (request encoding, the SDK's dispatch,
// response decoding) in process.
func TestLoopback_conformance(t *testing.T) {
	abitest.RunConformance(t, dirHarness(t.TempDir(), func(t abitest.TB, dir string) abi.Backend {
		b, err := sdk.LoopbackOpen(context.Background(), logstore.Name, abi.CapDurable|abi.CapAtomicBatch|abi.CapExpiryIndex, open,
			map[string]string{sdk.DataDirKey: dir, "compact_min_bytes": "65536"})
		if err != nil {
			t.Fatalf("LoopbackOpen: %v", err)
		}
		return b
	}))
}

// tbWriter sends log output to the Logf of a conformance case.
type tbWriter struct{ t abitest.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestHost_conformance builds the plugin for wasip1 and runs the suite on
// it through the wasm host, each case with its own data directory; Reopen
// unloads the plugin and loads it again on the same directory.
func TestHost_conformance(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugin for wasip1; skipped in -short mode")
	}
	wasm := hosttest.BuildPlugin(t, ".")
	abitest.RunConformance(t, dirHarness(t.TempDir(), func(t abitest.TB, dir string) abi.Backend {
		b, err := host.Load(context.Background(), wasm, &host.Options{
			DataDir: dir,
			// The largest batches take seconds in wasm (decoding 100,000
			// mutations); a loaded machine or -race must not fail them on
			// the default 10s deadline.
			CallTimeout: 2 * time.Minute,
			Config:      map[string]string{"compact_min_bytes": "65536"},
			Logger:      hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: tbWriter{t}}),
		})
		if err != nil {
			t.Fatalf("host.Load: %v", err)
		}
		return b
	}))
}

// TestOptions_errorsNameTheKey: a refused value names the configuration key
// the operator set and what it takes. "1e9" was refused as "not a number",
// and -1 or 0 with the Go field's name (CompactMinBytes), which appears
// nowhere in TOPGUN_PLUGIN_CONFIG.
func TestOptions_errorsNameTheKey(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ key, value, want string }{
		{"compact_min_bytes", "1e9", "whole number of bytes"},
		{"compact_min_bytes", "-1", "whole number of bytes"},
		{"compact_garbage_ratio", "0", "(0, 1]"},
		{"compact_garbage_ratio", "NaN", "(0, 1]"},
		{"compact_garbage_ratio", "50%", "(0, 1]"},
	} {
		_, err := options(map[string]string{tt.key: tt.value})
		if !errors.Is(err, abi.ErrInvalidArgument) || !strings.Contains(err.Error(), `"`+tt.key+`"`) ||
			!strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "not a number") {
			t.Errorf("options(%s=%s) = %v; want CodeInvalidArgument naming %q and saying %q", tt.key, tt.value, err, tt.key, tt.want)
		}
	}
}
