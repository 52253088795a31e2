// Package loadgen drives a TopGun-compatible server with acknowledged
// writes and measures what it sustains: the library behind `topgun bench`
// and the server's load benchmark.
//
// # Basics
//
//	res, err := loadgen.Run(ctx, loadgen.Options{
//		URL:         "ws://127.0.0.1:8080/ws",
//		Connections: 64,
//		BatchSize:   100,
//		Duration:    10 * time.Second,
//		Progress:    os.Stderr,
//	})
//	fmt.Println(res)
//
// Run opens Options.Connections WebSocket connections, completes TopGun's
// handshake on each (AUTH with Options.Token, else DEVICE_HELLO), then
// every connection loops: it sends BatchSize puts of new keys with values
// of ValueBytes bytes to one of Maps maps (as CLIENT_OP for one op, else
// OP_BATCH), waits for the OP_ACK that names the batch's last op, and sends
// the next batch. A server that acknowledges only a prefix of the batch
// (this project's server over its TOPGUN_MAX_BATCH_OPS) gets the rest
// again, as TopGun's client sends it, until the last op is acknowledged.
// One batch is in flight per connection, so the offered load is
// closed-loop: Connections x BatchSize ops at most wait at once.
//
// # What is counted
//
// An op counts in Result.Ops only once the server acknowledged it, which
// on this project's server means it is durable on a durable backend
// (Result.AckLevel says PERSISTED; APPLIED on the null backend). Ops the
// server refused (OP_REJECTED) are not counted. A batch answered with
// ERROR, rejected in part, or whose connection dropped before its ack
// counts in Result.Errors; a dropped connection is re-dialled after a
// pause until the run ends. Latency is measured per batch, from just
// before the frame is written to the arrival of its OP_ACK; P50 and P99 are
// read from a log-linear histogram (about 1.6 % resolution).
//
// # Bounds
//
// The run stops sending when Duration has passed or MaxOps ops have been
// sent, whichever comes first, then waits (at most AckTimeout) for the
// batches in flight. Elapsed runs from the moment every connection is up to
// the last ack, and OpsPerSec = Ops / Elapsed. Cancelling ctx stops the run
// early: Run then returns what it measured so far together with ctx.Err().
//
// # Progress
//
// With Options.Progress set, a line with the ops acknowledged so far, the
// rate of the last interval and the errors is written every second: updated
// in place with a carriage return when Progress is a terminal, one line per
// second otherwise (logs, CI).
package loadgen
