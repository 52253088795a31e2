package abi

import "fmt"

// Names and numbers of the wasm storage ABI, specified in WASM.md. They are
// part of the ABI: never rename or renumber them within a major version.
const (
	// WasmImportModule is the one module a plugin may import host functions
	// from (besides wasi_snapshot_preview1). Its name carries VersionMajor.
	WasmImportModule = "topgun_v1"
	// WasmImportLog is log(level i32, ptr i32, len i32): one log line.
	WasmImportLog = "log"

	// WasmExportMemory is the plugin's linear memory.
	WasmExportMemory = "memory"
	// WasmExportInitialize is the wasip1 reactor initializer, called once.
	WasmExportInitialize = "_initialize"
	// WasmExportVersion is topgun_abi_version() -> i32 (major<<16 | minor).
	WasmExportVersion = "topgun_abi_version"
	// WasmExportBuffer is topgun_buffer(min_cap i32) -> i32: the address of
	// the plugin's scratch buffer, grown to at least min_cap bytes (0 when
	// it cannot grow).
	WasmExportBuffer = "topgun_buffer"
	// WasmExportCall is topgun_call(op i32, req_len i32) -> i64: runs one
	// operation whose request is in the scratch buffer; see PackResult.
	WasmExportCall = "topgun_call"

	// WasmDataDir is the guest path of the data directory the host grants.
	WasmDataDir = "/data"
	// WasmPrefix is the prefix of import module names that carry an ABI
	// major version ("topgun_v" + major).
	WasmPrefix = "topgun_v"
)

// WasmCall numbers the operations of topgun_call.
type WasmCall uint32

// Operations of topgun_call. Request and response bodies are in WASM.md.
const (
	CallDescribe    WasmCall = 1
	CallOpen        WasmCall = 2
	CallApply       WasmCall = 3
	CallGet         WasmCall = 4
	CallScan        WasmCall = 5
	CallListMaps    WasmCall = 6
	CallListExpired WasmCall = 7
	CallClose       WasmCall = 8
	// CallApplyRuns (ABI 1.1) is apply with the batch in runs (runs.go).
	CallApplyRuns WasmCall = 9
)

var callNames = [...]string{
	CallDescribe:    "describe",
	CallOpen:        "open",
	CallApply:       "apply",
	CallGet:         "get",
	CallScan:        "scan",
	CallListMaps:    "list_maps",
	CallListExpired: "list_expired",
	CallClose:       "close",
	CallApplyRuns:   "apply_runs",
}

func (c WasmCall) String() string {
	if int(c) < len(callNames) && callNames[c] != "" {
		return callNames[c]
	}
	return fmt.Sprintf("call(%d)", uint32(c))
}

// Status flags of a topgun_call result. The low 16 bits of the status are a
// Code (CodeOK on success); the bits above are flags.
const (
	// StatusBufferMoved: the plugin reallocated its scratch buffer during
	// the call; the host calls topgun_buffer(resp_len) to learn the new
	// address before reading the response.
	StatusBufferMoved uint32 = 1 << 16
	// StatusCodeMask selects the Code of a status.
	StatusCodeMask uint32 = 0xffff
)

// MaxErrorMessageBytes bounds the message of an error response; plugins
// truncate longer messages and hosts ignore the rest.
const MaxErrorMessageBytes = 4096

// LogLevel is the level argument of the log import. The values match
// github.com/hashicorp/go-hclog levels.
type LogLevel int32

// Log levels of the log import. Other values are logged at LogInfo.
const (
	LogTrace LogLevel = 1
	LogDebug LogLevel = 2
	LogInfo  LogLevel = 3
	LogWarn  LogLevel = 4
	LogError LogLevel = 5
)

// PackVersion returns the value topgun_abi_version reports.
func PackVersion(major, minor uint32) uint32 { return major<<16 | minor&0xffff }

// UnpackVersion splits a topgun_abi_version value.
func UnpackVersion(v uint32) (major, minor uint32) { return v >> 16, v & 0xffff }

// PackResult returns the i64 a topgun_call returns: the status in the high
// 32 bits and the response length in the low 32 bits.
func PackResult(status, respLen uint32) uint64 { return uint64(status)<<32 | uint64(respLen) }

// UnpackResult splits a topgun_call result.
func UnpackResult(r uint64) (status, respLen uint32) { return uint32(r >> 32), uint32(r) }
