// Command tenant is a test plugin for hosting many tenants in one process:
// the null backend, except that a get of certain maps probes the sandbox
// or misbehaves. "whoami" returns the tenant named by the "tenant" config
// key; "read", "write" and "ls" try each key as a path and return what
// happened; "log" logs one line naming the tenant; "flood" logs 100,000
// lines; "loop" spins forever; "oom" allocates until the memory limit;
// "giant" returns a value of 8 MiB per key; "fds" opens the file named by
// its key until an open fails, keeps every file open and returns how many
// it opened and the error; "copy" copies the file before the key's ">"
// to the path after it.
package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/plugins/null"
	"github.com/topgun-go/topgun/sdk"
)

type tenant struct {
	*null.Backend
	name string
}

var sink [][]byte

var held []*os.File

func result(data []byte, err error) []byte {
	if err != nil {
		return []byte("error: " + err.Error())
	}
	return append([]byte("ok: "), data...)
}

func (t tenant) Get(ctx context.Context, mapName string, backup bool, keys []string) ([]abi.Record, error) {
	out := make([]abi.Record, 0, len(keys))
	add := func(k string, v []byte) { out = append(out, abi.Record{Map: mapName, Key: k, Value: v}) }
	switch mapName {
	case "whoami":
		for _, k := range keys {
			add(k, []byte(t.name))
		}
	case "read":
		for _, k := range keys {
			add(k, result(os.ReadFile(k)))
		}
	case "write":
		for _, k := range keys {
			add(k, result(nil, os.WriteFile(k, []byte(t.name), 0o644)))
		}
	case "copy":
		for _, k := range keys {
			src, dst, _ := strings.Cut(k, ">")
			b, err := os.ReadFile(src)
			if err == nil {
				err = os.WriteFile(dst, b, 0o644)
			}
			add(k, result(nil, err))
		}
	case "ls":
		for _, k := range keys {
			es, err := os.ReadDir(k)
			var names []string
			for _, e := range es {
				names = append(names, e.Name())
			}
			add(k, result([]byte(strings.Join(names, ",")), err))
		}
	case "log":
		sdk.Logf(abi.LogInfo, "hello from tenant %s", t.name)
		add("k", []byte("ok"))
	case "flood":
		for i := 0; i < 100000; i++ {
			sdk.Logf(abi.LogWarn, "flood %d from %s %s", i, t.name, strings.Repeat("x", 1000))
		}
		add("k", []byte("ok"))
	case "loop":
		n := 0
		for {
			n++
		}
	case "oom":
		for {
			sink = append(sink, make([]byte, 8<<20))
		}
	case "fds":
		for _, k := range keys {
			n := 0
			var err error
			for {
				var f *os.File
				if f, err = os.OpenFile(k, os.O_RDWR|os.O_CREATE, 0o644); err != nil {
					break
				}
				held = append(held, f)
				n++
			}
			add(k, []byte(fmt.Sprintf("%d %v", n, err)))
		}
	case "giant":
		for _, k := range keys {
			add(k, make([]byte, abi.MaxValueBytes))
		}
	default:
		return t.Backend.Get(ctx, mapName, backup, keys)
	}
	return out, nil
}

func init() {
	sdk.ServeOpen("tenant", abi.CapAtomicBatch, func(cfg map[string]string) (abi.Backend, error) {
		return tenant{null.Open(), cfg["tenant"]}, nil
	})
}

func main() {}
