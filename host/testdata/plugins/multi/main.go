// Command multi is a test plugin that declares abi.CapMultiInstance, so the
// host runs it on a pool of instances. Its state lives in each instance's
// memory (which a real multi-instance plugin must not do): a get of map
// "whoami" returns the instance's random identity, so a test can count the
// instances that served it.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/plugins/null"
	"github.com/topgun-go/topgun/sdk"
)

type multi struct {
	*null.Backend
	id string
}

func (m multi) Describe() abi.Description {
	d := m.Backend.Describe()
	d.Name = "multi"
	d.Capabilities |= abi.CapMultiInstance
	return d
}

func (m multi) Get(ctx context.Context, mapName string, backup bool, keys []string) ([]abi.Record, error) {
	if mapName == "whoami" {
		return []abi.Record{{Map: mapName, Key: "id", Value: []byte(m.id)}}, nil
	}
	return m.Backend.Get(ctx, mapName, backup, keys)
}

func init() {
	sdk.ServeOpen("multi", abi.CapAtomicBatch|abi.CapMultiInstance, func(map[string]string) (abi.Backend, error) {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		return multi{null.Open(), hex.EncodeToString(b)}, nil
	})
}

func main() {}
