package host

import (
	"context"
	"testing"
	"time"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/abi/abitest"
	"github.com/topgun-go/topgun/plugins/null"
)

func wasmNullHarness(t *testing.T) abitest.Harness {
	path := nullWasm(t)
	opts := testOptions(t)
	// A batch of exactly abi.MaxBatchOps mutations takes seconds to decode
	// in a sandboxed guest on a busy machine (and under -race).
	opts.CallTimeout = time.Minute
	return abitest.Harness{Open: func(tb abitest.TB) abi.Backend {
		b, err := Load(context.Background(), path, opts)
		if err != nil {
			tb.Fatalf("Load(%s): %v", path, err)
		}
		return b
	}}
}

// TestConformance_wasmNull runs the whole suite against plugins/null
// compiled to wasm and served through the SDK and this host.
func TestConformance_wasmNull(t *testing.T) {
	abitest.RunConformance(t, wasmNullHarness(t))
}

// TestModel_nativeAndWasmNullAgree runs the model test with one seed
// against native null and against wasm null: both are compared step by step
// with the reference model, so both give identical results.
func TestModel_nativeAndWasmNullAgree(t *testing.T) {
	const seed, steps = 20261126, 3000
	t.Run("native", func(t *testing.T) {
		abitest.RunModel(t, abitest.Harness{Open: func(abitest.TB) abi.Backend { return null.Open() }}, seed, steps)
	})
	t.Run("wasm", func(t *testing.T) {
		abitest.RunModel(t, wasmNullHarness(t), seed, steps)
	})
}
