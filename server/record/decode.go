package record

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"sync"
	"unicode/utf8"
	"unsafe"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// MaxStoredDepth is the deepest nesting of msgpack containers (maps and
// arrays, the RecordValue wrappers included) that Decode accepts and Encode
// writes. It is far above what a value that passed the client protocol's
// limit (MaxWireDepth) can reach once stored, and guards against hostile
// input exhausting the stack.
const MaxStoredDepth = 1024

// MaxWireDepth is the deepest nesting of containers DecodeWire accepts in a
// plain msgpack value, TopGun's own limit for client frames.
const MaxWireDepth = 256

// decoder reads TopGun encodings through the msgpack streaming API.
type decoder struct {
	dec      *msgpack.Decoder
	r        *bytes.Reader // the input when decoding a byte slice, else nil
	size     int           // len of the input when r != nil
	wire     bool          // decoding the plain wire form (for error messages)
	maxDepth int
	keyMax   int      // the longest display string of a map key (DisplayKeyMax)
	scratch  [32]byte // holds field and variant names, which need no allocation
	floatBuf []byte   // a float displayed in a map key (writeRustFloat)
}

type pooledDecoder struct {
	decoder
	reader bytes.Reader
}

var decoderPool = sync.Pool{New: func() any {
	p := &pooledDecoder{}
	p.dec = msgpack.NewDecoder(&p.reader)
	p.r = &p.reader
	return p
}}

func getDecoder(b []byte) *pooledDecoder {
	p := decoderPool.Get().(*pooledDecoder)
	p.reset(b)
	return p
}

func (p *pooledDecoder) reset(b []byte) {
	p.reader.Reset(b)
	p.size = len(b)
	p.wire = false
	p.maxDepth = MaxStoredDepth
	p.keyMax = math.MaxInt
}

func putDecoder(p *pooledDecoder) {
	p.reader.Reset(nil)
	decoderPool.Put(p)
}

// Decode decodes the stored bytes of one record: TopGun's named msgpack of
// its RecordValue. It accepts what TopGun's decoder accepts: fields in any
// order, unknown fields skipped, structs as positional arrays, variant
// indexes in place of names, a whole float (as JavaScript clients send) for
// the integer fields of a Timestamp, and the legacy shapes — orTombstones
// (Kind KindORTombstones) and a bare Value without the RecordValue wrapper
// (LegacyBare, an LWW record with a zero timestamp, as TopGun replays it).
// Unlike TopGun it refuses bytes after the value, which only a corrupt row
// can have.
//
// Decode never panics. Every error matches ErrMalformed and is a
// *DecodeError naming the failing element.
func Decode(b []byte) (RecordValue, error) {
	p := getDecoder(b)
	defer putDecoder(p)
	rv, err := p.recordValue()
	if errors.Is(err, errBareValue) {
		// Not a RecordValue tag: TopGun's WAL then tries a legacy bare Value.
		p.reset(b)
		var v Value
		v, err = p.storedValue(0)
		rv = RecordValue{Kind: KindLWW, LWW: LWW{Value: v}, LegacyBare: true}
	}
	if err != nil {
		return RecordValue{}, err
	}
	if p.reader.Len() != 0 {
		return RecordValue{}, &DecodeError{Offset: p.offset(), Reason: fmt.Sprintf("%d unexpected bytes after the value", p.reader.Len())}
	}
	return rv, nil
}

// errBareValue is an internal signal: the head of the input names a Value
// variant, not a RecordValue variant.
var errBareValue = errors.New("record: bare value")

func (d *decoder) offset() int {
	if d.r == nil {
		return -1
	}
	return d.size - d.r.Len()
}

func (d *decoder) failAt(off int, format string, args ...any) error {
	return &DecodeError{Offset: off, Reason: fmt.Sprintf(format, args...), Wire: d.wire}
}

// ioFail converts an error of the msgpack decoder into a DecodeError.
func (d *decoder) ioFail(off int, err error) error {
	var de *DecodeError
	if errors.As(err, &de) {
		return err
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return d.failAt(off, "the input ends in the middle of a value")
	}
	return d.failAt(off, "%v", err)
}

