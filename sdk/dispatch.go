package sdk

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"unicode/utf8"

	"github.com/topgun-go/topgun/abi"
)

// Yield policy (see doc.go, "Rules for backends inside wasm"): the guest
// yields after yieldBytes of request and response traffic or yieldCalls
// calls, whichever comes first, and forces a collection when the heap
// passes gcFraction of the instance's memory limit, or twice what the last
// forced collection left if that is more: a backend whose live data is
// above the threshold must not be collected at every yield.
const (
	yieldBytes       = 1 << 20
	yieldCalls       = 256
	callOverhead     = 512 // bytes a call is assumed to allocate besides its bodies
	gcFraction       = 4   // force GC above limit/gcFraction of heap objects
	defaultMemLimit  = 256 << 20
	memoryLimitShare = 2 // Go's soft memory limit is limit/memoryLimitShare
)

// server dispatches ABI calls to a backend. It holds the state of one wasm
// instance (or one loopback) and is not safe for concurrent use: a wasm
// instance runs one call at a time.
type server struct {
	backend abi.Backend // nil until open when open != nil
	// viewer is backend as an abi.RecordViewer, or nil: asserted once in
	// setBackend, since an interface assertion per call costs a lookup.
	viewer  abi.RecordViewer
	name    string
	caps    abi.Capability
	open    OpenFunc
	opened  bool
	maxResp uint32
	// over: the records a viewer lent passed maxResp (viewRecord), which
	// their response needs overBy bytes or more to hold.
	over   bool
	overBy int

	enc *abi.Encoder
	dec *abi.Decoder
	// lend: use the backend's abi.RecordViewer (LendRecords). side,
	// sideBuf, viewed and viewFn encode the records it lends (startView).
	lend    bool
	side    *abi.Encoder
	sideBuf []byte
	viewed  int
	viewFn  func(*abi.Record)
	batch   abi.Batch
	keys    []string

	// ctx is passed to the backend: it carries the host's response limit
	// once open (abi.ResponseLimit), built once rather than per call.
	ctx context.Context

	work, calls int
	gcBase      uint64 // the memory limit / gcFraction
	gcAbove     uint64 // force a collection above this many bytes of heap objects
	forcedGCs   int
	sample      []metrics.Sample
}

func newServer(b abi.Backend, name string, caps abi.Capability, open OpenFunc) *server {
	s := &server{ctx: context.Background(), name: name, caps: caps, open: open, enc: abi.NewEncoder(), dec: abi.NewDecoder(), side: abi.NewEncoder()}
	s.setBackend(b)
	s.viewFn = s.viewRecord
	// The batch goes straight to the backend, which never keeps the
	// caller's buffers, so its values may point into the request.
	s.dec.AliasValues = true
	// Keys share chunks instead of an allocation each (see doc.go on keys
	// a backend keeps).
	s.dec.ShareKeys = true
	s.gcBase = defaultMemLimit / gcFraction
	s.gcAbove = s.gcBase
	s.sample = []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	return s
}

// handle runs one call whose request body is req and writes the response
// into out[:0] (growing it, so the result may be a new slice). req and out
// may share memory: the request is fully decoded before anything is written.
func (s *server) handle(call uint32, req, out []byte) (status uint32, resp []byte) {
	defer func() {
		if r := recover(); r != nil {
			// s.name, not Describe: a panic in Describe must not repeat here.
			status, resp = errResponse(out, abi.Errorf(abi.CodeInternal, "backend %q: panic in %s: %v\n%s", s.name, abi.WasmCall(call), r, debug.Stack()))
		}
	}()
	err := s.dispatch(abi.WasmCall(call), req, out)
	if err != nil {
		return errResponse(out, err)
	}
	resp = s.enc.Bytes()
	if s.maxResp > 0 && uint64(len(resp)) > uint64(s.maxResp) {
		// The error goes into the caller's buffer, not the oversized
		// encoding, which would otherwise stay as the scratch buffer.
		return errResponse(out, s.tooBig(abi.WasmCall(call), len(resp)))
	}
	return uint32(abi.CodeOK), resp
}

