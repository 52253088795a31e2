package store

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/plugins/null"
)

// keyRefusing refuses, with abi.CodeInvalidArgument (storage refusing
// what a write holds), every batch writing the key refused holds.
type keyRefusing struct {
	abi.Backend
	refused atomic.Pointer[string]
}

func (b *keyRefusing) Apply(ctx context.Context, batch *abi.Batch) error {
	if k := b.refused.Load(); k != nil {
		for _, m := range batch.Mutations {
			if m.Key == *k {
				return abi.Errorf(abi.CodeInvalidArgument, "key %q is not allowed", m.Key)
			}
		}
	}
	return b.Backend.Apply(ctx, batch)
}

// Stats reports the index's size and bound, and counts each op rejected
// at the bound once, as its caller gets it: a call storage refused for
// another of its ops is merged again in parts (applyApart), and its ops
// refused at the bound are refused at each merge.
func TestStore_Stats_indexRefusedOncePerOp(t *testing.T) {
	const limit = 64 << 10
	be := &keyRefusing{Backend: null.Open()}
	f := newFixture(t, be, func(o *Options) { o.MaxIndexBytes = limit })
	if st := f.s.Stats(); st.MaxIndexBytes != limit || st.IndexBytes != f.s.IndexBytes() || st.IndexRefused != 0 {
		t.Fatalf("Stats of a new store: %+v, want the limit %d, IndexBytes %d, nothing refused", st, limit, f.s.IndexBytes())
	}
	full := false
	for i := 0; i < 10_000 && !full; i++ {
		full = f.apply(put("m", fmt.Sprintf("key-%05d", i), "v", ts(t0, uint32(i), "c")))[0].Err != nil
	}
	if !full {
		t.Fatalf("10,000 new keys stored at an index limit of %d bytes", limit)
	}
	st := f.s.Stats()
	if st.IndexRefused != 1 || st.IndexBytes != f.s.IndexBytes() || st.IndexBytes == 0 {
		t.Fatalf("Stats after one refusal: %+v (IndexBytes %d), want 1 refused", st, f.s.IndexBytes())
	}

	// Storage refuses the update of a stored key (which the index admits),
	// so the call is applied apart, its new keys refused at the bound again.
	bad := "key-00000"
	be.refused.Store(&bad)
	res := f.apply(put("m", bad, "w", ts(t0+1, 0, "c")), put("m", "new-1", "v", ts(t0+1, 1, "c")), put("m", "new-2", "v", ts(t0+1, 2, "c")))
	atBound := 0
	for _, r := range res {
		if errors.Is(r.Err, abi.ErrResourceExhausted) {
			atBound++
		}
	}
	if res[0].Err == nil || atBound != 2 {
		t.Fatalf("results %+v, want the update refused by storage and both new keys at the bound", res)
	}
	if got := f.s.Stats().IndexRefused; got != 1+2 {
		t.Errorf("IndexRefused = %d after 1 + 2 ops were refused at the bound, want 3", got)
	}
}
