package protocol

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/plugins/redb"
	"github.com/topgun-go/topgun/server/wire"
)

// BenchmarkWrite measures acknowledged writes through one WebSocket: each
// OP_BATCH of 10 ops waits for its OP_ACK (TopGun's fire-and-wait harness
// shape), or 100 batches are pipelined before their acks are read; on the
// null backend and on redb (an fsync per commit).
func BenchmarkWrite(b *testing.B) {
	for _, mode := range []string{"null/wait", "null/pipelined", "redb/wait", "redb/pipelined"} {
		b.Run(mode, func(b *testing.B) {
			cfg := envConfig{opts: Options{Logger: hclog.NewNullLogger()}}
			if strings.HasPrefix(mode, "redb") {
				be, err := redb.Open(context.Background(), filepath.Join(b.TempDir(), "bench.redb"), nil)
				if err != nil {
					b.Fatal(err)
				}
				cfg.backend, cfg.durable = be, true
			}
			e := newEnv(b, cfg)
			c := e.dial(b)
			const per = 10
			batch := func(i int) *wire.OpBatch {
				ops := make([]wire.ClientOp, per)
				for j := range ops {
					ops[j] = putOp(itoa(i*per+j+1), "bench", "k"+itoa((i*per+j)%5000), map[string]any{"n": int64(i)}, cts("b"))
				}
				return &wire.OpBatch{Ops: ops}
			}
			b.ResetTimer()
			start := time.Now()
			if strings.HasSuffix(mode, "wait") {
				for i := 0; i < b.N; i++ {
					c.send(batch(i))
					c.next()
				}
			} else {
				for i := 0; i < b.N; i += 100 {
					n := min(100, b.N-i)
					for k := 0; k < n; k++ {
						c.send(batch(i + k))
					}
					for k := 0; k < n; k++ {
						c.next()
					}
				}
			}
			b.ReportMetric(float64(b.N*per)/time.Since(start).Seconds(), "ops/s")
		})
	}
}

