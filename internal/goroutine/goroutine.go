// Package goroutine tells which goroutine is running, so that a Close
// called from a callback does not wait for that callback to return.
package goroutine

import (
	"bytes"
	"runtime"
	"strconv"
)

// ID returns the id of the calling goroutine, from the first line of its
// stack ("goroutine 18 [running]:"), or 0 if it cannot be read. Go has no
// other way to tell a call from a callback's goroutine.
func ID() uint64 {
	var buf [64]byte
	b := bytes.TrimPrefix(buf[:runtime.Stack(buf[:], false)], []byte("goroutine "))
	if i := bytes.IndexByte(b, ' '); i > 0 {
		if id, err := strconv.ParseUint(string(b[:i]), 10, 64); err == nil {
			return id
		}
	}
	return 0
}
