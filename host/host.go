package host

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/go-hclog"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/host/internal/meter"
)

// Backend is a wasm storage plugin behind abi.Backend. It is safe for
// concurrent use: calls are serialised on the plugin's one instance, or
// spread over a bounded pool when the plugin declares abi.CapMultiInstance.
type Backend struct {
	*abi.Caller
	p       *plugin
	pool    *pool
	breaker *breaker
	desc    abi.Description

	closeOnce sync.Once
	closeErr  error
}

var _ abi.Backend = (*Backend)(nil)

// plugin is what every instance of one loaded file shares.
type plugin struct {
	path   string
	file   string // base name, used in messages and the logger name
	prefix string // "plugin <file>"
	opts   *Options
	log    hclog.Logger
	rt     wazero.Runtime
	mod    wazero.CompiledModule

	size        int64
	sum         string
	compileTime time.Duration
	limiter     *logLimiter
	// metered: the module was compiled with the deadline meter
	// (internal/meter) instead of wazero's WithCloseOnContextDone.
	metered bool
	// deadlines describes the mechanism, for Inspect.
	deadlines string
	// moves orders directory moves in the data directory against the
	// other instances' path checks (see confinedFS).
	moves sync.RWMutex
	// files counts the files the instances have open in the data
	// directory, at most MaxOpenFiles (see confinedFS).
	files atomic.Int64
	// dataLock holds the exclusive flock on the data directory (see
	// lockDataDir), shared by every instance; p.close releases it after
	// the runtime, so it is held until no instance can touch the files.
	dataLock *os.File
	// dataRoot is the data directory as Load resolved it (absolute, links
	// followed) and dataInfo what it was then: every instance mounts that
	// directory, not whatever the configured path leads to later (a link
	// switched, a relative path after a chdir), which may be another
	// load's.
	dataRoot string
	dataInfo os.FileInfo
	// space watches the data directory's file system for failed calls
	// (see noteSpace).
	space spaceWatch
	// quota bounds what the instances keep in the data directory (nil:
	// not bounded).
	quota *dataQuota
	// cache is the compilation cache the module was compiled through (nil
	// without one), which keeps the compiled code of the modules last
	// closed (see compileCache.keep); moduleKey names the module there.
	cache     *compileCache
	moduleKey string
}

// errDataDirLocked is the cause of the error Load returns for a data
// directory another loaded plugin holds.
var errDataDirLocked = errors.New("the data directory is locked by another loaded plugin")

// LockDataDir takes the lock Load takes on a data directory, for a caller
// that puts other data there (topgun plugin test keeps its cases' data in
// subdirectories of one): it fails with CodeUnavailable while a loaded
// plugin, in any process, holds dir, and while it is held no plugin loads
// on dir. release drops the lock. Where flock is missing, nothing is
// locked.
func LockDataDir(dir string) (release func() error, err error) {
	f, err := lockDataDir(dir)
	if err != nil {
		if errors.Is(err, errDataDirLocked) {
			return nil, abi.Wrap(abi.CodeUnavailable, err, "host: data directory %s is in use by a loaded plugin (a server, or another load)", dir)
		}
		return nil, fmt.Errorf("host: data directory %s: cannot lock it: %w", dir, err)
	}
	if f == nil {
		return func() error { return nil }, nil
	}
	return f.Close, nil
}

// wasm is the magic and version of a wasm binary module.
var wasmMagic = []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}

// Load opens the plugin at path behind abi.Backend: it verifies the file,
// compiles it (through the on-disk compilation cache), checks its exports,
// imports and ABI version, starts an instance and opens it with
// opts.Config. A nil opts means DefaultOptions. Every error names the file.
func Load(ctx context.Context, path string, opts *Options) (*Backend, error) {
	return load(ctx, path, opts, nil)
}

