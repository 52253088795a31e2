package main

import (
	"context"
	"testing"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/abi/abitest"
	"github.com/topgun-go/topgun/host"
	"github.com/topgun-go/topgun/host/hosttest"
)

// BenchmarkHost runs the shared benchmarks on the plugin through the wasm
// host; compare with BenchmarkShared of package logstore for the cost of
// the sandbox.
func BenchmarkHost(b *testing.B) {
	wasm := hosttest.BuildPlugin(b, ".")
	abitest.RunBenchmarks(b, func(b *testing.B) abi.Backend {
		be, err := host.Load(context.Background(), wasm, &host.Options{DataDir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		return be
	})
}
