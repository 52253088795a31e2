package c_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/host"
)

// TestListMaps_atMostMaxMaps checks the promise of WASM.md section 3.3
// that a list_maps response holds at most 2^20 names (abi.MaxMaps): the
// host treats a longer one as malformed and discards the instance, and
// with it every record memkv keeps in memory. With more maps than that,
// memkv answers an error instead, and keeps its records.
func TestListMaps_atMostMaxMaps(t *testing.T) {
	t.Parallel()
	path := build(t, t.TempDir())
	o := host.DefaultOptions()
	o.CacheDir = t.TempDir()
	o.Trust = host.TrustTrusted // 2^20 puts; the meter only slows them down
	ctx := context.Background()
	b, err := host.Load(ctx, path, o)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const maps = abi.MaxMaps + 1
	for start := 0; start < maps; start += abi.MaxBatchOps {
		batch := &abi.Batch{Now: t0}
		for i := start; i < maps && i < start+abi.MaxBatchOps; i++ {
			batch.Put(fmt.Sprintf("m%07d", i), "", false, nil, 0)
		}
		if err := b.Apply(ctx, batch); err != nil {
			t.Fatalf("apply of maps %d..: %v", start, err)
		}
	}
	names, err := b.ListMaps(ctx)
	if err == nil {
		t.Fatalf("list_maps of %d maps = %d names, no error; want an error (at most %d names)", maps, len(names), abi.MaxMaps)
	}
	if abi.CodeOf(err) != abi.CodeResourceExhausted {
		t.Errorf("list_maps of %d maps: %v; want code 6 (resource exhausted)", maps, err)
	}
	// The instance was kept, and so were its records.
	recs, err := b.Get(ctx, fmt.Sprintf("m%07d", maps-1), false, []string{""})
	if err != nil || len(recs) != 1 {
		t.Fatalf("get after list_maps = %+v, %v; want the record (a discarded instance loses every record)", recs, err)
	}
}
