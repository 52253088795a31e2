package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/topgun-go/topgun/client/loadgen"
	"github.com/topgun-go/topgun/host/hosttest"
)

// benchDurationEnv sets how long each load run of BenchmarkServerLoad lasts.
const benchDurationEnv = "TOPGUN_BENCH_DURATION"

// BenchmarkServerLoad starts the server binary four times, on the null
// backend, on redb, and on the example plugins wasm null and logstore
// (sandboxed), and drives each over loopback with package loadgen (what
// `topgun bench` runs): acknowledged puts of 100-byte values to 4 maps,
// from 1 and 64 connections, in batches of 1 and 100 ops, for
// TOPGUN_BENCH_DURATION per backend and shape (default 3s). So that load
// from other processes hits both backends alike, each shape's time is cut
// into benchSlices slices per backend, run alternately (null, redb,
// wasm-null, logstore, null, ...); a backend's ops/s is its acknowledged ops over its summed elapsed
// time, its p50 the median of its slices' p50s and its p99 the worst of
// its slices' p99s. It prints every figure, then the redb/null ratio of
// each shape as lines starting with "RATIO" (goal at 64 connections x
// 100-op batches: >= 0.5x), and the wasm-null/null and logstore/redb
// ratios (informational: what a plugin backend costs the whole server).
//
// The load generator shares the machine with the server, so the figures
// are a floor of what the server does with its clients elsewhere.
func BenchmarkServerLoad(b *testing.B) {
	dur := 3 * time.Second
	if v := os.Getenv(benchDurationEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			b.Fatalf("%s=%q is not a duration; use e.g. 3s", benchDurationEnv, v)
		}
		dur = d
	}
	backends := []string{"null", "redb", "wasm-null", "logstore"}
	urls := map[string]string{
		"null": startBenchServer(b, map[string]string{"STORAGE_BACKEND": "null"}),
		"redb": startBenchServer(b, map[string]string{"TOPGUN_REDB_PATH": filepath.Join(b.TempDir(), "bench.redb")}),
		// The example plugins, sandboxed (the default trust mode).
		// The null plugin keeps every record in its Go heap inside wasm: with
		// the default 256 MiB the run's million records would reach the
		// limit, and the benchmark would measure a garbage collector
		// working next to it.
		"wasm-null": startBenchServer(b, map[string]string{
			"STORAGE_BACKEND":         hosttest.BuildPlugin(b, "../../examples/plugins/null"),
			"TOPGUN_PLUGIN_MEMORY_MB": "2048",
		}),
		"logstore": startBenchServer(b, map[string]string{
			"STORAGE_BACKEND":        hosttest.BuildPlugin(b, "../../examples/plugins/logstore/cmd/logstore"),
			"TOPGUN_PLUGIN_DATA_DIR": b.TempDir(),
		}),
	}
	for _, be := range backends {
		// Warm up: connections, the first map pages, the Go runtime.
		if _, err := loadgen.Run(context.Background(), loadgen.Options{URL: urls[be], Connections: 8, BatchSize: 10, Maps: 4, MapPrefix: "warmup-", Duration: 500 * time.Millisecond}); err != nil {
			b.Fatalf("warm-up on %s: %v", be, err)
		}
	}

	var lines []*loadLine
	for _, s := range []struct{ conns, batch int }{{1, 1}, {1, 100}, {64, 1}, {64, 100}} {
		l := &loadLine{conns: s.conns, batch: s.batch, goal: s.conns == 64 && s.batch == 100}
		b.Run(fmt.Sprintf("conns=%d/batch=%d", s.conns, s.batch), func(b *testing.B) {
			for range b.N {
				*l = loadLine{conns: l.conns, batch: l.batch, goal: l.goal}
				for i := range benchSlices {
					for _, be := range backends {
						res, err := loadgen.Run(context.Background(), loadgen.Options{
							URL: urls[be], Connections: s.conns, BatchSize: s.batch, Maps: 4, ValueBytes: 100,
							Duration: max(dur/benchSlices, 100*time.Millisecond),
						})
						if err != nil {
							b.Fatalf("%s, slice %d: %v", be, i, err)
						}
						l.add(be, res)
					}
				}
			}
			b.ReportMetric(0, "ns/op") // one op is a whole measurement
			for _, be := range backends {
				b.ReportMetric(l.opsPerSec(be), be+"-ops/s")
				b.ReportMetric(float64(l.p99(be).Microseconds())/1000, be+"-p99-ms")
			}
			b.ReportMetric(l.ratio("redb", "null"), "redb/null")
		})
		lines = append(lines, l)
	}

	fmt.Println()
	for _, l := range lines {
		for _, be := range backends {
			if len(l.slices[be]) > 0 {
				fmt.Printf("LOAD server %-9s %2d conns x %3d: %8.0f ops/s  p50 %9v  p99 %9v  errors %d  acks %s\n",
					be, l.conns, l.batch, l.opsPerSec(be), roundMs(l.p50(be)), roundMs(l.p99(be)), l.errors(be), l.slices[be][0].AckLevel)
			}
		}
	}
	for _, l := range lines {
		if l.opsPerSec("null") == 0 {
			continue // filtered out by -bench
		}
		verdict := "no goal, informational"
		if l.goal {
			verdict = "goal >= 0.5x, ok"
			if l.ratio("redb", "null") < 0.5 {
				verdict = "goal >= 0.5x, BELOW GOAL"
			}
		}
		fmt.Printf("RATIO server redb/null, %d conns x %d: %.0f / %.0f ops/s = %.2fx (%s)\n",
			l.conns, l.batch, l.opsPerSec("redb"), l.opsPerSec("null"), l.ratio("redb", "null"), verdict)
		for _, pair := range [][2]string{{"wasm-null", "null"}, {"logstore", "redb"}} {
			fmt.Printf("RATIO server %s/%s, %d conns x %d: %.0f / %.0f ops/s = %.2fx (informational)\n",
				pair[0], pair[1], l.conns, l.batch, l.opsPerSec(pair[0]), l.opsPerSec(pair[1]), l.ratio(pair[0], pair[1]))
		}
	}
	fmt.Println()
}

