package host

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/topgun-go/topgun/abi"
)

// TestMemory_steadyLoad makes 200,000 calls (puts of 1 KiB values over a
// rolling set of 100 keys, and gets) and checks that the instance's linear
// memory stops growing, since wasm memory never shrinks. On Go 1.26 the
// guest's collector keeps up through the allocations that pay for it even
// without the SDK's yields (this test passes with afterCall doing
// nothing); it checks the bound a plugin author relies on, and the SDK's
// tests check its policy.
func TestMemory_steadyLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("200,000 calls; skipped in -short mode")
	}
	// Trusted mode: memory behaves the same, and the calls run 2-6x faster
	// than sandboxed, which keeps 200,000 of them short under -race.
	o := testOptions(t)
	o.Trust = TrustTrusted
	b := mustLoad(t, nullWasm(t), o)
	ctx := context.Background()
	value := make([]byte, 1024)
	keys := make([]string, 100)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%03d", i)
	}
	pages := func() uint32 {
		in := <-b.pool.idle
		defer func() { b.pool.idle <- in }()
		return in.mem.Size() / 65536
	}
	const calls = 200_000
	var warm uint32
	batch := &abi.Batch{}
	one := make([]string, 1)
	for i := 1; i <= calls; i++ {
		if i%2 == 0 {
			batch.Now = int64(i)
			batch.Mutations = batch.Mutations[:0]
			batch.Put("m", keys[i%len(keys)], false, value, 0)
			if err := b.Apply(ctx, batch); err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
		} else {
			one[0] = keys[i%len(keys)]
			if _, err := b.Get(ctx, "m", false, one); err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
		}
		switch i {
		case 10_000:
			warm = pages()
		case 50_000, 100_000, 150_000:
			t.Logf("after %d calls: %d pages (%d KiB)", i, pages(), pages()*64)
		}
	}
	final := pages()
	t.Logf("memory: %d pages after 10,000 calls, %d pages after %d calls", warm, final, calls)
	// About 200 MiB of garbage went through the guest; memory must stay
	// within a few MiB of its warmed-up size.
	if final > warm+64 {
		t.Errorf("linear memory grew from %d to %d pages under steady load", warm, final)
	}
}

// TestMemory_listExpiredStaysFlat calls list_expired over many expired
// records, as the store's reaper does when they expire together. Each call
// makes garbage in proportion to the expired records (null's ListExpired
// lists and sorts them all) but answers a short list. Without the soft
// memory limit the SDK sets at open (half the instance's), the collector
// let the heap grow past the 64 MiB limit and the instance ran out of
// memory, losing every record.
func TestMemory_listExpiredStaysFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("list_expired over 20,000 records 60 times; skipped in -short mode")
	}
	o := testOptions(t)
	o.Trust = TrustTrusted
	o.MemoryLimitMB = 64
	b := mustLoad(t, nullWasm(t), o)
	ctx := context.Background()
	value := make([]byte, 100)
	for i := 0; i < 20_000; i += 1000 {
		batch := &abi.Batch{Now: 1}
		for j := i; j < i+1000; j++ {
			batch.Put("m", fmt.Sprintf("key-%05d", j), false, value, 5)
		}
		if err := b.Apply(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	pages := func() uint32 {
		in := <-b.pool.idle
		defer func() { b.pool.idle <- in }()
		return in.mem.Size() / 65536
	}
	start := pages()
	var warm uint32
	for i := 1; i <= 60; i++ {
		recs, err := b.ListExpired(ctx, 10, 1000)
		if err != nil {
			t.Fatalf("call %d (%d pages after the writes): %v", i, start, err)
		}
		if len(recs) != 1000 {
			t.Fatalf("call %d: %d records, want 1000", i, len(recs))
		}
		if i%10 == 0 {
			t.Logf("after %d listings: %d pages", i, pages())
		}
		if i == 20 {
			warm = pages()
		}
	}
	final := pages()
	t.Logf("memory: %d pages after the writes, %d after 20 listings, %d after 60", start, warm, final)
	// Each listing makes about 7 MB of garbage: 60 of them without a
	// collection would need 420 MB.
	if final > warm+32 {
		t.Errorf("linear memory grew from %d to %d pages under repeated list_expired", warm, final)
	}
}

// TestMemory_refusedGetKeepsRecords makes gets the host's response limit
// refuses, of records the null plugin lends (sdk.LendRecords). The SDK
// encoded lent records until they passed the limit, the last one whole:
// with 24 MiB of records in a 64 MiB instance the first such get ran it
// out of memory, and the host discarded it with every record.
func TestMemory_refusedGetKeepsRecords(t *testing.T) {
	o := testOptions(t)
	o.Trust = TrustTrusted
	o.MemoryLimitMB = 64
	o.MaxResponseBytes = 16 << 20
	b := mustLoad(t, nullWasm(t), o)
	ctx := context.Background()
	value := make([]byte, 6<<20)
	var keys []string
	for i := range 4 {
		k := fmt.Sprintf("k%d", i)
		keys = append(keys, k)
		batch := &abi.Batch{Now: 1}
		batch.Put("m", k, false, value, 0)
		if err := b.Apply(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		if _, err := b.Get(ctx, "m", false, keys); !errors.Is(err, abi.ErrResourceExhausted) {
			t.Fatalf("get %d of 24 MiB with a 16 MiB limit: %v; want resource exhausted", i, err)
		}
	}
	recs, err := b.Get(ctx, "m", false, keys[3:])
	if err != nil || len(recs) != 1 || len(recs[0].Value) != len(value) {
		t.Fatalf("get of a record after the refused gets: %d records, %v; want it", len(recs), err)
	}
}
