// Command logstore serves package logstore as a wasm storage plugin: a
// durable store kept in the data directory the host grants. Build it with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o bin/plugins/logstore.wasm ./examples/plugins/logstore/cmd/logstore
//
// and run the server with
//
//	STORAGE_BACKEND=bin/plugins/logstore.wasm TOPGUN_PLUGIN_DATA_DIR=./data
//
// Optional settings go in TOPGUN_PLUGIN_CONFIG, a JSON object:
//
//	{"compact_min_bytes": 16777216, "compact_garbage_ratio": 0.5}
//
// The plugin keeps its index in the instance's memory, so it does not
// declare abi.CapMultiInstance and the host runs it on one instance.
package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/examples/plugins/logstore"
	"github.com/topgun-go/topgun/sdk"
)

func init() {
	sdk.ServeOpen(logstore.Name, abi.CapDurable|abi.CapAtomicBatch|abi.CapExpiryIndex, open)
}

func main() {}

// open opens the store in the granted data directory with the options of
// the plugin's configuration.
func open(cfg map[string]string) (abi.Backend, error) {
	dir, ok := cfg[sdk.DataDirKey]
	if !ok {
		return nil, abi.Errorf(abi.CodeInvalidArgument, "logstore: no data directory was granted; set TOPGUN_PLUGIN_DATA_DIR to the directory the store may use")
	}
	opts, err := options(cfg)
	if err != nil {
		return nil, err
	}
	return logstore.Open(context.Background(), dir, opts)
}

// options reads the store's options from the configuration; unknown keys
// are refused so that a typo does not go unnoticed.
func options(cfg map[string]string) (*logstore.Options, error) {
	o := logstore.DefaultOptions()
	o.Logger = hostLogger{}
	// Range errors are reported here, with the key the operator set
	// (Validate names the Go fields).
	bad := func(k, v, use string) error {
		return abi.Errorf(abi.CodeInvalidArgument, "logstore: TOPGUN_PLUGIN_CONFIG key %q has value %q; use %s", k, v, use)
	}
	for k, v := range cfg {
		var err error
		switch k {
		case sdk.DataDirKey:
		case "compact_min_bytes":
			o.CompactMinBytes, err = strconv.ParseInt(v, 10, 64)
			if err != nil || o.CompactMinBytes < 0 {
				return nil, bad(k, v, "a whole number of bytes, 0 or more, for example 16777216")
			}
		case "compact_garbage_ratio":
			o.CompactGarbageRatio, err = strconv.ParseFloat(v, 64)
			if err != nil || !(o.CompactGarbageRatio > 0 && o.CompactGarbageRatio <= 1) {
				return nil, bad(k, v, "a number in (0, 1], for example 0.5")
			}
		default:
			return nil, abi.Errorf(abi.CodeInvalidArgument, "logstore: unknown TOPGUN_PLUGIN_CONFIG key %q; the keys are compact_min_bytes and compact_garbage_ratio", k)
		}
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	return o, nil
}

// hostLogger sends the store's log lines to the host, which logs them under
// the plugin's name.
type hostLogger struct{}

func (hostLogger) Debug(msg string, args ...any) { sdk.Log(abi.LogDebug, format(msg, args)) }
func (hostLogger) Info(msg string, args ...any)  { sdk.Log(abi.LogInfo, format(msg, args)) }
func (hostLogger) Warn(msg string, args ...any)  { sdk.Log(abi.LogWarn, format(msg, args)) }

// format renders a message and its key/value pairs as "msg k=v k=v".
func format(msg string, args []any) string {
	var b strings.Builder
	b.WriteString(msg)
	for i := 0; i+1 < len(args); i += 2 {
		fmt.Fprintf(&b, " %v=%v", args[i], args[i+1])
	}
	if len(args)%2 == 1 {
		fmt.Fprintf(&b, " extra=%v", args[len(args)-1])
	}
	return b.String()
}