// peek returns the next msgpack code without consuming it.
func (d *decoder) peek() (byte, int, error) {
	off := d.offset()
	c, err := d.dec.PeekCode()
	if err != nil {
		return 0, off, d.ioFail(off, err)
	}
	return c, off, nil
}

func isInt(c byte) bool {
	return msgpcode.IsFixedNum(c) || (c >= msgpcode.Uint8 && c <= msgpcode.Int64)
}

func isFloat(c byte) bool { return c == msgpcode.Float || c == msgpcode.Double }

func isStr(c byte) bool { return msgpcode.IsString(c) }

func isBin(c byte) bool { return msgpcode.IsBin(c) }

func isMap(c byte) bool {
	return msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32
}

func isArray(c byte) bool {
	return msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32
}

// codeName names the msgpack type of code c for error messages.
func codeName(c byte) string {
	switch {
	case c == msgpcode.Nil:
		return "nil"
	case c == msgpcode.True || c == msgpcode.False:
		return "a boolean"
	case isInt(c):
		return "an integer"
	case isFloat(c):
		return "a float"
	case isStr(c):
		return "a string"
	case isBin(c):
		return "binary"
	case isArray(c):
		return "an array"
	case isMap(c):
		return "a map"
	case msgpcode.IsExt(c):
		return "an extension"
	}
	return fmt.Sprintf("the reserved code 0x%02x", c)
}

// readInt reads an integer of any width. big is set (and u holds the value)
// when it is an unsigned 64-bit value above math.MaxInt64; otherwise i holds
// it. The caller has checked the code with isInt.
func (d *decoder) readInt(c byte, off int) (i int64, u uint64, big bool, err error) {
	if c == msgpcode.Uint64 {
		u, err = d.dec.DecodeUint64()
		if err != nil {
			return 0, 0, false, d.ioFail(off, err)
		}
		if u > math.MaxInt64 {
			return 0, u, true, nil
		}
		return int64(u), u, false, nil
	}
	i, err = d.dec.DecodeInt64()
	if err != nil {
		return 0, 0, false, d.ioFail(off, err)
	}
	return i, uint64(i), false, nil
}

// readFloat reads a float32 or float64 as float64. The caller has checked
// the code with isFloat.
func (d *decoder) readFloat(off int) (float64, error) {
	f, err := d.dec.DecodeFloat64()
	if err != nil {
		return 0, d.ioFail(off, err)
	}
	return f, nil
}

// uintField reads an unsigned integer no larger than max, accepting a whole,
// in-range float as TopGun's serde_number helpers do. With allowNil a nil
// reads as 0 (an absent optional).
func (d *decoder) uintField(max uint64, allowNil bool) (uint64, error) {
	c, off, err := d.peek()
	if err != nil {
		return 0, err
	}
	switch {
	case isInt(c):
		i, u, big, err := d.readInt(c, off)
		if err != nil {
			return 0, err
		}
		if !big && i < 0 {
			return 0, d.failAt(off, "%d is negative, want an unsigned integer", i)
		}
		if u > max {
			return 0, d.failAt(off, "%d is out of range (at most %d)", u, max)
		}
		return u, nil
	case isFloat(c):
		f, err := d.readFloat(off)
		if err != nil {
			return 0, err
		}
		// float64(max)+1 is 2^64 for u64 and 2^32 for u32, both exact.
		if !(f >= 0) || f != math.Trunc(f) || !(f < float64(max)+1) {
			return 0, d.failAt(off, "float %v is not a whole number in 0..%d", f, max)
		}
		return uint64(f), nil
	case c == msgpcode.Nil && allowNil:
		if err := d.dec.DecodeNil(); err != nil {
			return 0, d.ioFail(off, err)
		}
		return 0, nil
	}
	return 0, d.failAt(off, "found %s, want an unsigned integer", codeName(c))
}

// str reads a string (or binary holding valid UTF-8, which serde accepts for
// a String). Invalid UTF-8 is refused, as TopGun's decoder refuses it.
func (d *decoder) str() (string, error) {
	c, off, err := d.peek()
	if err != nil {
		return "", err
	}
	if !isStr(c) && !isBin(c) {
		return "", d.failAt(off, "found %s, want a string", codeName(c))
	}
	s, err := d.text(off)
	if err != nil {
		return "", err
	}
	if !utf8.ValidString(s) {
		return "", d.failAt(off, "the string is not valid UTF-8")
	}
	return s, nil
}

