package abi

import (
	"context"
	"sync"
)

// RoundTripper carries one encoded call to a plugin and brings back its
// encoded response: the wazero host (package host) does it through a wasm
// instance, the guest SDK's loopback (package sdk) in process.
type RoundTripper interface {
	// RoundTrip runs call with the request body req and appends the
	// response body to dst. status is the call's status code: on CodeOK
	// resp is the response message, otherwise resp is the error message.
	// err is non-nil only when the call itself failed (a trap, a deadline,
	// a malformed response): err is then already an *Error.
	RoundTrip(ctx context.Context, call WasmCall, req, dst []byte) (resp []byte, status Code, err error)
}

// Caller implements the data operations of Backend over a RoundTripper: it
// encodes each request, sends it, and decodes the response or turns the
// error status into an *Error. Hosts build their Backend on it, so the
// native loopback and the wasm host share the same client code.
//
// A Caller is safe for concurrent use if its RoundTripper is.
type Caller struct {
	rt RoundTripper
	// Prefix starts every error message, e.g. "plugin null.wasm".
	prefix string
	pool   sync.Pool
}

type callState struct {
	enc  *Encoder
	dec  *Decoder
	req  []byte
	resp []byte
}

// maxPooledBuffer bounds the buffers a Caller keeps between calls.
const maxPooledBuffer = 1 << 20

// NewCaller returns a Caller that sends calls through rt and starts every
// error message with prefix ("plugin null.wasm").
func NewCaller(rt RoundTripper, prefix string) *Caller {
	c := &Caller{rt: rt, prefix: prefix}
	c.pool.New = func() any { return &callState{enc: NewEncoder(), dec: NewDecoder()} }
	return c
}

func (c *Caller) get() *callState { return c.pool.Get().(*callState) }

func (c *Caller) put(s *callState) {
	if cap(s.req) > maxPooledBuffer {
		s.req = nil
	}
	if cap(s.resp) > maxPooledBuffer {
		s.resp = nil
	}
	c.pool.Put(s)
}

// do sends the encoded request in s.enc and leaves the response in s.dec.
func (c *Caller) do(ctx context.Context, s *callState, call WasmCall) error {
	s.req = s.enc.Bytes()
	resp, status, err := c.rt.RoundTrip(ctx, call, s.req, s.resp[:0])
	s.resp = resp
	if err != nil {
		return err
	}
	if status != CodeOK {
		msg := resp
		if len(msg) > MaxErrorMessageBytes {
			msg = msg[:MaxErrorMessageBytes]
		}
		return &Error{Code: status, Message: c.prefix + ": " + call.String() + ": " + string(msg)}
	}
	s.dec.Reset(resp)
	return nil
}

// malformed reports a response that does not decode.
func (c *Caller) malformed(call WasmCall, err error) error {
	return Wrap(CodeInternal, err, "%s: %s: malformed response", c.prefix, call)
}

func (c *Caller) end(call WasmCall, s *callState) error {
	if err := s.dec.End(); err != nil {
		return c.malformed(call, err)
	}
	return nil
}

// Describe runs the describe call.
func (c *Caller) Describe(ctx context.Context) (Description, error) {
	s := c.get()
	defer c.put(s)
	s.enc.Reset(s.req)
	if err := c.do(ctx, s, CallDescribe); err != nil {
		return Description{}, err
	}
	d, err := s.dec.Description()
	if err != nil {
		return d, c.malformed(CallDescribe, err)
	}
	return d, c.end(CallDescribe, s)
}

// Open runs the open call and returns the plugin's description.
func (c *Caller) Open(ctx context.Context, req *OpenRequest) (Description, error) {
	s := c.get()
	defer c.put(s)
	s.enc.Reset(s.req)
	s.enc.OpenRequest(req)
	if err := c.do(ctx, s, CallOpen); err != nil {
		return Description{}, err
	}
	d, err := s.dec.Description()
	if err != nil {
		return d, c.malformed(CallOpen, err)
	}
	return d, c.end(CallOpen, s)
}

// Close runs the close call.
func (c *Caller) Close(ctx context.Context) error {
	s := c.get()
	defer c.put(s)
	s.enc.Reset(s.req)
	if err := c.do(ctx, s, CallClose); err != nil {
		return err
	}
	return nil
}

// Apply runs the apply call.
func (c *Caller) Apply(ctx context.Context, b *Batch) error {
	if b == nil {
		return Errorf(CodeInvalidArgument, "%s: apply: batch is nil", c.prefix)
	}
	s := c.get()
	defer c.put(s)
	s.enc.Reset(s.req)
	s.enc.ApplyRequest(b)
	return c.do(ctx, s, CallApply)
}

// Get runs the get call.
func (c *Caller) Get(ctx context.Context, mapName string, backup bool, keys []string) ([]Record, error) {
	s := c.get()
	defer c.put(s)
	s.enc.Reset(s.req)
	s.enc.GetRequest(mapName, backup, keys)
	if err := c.do(ctx, s, CallGet); err != nil {
		return nil, err
	}
	recs, err := s.dec.Records(mapName, backup)
	if err != nil {
		return nil, c.malformed(CallGet, err)
	}
	return recs, c.end(CallGet, s)
}

// Scan runs the scan call.
func (c *Caller) Scan(ctx context.Context, req ScanRequest) (Page, error) {
	s := c.get()
	defer c.put(s)
	s.enc.Reset(s.req)
	s.enc.ScanRequest(&req)
	if err := c.do(ctx, s, CallScan); err != nil {
		return Page{}, err
	}
	p, err := s.dec.Page(req.Map, req.Backup)
	if err != nil {
		return Page{}, c.malformed(CallScan, err)
	}
	return p, c.end(CallScan, s)
}

// ListMaps runs the list_maps call.
func (c *Caller) ListMaps(ctx context.Context) ([]string, error) {
	s := c.get()
	defer c.put(s)
	s.enc.Reset(s.req)
	if err := c.do(ctx, s, CallListMaps); err != nil {
		return nil, err
	}
	out, err := s.dec.Strings()
	if err != nil {
		return nil, c.malformed(CallListMaps, err)
	}
	return out, c.end(CallListMaps, s)
}

// ListExpired runs the list_expired call.
func (c *Caller) ListExpired(ctx context.Context, now int64, limit int) ([]Record, error) {
	s := c.get()
	defer c.put(s)
	s.enc.Reset(s.req)
	s.enc.ListExpiredRequest(now, limit)
	if err := c.do(ctx, s, CallListExpired); err != nil {
		return nil, err
	}
	out, err := s.dec.Expired()
	if err != nil {
		return nil, c.malformed(CallListExpired, err)
	}
	return out, c.end(CallListExpired, s)
}
