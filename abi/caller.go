package abi

import (
	"context"
	"errors"
	"strings"
	"sync"
	"unicode/utf8"
)

// RoundTripper carries one encoded call to a plugin and hands its encoded
// response to a handler: the wazero host (package host) does it through a
// wasm instance, the guest SDK's loopback (package sdk) in process.
type RoundTripper interface {
	// RoundTrip runs call with the request body req and calls handle once
	// with the call's status and response body: on CodeOK the response
	// message, otherwise the error message text. resp is valid only during
	// handle. RoundTrip returns handle's error, or an *Error when the call
	// itself failed (a trap, a deadline, a malformed result). A handle
	// error that wraps ErrMalformed means the plugin answered garbage: the
	// transport must not reuse the instance.
	RoundTrip(ctx context.Context, call WasmCall, req []byte, handle func(status Code, resp []byte) error) error
}

// Caller implements the operations of Backend over a RoundTripper: it
// encodes each request, sends it, and decodes the response or turns the
// error status into an *Error. The wasm host and the SDK's native loopback
// both build their Backend on it, so they share the client code.
//
// A Caller is safe for concurrent use if its RoundTripper is.
type Caller struct {
	rt     RoundTripper
	prefix string
	pool   sync.Pool
	// runs: the peer implements ABI 1.1 or later, so batches go as
	// apply_runs.
	runs bool
}

type callState struct {
	c   *Caller
	enc *Encoder
	dec *Decoder
	req []byte
	// handle is s.handleResponse, bound once: a closure per call would be
	// allocated, since it escapes through the RoundTripper.
	handle func(Code, []byte) error
	// The call in flight, what its response is decoded with, and what it
	// decoded to.
	call    WasmCall
	mapName string
	backup  bool
	desc    Description
	recs    []Record
	page    Page
	// maxItems bounds the response's list by what the request asked for
	// (Decoder.MaxItems); 0 for calls without one.
	maxItems int
	strs     []string
	// keys are the keys of the get in flight (Decoder.Known).
	keys []string
}

// maxPooledBuffer bounds the request buffer a Caller keeps between calls.
const maxPooledBuffer = 1 << 20

// NewCaller returns a Caller that sends calls through rt and starts every
// error message with prefix (e.g. "plugin null.wasm").
func NewCaller(rt RoundTripper, prefix string) *Caller {
	c := &Caller{rt: rt, prefix: prefix}
	c.pool.New = func() any {
		s := &callState{c: c, enc: NewEncoder(), dec: NewDecoder()}
		s.handle = s.handleResponse
		return s
	}
	return c
}

// SetPeerMinor tells the Caller the ABI minor version the peer implements
// (from its description), so that it uses the calls that version offers.
// Call it before the Caller is shared.
func (c *Caller) SetPeerMinor(minor uint32) { c.runs = minor >= 1 }

// Prefix returns the prefix of the Caller's error messages.
func (c *Caller) Prefix() string { return c.prefix }

func (c *Caller) get() *callState {
	s := c.pool.Get().(*callState)
	s.enc.Reset(s.req)
	return s
}

func (c *Caller) put(s *callState) {
	if b := s.enc.Bytes(); cap(b) <= maxPooledBuffer {
		s.req = b[:0]
	} else {
		s.req = nil
	}
	s.dec.Reset(nil)
	s.dec.Known = nil
	// The results belong to the caller now.
	s.mapName, s.desc, s.recs, s.page, s.strs, s.maxItems, s.keys = "", Description{}, nil, Page{}, nil, 0, nil
	c.pool.Put(s)
}

// do sends the request encoded in s.enc; the response is decoded by
// handleResponse into s.
func (c *Caller) do(ctx context.Context, s *callState, call WasmCall) error {
	s.call = call
	return c.rt.RoundTrip(ctx, call, s.enc.Bytes(), s.handle)
}

// handleResponse turns an error status into an *Error, or decodes the
// response of s.call into s.
func (s *callState) handleResponse(status Code, resp []byte) error {
	c, call := s.c, s.call
	if status != CodeOK {
		return &Error{Code: status, Message: c.prefix + ": " + call.String() + ": " + errorText(status, resp)}
	}
	d := s.dec
	d.Reset(resp)
	d.MaxItems = s.maxItems
	d.Known = s.keys
	var err error
	switch call {
	case CallDescribe, CallOpen:
		s.desc, err = d.Description()
	case CallGet:
		s.recs, err = d.Records(s.mapName, s.backup)
		// Checked here, not by the server alone: a malformed answer
		// discards the instance that gave it.
		if i := UnaskedKey(s.keys, s.recs); i >= 0 {
			err = malformed("record %d is of key %.64q, which the get did not ask for", i, s.recs[i].Key)
		}
	case CallScan:
		s.page, err = d.Page(s.mapName, s.backup)
	case CallListMaps:
		s.strs, err = d.Strings()
	case CallListExpired:
		s.recs, err = d.Expired()
	}
	if err == nil {
		err = d.End()
	}
	if err != nil {
		return Wrap(CodeInternal, err, "%s: %s: malformed response", c.prefix, call)
	}
	return nil
}

