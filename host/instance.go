package host

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	"github.com/tetratelabs/wazero/sys"

	"github.com/topgun-go/topgun/abi"
)

// initialBuffer is the scratch buffer size asked for at instance start.
const initialBuffer = 64 << 10

// instance is one wasm instance of a plugin. It runs one call at a time
// (the pool guarantees it) and is discarded after any failure of a call.
type instance struct {
	p      *plugin
	id     int
	mod    api.Module
	mem    api.Memory
	call   api.Function // topgun_call, looked up once
	buffer api.Function // topgun_buffer, looked up once
	stack  [2]uint64
	bufPtr uint32
	bufCap uint32 // a lower bound of the scratch buffer's capacity
	stdout *lineWriter
	stderr *lineWriter
	// major and minor are the ABI version the plugin reported.
	major, minor uint32
	// poisoned: the instance trapped, timed out or answered garbage; it
	// must not run another call.
	poisoned bool
	// memBytes is the size of its linear memory the pool last counted.
	memBytes int64
	// starting: the instance is being started; a failure is returned to
	// Load or reported once by the pool, not logged here.
	starting bool
	// For a metered plugin: ctx carries the instance to meterCheck, which
	// runs on the calling goroutine and traps the guest once the clock
	// passes dueAt (nanoseconds on monoClock, 0 = none); overdue records
	// that it did. For any sandboxed plugin, dueAt also stops the host
	// functions' I/O (pastDeadline).
	ctx     context.Context
	dueAt   int64
	overdue bool
	// opDue, when not 0, is the deadline (on monoClock) of the sandboxed
	// op in progress: every wasm call the op makes (topgun_buffer to grow
	// the buffer for the request, topgun_call, topgun_buffer to find a
	// moved response) shares it, so that the op as a whole, not each of
	// its wasm calls, stops at CallTimeout.
	opDue int64
}

// meterBudget is the work (in instructions counted statically, see
// internal/meter) a metered guest does between two calls of meterCheck:
// well under a millisecond, and the check costs a fraction of a
// microsecond.
const meterBudget = 1 << 20

type instanceKey struct{}

var monoStart = time.Now()

// monoClock reads the monotonic clock.
func monoClock() int64 { return int64(time.Since(monoStart)) }

// pastDeadline reports whether the call in progress has run past its
// deadline. The host functions that can work through much data in one
// call (fd_write and fd_read over many large iovecs, random_get) check it
// through their writers, readers and files: the meter charges a host call
// as one instruction and cannot stop it, and wazero's interruption only
// acts between guest instructions. It runs on the calling goroutine.
func (in *instance) pastDeadline() bool {
	if in.dueAt != 0 && monoClock() >= in.dueAt {
		in.overdue = true // the call is reported as timed out
		return true
	}
	return false
}

// deadlineReader is the guest's random source: it fails once the call is
// past its deadline, so random_get over a large buffer in a loop ends.
type deadlineReader struct {
	r    io.Reader
	stop func() bool
}

func (d deadlineReader) Read(p []byte) (int, error) {
	if d.stop() {
		return 0, errPastDeadline
	}
	return d.r.Read(p)
}

// errPastDeadline fails a host function's I/O once the call is past its
// deadline (the guest sees EIO or EINTR; the meter or wazero's interruption
// then ends the call).
var errPastDeadline = errors.New("the call is past its deadline")

// errOverdue is the panic meterCheck stops an overdue guest with; wazero
// turns it into the error of the call.
var errOverdue = errors.New("the call ran past its deadline")

// meterCheck is the metered guest's topgun_meter.check: it refills the
// guest's budget, or traps it when its call is overdue.
func meterCheck(ctx context.Context, _ api.Module, stack []uint64) {
	trapOverdue(ctx)
	stack[0] = meterBudget
}

// trapOverdue traps a metered guest whose call is overdue (ctx is the
// call's: a host function of a guest run otherwise finds no instance).
func trapOverdue(ctx context.Context) {
	if in, ok := ctx.Value(instanceKey{}).(*instance); ok && in.dueAt != 0 && monoClock() >= in.dueAt {
		in.overdue = true
		panic(errOverdue)
	}
}

// meterStackLimit bounds a metered guest's call stack, as the meter
// estimates it (see internal/meter): wazero keeps the stack on the host's
// heap, outside the memory limit, and would let it reach about 100 MB per
// instance (150 MB with the copy it grows from). The estimate is an upper
// bound, several times what compiled frames take; the Go example plugins
// need 1-1.5 MiB of it through the whole conformance suite.
const meterStackLimit = 16 << 20

