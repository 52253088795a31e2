// Package faultbackend holds storage backends that fail as a third-party
// plugin may, for the tests of the packages above storage.
package faultbackend

import (
	"context"
	"sync/atomic"

	"github.com/topgun-go/topgun/abi"
)

// MapRefusing refuses every batch writing to the map Refused, and every
// read of it, with abi.CodeInvalidArgument, as a wasm plugin whose rules
// for map names are stricter than the server's does. Reads counts the
// reads of that map.
type MapRefusing struct {
	abi.Backend
	Refused string
	Reads   atomic.Int64
}

// Apply refuses a batch that writes to the refused map.
func (b *MapRefusing) Apply(ctx context.Context, batch *abi.Batch) error {
	for _, m := range batch.Mutations {
		if m.Map == b.Refused {
			return abi.Errorf(abi.CodeInvalidArgument, "map %q is not allowed by this plugin", m.Map)
		}
	}
	return b.Backend.Apply(ctx, batch)
}

// Get refuses a read of the refused map.
func (b *MapRefusing) Get(ctx context.Context, mapName string, backup bool, keys []string) ([]abi.Record, error) {
	if mapName == b.Refused {
		b.Reads.Add(1)
		return nil, abi.Errorf(abi.CodeInvalidArgument, "map %q is not allowed by this plugin", mapName)
	}
	return b.Backend.Get(ctx, mapName, backup, keys)
}

// MapUnavailable fails every batch writing to the map Down with
// abi.CodeUnavailable while Failing is set, as storage whose connection
// drops does: a failure that may pass.
type MapUnavailable struct {
	abi.Backend
	Down    string
	Failing atomic.Bool
}

// Apply fails a batch that writes to the map Down while Failing is set.
func (b *MapUnavailable) Apply(ctx context.Context, batch *abi.Batch) error {
	if b.Failing.Load() {
		for _, m := range batch.Mutations {
			if m.Map == b.Down {
				return abi.Errorf(abi.CodeUnavailable, "connection to storage lost")
			}
		}
	}
	return b.Backend.Apply(ctx, batch)
}