// errorText is the message of an error response as the host reports it:
// cut to MaxErrorMessageBytes at a character boundary, with bytes that
// are not UTF-8 replaced, since the message reaches clients whose decoders
// refuse invalid UTF-8 (this server's wire package does), and the code's
// name when the plugin gave no text.
func errorText(status Code, resp []byte) string {
	// A few bytes past the limit, so that the character the limit splits
	// stays whole until the cut below drops it.
	if len(resp) > MaxErrorMessageBytes+utf8.UTFMax {
		resp = resp[:MaxErrorMessageBytes+utf8.UTFMax]
	}
	if len(resp) == 0 {
		return status.String()
	}
	// Each run of invalid bytes becomes three: the cut comes after, between
	// characters of valid UTF-8.
	msg := strings.ToValidUTF8(string(resp), "\uFFFD")
	if len(msg) > MaxErrorMessageBytes {
		n := MaxErrorMessageBytes
		for n > 0 && !utf8.RuneStart(msg[n]) {
			n--
		}
		msg = msg[:n]
	}
	return msg
}

// IsMalformed reports whether err says a plugin's response did not decode.
func IsMalformed(err error) bool { return errors.Is(err, ErrMalformed) }

// Describe runs the describe call.
func (c *Caller) Describe(ctx context.Context) (d Description, err error) {
	s := c.get()
	defer c.put(s)
	err = c.do(ctx, s, CallDescribe)
	return s.desc, err
}

// Open runs the open call and returns the plugin's description.
func (c *Caller) Open(ctx context.Context, req *OpenRequest) (d Description, err error) {
	s := c.get()
	defer c.put(s)
	s.enc.OpenRequest(req)
	err = c.do(ctx, s, CallOpen)
	return s.desc, err
}

// Close runs the close call.
func (c *Caller) Close(ctx context.Context) error {
	s := c.get()
	defer c.put(s)
	return c.do(ctx, s, CallClose)
}

// Apply runs the apply call.
func (c *Caller) Apply(ctx context.Context, b *Batch) error {
	if b == nil {
		return Errorf(CodeInvalidArgument, "%s: apply: batch is nil", c.prefix)
	}
	if len(b.Mutations) > MaxBatchOps {
		return Errorf(CodeInvalidArgument, "%s: apply: batch has %d mutations, the limit is %d", c.prefix, len(b.Mutations), MaxBatchOps)
	}
	s := c.get()
	defer c.put(s)
	if c.runs {
		s.enc.ApplyRunsRequest(b)
		return c.do(ctx, s, CallApplyRuns)
	}
	s.enc.ApplyRequest(b)
	return c.do(ctx, s, CallApply)
}

// Get runs the get call.
func (c *Caller) Get(ctx context.Context, mapName string, backup bool, keys []string) (recs []Record, err error) {
	if len(keys) > MaxGetKeys {
		return nil, Errorf(CodeInvalidArgument, "%s: get: get of %d keys, the limit is %d", c.prefix, len(keys), MaxGetKeys)
	}
	s := c.get()
	defer c.put(s)
	s.enc.GetRequest(mapName, backup, keys)
	s.mapName, s.backup, s.maxItems, s.keys = mapName, backup, max(len(keys), 1), keys
	err = c.do(ctx, s, CallGet)
	return s.recs, err
}

// Scan runs the scan call.
func (c *Caller) Scan(ctx context.Context, req ScanRequest) (p Page, err error) {
	s := c.get()
	defer c.put(s)
	s.enc.ScanRequest(&req)
	s.mapName, s.backup, s.maxItems = req.Map, req.Backup, ScanLimit(req.Limit)
	err = c.do(ctx, s, CallScan)
	return s.page, err
}

// ListMaps runs the list_maps call.
func (c *Caller) ListMaps(ctx context.Context) (maps []string, err error) {
	s := c.get()
	defer c.put(s)
	s.maxItems = MaxMaps
	err = c.do(ctx, s, CallListMaps)
	return s.strs, err
}

// ListExpired runs the list_expired call.
func (c *Caller) ListExpired(ctx context.Context, now int64, limit int) (recs []Record, err error) {
	s := c.get()
	defer c.put(s)
	s.enc.ListExpiredRequest(now, limit)
	s.maxItems = ScanLimit(limit)
	err = c.do(ctx, s, CallListExpired)
	return s.recs, err
}
