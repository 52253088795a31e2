package host

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/host/internal/meter"
)

// Sandboxed plugins run metered: deadlines are enforced by the guest's own
// checks, not by wazero's exits to Go at every loop.
func TestMeter_sandboxedPluginsAreMetered(t *testing.T) {
	b := mustLoad(t, nullWasm(t), nil)
	if !b.p.metered {
		t.Fatal("the null plugin was not metered in sandboxed mode")
	}
	o := testOptions(t)
	o.Trust = TrustTrusted
	if mustLoad(t, nullWasm(t), o).p.metered {
		t.Fatal("a trusted plugin was metered")
	}
	// The meter's import is not the plugin's: inspect shows the file's own.
	info, err := Inspect(context.Background(), nullWasm(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range info.Imports {
		if len(imp) >= len(meter.ImportModule) && imp[:len(meter.ImportModule)] == meter.ImportModule {
			t.Fatalf("inspect lists the meter's import %s", imp)
		}
	}
}

// A module the meter cannot rewrite still loads, and its deadlines are
// enforced by wazero's interruption instead.
func TestMeter_fallback(t *testing.T) {
	instrument = func([]byte, int32, int32) ([]byte, meter.Info, error) {
		return nil, meter.Info{}, fmt.Errorf("%w: test", meter.ErrUnsupported)
	}
	defer func() { instrument = meter.Instrument }()
	o := testOptions(t)
	o.CallTimeout = 300 * time.Millisecond
	o.CacheDir = t.TempDir() // no metered copy cached by other tests
	b := mustLoad(t, "testdata/wat/loop.wasm", o)
	if b.p.metered {
		t.Fatal("metered although the meter refused the module")
	}
	_, err := b.Get(context.Background(), "evil", false, []string{"k"})
	if !errors.Is(err, abi.ErrDeadlineExceeded) {
		t.Fatalf("err = %v, want a deadline error", err)
	}
}

// With more looping guests than processors, every call still stops at its
// deadline: the check runs on the guest's own goroutine, so it needs no
// other goroutine (a timer, say) to get a processor.
func TestMeter_deadlinesWithEveryProcessorBusy(t *testing.T) {
	n := 2*runtime.GOMAXPROCS(0) + 1
	o := testOptions(t)
	o.CallTimeout = 300 * time.Millisecond
	backends := make([]*Backend, n)
	for i := range backends {
		backends[i] = mustLoad(t, "testdata/wat/loop.wasm", o)
	}
	start := time.Now()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, b := range backends {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = b.Get(context.Background(), "evil", false, []string{"k"})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, abi.ErrDeadlineExceeded) {
			t.Errorf("call %d: err = %v, want a deadline error", i, err)
		}
	}
	// Each call holds a processor for its 300 ms; n of them on GOMAXPROCS
	// processors need about n/GOMAXPROCS rounds. Far more means a deadline
	// was missed.
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("%d looping calls took %s to stop", n, d)
	}
}

// Unbounded recursion in a sandboxed plugin stops at the meter's stack
// bound, before wazero's own ceiling, which lets the stack take 150 MiB of
// the server's heap: through large frames (recurse: 64 live locals) and
// through frames of few instructions but many merged values (recursephi).
// Not parallel: the heap allocated during the call is measured.
func TestMeter_stackBoundHoldsTheHeap(t *testing.T) {
	for _, name := range []string{"recurse", "recursephi", "recursebrt"} {
		t.Run(name, func(t *testing.T) {
			o := testOptions(t)
			o.CacheDir = t.TempDir() // metered now, not a copy cached by an earlier build
			b := mustLoad(t, "testdata/wat/"+name+".wasm", o)
			defer b.Close()
			var ms runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&ms)
			before := ms.TotalAlloc
			_, err := b.Get(context.Background(), "evil", false, []string{"k"})
			runtime.ReadMemStats(&ms)
			alloc := ms.TotalAlloc - before
			if err == nil || !strings.Contains(err.Error(), "call stack passed the limit of 16 MiB") {
				t.Fatalf("Get = %v, want the stack bound's trap", err)
			}
			// The stack doubles as it grows: a 16 MiB bound allocates up to
			// about 3x that in all; the ceiling it replaces, 150 MiB.
			if alloc > 64<<20 {
				t.Errorf("the call allocated %.1f MiB of heap, want under 64 MiB", float64(alloc)/(1<<20))
			}
			t.Logf("heap allocated during the call: %.1f MiB", float64(alloc)/(1<<20))
		})
	}
}

// A module the meter cannot rewrite and that is inside a WASI host call at
// its deadline (here fd_write over a million large iovecs) is stopped
// without its resources (the sys context, the files it has open) being
// closed under that host call from another goroutine: under -race the
// call must finish with a deadline error and no race report.
func TestMeter_fallbackDeadlineInsideHostCall(t *testing.T) {
	instrument = func([]byte, int32, int32) ([]byte, meter.Info, error) {
		return nil, meter.Info{}, fmt.Errorf("%w: test", meter.ErrUnsupported)
	}
	defer func() { instrument = meter.Instrument }()
	o := testOptions(t)
	o.CallTimeout = 200 * time.Millisecond
	o.CacheDir = t.TempDir() // no metered copy cached by other tests
	b := mustLoad(t, "testdata/wat/iovec.wasm", o)
	if b.p.metered {
		t.Fatal("metered although the meter refused the module")
	}
	for i := range 3 {
		_, err := b.Get(context.Background(), "evil", false, []string{"k"})
		if !errors.Is(err, abi.ErrDeadlineExceeded) {
			t.Fatalf("call %d: err = %v, want a deadline error", i, err)
		}
	}
}
