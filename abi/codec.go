package abi

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// This file is the msgpack encoding of the wasm ABI's request and response
// bodies (WASM.md, "Messages"). Both sides use the streaming Encoder and
// Decoder methods of github.com/vmihailenco/msgpack/v5, never reflection,
// and write and read the common forms of the hot paths themselves (fast.go).
//
// Every message is a msgpack array of fields in a fixed order. A decoder
// reads the fields it knows and skips any further elements, so a later minor
// version may append fields. Decoding is safe on untrusted input: every
// length is bounded by the bytes that remain, and nothing panics.

// OpenRequest is the body of the open call.
type OpenRequest struct {
	// Config is the plugin configuration (TOPGUN_PLUGIN_CONFIG).
	Config map[string]string
	// DataDir is the guest path of the granted data directory
	// (WasmDataDir), or "" when none is granted.
	DataDir string
	// MaxResponseBytes is the largest response the host accepts; a plugin
	// answers a bigger one with CodeResourceExhausted instead.
	MaxResponseBytes uint32
	// MemoryLimitBytes is the instance's linear memory limit.
	MemoryLimitBytes uint64
}

// GetRequest is the body of the get call.
type GetRequest struct {
	Map    string
	Backup bool
	Keys   []string
}

// ErrMalformed is returned (wrapped) for bytes that are not a valid message.
var ErrMalformed = errors.New("abi: malformed message")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// appendWriter is an io.Writer and io.ByteWriter that appends to a slice.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }
func (w *appendWriter) WriteByte(c byte) error      { w.b = append(w.b, c); return nil }

// Encoder appends ABI messages to a byte slice. The zero value is not
// usable; call NewEncoder. An Encoder is not safe for concurrent use.
type Encoder struct {
	w   appendWriter
	enc *msgpack.Encoder
}

// NewEncoder returns an Encoder with an empty output.
func NewEncoder() *Encoder {
	e := &Encoder{}
	e.enc = msgpack.NewEncoder(&e.w)
	return e
}

// Reset makes dst[:0] the output: messages are appended to it, growing it
// (and so reallocating it) when it is too small.
func (e *Encoder) Reset(dst []byte) { e.w.b = dst[:0] }

// Bytes returns the output.
func (e *Encoder) Bytes() []byte { return e.w.b }

// Len returns the length of the output.
func (e *Encoder) Len() int { return len(e.w.b) }

// Errors of the msgpack encoder come only from the writer, and appendWriter
// never fails, so the Encoder methods return no error.

// arr, str, bin, boolean, int64 and uint64 are in fast.go.

func (e *Encoder) optBin(b []byte) { e.binOrNil(b, b == nil) }
func (e *Encoder) binOrNil(b []byte, isNil bool) {
	if isNil {
		_ = e.enc.EncodeNil()
		return
	}
	e.bin(b)
}

// OpenRequest encodes [config map<str,str>, data_dir str,
// max_response_bytes uint, memory_limit_bytes uint].
func (e *Encoder) OpenRequest(r *OpenRequest) {
	e.arr(4)
	_ = e.enc.EncodeMapLen(len(r.Config))
	for k, v := range r.Config {
		e.str(k)
		e.str(v)
	}
	e.str(r.DataDir)
	e.uint64(uint64(r.MaxResponseBytes))
	e.uint64(r.MemoryLimitBytes)
}

// Description encodes [name str, abi_major uint, abi_minor uint,
// capabilities uint]: the response of describe and open.
func (e *Encoder) Description(d *Description) {
	e.arr(4)
	e.str(d.Name)
	e.uint64(uint64(d.ABIMajor))
	e.uint64(uint64(d.ABIMinor))
	e.uint64(uint64(d.Capabilities))
}

// ApplyRequest encodes [now int, mutations array], each mutation
// [kind uint, map str, key str, backup bool, value bin, expiration int].
func (e *Encoder) ApplyRequest(b *Batch) {
	e.arr(2)
	e.int64(b.Now)
	e.arr(len(b.Mutations))
	for i := range b.Mutations {
		m := &b.Mutations[i]
		e.arr(6)
		e.uint64(uint64(m.Kind))
		e.str(m.Map)
		e.str(m.Key)
		e.boolean(m.Backup)
		e.bin(m.Value)
		e.int64(m.ExpirationTime)
	}
}

