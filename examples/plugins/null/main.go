// Command null is the in-memory null backend served as a wasm storage
// plugin through the guest SDK. Build it with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o bin/plugins/null.wasm ./examples/plugins/null
//
// and load it with STORAGE_BACKEND=bin/plugins/null.wasm. Each wasm
// instance holds its own data in linear memory, so the plugin does not
// declare abi.CapMultiInstance and the host runs it on one instance.
package main

import (
	"github.com/topgun-go/topgun/plugins/null"
	"github.com/topgun-go/topgun/sdk"
)

func init() { sdk.Serve(null.Open()) }

func main() {}
