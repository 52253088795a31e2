package sdk

import (
	"fmt"
	"sync"

	"github.com/topgun-go/topgun/abi"
)

// DataDirKey is the configuration key that holds the guest path of the data
// directory the host granted (abi.WasmDataDir); it is absent when none is
// granted. Native tests may set it to a real directory.
const DataDirKey = "topgun.data_dir"

// OpenFunc builds the plugin's backend from its configuration. It runs once
// per wasm instance, when the host opens the instance.
type OpenFunc func(cfg map[string]string) (abi.Backend, error)

var (
	regMu  sync.Mutex
	served *server
)

func register(s *server) {
	regMu.Lock()
	defer regMu.Unlock()
	if served != nil {
		panic("sdk: Serve or ServeOpen called twice; register one backend per plugin")
	}
	served = s
}

// Option configures Serve, ServeOpen, Loopback and LoopbackOpen.
type Option func(*server)

// LendRecords makes the SDK answer get and scan through the backend's
// abi.RecordViewer methods, which lend records instead of copying them (a
// one-key get inside wasm then allocates nothing and costs a quarter less).
// It is an explicit choice because a type that embeds a RecordViewer and
// overrides Get or Scan would otherwise be served by the promoted ViewGet
// and ViewScan: ask for it only when they answer exactly as Get and Scan.
// Without a RecordViewer backend it changes nothing.
func LendRecords() Option { return func(s *server) { s.lend = true } }

func (s *server) with(opts []Option) *server {
	for _, o := range opts {
		o(s)
	}
	return s
}

// Serve registers b as the plugin's backend. Call it once, from init.
func Serve(b abi.Backend, opts ...Option) {
	if b == nil {
		panic("sdk: Serve(nil); pass the backend to serve")
	}
	register(newServer(b, "", 0, nil).with(opts))
}

// ServeOpen registers a plugin whose backend open builds when the host opens
// the instance, from the configuration and data directory. name and caps are
// reported before open; after open, the backend's Describe is authoritative.
// Call it once, from init.
func ServeOpen(name string, caps abi.Capability, open OpenFunc, opts ...Option) {
	if open == nil {
		panic("sdk: ServeOpen with a nil open function")
	}
	register(newServer(nil, name, caps, open).with(opts))
}

// Logf formats a line and logs it through the host at level.
func Logf(level abi.LogLevel, format string, args ...any) {
	Log(level, fmt.Sprintf(format, args...))
}