// load is Load with an optional compilation cache that overrides the shared
// one for opts.CacheDir (benchmarks use a fresh one to measure the disk).
func load(ctx context.Context, path string, opts *Options, cache *compileCache) (*Backend, error) {
	p, err := compile(ctx, path, opts, cache, false)
	if err != nil {
		return nil, err
	}
	if p.opts.DataDir != "" {
		// wasip1 has no file locks, so a plugin cannot keep a second
		// server (or a second load in this process) off its files: two
		// stores writing one directory would write over each other's
		// data. The host locks the directory for it, before any instance
		// can touch it.
		if err := p.checkDataApartFromCache(); err != nil {
			p.close(ctx)
			return nil, err
		}
		if err := p.lockDataRoot(); err != nil {
			p.close(ctx)
			if errors.Is(err, errDataDirLocked) {
				return nil, abi.Wrap(abi.CodeUnavailable, err,
					"%s: data directory %s is in use by another loaded plugin (another server, or another load in this process); stop it, or give each server its own %s",
					p.prefix, p.opts.DataDir, p.opts.setting("TOPGUN_PLUGIN_DATA_DIR"))
			}
			return nil, fmt.Errorf("%s: data directory %s: cannot lock it: %w; check %s", p.prefix, p.opts.DataDir, err, p.opts.setting("TOPGUN_PLUGIN_DATA_DIR"))
		}
		p.quota = newDataQuota(p.dataRoot, p.opts, &p.moves, p.log)
	}
	b := &Backend{p: p, breaker: newBreaker(p)}
	b.Caller = abi.NewCaller(b, p.prefix)
	in, desc, err := p.newInstance(ctx, 0)
	if err != nil {
		err = p.noteSpace(err, 0, 0)
		p.close(ctx)
		return nil, err
	}
	if desc.ABIMajor != abi.VersionMajor {
		in.discard(ctx)
		p.close(ctx)
		return nil, fmt.Errorf("%s: open describes storage ABI %d.%d, this server implements %d.%d; rebuild the plugin against ABI %d",
			p.prefix, desc.ABIMajor, desc.ABIMinor, abi.VersionMajor, abi.VersionMinor, abi.VersionMajor)
	}
	if p.dataLock != nil && desc.Capabilities.Has(abi.CapShared) {
		// The plugin says several processes may use its storage at once:
		// it coordinates them itself, and the lock, held while it opened,
		// would refuse the others.
		p.unlockDataDir()
		p.log.Debug("plugin declares shared storage; its data directory is not locked", "data_dir", p.opts.DataDir)
	}
	size := 1
	if desc.Capabilities.Has(abi.CapMultiInstance) {
		size = p.opts.PoolSize
	}
	// The plugin reports its minor twice (topgun_abi_version and the
	// description); the host sends no op newer than either says, and
	// Describe reports that minor, the one spoken (plugin test prints it):
	// never past this host's, for a plugin built against a newer minor.
	reported := min(in.minor, desc.ABIMinor)
	desc.ABIMinor = min(reported, abi.VersionMinor)
	if desc.ABIMinor >= 1 {
		if err := probeApplyRuns(ctx, in, reported); err != nil {
			in.discard(ctx)
			p.close(ctx)
			return nil, err
		}
	}
	b.desc = desc
	b.Caller.SetPeerMinor(desc.ABIMinor)
	b.pool = newPool(p, size, in)
	b.pool.br = b.breaker
	p.log.Debug("plugin loaded", "name", desc.Name, "abi", fmt.Sprintf("%d.%d", desc.ABIMajor, desc.ABIMinor),
		"capabilities", strings.Join(desc.Capabilities.Names(), ","), "instances", size, "compile_time", p.compileTime)
	return b, nil
}

// probeApplyRuns sends in an empty batch as apply_runs, the op by which
// a plugin reporting minor 1 or later gets every write: one answering it
// unsupported (a plugin built with the 1.0 ops only, reporting the minor
// of the document it read) would have every write refused for good, so it
// is refused now. A trap fails the load too; another error is left to the
// writes that meet it.
func probeApplyRuns(ctx context.Context, in *instance, minor uint32) error {
	c := abi.NewCaller(in, in.p.prefix)
	c.SetPeerMinor(minor)
	in.starting = true
	err := c.Apply(ctx, &abi.Batch{Now: time.Now().UnixMilli()})
	in.starting = false
	switch {
	case errors.Is(err, abi.ErrUnsupported):
		return fmt.Errorf("%s reports storage ABI %d.%d but answers apply_runs (op %d, which ABI 1.1 adds and by which the host sends it every write) as unsupported; implement apply_runs, or report minor 0 in topgun_abi_version and the description to be sent apply",
			in.p.prefix, abi.VersionMajor, minor, uint32(abi.CallApplyRuns))
	case in.poisoned:
		return err
	}
	return nil
}

