package sdk

import (
	"context"
	"fmt"
	"sync"

	"github.com/topgun-go/topgun/abi"
)

// loopback serves a server in process through the full encode, dispatch and
// decode path. Like a wasm instance it runs one call at a time.
type loopback struct {
	*abi.Caller
	mu   sync.Mutex
	srv  *server
	buf  []byte
	desc abi.Description
}

var _ abi.Backend = (*loopback)(nil)

// Loopback returns b served through the whole plugin path in process: each
// call is encoded as the host encodes it, dispatched by the code that runs
// inside wasm, and decoded as the host decodes it. Errors are prefixed with
// "plugin <name> (loopback)". It panics, naming the cause, where a host
// would refuse the plugin at load: when b's description does not decode
// (a name that is empty, over 64 bytes, not valid UTF-8 or holds control
// characters, see abi/WASM.md section 4) or names another ABI major.
func Loopback(b abi.Backend, opts ...Option) abi.Backend {
	lb, err := newLoopback(context.Background(), newServer(b, "", 0, nil).with(opts), nil, "")
	if err != nil {
		// Returning lb would hand out a nil *loopback, whose first call
		// panics with a nil dereference that hides the cause.
		panic(fmt.Sprintf("sdk: Loopback: %v", err))
	}
	return lb
}

// LoopbackOpen is Loopback for a plugin registered with ServeOpen: it opens
// the plugin with cfg (put the data directory under DataDirKey) and the
// host's default response limit.
func LoopbackOpen(ctx context.Context, name string, caps abi.Capability, open OpenFunc, cfg map[string]string, opts ...Option) (abi.Backend, error) {
	if open == nil {
		return nil, abi.Errorf(abi.CodeInvalidArgument, "sdk: LoopbackOpen with a nil open function")
	}
	return newLoopback(ctx, newServer(nil, name, caps, open).with(opts), cfg, "")
}

// loopbackMaxResponse is the host's default response limit
// (TOPGUN_PLUGIN_MAX_RESPONSE_BYTES).
const loopbackMaxResponse = 32 << 20

func newLoopback(ctx context.Context, srv *server, cfg map[string]string, dataDir string) (*loopback, error) {
	lb := &loopback{srv: srv, buf: make([]byte, 64<<10)}
	lb.Caller = abi.NewCaller(lb, "plugin "+srv.describe().Name+" (loopback)")
	d, err := lb.Caller.Open(ctx, &abi.OpenRequest{Config: cfg, DataDir: dataDir, MaxResponseBytes: loopbackMaxResponse})
	if err != nil {
		return nil, err
	}
	if d.ABIMajor != abi.VersionMajor {
		// The host refuses such a plugin at load; a native test must not
		// pass with it.
		_ = lb.Caller.Close(ctx)
		return nil, abi.Errorf(abi.CodeInvalidArgument, "plugin %s (loopback): open describes storage ABI %d.%d, the host implements %d.%d and refuses it; describe ABI %d (or leave ABIMajor 0)",
			d.Name, d.ABIMajor, d.ABIMinor, abi.VersionMajor, abi.VersionMinor, abi.VersionMajor)
	}
	lb.desc = d
	lb.Caller.SetPeerMinor(d.ABIMinor)
	return lb, nil
}

// RoundTrip implements abi.RoundTripper: it copies the request into the
// scratch buffer, as the host does into wasm memory, and dispatches it.
func (lb *loopback) RoundTrip(ctx context.Context, call abi.WasmCall, req []byte, handle func(abi.Code, []byte) error) error {
	if err := abi.ContextError(ctx); err != nil {
		return err
	}
	lb.mu.Lock()
	defer lb.mu.Unlock()
	if len(req) > len(lb.buf) {
		lb.buf = make([]byte, len(req))
	}
	n := copy(lb.buf, req)
	status, resp := lb.srv.handle(uint32(call), lb.buf[:n], lb.buf)
	if cap(resp) > cap(lb.buf) {
		lb.buf = resp[:cap(resp)]
	}
	lb.srv.afterCall(n, len(resp))
	return handle(abi.Code(status&abi.StatusCodeMask), resp)
}

// Scan cuts the page to what fits in a response, as the host does.
func (lb *loopback) Scan(ctx context.Context, req abi.ScanRequest) (abi.Page, error) {
	return lb.Caller.Scan(ctx, abi.ClampScan(req, loopbackMaxResponse))
}

// ListExpired cuts limit as the host does.
func (lb *loopback) ListExpired(ctx context.Context, now int64, limit int) ([]abi.Record, error) {
	return lb.Caller.ListExpired(ctx, now, min(limit, abi.MaxGetKeys))
}

// Describe returns the description the plugin gave at open.
func (lb *loopback) Describe() abi.Description { return lb.desc }

// Close closes the plugin's backend.
func (lb *loopback) Close() error { return lb.Caller.Close(context.Background()) }
