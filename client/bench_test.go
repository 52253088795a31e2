package client

import (
	"context"
	"strconv"
	"testing"
)

// BenchmarkPut measures one acknowledged write against the in-process fake
// server over loopback: client encode, WebSocket round trip, server decode,
// ack. BenchmarkBatch100 sends 100 ops per OP_BATCH; compare its per-op time
// (ns/op / 100) with BenchmarkPut.
func BenchmarkPut(b *testing.B) {
	fs := newFakeServer(b, "")
	o := testOptions(b)
	o.Logger = nil
	c := dial(b, fs.URL, o)
	ctx := context.Background()
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		if err := c.Put(ctx, "bench", strconv.Itoa(i), map[string]any{"n": int64(i)}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBatch100(b *testing.B) {
	fs := newFakeServer(b, "")
	o := testOptions(b)
	o.Logger = nil
	c := dial(b, fs.URL, o)
	ctx := context.Background()
	ops := make([]Op, 100)
	b.ReportAllocs()
	for b.Loop() {
		for j := range ops {
			ops[j] = Op{Map: "bench", Key: strconv.Itoa(j), Value: map[string]any{"n": int64(j)}}
		}
		if err := c.Batch(ctx, ops...); err != nil {
			b.Fatal(err)
		}
	}
}
