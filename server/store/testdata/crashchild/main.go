// Command crashchild is the child of the store's crash test: it writes
// continuously through the store and prints "ACK key" for every write whose
// commit returned, until it is killed. It is built without the race
// detector so that its speed does not depend on how the tests run.
//
// Usage: crashchild KIND ARG RUN, KIND one of redb, postgres, plugin
// (ARG "file.wasm|datadir").
package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/host"
	"github.com/topgun-go/topgun/plugins/postgres"
	"github.com/topgun-go/topgun/plugins/redb"
	"github.com/topgun-go/topgun/server/hlc"
	"github.com/topgun-go/topgun/server/record"
	"github.com/topgun-go/topgun/server/store"
)

func open(ctx context.Context, kind, arg string) (abi.Backend, error) {
	switch kind {
	case "redb":
		return redb.Open(ctx, arg, nil)
	case "postgres":
		return postgres.Open(ctx, arg, nil)
	case "plugin":
		wasm, dir, _ := strings.Cut(arg, "|")
		return host.Load(ctx, wasm, &host.Options{DataDir: dir})
	}
	return nil, fmt.Errorf("unknown backend kind %q", kind)
}

func main() {
	if len(os.Args) != 4 {
		fmt.Println("ERR usage: crashchild KIND ARG RUN")
		os.Exit(2)
	}
	kind, arg, run := os.Args[1], os.Args[2], os.Args[3]
	ctx := context.Background()
	be, err := open(ctx, kind, arg)
	if err != nil {
		fmt.Printf("ERR open: %v\n", err)
		os.Exit(3)
	}
	clock, err := hlc.New("crash-"+run, nil)
	if err != nil {
		fmt.Printf("ERR clock: %v\n", err)
		os.Exit(3)
	}
	s, err := store.Open(ctx, be, &store.Options{Clock: clock, Logger: hclog.NewNullLogger()})
	if err != nil {
		fmt.Printf("ERR store: %v\n", err)
		os.Exit(3)
	}
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				ops := make([]store.Op, 1+i%5) // batches of 1..5 ops
				for j := range ops {
					key := fmt.Sprintf("%s-%d-%d-%d", run, w, i, j)
					ops[j] = store.Op{Map: "crash", Key: key, Kind: store.OpPut, Value: record.StringValue("v" + key)}
				}
				res, err := s.Apply(ctx, ops, 0)
				if err != nil {
					fmt.Printf("ERR apply: %v\n", err)
					os.Exit(3)
				}
				mu.Lock()
				for j, r := range res {
					if r.Err == nil {
						fmt.Fprintf(out, "ACK %s\n", ops[j].Key)
					}
				}
				out.Flush()
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
}