// compile reads, verifies and compiles the file and prepares its runtime.
// elide compiles the module without its large custom sections' payloads
// (see readPluginFile), and then without the caches.
func compile(ctx context.Context, path string, opts *Options, cache *compileCache, elide bool) (*plugin, error) {
	file := filepath.Base(path)
	prefix := "plugin " + file
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", prefix, err)
	}
	o := opts.withDefaults()
	p := &plugin{path: path, file: file, prefix: prefix, opts: o, log: o.Logger.Named("plugin." + file), limiter: newLogLimiter()}
	pf, err := readPluginFile(prefix, path, elide)
	if err != nil {
		return nil, err
	}
	bin := pf.bin
	p.size, p.sum = pf.size, pf.sum
	if !bytes.HasPrefix(bin, wasmMagic) {
		return nil, fmt.Errorf("%s: %s is not a wasm binary module (it does not start with \\0asm version 1); build plugins with GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared", prefix, path)
	}
	if o.SHA256 != "" {
		want := strings.TrimPrefix(strings.ToLower(o.SHA256), "sha256:")
		if want != p.sum {
			return nil, fmt.Errorf("%s: sha256 mismatch: the file has %s, %s pins %s; refusing to load it", prefix, p.sum, o.setting("TOPGUN_PLUGIN_SHA256"), want)
		}
	}
	if pf.elided {
		// The caches are keyed by the file: an entry made from another
		// module must not stand for it.
		cache = nil
	} else if cache == nil {
		if cache, err = sharedCache(o.CacheDir); err != nil {
			return nil, fmt.Errorf("%s: compilation cache %s: %w; set %s to a private writable directory (or - to disable it)", prefix, o.CacheDir, err, o.setting("TOPGUN_PLUGIN_CACHE_DIR"))
		}
	}
	// wazero allocates for the counts a module claims before reading what
	// they count; a few hostile bytes must not make it allocate gigabytes.
	if err := meter.Precheck(bin); err != nil && !errors.Is(err, meter.ErrUnsupported) {
		return nil, fmt.Errorf("%s: invalid wasm module: %w", prefix, err)
	}
	start := time.Now()
	p.deadlines = "checked only between calls (trusted)"
	sandboxed := o.Trust == TrustSandboxed
	metered, info, cached := []byte(nil), meter.Info{}, false
	if sandboxed && cache != nil {
		// A cached metered copy was made from the capped module: neither
		// step below needs doing again.
		metered, info, cached = cache.loadMetered(p.sum)
	}
	var code []byte
	if !cached {
		// wazero bounds linear memory, not tables, whose entries live on
		// the host's heap: every table gets a maximum (see
		// meter.CapTables).
		var err error
		if code, err = meter.CapTables(bin); err != nil {
			return nil, fmt.Errorf("%s: invalid wasm module: %w", prefix, err)
		}
	}
	if sandboxed {
		var err error
		if !cached {
			metered, info, err = instrument(code, meterBudget, meterStackLimit)
			if err == nil && cache != nil {
				if err := cache.storeMetered(p.sum, metered, info); err != nil {
					p.log.Debug("cannot cache the metered module; it is metered again at the next start", "error", err)
				}
			}
		}
		if errors.Is(err, meter.ErrFrameTooLarge) {
			return nil, fmt.Errorf("%s: %w (sandboxed plugins' call stacks are bounded; deep recursion needs %s=%s)", prefix, err, o.setting("TOPGUN_PLUGIN_TRUST"), TrustTrusted)
		}
		if err == nil {
			code, p.metered = metered, true
			p.deadlines = fmt.Sprintf("metered (%d check sites in %d functions)", info.Checks, info.Functions)
			p.log.Debug("plugin metered", "checks", info.Checks, "functions", info.Functions, "cached", cached, "took", time.Since(start))
		} else {
			p.deadlines = fmt.Sprintf("wazero's interruption, several times slower (the meter refused the module: %v)", err)
			p.log.Info("plugin uses wasm features the deadline meter does not know; deadlines use wazero's slower interruption", "reason", err)
		}
	}
	if !p.metered {
		// Compiled with debug info on, which makes wazero refuse a module
		// ending in an empty custom section. The pin and the caches'
		// records stay those of the file (p.sum); wazero's own cache key
		// is the code compiled, a function of the file.
		code = meter.TrimEmptyCustomTail(code)
	}
	// With debug info on, wazero keeps a copy of every custom section for
	// the compiled module's life; the metered copy has no debug sections
	// for it to read (the meter drops them).
	rc := wazero.NewRuntimeConfigCompiler().
		WithMemoryLimitPages(uint32(o.MemoryLimitMB) * 16).
		WithCloseOnContextDone(o.Trust == TrustSandboxed && !p.metered).
		WithDebugInfoEnabled(!p.metered)
	if cache != nil {
		p.rt = wazero.NewRuntimeWithConfig(ctx, rc.WithCompilationCache(cache.wz))
		p.mod, err = cache.compile(ctx, p.rt, code, p.log)
		if err == nil {
			// The code compiled is a function of the file and the trust
			// mode.
			p.cache, p.moduleKey = cache, p.sum+" "+string(o.Trust)
		}
	} else {
		p.rt = wazero.NewRuntimeWithConfig(ctx, rc)
		p.mod, err = compileModule(ctx, p.rt, code)
	}
	var pathErr *fs.PathError
	var linkErr *os.LinkError
	if err != nil && cache != nil {
		why := ""
		switch {
		case strings.Contains(err.Error(), "compilationcache"):
			// A damaged cache entry (wazero checks a checksum of the code
			// it caches) is no reason to refuse the plugin: compile it
			// again without the cache.
			why = "the compilation cache holds a damaged entry for this plugin; compiling it without the cache (delete the cache directory to rebuild it)"
		case errors.As(err, &pathErr) || errors.As(err, &linkErr):
			// wazero returns the file errors of reading or writing an
			// entry as they are; a cache that cannot be used (its
			// directory deleted while the process runs, a full disk) is
			// no reason to refuse the plugin either.
			why = "cannot read or write the compilation cache; compiling this plugin without it"
		}
		if why != "" {
			p.log.Warn(why, "cache_dir", o.CacheDir, "error", err)
			_ = p.rt.Close(ctx)
			p.rt = wazero.NewRuntimeWithConfig(ctx, rc)
			p.mod, err = compileModule(ctx, p.rt, code)
		}
	}
	p.compileTime = time.Since(start)
	if err != nil {
		p.close(ctx)
		if strings.Contains(err.Error(), "over limit") {
			return nil, fmt.Errorf("%s: the module needs more memory than the limit of %d MiB (%s): %w", prefix, o.MemoryLimitMB, o.setting("TOPGUN_PLUGIN_MEMORY_MB"), err)
		}
		return nil, fmt.Errorf("%s: invalid wasm module: %w", prefix, err)
	}
	if err := instantiateWASI(ctx, p.rt); err != nil {
		p.close(ctx)
		return nil, fmt.Errorf("%s: wasi: %w", prefix, err)
	}
	if err := p.checkShape(p.rt.Module(wasi_snapshot_preview1.ModuleName).ExportedFunctionDefinitions()); err != nil {
		p.close(ctx)
		return nil, err
	}
	if p.metered {
		_, err = p.rt.NewHostModuleBuilder(meter.ImportModule).
			NewFunctionBuilder().
			WithGoModuleFunction(api.GoModuleFunc(meterCheck), nil, []api.ValueType{api.ValueTypeI32}).
			Export(meter.ImportName).
			NewFunctionBuilder().
			WithGoModuleFunction(api.GoModuleFunc(meterStack), nil, nil).
			Export(meter.StackImportName).
			Instantiate(ctx)
		if err != nil {
			p.close(ctx)
			return nil, fmt.Errorf("%s: meter module: %w", prefix, err)
		}
	}
	_, err = p.rt.NewHostModuleBuilder(abi.WasmImportModule).
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(p.hostLog), logParams, nil).
		WithParameterNames("level", "ptr", "len").
		Export(abi.WasmImportLog).
		Instantiate(ctx)
	if err != nil {
		p.close(ctx)
		return nil, fmt.Errorf("%s: host module: %w", prefix, err)
	}
	return p, nil
}

