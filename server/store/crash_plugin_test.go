package store

import (
	"context"
	"strings"
	"testing"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/host"
	"github.com/topgun-go/topgun/host/hosttest"
)

func init() {
	crashOpeners["plugin"] = func(ctx context.Context, arg string) (abi.Backend, error) {
		wasm, dir, _ := strings.Cut(arg, "|")
		return host.Load(ctx, wasm, &host.Options{DataDir: dir})
	}
}

// TestCrash_logstorePlugin runs the crash test on the durable example plugin
// through the wasm host.
func TestCrash_logstorePlugin(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a wasm plugin")
	}
	wasm := hosttest.BuildPlugin(t, "../../examples/plugins/logstore/cmd/logstore")
	runCrash(t, crashSpec{"plugin", wasm + "|" + t.TempDir()})
}
