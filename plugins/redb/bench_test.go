package redb

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/abi/abitest"
)

// The workload of abitest.RunBenchmarks, mirrored here so that the same
// work runs on redb and on raw bbolt in one process: batches of 1000 new
// records with sequential 20-byte keys and 100-byte values; single-key
// random reads over 10,000 records. Both sides use bbolt's default options
// (fsync on every commit) on the same file system.
const (
	benchBatch   = 1000
	benchRecords = 10_000
	benchValue   = 100
	benchMap     = "bench"
	benchT0      = 1_700_000_000_000
)

// benchKey is abitest's benchmark key: 20 bytes, in byte order of i.
func benchKey(i int) string {
	s := strconv.Itoa(i)
	const width = 20 - len("key-")
	if len(s) < width {
		s = "0000000000000000"[:width-len(s)] + s
	}
	return "key-" + s
}

func benchValueBytes() []byte {
	v := make([]byte, benchValue)
	for i := range v {
		v[i] = byte(i*7 + 5)
	}
	return v
}

// benchDir is a temporary directory that also works inside
// testing.Benchmark.
func benchDir(b *testing.B) string {
	dir, err := os.MkdirTemp("", "redb-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

func openBench(b *testing.B) *Backend {
	be, err := Open(context.Background(), filepath.Join(benchDir(b), "bench.redb"), nil) // logs of a benchmark would always print
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = be.Close() })
	return be
}

func openRaw(b *testing.B) (*bolt.DB, []byte) {
	db, err := bolt.Open(filepath.Join(benchDir(b), "raw.db"), 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	name := []byte(benchMap)
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket(name); return err }); err != nil {
		b.Fatal(err)
	}
	return db, name
}

// BenchmarkRedb runs the shared benchmarks on redb as shipped (fsync on).
func BenchmarkRedb(b *testing.B) {
	abitest.RunBenchmarks(b, func(b *testing.B) abi.Backend { return openBench(b) })
}

// BenchmarkRaw is the baseline: the same work directly on bbolt.
func BenchmarkRaw(b *testing.B) {
	b.Run("BatchPut1000", benchRawBatchPut)
	b.Run("Get", benchRawGet)
}

// benchRedbBatchPut is abitest's BatchPut1000 on redb.
func benchRedbBatchPut(b *testing.B) {
	be := openBench(b)
	ctx := context.Background()
	value := benchValueBytes()
	batch := &abi.Batch{Mutations: make([]abi.Mutation, benchBatch)}
	b.SetBytes(int64(benchBatch * (20 + benchValue)))
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		batch.Now = benchT0 + int64(n)
		for i := range batch.Mutations {
			batch.Mutations[i] = abi.Mutation{Kind: abi.OpPut, Map: benchMap, Key: benchKey(n*benchBatch + i), Value: value}
		}
		if err := be.Apply(ctx, batch); err != nil {
			b.Fatalf("Apply = %v", err)
		}
	}
}

