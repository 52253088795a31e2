package host

import (
	"context"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/host/hosttest"
)

func testLogger(t testing.TB) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Output: hosttest.Writer{T: t}, Level: hclog.Debug, DisableTime: true})
}

func nullWasm(t testing.TB) string { return hosttest.BuildPlugin(t, "../examples/plugins/null") }

func testOptions(t testing.TB) *Options {
	o := DefaultOptions()
	o.Logger = testLogger(t)
	return o
}

func mustLoad(t testing.TB, path string, o *Options) *Backend {
	t.Helper()
	if o == nil {
		o = testOptions(t)
	}
	b, err := Load(context.Background(), path, o)
	if err != nil {
		t.Fatalf("Load(%s): %v", path, err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func buildPlugin(t testing.TB, dir string) string { return hosttest.BuildPlugin(t, dir) }
