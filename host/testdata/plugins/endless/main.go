// Command endless is a test plugin: the null backend, except that it lists
// a map "endless" whose scan returns fresh keys in ascending order, made
// up as it goes, as a hostile plugin can without storing any. It ends the
// map after 300,000 keys only so that a test of a server without a bound
// on its index ends too.
package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/plugins/null"
	"github.com/topgun-go/topgun/sdk"
)

const endlessKeys = 300_000

type endless struct{ *null.Backend }

func (e endless) ListMaps(ctx context.Context) ([]string, error) {
	maps, err := e.Backend.ListMaps(ctx)
	return append(maps, "endless"), err
}

// value is an LWW record of "v" stamped by node "e", in TopGun's record
// encoding (record.Encode).
var value = []byte("\x81\xa3lww\x82\xa5value\x81\xa6String\xa1v\xa9timestamp\x83\xa6millis\xcf\x00\x00\x01\x8b\xcf\xe5h\x00\xa7counter\x00\xa6nodeId\xa1e")

func (e endless) Scan(ctx context.Context, req abi.ScanRequest) (abi.Page, error) {
	if req.Map != "endless" || req.Backup {
		return e.Backend.Scan(ctx, req)
	}
	from := 0
	if len(req.Cursor) > 0 {
		from, _ = strconv.Atoi(string(req.Cursor))
	}
	n := min(max(req.Limit, 1), 1000, endlessKeys-from)
	page := abi.Page{Records: make([]abi.Record, 0, n)}
	for i := from; i < from+n; i++ {
		page.Records = append(page.Records, abi.Record{Map: req.Map, Key: fmt.Sprintf("k%010d", i), Value: value, CreatedAt: 1, UpdatedAt: 1})
	}
	if from+n < endlessKeys {
		page.Cursor = []byte(strconv.Itoa(from + n))
	}
	return page, nil
}

func init() { sdk.Serve(endless{null.Open()}) }

func main() {}