func (s *server) tooBig(call abi.WasmCall, n int) error {
	return abi.Errorf(abi.CodeResourceExhausted,
		"%s response of %d bytes or more exceeds the host's limit of %d bytes; ask for fewer records or raise TOPGUN_PLUGIN_MAX_RESPONSE_BYTES",
		call, n, s.maxResp)
}

// recordMinOverhead is the least a record adds to a response beyond its
// key and value: a fixarray header, a fixstr header, a nil or empty value
// and three fixints. It must be a lower bound: checkFits refuses a
// response early only when it cannot fit, and handle checks the encoding.
const recordMinOverhead = 6

// checkFits refuses records whose response would pass the host's limit
// before they are encoded: encoding them first would take memory for a
// response the host refuses anyway (a get of eight 8 MiB values ran the
// guest out of memory rather than failing cleanly). It counts a lower
// bound of the encoding, so a response that fits is never refused here
// (with an upper bound, small records were refused well under the limit,
// and only without LendRecords).
func (s *server) checkFits(call abi.WasmCall, recs []abi.Record) error {
	if s.maxResp == 0 {
		return nil
	}
	n := 0
	for i := range recs {
		n += len(recs[i].Key) + len(recs[i].Value) + recordMinOverhead
		if n > int(s.maxResp) {
			return s.tooBig(call, n)
		}
	}
	return nil
}

func (s *server) setBackend(b abi.Backend) {
	s.backend = b
	s.viewer, _ = b.(abi.RecordViewer)
}

func errResponse(out []byte, err error) (uint32, []byte) {
	code := abi.CodeOf(err)
	if code == abi.CodeOK || !code.Known() {
		// A code the host does not know is a malformed result to it, which
		// discards the instance and all it holds.
		code = abi.CodeInternal
	}
	msg := err.Error()
	if len(msg) > abi.MaxErrorMessageBytes {
		cut := abi.MaxErrorMessageBytes
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut]
	}
	return uint32(code), append(out[:0], msg...)
}

func (s *server) describe() abi.Description {
	if s.backend != nil {
		d := s.backend.Describe()
		if d.ABIMajor == 0 {
			d.ABIMajor, d.ABIMinor = abi.VersionMajor, abi.VersionMinor
		}
		if d.Name == "" {
			d.Name = s.name
		} else if s.name == "" {
			// A backend given to Serve names itself only here; a panic's
			// message names it by s.name.
			s.name = d.Name
		}
		return d
	}
	return abi.Description{Name: s.name, ABIMajor: abi.VersionMajor, ABIMinor: abi.VersionMinor, Capabilities: s.caps}
}

func (s *server) ready(call abi.WasmCall) error {
	if s.backend == nil {
		return abi.Errorf(abi.CodeUnavailable, "plugin %s is not open; the host must call open before %s", s.name, call)
	}
	return nil
}

func badRequest(call abi.WasmCall, err error) error {
	return abi.Wrap(abi.CodeInvalidArgument, err, "%s: bad request", call)
}

