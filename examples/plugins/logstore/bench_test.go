package logstore

import (
	"context"
	"fmt"
	"testing"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/abi/abitest"
)

// BenchmarkApply measures one durable batch of n 100-byte puts: one fsync
// per batch, so the per-put cost falls as batches grow.
func BenchmarkApply(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("puts=%d", n), func(b *testing.B) {
			s, err := Open(context.Background(), b.TempDir(), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			v := make([]byte, 100)
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				batch := &abi.Batch{Now: int64(i + 1)}
				for j := 0; j < n; j++ {
					batch.Put("map1", fmt.Sprintf("key-%012d", (i*n+j)%100_000), false, v, 0)
				}
				if err := s.Apply(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/put")
		})
	}
}

// BenchmarkShared runs the benchmarks every backend runs (abitest).
func BenchmarkShared(b *testing.B) {
	abitest.RunBenchmarks(b, func(b *testing.B) abi.Backend {
		s, err := Open(context.Background(), b.TempDir(), nil)
		if err != nil {
			b.Fatal(err)
		}
		return s
	})
}