// BenchmarkRedbCommit is the floor of BenchmarkWrite/redb/wait measured in
// the same run: one backend commit of 10 puts, without the protocol or the
// store.
func BenchmarkRedbCommit(b *testing.B) {
	be, err := redb.Open(context.Background(), filepath.Join(b.TempDir(), "floor.redb"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	val := make([]byte, 80)
	start := time.Now()
	for i := 0; i < b.N; i++ {
		batch := &abi.Batch{Now: time.Now().UnixMilli()}
		for j := 0; j < 10; j++ {
			batch.Put("bench", "k"+itoa((i*10+j)%5000), false, val, 0)
		}
		if err := be.Apply(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*10)/time.Since(start).Seconds(), "ops/s")
}

// BenchmarkResend compares 100 quick writes sent as TopGun's client sends
// them (each OP_BATCH re-sends every unacknowledged op: 5,050 ops) with the
// same 100 ops sent once each; the ratio is the cost of re-sends.
func BenchmarkResend(b *testing.B) {
	var once, resend time.Duration
	for _, mode := range []string{"once", "resend"} {
		b.Run(mode, func(b *testing.B) {
			e := newEnv(b, envConfig{opts: Options{Logger: hclog.NewNullLogger()}})
			c := e.dial(b)
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				var ops []wire.ClientOp
				for k := 1; k <= 100; k++ {
					op := putOp(itoa(i*100+k), "bench", "k"+itoa(k), map[string]any{"n": int64(k)}, cts("b"))
					if mode == "once" {
						ops = []wire.ClientOp{op}
					} else {
						ops = append(ops, op)
					}
					c.send(&wire.OpBatch{Ops: ops})
				}
				for k := 0; k < 100; k++ {
					c.next()
				}
			}
			d := time.Since(start) / time.Duration(b.N)
			if mode == "once" {
				once = d
			} else {
				resend = d
			}
			b.ReportMetric(float64(d.Microseconds()), "µs/100writes")
		})
	}
	if once > 0 && resend > 0 {
		b.Logf("100 writes with TopGun's re-sends (5,050 ops) take %.2fx the time of 100 ops sent once (%v vs %v)",
			float64(resend)/float64(once), resend, once)
	}
}

// BenchmarkHandleOps measures the server side alone (no socket, no client
// encoding): one OP_BATCH frame of 100 ops handed to a connection's frame
// handler until its OP_ACK is queued. "new" ops are applied through the
// store (null backend); "resent" ops were already applied on the
// connection and are only decoded and recognised.
func BenchmarkHandleOps(b *testing.B) {
	var perNew, perResent float64
	for _, mode := range []string{"new", "resent"} {
		b.Run(mode, func(b *testing.B) {
			e := newEnv(b, envConfig{opts: Options{Logger: hclog.NewNullLogger()}})
			c := e.srv.newConn(nil, "bench")
			c.start()
			acks := make(chan struct{}, 1024)
			go func() {
				for {
					it, ok := c.out.next(c.ctx.Done())
					if !ok {
						return
					}
					c.sent(it)
					if m, err := wire.Decode(it.b); err == nil && m.Type() == wire.TypeOpAck {
						acks <- struct{}{}
					}
				}
			}()
			b.Cleanup(func() { c.abort(); c.wg.Wait() })
			frame := func(round int) []byte {
				ops := make([]wire.ClientOp, 100)
				for k := range ops {
					ops[k] = putOp(itoa(round*100+k+1), "bench", "k"+itoa(k), map[string]any{"n": int64(k), "title": "write " + itoa(k)}, cts("b"))
				}
				b, _ := wire.Encode(&wire.OpBatch{Ops: ops})
				return b
			}
			fixed := frame(0)
			if mode == "resent" {
				c.handleFrame(fixed, 0)
				<-acks
			}
			var busy time.Duration
			for i := 0; i < b.N; i++ {
				f := fixed
				if mode == "new" {
					f = frame(i + 1)
				}
				start := time.Now()
				c.handleFrame(f, 0)
				<-acks
				busy += time.Since(start)
			}
			per := float64(busy.Nanoseconds()) / float64(b.N*100)
			b.ReportMetric(per, "ns/op-handled")
			if mode == "new" {
				perNew = per
			} else {
				perResent = per
			}
		})
	}
	if perNew > 0 && perResent > 0 {
		b.Logf("a re-sent op costs %.0f ns, %.2f of a new op (%.0f ns), server side", perResent, perResent/perNew, perNew)
	}
}

// BenchmarkLimitedQueryWindow measures changes applied to a full window of
// a limited live query (each change a record that sorts first: it enters
// and the last member leaves), for a small window and a large one. With a
// heap the two cost about the same; a scan of the window per change made
// the large one ~window times slower.
func BenchmarkLimitedQueryWindow(b *testing.B) {
	for _, window := range []int{100, 20_000} {
		b.Run(itoa(window), func(b *testing.B) {
			e := newEnv(b, envConfig{opts: Options{Logger: hclog.NewNullLogger()}})
			w := e.dial(b)
			for i := 0; i <= window; {
				ops := make([]wire.ClientOp, 0, 5000)
				for ; i <= window && len(ops) < cap(ops); i++ {
					ops = append(ops, putOp(itoa(i), "m", "k"+itoa(i), map[string]any{"s": int64(i)}, cts("w")))
				}
				w.write(ops...)
			}
			c := e.dial(b)
			lim := uint32(window)
			c.send(&wire.QuerySub{QueryID: "top", MapName: "m", Query: wire.Query{
				Sort: []wire.SortField{{Field: "s", Direction: wire.Asc}}, Limit: &lim}})
			skipUntil[*wire.QueryResp](c)
			b.ResetTimer()
			for i := 0; i < b.N; i += 100 {
				n := min(100, b.N-i)
				ops := make([]wire.ClientOp, n)
				for j := range ops {
					ops[j] = putOp("b"+itoa(i+j), "m", "n"+itoa(i+j), map[string]any{"s": int64(-1 - i - j)}, cts("w"))
				}
				w.send(&wire.OpBatch{Ops: ops})
				for got := 0; got < 2*n; {
					if _, ok := c.next().(*wire.QueryUpdate); ok {
						got++
					}
				}
			}
		})
	}
}
