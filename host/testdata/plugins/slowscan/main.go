// Command slowscan is a test plugin for a store that never finishes
// opening: the null backend, except that it lists a map "endless" whose
// scan never ends. Each page of it spins for 10ms (well within any call
// deadline) and returns one record, whose value no store can decode, and
// a cursor to the next; the first page creates the file "scanning" in its
// data directory, so a test can tell that the scan has begun.
package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/plugins/null"
	"github.com/topgun-go/topgun/sdk"
)

type endless struct{ *null.Backend }

func (e endless) ListMaps(ctx context.Context) ([]string, error) {
	maps, err := e.Backend.ListMaps(ctx)
	if err != nil || slices.Contains(maps, "endless") {
		return maps, err
	}
	return append(maps, "endless"), nil
}

var spins int

func (e endless) Scan(ctx context.Context, req abi.ScanRequest) (abi.Page, error) {
	if req.Map != "endless" || req.Backup {
		return e.Backend.Scan(ctx, req)
	}
	n := 0
	if len(req.Cursor) > 0 {
		var err error
		if n, err = strconv.Atoi(string(req.Cursor)); err != nil {
			return abi.Page{}, fmt.Errorf("endless: bad cursor %q", req.Cursor)
		}
	} else if err := os.WriteFile("/data/scanning", nil, 0o600); err != nil {
		return abi.Page{}, err
	}
	for start := time.Now(); time.Since(start) < 10*time.Millisecond; {
		spins++
	}
	return abi.Page{
		// Zero-padded, so that keys come in increasing order.
		Records: []abi.Record{{Map: "endless", Key: fmt.Sprintf("%012d", n), Value: []byte("x")}},
		Cursor:  []byte(strconv.Itoa(n + 1)),
	}, nil
}

func init() { sdk.Serve(endless{null.Open()}) }

func main() {}