// name reads a string (or binary) naming a field or a variant without
// allocating: the result is valid until the next call. Names longer than the
// scratch buffer cannot be known names; they are skipped and reported as
// tooLong.
func (d *decoder) name() (b []byte, tooLong bool, err error) {
	c, off, err := d.peek()
	if err != nil {
		return nil, false, err
	}
	if !isStr(c) && !isBin(c) {
		return nil, false, d.failAt(off, "found %s, want a string", codeName(c))
	}
	n, err := d.payloadLen(off)
	if err != nil {
		return nil, false, err
	}
	if n <= len(d.scratch) {
		b = d.scratch[:n]
		if err := d.dec.ReadFull(b); err != nil {
			return nil, false, d.ioFail(off, err)
		}
		return b, false, nil
	}
	return nil, true, d.discard(off, n)
}

// The library's DecodeBytes allocates the length a str or bin header claims
// before reading (seven bytes claiming 4 GiB allocate 4 GiB), and its
// DecodeString and Skip up to 1 MiB. The decoder reads their payloads
// itself instead: the length is checked against the input first or, on a
// stream, read in bounded steps, so memory follows the bytes that arrive.

// payloadLen reads the header of a str or bin value (its code peeked at
// off) and checks the length it claims against the input.
func (d *decoder) payloadLen(off int) (int, error) {
	n, err := d.dec.DecodeBytesLen()
	if err != nil {
		return 0, d.ioFail(off, err)
	}
	return max(n, 0), d.fits(off, n)
}

// fits checks a length claimed at off against the bytes left of a slice
// input (a stream's are unknown).
func (d *decoder) fits(off, n int) error {
	if d.r != nil && n > d.r.Len() {
		return d.failAt(off, "the input ends in the middle of a value")
	}
	return nil
}

// discard skips n bytes whose length fits was checked.
func (d *decoder) discard(off, n int) error {
	if d.r != nil {
		// The msgpack decoder reads a bytes.Reader directly, unbuffered.
		if _, err := d.r.Seek(int64(n), io.SeekCurrent); err != nil {
			return d.ioFail(off, err)
		}
		return nil
	}
	for n > 0 {
		k := min(n, len(d.scratch))
		if err := d.dec.ReadFull(d.scratch[:k]); err != nil {
			return d.ioFail(off, err)
		}
		n -= k
	}
	return nil
}

// streamStep bounds what is buffered ahead of the bytes of a stream.
const streamStep = 64 << 10

// payload reads the n bytes of a value whose header payloadLen read, into
// a new slice.
func (d *decoder) payload(off, n int) ([]byte, error) {
	if d.r != nil {
		b := make([]byte, n)
		if err := d.dec.ReadFull(b); err != nil {
			return nil, d.ioFail(off, err)
		}
		return b, nil
	}
	b := make([]byte, 0, min(n, streamStep))
	for len(b) < n {
		k := min(n-len(b), streamStep)
		b = append(b, make([]byte, k)...)
		if err := d.dec.ReadFull(b[len(b)-k:]); err != nil {
			return nil, d.ioFail(off, err)
		}
	}
	return b, nil
}

// binary reads a bin (or str) value as bytes; nil when empty.
func (d *decoder) binary(off int) ([]byte, error) {
	n, err := d.payloadLen(off)
	if err != nil || n == 0 {
		return nil, err
	}
	return d.payload(off, n)
}

// text reads a str (or bin) value as a string, not checking UTF-8.
func (d *decoder) text(off int) (string, error) {
	n, err := d.payloadLen(off)
	if err != nil || n == 0 {
		return "", err
	}
	if n <= len(d.scratch) {
		if err := d.dec.ReadFull(d.scratch[:n]); err != nil {
			return "", d.ioFail(off, err)
		}
		return string(d.scratch[:n]), nil
	}
	b, err := d.payload(off, n)
	if err != nil {
		return "", err
	}
	// b is new and never written again: the string may share it.
	return unsafe.String(unsafe.SliceData(b), len(b)), nil
}

