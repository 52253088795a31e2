package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/topgun-go/topgun/client/loadgen"
)

const benchUsage = `Usage: topgun bench [flags]

Drives a running TopGun-compatible server over WebSocket with acknowledged
writes and reports what it sustained. Each of the --connections connections
sends a batch of --batch puts of new keys (values of --value-bytes bytes,
spread over --maps maps named loadgen-0, loadgen-1, ...), waits for the
server's OP_ACK, and sends the next one, until --duration has passed or
--max-ops ops were sent. Only acknowledged ops are counted: on a durable
backend the server acknowledges a write once it is stored durably.

While it runs, a progress line is written to stderr every second. At the
end it prints on stdout the acknowledged ops per second and the p50 and p99
latency of a batch (from sending it to its OP_ACK). The exit status is 0
when every batch was acknowledged, 1 when some failed (the first failure is
printed) or the run was interrupted, 2 for usage errors.

The writes stay on the server: point it at a server whose data you can
throw away (for instance STORAGE_BACKEND=null, or a scratch redb file).

Example:

  TOPGUN_NO_AUTH=1 TOPGUN_BIND_ADDR=127.0.0.1 STORAGE_BACKEND=null topgun-server &
  topgun bench --url ws://127.0.0.1:8080/ws --connections 64 --batch 100 --duration 10s
`

func runBench(ctx context.Context, c *cli, args []string) int {
	const prog = "topgun bench"
	d := loadgen.DefaultOptions()
	fs := newFlagSet(prog, benchUsage)
	url := fs.String("url", "ws://127.0.0.1:8080/ws", "WebSocket URL of the server")
	token := fs.String("token", "", "JWT to authenticate with, for a server with authentication on")
	conns := fs.Int("connections", 64, "connections, each with one batch in flight at a time")
	batch := fs.Int("batch", 100, "puts per batch (1 is sent as CLIENT_OP, more as OP_BATCH)")
	maps := fs.Int("maps", 4, "maps the batches are spread over")
	valueBytes := fs.Int("value-bytes", d.ValueBytes, "bytes per value")
	duration := fs.Duration("duration", d.Duration, "how long to send writes")
	maxOps := fs.Int64("max-ops", 0, "stop after sending this many ops (0: no limit)")
	noProgress := fs.Bool("no-progress", false, "do not write the progress line")
	pos, code, done := c.parseFlags(fs, args)
	if done {
		return code
	}
	if len(pos) > 0 {
		return c.usageError(prog, "unexpected argument %q; settings are flags, e.g. --url ws://127.0.0.1:8080/ws", pos[0])
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"connections", *conns}, {"batch", *batch}, {"maps", *maps}, {"value-bytes", *valueBytes}} {
		// Zero would mean "the default" to loadgen.
		if f.v <= 0 {
			return c.usageError(prog, "--%s %d must be positive", f.name, f.v)
		}
	}
	if *duration <= 0 {
		return c.usageError(prog, "--duration %s must be positive", *duration)
	}
	opts := loadgen.Options{
		URL: *url, Token: *token, Connections: *conns, BatchSize: *batch, Maps: *maps,
		ValueBytes: *valueBytes, Duration: *duration, MaxOps: *maxOps,
	}
	if !*noProgress {
		opts.Progress = c.stderr
	}
	if err := opts.Validate(); err != nil {
		return c.usageError(prog, "%v", err)
	}
	fmt.Fprintf(c.stderr, "%s: %d connections x %d ops per batch, %d maps, %d-byte values, for %v against %s\n",
		prog, *conns, *batch, *maps, *valueBytes, *duration, *url)
	res, err := loadgen.Run(ctx, opts)
	// Interrupted means the caller's context (a signal) ended the run; a
	// dial or ack timeout inside the run is an error to show as such.
	interrupted := err != nil && ctx.Err() != nil
	if err != nil && !interrupted {
		if res.Ops == 0 && res.Batches == 0 && res.Errors == 0 {
			return c.fail(prog, err) // could not start
		}
		writeBenchResult(c.stdout, res)
		return c.fail(prog, err)
	}
	writeBenchResult(c.stdout, res)
	switch {
	case interrupted:
		fmt.Fprintf(c.stderr, "%s: interrupted; the figures cover the run until then\n", prog)
		return exitFail
	case res.Errors > 0:
		return c.fail(prog, fmt.Errorf("%d batches failed; first failure: %v", res.Errors, res.FirstError))
	}
	return exitOK
}

// writeBenchResult prints a run's figures, one per line.
func writeBenchResult(w io.Writer, r loadgen.Result) {
	ack := r.AckLevel
	if ack == "" {
		ack = "none received"
	}
	fmt.Fprintf(w, "connections:   %d\n", r.Connections)
	fmt.Fprintf(w, "batch:         %d ops\n", r.BatchSize)
	fmt.Fprintf(w, "acknowledged:  %d ops in %d batches (ack level %s)\n", r.Ops, r.Batches, ack)
	fmt.Fprintf(w, "elapsed:       %v\n", r.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "throughput:    %.0f ops/s\n", r.OpsPerSec)
	fmt.Fprintf(w, "batch latency: p50 %s  p99 %s  max %s\n", ms(r.P50), ms(r.P99), ms(r.Max))
	fmt.Fprintf(w, "errors:        %d", r.Errors)
	if r.Rejected > 0 {
		fmt.Fprintf(w, " (%d ops rejected)", r.Rejected)
	}
	fmt.Fprintln(w)
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.3fms", float64(d.Microseconds())/1000)
}