// errStackExceeded is the panic meterStack stops a guest with.
var errStackExceeded = fmt.Errorf("its call stack passed the limit of %d MiB (deep or unbounded recursion)", meterStackLimit>>20)

// meterStack is the metered guest's topgun_meter.stack, called when a
// function entry takes the stack past meterStackLimit.
func meterStack(context.Context, api.Module, []uint64) {
	panic(errStackExceeded)
}

// metered arms the deadline of one call of a metered instance and returns
// the context to run it with.
func (in *instance) metered() context.Context {
	in.overdue = false
	if in.opDue != 0 {
		// What timeout() computes, without reading the clock twice more
		// per call (a read costs 20-40 ns on a VM); an op already overdue
		// traps at the guest's first check, as with a 1 ns deadline.
		in.dueAt = in.opDue
	} else {
		in.dueAt = monoClock() + int64(in.p.opts.CallTimeout)
	}
	return in.ctx
}

// timeout is the time the next wasm call may take: what is left of the op
// in progress, or CallTimeout for a call outside an op (_initialize and
// the start of an instance).
func (in *instance) timeout() time.Duration {
	if in.opDue == 0 {
		return in.p.opts.CallTimeout
	}
	// At least a nanosecond: a zero deadline means none.
	return max(time.Duration(in.opDue-monoClock()), 1)
}

// callMetered runs f on a metered instance under the call timeout. A call
// that returned after a host function's I/O was cut at the deadline
// (pastDeadline) fails too: what the guest answered after that is not
// trusted.
func (in *instance) callMetered(f api.Function, stack []uint64) (timedOut bool, err error) {
	err = f.CallWithStack(in.metered(), stack)
	in.dueAt = 0
	if err == nil && in.overdue {
		err = errPastDeadline
	}
	return in.overdue, err
}

// callInterruptible runs f on a sandboxed instance the meter could not
// rewrite, under the call timeout. wazero (WithCloseOnContextDone) watches
// the context and, when it ends, marks the module closed, which the guest
// code notices at its next loop or call; the module's resources (its sys
// context, the files it has open in the data directory) are released on
// this goroutine once the guest has stopped. Closing the module from
// another goroutine instead (CloseWithExitCode) would release them under a
// WASI host call still running. A call that returns after the deadline
// passed fails too: wazero may have closed the module as it returned.
func (in *instance) callInterruptible(ctx context.Context, f api.Function, stack []uint64) (timedOut bool, err error) {
	d := in.timeout()
	in.overdue = false
	in.dueAt = monoClock() + int64(d) // for the host functions' I/O
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d)
	err = f.CallWithStack(cctx, stack)
	// Read before cancel, which would set it too.
	expired := cctx.Err() != nil
	cancel()
	in.dueAt = 0
	if err == nil && (expired || in.overdue) {
		err = errPastDeadline
	}
	return expired || in.overdue, err
}

// trackMemory updates the pool's memory total with the instance's size. Only
// the goroutine that holds the instance calls it (the guest may grow its
// memory during a call).
func (in *instance) trackMemory(pl *pool) {
	if in.mem == nil {
		return
	}
	n := int64(in.mem.Size())
	pl.memBytes.Add(n - in.memBytes)
	in.memBytes = n
}

// newInstance starts an instance and opens the plugin in it.
func (p *plugin) newInstance(ctx context.Context, id int) (*instance, abi.Description, error) {
	in, err := p.startInstance(ctx)
	if err != nil {
		if in != nil {
			in.discard(ctx)
		}
		return nil, abi.Description{}, err
	}
	in.id = id
	dataDir := ""
	if p.opts.DataDir != "" {
		dataDir = abi.WasmDataDir
	}
	in.starting = true
	desc, err := abi.NewCaller(in, p.prefix).Open(ctx, &abi.OpenRequest{
		Config:           p.opts.Config,
		DataDir:          dataDir,
		MaxResponseBytes: uint32(p.opts.MaxResponseBytes),
		MemoryLimitBytes: uint64(p.opts.MemoryLimitMB) << 20,
	})
	in.starting = false
	if err != nil {
		in.discard(ctx)
		return nil, abi.Description{}, err
	}
	return in, desc, nil
}

