package abitest

import (
	"context"
	"math/rand"
	"strconv"
	"testing"

	"github.com/topgun-go/topgun/abi"
)

// Benchmark shape: batches of 1000 records with 20-byte keys and 100-byte
// values, reads over 10,000 preloaded records.
const (
	benchBatch   = 1000
	benchRecords = 10_000
	benchValue   = 100
	benchMap     = "bench"
)

// benchKey returns the i-th benchmark key: 20 bytes, in byte order of i.
func benchKey(i int) string {
	s := strconv.Itoa(i)
	const width = 20 - len("key-")
	if len(s) < width {
		s = "0000000000000000"[:width-len(s)] + s
	}
	return "key-" + s
}

// preload puts benchRecords records into benchMap and returns their keys.
func preload(b *testing.B, be abi.Backend) []string {
	b.Helper()
	ctx := context.Background()
	keys := make([]string, benchRecords)
	value := pattern(benchValue, 5)
	for start := 0; start < benchRecords; start += benchBatch {
		batch := &abi.Batch{Now: t0 + int64(start), Mutations: make([]abi.Mutation, 0, benchBatch)}
		for i := start; i < start+benchBatch; i++ {
			keys[i] = benchKey(i)
			batch.Put(benchMap, keys[i], false, value, 0)
		}
		if err := be.Apply(ctx, batch); err != nil {
			b.Fatalf("preload: Apply = %v", err)
		}
	}
	return keys
}

// RunBenchmarks runs the shared benchmarks as sub-benchmarks of b, each on a
// fresh backend from open (which the benchmark closes):
//
//   - BatchPut1000: b.N batches of 1000 new records (sequential keys),
//     reported as records/s.
//   - Get: one random key per Get over 10,000 preloaded records.
//   - Scan: a full scan (default page size) of 10,000 records, reported as
//     records/s.
func RunBenchmarks(b *testing.B, open func(b *testing.B) abi.Backend) {
	b.Run("BatchPut1000", func(b *testing.B) {
		be := open(b)
		defer be.Close()
		ctx := context.Background()
		value := pattern(benchValue, 5)
		batch := &abi.Batch{Mutations: make([]abi.Mutation, benchBatch)}
		b.SetBytes(int64(benchBatch * (20 + benchValue)))
		b.ResetTimer()
		for n := 0; n < b.N; n++ {
			batch.Now = t0 + int64(n)
			for i := range batch.Mutations {
				batch.Mutations[i] = abi.Mutation{Kind: abi.OpPut, Map: benchMap, Key: benchKey(n*benchBatch + i), Value: value}
			}
			if err := be.Apply(ctx, batch); err != nil {
				b.Fatalf("Apply = %v", err)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "records/s")
	})
	b.Run("Get", func(b *testing.B) {
		be := open(b)
		defer be.Close()
		keys := preload(b, be)
		ctx := context.Background()
		rng := rand.New(rand.NewSource(1))
		b.ResetTimer()
		for n := 0; n < b.N; n++ {
			i := rng.Intn(len(keys))
			recs, err := be.Get(ctx, benchMap, false, keys[i:i+1])
			if err != nil || len(recs) != 1 {
				b.Fatalf("Get(%q) = %d records, %v; want 1", keys[i], len(recs), err)
			}
		}
	})
	b.Run("Scan", func(b *testing.B) {
		be := open(b)
		defer be.Close()
		preload(b, be)
		ctx := context.Background()
		b.ResetTimer()
		for n := 0; n < b.N; n++ {
			var cursor []byte
			count := 0
			for pages := 1; ; pages++ {
				if pages > benchRecords {
					b.Fatalf("Scan did not finish after %d pages", benchRecords)
				}
				p, err := be.Scan(ctx, abi.ScanRequest{Map: benchMap, Cursor: cursor})
				if err != nil {
					b.Fatalf("Scan = %v", err)
				}
				count += len(p.Records)
				if len(p.Cursor) == 0 {
					break
				}
				cursor = p.Cursor
			}
			if count != benchRecords {
				b.Fatalf("Scan visited %d records; want %d", count, benchRecords)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N*benchRecords)/b.Elapsed().Seconds(), "records/s")
	})
}
