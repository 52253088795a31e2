package host

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/abi/abitest"
	"github.com/topgun-go/topgun/plugins/null"
)

// The benchmarks print ratios of wasm null against native null measured in
// the same run. Goals: batch put >= 0.3x native, get <= 10x native, a warm
// compilation cache >= 10x faster than a cold one.

func benchValue() []byte {
	v := make([]byte, 100)
	for i := range v {
		v[i] = byte(i)
	}
	return v
}

func benchKey(i int) string { return fmt.Sprintf("key-%016d", i) }

func benchOpen(b *testing.B, trust Trust) func(*testing.B) abi.Backend {
	path := nullWasm(b)
	return func(b *testing.B) abi.Backend {
		o := DefaultOptions()
		o.Trust = trust
		be, err := Load(context.Background(), path, o)
		if err != nil {
			b.Fatal(err)
		}
		return be
	}
}

// benchLoaded loads the plugin once, before the sub-benchmarks that use
// it: loaded inside one, a load (a cold compilation takes seconds) would
// count in its first round, b.N would stay 1 and a single call would be
// reported. The backend is closed when b ends.
func benchLoaded(b *testing.B, trust Trust) abi.Backend {
	be := benchOpen(b, trust)(b)
	b.Cleanup(func() { _ = be.Close() })
	return be
}

// batchPut measures ns per record of batches of n puts of 100-byte values.
func batchPut(b *testing.B, be abi.Backend, n int) float64 {
	ctx := context.Background()
	value := benchValue()
	batch := &abi.Batch{Mutations: make([]abi.Mutation, n)}
	keys := make([]string, 10*n)
	for i := range keys {
		keys[i] = benchKey(i)
	}
	// Write every key once before timing, so that each timed batch
	// overwrites: otherwise the first ten batches insert, a far slower
	// mix, and how much it weighs depends on b.N, which differs between
	// native and wasm (at a short -benchtime wasm ran only inserts).
	for r := 0; r < 10; r++ {
		batch.Now = int64(r + 1)
		for j := range batch.Mutations {
			batch.Mutations[j] = abi.Mutation{Kind: abi.OpPut, Map: "bench", Key: keys[r*n+j], Value: value}
		}
		if err := be.Apply(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	start, cpu := time.Now(), cpuTime()
	for i := 0; i < b.N; i++ {
		batch.Now = int64(i + 1)
		for j := range batch.Mutations {
			batch.Mutations[j] = abi.Mutation{Kind: abi.OpPut, Map: "bench", Key: keys[(i%10)*n+j], Value: value}
		}
		if err := be.Apply(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(b.N*n), "cpu-ns/record")
	return float64(time.Since(start).Nanoseconds()) / float64(b.N*n)
}

func getOne(b *testing.B, be abi.Backend) float64 {
	ctx := context.Background()
	value := benchValue()
	batch := &abi.Batch{Now: 1}
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = benchKey(i)
		batch.Put("bench", keys[i], false, value, 0)
	}
	if err := be.Apply(ctx, batch); err != nil {
		b.Fatal(err)
	}
	one := make([]string, 1)
	b.ResetTimer()
	start, cpu := time.Now(), cpuTime()
	for i := 0; i < b.N; i++ {
		one[0] = keys[i%len(keys)]
		recs, err := be.Get(ctx, "bench", false, one)
		if err != nil || len(recs) != 1 {
			b.Fatal(err, len(recs))
		}
	}
	b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/op")
	return float64(time.Since(start).Nanoseconds()) / float64(b.N)
}

// goPluginPinned is go-plugin's ns per record for batches of 1, 10, 100
// and 1000 puts over net/rpc, both processes pinned to one vCPU (its best;
// baselines.md in the project's shared reference).
var goPluginPinned = map[int]float64{1: 24_500, 10: 3_561, 100: 1_188, 1000: 868}

// BenchmarkBatchPut compares batches of 1, 10, 100 and 1000 puts through
// wasm null (sandboxed and trusted) with native null, and prints a line
// starting with "RATIO" per size and mode, with go-plugin's figure for the
// size.
func BenchmarkBatchPut(b *testing.B) {
	for _, n := range []int{1, 10, 100, 1000} {
		var native float64
		b.Run("native/"+strconv.Itoa(n), func(b *testing.B) {
			be := null.Open()
			defer be.Close()
			native = batchPut(b, be, n)
			b.ReportMetric(native, "ns/record")
		})
		for _, trust := range []Trust{TrustSandboxed, TrustTrusted} {
			be := benchLoaded(b, trust)
			var ns float64
			b.Run(string(trust)+"/"+strconv.Itoa(n), func(b *testing.B) {
				ns = batchPut(b, be, n)
				b.ReportMetric(ns, "ns/record")
				b.ReportMetric(native/ns, "x_native_throughput")
			})
			// Printed once, after b.Run's last round: a log in the
			// benchmark would print every round, the short first ones too.
			if native > 0 && ns > 0 {
				fmt.Printf("RATIO wasm/native batch put %d, %s: wasm %.0f ns/record, native %.0f ns/record: wasm throughput = %.3fx native (goal >= 0.3x at 1000; go-plugin pinned %.0f ns/record)\n",
					n, trust, ns, native, native/ns, goPluginPinned[n])
			}
		}
	}
}

// BenchmarkGet compares a single-key Get through wasm null with native null.
func BenchmarkGet(b *testing.B) {
	var native float64
	b.Run("native", func(b *testing.B) {
		be := null.Open()
		defer be.Close()
		native = getOne(b, be)
	})
	for _, trust := range []Trust{TrustSandboxed, TrustTrusted} {
		be := benchLoaded(b, trust)
		var ns float64
		b.Run(string(trust), func(b *testing.B) {
			ns = getOne(b, be)
			b.ReportMetric(ns/native, "x_native_latency")
		})
		if native > 0 && ns > 0 {
			fmt.Printf("RATIO wasm/native get, %s: wasm %.0f ns, native %.0f ns: %.1fx native (goal <= 10x; go-plugin 25-110 us)\n", trust, ns, native, ns/native)
		}
	}
}

// BenchmarkLoad measures loading the plugin with a cold and with a warm
// on-disk compilation cache (a fresh cache object on the same directory,
// as a second server start has).
func BenchmarkLoad(b *testing.B) {
	path := nullWasm(b)
	ctx := context.Background()
	loadWith := func(b *testing.B, dir string) time.Duration {
		cache, err := newCompileCache(dir)
		if err != nil {
			b.Fatal(err)
		}
		defer cache.wz.Close(ctx)
		start := time.Now()
		be, err := load(ctx, path, nil, cache)
		if err != nil {
			b.Fatal(err)
		}
		d := time.Since(start)
		_ = be.Close()
		return d
	}
	var cold, warm time.Duration
	b.Run("cold", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			cold = loadWith(b, b.TempDir())
		}
	})
	b.Run("warm", func(b *testing.B) {
		dir := b.TempDir()
		loadWith(b, dir)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			warm = loadWith(b, dir)
		}
	})
	if cold > 0 && warm > 0 {
		fmt.Printf("RATIO load cold/warm cache: cold %s, warm %s: %.1fx faster (goal >= 10x)\n", cold.Round(time.Millisecond), warm.Round(time.Microsecond), float64(cold)/float64(warm))
	}
}

// BenchmarkShared runs the shared abitest benchmarks on wasm null.
func BenchmarkShared(b *testing.B) {
	abitest.RunBenchmarks(b, benchOpen(b, TrustSandboxed))
}