// skipPayload skips a str, bin or ext value (its code peeked at off)
// without keeping it.
func (d *decoder) skipPayload(off int) error {
	var n int
	var err error
	if c, _ := d.dec.PeekCode(); msgpcode.IsExt(c) {
		if _, n, err = d.dec.DecodeExtHeader(); err != nil {
			return d.ioFail(off, err)
		}
		err = d.fits(off, n)
	} else {
		n, err = d.payloadLen(off)
	}
	if err != nil {
		return err
	}
	return d.discard(off, n)
}

// containerLen reads a map or array header at nesting depth (the number of
// containers already open) and checks the depth limit.
func (d *decoder) containerLen(c byte, off, depth int) (int, error) {
	if depth >= d.maxDepth {
		return 0, d.failAt(off, "containers nested deeper than %d", d.maxDepth)
	}
	var n int
	var err error
	if isMap(c) {
		n, err = d.dec.DecodeMapLen()
	} else {
		n, err = d.dec.DecodeArrayLen()
	}
	if err != nil {
		return 0, d.ioFail(off, err)
	}
	return n, nil
}

// maxPrealloc bounds the elements preallocated for a decoded container.
const maxPrealloc = 1024

// capBytes bounds a preallocation for n bytes by the bytes left (every
// byte takes at least one byte of input), so a hostile length cannot
// allocate.
func (d *decoder) capBytes(n int) int {
	limit := maxPrealloc
	if d.r != nil {
		limit = d.r.Len()
	}
	return min(n, limit)
}

// capFor bounds a preallocation for n elements. An element takes at least
// one byte of input but up to a hundred in memory (an ORMapEntry, a Value),
// so bounding by the bytes left is not enough: at most maxPrealloc are
// preallocated, and a longer slice grows as its elements really decode.
func (d *decoder) capFor(n int) int {
	return min(d.capBytes(n), maxPrealloc)
}

// skip skips one value at nesting depth, without recursing deeper than the
// limit (the library's Skip would).
func (d *decoder) skip(depth int) error {
	c, off, err := d.peek()
	if err != nil {
		return err
	}
	if isMap(c) || isArray(c) {
		n, err := d.containerLen(c, off, depth)
		if err != nil {
			return err
		}
		if isMap(c) {
			n *= 2
		}
		for i := 0; i < n; i++ {
			if err := d.skip(depth + 1); err != nil {
				return err
			}
		}
		return nil
	}
	if c == 0xc1 {
		return d.failAt(off, "found %s", codeName(c))
	}
	if isStr(c) || isBin(c) || msgpcode.IsExt(c) {
		return d.skipPayload(off)
	}
	if err := d.dec.Skip(); err != nil {
		return d.ioFail(off, err)
	}
	return nil
}

// variantHead reads the head of an externally tagged enum at depth: either a
// bare variant name or index (a unit variant), or a one-entry map whose key
// names the variant and whose value is the content. It returns the index of
// the variant name in names, or the variant index as written, or -1 and the
// name (for messages) when the name is unknown; and whether content follows.
func (d *decoder) variantHead(depth int, names []string) (index int, unknown string, content bool, err error) {
	c, off, err := d.peek()
	if err != nil {
		return -1, "", false, err
	}
	switch {
	case isStr(c) || isBin(c):
		index, unknown, err = d.variantName(names)
		return index, unknown, false, err
	case isInt(c):
		index, err = d.variantIndex(c, off)
		return index, "", false, err
	case isMap(c):
		n, err := d.containerLen(c, off, depth)
		if err != nil {
			return -1, "", false, err
		}
		if n != 1 {
			return -1, "", false, d.failAt(off, "found a map with %d entries, want a one-entry map naming the variant", n)
		}
		c, off, err = d.peek()
		if err != nil {
			return -1, "", false, err
		}
		if isInt(c) {
			index, err = d.variantIndex(c, off)
			return index, "", true, err
		}
		index, unknown, err = d.variantName(names)
		return index, unknown, true, err
	}
	return -1, "", false, d.failAt(off, "found %s, want a variant (a name, or a one-entry map from the name to the content)", codeName(c))
}

