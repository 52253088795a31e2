// Command null is the in-memory null backend served as a wasm storage
// plugin through the guest SDK. Build it with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o bin/plugins/null.wasm ./examples/plugins/null
//
// and load it with STORAGE_BACKEND=bin/plugins/null.wasm. Each wasm
// instance holds its own data in linear memory, so the plugin does not
// declare abi.CapMultiInstance and the host runs it on one instance.
//
// default.pgo is the CPU profile of the guest's call path run natively
// (the SDK's handle benchmarks); go build uses it for profile-guided
// optimization, which inlines the hot codec calls and makes a call about
// 15% cheaper inside wasm. Regenerate it after larger changes with
//
//	go test ./sdk -run '^$' -bench Handle -benchtime 3s -cpuprofile examples/plugins/null/default.pgo
//
// (from the module root; then delete the sdk.test binary go test leaves).
package main

import (
	"github.com/topgun-go/topgun/plugins/null"
	"github.com/topgun-go/topgun/sdk"
)

// null's ViewGet and ViewScan answer exactly as its Get and Scan, so the
// SDK may encode responses from the records it lends.
func init() { sdk.Serve(null.Open(), sdk.LendRecords()) }

func main() {}