// benchSlices is how many alternating slices each backend's time is cut into.
const benchSlices = 3

// loadLine is one shape of BenchmarkServerLoad: the slices measured on
// each backend.
type loadLine struct {
	conns, batch int
	goal         bool
	slices       map[string][]loadgen.Result
}

func (l *loadLine) add(backend string, r loadgen.Result) {
	if l.slices == nil {
		l.slices = map[string][]loadgen.Result{}
	}
	l.slices[backend] = append(l.slices[backend], r)
}

func (l *loadLine) opsPerSec(backend string) float64 {
	var ops int64
	var elapsed time.Duration
	for _, r := range l.slices[backend] {
		ops += r.Ops
		elapsed += r.Elapsed
	}
	if elapsed == 0 {
		return 0
	}
	return float64(ops) / elapsed.Seconds()
}

// ratio is backend a's ops/s over backend b's.
func (l *loadLine) ratio(a, b string) float64 {
	if n := l.opsPerSec(b); n > 0 {
		return l.opsPerSec(a) / n
	}
	return 0
}

func (l *loadLine) p50(backend string) time.Duration {
	var ps []time.Duration
	for _, r := range l.slices[backend] {
		ps = append(ps, r.P50)
	}
	if len(ps) == 0 {
		return 0
	}
	slices.Sort(ps)
	return ps[len(ps)/2]
}

func (l *loadLine) p99(backend string) time.Duration {
	var worst time.Duration
	for _, r := range l.slices[backend] {
		worst = max(worst, r.P99)
	}
	return worst
}

func (l *loadLine) errors(backend string) int64 {
	var n int64
	for _, r := range l.slices[backend] {
		n += r.Errors
	}
	return n
}

func roundMs(d time.Duration) string {
	return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000)
}

// startBenchServer starts the server binary (startServer) logging warnings
// only, and returns its WebSocket URL; it is stopped with SIGTERM when the
// benchmark ends.
func startBenchServer(b *testing.B, env map[string]string) string {
	b.Helper()
	quiet := map[string]string{"TOPGUN_LOG_LEVEL": "warn", "TOPGUN_LOG_FORMAT": "text"}
	for k, v := range env {
		quiet[k] = v
	}
	p := startServer(b, quiet)
	// Registered after launch's cleanup, so it runs first: a graceful stop.
	b.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(stopTimeout):
		}
	})
	return p.wsURL()
}