// statDataRoot is os.Stat, a variable so that tests can fail it as an
// unreadable directory does, which they cannot do as root.
var statDataRoot = os.Stat

// startInstance instantiates the module, runs _initialize, checks the ABI
// version and finds the scratch buffer. On error the returned instance, if
// any, has recorded how far it got and must be discarded.
func (p *plugin) startInstance(ctx context.Context) (*instance, error) {
	in := &instance{p: p, starting: true}
	defer func() { in.starting = false }()
	in.stdout = newLineWriter(p.log, p.limiter, 0, "stdout")
	in.stderr = newLineWriter(p.log, p.limiter, 1, "stderr")
	in.stdout.stop, in.stderr.stop = in.pastDeadline, in.pastDeadline
	cfg := wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions().
		WithStdout(in.stdout).
		WithStderr(in.stderr).
		WithSysWalltime().
		WithSysNanotime().
		WithRandSource(deadlineReader{rand.Reader, in.pastDeadline})
	if p.opts.DataDir != "" {
		st, err := statDataRoot(p.dataRoot)
		// Gone, or a part of its path replaced by a file: replaced. Any
		// other failure (permissions, I/O) says nothing of that.
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || err == nil && !os.SameFile(st, p.dataInfo) {
			return nil, fmt.Errorf("%s: data directory %s (%s) was moved or replaced since the plugin was loaded; close the plugin and load it again", p.prefix, p.opts.DataDir, p.dataRoot)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: data directory %s: %w; a fresh instance starts once it can be read again", p.prefix, p.opts.DataDir, err)
		}
		dir, err := newConfinedFS(p.dataRoot, in.pastDeadline, &p.moves)
		if err != nil {
			return nil, fmt.Errorf("%s: data directory %s: %w; check %s", p.prefix, p.opts.DataDir, err, p.opts.setting("TOPGUN_PLUGIN_DATA_DIR"))
		}
		dir.files = &p.files
		dir.quota = p.quota
		cfg = cfg.WithFSConfig(wazero.NewFSConfig().(sysfs.FSConfig).WithSysFSMount(dir, abi.WasmDataDir))
	}
	// Instantiation runs the module's start function, if any, under the
	// call timeout too.
	in.ctx = context.WithValue(context.WithoutCancel(ctx), instanceKey{}, in)
	ictx := in.metered()
	if !p.metered {
		var cancel context.CancelFunc
		ictx, cancel = context.WithTimeout(context.WithoutCancel(ctx), p.opts.CallTimeout)
		defer cancel()
	}
	mod, err := p.rt.InstantiateModule(ictx, p.mod, cfg)
	in.dueAt = 0
	if err != nil {
		if in.overdue || ictx.Err() != nil {
			return nil, fmt.Errorf("%s: instantiate: its start function did not finish within %s (%s)", p.prefix, p.opts.CallTimeout, p.opts.setting("TOPGUN_PLUGIN_CALL_TIMEOUT"))
		}
		return nil, fmt.Errorf("%s: instantiate: %w (the memory limit is %d MiB, %s)", p.prefix, err, p.opts.MemoryLimitMB, p.opts.setting("TOPGUN_PLUGIN_MEMORY_MB"))
	}
	in.mod = mod
	in.mem = mod.ExportedMemory(abi.WasmExportMemory)
	in.call = mod.ExportedFunction(abi.WasmExportCall)
	in.buffer = mod.ExportedFunction(abi.WasmExportBuffer)
	if _, err := in.invoke(ctx, mod.ExportedFunction(abi.WasmExportInitialize), nil); err != nil {
		return in, in.failure(ctx, "initialize", err)
	}
	res, err := in.invoke(ctx, mod.ExportedFunction(abi.WasmExportVersion), nil)
	if err != nil {
		return in, in.failure(ctx, "abi version", err)
	}
	in.major, in.minor = abi.UnpackVersion(uint32(res))
	if in.major != abi.VersionMajor {
		return in, fmt.Errorf("%s was built for storage ABI %d.%d, this server implements %d.%d; rebuild the plugin against ABI %d",
			p.prefix, in.major, in.minor, abi.VersionMajor, abi.VersionMinor, abi.VersionMajor)
	}
	if err := in.grow(ctx, "buffer", initialBuffer); err != nil {
		return in, err
	}
	return in, nil
}

