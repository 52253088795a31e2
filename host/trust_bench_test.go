package host

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/host/internal/meter"
)

// BenchmarkTrust measures what sandboxed mode costs against trusted mode
// (no instrumentation), and what the meter saves against wazero's own
// interruption (WithCloseOnContextDone, the fallback for modules the meter
// cannot rewrite), on wasm null and on the durable logstore example: a
// batch of 1000 puts, a scan of 1000 records (both loop-heavy in the guest:
// decoding, copying, encoding) and a single-key get (mostly the cost of
// crossing). It prints per plugin and op a line starting with
// "RATIO sandboxed/trusted" (the meter's cost) and one starting with
// "RATIO fallback/sandboxed" (how many times slower the fallback is).
func BenchmarkTrust(b *testing.B) {
	plugins := []struct {
		name string
		path func(testing.TB) string
		dir  bool
	}{
		{"null", nullWasm, false},
		{"logstore", logstoreWasm, true},
	}
	value := benchValue()
	// Made once: formatting 1000 keys in the timed loop took about 100 us,
	// the same on every side, which pulled the ratios towards 1.
	keys := make([]string, 1000)
	for j := range keys {
		keys[j] = benchKey(j)
	}
	ops := []struct {
		name string
		run  func(b *testing.B, be abi.Backend)
	}{
		{"apply1000", func(b *testing.B, be abi.Backend) {
			batch := &abi.Batch{Mutations: make([]abi.Mutation, 1000)}
			for i := 0; i < b.N; i++ {
				batch.Now = int64(i + 1)
				for j := range batch.Mutations {
					batch.Mutations[j] = abi.Mutation{Kind: abi.OpPut, Map: "apply", Key: keys[j], Value: value}
				}
				if err := be.Apply(context.Background(), batch); err != nil {
					b.Fatal(err)
				}
			}
		}},
		{"scan1000", func(b *testing.B, be abi.Backend) {
			for i := 0; i < b.N; i++ {
				p, err := be.Scan(context.Background(), abi.ScanRequest{Map: "bench", Limit: 1000})
				if err != nil || len(p.Records) != 1000 {
					b.Fatal(err, len(p.Records))
				}
			}
		}},
		{"get1", func(b *testing.B, be abi.Backend) {
			one := []string{benchKey(7)}
			for i := 0; i < b.N; i++ {
				if recs, err := be.Get(context.Background(), "bench", false, one); err != nil || len(recs) != 1 {
					b.Fatal(err, len(recs))
				}
			}
		}},
	}
	for _, pl := range plugins {
		path := pl.path(b)
		open := func(mode string) *Backend {
			o := DefaultOptions()
			o.Trust = TrustTrusted
			if mode != "trusted" {
				o.Trust = TrustSandboxed
			}
			if mode == "fallback" {
				instrument = func([]byte, int32, int32) ([]byte, meter.Info, error) {
					return nil, meter.Info{}, meter.ErrUnsupported
				}
				defer func() { instrument = meter.Instrument }()
				o.CacheDir = b.TempDir() // no metered copy cached
			}
			o.CallTimeout = time.Minute
			if pl.dir {
				o.DataDir = b.TempDir()
			}
			be, err := Load(context.Background(), path, o)
			if err != nil {
				b.Fatal(err)
			}
			fill := &abi.Batch{Now: 1}
			for j := 0; j < 1000; j++ {
				fill.Put("bench", benchKey(j), false, value, 0)
			}
			if err := be.Apply(context.Background(), fill); err != nil {
				b.Fatal(err)
			}
			return be
		}
		modes := []string{"sandboxed", "trusted", "fallback"}
		backends := map[string]*Backend{}
		for _, m := range modes {
			backends[m] = open(m)
		}
		for _, op := range ops {
			ns := map[string]float64{}
			for _, m := range modes {
				b.Run(pl.name+"/"+op.name+"/"+m, func(b *testing.B) {
					op.run(b, backends[m])
					ns[m] = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
				})
			}
			if ns["sandboxed"] > 0 && ns["trusted"] > 0 && ns["fallback"] > 0 {
				fmt.Printf("RATIO sandboxed/trusted %s %s: sandboxed %.1f us/op, trusted %.1f us/op = %.2fx the trusted time\n",
					pl.name, op.name, ns["sandboxed"]/1e3, ns["trusted"]/1e3, ns["sandboxed"]/ns["trusted"])
				fmt.Printf("RATIO fallback/sandboxed %s %s: wazero's interruption %.1f us/op = %.2fx the metered time\n",
					pl.name, op.name, ns["fallback"]/1e3, ns["fallback"]/ns["sandboxed"])
			}
		}
		for _, be := range backends {
			_ = be.Close()
		}
	}
}