// variantName reads a variant name and looks it up in names.
func (d *decoder) variantName(names []string) (int, string, error) {
	b, tooLong, err := d.name()
	if err != nil {
		return -1, "", err
	}
	if tooLong {
		return -1, "(a long name)", nil
	}
	if i := lookupBytes(names, b); i >= 0 {
		return i, "", nil
	}
	return -1, string(b), nil
}

func (d *decoder) variantIndex(c byte, off int) (int, error) {
	i, _, big, err := d.readInt(c, off)
	if err != nil {
		return -1, err
	}
	if big || i < 0 || i > math.MaxInt32 {
		return -1, d.failAt(off, "variant index %d is out of range", i)
	}
	return int(i), nil
}

func lookupBytes(names []string, name []byte) int {
	for i, n := range names {
		if n == string(name) {
			return i
		}
	}
	return -1
}

// readStruct reads a struct at depth, written as a map of field names (the
// named form) or as an array of fields in declaration order (the compact
// form). It calls field for every known field, skips unknown ones, refuses
// duplicates, and checks that the fields in required (a bit per index) were
// present.
func (d *decoder) readStruct(depth int, names []string, required uint32, field func(i, depth int) error) error {
	c, off, err := d.peek()
	if err != nil {
		return err
	}
	if !isMap(c) && !isArray(c) {
		return d.failAt(off, "found %s, want a map", codeName(c))
	}
	n, err := d.containerLen(c, off, depth)
	if err != nil {
		return err
	}
	var seen uint32
	for k := 0; k < n; k++ {
		idx := k
		if isMap(c) {
			if idx, err = d.fieldIndex(names); err != nil {
				return err
			}
		} else if k >= len(names) {
			return d.failAt(d.offset(), "the array has %d elements, want at most %d", n, len(names))
		}
		if idx < 0 {
			if err := d.skip(depth + 1); err != nil {
				return err
			}
			continue
		}
		if seen&(1<<idx) != 0 {
			return d.failAt(d.offset(), "duplicate field %q", names[idx])
		}
		seen |= 1 << idx
		if err := field(idx, depth+1); err != nil {
			return at(err, names[idx])
		}
	}
	if missing := required &^ seen; missing != 0 {
		for i := range names {
			if missing&(1<<i) != 0 {
				return d.failAt(off, "missing field %q", names[i])
			}
		}
	}
	return nil
}

// fieldIndex reads a struct field key: a name, or an index as serde allows.
// It returns -1 for a field it does not know.
func (d *decoder) fieldIndex(names []string) (int, error) {
	c, off, err := d.peek()
	if err != nil {
		return -1, err
	}
	if isInt(c) {
		i, _, big, err := d.readInt(c, off)
		if err != nil {
			return -1, err
		}
		if big || i < 0 {
			return -1, d.failAt(off, "field index %d is out of range", i)
		}
		if i >= int64(len(names)) {
			return -1, nil
		}
		return int(i), nil
	}
	name, tooLong, err := d.name()
	if err != nil || tooLong {
		return -1, err
	}
	return lookupBytes(names, name), nil
}

var (
	recordNames = []string{KindLWW: "lww", KindORMap: "orMap", KindORTombstones: "orTombstones"}
	// headNames are the names the head of stored bytes may carry: a
	// RecordValue variant, or (a legacy bare value) a Value variant.
	headNames       = append(append([]string(nil), recordNames...), typeNames[:]...)
	lwwFields       = []string{"value", "timestamp"}
	orMapFields     = []string{"records", "tombstones"}
	orTombFields    = []string{"tags"}
	entryFields     = []string{"value", "tag", "timestamp", "ttlMs"}
	timestampFields = []string{"millis", "counter", "nodeId"}
)

