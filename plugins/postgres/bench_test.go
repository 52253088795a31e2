package postgres

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/abi/abitest"
	"github.com/topgun-go/topgun/plugins/postgres/pgtest"
)

// The batch-upsert workload of the goal: batches of 1000 new records with
// 20-byte keys and 100-byte values (the shape of abitest's BatchPut1000).
const (
	benchBatch = 1000
	benchValue = 100
	benchConns = 8
)

func benchKey(i int) string {
	s := strconv.Itoa(i)
	return "key-" + "0000000000000000"[:16-len(s)] + s // 20 bytes
}

func benchOpen(b *testing.B) (*Backend, string) {
	b.Helper()
	url := pgtest.FreshSchema(b)
	opts := DefaultOptions()
	opts.MaxConns = benchConns
	opts.Logger = testLogger(b)
	be, err := Open(context.Background(), url, opts)
	if err != nil {
		b.Fatalf("Open: %v", err)
	}
	b.Cleanup(func() { _ = be.Close() })
	return be, url
}

// BenchmarkPostgres runs the benchmarks every backend runs.
func BenchmarkPostgres(b *testing.B) {
	pgtest.URL(b)
	abitest.RunBenchmarks(b, func(b *testing.B) abi.Backend {
		be, _ := benchOpen(b)
		return be
	})
}

// An upserter writes the n-th batch of the workload (keys n*1000 ...
// n*1000+999, all new).
type upserter func(ctx context.Context, n int) error

// backendUpserter writes through the backend's Apply.
func backendUpserter(b *testing.B) upserter {
	be, _ := benchOpen(b)
	value := make([]byte, benchValue)
	batch := &abi.Batch{Mutations: make([]abi.Mutation, benchBatch)}
	return func(ctx context.Context, n int) error {
		batch.Now = int64(n + 1)
		for i := range batch.Mutations {
			batch.Mutations[i] = abi.Mutation{Kind: abi.OpPut, Map: "bench", Key: benchKey(n*benchBatch + i), Value: value}
		}
		return be.Apply(ctx, batch)
	}
}

// rawPool opens a plain pgx pool on a fresh schema that holds topgun_maps
// with the backend's indexes, so raw methods pay the same index upkeep.
func rawPool(b *testing.B) *pgxpool.Pool {
	b.Helper()
	be, url := benchOpen(b)
	_ = be.Close()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns = benchConns
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	return pool
}

const upsertOneSQL = `INSERT INTO topgun_maps (map_name, key, value, expiration_time, is_backup, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (map_name, key, is_backup) DO UPDATE
SET value = EXCLUDED.value, expiration_time = EXCLUDED.expiration_time, updated_at = EXCLUDED.updated_at`

const mergeStageSQL = `INSERT INTO topgun_maps (map_name, key, value, expiration_time, is_backup, created_at, updated_at)
SELECT map_name, key, value, expiration_time, is_backup, $1, $1 FROM topgun_stage
ON CONFLICT (map_name, key, is_backup) DO UPDATE
SET value = EXCLUDED.value, expiration_time = EXCLUDED.expiration_time, updated_at = EXCLUDED.updated_at`

// rawMethods are the ways to write the same 1000-row upserts with pgx
// directly, without the backend.
var rawMethods = []struct {
	name string
	open func(b *testing.B) upserter
}{
	// One INSERT ... SELECT FROM unnest(arrays) ON CONFLICT statement.
	{"Unnest", func(b *testing.B) upserter {
		pool := rawPool(b)
		value := make([]byte, benchValue)
		return func(ctx context.Context, n int) error {
			maps, keys := make([]string, benchBatch), make([]string, benchBatch)
			vals, exps, backups := make([][]byte, benchBatch), make([]int64, benchBatch), make([]bool, benchBatch)
			for i := range benchBatch {
				maps[i], keys[i], vals[i] = "bench", benchKey(n*benchBatch+i), value
			}
			_, err := pool.Exec(ctx, upsertSQL, maps, keys, vals, exps, backups, int64(n+1))
			return err
		}
	}},
	// 1000 single-row upserts sent as one pgx.Batch in a transaction.
	{"PgxBatch", func(b *testing.B) upserter {
		pool := rawPool(b)
		value := make([]byte, benchValue)
		return func(ctx context.Context, n int) error {
			return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				var batch pgx.Batch
				for i := range benchBatch {
					batch.Queue(upsertOneSQL, "bench", benchKey(n*benchBatch+i), value, int64(0), false, int64(n+1))
				}
				return tx.SendBatch(ctx, &batch).Close()
			})
		}
	}},
	// COPY into a temporary table, then one INSERT ... SELECT ON CONFLICT.
	{"CopyMerge", func(b *testing.B) upserter {
		pool := rawPool(b)
		ctx := context.Background()
		conn, err := pool.Acquire(ctx)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(conn.Release)
		if _, err := conn.Exec(ctx, `CREATE TEMP TABLE topgun_stage (map_name TEXT, key TEXT, value BYTEA, expiration_time BIGINT, is_backup BOOLEAN)`); err != nil {
			b.Fatal(err)
		}
		value := make([]byte, benchValue)
		cols := []string{"map_name", "key", "value", "expiration_time", "is_backup"}
		return func(ctx context.Context, n int) error {
			return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				if _, err := tx.CopyFrom(ctx, pgx.Identifier{"topgun_stage"}, cols, pgx.CopyFromSlice(benchBatch, func(i int) ([]any, error) {
					return []any{"bench", benchKey(n*benchBatch + i), value, int64(0), false}, nil
				})); err != nil {
					return err
				}
				if _, err := tx.Exec(ctx, mergeStageSQL, int64(n+1)); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, `TRUNCATE topgun_stage`)
				return err
			})
		}
	}},
}