// maxRenumberTo is the highest descriptor fd_renumber may move a file
// to: stdin, stdout, stderr, the data directory and MaxOpenFiles files.
const maxRenumberTo = 3 + MaxOpenFiles

// maxPollSubscriptions is the most subscriptions one poll_oneoff may
// carry: two for each descriptor a plugin can have, and clocks. wazero
// allocates about 64 bytes of the host's heap for each, so a guest's whole
// memory of them would cost as much again outside the memory limit.
const maxPollSubscriptions = 4096

// wasip1's EBADF, EFAULT and EINVAL.
const (
	errnoBadf  = 8
	errnoFault = 21
	errnoInval = 28
)

// maxReaddirChunk is the most of a guest's buffer one fd_readdir hands
// wazero at once (see readdirChunked): about 40 entries, four of the
// longest names Linux allows.
const maxReaddirChunk = 1024

// direntSize is the size of wasip1's dirent header; an entry is the header
// followed by its name.
const direntSize = 24

// readdirChunked is fd_readdir(fd, buf, buf_len, cookie, bufused) made of
// calls of wazero's of at most maxReaddirChunk bytes, each continuing from
// the last whole entry the one before wrote. The guest reads the same
// entries, cookies and bufused, but wazero reads and keeps, per open
// directory until its next read or close, up to buf_len/24 entries whether
// or not the guest's memory can take them: 16 descriptors read once with
// buf_len 0xffffffff kept a directory of 20,000 long names 16 times, 88 MiB
// of the host's heap. It now keeps a chunk's entries, and an overdue guest
// traps between chunks rather than after the whole directory is read.
// Only a cookie the last chunk of a read did not reach is now unknown
// (ENOENT, as for any cookie before wazero's cache), which only seekdir
// to an entry in the middle of a large read can ask for, and a guest whose
// bufused lies in its buffer gets one chunk.
func readdirChunked(ctx context.Context, f api.GoModuleFunction, m api.Module, stack []uint64) {
	trapOverdue(ctx)
	buf, bufLen, cookie, usedAt := uint32(stack[1]), uint32(stack[2]), stack[3], uint32(stack[4])
	if bufLen <= maxReaddirChunk {
		f.Call(ctx, m, stack)
		return
	}
	if uint64(usedAt)+4 > uint64(buf) && uint64(usedAt) < uint64(buf)+uint64(bufLen) {
		// bufused in the buffer: wazero writes it over the entries, which
		// then cannot be read back to continue. One chunk is all it gets.
		stack[2] = maxReaddirChunk
		f.Call(ctx, m, stack)
		return
	}
	var off, want uint32 // want: the size of an entry longer than a chunk
	for {
		if uint64(buf)+uint64(off) > math.MaxUint32 {
			stack[0] = errnoFault // wazero would fault writing there
			return
		}
		n := min(bufLen-off, max(maxReaddirChunk, want))
		if bufLen-off-n < direntSize {
			// Less room than a header would be left: wazero must see it
			// to answer whether an entry follows (bufused == buf_len,
			// EFAULT past the end of memory) or the directory ends.
			n = bufLen - off
		}
		sub := [5]uint64{stack[0], uint64(buf + off), uint64(n), cookie, uint64(usedAt)}
		f.Call(ctx, m, sub[:])
		if sub[0] != 0 {
			stack[0] = sub[0]
			return
		}
		used, ok := m.Memory().ReadUint32Le(usedAt)
		if !ok {
			stack[0] = errnoFault
			return
		}
		if used < n { // the end of the directory
			stack[0] = 0
			if !m.Memory().WriteUint32Le(usedAt, off+used) {
				stack[0] = errnoFault
			}
			return
		}
		if off+n == bufLen {
			break // full, maybe with a cut entry last: as wazero answers
		}
		// More entries: continue after the last whole one. wazero wrote
		// them and the cut one's header, which may be less than n: the
		// chunk may pass the end of the guest's memory.
		chunk, ok := m.Memory().Read(buf+off, min(n, m.Memory().Size()-min(buf+off, m.Memory().Size())))
		if !ok {
			stack[0] = errnoFault
			return
		}
		var pos uint32
		for uint64(pos)+direntSize <= uint64(len(chunk)) {
			size := uint64(direntSize) + uint64(binary.LittleEndian.Uint32(chunk[pos+16:]))
			if uint64(pos)+size > uint64(len(chunk)) {
				break
			}
			cookie = binary.LittleEndian.Uint64(chunk[pos:])
			pos += uint32(size)
		}
		switch {
		case pos > 0:
			off += pos
			want = 0
		case len(chunk) < direntSize: // wazero wrote the cut header or faulted
			stack[0] = errnoFault
			return
		default:
			// An entry longer than a chunk (no name Linux allows is):
			// read it again with room for it.
			want = uint32(min(direntSize+uint64(binary.LittleEndian.Uint32(chunk[16:])), math.MaxUint32))
		}
		trapOverdue(ctx)
	}
	if !m.Memory().WriteUint32Le(usedAt, bufLen) {
		stack[0] = errnoFault
		return
	}
	stack[0] = 0
}

// guarded wraps wazero's WASI function f as every other is wrapped (an
// overdue guest traps), and answers errno without calling f when argument
// arg passes limit.
func guarded(f api.GoModuleFunction, arg int, limit uint32, errno uint64) api.GoModuleFunc {
	return func(ctx context.Context, m api.Module, stack []uint64) {
		trapOverdue(ctx)
		if uint32(stack[arg]) > limit {
			stack[0] = errno
			return
		}
		f.Call(ctx, m, stack)
	}
}