func (d *decoder) recordValue() (RecordValue, error) {
	idx, unknown, content, err := d.variantHead(0, headNames)
	if err != nil {
		return RecordValue{}, err
	}
	switch {
	case idx < 0:
		return RecordValue{}, d.failAt(0, "unknown variant %q, want lww, orMap or orTombstones", unknown)
	case idx >= len(recordNames):
		// A Value variant name, or an index past the RecordValue variants.
		return RecordValue{}, errBareValue
	}
	if !content {
		return RecordValue{}, d.failAt(0, "variant %s has no content", recordNames[idx])
	}
	rv := RecordValue{Kind: Kind(idx)}
	switch rv.Kind {
	case KindLWW:
		err = d.readStruct(1, lwwFields, 0b11, func(i, depth int) error {
			var err error
			if i == 0 {
				rv.LWW.Value, err = d.storedValue(depth)
			} else {
				rv.LWW.Timestamp, err = d.timestamp(depth)
			}
			return err
		})
	case KindORMap:
		err = d.readStruct(1, orMapFields, 0b01, func(i, depth int) error {
			var err error
			if i == 0 {
				rv.ORMap.Records, err = d.entries(depth)
			} else {
				rv.ORMap.Tombstones, err = d.strings(depth)
			}
			return err
		})
	case KindORTombstones:
		err = d.readStruct(1, orTombFields, 0b1, func(_, depth int) error {
			var err error
			rv.ORMap.Tombstones, err = d.strings(depth)
			return err
		})
	}
	if err != nil {
		return RecordValue{}, at(err, recordNames[idx])
	}
	return rv, nil
}

func (d *decoder) timestamp(depth int) (Timestamp, error) {
	var ts Timestamp
	err := d.readStruct(depth, timestampFields, 0b111, func(i, _ int) error {
		var err error
		switch i {
		case 0:
			ts.Millis, err = d.uintField(math.MaxUint64, false)
		case 1:
			var c uint64
			c, err = d.uintField(math.MaxUint32, false)
			ts.Counter = uint32(c)
		case 2:
			ts.NodeID, err = d.str()
		}
		return err
	})
	return ts, err
}

func (d *decoder) entries(depth int) ([]ORMapEntry, error) {
	c, off, err := d.peek()
	if err != nil {
		return nil, err
	}
	if !isArray(c) {
		return nil, d.failAt(off, "found %s, want an array", codeName(c))
	}
	n, err := d.containerLen(c, off, depth)
	if err != nil {
		return nil, err
	}
	out := make([]ORMapEntry, 0, d.capFor(n))
	for k := 0; k < n; k++ {
		var e ORMapEntry
		err := d.readStruct(depth+1, entryFields, 0b111, func(i, depth int) error {
			var err error
			switch i {
			case 0:
				e.Value, err = d.storedValue(depth)
			case 1:
				e.Tag, err = d.str()
			case 2:
				e.Timestamp, err = d.timestamp(depth)
			case 3:
				e.TTLMs, err = d.uintField(math.MaxUint64, true)
			}
			return err
		})
		if err != nil {
			return nil, atIndex(err, k)
		}
		out = append(out, e)
	}
	return out, nil
}

func (d *decoder) strings(depth int) ([]string, error) {
	c, off, err := d.peek()
	if err != nil {
		return nil, err
	}
	if !isArray(c) {
		return nil, d.failAt(off, "found %s, want an array of strings", codeName(c))
	}
	n, err := d.containerLen(c, off, depth)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, nil
	}
	out := make([]string, 0, d.capFor(n))
	for k := 0; k < n; k++ {
		s, err := d.str()
		if err != nil {
			return nil, atIndex(err, k)
		}
		out = append(out, s)
	}
	return out, nil
}

// storedValue reads TopGun's externally tagged Value at depth.
func (d *decoder) storedValue(depth int) (Value, error) {
	off := d.offset()
	idx, unknown, content, err := d.variantHead(depth, typeNames[:])
	if err != nil {
		return Value{}, err
	}
	switch {
	case idx < 0:
		return Value{}, d.failAt(off, "unknown Value variant %q", unknown)
	case idx >= len(typeNames):
		return Value{}, d.failAt(off, "unknown Value variant index %d", idx)
	}
	t := Type(idx)
	if !content {
		if t == TypeNull {
			return Value{}, nil
		}
		return Value{}, d.failAt(off, "variant %s has no content", t)
	}
	v, err := d.storedContent(t, depth+1)
	if err != nil {
		return Value{}, at(err, t.String())
	}
	return v, nil
}