func runUpserter(b *testing.B, open func(b *testing.B) upserter) {
	step := open(b)
	ctx := context.Background()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		if err := step(ctx, n); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkRaw measures the raw pgx methods for the batch-upsert workload.
func BenchmarkRaw(b *testing.B) {
	pgtest.URL(b)
	for _, m := range rawMethods {
		b.Run(m.name, func(b *testing.B) { runUpserter(b, m.open) })
	}
}

// minRatioSteps is the fewest batches BenchmarkRatio writes with each
// method, whatever -benchtime asks for.
const minRatioSteps = 21

// BenchmarkRatio compares the backend's batch upsert with the fastest raw
// pgx method, all writing the same batches in the same loop: each step
// writes one batch with every method, in a rotating order, so that load
// from other processes hits all alike. It prints
//
//	postgres/raw batch upsert = 0.95x ...
//
// where the ratio is raw time / backend time (1.00x: as fast as raw pgx),
// the median over the steps of the paired ratios against the raw method
// with the smallest median time. Goal: >= 0.8x.
func BenchmarkRatio(b *testing.B) {
	pgtest.URL(b)
	names := []string{"backend"}
	steps := []upserter{backendUpserter(b)}
	for _, m := range rawMethods {
		names = append(names, m.name)
		steps = append(steps, m.open(b))
	}
	ctx := context.Background()
	n := max(b.N, minRatioSteps)
	times := make([][]float64, len(steps)) // [method][step] ns
	b.ResetTimer()
	for i := range n {
		for j := range steps {
			k := (i + j) % len(steps)
			start := time.Now()
			if err := steps[k](ctx, i); err != nil {
				b.Fatalf("%s: %v", names[k], err)
			}
			times[k] = append(times[k], float64(time.Since(start)))
		}
	}
	b.StopTimer()
	median := func(xs []float64) float64 { s := slices.Clone(xs); slices.Sort(s); return s[len(s)/2] }
	best := 1
	for k := 2; k < len(steps); k++ {
		if median(times[k]) < median(times[best]) {
			best = k
		}
	}
	paired := make([]float64, n)
	for i := range n {
		paired[i] = times[best][i] / times[0][i]
	}
	x := median(paired)
	for k := range steps {
		fmt.Printf("  %-9s median %7.2f ms/batch (%6.0f rows/s)\n", names[k], median(times[k])/1e6, benchBatch*1e9/median(times[k]))
	}
	verdict := "goal >= 0.8x, ok"
	if x < 0.8 {
		verdict = "goal >= 0.8x, BELOW GOAL"
	}
	fmt.Printf("postgres/raw batch upsert = %.2fx (%s): backend %.2f ms, raw %s %.2f ms per 1000-row batch, %d steps\n",
		x, verdict, median(times[0])/1e6, names[best], median(times[best])/1e6, n)
	b.ReportMetric(x, "postgres/raw")
	b.ReportMetric(median(times[0]), "backend-ns/batch")
	b.ReportMetric(median(times[best]), "raw-ns/batch")
}

// BenchmarkApplyChecked measures a checked commit of 1, 10 and 100
// records, each expected to hold what the commit before wrote (the store's
// commit on shared storage): ns/op is per commit.
func BenchmarkApplyChecked(b *testing.B) {
	pgtest.URL(b)
	for _, n := range []int{1, 10, 100} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			be, _ := benchOpen(b)
			ctx := context.Background()
			vals := [2][]byte{make([]byte, benchValue), make([]byte, benchValue)}
			vals[1][0] = 1
			batch := func(i int) *abi.Batch {
				bt := &abi.Batch{Now: int64(i + 1)}
				for k := range n {
					bt.Put("bench", benchKey(k), false, vals[i%2], 0)
				}
				return bt
			}
			if err := be.Apply(ctx, batch(1)); err != nil {
				b.Fatal(err)
			}
			expect := make([]abi.Expect, n)
			i := 0
			for b.Loop() {
				for k := range expect {
					expect[k] = abi.Expect{Map: "bench", Key: benchKey(k), Present: true, Value: vals[(i+1)%2]}
				}
				if err := be.ApplyChecked(ctx, batch(i), expect); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
