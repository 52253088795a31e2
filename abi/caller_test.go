package abi

import (
	"context"
	"testing"
)

// cannedRT answers every call with one fixed response.
type cannedRT struct{ resp []byte }

func (rt cannedRT) RoundTrip(_ context.Context, _ WasmCall, _ []byte, handle func(Code, []byte) error) error {
	return handle(CodeOK, rt.resp)
}

// BenchmarkCaller_Get measures the host's side of a get of one record: the
// request encoding and the response decoding, without a plugin.
func BenchmarkCaller_Get(b *testing.B) {
	e := NewEncoder()
	e.Records([]Record{{Key: "key-0000000000000001", Value: make([]byte, 100), CreatedAt: 1, UpdatedAt: 2}})
	c := NewCaller(cannedRT{resp: e.Bytes()}, "plugin test")
	ctx := context.Background()
	keys := []string{"key-0000000000000001"}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		recs, err := c.Get(ctx, "bench", false, keys)
		if err != nil || len(recs) != 1 {
			b.Fatal(err, len(recs))
		}
	}
}

// BenchmarkCaller_Apply measures the host's side of an apply of 1000 puts.
func BenchmarkCaller_Apply(b *testing.B) {
	c := NewCaller(cannedRT{}, "plugin test")
	ctx := context.Background()
	batch := &Batch{Now: 1}
	for i := 0; i < 1000; i++ {
		batch.Put("bench", "key-0000000000000001", false, make([]byte, 100), 0)
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := c.Apply(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
}

// TestCaller_noAllocationPerCall: the Caller's own work per call (pooled
// state, a handler bound once) allocates nothing; what a call allocates is
// what its response decodes to.
func TestCaller_noAllocationPerCall(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items at random; run without -race")
	}
	ctx := context.Background()
	e := NewEncoder()
	e.Records(nil)
	get := NewCaller(cannedRT{resp: append([]byte(nil), e.Bytes()...)}, "plugin test")
	apply := NewCaller(cannedRT{}, "plugin test")
	apply.SetPeerMinor(1)
	batch := &Batch{Now: 1}
	batch.Put("m", "k", false, []byte("v"), 0)
	keys := []string{"k"}
	// Warm the pools.
	_, _ = get.Get(ctx, "m", false, keys)
	_ = apply.Apply(ctx, batch)
	if n := testing.AllocsPerRun(100, func() {
		if recs, err := get.Get(ctx, "m", false, keys); err != nil || len(recs) != 0 {
			t.Fatal(recs, err)
		}
	}); n != 0 {
		t.Errorf("a get answered with no records made %v allocations", n)
	}
	if n := testing.AllocsPerRun(100, func() {
		if err := apply.Apply(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("an apply made %v allocations", n)
	}
}
