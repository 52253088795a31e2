// Package host runs TopGun storage plugins: WebAssembly modules that
// implement the wasm storage ABI (abi/WASM.md), under wazero, behind the
// same abi.Backend the built-in backends implement.
//
//	b, err := host.Load(ctx, "bin/plugins/null.wasm", &host.Options{Logger: log})
//	...
//	defer b.Close()
//
// # Loading
//
// Load reads the file, checks the optional SHA-256 pin, compiles it once
// (through wazero's on-disk compilation cache in CacheDir, shared by every
// plugin the process loads, so a second start does not recompile; the
// host checks each entry against its own record before wazero reads it,
// see compileCache; once closed, a plugin's compiled code stays in
// memory for a reload only until two other plugins have been closed
// since), checks
// the exports, the imports and the ABI version before and after running
// _initialize, and opens the plugin with its configuration; a plugin
// reporting ABI minor 1 or later that answers an empty apply_runs as
// unsupported is refused (its every write would be). Every error
// names the file ("plugin null.wasm: ...") and says what to do. Inspect
// does the same short of opening, for `topgun plugin inspect`.
//
// # Sandbox
//
// Each loaded plugin gets its own wazero.Runtime (plugins cannot link to
// each other). Deny by default: no environment, no arguments, no files, no
// network. DataDir grants one host directory, visible to the guest as
// "/data" only; every path the guest uses is resolved, symbolic links
// included, and refused with EPERM when it leads outside the directory,
// and the guest cannot create links nor move them (see confinedFS for the
// one race left: another host process swapping a path between check and
// use). A plugin has at most MaxOpenFiles files open there at once, all
// its instances together (one more open fails with EIO): each takes a
// descriptor of the process, which every tenant and the server share.
// fd_renumber refuses a target above any descriptor the plugin can have,
// and poll_oneoff more than 4096 subscriptions (EINVAL): wazero allocates
// on the host's heap for each. fd_readdir fills a buffer 1 KiB at a time,
// as wazero keeps the entries a read asked for per open directory.
// Go's net package for wasip1 emulates a network inside the guest; no
// host socket is reachable. Configuration reaches the guest only through the open call
// (Config; TOPGUN_PLUGIN_CONFIG is a JSON object, see ParseConfig). Clocks
// are real; random is crypto/rand; sleeping returns at once. Guest stdout,
// stderr and log calls go to the logger named plugin.<file name> (stdout at
// info, stderr at warn, log calls at their level), one entry per line,
// capped at MaxLogLineBytes and rate-limited per plugin (200 lines per
// second, bursts of 1000; dropped lines are counted in the log).
//
// # The data directory
//
// One DataDir serves one loaded plugin at a time. wasip1 has no file locks,
// so a plugin cannot keep a second server (or a second Load in this
// process) off its files, and two stores writing one directory write over
// each other's data. Load therefore takes an exclusive flock on the
// directory itself (not on a file in it, which a plugin may replace)
// before the first instance starts; every instance of the plugin shares
// it, and it is released only once Close has discarded every instance
// (for an instance Close abandons, when its call returns), or when the
// process dies. The path is resolved once, by Load: every instance, fresh
// ones after a failure included, uses the directory locked then, wherever
// the path (a link, a relative path) leads later, and a fresh instance
// refuses to start once that directory was moved or replaced. A Load on a
// directory another loaded plugin holds, under any path, fails at once
// with abi.CodeUnavailable, naming the directory and
// TOPGUN_PLUGIN_DATA_DIR. A plugin that declares abi.CapShared says
// several processes may use its storage at once and coordinates them
// itself: the lock is released as soon as its open returns, so two loads
// starting at the same moment may still see one refused. Systems without
// flock (Windows) lock nothing.
//
// # Limits and their defaults
//
//	MemoryLimitMB     256      TOPGUN_PLUGIN_MEMORY_MB        linear memory per instance
//	CallTimeout       10s      TOPGUN_PLUGIN_CALL_TIMEOUT     every call, and _initialize
//	MaxRequestBytes   32 MiB   TOPGUN_PLUGIN_MAX_REQUEST_BYTES
//	MaxResponseBytes  32 MiB   TOPGUN_PLUGIN_MAX_RESPONSE_BYTES
//	PoolSize          GOMAXPROCS TOPGUN_PLUGIN_POOL_SIZE     instances of a multi-instance plugin (at most 1024)
//	Trust             sandboxed  TOPGUN_PLUGIN_TRUST          sandboxed | trusted
//	CacheDir          DefaultCacheDir() TOPGUN_PLUGIN_CACHE_DIR
//	SHA256            none     TOPGUN_PLUGIN_SHA256
//	DataDir           none     TOPGUN_PLUGIN_DATA_DIR
//	DataMaxMB         none     TOPGUN_PLUGIN_DATA_MAX_MB      bytes of the files in DataDir
//	DataMaxFiles      100,000  TOPGUN_PLUGIN_DATA_MAX_FILES   files and directories in DataDir
//
// OptionsFromEnv maps these variables to Options for cmd/. The host's
// errors and notes name a setting by its variable ("raise
// TOPGUN_PLUGIN_MEMORY_MB"); a program that configures the host another
// way sets Options.SettingName to name it as its operators know it (a
// field of its configuration file, a flag). OptionsFromEnv's and
// ParseConfig's own errors, about the variables' values, keep the
// variables' names.
//
// # Calls and concurrency
//
// A wasm instance runs one call at a time. A plugin that does not declare
// abi.CapMultiInstance runs on one instance and its calls are serialised;
// one that does gets a pool of up to PoolSize instances, created on demand,
// each opened with the same configuration. Each call is one write of the
// msgpack request into the guest's scratch buffer, one topgun_call and one
// read of the response; function handles are looked up once per instance.
//
// # Failures
//
// A trap, a call past its deadline (in sandboxed mode the guest is
// interrupted even inside a loop), a guest exit, or a malformed result
// poisons the instance: the call returns an *abi.Error naming the plugin,
// the op and what happened ("plugin null.wasm: apply: did not finish within
// 10s (TOPGUN_PLUGIN_CALL_TIMEOUT); the instance was discarded"), the
// instance is closed, and the next call starts a fresh one (running
// _initialize and open again). A plugin without CapMultiInstance loses its
// in-memory state then. A panic that the Go SDK recovers is not a failure
// of the instance: it returns abi.CodeInternal and the instance lives on.
// A status code that is not an abi.Code, or reserved status bits, count
// as a malformed result.
//
// # Deadlines inside guest code
//
// In sandboxed mode the module is compiled from a metered copy
// (internal/meter): every function entry and loop header subtracts the
// static size of the code ahead from a counter, and when the counter runs
// out (every million or so instructions) the guest calls the host's
// topgun_meter.check, which traps it once the call is overdue. The meter
// also bounds the call stack, which wazero keeps on the host's heap
// outside the memory limit: an entry that takes the estimated stack past
// 16 MiB calls topgun_meter.stack, which traps (meterStackLimit). The check
// runs on the goroutine that made the call, so a deadline holds even when
// every processor is busy running guests, and guest code otherwise stays in
// compiled code (wazero's WithCloseOnContextDone instead leaves it for Go
// at every loop iteration, which made our plugins 2 to 6 times slower).
// A module using instructions the meter does not know (GC, typed function
// references, exception handling) falls back to WithCloseOnContextDone,
// and says so in the log. In trusted mode nothing is instrumented: a
// guest that never returns hangs its caller, and the whole process at the
// next garbage collection (Go cannot preempt compiled guest code, and the
// collector waits for every goroutine); deadlines are checked only
// before a call starts and while it waits for an instance. BenchmarkTrust
// measures the difference (the README's Sandbox section has the figures).
//
// Before wazero sees a module, meter.Precheck refuses one whose claimed
// counts do not fit its bytes (wazero allocates for claimed counts first)
// or that has more than meter.MaxSections sections, or more globals,
// segments or elements than meter.MaxGlobals, MaxSegments and MaxElements
// (each instance keeps those on the host's heap, outside MemoryLimitMB),
// or more imports, types or values of one type than meter.MaxImports,
// MaxTypes and MaxParams, or more locals in all than MaxModuleLocals, a
// body over MaxBodySize, a name section over MaxNames entries, or
// functions times exports and local names past MaxDefinitionScan
// (wazero's handling of those costs many times their bytes), and a panic
// of wazero's compiler is turned into a load error.
//
// A caller's context is checked before a call starts and while it waits
// for an instance; a call that has started runs to completion or to the
// call timeout, whatever happens to the caller's context, because stopping
// the guest would discard the instance and with it the in-memory state of
// a plugin without CapMultiInstance.
//
// # Circuit breaker
//
// Every failure that poisons an instance, and every fresh instance that
// cannot start, counts. BreakerFailures of them (default 5) within
// BreakerWindow (30s) open the plugin's circuit breaker: calls then fail
// at once with abi.CodeUnavailable and a message saying the breaker is
// open, the last failure, and when it retries; Healthy returns that error,
// so plugins.Store.Ping and the server's /ready report the backend
// unavailable. After BreakerBackoff (1s) the first call (or /ready check)
// is let through as a retry on a fresh instance while the others still
// fail fast: success closes the breaker, failure opens it again with the
// wait doubled, up to BreakerMaxBackoff (1m). Instances discarded, failed
// starts and the breaker's transitions (open, half-open, closed) are each
// logged once under plugin.<file name> and counted in Stats.
//
// A guest error crosses as its abi.Code and message, so
// errors.Is(err, abi.ErrNotFound) holds for plugins as for built-ins. A
// call whose fresh instance cannot start fails with the open's code,
// except that not found, invalid argument and unsupported become
// abi.CodeUnavailable: they would say the call's request was refused.
//
// # A full data directory
//
// wazero maps ENOSPC, EDQUOT and EFBIG to EIO, so a plugin whose data
// directory's file system is full can only report an I/O error. When a
// call into a plugin with a DataDir fails with abi.CodeUnavailable,
// CodeInternal or CodeResourceExhausted (open included, at Load or in a
// fresh instance), the host statfs()es the directory, at most once per
// second (spaceCheckEvery) and only after a failure, and appends to the
// error "; the file system of the data directory <dir> is full (N bytes
// free), which a wasm plugin sees as an I/O error; free space there" when
// less than 16 MiB (or twice the failed request) is free, a similar note
// when no inode is free, and one naming the file and the limit when the
// process has a file size limit (RLIMIT_FSIZE) that the largest file there
// is near. The error keeps the plugin's code and message: a full disk is
// not a batch too large, which the server would split on
// CodeResourceExhausted. The first finding is logged once at warn, its end
// (seen by a look on any call while it lasts) at info. statfs knows
// nothing of quotas, so when it shows room the host (on Linux) also writes
// one block to an unnamed O_TMPFILE file there (probeDataWrite): EDQUOT
// gets a note that the directory is over a file system quota (disk quota
// exceeded), ENOSPC one that the file system is full though its figures
// show room. The host's own quota is noted too (below); on systems
// without statfs nothing is added.
//
// # The data directory's quota
//
// DataMaxMB and DataMaxFiles bound the bytes of the files in DataDir and
// the files and directories there, all instances of the plugin together
// (dataQuota). Load reads the directory (at most DataMaxFiles entries);
// from then on the host adds what the guest writes, grows and creates, an
// atomic add per write that overstates the usage (overwrites, deletes and
// truncations are not subtracted). When the count would pass a limit the
// directory is read again, at most once per sixteenth of the limit
// written, created or freed since, and only if it still holds too much
// does the write or creation fail, with EIO; a failed call during which
// the quota refused something gets the note "; the data directory <dir>
// is at its quota (TOPGUN_PLUGIN_DATA_MAX_MB=N), so a write failed, ..."
// (or one naming TOPGUN_PLUGIN_DATA_MAX_FILES) instead of a look at the
// file system, whatever its code. An open with O_CREAT of a name that
// exists is not refused. Writes running while the directory is read can
// go uncounted until the next reading.
package host