// invoke calls a function of no or one argument under the call timeout.
func (in *instance) invoke(ctx context.Context, f api.Function, arg []uint64) (uint64, error) {
	var stack [2]uint64
	copy(stack[:], arg)
	if in.p.metered {
		if timedOut, err := in.callMetered(f, stack[:]); err != nil {
			return 0, callError{err: err, timedOut: timedOut}
		}
		return stack[0], nil
	}
	if in.p.opts.Trust == TrustSandboxed {
		if timedOut, err := in.callInterruptible(ctx, f, stack[:]); err != nil {
			return 0, callError{err: err, timedOut: timedOut}
		}
		return stack[0], nil
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), in.timeout())
	defer cancel()
	if err := f.CallWithStack(cctx, stack[:]); err != nil {
		return 0, callError{err: err, timedOut: cctx.Err() != nil}
	}
	return stack[0], nil
}

// trapError is the text of a trap with the wazero error it came from.
type trapError struct {
	msg   string
	cause error
}

func (e *trapError) Error() string { return e.msg }
func (e *trapError) Unwrap() error { return e.cause }

// callError is a failed wasm call, with whether the call timeout fired.
type callError struct {
	err      error
	timedOut bool
}

func (e callError) Error() string { return e.err.Error() }
func (e callError) Unwrap() error { return e.err }

// grow asks for a scratch buffer of at least n bytes; op names the call
// it is for in errors.
func (in *instance) grow(ctx context.Context, op string, n uint32) error {
	res, err := in.invoke(ctx, in.buffer, []uint64{uint64(n)})
	if err != nil {
		return in.failure(ctx, op, err)
	}
	ptr := uint32(res)
	if ptr == 0 {
		return abi.Errorf(abi.CodeResourceExhausted, "%s: %s: the plugin cannot grow its buffer to %d bytes (memory limit %d MiB, %s)",
			in.p.prefix, op, n, in.p.opts.MemoryLimitMB, in.p.opts.setting("TOPGUN_PLUGIN_MEMORY_MB"))
	}
	if uint64(ptr)+uint64(n) > uint64(in.mem.Size()) {
		in.poisoned = true
		return abi.Errorf(abi.CodeInternal, "%s: %s: the plugin returned buffer %d+%d outside its %d-byte memory; the instance was discarded",
			in.p.prefix, op, ptr, n, in.mem.Size())
	}
	in.bufPtr, in.bufCap = ptr, n
	return nil
}

// RoundTrip implements abi.RoundTripper on this instance: one write into
// the buffer, one topgun_call, one read of the response.
func (in *instance) RoundTrip(ctx context.Context, call abi.WasmCall, req []byte, handle func(abi.Code, []byte) error) error {
	p := in.p
	if in.poisoned {
		return abi.Errorf(abi.CodeUnavailable, "%s: %s: the instance was discarded after an earlier failure", p.prefix, call)
	}
	// A failure quotes the last stderr line of this op, not of an earlier one.
	in.stderr.forget()
	if p.opts.Trust == TrustSandboxed {
		in.opDue = monoClock() + int64(p.opts.CallTimeout)
		defer func() { in.opDue = 0 }()
	}
	if uint64(len(req)) > uint64(in.bufCap) {
		if err := in.grow(ctx, call.String(), uint32(len(req))); err != nil {
			return err
		}
	}
	if !in.mem.Write(in.bufPtr, req) {
		return in.malformed(call, "its buffer is outside its memory")
	}
	in.stack[0], in.stack[1] = uint64(call), uint64(len(req))
	var err error
	timedOut := false
	switch {
	case p.metered:
		// The caller's cancellation does not reach a running call: stopping
		// the guest discards the instance and, for a plugin without
		// CapMultiInstance, all it holds. Only the call timeout stops it.
		timedOut, err = in.callMetered(in.call, in.stack[:])
	case p.opts.Trust == TrustSandboxed:
		timedOut, err = in.callInterruptible(ctx, in.call, in.stack[:])
	default:
		// Trusted code is not interrupted, so a deadline would only cost.
		err = in.call.CallWithStack(ctx, in.stack[:])
	}
	if err != nil {
		return in.failure(ctx, call.String(), callError{err: err, timedOut: timedOut})
	}
	status, n := abi.UnpackResult(in.stack[0])
	if status&^(abi.StatusCodeMask|abi.StatusBufferMoved) != 0 {
		return in.malformed(call, fmt.Sprintf("status %#x has reserved bits set", status))
	}
	if code := abi.Code(status & abi.StatusCodeMask); !code.Known() {
		return in.malformed(call, fmt.Sprintf("status code %d is not an error code of storage ABI %d.%d", uint32(code), abi.VersionMajor, abi.VersionMinor))
	}
	if n > uint32(p.opts.MaxResponseBytes) {
		return in.malformed(call, fmt.Sprintf("response of %d bytes exceeds the limit of %d bytes (%s)", n, p.opts.MaxResponseBytes, p.opts.setting("TOPGUN_PLUGIN_MAX_RESPONSE_BYTES")))
	}
	if status&abi.StatusBufferMoved != 0 {
		if err := in.grow(ctx, call.String(), n); err != nil {
			if !in.poisoned {
				// The plugin said it moved its buffer to hold the
				// response, then could not say where: a lie like any
				// other malformed result.
				return in.malformed(call, fmt.Sprintf("it reported a moved buffer, but topgun_buffer(%d) returned none", n))
			}
			return err
		}
	}
	resp, ok := in.mem.Read(in.bufPtr, n)
	if !ok {
		return in.malformed(call, fmt.Sprintf("response of %d bytes at %d is outside its memory", n, in.bufPtr))
	}
	err = handle(abi.Code(status&abi.StatusCodeMask), resp)
	if err != nil && abi.IsMalformed(err) {
		in.poisoned = true
		err = &abi.Error{Code: abi.CodeOf(err), Err: &trapError{msg: err.Error() + "; the instance was discarded", cause: err}}
		if !in.starting {
			p.log.Warn("plugin instance discarded", "op", call.String(), "error", err)
		}
	}
	return err
}