// benchRawBatchPut does the same batches as plain Puts in one Update.
func benchRawBatchPut(b *testing.B) {
	db, name := openRaw(b)
	value := benchValueBytes()
	keys := make([]string, benchBatch)
	b.SetBytes(int64(benchBatch * (20 + benchValue)))
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		for i := range keys {
			keys[i] = benchKey(n*benchBatch + i)
		}
		err := db.Update(func(tx *bolt.Tx) error {
			bk := tx.Bucket(name)
			for _, k := range keys {
				if err := bk.Put([]byte(k), value); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

func benchRedbGet(b *testing.B) {
	be := openBench(b)
	ctx := context.Background()
	keys := make([]string, benchRecords)
	value := benchValueBytes()
	for start := 0; start < benchRecords; start += benchBatch {
		batch := &abi.Batch{Now: benchT0}
		for i := start; i < start+benchBatch; i++ {
			keys[i] = benchKey(i)
			batch.Put(benchMap, keys[i], false, value, 0)
		}
		if err := be.Apply(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	rng := rand.New(rand.NewSource(1))
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		i := rng.Intn(len(keys))
		recs, err := be.Get(ctx, benchMap, false, keys[i:i+1])
		if err != nil || len(recs) != 1 {
			b.Fatalf("Get(%q) = %d records, %v; want 1", keys[i], len(recs), err)
		}
	}
}

// benchRawGet reads one key per View and copies its value out, as any
// caller must before the transaction ends.
func benchRawGet(b *testing.B) {
	db, name := openRaw(b)
	keys := make([][]byte, benchRecords)
	value := benchValueBytes()
	for start := 0; start < benchRecords; start += benchBatch {
		err := db.Update(func(tx *bolt.Tx) error {
			bk := tx.Bucket(name)
			for i := start; i < start+benchBatch; i++ {
				keys[i] = []byte(benchKey(i))
				if err := bk.Put(keys[i], value); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	rng := rand.New(rand.NewSource(1))
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		k := keys[rng.Intn(len(keys))]
		var out []byte
		err := db.View(func(tx *bolt.Tx) error {
			if v := tx.Bucket(name).Get(k); v != nil {
				out = append([]byte(nil), v...)
			}
			return nil
		})
		if err != nil || out == nil {
			b.Fatalf("Get(%q) = %v", k, err)
		}
	}
}

// minRatioSteps is the fewest steps (batches, or blocks of gets) a ratio
// measures on each side, whatever -benchtime asks for.
const minRatioSteps = 41

// ratio is one line of BenchmarkRatio's summary.
type ratio struct {
	name          string
	goal          float64 // 0: informational
	redbNs, rawNs float64 // per op, median over the steps
	x             float64 // median over the steps of raw time / redb time
	unit          string
	scale         float64
}

// BenchmarkRatio measures redb against raw bbolt doing the same work in the
// same loop, alternating the two (and which goes first) on every step, so
// load from other processes hits both alike. It prints the speed of redb
// relative to raw (raw time / redb time: 1.00x is as fast as raw bbolt) as
// lines starting with "RATIO", and reports it as the redb/raw metric. The
// ratio is the median over the steps (a batch, or a block of 100 gets) of
// the paired ratio of the two sides' times, and each side's time is its
// median step, so that stalls caused by other processes do not decide the
// result. Goals: batch put >= 0.9x, get >= 0.8x. The NoSync line (no fsync on
// either side) shows the CPU cost alone and has no goal.
func BenchmarkRatio(b *testing.B) {
	var lines []*ratio
	run := func(r *ratio, fn func(b *testing.B, r *ratio)) {
		lines = append(lines, r)
		b.Run(strings.ReplaceAll(r.name, " ", "-"), func(b *testing.B) {
			fn(b, r)
			b.ReportMetric(r.x, "redb/raw")
			b.ReportMetric(r.redbNs, "redb-ns/op")
			b.ReportMetric(r.rawNs, "raw-ns/op")
		})
	}
	run(&ratio{name: "batch put", goal: 0.9, unit: "ms/batch", scale: 1e6}, func(b *testing.B, r *ratio) { ratioBatchPut(b, r, false, false) })
	run(&ratio{name: "batch put nosync", unit: "ms/batch", scale: 1e6}, func(b *testing.B, r *ratio) { ratioBatchPut(b, r, true, false) })
	run(&ratio{name: "batch put random keys", unit: "ms/batch", scale: 1e6}, func(b *testing.B, r *ratio) { ratioBatchPut(b, r, false, true) })
	run(&ratio{name: "get", goal: 0.8, unit: "µs/get", scale: 1e3}, ratioGet)
	fmt.Println()
	for _, r := range lines {
		if r.redbNs == 0 || r.rawNs == 0 {
			continue // filtered out by -bench
		}
		x := r.x
		verdict := "no goal, informational"
		if r.goal > 0 {
			verdict = fmt.Sprintf("goal >= %.1fx, ok", r.goal)
			if x < r.goal {
				verdict = fmt.Sprintf("goal >= %.1fx, BELOW GOAL", r.goal)
			}
		}
		fmt.Printf("RATIO redb/raw %s = %.2fx (%s): redb %.3f %s, raw %.3f %s\n",
			r.name, x, verdict, r.redbNs/r.scale, r.unit, r.rawNs/r.scale, r.unit)
	}
	fmt.Println()
}

// ratioBatchPut puts the same 1000-record batches into redb (Apply) and raw
// bbolt (plain Puts in one Update), alternating. Keys are sequential (new
// records appended in key order, as abitest's BatchPut1000), or random over
// 2^30 keys (inserts all over the tree).
func ratioBatchPut(b *testing.B, r *ratio, noSync, random bool) {
	dir := benchDir(b)
	be, err := Open(context.Background(), filepath.Join(dir, "bench.redb"), &Options{NoSync: noSync})
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	db, err := bolt.Open(filepath.Join(dir, "raw.db"), 0o600, &bolt.Options{NoSync: noSync})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	name := []byte(benchMap)
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket(name); return err }); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	value := benchValueBytes()
	batch := &abi.Batch{Mutations: make([]abi.Mutation, benchBatch)}
	keys := make([]string, benchBatch)
	rng := rand.New(rand.NewSource(1))
	var tRedb, tRaw []time.Duration
	redbStep := func(n int) {
		start := time.Now()
		batch.Now = benchT0 + int64(n)
		for i, k := range keys {
			batch.Mutations[i] = abi.Mutation{Kind: abi.OpPut, Map: benchMap, Key: k, Value: value}
		}
		if err := be.Apply(ctx, batch); err != nil {
			b.Fatalf("Apply = %v", err)
		}
		tRedb = append(tRedb, time.Since(start))
	}
	rawStep := func(int) {
		start := time.Now()
		err := db.Update(func(tx *bolt.Tx) error {
			bk := tx.Bucket(name)
			for _, k := range keys {
				if err := bk.Put([]byte(k), value); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		tRaw = append(tRaw, time.Since(start))
	}
	b.ResetTimer()
	for n := 0; n < max(b.N, minRatioSteps); n++ {
		for i := range keys {
			if random {
				keys[i] = benchKey(rng.Intn(1 << 30))
			} else {
				keys[i] = benchKey(n*benchBatch + i)
			}
		}
		if n%2 == 0 {
			redbStep(n)
			rawStep(n)
		} else {
			rawStep(n)
			redbStep(n)
		}
	}
	r.set(tRedb, tRaw, 1)
}

// ratioGet reads the same random keys from redb and raw bbolt, alternating
// blocks of 100 single-key gets.
func ratioGet(b *testing.B, r *ratio) {
	be := openBench(b)
	db, name := openRaw(b)
	ctx := context.Background()
	value := benchValueBytes()
	keys := make([]string, benchRecords)
	rawKeys := make([][]byte, benchRecords)
	for start := 0; start < benchRecords; start += benchBatch {
		batch := &abi.Batch{Now: benchT0}
		for i := start; i < start+benchBatch; i++ {
			keys[i] = benchKey(i)
			rawKeys[i] = []byte(keys[i])
			batch.Put(benchMap, keys[i], false, value, 0)
		}
		if err := be.Apply(ctx, batch); err != nil {
			b.Fatal(err)
		}
		err := db.Update(func(tx *bolt.Tx) error {
			bk := tx.Bucket(name)
			for i := start; i < start+benchBatch; i++ {
				if err := bk.Put(rawKeys[i], value); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	const block = 100
	idx := make([]int, block)
	rng := rand.New(rand.NewSource(1))
	var tRedb, tRaw []time.Duration
	redbBlock := func(m int) {
		start := time.Now()
		for _, i := range idx[:m] {
			recs, err := be.Get(ctx, benchMap, false, keys[i:i+1])
			if err != nil || len(recs) != 1 {
				b.Fatalf("Get(%q) = %d records, %v; want 1", keys[i], len(recs), err)
			}
		}
		if m == block {
			tRedb = append(tRedb, time.Since(start))
		}
	}
	rawBlock := func(m int) {
		start := time.Now()
		for _, i := range idx[:m] {
			var out []byte
			err := db.View(func(tx *bolt.Tx) error {
				if v := tx.Bucket(name).Get(rawKeys[i]); v != nil {
					out = append([]byte(nil), v...)
				}
				return nil
			})
			if err != nil || out == nil {
				b.Fatalf("raw Get(%q) = %v", rawKeys[i], err)
			}
		}
		if m == block {
			tRaw = append(tRaw, time.Since(start))
		}
	}
	b.ResetTimer()
	total := max(b.N, minRatioSteps*block)
	for n := 0; n < total; n += block {
		m := min(block, total-n)
		for j := range m {
			idx[j] = rng.Intn(len(keys))
		}
		if (n/block)%2 == 0 {
			redbBlock(m)
			rawBlock(m)
		} else {
			rawBlock(m)
			redbBlock(m)
		}
	}
	r.set(tRedb, tRaw, block)
}

// set records the step times of both sides. Step i of redb and step i of
// raw ran back to back, so their ratio is little affected by other
// processes; the median ratio over the steps is the result.
func (r *ratio) set(redb, raw []time.Duration, opsPerStep int) {
	r.redbNs, r.rawNs = medianNs(redb, opsPerStep), medianNs(raw, opsPerStep)
	xs := make([]float64, len(redb))
	for i := range redb {
		xs[i] = float64(raw[i]) / float64(redb[i])
	}
	slices.Sort(xs)
	r.x = xs[len(xs)/2]
}

// medianNs returns the median of step durations divided by the operations
// per step. The median, not the mean, so that a stall from another process
// (a slow fsync, a preemption) in a few steps does not decide the ratio.
func medianNs(steps []time.Duration, opsPerStep int) float64 {
	if len(steps) == 0 {
		return 0
	}
	s := slices.Clone(steps)
	slices.Sort(s)
	return float64(s[len(s)/2].Nanoseconds()) / float64(opsPerStep)
}
