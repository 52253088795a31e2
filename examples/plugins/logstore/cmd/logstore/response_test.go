//go:build !wasip1

package main

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/host"
	"github.com/topgun-go/topgun/host/hosttest"
)

// TestHost_getOverResponseLimitIsResourceExhausted checks the ABI's promise
// that a response over max_response_bytes is answered with code 6
// (resource exhausted) and the plugin keeps working: a get of many large
// values must be refused before logstore reads them all into the guest's
// memory, which ran the instance out of memory (a trap that discards it
// and replays the whole log on the next call).
func TestHost_getOverResponseLimitIsResourceExhausted(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugin for wasip1; skipped in -short mode")
	}
	wasm := hosttest.BuildPlugin(t, ".")
	b, err := host.Load(context.Background(), wasm, &host.Options{
		DataDir:       t.TempDir(),
		MemoryLimitMB: 64,
		CallTimeout:   time.Minute,
	})
	if err != nil {
		t.Fatalf("host.Load: %v", err)
	}
	defer b.Close()
	ctx := context.Background()
	val := make([]byte, abi.MaxValueBytes)
	var keys []string
	for i := 0; i < 10; i++ { // 80 MiB of values under a 64 MiB memory limit
		k := fmt.Sprint("k", i)
		keys = append(keys, k)
		batch := &abi.Batch{Now: int64(i + 1)}
		batch.Put("m", k, false, val, 0)
		if err := b.Apply(ctx, batch); err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
	}
	_, err = b.Get(ctx, "m", false, keys)
	if !errors.Is(err, abi.ErrResourceExhausted) {
		t.Fatalf("get of 80 MiB of values = %.300v; want a resource_exhausted error", err)
	}
	if st := b.Stats(); st.Failures != 0 || st.InstancesDiscarded != 0 {
		t.Fatalf("the get discarded the instance: %+v", st)
	}
	recs, err := b.Get(ctx, "m", false, keys[:2])
	if err != nil || len(recs) != 2 {
		t.Fatalf("get of two values after the refused one = %d records, %v", len(recs), err)
	}
}