// storedContent reads the content of a Value variant t at depth.
func (d *decoder) storedContent(t Type, depth int) (Value, error) {
	c, off, err := d.peek()
	if err != nil {
		return Value{}, err
	}
	switch t {
	case TypeNull:
		if c != msgpcode.Nil {
			return Value{}, d.failAt(off, "found %s, want nil", codeName(c))
		}
		if err := d.dec.DecodeNil(); err != nil {
			return Value{}, d.ioFail(off, err)
		}
		return Value{}, nil
	case TypeBool:
		if c != msgpcode.True && c != msgpcode.False {
			return Value{}, d.failAt(off, "found %s, want a boolean", codeName(c))
		}
		b, err := d.dec.DecodeBool()
		if err != nil {
			return Value{}, d.ioFail(off, err)
		}
		return BoolValue(b), nil
	case TypeInt:
		if !isInt(c) {
			return Value{}, d.failAt(off, "found %s, want an integer", codeName(c))
		}
		i, u, big, err := d.readInt(c, off)
		if err != nil {
			return Value{}, err
		}
		if big {
			return Value{}, d.failAt(off, "%d does not fit in a 64-bit signed integer", u)
		}
		return IntValue(i), nil
	case TypeFloat:
		switch {
		case isFloat(c):
			f, err := d.readFloat(off)
			if err != nil {
				return Value{}, err
			}
			return FloatValue(f), nil
		case isInt(c): // serde's f64 accepts integers
			i, u, big, err := d.readInt(c, off)
			if err != nil {
				return Value{}, err
			}
			if big {
				return FloatValue(float64(u)), nil
			}
			return FloatValue(float64(i)), nil
		}
		return Value{}, d.failAt(off, "found %s, want a number", codeName(c))
	case TypeString:
		s, err := d.str()
		if err != nil {
			return Value{}, err
		}
		return StringValue(s), nil
	case TypeBytes:
		return d.storedBytes(c, off, depth)
	case TypeArray:
		if !isArray(c) {
			return Value{}, d.failAt(off, "found %s, want an array", codeName(c))
		}
		n, err := d.containerLen(c, off, depth)
		if err != nil {
			return Value{}, err
		}
		items := make([]Value, 0, d.capFor(n))
		for k := 0; k < n; k++ {
			v, err := d.storedValue(depth + 1)
			if err != nil {
				return Value{}, atIndex(err, k)
			}
			items = append(items, v)
		}
		return ArrayValue(items...), nil
	case TypeMap:
		if !isMap(c) {
			return Value{}, d.failAt(off, "found %s, want a map", codeName(c))
		}
		n, err := d.containerLen(c, off, depth)
		if err != nil {
			return Value{}, err
		}
		fields := make([]Field, 0, d.capFor(n))
		for k := 0; k < n; k++ {
			key, err := d.str()
			if err != nil {
				return Value{}, at(err, "(key)")
			}
			v, err := d.storedValue(depth + 1)
			if err != nil {
				return Value{}, at(err, "["+strconv.Quote(key)+"]")
			}
			fields = append(fields, Field{Key: key, Value: v})
		}
		return MapValue(fields...), nil
	}
	return Value{}, d.failAt(off, "unknown Value variant %d", t)
}

// storedBytes reads the content of Bytes: an array of integers 0..255, as
// serde writes a Vec<u8>, or (leniently) msgpack binary.
func (d *decoder) storedBytes(c byte, off, depth int) (Value, error) {
	if isBin(c) {
		b, err := d.binary(off)
		if err != nil {
			return Value{}, err
		}
		return Value{typ: TypeBytes, str: string(b)}, nil
	}
	if !isArray(c) {
		return Value{}, d.failAt(off, "found %s, want an array of bytes", codeName(c))
	}
	n, err := d.containerLen(c, off, depth)
	if err != nil {
		return Value{}, err
	}
	buf := make([]byte, 0, d.capBytes(n))
	for k := 0; k < n; k++ {
		c, off, err := d.peek()
		if err != nil {
			return Value{}, err
		}
		if !isInt(c) {
			return Value{}, atIndex(d.failAt(off, "found %s, want an integer 0..255", codeName(c)), k)
		}
		i, _, big, err := d.readInt(c, off)
		if err != nil {
			return Value{}, err
		}
		if big || i < 0 || i > 255 {
			return Value{}, atIndex(d.failAt(off, "%d is not a byte (0..255)", i), k)
		}
		buf = append(buf, byte(i))
	}
	return Value{typ: TypeBytes, str: string(buf)}, nil
}