// wasiFuncs is wazero's WASI preview 1 functions, taken from its module once.
var wasiFuncs = sync.OnceValues(func() (map[string]api.FunctionDefinition, error) {
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer rt.Close(ctx)
	b := rt.NewHostModuleBuilder(wasi_snapshot_preview1.ModuleName)
	wasi_snapshot_preview1.NewFunctionExporter().ExportFunctions(b)
	mod, err := b.Compile(ctx)
	if err != nil {
		return nil, err
	}
	defs := mod.ExportedFunctions()
	for name, d := range defs {
		if _, ok := d.GoFunction().(api.GoModuleFunction); !ok {
			return nil, fmt.Errorf("wazero's %s is not a Go function", name)
		}
	}
	return defs, nil
})

// instantiateWASI instantiates WASI preview 1 in rt, each function (but
// the clocks and sched_yield, cheap and frequent) trapping a sandboxed
// guest whose call is past its deadline: the meter charges a host call as
// one instruction, so a loop of calls that each take the host long (a
// million empty iovecs, many poll subscriptions) would otherwise run
// hours between two of its checks. Two refuse a number no plugin needs:
// fd_renumber a target descriptor no file of the plugin can have (wazero's
// descriptor table grows to hold every number up to the target, so one
// call to 2^31-1 would allocate 16 GiB of the host's heap), poll_oneoff
// more than maxPollSubscriptions subscriptions; fd_readdir reads in
// chunks (readdirChunked).
func instantiateWASI(ctx context.Context, rt wazero.Runtime) error {
	defs, err := wasiFuncs()
	if err != nil {
		return err
	}
	b := rt.NewHostModuleBuilder(wasi_snapshot_preview1.ModuleName)
	wasi_snapshot_preview1.NewFunctionExporter().ExportFunctions(b)
	for name, d := range defs {
		var fn api.GoModuleFunc
		f := d.GoFunction().(api.GoModuleFunction)
		switch name {
		case "clock_time_get", "clock_res_get", "sched_yield":
			continue
		case "fd_renumber": // (fd, to)
			fn = guarded(f, 1, maxRenumberTo, errnoBadf)
		case "fd_readdir":
			fn = func(ctx context.Context, m api.Module, stack []uint64) {
				readdirChunked(ctx, f, m, stack)
			}
		case "poll_oneoff": // (in, out, nsubscriptions, nevents)
			fn = guarded(f, 2, maxPollSubscriptions, errnoInval)
		default:
			fn = func(ctx context.Context, m api.Module, stack []uint64) {
				trapOverdue(ctx)
				f.Call(ctx, m, stack)
			}
		}
		b.NewFunctionBuilder().
			WithGoModuleFunction(fn, d.ParamTypes(), d.ResultTypes()).
			WithParameterNames(d.ParamNames()...).
			WithResultNames(d.ResultNames()...).
			Export(name)
	}
	_, err = b.Instantiate(ctx)
	return err
}

type wantFunc struct {
	name    string
	params  []api.ValueType
	results []api.ValueType
}

var i32, i64 = api.ValueTypeI32, api.ValueTypeI64

// logParams is the signature of topgun_v1.log: (level, ptr, len) -> ().
var logParams = []api.ValueType{i32, i32, i32}

var wantExports = []wantFunc{
	{abi.WasmExportInitialize, nil, nil},
	{abi.WasmExportVersion, nil, []api.ValueType{i32}},
	{abi.WasmExportBuffer, []api.ValueType{i32}, []api.ValueType{i32}},
	{abi.WasmExportCall, []api.ValueType{i32, i32}, []api.ValueType{i64}},
}

func sig(params, results []api.ValueType) string {
	names := func(ts []api.ValueType) string {
		s := make([]string, len(ts))
		for i, t := range ts {
			s[i] = api.ValueTypeName(t)
		}
		return strings.Join(s, ", ")
	}
	return "(" + names(params) + ") -> (" + names(results) + ")"
}

// instrument is meter.Instrument; tests replace it to exercise the
// fallback to wazero's interruption.
var instrument = meter.Instrument

// compileModule compiles code, turning a panic of the runtime into an
// error: wazero v1.12 panics on some malformed modules (found by
// FuzzInstrument), and a bad plugin file must not take the server down.
func compileModule(ctx context.Context, rt wazero.Runtime, code []byte) (mod wazero.CompiledModule, err error) {
	defer func() {
		if r := recover(); r != nil {
			mod, err = nil, fmt.Errorf("the runtime failed on it: %v", r)
		}
	}()
	return rt.CompileModule(ctx, code)
}

// importedFunctions returns the module's imports as the file declares them,
// without the meter's check and stack functions.
func (p *plugin) importedFunctions() []api.FunctionDefinition {
	imports := p.mod.ImportedFunctions()
	if p.metered && len(imports) >= 2 {
		imports = imports[:len(imports)-2] // the meter's check and stack
	}
	return imports
}

