package protocol

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/plugins/null"
	"github.com/topgun-go/topgun/server/merkle"
	"github.com/topgun-go/topgun/server/store"
	"github.com/topgun-go/topgun/server/wire"
)

// An ORMAP_DIFF_REQUEST naming one key many times must not make the server
// build an answer holding that key's state once per mention: a frame of a
// few KiB would otherwise cost gigabytes of memory (a 2 MiB frame names a
// key a million times). TopGun's client never repeats a key, and one entry
// per distinct key answers it fully.
func TestDiffRequest_repeatedKeyAnsweredOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	c := e.dial(t)
	big := strings.Repeat("x", 16<<10)
	c.write(orAddOp("1", "tags", "k", big, cts("c")))

	keys := make([]string, 2000)
	for i := range keys {
		keys[i] = "k"
	}
	keys = append(keys, "other", "other")
	c.send(&wire.ORMapDiffRequest{MapName: "tags", Keys: keys})
	d := expect[*wire.ORMapDiffResponse](c)
	if len(d.Entries) != 2 || d.Entries[0].Key != "k" || len(d.Entries[0].Records) != 1 ||
		d.Entries[1].Key != "other" || len(d.Entries[1].Records) != 0 {
		t.Fatalf("diff response has %d entries, want one per distinct key (k, other)", len(d.Entries))
	}
}

// getCountingBackend counts the keys asked of the backend's Get.
type getCountingBackend struct {
	abi.Backend
	keys atomic.Int64
}

func (b *getCountingBackend) Get(ctx context.Context, mapName string, backup bool, keys []string) ([]abi.Record, error) {
	b.keys.Add(int64(len(keys)))
	return b.Backend.Get(ctx, mapName, backup, keys)
}

// An ORMAP_DIFF_REQUEST reads the keys it names, not every key of the
// leaves they fall in: a request naming one key per leaf (4096 short keys,
// a few KiB) would otherwise read, decode and hold the whole map for an
// answer of a few entries, as often as the client sends it, with no
// answer large enough to slow it down.
func TestDiffRequest_readsOnlyTheNamedKeys(t *testing.T) {
	t.Parallel()
	cb := &getCountingBackend{Backend: null.Open()}
	e := newEnv(t, envConfig{backend: cb, storeOpts: func(o *store.Options) { o.CacheBytes = -1 }})
	c := e.dial(t)

	// Keys sharing the leaf of "k0".
	leaf := merkle.Path("k0")[:merkle.Depth]
	var ops []wire.ClientOp
	for i := 0; len(ops) < 200 && i < 10_000_000; i++ {
		if k := "k" + itoa(i); merkle.Path(k)[:merkle.Depth] == leaf {
			ops = append(ops, orAddOp(itoa(len(ops)+1), "tags", k, i, cts("c")))
		}
	}
	if len(ops) < 200 {
		t.Fatalf("found only %d keys in leaf %s", len(ops), leaf)
	}
	c.write(ops...)

	before := cb.keys.Load()
	c.send(&wire.ORMapDiffRequest{MapName: "tags", Keys: []string{"k0"}})
	d := expect[*wire.ORMapDiffResponse](c)
	if len(d.Entries) != 1 || d.Entries[0].Key != "k0" || len(d.Entries[0].Records) != 1 {
		t.Fatalf("diff response %+v, want k0 with its one record", d.Entries)
	}
	if n := cb.keys.Load() - before; n > 1 {
		t.Fatalf("a diff request naming one key read %d keys from storage, want at most 1", n)
	}
}