func (s *server) dispatch(call abi.WasmCall, req, out []byte) error {
	ctx := s.ctx
	s.dec.Reset(req)
	switch call {
	case abi.CallDescribe:
		if err := s.dec.End(); err != nil {
			return badRequest(call, err)
		}
		d := s.describe()
		s.enc.Reset(out)
		s.enc.Description(&d)
		return nil

	case abi.CallOpen:
		r, err := s.dec.OpenRequest()
		if err == nil {
			err = s.dec.End()
		}
		if err != nil {
			return badRequest(call, err)
		}
		if s.opened {
			return abi.Errorf(abi.CodeConflict, "plugin %s is already open", s.describe().Name)
		}
		s.maxResp = r.MaxResponseBytes
		if r.MaxResponseBytes > 0 {
			s.ctx = abi.WithResponseLimit(context.Background(), int(r.MaxResponseBytes))
		}
		if r.MemoryLimitBytes > 0 {
			s.gcBase = r.MemoryLimitBytes / gcFraction
			s.gcAbove = s.gcBase
			debug.SetMemoryLimit(int64(r.MemoryLimitBytes / memoryLimitShare))
		}
		if s.open != nil {
			cfg := make(map[string]string, len(r.Config)+1)
			for k, v := range r.Config {
				cfg[k] = v
			}
			if r.DataDir != "" {
				cfg[DataDirKey] = r.DataDir
			}
			b, err := s.open(cfg)
			if err != nil {
				return err
			}
			if b == nil {
				return abi.Errorf(abi.CodeInternal, "plugin %s: open returned no backend and no error", s.name)
			}
			s.setBackend(b)
		}
		s.opened = true
		d := s.describe()
		s.enc.Reset(out)
		s.enc.Description(&d)
		return nil

	case abi.CallApply, abi.CallApplyRuns:
		if err := s.ready(call); err != nil {
			return err
		}
		var err error
		if call == abi.CallApplyRuns {
			err = s.dec.ApplyRunsRequest(&s.batch)
		} else {
			err = s.dec.ApplyRequest(&s.batch)
		}
		if err == nil {
			err = s.dec.End()
		}
		if err != nil {
			return badRequest(call, err)
		}
		err = s.backend.Apply(ctx, &s.batch)
		s.enc.Reset(out)
		return err

	case abi.CallGet:
		if err := s.ready(call); err != nil {
			return err
		}
		r, err := s.dec.GetRequest(s.keys)
		if err == nil {
			err = s.dec.End()
		}
		if err != nil {
			return badRequest(call, err)
		}
		s.keys = r.Keys
		if v := s.viewer; v != nil && s.lend {
			// Records lent by the backend are encoded as they come, into
			// the side encoder, since the header counts them.
			s.startView()
			err := v.ViewGet(ctx, r.Map, r.Backup, r.Keys, s.viewFn)
			clear(s.keys)
			if err == nil && s.over {
				err = s.tooBig(call, s.overBy)
			}
			if err != nil {
				s.endView()
				return err
			}
			s.enc.Reset(out)
			s.enc.RecordsHeader(s.viewed)
			s.enc.AppendEncoded(s.side.Bytes())
			s.endView()
			return nil
		}
		recs, err := s.backend.Get(ctx, r.Map, r.Backup, r.Keys)
		clear(s.keys)
		if err != nil {
			return err
		}
		if err := s.checkFits(call, recs); err != nil {
			return err
		}
		s.enc.Reset(out)
		s.enc.Records(recs)
		return nil

	case abi.CallScan:
		if err := s.ready(call); err != nil {
			return err
		}
		r, err := s.dec.ScanRequest()
		if err == nil {
			err = s.dec.End()
		}
		if err != nil {
			return badRequest(call, err)
		}
		if v := s.viewer; v != nil && s.lend {
			s.startView()
			cursor, err := v.ViewScan(ctx, r, s.viewFn)
			if err == nil && s.over {
				err = s.tooBig(call, s.overBy)
			}
			if err != nil {
				s.endView()
				return err
			}
			s.enc.Reset(out)
			s.enc.PageHeader(s.viewed)
			s.enc.AppendEncoded(s.side.Bytes())
			s.enc.PageCursor(cursor)
			s.endView()
			return nil
		}
		p, err := s.backend.Scan(ctx, r)
		if err != nil {
			return err
		}
		if err := s.checkFits(call, p.Records); err != nil {
			return err
		}
		s.enc.Reset(out)
		s.enc.Page(&p)
		return nil

	case abi.CallListMaps:
		if err := s.ready(call); err != nil {
			return err
		}
		if err := s.dec.End(); err != nil {
			return badRequest(call, err)
		}
		maps, err := s.backend.ListMaps(ctx)
		if err != nil {
			return err
		}
		if len(maps) > abi.MaxMaps {
			// The host discards an instance that answers more (WASM.md
			// 3.3), and with it what the plugin keeps in memory.
			return abi.Errorf(abi.CodeResourceExhausted, "%d maps hold records; list_maps answers at most %d names", len(maps), abi.MaxMaps)
		}
		s.enc.Reset(out)
		s.enc.Strings(maps)
		return nil

	case abi.CallListExpired:
		if err := s.ready(call); err != nil {
			return err
		}
		now, limit, err := s.dec.ListExpiredRequest()
		if err == nil {
			err = s.dec.End()
		}
		if err != nil {
			return badRequest(call, err)
		}
		// A backend may walk every expired record to answer a few (null
		// lists and sorts them all): its garbage is not bounded by the
		// traffic, so the call ends with a yield (afterCall). The store's
		// reaper calls it once a second and once per 1,000 records reaped.
		s.work += yieldBytes
		recs, err := s.backend.ListExpired(ctx, now, limit)
		if err != nil {
			return err
		}
		s.enc.Reset(out)
		s.enc.Expired(recs)
		return nil

	case abi.CallClose:
		if err := s.dec.End(); err != nil {
			return badRequest(call, err)
		}
		s.enc.Reset(out)
		if s.backend == nil {
			return nil
		}
		return s.backend.Close()
	}
	return abi.Errorf(abi.CodeUnsupported, "unknown call %d; the plugin implements ABI %d.%d", uint32(call), abi.VersionMajor, abi.VersionMinor)
}