// checkShape checks exports and imports before any guest code runs. wasi
// is what the host's wasi_snapshot_preview1 exports: an import it lacks,
// or one of another signature, would otherwise fail only at instantiation,
// with wazero's words and none of the plugin's other problems.
func (p *plugin) checkShape(wasi map[string]api.FunctionDefinition) error {
	var problems []string
	for _, imp := range p.importedFunctions() {
		mod, name, _ := imp.Import()
		full := printable(mod + "." + name) // names are any UTF-8 (see printable)
		got := sig(imp.ParamTypes(), imp.ResultTypes())
		switch {
		case mod == wasi_snapshot_preview1.ModuleName:
			f, ok := wasi[name]
			if !ok {
				problems = append(problems, fmt.Sprintf("it imports %s, which WASI preview 1 does not define", full))
			} else if want := sig(f.ParamTypes(), f.ResultTypes()); got != want {
				problems = append(problems, fmt.Sprintf("it imports %s with signature %s, want %s", full, got, want))
			}
		case mod == abi.WasmImportModule:
			if name != abi.WasmImportLog {
				problems = append(problems, fmt.Sprintf("it imports %s, which this server (storage ABI %d.%d) does not provide; it needs a newer server",
					full, abi.VersionMajor, abi.VersionMinor))
			} else if want := sig(logParams, nil); got != want {
				problems = append(problems, fmt.Sprintf("it imports %s with signature %s, want %s", full, got, want))
			}
		case strings.HasPrefix(mod, abi.WasmPrefix):
			if n, err := strconv.Atoi(mod[len(abi.WasmPrefix):]); err == nil {
				return fmt.Errorf("%s was built for storage ABI %d (it imports %s), this server implements %d.%d; rebuild the plugin against ABI %d",
					p.prefix, n, full, abi.VersionMajor, abi.VersionMinor, abi.VersionMajor)
			}
			problems = append(problems, fmt.Sprintf("it imports %s from an unknown module", full))
		default:
			problems = append(problems, fmt.Sprintf("it imports %s; plugins may import only from %s and %s",
				full, wasi_snapshot_preview1.ModuleName, abi.WasmImportModule))
		}
	}
	for _, m := range p.mod.ImportedMemories() {
		mod, name, _ := m.Import()
		problems = append(problems, fmt.Sprintf("it imports memory %s; a plugin must define and export its own memory", printable(mod+"."+name)))
	}
	exports := p.mod.ExportedFunctions()
	var missing []string
	if _, ok := exports["_start"]; ok {
		if _, ok := exports[abi.WasmExportInitialize]; !ok {
			problems = append(problems, "it is a command module (exports _start); build it as a reactor: go build -buildmode=c-shared")
		}
	}
	for _, w := range wantExports {
		f, ok := exports[w.name]
		if !ok {
			missing = append(missing, w.name)
			continue
		}
		if got, want := sig(f.ParamTypes(), f.ResultTypes()), sig(w.params, w.results); got != want {
			problems = append(problems, fmt.Sprintf("export %s has signature %s, want %s", w.name, got, want))
		}
	}
	if _, ok := p.mod.ExportedMemories()[abi.WasmExportMemory]; !ok {
		missing = append(missing, abi.WasmExportMemory)
	}
	if len(missing) > 0 {
		problems = append([]string{"missing exports " + strings.Join(missing, ", ") + " (is it a TopGun storage plugin? see abi/WASM.md)"}, problems...)
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s: not a storage plugin: %s", p.prefix, strings.Join(problems, "; "))
	}
	return nil
}

// close releases the runtime (and every instance in it) and the compiled
// module, then the lock on the data directory.
func (p *plugin) close(ctx context.Context) {
	if p.rt != nil {
		_ = p.rt.Close(context.WithoutCancel(ctx))
	}
	if p.mod != nil {
		// Through the compilation cache every runtime uses one engine,
		// which keeps a module's native code until each load that compiled
		// it closes it; closing the runtime does not. Left open, every
		// plugin build the process ever loaded stayed in memory (about 14
		// MiB of code and 7 MiB of heap for a Go plugin).
		if p.cache != nil {
			p.cache.keep(p.moduleKey, p.mod)
		} else {
			_ = p.mod.Close(context.WithoutCancel(ctx))
		}
		p.mod = nil
	}
	p.unlockDataDir()
}

// lockDataRoot resolves the data directory, locks it and records what it
// is (see dataRoot).
func (p *plugin) lockDataRoot() error {
	abs, err := filepath.Abs(p.opts.DataDir)
	if err != nil {
		return err
	}
	if p.dataRoot, err = filepath.EvalSymlinks(abs); err != nil {
		return err
	}
	if p.dataLock, err = lockDataDir(p.dataRoot); err != nil {
		return err
	}
	if p.dataLock != nil {
		p.dataInfo, err = p.dataLock.Stat()
	} else {
		p.dataInfo, err = os.Stat(p.dataRoot)
	}
	return err
}

// checkDataApartFromCache refuses a data directory that holds the
// compilation cache or lies inside it: the host runs the native code and
// the metered copies the cache holds, so a plugin writing there could
// replace the code of every plugin the cache serves (another tenant's
// among them), as a user who may write to the cache could (checkCacheDir).
func (p *plugin) checkDataApartFromCache() error {
	if p.opts.CacheDir == "-" || !dirsOverlap(p.opts.DataDir, p.opts.CacheDir) {
		return nil
	}
	return fmt.Errorf("%s: data directory %s and compilation cache %s overlap (one holds the other), and the server runs the native code the cache holds: the plugin could replace the code other plugins run; give %s and %s directories apart",
		p.prefix, p.opts.DataDir, p.opts.CacheDir, p.opts.setting("TOPGUN_PLUGIN_DATA_DIR"), p.opts.setting("TOPGUN_PLUGIN_CACHE_DIR"))
}