// GetRequest encodes [map str, backup bool, keys array<str>].
func (e *Encoder) GetRequest(mapName string, backup bool, keys []string) {
	e.arr(3)
	e.str(mapName)
	e.boolean(backup)
	e.arr(len(keys))
	for _, k := range keys {
		e.str(k)
	}
}

// ScanRequest encodes [map str, backup bool, cursor bin|nil, limit int,
// max_bytes int].
func (e *Encoder) ScanRequest(r *ScanRequest) {
	e.arr(5)
	e.str(r.Map)
	e.boolean(r.Backup)
	e.binOrNil(r.Cursor, len(r.Cursor) == 0)
	e.int64(int64(r.Limit))
	e.int64(int64(r.MaxBytes))
}

// ListExpiredRequest encodes [now int, limit int].
func (e *Encoder) ListExpiredRequest(now int64, limit int) {
	e.arr(2)
	e.int64(now)
	e.int64(int64(limit))
}

// Records encodes the records of one map: the response of get, an array
// of [key str, value bin, expiration int, created_at int, updated_at int].
func (e *Encoder) Records(recs []Record) {
	e.arr(len(recs))
	for i := range recs {
		e.record(&recs[i])
	}
}

func (e *Encoder) record(r *Record) {
	e.arr(5)
	e.str(r.Key)
	e.bin(r.Value)
	e.int64(r.ExpirationTime)
	e.int64(r.CreatedAt)
	e.int64(r.UpdatedAt)
}

// Page encodes [records (as Records), cursor bin|nil]: the response of scan.
func (e *Encoder) Page(p *Page) {
	e.arr(2)
	e.Records(p.Records)
	e.optBin(p.Cursor)
}

// Strings encodes an array of strings: the response of list_maps.
func (e *Encoder) Strings(s []string) {
	e.arr(len(s))
	for _, v := range s {
		e.str(v)
	}
}

// Expired encodes the response of list_expired: an array of [map str,
// key str, backup bool, expiration int, created_at int, updated_at int].
func (e *Encoder) Expired(recs []Record) {
	e.arr(len(recs))
	for i := range recs {
		r := &recs[i]
		e.arr(6)
		e.str(r.Map)
		e.str(r.Key)
		e.boolean(r.Backup)
		e.int64(r.ExpirationTime)
		e.int64(r.CreatedAt)
		e.int64(r.UpdatedAt)
	}
}

// sliceReader is the Decoder's input: a byte slice read by the msgpack
// decoder through io.Reader and io.ByteScanner (so the decoder does no
// buffering of its own), and by the Decoder itself for the payload of
// strings and byte strings, which it takes from the slice directly instead
// of through io.ReadFull.
type sliceReader struct {
	b []byte
	i int
}

func (r *sliceReader) ReadByte() (byte, error) {
	if r.i >= len(r.b) {
		return 0, io.EOF
	}
	c := r.b[r.i]
	r.i++
	return c, nil
}

func (r *sliceReader) UnreadByte() error {
	if r.i <= 0 {
		return errUnread
	}
	r.i--
	return nil
}

