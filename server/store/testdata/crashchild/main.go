// Command crashchild is the child of the store's crash test: it writes
// continuously through the store and prints "ACK key" for every write whose
// commit returned, until it is killed. It is built without the race
// detector so that its speed does not depend on how the tests run.
//
// Each batch also overwrites or deletes one of the writer's hot keys
// ("hot-W-J", written by writer W only, so one at a time) with the
// timestamp millis.counter.RUN and value "v" key "@" timestamp, and prints
// "W key put|del millis counter" once acknowledged. On start, before it
// writes, it prints "HOT key put|del millis counter node value" (value
// "-" for a delete) or "HOT key none" for every hot key as storage holds
// it, for the parent to check against what it acknowledged before.
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
	"time"

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
	floor, err := printHot(ctx, be, out)
	if err != nil {
		fmt.Printf("ERR read hot keys: %v\n", err)
		os.Exit(3)
	}
	out.Flush()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			last := floor
			for i := 0; ; i++ {
				n := 1 + i%5 // batches of 1..5 new keys
				ops := make([]store.Op, n, n+1)
				for j := range ops {
					key := fmt.Sprintf("%s-%d-%d-%d", run, w, i, j)
					ops[j] = store.Op{Map: "crash", Key: key, Kind: store.OpPut, Value: record.StringValue("v" + key)}
				}
				// and one overwrite or delete of a hot key, stamped after
				// every write before it (the wall clock, or what the last
				// run stored, whichever is later).
				last = max(last, uint64(time.Now().UnixMilli()))
				hts := record.Timestamp{Millis: last, Counter: uint32(i), NodeID: run}
				hot := fmt.Sprintf("hot-%d-%d", w, i%hotKeys)
				op := store.Op{Map: "crash", Key: hot, Kind: store.OpPut, Value: record.StringValue(hotValue(hot, hts)), Timestamp: hts}
				kind := "put"
				if (i/hotKeys)%3 == 2 {
					op.Kind, op.Value, kind = store.OpRemove, record.Value{}, "del"
				}
				ops = append(ops, op)
				res, err := s.Apply(ctx, ops, 0)
				if err != nil {
					fmt.Printf("ERR apply: %v\n", err)
					os.Exit(3)
				}
				mu.Lock()
				for j, r := range res[:n] {
					if r.Err == nil {
						fmt.Fprintf(out, "ACK %s\n", ops[j].Key)
					}
				}
				if r := res[n]; r.Err != nil {
					fmt.Fprintf(out, "ERR hot write rejected: %v\n", r.Err)
				} else {
					fmt.Fprintf(out, "W %s %s %d %d\n", hot, kind, hts.Millis, hts.Counter)
				}
				out.Flush()
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
}

const (
	writers = 4
	hotKeys = 4 // per writer
)

func hotValue(key string, ts record.Timestamp) string {
	return fmt.Sprintf("v%s@%d.%d.%s", key, ts.Millis, ts.Counter, ts.NodeID)
}

// printHot prints the stored state of every hot key and returns the
// millisecond after the latest stamp among them.
func printHot(ctx context.Context, be abi.Backend, out *bufio.Writer) (uint64, error) {
	keys := make([]string, 0, writers*hotKeys)
	for w := 0; w < writers; w++ {
		for j := 0; j < hotKeys; j++ {
			keys = append(keys, fmt.Sprintf("hot-%d-%d", w, j))
		}
	}
	recs, err := be.Get(ctx, "crash", false, keys)
	if err != nil {
		return 0, err
	}
	found := map[string]record.RecordValue{}
	for _, r := range recs {
		rv, err := record.Decode(r.Value)
		if err != nil {
			return 0, fmt.Errorf("key %q: %w", r.Key, err)
		}
		found[r.Key] = rv
	}
	var floor uint64
	for _, k := range keys {
		rv, ok := found[k]
		switch {
		case !ok:
			fmt.Fprintf(out, "HOT %s none\n", k)
			continue
		case rv.Kind != record.KindLWW:
			fmt.Fprintf(out, "HOT %s other 0 0 - -\n", k)
			continue
		}
		ts, kind, v := rv.LWW.Timestamp, "put", rv.LWW.Value.Text()
		if rv.LWW.Value.IsNull() {
			kind, v = "del", "-"
		}
		fmt.Fprintf(out, "HOT %s %s %d %d %s %s\n", k, kind, ts.Millis, ts.Counter, ts.NodeID, v)
		floor = max(floor, ts.Millis+1)
	}
	return floor, nil
}