// DataDirApartFromCache reports whether a plugin given dataDir could not
// write into the compilation cache cacheDir ("" is DefaultCacheDir(), "-"
// none), as Load requires: neither may hold the other, symbolic links
// followed; one not made yet is taken where it would be made (the cache is
// made at the first compile, the data directory before). A program
// loading many plugins can so refuse such a directory at start.
func DataDirApartFromCache(dataDir, cacheDir string) bool {
	if cacheDir == "" {
		cacheDir = DefaultCacheDir()
	}
	return cacheDir == "-" || !dirsOverlap(dataDir, cacheDir)
}

// dirsOverlap reports whether the directories data and cache hold one
// another (links followed; one not made yet is where it would be made).
func dirsOverlap(data, cache string) bool {
	d, err := resolvePath(data)
	if err != nil {
		return false // lockDataRoot reports it
	}
	c, err := resolvePath(cache)
	if err != nil {
		return false // the cache could not be opened either: nothing to replace
	}
	return pathWithin(c, d) || pathWithin(d, c)
}

// resolvePath is the absolute path of dir with its symbolic links
// followed. Of a dir not made yet, the part that exists is resolved and
// the rest appended: a cache made at the first compile lands there.
func resolvePath(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	var rest []string
	for {
		r, err := filepath.EvalSymlinks(abs)
		if err == nil {
			return filepath.Join(append([]string{r}, rest...)...), nil
		}
		parent := filepath.Dir(abs)
		if !errors.Is(err, fs.ErrNotExist) || parent == abs {
			return "", err
		}
		rest = append([]string{filepath.Base(abs)}, rest...)
		abs = parent
	}
}

// pathWithin reports whether path is root or lies under it (both clean
// and absolute).
func pathWithin(path, root string) bool {
	rel, err := filepath.Rel(root, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// unlockDataDir releases the data directory's lock, if held.
func (p *plugin) unlockDataDir() {
	if p.dataLock != nil {
		_ = p.dataLock.Close()
		p.dataLock = nil
	}
}

// hostLog is the log import: log(level, ptr, len). It never traps.
func (p *plugin) hostLog(ctx context.Context, m api.Module, stack []uint64) {
	level := hclog.Level(int32(uint32(stack[0])))
	ptr, n := uint32(stack[1]), uint32(stack[2])
	truncated := false
	if n > MaxLogLineBytes {
		n, truncated = MaxLogLineBytes, true
	}
	if level < hclog.Trace || level > hclog.Error {
		level = hclog.Info
	}
	if !shown(p.log, level) {
		return // filtered out: it spends none of the limit
	}
	// The limit is checked first, so a plugin that logs in a loop costs
	// the host no copy of the lines it drops.
	allowed, dropped := p.limiter.allow()
	if !allowed {
		return
	}
	b, ok := m.Memory().Read(ptr, n)
	if !ok {
		write(p.log, hclog.Warn, dropped, "plugin log call with a range outside its memory", "ptr", ptr, "len", n)
		return
	}
	// A log call is one line (abi/WASM.md): line breaks inside it would
	// let the plugin write lines that look like the server's own entries,
	// many per rate-limited call.
	msg := escapeControls(strings.TrimRight(string(b), "\n"))
	if truncated {
		write(p.log, level, dropped, msg, "truncated", true)
		return
	}
	write(p.log, level, dropped, msg)
}

// escapeControls writes the control characters of a plugin's log line
// (but tab) as escapes: line breaks would add lines dressed as the
// server's own, a carriage return or a terminal escape would overwrite
// or hide what the reader's terminal shows. A byte that is not UTF-8 is
// escaped too: 0x80 to 0x9f alone are C1 controls to a terminal reading
// 8-bit ones (0x9b is CSI).
func escapeControls(s string) string {
	if strings.IndexFunc(s, isControl) < 0 && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		switch {
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case isControl(r) && r < 0x80, r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[0])
		case isControl(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[:n])
		}
		s = s[n:]
	}
	return b.String()
}

// isControl reports a C0 or C1 control character or DEL, tab aside, and
// Unicode's line and paragraph separators (line breaks to viewers that
// follow Unicode) and bidirectional controls (which reorder what follows
// them on the line as shown).
func isControl(r rune) bool {
	if r < 0x80 {
		return r != '\t' && (r < 0x20 || r == 0x7f)
	}
	return r <= 0x9f || r >= 0x61c && unicode.In(r, unicode.Zl, unicode.Zp, unicode.Bidi_Control)
}

// Describe returns the description the plugin gave when it was opened.
func (b *Backend) Describe() abi.Description { return b.desc }

// File returns the plugin's file name.
func (b *Backend) File() string { return b.p.file }

// SHA256 returns the hex SHA-256 of the plugin file.
func (b *Backend) SHA256() string { return b.p.sum }

// RoundTrip implements abi.RoundTripper on the instance pool.
func (b *Backend) RoundTrip(ctx context.Context, call abi.WasmCall, req []byte, handle func(abi.Code, []byte) error) error {
	if err := abi.ContextError(ctx); err != nil {
		return abi.Wrap(abi.CodeOf(err), err, "%s: %s: %s", b.p.prefix, call, err)
	}
	if len(req) > b.p.opts.MaxRequestBytes {
		return abi.Errorf(abi.CodeResourceExhausted, "%s: %s: request of %d bytes exceeds the limit of %d bytes; send smaller batches or raise %s",
			b.p.prefix, call, len(req), b.p.opts.MaxRequestBytes, b.p.opts.setting("TOPGUN_PLUGIN_MAX_REQUEST_BYTES"))
	}
	probe, err := b.breaker.allow(call)
	if err != nil {
		return err
	}
	in, startFailed, err := b.pool.acquire(ctx, call, probe)
	if err != nil {
		if !startFailed {
			// (acquire told the breaker of a failed start itself.)
			b.breaker.done(probe, outcomeNeutral, err)
		}
		return err
	}
	b.pool.calls.Add(1)
	mark := b.p.quotaMark()
	err = in.RoundTrip(ctx, call, req, handle)
	if err != nil {
		// Before the breaker keeps it as the last failure.
		err = b.p.noteSpace(err, len(req), mark)
	} else {
		b.p.spaceOK()
	}
	b.finish(in, probe, err)
	return err
}

