package host

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/topgun-go/topgun/abi"
)

// BenchmarkTrust measures what sandboxed mode (wazero's
// WithCloseOnContextDone, which instruments guest loops so a deadline can
// stop them) costs against trusted mode (no instrumentation), on wasm null
// and on the durable logstore example: a batch of 1000 puts, a scan of
// 1000 records (both loop-heavy in the guest: decoding, copying, encoding)
// and a single-key get (mostly the cost of crossing). It prints one line
// per plugin and op starting with "RATIO trusted/sandboxed": how many
// times faster the trusted run was.
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
	ops := []struct {
		name string
		run  func(b *testing.B, be abi.Backend)
	}{
		{"apply1000", func(b *testing.B, be abi.Backend) {
			batch := &abi.Batch{Mutations: make([]abi.Mutation, 1000)}
			for i := 0; i < b.N; i++ {
				batch.Now = int64(i + 1)
				for j := range batch.Mutations {
					batch.Mutations[j] = abi.Mutation{Kind: abi.OpPut, Map: "apply", Key: benchKey(j), Value: value}
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
		open := func(trust Trust) *Backend {
			o := DefaultOptions()
			o.Trust = trust
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
		backends := map[Trust]*Backend{TrustSandboxed: open(TrustSandboxed), TrustTrusted: open(TrustTrusted)}
		for _, op := range ops {
			ns := map[Trust]float64{}
			for _, trust := range []Trust{TrustSandboxed, TrustTrusted} {
				b.Run(pl.name+"/"+op.name+"/"+string(trust), func(b *testing.B) {
					op.run(b, backends[trust])
					ns[trust] = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
				})
			}
			if ns[TrustSandboxed] > 0 && ns[TrustTrusted] > 0 {
				fmt.Printf("RATIO trusted/sandboxed %s %s: sandboxed %.1f us/op, trusted %.1f us/op = %.2fx faster trusted\n",
					pl.name, op.name, ns[TrustSandboxed]/1e3, ns[TrustTrusted]/1e3, ns[TrustSandboxed]/ns[TrustTrusted])
			}
		}
		for _, be := range backends {
			_ = be.Close()
		}
	}
}
