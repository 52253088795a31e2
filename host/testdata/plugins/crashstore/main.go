// Command crashstore is a test plugin: the durable logstore example, except
// that a batch holding a mutation of map "trap" crashes the instance with
// an unrecoverable runtime error in the middle of apply, after the batch
// was received and decoded and before it is committed. A test checks that
// after the crash the host's fresh instance reopens the store from disk
// with every earlier batch and nothing of the crashed one.
package main

import (
	"context"
	"sync"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/examples/plugins/logstore"
	"github.com/topgun-go/topgun/sdk"
)

type crashstore struct{ *logstore.Store }

func (c crashstore) Apply(ctx context.Context, b *abi.Batch) error {
	for _, m := range b.Mutations {
		if m.Map == "trap" {
			// Unlocking an unlocked mutex is a fatal runtime error, which
			// no recover can catch: the Go runtime aborts the instance.
			var mu sync.Mutex
			mu.Unlock()
		}
	}
	return c.Store.Apply(ctx, b)
}

func open(cfg map[string]string) (abi.Backend, error) {
	s, err := logstore.Open(context.Background(), cfg[sdk.DataDirKey], nil)
	if err != nil {
		return nil, err
	}
	return crashstore{s}, nil
}

func init() {
	sdk.ServeOpen("crashstore", abi.CapDurable|abi.CapAtomicBatch, open)
}

func main() {}