// finish records the outcome of a call on in and releases it. The breaker
// learns of a failure before the instance's slot is freed, so that a call
// waiting for the slot sees the breaker as the failure left it.
func (b *Backend) finish(in *instance, probe bool, err error) {
	o := outcomeOK
	if in.poisoned {
		b.pool.failures.Add(1)
		o = outcomeFailed
	}
	b.breaker.done(probe, o, err)
	b.pool.release(in)
}

// Healthy reports whether the plugin can serve calls: nil, or an
// abi.CodeUnavailable error while its circuit breaker is open (after
// Options.BreakerFailures failures within BreakerWindow) and no retry is
// due. When a retry is due Healthy returns nil and the next call is the
// retry. plugins.Store.Ping consults it, so /ready reports the plugin
// unavailable while the breaker is open, and once the backend is closed.
func (b *Backend) Healthy() error {
	if b.pool.closing.Load() {
		return abi.Errorf(abi.CodeUnavailable, "%s: backend is closed", b.p.prefix)
	}
	return b.breaker.healthy()
}

// Stats are counters of a loaded plugin, for health checks and metrics.
type Stats struct {
	// Calls is the number of calls that reached an instance.
	Calls int64
	// Failures is the number of calls that poisoned their instance (a
	// trap, a deadline, an exit, a malformed result) and of fresh
	// instances that could not start: the failures the breaker counts.
	Failures int64
	// InstancesStarted counts instances started, the first included
	// (not fresh instances that failed to start).
	InstancesStarted int64
	// InstancesDiscarded counts instances discarded after a failure.
	InstancesDiscarded int64
	// Live is the number of instances alive now.
	Live int
	// MemoryBytes is the linear memory of the live instances, as of the
	// end of their last call (it drops when an instance is discarded).
	MemoryBytes int64
	// Breaker is the state and the counters of the circuit breaker.
	Breaker BreakerStats
}

// Stats returns the plugin's counters.
func (b *Backend) Stats() Stats {
	b.pool.mu.Lock()
	live := b.pool.live
	b.pool.mu.Unlock()
	return Stats{
		Calls:              b.pool.calls.Load(),
		Failures:           b.pool.failures.Load(),
		InstancesStarted:   b.pool.started.Load(),
		InstancesDiscarded: b.pool.discarded.Load(),
		Live:               live,
		MemoryBytes:        b.pool.memBytes.Load(),
		Breaker:            b.breaker.stats(),
	}
}

// Scan clamps the page to what fits in a response, then runs scan.
func (b *Backend) Scan(ctx context.Context, req abi.ScanRequest) (abi.Page, error) {
	return b.Caller.Scan(ctx, abi.ClampScan(req, b.p.opts.MaxResponseBytes))
}

// ListExpired clamps limit like Scan, then runs list_expired.
func (b *Backend) ListExpired(ctx context.Context, now int64, limit int) ([]abi.Record, error) {
	if limit > abi.MaxGetKeys {
		limit = abi.MaxGetKeys
	}
	return b.Caller.ListExpired(ctx, now, limit)
}

// Close closes every instance (calling the plugin's close) and the runtime.
// It waits for calls in flight, and for the plugin's close, at most
// CallTimeout in all: instances still busy then are abandoned (each is
// discarded when its call returns, and the runtime closed after the last)
// and Close returns an abi.CodeDeadlineExceeded error saying so (or, with
// none busy, that an instance back from its call too late for the plugin's
// close was discarded without it), joined with the errors the plugin's
// closes returned by then. Calls after Close fail with
// abi.CodeUnavailable. It is idempotent.
func (b *Backend) Close() error {
	b.closeOnce.Do(func() {
		ctx := context.Background()
		b.closeErr = b.pool.close(ctx, b.p.opts.CallTimeout, func() { b.p.close(ctx) })
	})
	return b.closeErr
}

var caches struct {
	sync.Mutex
	m map[string]*compileCache
}

// CheckCacheDir opens the compilation cache of dir as Load does ("" is
// DefaultCacheDir(), "-" none), creating the directory, and returns the
// error Load would fail with: the directory holds native code the server
// runs, so it must belong to the server's user and be writable by no one
// else. A program loading many plugins can so report a cache it cannot use
// once, at start.
func CheckCacheDir(dir string) error {
	if dir == "" {
		dir = DefaultCacheDir()
	}
	if _, err := sharedCache(dir); err != nil {
		return fmt.Errorf("compilation cache %s: %w", dir, err)
	}
	return nil
}

// sharedCache returns the process-wide compilation cache of dir (nil for
// "-"), creating the directory.
func sharedCache(dir string) (*compileCache, error) {
	if dir == "-" {
		return nil, nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	caches.Lock()
	defer caches.Unlock()
	if c := caches.m[abs]; c != nil {
		return c, nil
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, err
	}
	if err := checkCacheDir(abs); err != nil {
		return nil, err
	}
	c, err := newCompileCache(abs)
	if err != nil {
		return nil, err
	}
	if caches.m == nil {
		caches.m = map[string]*compileCache{}
	}
	caches.m[abs] = c
	return c, nil
}
