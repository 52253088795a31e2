// Command filer is a test plugin that turns writes into file operations in
// its data directory, so a test can fill it: a put of map "file" writes
// the value to the file named by the key, a delete removes it, a put of
// map "dir" makes a directory, and a get of map "file" reads files back.
// It declares abi.CapMultiInstance, so the host runs it on a pool.
package main

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/plugins/null"
	"github.com/topgun-go/topgun/sdk"
)

type filer struct {
	*null.Backend
	dir string
}

func (f filer) Describe() abi.Description {
	d := f.Backend.Describe()
	d.Name = "filer"
	d.Capabilities |= abi.CapMultiInstance
	return d
}

func (f filer) Apply(ctx context.Context, b *abi.Batch) error {
	for _, m := range b.Mutations {
		p := filepath.Join(f.dir, m.Key)
		var err error
		switch {
		case m.Map == "file" && m.Kind == abi.OpDelete:
			err = os.Remove(p)
		case m.Map == "file":
			err = os.WriteFile(p, m.Value, 0o644)
		case m.Map == "dir":
			err = os.Mkdir(p, 0o755)
		}
		if err != nil {
			return abi.Wrap(abi.CodeInternal, err, "filer: %s %s: %v", m.Map, m.Key, err)
		}
	}
	return nil
}

func (f filer) Get(ctx context.Context, mapName string, backup bool, keys []string) ([]abi.Record, error) {
	if mapName != "file" {
		return f.Backend.Get(ctx, mapName, backup, keys)
	}
	var out []abi.Record
	for _, k := range keys {
		v, err := os.ReadFile(filepath.Join(f.dir, k))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, abi.Wrap(abi.CodeInternal, err, "filer: read %s: %v", k, err)
		}
		out = append(out, abi.Record{Map: mapName, Key: k, Value: v})
	}
	return out, nil
}

func init() {
	sdk.ServeOpen("filer", abi.CapAtomicBatch|abi.CapMultiInstance, func(cfg map[string]string) (abi.Backend, error) {
		return filer{null.Open(), cfg[sdk.DataDirKey]}, nil
	})
}

func main() {}