// maxSideBuffer bounds the side encoder's buffer kept between calls.
const maxSideBuffer = 1 << 20

func (s *server) startView() {
	s.side.Reset(s.sideBuf)
	s.viewed, s.over = 0, false
}

// viewRecord encodes one record lent by an abi.RecordViewer, until the
// response would pass the host's limit (over; the call then fails). Like
// checkFits it refuses a record by a lower bound of its encoding before
// encoding it: encoding the record that crosses the limit (up to a whole
// value more, and the growth of the side buffer) ran a guest out of
// memory on a get the host refuses anyway.
func (s *server) viewRecord(r *abi.Record) {
	if s.over {
		return
	}
	if s.maxResp > 0 {
		if n := len(s.side.Bytes()) + len(r.Key) + len(r.Value) + recordMinOverhead; n > int(s.maxResp) {
			s.over, s.overBy = true, n
			return
		}
	}
	s.side.Record(r)
	s.viewed++
	if s.maxResp > 0 && len(s.side.Bytes()) > int(s.maxResp) {
		s.over, s.overBy = true, len(s.side.Bytes())
	}
}

func (s *server) endView() {
	if b := s.side.Bytes(); cap(b) <= maxSideBuffer {
		s.sideBuf = b[:0]
	} else {
		s.sideBuf = nil
	}
}

// afterCall applies the yield policy after a call that moved reqLen and
// respLen bytes.
func (s *server) afterCall(reqLen, respLen int) {
	s.work += reqLen + respLen + callOverhead
	s.calls++
	if s.work < yieldBytes && s.calls < yieldCalls {
		return
	}
	s.work, s.calls = 0, 0
	runtime.Gosched()
	metrics.Read(s.sample)
	if v := s.sample[0].Value; v.Kind() == metrics.KindUint64 && v.Uint64() > s.gcAbove {
		runtime.GC()
		s.forcedGCs++
		metrics.Read(s.sample)
		s.gcAbove = max(s.gcBase, 2*s.sample[0].Value.Uint64())
	}
}

func (s *server) String() string { return fmt.Sprintf("sdk server %q", s.describe().Name) }
