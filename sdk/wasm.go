//go:build wasip1

package sdk

import (
	"unsafe"

	"github.com/topgun-go/topgun/abi"
)

// The export shims of the ABI (abi/WASM.md). Everything else is shared with
// native builds.

const (
	initialBuffer = 64 << 10
	maxBuffer     = 1 << 30
)

// buf is the scratch buffer: requests and responses live in it. Its length
// is always its capacity.
var buf = make([]byte, initialBuffer)

func bufAddr(b []byte) int32 { return int32(uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b))))) }

//go:wasmimport topgun_v1 log
func hostLog(level int32, ptr unsafe.Pointer, n int32)

// Log sends one line to the host at level. The host caps lines at 4 KiB.
func Log(level abi.LogLevel, msg string) {
	hostLog(int32(level), unsafe.Pointer(unsafe.StringData(msg)), int32(len(msg)))
}

//go:wasmexport topgun_abi_version
func exportVersion() int32 {
	return int32(abi.PackVersion(abi.VersionMajor, abi.VersionMinor))
}

//go:wasmexport topgun_buffer
func exportBuffer(minCap int32) int32 {
	n := uint32(minCap)
	if n > maxBuffer {
		return 0
	}
	if int(n) > len(buf) {
		size := len(buf)
		for size < int(n) {
			size *= 2
		}
		buf = make([]byte, size)
	}
	return bufAddr(buf)
}

var unregistered = newServer(nil, "unregistered", 0, func(map[string]string) (abi.Backend, error) {
	return nil, abi.Errorf(abi.CodeUnavailable, "the plugin registered no backend: call sdk.Serve or sdk.ServeOpen from init")
})

//go:wasmexport topgun_call
func exportCall(call int32, reqLen int32) int64 {
	s := served
	if s == nil {
		s = unregistered
	}
	n := uint32(reqLen)
	var status uint32
	var resp []byte
	if uint64(n) > uint64(len(buf)) {
		status, resp = errResponse(buf, abi.Errorf(abi.CodeInvalidArgument,
			"request of %d bytes is larger than the %d-byte buffer; call topgun_buffer first", n, len(buf)))
	} else {
		status, resp = s.handle(uint32(call), buf[:n], buf)
	}
	if unsafe.SliceData(resp) != unsafe.SliceData(buf) && cap(resp) > 0 {
		buf = resp[:cap(resp)]
		status |= abi.StatusBufferMoved
	}
	s.afterCall(int(n), len(resp))
	return int64(abi.PackResult(status, uint32(len(resp))))
}