func (in *instance) malformed(call abi.WasmCall, what string) error {
	in.poisoned = true
	err := abi.Errorf(abi.CodeInternal, "%s: %s: malformed result: %s; the instance was discarded", in.p.prefix, call, what)
	if !in.starting {
		in.p.log.Warn("plugin instance discarded", "op", call.String(), "error", err)
	}
	return err
}

// failure turns a failed wasm call into an *Error naming the plugin, the op
// and what happened, and poisons the instance.
func (in *instance) failure(_ context.Context, op string, err error) error {
	in.poisoned = true
	p := in.p
	var ce callError
	timedOut := errors.As(err, &ce) && ce.timedOut
	var out error
	var exit *sys.ExitError
	switch {
	case timedOut:
		out = abi.Wrap(abi.CodeDeadlineExceeded, context.DeadlineExceeded,
			"%s: %s: did not finish within %s (%s); the instance was discarded", p.prefix, op, p.opts.CallTimeout, p.opts.setting("TOPGUN_PLUGIN_CALL_TIMEOUT"))
	case errors.As(err, &exit):
		msg := fmt.Sprintf("%s: %s: the plugin exited with code %d", p.prefix, op, exit.ExitCode())
		if last := in.stderr.last(); last != "" {
			msg += fmt.Sprintf(" (its stderr said: %q)", last)
		}
		out = abi.Wrap(abi.CodeInternal, err, "%s; the instance was discarded", msg)
	default:
		// wazero's message is the trap and the guest's stack; the cause is
		// kept for errors.As but its text is not repeated.
		msg := err.Error()
		if len(msg) > 2048 {
			msg = msg[:2048] + "..."
		}
		full := fmt.Sprintf("%s: %s: trapped: %s", p.prefix, op, msg)
		if last := in.stderr.last(); last != "" {
			full += fmt.Sprintf(" (its stderr said: %q)", last)
		}
		out = &abi.Error{Code: abi.CodeInternal, Err: &trapError{msg: full + "; the instance was discarded", cause: err}}
	}
	if !in.starting {
		p.log.Warn("plugin instance discarded", "op", op, "error", out)
	}
	return out
}

// close calls the plugin's close (when the instance is healthy), then
// closes the module.
func (in *instance) close(ctx context.Context) error {
	var err error
	if !in.poisoned {
		err = abi.NewCaller(in, in.p.prefix).Close(ctx)
	}
	in.discard(ctx)
	return err
}

// discard closes the module without calling into it.
func (in *instance) discard(ctx context.Context) {
	in.poisoned = true
	if in.mod != nil {
		_ = in.mod.Close(context.WithoutCancel(ctx))
	}
	in.stdout.flush()
	in.stderr.flush()
}