func (r *sliceReader) Read(p []byte) (int, error) {
	if r.i >= len(r.b) {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	n := copy(p, r.b[r.i:])
	r.i += n
	return n, nil
}

// len returns the number of unread bytes.
func (r *sliceReader) len() int { return len(r.b) - r.i }

// next returns the next n bytes (n <= r.len()) and skips them.
func (r *sliceReader) next(n int) []byte {
	p := r.b[r.i : r.i+n : r.i+n]
	r.i += n
	return p
}

var errUnread = errors.New("abi: UnreadByte at the start of the input")

// Decoder reads ABI messages from a byte slice. The zero value is not
// usable; call NewDecoder. A Decoder is not safe for concurrent use.
type Decoder struct {
	r   sliceReader
	dec *msgpack.Decoder
	// MaxItems, when positive, bounds the elements of the list a response
	// holds (records of get, scan and list_expired, names of list_maps):
	// the caller sets it from its request, so that a plugin cannot make
	// it allocate for more than it asked (a record of 6 bytes decodes to
	// about 90).
	MaxItems int
	// AliasValues, when set, makes ApplyRequest return values that alias
	// the input instead of copies: no allocation and no copy per value.
	// They are valid until the input is reused. It is for a caller that
	// passes the batch straight to a Backend, which never keeps the
	// caller's buffers (the guest's hot path).
	AliasValues bool
	// ShareKeys, when set, makes the keys of ApplyRequest and GetRequest
	// substrings of shared, immutable chunks of about keyChunk bytes
	// instead of one allocation each: inside wasm an allocation per key
	// costs over a third of decoding a mutation, mostly in the collector.
	// A key kept by the caller keeps its whole chunk alive, so it is for a
	// caller whose backend keeps few keys or clones those it keeps.
	ShareKeys bool
	// Known, when set, holds the keys a get asked for: Records returns the
	// key of a record as the string of the equal requested key instead of
	// a new one (a get answers in the order of its keys, so only the next
	// few are compared). Records consumes it.
	Known []string
	last  string // last map name, reused to avoid one allocation per record
	keys  strings.Builder
}

// keyChunk is the size of the chunks ShareKeys cuts keys from (about 20
// keys of 20 bytes); keys longer than a quarter of it get their own string.
const keyChunk = 512

// value returns the next l bytes of the input as a mutation's value: nil
// for a msgpack nil (l < 0), else aliased or copied as AliasValues says.
func (d *Decoder) value(l int) []byte {
	switch {
	case l < 0:
		return nil
	case d.AliasValues:
		return d.r.next(l)
	}
	return append(make([]byte, 0, l), d.r.next(l)...)
}

// key returns p as a string, cut from the shared chunk when ShareKeys is set.
func (d *Decoder) key(p []byte) string {
	if !d.ShareKeys || len(p) == 0 || len(p) > keyChunk/4 {
		return string(p)
	}
	// A Builder never changes bytes it has returned in a string, so the
	// substrings stay immutable; a full chunk is left to the keys cut
	// from it and a new one started.
	if d.keys.Cap()-d.keys.Len() < len(p) {
		d.keys.Reset()
		d.keys.Grow(keyChunk)
	}
	d.keys.Write(p)
	s := d.keys.String()
	return s[len(s)-len(p):]
}

// NewDecoder returns a Decoder with an empty input.
func NewDecoder() *Decoder {
	d := &Decoder{}
	d.dec = msgpack.NewDecoder(&d.r)
	return d
}

// Reset makes b the input. Every string and byte slice the decoder returns
// is a copy, except the values of ApplyRequest when AliasValues is set
// (keys are copies with ShareKeys too, only not one allocation each, and
// the keys of Records may be the caller's strings, see Known).
func (d *Decoder) Reset(b []byte) {
	// The msgpack decoder reads d.r and keeps no state between values, so
	// resetting the slice is enough (and avoids its per-reset type
	// assertion, which costs in wasm).
	d.r.b, d.r.i = b, 0
}

// Remaining returns the number of unread input bytes.
func (d *Decoder) Remaining() int { return d.r.len() }

// End checks that the whole input was read.
func (d *Decoder) End() error {
	if n := d.r.len(); n != 0 {
		return malformed("%d trailing bytes", n)
	}
	return nil
}

// arr reads an array header with at least min elements and returns its
// length. Each element takes at least one byte, which bounds the length.
func (d *Decoder) arr(what string, min int) (int, error) {
	n, err := d.arrayLen()
	if err != nil {
		return 0, malformed("%s: %v", what, err)
	}
	if n < min || n > d.r.len() {
		return 0, malformed("%s: array of %d elements, want at least %d (and at most %d)", what, n, min, d.r.len())
	}
	return n, nil
}

// list reads an array header of any length (nil counts as empty).
func (d *Decoder) list(what string, minElemBytes int) (int, error) {
	n, err := d.arrayLen()
	if err != nil {
		return 0, malformed("%s: %v", what, err)
	}
	if n < 0 {
		return 0, nil
	}
	if n > d.r.len()/minElemBytes {
		return 0, malformed("%s: %d elements cannot fit in %d bytes", what, n, d.r.len())
	}
	if d.MaxItems > 0 && n > d.MaxItems {
		return 0, malformed("%s: %d elements, more than the %d the request allows", what, n, d.MaxItems)
	}
	return n, nil
}

// skip skips the n-have trailing elements of an array (fields of a later
// minor version). It walks nested values without recursion: the library's
// Skip recurses once per level, so 30 MiB of nested arrays in a plugin's
// response overflowed the stack, which kills the process. Every claimed
// length is checked against the bytes left before anything is read.
func (d *Decoder) skip(what string, n, have int) error {
	pending := n - have
	for pending > 0 {
		// Every value takes at least one byte.
		if pending > d.r.len() {
			return malformed("%s: %d values still to skip but %d bytes left", what, pending, d.r.len())
		}
		c, err := d.dec.PeekCode()
		if err != nil {
			return malformed("%s: %v", what, err)
		}
		pending--
		switch {
		case msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32:
			k, err := d.arrayLen()
			if err != nil {
				return malformed("%s: %v", what, err)
			}
			pending += k
		case msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32:
			k, err := d.dec.DecodeMapLen()
			if err != nil {
				return malformed("%s: %v", what, err)
			}
			pending += 2 * k
		case msgpcode.IsString(c) || msgpcode.IsBin(c):
			if _, _, err := d.raw(what); err != nil {
				return err
			}
		case msgpcode.IsExt(c):
			_, l, err := d.dec.DecodeExtHeader()
			if err != nil {
				return malformed("%s: %v", what, err)
			}
			if l > d.r.len() {
				return malformed("%s: extension of %d bytes exceeds the %d bytes left", what, l, d.r.len())
			}
			d.r.next(l)
		default:
			// A scalar of fixed size.
			if err := d.dec.Skip(); err != nil {
				return malformed("%s: %v", what, err)
			}
		}
	}
	return nil
}

func (d *Decoder) rawLen(what string) (int, error) {
	n, err := d.bytesLen()
	if err != nil {
		return 0, malformed("%s: %v", what, err)
	}
	if n > d.r.len() {
		return 0, malformed("%s: length %d exceeds the %d bytes left", what, n, d.r.len())
	}
	return n, nil
}

// raw reads a str or bin header and returns its payload, which aliases the
// input; nil is returned as (nil, true).
func (d *Decoder) raw(what string) (p []byte, isNil bool, err error) {
	n, err := d.rawLen(what)
	if err != nil {
		return nil, false, err
	}
	if n < 0 {
		return nil, true, nil
	}
	return d.r.next(n), false, nil
}

// str reads a string (or bin, or nil as "") with one allocation.
func (d *Decoder) str(what string) (string, error) {
	p, _, err := d.raw(what)
	return string(p), err
}

// mapName reads a string, returning the previous map name when the bytes
// are equal: a batch usually names one map many times.
func (d *Decoder) mapName(what string) (string, error) {
	p, _, err := d.raw(what)
	if err != nil {
		return "", err
	}
	return d.reuseName(p), nil
}

// reuseName returns p as a string, reusing the previous map name's string
// when the bytes are equal: a batch usually names one map many times. It
// is small enough to inline on the hot paths.
func (d *Decoder) reuseName(p []byte) string {
	if string(p) != d.last {
		d.last = string(p)
	}
	return d.last
}

// bin reads a bin (or str) as a fresh slice; nil stays nil.
func (d *Decoder) bin(what string) ([]byte, error) {
	p, isNil, err := d.raw(what)
	if err != nil || isNil {
		return nil, err
	}
	return append(make([]byte, 0, len(p)), p...), nil
}

func (d *Decoder) int64(what string) (int64, error) {
	v, err := d.int64v()
	if err != nil {
		return 0, malformed("%s: %v", what, err)
	}
	return v, nil
}

func (d *Decoder) uint64(what string) (uint64, error) {
	v, err := d.uint64v()
	if err != nil {
		return 0, malformed("%s: %v", what, err)
	}
	return v, nil
}

func (d *Decoder) uint32(what string) (uint32, error) {
	v, err := d.uint64(what)
	if err == nil && v > math.MaxUint32 {
		return 0, malformed("%s: %d does not fit 32 bits", what, v)
	}
	return uint32(v), err
}

func (d *Decoder) int(what string) (int, error) {
	v, err := d.int64(what)
	if err == nil && (v > math.MaxInt32 || v < math.MinInt32) {
		return 0, malformed("%s: %d is out of range", what, v)
	}
	return int(v), err
}

func (d *Decoder) boolean(what string) (bool, error) {
	v, err := d.boolv()
	if err != nil {
		return false, malformed("%s: %v", what, err)
	}
	return v, nil
}

// OpenRequest decodes the body of open.
func (d *Decoder) OpenRequest() (OpenRequest, error) {
	var r OpenRequest
	n, err := d.arr("open request", 4)
	if err != nil {
		return r, err
	}
	m, err := d.dec.DecodeMapLen()
	if err != nil {
		return r, malformed("open config: %v", err)
	}
	if m > d.r.len()/2 {
		return r, malformed("open config: %d entries cannot fit in %d bytes", m, d.r.len())
	}
	if m > 0 {
		r.Config = make(map[string]string, m)
	}
	for i := 0; i < m; i++ {
		k, err := d.str("config key")
		if err != nil {
			return r, err
		}
		v, err := d.str("config value")
		if err != nil {
			return r, err
		}
		r.Config[k] = v
	}
	if r.DataDir, err = d.str("data dir"); err != nil {
		return r, err
	}
	if r.MaxResponseBytes, err = d.uint32("max response bytes"); err != nil {
		return r, err
	}
	if r.MemoryLimitBytes, err = d.uint64("memory limit bytes"); err != nil {
		return r, err
	}
	return r, d.skip("open request", n, 4)
}

// Description decodes the response of describe and open.
func (d *Decoder) Description() (Description, error) {
	var r Description
	n, err := d.arr("description", 4)
	if err != nil {
		return r, err
	}
	if r.Name, err = d.str("name"); err != nil {
		return r, err
	}
	if err := ValidateBackendName(r.Name); err != nil {
		return r, malformed("description: %v", err)
	}
	if r.ABIMajor, err = d.uint32("abi major"); err != nil {
		return r, err
	}
	if r.ABIMinor, err = d.uint32("abi minor"); err != nil {
		return r, err
	}
	caps, err := d.uint64("capabilities")
	if err != nil {
		return r, err
	}
	r.Capabilities = Capability(caps)
	return r, d.skip("description", n, 4)
}

// ApplyRequest decodes the body of apply into b, reusing the capacity of
// b.Mutations. More than MaxBatchOps mutations is an *Error with
// CodeInvalidArgument, found before any mutation is decoded.
func (d *Decoder) ApplyRequest(b *Batch) error {
	n, err := d.arr("apply request", 2)
	if err != nil {
		return err
	}
	if b.Now, err = d.int64("batch time"); err != nil {
		return err
	}
	// A mutation takes at least 7 bytes (a fixarray and six fields).
	count, err := d.list("mutations", 7)
	if err != nil {
		return err
	}
	if count > MaxBatchOps {
		return Errorf(CodeInvalidArgument, "batch has %d mutations, the limit is %d", count, MaxBatchOps)
	}
	old := len(b.Mutations)
	if cap(b.Mutations) < count {
		b.Mutations = make([]Mutation, count)
	} else {
		b.Mutations = b.Mutations[:count]
		if old > count {
			clear(b.Mutations[count:old])
		}
	}
	// The loop calls the primitives of fast.go directly instead of through
	// the helpers above: inside wasm every call that is not inlined costs
	// 15-25 ns, and the helpers are too big to inline. Each mutation is
	// [kind uint, map str, key str, backup bool, value bin, expiration int].
	for i := 0; i < count; i++ {
		m := &b.Mutations[i]
		f, err := d.arrayLen()
		if err != nil || f < 6 || f > d.r.len() {
			return d.badMutation(i, "array", f, err)
		}
		kind, err := d.uint64v()
		if err != nil || kind > math.MaxUint8 {
			return d.badMutation(i, "kind", int(min(kind, math.MaxInt32)), err)
		}
		m.Kind = OpKind(kind)
		l, err := d.bytesLen()
		if err != nil || l > d.r.len() {
			return d.badMutation(i, "map name", l, err)
		}
		m.Map = d.reuseName(d.r.next(max(l, 0)))
		if l, err = d.bytesLen(); err != nil || l > d.r.len() {
			return d.badMutation(i, "key", l, err)
		}
		m.Key = d.key(d.r.next(max(l, 0)))
		if m.Backup, err = d.boolv(); err != nil {
			return d.badMutation(i, "backup", 0, err)
		}
		if l, err = d.bytesLen(); err != nil || l > d.r.len() {
			return d.badMutation(i, "value", l, err)
		}
		m.Value = d.value(l)
		if m.ExpirationTime, err = d.int64v(); err != nil {
			return d.badMutation(i, "expiration time", 0, err)
		}
		if f > 6 {
			if err := d.skip("mutation", f, 6); err != nil {
				return err
			}
		}
	}
	return d.skip("apply request", n, 2)
}

// badMutation is the error of ApplyRequest for field what of mutation i:
// the decoder's error, or else the out-of-range value v.
func (d *Decoder) badMutation(i int, what string, v int, err error) error {
	if err != nil {
		return malformed("mutation %d: %s: %v", i, what, err)
	}
	switch what {
	case "array":
		return malformed("mutation %d: array of %d elements, want at least 6 (and at most %d)", i, v, d.r.len())
	case "kind":
		return malformed("mutation %d: kind %d", i, v)
	}
	return malformed("mutation %d: %s: length %d exceeds the %d bytes left", i, what, v, d.r.len())
}

// GetRequest decodes the body of get, reusing the capacity of keys. More
// than MaxGetKeys keys is an *Error with CodeInvalidArgument.
func (d *Decoder) GetRequest(keys []string) (GetRequest, error) {
	// Like ApplyRequest, it calls the primitives directly instead of
	// through the helpers: a get is one of the most frequent calls.
	var r GetRequest
	n, err := d.arrayLen()
	if err != nil || n < 3 || n > d.r.len() {
		return r, d.badGet("array", n, err)
	}
	l, err := d.bytesLen()
	if err != nil || l > d.r.len() {
		return r, d.badGet("map name", l, err)
	}
	r.Map = d.reuseName(d.r.next(max(l, 0)))
	if r.Backup, err = d.boolv(); err != nil {
		return r, d.badGet("backup", 0, err)
	}
	count, err := d.arrayLen()
	if err != nil || count > d.r.len() {
		return r, d.badGet("keys", count, err)
	}
	if count > MaxGetKeys {
		return r, Errorf(CodeInvalidArgument, "get of %d keys, the limit is %d", count, MaxGetKeys)
	}
	r.Keys = keys[:0]
	for i := 0; i < count; i++ {
		l, err := d.bytesLen()
		if err != nil || l > d.r.len() {
			return r, d.badGet(fmt.Sprintf("key %d", i), l, err)
		}
		r.Keys = append(r.Keys, d.key(d.r.next(max(l, 0))))
	}
	if n > 3 {
		return r, d.skip("get request", n, 3)
	}
	return r, nil
}

// badGet is the error of GetRequest for field what: the decoder's error,
// or else the out-of-range length v.
func (d *Decoder) badGet(what string, v int, err error) error {
	if err != nil {
		return malformed("get request: %s: %v", what, err)
	}
	if what == "array" {
		return malformed("get request: array of %d elements, want at least 3 (and at most %d)", v, d.r.len())
	}
	return malformed("get request: %s: length %d exceeds the %d bytes left", what, v, d.r.len())
}

// ScanRequest decodes the body of scan.
func (d *Decoder) ScanRequest() (ScanRequest, error) {
	var r ScanRequest
	n, err := d.arr("scan request", 5)
	if err != nil {
		return r, err
	}
	if r.Map, err = d.mapName("map name"); err != nil {
		return r, err
	}
	if r.Backup, err = d.boolean("backup"); err != nil {
		return r, err
	}
	if r.Cursor, err = d.bin("cursor"); err != nil {
		return r, err
	}
	if r.Limit, err = d.int("limit"); err != nil {
		return r, err
	}
	if r.MaxBytes, err = d.int("max bytes"); err != nil {
		return r, err
	}
	return r, d.skip("scan request", n, 5)
}

// ListExpiredRequest decodes the body of list_expired.
func (d *Decoder) ListExpiredRequest() (now int64, limit int, err error) {
	n, err := d.arr("list_expired request", 2)
	if err != nil {
		return 0, 0, err
	}
	if now, err = d.int64("now"); err != nil {
		return 0, 0, err
	}
	if limit, err = d.int("limit"); err != nil {
		return 0, 0, err
	}
	return now, limit, d.skip("list_expired request", n, 2)
}

// Records decodes the response of get; every record gets mapName and backup.
func (d *Decoder) Records(mapName string, backup bool) ([]Record, error) {
	// A record takes at least 6 bytes.
	count, err := d.list("records", 6)
	if err != nil || count == 0 {
		return nil, err
	}
	out := make([]Record, count)
	for i := range out {
		r := &out[i]
		r.Map, r.Backup = mapName, backup
		f, err := d.arr("record", 5)
		if err != nil {
			return nil, err
		}
		p, _, err := d.raw("key")
		if err != nil {
			return nil, err
		}
		r.Key = d.knownKey(p)
		if r.Value, err = d.bin("value"); err != nil {
			return nil, err
		}
		if r.Value == nil {
			r.Value = []byte{}
		}
		if r.ExpirationTime, err = d.int64("expiration time"); err != nil {
			return nil, err
		}
		if r.CreatedAt, err = d.int64("created at"); err != nil {
			return nil, err
		}
		if r.UpdatedAt, err = d.int64("updated at"); err != nil {
			return nil, err
		}
		if err := d.skip("record", f, 5); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// knownKeyAhead bounds the requested keys knownKey compares a record's
// key with: keys absent from storage are skipped by the response, and a
// plugin answering keys it was not asked for must not cost a comparison
// with every requested key per record.
const knownKeyAhead = 8

// knownKey returns p as a string: the equal key of d.Known when one of
// the next knownKeyAhead is, else a copy.
func (d *Decoder) knownKey(p []byte) string {
	for i, k := range d.Known[:min(len(d.Known), knownKeyAhead)] {
		if k == string(p) {
			d.Known = d.Known[i+1:]
			return k
		}
	}
	return string(p)
}

// Page decodes the response of scan.
func (d *Decoder) Page(mapName string, backup bool) (Page, error) {
	var p Page
	n, err := d.arr("page", 2)
	if err != nil {
		return p, err
	}
	if p.Records, err = d.Records(mapName, backup); err != nil {
		return p, err
	}
	if p.Cursor, err = d.bin("cursor"); err != nil {
		return p, err
	}
	if len(p.Cursor) == 0 {
		p.Cursor = nil
	}
	return p, d.skip("page", n, 2)
}

// Strings decodes an array of strings (the response of list_maps).
func (d *Decoder) Strings() ([]string, error) {
	count, err := d.list("strings", 1)
	if err != nil || count == 0 {
		return nil, err
	}
	out := make([]string, count)
	for i := range out {
		if out[i], err = d.str("string"); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Expired decodes the response of list_expired.
func (d *Decoder) Expired() ([]Record, error) {
	count, err := d.list("expired records", 7)
	if err != nil || count == 0 {
		return nil, err
	}
	out := make([]Record, count)
	for i := range out {
		r := &out[i]
		f, err := d.arr("expired record", 6)
		if err != nil {
			return nil, err
		}
		if r.Map, err = d.mapName("map name"); err != nil {
			return nil, err
		}
		if r.Key, err = d.str("key"); err != nil {
			return nil, err
		}
		if r.Backup, err = d.boolean("backup"); err != nil {
			return nil, err
		}
		if r.ExpirationTime, err = d.int64("expiration time"); err != nil {
			return nil, err
		}
		if r.CreatedAt, err = d.int64("created at"); err != nil {
			return nil, err
		}
		if r.UpdatedAt, err = d.int64("updated at"); err != nil {
			return nil, err
		}
		if err := d.skip("expired record", f, 6); err != nil {
			return nil, err
		}
	}
	return out, nil
}
