//go:build !wasip1

package sdk

import (
	"sync"

	"github.com/topgun-go/topgun/abi"
)

var (
	logMu  sync.Mutex
	logOut func(level abi.LogLevel, msg string)
)

// Log sends one line to the host at level. Natively it goes to the function
// set by SetLogOutput, or nowhere.
func Log(level abi.LogLevel, msg string) {
	logMu.Lock()
	f := logOut
	logMu.Unlock()
	if f != nil {
		f(level, msg)
	}
}

// SetLogOutput sets where Log writes in native builds (tests route it to
// t.Log); nil discards. It does not exist in wasm builds.
func SetLogOutput(f func(level abi.LogLevel, msg string)) {
	logMu.Lock()
	logOut = f
	logMu.Unlock()
}
