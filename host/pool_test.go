package host

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/topgun-go/topgun/abi"
)

// TestPool_multiInstance checks that a plugin declaring CapMultiInstance is
// served by at most PoolSize instances, used concurrently.
func TestPool_multiInstance(t *testing.T) {
	o := testOptions(t)
	o.PoolSize = 2
	b := mustLoad(t, buildTestPlugin(t, "multi"), o)
	if !b.Describe().Capabilities.Has(abi.CapMultiInstance) {
		t.Fatalf("description %+v lacks multi_instance", b.Describe())
	}
	ctx := context.Background()
	var mu sync.Mutex
	seen := map[string]bool{}
	var wg sync.WaitGroup
	deadline := time.Now().Add(10 * time.Second)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200 && time.Now().Before(deadline); i++ {
				recs, err := b.Get(ctx, "whoami", false, []string{"id"})
				if err != nil || len(recs) != 1 {
					t.Errorf("Get: %v", err)
					return
				}
				mu.Lock()
				seen[string(recs[0].Value)] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) < 1 || len(seen) > 2 {
		t.Errorf("served by %d instances, want 1 or 2 (PoolSize 2)", len(seen))
	}
	if b.pool.live > 2 {
		t.Errorf("%d live instances, want at most 2", b.pool.live)
	}
	t.Logf("served by %d instances", len(seen))
}

// TestPool_singleInstanceSerialises checks that a plugin without
// CapMultiInstance runs on exactly one instance under concurrent calls.
func TestPool_singleInstanceSerialises(t *testing.T) {
	b := mustLoad(t, nullWasm(t), nil)
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				batch := &abi.Batch{Now: int64(i + 1)}
				batch.Put("m", string(rune('a'+g)), false, []byte("v"), 0)
				if err := b.Apply(ctx, batch); err != nil {
					t.Errorf("Apply: %v", err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	if b.pool.nextID != 1 || b.pool.size != 1 {
		t.Errorf("pool started %d instances of size %d, want 1 of 1", b.pool.nextID, b.pool.size)
	}
	maps, err := b.ListMaps(ctx)
	if err != nil || len(maps) != 1 {
		t.Errorf("ListMaps = %v, %v", maps, err)
	}
}

// TestCompilationCache checks that a second load of the same file with a
// fresh cache object on the same directory reads the compiled code from
// disk, and logs both times (not asserted: timing depends on the machine).
func TestCompilationCache(t *testing.T) {
	path := nullWasm(t)
	ctx := context.Background()
	dir := t.TempDir()
	o := testOptions(t)
	o.CacheDir = dir
	start := time.Now()
	info1, err := Inspect(ctx, path, o)
	if err != nil {
		t.Fatal(err)
	}
	cold := time.Since(start)
	caches.Lock()
	delete(caches.m, dir) // forget the in-memory cache, as a new process would
	caches.Unlock()
	start = time.Now()
	info2, err := Inspect(ctx, path, o)
	if err != nil {
		t.Fatal(err)
	}
	warm := time.Since(start)
	t.Logf("inspect with a cold cache: %s (compile %s); warm: %s (compile %s); compile %.1fx faster",
		cold.Round(time.Millisecond), info1.CompileTime.Round(time.Millisecond), warm.Round(time.Millisecond),
		info2.CompileTime.Round(time.Millisecond), float64(info1.CompileTime)/float64(info2.CompileTime))
}
