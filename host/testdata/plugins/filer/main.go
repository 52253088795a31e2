// Command filer is a test plugin that turns writes into file operations in
// its data directory, so a test can fill it: a put of map "file" writes
// the value to the file named by the key, a delete removes it, a put of
// map "dir" makes a directory, and a get of map "file" reads files back.
// It declares abi.CapMultiInstance, so the host runs it on a pool.
//
// It also does what a hostile plugin would: a put of map "hole" writes
// one byte at the offset the value holds (decimal) with pwrite, one of map
// "seekhole" likewise with a seek and a write; a put of map "keep" appends
// the value to the file named by the key through a descriptor the instance
// keeps open across calls (so a delete of map "file" leaves it open).
package main

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

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
		case m.Map == "hole" || m.Map == "seekhole":
			err = hole(p, string(m.Value), m.Map == "seekhole")
		case m.Map == "keep":
			err = keep(p, m.Value)
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

// hole writes one byte at offset off of the file p.
func hole(p, off string, seek bool) error {
	n, err := strconv.ParseInt(off, 10, 64)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	if !seek {
		_, err = f.WriteAt([]byte{1}, n)
		return err
	}
	if _, err = f.Seek(n, io.SeekStart); err == nil {
		_, err = f.Write([]byte{1})
	}
	return err
}

// kept are the files a put of map "keep" opened, by path.
var kept = map[string]*os.File{}

func keep(p string, v []byte) error {
	f := kept[p]
	if f == nil {
		var err error
		if f, err = os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o644); err != nil {
			return err
		}
		kept[p] = f
	}
	_, err := f.Write(v)
	return err
}

func init() {
	sdk.ServeOpen("filer", abi.CapAtomicBatch|abi.CapMultiInstance, func(cfg map[string]string) (abi.Backend, error) {
		return filer{null.Open(), cfg[sdk.DataDirKey]}, nil
	})
}

func main() {}
