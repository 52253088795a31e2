// Package sdk turns a Go abi.Backend into a TopGun storage plugin: a
// wasip1 reactor module that speaks the wasm storage ABI (abi/WASM.md) and
// runs under the server's wazero host (package host).
//
// # Writing a plugin
//
// A plugin is a main package whose init function registers its backend.
// When the backend can be built at once:
//
//	package main
//
//	import (
//		"github.com/topgun-go/topgun/plugins/null"
//		"github.com/topgun-go/topgun/sdk"
//	)
//
//	func init() { sdk.Serve(null.Open()) }
//
//	func main() {}
//
// When the backend needs its configuration or its data directory, register
// an open function instead. The name and capabilities are what the plugin
// reports before it is opened (for `topgun plugin inspect`); once open, the
// backend's own Describe is authoritative:
//
//	func init() {
//		sdk.ServeOpen("logstore", abi.CapDurable|abi.CapAtomicBatch,
//			func(cfg map[string]string) (abi.Backend, error) {
//				dir, ok := cfg[sdk.DataDirKey] // "/data" inside wasm
//				if !ok {
//					return nil, abi.Errorf(abi.CodeInvalidArgument,
//						"logstore: no data directory; set TOPGUN_PLUGIN_DATA_DIR")
//				}
//				return logstore.Open(context.Background(), dir, nil)
//			})
//	}
//
// A backend's Describe may leave ABIMajor and ABIMinor 0: the SDK then
// reports the ABI it implements. One that sets ABIMajor should set ABIMinor
// to abi.VersionMinor too: the host speaks the lower of the minors the
// plugin reports, and at ABI 1.0 it sends batches as apply, not as the
// faster apply_runs of 1.1.
//
// Build it with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o bin/plugins/NAME.wasm ./path/to/plugin
//
// and run it with STORAGE_BACKEND=bin/plugins/NAME.wasm. Call Serve or
// ServeOpen exactly once, from init; calling both, or either twice, is a
// programming error and panics at start. A plugin that calls neither
// starts, but its open fails ("the plugin registered no backend"), so the
// host refuses to load it.
//
// # What the SDK does
//
// The SDK exports topgun_abi_version, topgun_buffer and topgun_call, keeps
// the scratch buffer, decodes requests and encodes responses with the abi
// codec, and answers describe and open. An error returned by the backend
// crosses as its abi.Code and message, so errors.Is(err, abi.ErrNotFound)
// holds on the host. A panic in the backend is recovered and returned as
// abi.CodeInternal with the panic value and stack in the message; the
// instance stays usable. The SDK cannot undo what an Apply did before it
// panicked, so a backend that declares atomic_batch must not panic midway
// (the server takes any failed commit for an unknown outcome and reads its
// keys again). The context of every call carries the host's
// response limit (abi.ResponseLimit): a backend that reads values from
// storage should refuse a get that cannot fit with
// abi.CodeResourceExhausted before reading them, as logstore does, since
// running out of memory traps. A fatal runtime error (out of memory, a deadlock)
// traps; the host then discards the instance.
//
// The configuration map is TOPGUN_PLUGIN_CONFIG (a JSON object) as the host
// parsed it. When the host grants a data directory, cfg[DataDirKey] holds
// its guest path, WasmDataDir ("/data"); the host refuses user keys that
// start with "topgun.". A plugin registered with Serve ignores the
// configuration.
//
// # Rules for backends inside wasm
//
// Go in wasip1 is single-threaded and an export runs to completion: a
// goroutine started during a call does not run after the call returns (only
// when a later call yields, at a moment the backend does not choose), and
// blocking (time.Sleep, waiting on a channel nobody else will send to)
// hangs the call until the host's deadline discards the instance. Keep all
// work inside the call. There is no network; the filesystem is only the
// data directory; the environment and arguments are empty; clocks are real.
//
// Memory only grows in wasm: the Go runtime never returns linear memory to
// the host. Between calls nothing runs: the collector's background workers,
// finalizers and a backend's goroutines run only when the guest yields (a
// collection still finishes through the allocations that pay for it, as
// the host's memory tests show with the yields below removed). The SDK
// therefore yields (runtime.Gosched) after every 1 MiB of
// request and response traffic and every 256 calls otherwise, and after
// every list_expired (a backend may walk every expired record to answer a
// few, which makes garbage the traffic does not show), sets Go's
// soft memory limit to half of the instance's limit, and forces a
// collection when the heap passes a quarter of the limit, or twice what the
// last forced collection left if that is more, so memory stays flat under
// steady load. Backends need not do anything. A collection stops the guest
// for its whole mark (there is no concurrent marking inside wasm), so its
// pauses grow with the live heap: a backend holding much data should keep
// it in its data directory rather than in Go's heap.
//
// # Performance inside wasm
//
// Go code runs 5 to 20 times slower inside wasm than natively under the
// host's compiler (every branch of Go's wasm output goes through a jump
// table, and every memory access is bounds checked), and 10 to 25% slower
// again in the host's sandboxed mode, which meters every function entry
// and loop header for its deadline. A small allocation costs 170 to 280 ns
// with the collector's share. What a call costs is therefore mostly the number of
// function calls and allocations in the guest, not the crossing (20 to
// 50 ns). The SDK keeps its own share small: requests are decoded from the
// scratch buffer without copies through io.Reader, the values of an apply
// point into the request (a Backend never keeps the caller's buffers, so
// it must copy a value it keeps, as it would natively), map names are
// allocated once per run of equal names, the keys of a request are cut
// from shared chunks of about 512 bytes (about 20 keys) instead of one
// allocation each, and the response is encoded in place. A plugin served
// with LendRecords whose backend implements abi.RecordViewer (the null
// example does) has get and scan encoded from the records the backend lends
// instead of copies: a one-key get then allocates nothing and costs a
// quarter less.
//
// Keys are ordinary immutable strings, but a key a backend keeps in memory
// keeps its whole chunk alive. A backend that keeps keys of new records
// (an in-memory index) while most keys of a request are dropped should
// keep strings.Clone(key) instead, as plugins/null does inside wasm
// (assigning to an existing key of a Go map replaces the stored key too, as
// examples/plugins/logstore's index found).
//
// Build plugins with profile-guided optimization: put the CPU profile of
// the plugin's hot path, run natively, in the main package's directory as
// default.pgo (examples/plugins/null has one, made by this package's
// handle benchmarks). It inlines the hot codec and backend calls and makes
// a call about 15% cheaper inside wasm.
//
// To see where a plugin spends its time inside wasm, profile the server
// with Linux perf: wazero writes the names of the guest functions it
// compiles to /tmp/perf-<pid>.map when built with the perfmap tag, and
// perf report reads it. Compile without the cache, whose entries carry no
// names:
//
//	go build -tags perfmap -o /tmp/topgun-server ./cmd/topgun-server
//	STORAGE_BACKEND=my.wasm TOPGUN_PLUGIN_CACHE_DIR=- TOPGUN_NO_AUTH=1 \
//		perf record -g -o perf.data /tmp/topgun-server
//	# drive load (topgun bench), stop the server, then
//	perf report -i perf.data --sort symbol
//
// A guest function appears as a line like
//
//	[2416/2492].github.com_topgun_go_topgun_abi.__Decoder_.GetRequest:::::L37
//
// (function 2416 of 2492, at its basic block 37).
//
// # Logging
//
// Log and Logf send a line to the host, which logs it under
// plugin.<file name> at the given level. Guest stdout and stderr are
// logged too, at info and warn. Lines are capped at 4 KiB by the host.
//
// # Native builds and tests
//
// Everything but the export shims also builds natively, so the plugin's
// code runs under ordinary Go tools. Loopback and LoopbackOpen serve a
// backend through the whole ABI path in process: each call is encoded as
// the host encodes it, dispatched by the same code that runs inside wasm,
// and its response decoded as the host decodes it, with the host's
// default limits (scan pages cut as the host cuts them). Natively, Log writes to
// the function set by SetLogOutput (default: discard).
package sdk
