package wire

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"sync"
	"unicode/utf8"
	"unsafe"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"

	"github.com/topgun-go/topgun/server/record"
)

// decoder reads one frame with the msgpack library's primitives. It adds
// what the library lacks for untrusted input: a nesting limit, lengths
// checked against the bytes that remain (so a header claiming 4G elements
// allocates nothing), whole-float integers, and key reads without copies.
type decoder struct {
	buf   []byte
	r     *bytes.Reader
	d     *msgpack.Decoder
	depth int
	max   int
	// budget is what the values decoded so far may still take in memory
	// (see charge); limit is what it starts from.
	budget int
	limit  int
	// internRefs counts the extensions skip met of the type the msgpack
	// library writes a repeated interned string as (the encoder's check).
	internRefs int
}

var decoderPool = sync.Pool{New: func() any {
	r := bytes.NewReader(nil)
	// bytes.Reader is an io.ByteScanner, so the library reads it directly
	// without buffering and r.Len() is exactly what is left.
	return &decoder{r: r, d: msgpack.NewDecoder(r)}
}}

// newDecoder returns a pooled decoder over b; release it with putDecoder
// once nothing decoded still points into it (decoded values never do: the
// decoder copies every string and byte slice it returns).
func newDecoder(b []byte, maxDepth, maxDecoded int) *decoder {
	d := decoderPool.Get().(*decoder)
	d.buf = b
	d.max = maxDepth
	d.limit = maxDecoded
	d.reset()
	return d
}

func putDecoder(d *decoder) {
	d.buf = nil
	d.r.Reset(nil)
	decoderPool.Put(d)
}

// maxPrealloc bounds the elements preallocated for a decoded array or map
// whose elements were not charged (see charge) before they decode. Pass 1
// checked every length against the bytes left in the frame, but one byte
// on the wire (a nil where a ClientOp belongs, a repeated key) can stand
// for a hundred bytes in memory; past this bound a slice grows only as its
// elements really decode.
const maxPrealloc = 1024

// prealloc is the capacity to preallocate for n decoded elements.
func prealloc(n int) int { return min(n, maxPrealloc) }

// What decoded values cost in memory, as charge counts it. A user value
// (but a write's record value: recordValue) costs its interface slot here
// and the record.Value it may become (record.FromWire): a one-byte nil in
// an array stands for 96 bytes. Strings and binaries add their length, boxed
// numbers, slices and maps their headers, map entries their hash-table
// slot and the key of the record.Field they become.
const (
	costValue    = 16 + int(unsafe.Sizeof(record.Value{}))
	costBox      = 8  // an int64, uint64 or float64 in an interface
	costString   = 16 // a string header in an interface
	costBytes    = 24 // a []byte header in an interface (record.Value copies the bytes once more)
	costSlice    = 24 // a []any header in an interface
	costMap      = 48 // a map header
	costMapSlot  = 40 // a slot of its hash table (key, value, control byte, the table's rounding); see mapSlots
	costFieldKey = int(unsafe.Sizeof(record.Field{}) - unsafe.Sizeof(record.Value{}))
	costClientOp = int(unsafe.Sizeof(ClientOp{}))
	costLWW      = int(unsafe.Sizeof(LWWRecord{}))
	costORRecord = int(unsafe.Sizeof(ORMapRecord{}))
	costOREntry  = int(unsafe.Sizeof(ORMapEntry{}))
	costStrSlot  = int(unsafe.Sizeof(""))
	// The value of a client's write decodes straight into the record.Value
	// the server stores (see recordValue): each value is its record.Value,
	// each map entry its record.Field, plus the length of a string, binary
	// or key (one copy).
	costRecValue = int(unsafe.Sizeof(record.Value{}))
	costRecField = int(unsafe.Sizeof(record.Field{}))
	costPtr      = 8
	// The elements of the arrays only a server sends (the client's read
	// path): each is charged when its array's header is read.
	costQueryResult = int(unsafe.Sizeof(QueryResult{}))
	costServerEvent = int(unsafe.Sizeof(ServerEvent{}))
	costLeafRecord  = int(unsafe.Sizeof(LeafRecord{}))
	costOpResult    = int(unsafe.Sizeof(OpResult{}))
	// A query's structures: a predicate node (and its allocation's size
	// class), a sort field, an aggregation.
	costPredicate   = int(unsafe.Sizeof(Predicate{})) + 16
	costSortField   = int(unsafe.Sizeof(SortField{}))
	costAggregation = int(unsafe.Sizeof(Aggregation{}))
)

// charge counts n more bytes of decoded memory against the budget
// (Limits.MaxDecodedBytes). Containers are charged for all their elements
// when their header is read, before anything is allocated for them, so a
// message over the budget is refused having allocated at most the budget.
func (d *decoder) charge(n int) error {
	d.budget -= n
	if d.budget < 0 {
		return d.overBudget()
	}
	return nil
}

// chargeEach charges n elements of each bytes, without overflowing.
func (d *decoder) chargeEach(n, each int) error {
	if n > 0 && n > d.budget/each {
		d.budget = -1
		return d.overBudget()
	}
	d.budget -= n * each
	return nil
}

func (d *decoder) overBudget() error {
	return &fieldError{kind: ErrDecodedTooLarge, reason: fmt.Sprintf(
		"decoded, it would take more than %d bytes of memory (Limits.MaxDecodedBytes)", d.limit)}
}

// decoded is the memory charged so far.
func (d *decoder) decoded() int { return d.limit - d.budget }

// reset rewinds to the start of the frame.
func (d *decoder) reset() {
	d.r.Reset(d.buf)
	d.d.Reset(d.r)
	d.depth = 0
	d.budget = d.limit
	d.internRefs = 0
}

func (d *decoder) remaining() int { return d.r.Len() }

func (d *decoder) peek() (byte, error) {
	c, err := d.d.PeekCode()
	if err != nil {
		return 0, errMalformed("truncated frame")
	}
	return c, nil
}

func (d *decoder) enter() error {
	d.depth++
	if d.depth > d.max {
		return errTooDeep(fmt.Sprintf("more than %d nested maps and arrays", d.max))
	}
	return nil
}

func (d *decoder) leave() { d.depth-- }

func isMapCode(c byte) bool {
	return msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32
}
func isArrayCode(c byte) bool {
	return msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32
}
func isUintCode(c byte) bool {
	return c <= msgpcode.PosFixedNumHigh || (c >= msgpcode.Uint8 && c <= msgpcode.Uint64)
}
func isIntCode(c byte) bool {
	return c >= msgpcode.NegFixedNumLow || (c >= msgpcode.Int8 && c <= msgpcode.Int64)
}
func isFloatCode(c byte) bool { return c == msgpcode.Float || c == msgpcode.Double }

// codeName names the kind of a MsgPack code for error messages.
func codeName(c byte) string {
	switch {
	case c == msgpcode.Nil:
		return "nil"
	case c == msgpcode.True || c == msgpcode.False:
		return "a boolean"
	case isUintCode(c) || isIntCode(c):
		return "an integer"
	case isFloatCode(c):
		return "a float"
	case msgpcode.IsString(c):
		return "a string"
	case msgpcode.IsBin(c):
		return "binary"
	case isArrayCode(c):
		return "an array"
	case isMapCode(c):
		return "a map"
	case msgpcode.IsExt(c):
		return "an extension"
	}
	return fmt.Sprintf("invalid code 0x%02x", c)
}

func wrongType(want string, c byte) error {
	return errMalformed("expected " + want + ", got " + codeName(c))
}

// mapHeader reads a map header. isNil reports a nil instead of a map.
func (d *decoder) mapHeader() (n int, isNil bool, err error) {
	c, err := d.peek()
	if err != nil {
		return 0, false, err
	}
	if c == msgpcode.Nil {
		_ = d.d.DecodeNil()
		return 0, true, nil
	}
	if !isMapCode(c) {
		return 0, false, wrongType("a map", c)
	}
	n, err = d.d.DecodeMapLen()
	if err != nil {
		return 0, false, errMalformed("truncated frame")
	}
	if n > d.remaining()/2 {
		return 0, false, errTooLarge(fmt.Sprintf("map claims %d entries but only %d bytes remain", n, d.remaining()))
	}
	return n, false, nil
}

// arrayHeader reads an array header. isNil reports a nil instead of an array.
func (d *decoder) arrayHeader() (n int, isNil bool, err error) {
	c, err := d.peek()
	if err != nil {
		return 0, false, err
	}
	if c == msgpcode.Nil {
		_ = d.d.DecodeNil()
		return 0, true, nil
	}
	if !isArrayCode(c) {
		return 0, false, wrongType("an array", c)
	}
	n, err = d.d.DecodeArrayLen()
	if err != nil {
		return 0, false, errMalformed("truncated frame")
	}
	if n > d.remaining() {
		return 0, false, errTooLarge(fmt.Sprintf("array claims %d elements but only %d bytes remain", n, d.remaining()))
	}
	return n, false, nil
}

// rawBytes reads the payload of a str or bin value (after its header) as a
// slice of the frame itself, without copying.
func (d *decoder) rawBytes() ([]byte, error) {
	n, err := d.d.DecodeBytesLen()
	if err != nil {
		return nil, errMalformed("truncated frame")
	}
	if n < 0 {
		return nil, nil
	}
	if n > d.remaining() {
		return nil, errMalformed(fmt.Sprintf("string claims %d bytes but only %d remain", n, d.remaining()))
	}
	pos := len(d.buf) - d.remaining()
	if _, err := d.r.Seek(int64(n), io.SeekCurrent); err != nil {
		return nil, errMalformed("truncated frame")
	}
	return d.buf[pos : pos+n : pos+n], nil
}

// internedStringExt is the extension type the msgpack library writes a
// repeated string of a field tagged intern as: an index into the strings
// it wrote before, which no reader of a message holds.
const internedStringExt = -128

// skipExt consumes an extension value. The library's Skip would allocate
// up to 1 MiB for the length a hostile header claims before finding the
// frame too short.
func (d *decoder) skipExt() error {
	typ, n, err := d.d.DecodeExtHeader()
	if err != nil {
		return errMalformed("truncated frame")
	}
	if typ == internedStringExt {
		d.internRefs++
	}
	if n > d.remaining() {
		return errMalformed(fmt.Sprintf("extension claims %d bytes but only %d remain", n, d.remaining()))
	}
	if _, err := d.r.Seek(int64(n), io.SeekCurrent); err != nil {
		return errMalformed("truncated frame")
	}
	return nil
}

// skip consumes one value of any kind, checking depth and lengths.
func (d *decoder) skip() error {
	c, err := d.peek()
	if err != nil {
		return err
	}
	switch {
	case isMapCode(c):
		n, _, err := d.mapHeader()
		if err != nil {
			return err
		}
		if err := d.enter(); err != nil {
			return err
		}
		for i := 0; i < 2*n; i++ {
			if err := d.skip(); err != nil {
				return err
			}
		}
		d.leave()
		return nil
	case isArrayCode(c):
		n, _, err := d.arrayHeader()
		if err != nil {
			return err
		}
		if err := d.enter(); err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			if err := d.skip(); err != nil {
				return err
			}
		}
		d.leave()
		return nil
	case msgpcode.IsString(c) || msgpcode.IsBin(c):
		_, err := d.rawBytes()
		return err
	case c == 0xc1:
		return errMalformed("invalid MsgPack code 0xc1")
	case msgpcode.IsExt(c):
		return d.skipExt()
	}
	if err := d.d.Skip(); err != nil {
		return errMalformed("truncated frame")
	}
	return nil
}

// readStruct decodes a map whose keys name fields. fn must consume the value
// of every key it is given (d.skip() for unknown ones). The key slice is only
// valid during the call. Non-string keys are skipped with their values, as
// TopGun's decoder ignores unknown fields.
func (d *decoder) readStruct(fn func(key []byte) error) error {
	return d.readStructN(nil, fn)
}

// readStructN is readStruct that first calls head, when not nil, with the
// number of entries the map holds (to charge and allocate them at once).
func (d *decoder) readStructN(head func(n int) error, fn func(key []byte) error) error {
	n, isNil, err := d.mapHeader()
	if err != nil {
		return err
	}
	if isNil {
		return errMalformed("expected a map, got nil")
	}
	if head != nil {
		if err := head(n); err != nil {
			return err
		}
	}
	if err := d.enter(); err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		c, err := d.peek()
		if err != nil {
			return err
		}
		if !msgpcode.IsString(c) {
			if err := d.skip(); err != nil {
				return err
			}
			if err := d.skip(); err != nil {
				return err
			}
			continue
		}
		key, err := d.rawBytes()
		if err != nil {
			return err
		}
		if err := fn(key); err != nil {
			return inField(string(key), err)
		}
	}
	d.leave()
	return nil
}

// readArray decodes an array, calling fn for each element index. A nil is
// treated as an empty array only when nilOK.
func (d *decoder) readArray(nilOK bool, fn func(i, n int) error) (isNil bool, err error) {
	n, isNil, err := d.arrayHeader()
	if err != nil {
		return false, err
	}
	if isNil {
		if !nilOK {
			return true, errMalformed("expected an array, got nil")
		}
		return true, nil
	}
	if err := d.enter(); err != nil {
		return false, err
	}
	for i := 0; i < n; i++ {
		if err := fn(i, n); err != nil {
			return false, inField("["+strconv.Itoa(i)+"]", err)
		}
	}
	d.leave()
	return false, nil
}

// str decodes a required string field (valid UTF-8, not nil).
func (d *decoder) str() (string, error) {
	c, err := d.peek()
	if err != nil {
		return "", err
	}
	if !msgpcode.IsString(c) {
		return "", wrongType("a string", c)
	}
	b, err := d.rawBytes()
	if err != nil {
		return "", err
	}
	if !utf8.Valid(b) {
		return "", errMalformed("string is not valid UTF-8")
	}
	if err := d.charge(len(b)); err != nil {
		return "", err
	}
	return string(b), nil
}

// optStr decodes an optional string field: nil gives ok=false.
func (d *decoder) optStr() (s string, ok bool, err error) {
	if d.isNil() {
		_ = d.d.DecodeNil()
		return "", false, nil
	}
	s, err = d.str()
	return s, err == nil, err
}

func (d *decoder) isNil() bool {
	c, err := d.d.PeekCode()
	return err == nil && c == msgpcode.Nil
}

// boolean decodes a required boolean.
func (d *decoder) boolean() (bool, error) {
	c, err := d.peek()
	if err != nil {
		return false, err
	}
	if c != msgpcode.True && c != msgpcode.False {
		return false, wrongType("a boolean", c)
	}
	v, err := d.d.DecodeBool()
	if err != nil {
		return false, errMalformed("truncated frame")
	}
	return v, nil
}

// binary decodes bin (or str) bytes into a fresh slice.
func (d *decoder) binary() ([]byte, error) {
	c, err := d.peek()
	if err != nil {
		return nil, err
	}
	if !msgpcode.IsBin(c) && !msgpcode.IsString(c) {
		return nil, wrongType("binary", c)
	}
	b, err := d.rawBytes()
	if err != nil {
		return nil, err
	}
	if err := d.charge(len(b)); err != nil {
		return nil, err
	}
	return append([]byte{}, b...), nil
}

// two64 is 2^64 as a float64 (exact).
const two64 = 18446744073709551616.0

// uint decodes an unsigned integer no larger than max. Like TopGun's
// serde_number helpers it accepts any MsgPack integer and a whole float64 or
// float32 (the TS client sends integers above 2^32 as float64) and rejects
// fractions, negatives and out-of-range values.
func (d *decoder) uint(max uint64) (uint64, error) {
	c, err := d.peek()
	if err != nil {
		return 0, err
	}
	var u uint64
	switch {
	case isUintCode(c):
		u, err = d.d.DecodeUint64()
		if err != nil {
			return 0, errMalformed("truncated frame")
		}
	case isIntCode(c):
		i, err := d.d.DecodeInt64()
		if err != nil {
			return 0, errMalformed("truncated frame")
		}
		if i < 0 {
			return 0, errMalformed(fmt.Sprintf("%d is negative; expected an unsigned integer", i))
		}
		u = uint64(i)
	case isFloatCode(c):
		f, err := d.d.DecodeFloat64()
		if err != nil {
			return 0, errMalformed("truncated frame")
		}
		if f != math.Trunc(f) {
			return 0, errMalformed(fmt.Sprintf("%v is not a whole number", f))
		}
		if f < 0 {
			return 0, errMalformed(fmt.Sprintf("%v is negative; expected an unsigned integer", f))
		}
		if f >= two64 || (max != math.MaxUint64 && f > float64(max)) {
			return 0, errMalformed(fmt.Sprintf("%v is out of range (max %d)", f, max))
		}
		return uint64(f), nil
	default:
		return 0, wrongType("an unsigned integer", c)
	}
	if u > max {
		return 0, errMalformed(fmt.Sprintf("%d is out of range (max %d)", u, max))
	}
	return u, nil
}

func (d *decoder) u64() (uint64, error) { return d.uint(math.MaxUint64) }

func (d *decoder) u32() (uint32, error) {
	u, err := d.uint(math.MaxUint32)
	return uint32(u), err
}

// optU64 decodes an optional u64: nil gives nil.
func (d *decoder) optU64() (*uint64, error) {
	if d.isNil() {
		_ = d.d.DecodeNil()
		return nil, nil
	}
	u, err := d.u64()
	if err != nil {
		return nil, err
	}
	return &u, nil
}

// optU32 decodes an optional u32: nil gives nil.
func (d *decoder) optU32() (*uint32, error) {
	if d.isNil() {
		_ = d.d.DecodeNil()
		return nil, nil
	}
	u, err := d.u32()
	if err != nil {
		return nil, err
	}
	return &u, nil
}

// stringList decodes an array of strings; nil gives nil when nilOK.
func (d *decoder) stringList(nilOK bool) ([]string, error) {
	var out []string
	isNil, err := d.readArray(nilOK, func(i, n int) error {
		if out == nil {
			if err := d.chargeEach(n, costStrSlot); err != nil {
				return err
			}
			out = make([]string, 0, n)
		}
		s, err := d.str()
		out = append(out, s)
		return err
	})
	if err != nil || isNil {
		return nil, err
	}
	if out == nil {
		out = []string{}
	}
	return out, nil
}

// hashMap decodes a {string: u32} map (Merkle buckets), charging its
// table when its header is read and each key as it is made.
func (d *decoder) hashMap() (map[string]uint32, error) {
	var out map[string]uint32
	err := d.readStructN(func(n int) error {
		if err := d.charge(costMap); err != nil {
			return err
		}
		if err := d.chargeEach(mapSlots(n), costMapSlot); err != nil {
			return err
		}
		out = make(map[string]uint32, n)
		return nil
	}, func(key []byte) error {
		if err := d.charge(heapSize(len(key), false)); err != nil {
			return err
		}
		h, err := d.u32()
		out[string(key)] = h
		return err
	})
	if out == nil {
		out = map[string]uint32{}
	}
	return out, err
}

// value decodes an arbitrary user value into the package's value model:
// nil, bool, int64 (uint64 only above MaxInt64), float64, string, []byte,
// []any and map[string]any. Non-string map keys become their decimal or
// textual form, as TopGun's server turns them into strings; MsgPack
// extensions (including timestamps) decode to nil, as TopGun stores them as
// Null. It charges the value's cost (see charge).
func (d *decoder) value() (any, error) {
	if err := d.charge(costValue); err != nil {
		return nil, err
	}
	return d.valueBody()
}

// valueBody is value without the charge of costValue, which the container
// of the value has already made.
func (d *decoder) valueBody() (any, error) {
	c, err := d.peek()
	if err != nil {
		return nil, err
	}
	switch {
	case c == msgpcode.Nil:
		_ = d.d.DecodeNil()
		return nil, nil
	case c == msgpcode.True || c == msgpcode.False:
		return d.boolean()
	case isUintCode(c):
		u, err := d.d.DecodeUint64()
		if err != nil {
			return nil, errMalformed("truncated frame")
		}
		if u > 255 { // Go boxes smaller ones without allocating
			if err := d.charge(costBox); err != nil {
				return nil, err
			}
		}
		if u <= math.MaxInt64 {
			return int64(u), nil
		}
		return u, nil
	case isIntCode(c):
		i, err := d.d.DecodeInt64()
		if err != nil {
			return nil, errMalformed("truncated frame")
		}
		if uint64(i) > 255 {
			if err := d.charge(costBox); err != nil {
				return nil, err
			}
		}
		return i, nil
	case isFloatCode(c):
		f, err := d.d.DecodeFloat64()
		if err != nil {
			return nil, errMalformed("truncated frame")
		}
		if err := d.charge(costBox); err != nil {
			return nil, err
		}
		return f, nil
	case msgpcode.IsString(c):
		b, err := d.rawBytes()
		if err != nil {
			return nil, err
		}
		// Rounded as the allocator takes it: by their length, strings
		// of 33 bytes took 1.10 times their count.
		if err := d.charge(costString + heapSize(len(b), false)); err != nil {
			return nil, err
		}
		return string(b), nil
	case msgpcode.IsBin(c):
		b, err := d.rawBytes()
		if err != nil {
			return nil, err
		}
		// Its copy here and record.Value's, each rounded.
		if err := d.charge(costBytes + 2*heapSize(len(b), false)); err != nil {
			return nil, err
		}
		return append([]byte{}, b...), nil
	case isArrayCode(c):
		var out []any
		_, err := d.readArray(false, func(i, n int) error {
			if out == nil {
				// Charged in full, the elements are allocated at once:
				// a slice grown by append would allocate several times
				// its final size. The slice of interfaces and that of the
				// record values it may become are each rounded up by the
				// allocator (whole pages above 32 KiB: 410 record values
				// took 1.25 times their length).
				if err := d.chargeSlice(n, costValue-costRecValue); err != nil {
					return err
				}
				if err := d.chargeSlice(n, costRecValue); err != nil {
					return err
				}
				if err := d.charge(costSlice); err != nil {
					return err
				}
				out = make([]any, 0, n)
			}
			v, err := d.valueBody()
			out = append(out, v)
			return err
		})
		if err != nil {
			return nil, err
		}
		if out == nil {
			if err := d.charge(costSlice); err != nil {
				return nil, err
			}
			out = []any{}
		}
		return out, nil
	case isMapCode(c):
		n, _, err := d.mapHeader()
		if err != nil {
			return nil, err
		}
		if err := d.enter(); err != nil {
			return nil, err
		}
		if err := d.chargeEach(n, costValue+costFieldKey); err != nil {
			return nil, err
		}
		if err := d.chargeEach(mapSlots(n), costMapSlot); err != nil {
			return nil, err
		}
		if err := d.charge(costMap); err != nil {
			return nil, err
		}
		out := make(map[string]any, prealloc(n))
		for i := 0; i < n; i++ {
			k, err := d.mapKey()
			if err != nil {
				return nil, err
			}
			// mapKey counted its length; it takes its size class.
			if err := d.charge(heapSize(len(k), false) - len(k)); err != nil {
				return nil, err
			}
			v, err := d.valueBody()
			if err != nil {
				return nil, inField(k, err)
			}
			out[k] = v
		}
		d.leave()
		return out, nil
	case msgpcode.IsExt(c):
		return nil, d.skipExt()
	}
	return nil, errMalformed(fmt.Sprintf("invalid MsgPack code 0x%02x", c))
}

// recordValue decodes the value of a record a client writes straight into
// the record.Value the server stores, converting as record.FromWire does
// the value model value decodes (an integer above MaxInt64 wraps, invalid
// UTF-8 becomes "", an extension Null, a map key what mapKey makes of it,
// the last of equal keys wins), so no tree of interfaces is built and then
// converted. It returns the Value in an interface, or nil for Null. Its
// limits and errors are value's; it counts what the Value takes (see
// costRecValue), about half what value and the conversion take.
func (d *decoder) recordValue() (any, error) {
	if err := d.charge(costRecValue); err != nil {
		return nil, err
	}
	v, err := d.recordBody(0)
	if err != nil {
		return nil, err
	}
	if v.IsNull() {
		d.budget += costRecValue // nil takes no box
		return nil, nil
	}
	return v, nil
}

// recordBody is recordValue for a value at the given depth of the record
// value, its own record.Value already counted by its container.
func (d *decoder) recordBody(depth int) (record.Value, error) {
	if depth > record.MaxStoredDepth {
		// FromWire makes Null of what is nested deeper. It is read as
		// value reads it, for value's errors, and counted as value
		// counts it: it is allocated before it is dropped.
		_, err := d.valueBody()
		return record.Value{}, err
	}
	c, err := d.peek()
	if err != nil {
		return record.Value{}, err
	}
	switch {
	case c == msgpcode.Nil:
		_ = d.d.DecodeNil()
		return record.Value{}, nil
	case c == msgpcode.True || c == msgpcode.False:
		b, err := d.boolean()
		return record.BoolValue(b), err
	case isUintCode(c):
		u, err := d.d.DecodeUint64()
		if err != nil {
			return record.Value{}, errMalformed("truncated frame")
		}
		return record.IntValue(int64(u)), nil // wraps above MaxInt64, as FromWire does
	case isIntCode(c):
		i, err := d.d.DecodeInt64()
		if err != nil {
			return record.Value{}, errMalformed("truncated frame")
		}
		return record.IntValue(i), nil
	case isFloatCode(c):
		f, err := d.d.DecodeFloat64() // a float32 widened
		if err != nil {
			return record.Value{}, errMalformed("truncated frame")
		}
		return record.FloatValue(f), nil
	case msgpcode.IsString(c):
		b, err := d.rawBytes()
		if err != nil {
			return record.Value{}, err
		}
		if !utf8.Valid(b) {
			return record.StringValue(""), nil
		}
		if err := d.charge(heapSize(len(b), false)); err != nil {
			return record.Value{}, err
		}
		return record.StringValue(string(b)), nil
	case msgpcode.IsBin(c):
		b, err := d.rawBytes()
		if err != nil {
			return record.Value{}, err
		}
		if err := d.charge(heapSize(len(b), false)); err != nil {
			return record.Value{}, err
		}
		return record.BytesValue(b), nil
	case isArrayCode(c):
		var items []record.Value
		_, err := d.readArray(false, func(i, n int) error {
			if items == nil {
				// Charged in full, the elements are allocated at once.
				if err := d.chargeSlice(n, costRecValue); err != nil {
					return err
				}
				items = make([]record.Value, 0, n)
			}
			v, err := d.recordBody(depth + 1)
			items = append(items, v)
			return err
		})
		if err != nil {
			return record.Value{}, err
		}
		return record.ArrayValue(items...), nil
	case isMapCode(c):
		n, _, err := d.mapHeader()
		if err != nil {
			return record.Value{}, err
		}
		if err := d.enter(); err != nil {
			return record.Value{}, err
		}
		if err := d.chargeSlice(n, costRecField); err != nil {
			return record.Value{}, err
		}
		fields := make([]record.Field, 0, n)
		for i := 0; i < n; i++ {
			key, bad, err := d.recordKey()
			if err != nil {
				return record.Value{}, err
			}
			v, err := d.recordBody(depth + 1)
			if err != nil {
				return record.Value{}, inField(key+string(bad), err)
			}
			fields = append(fields, record.Field{Key: key, Value: v})
		}
		d.leave()
		return record.MapValue(fields...), nil
	case msgpcode.IsExt(c):
		return record.Value{}, d.skipExt()
	}
	return record.Value{}, errMalformed(fmt.Sprintf("invalid MsgPack code 0x%02x", c))
}

// recordKey is mapKey for a map of a record value: the key FromWire keeps
// it as, counted as the allocator takes it (a 33-byte key takes 48). A
// string key that is not valid UTF-8 becomes "" and is not made at all
// (bad holds its bytes, for errors): made and not counted, a refused
// message's keys could allocate past the limit.
func (d *decoder) recordKey() (key string, bad []byte, err error) {
	c, err := d.peek()
	if err != nil {
		return "", nil, err
	}
	if !msgpcode.IsString(c) {
		// Its display string, always valid UTF-8 (record.DisplayKey
		// writes such a string inside it as a list of bytes), which
		// mapKey counted by its length. A short one made by DisplayKey
		// (a container's, a binary's or an extension's) keeps alive a
		// 16-byte block it shares with DisplayKey's garbage: "[]" took 16.
		if key, err = d.mapKey(); err != nil {
			return "", nil, err
		}
		n := heapSize(len(key), false)
		if isArrayCode(c) || isMapCode(c) || msgpcode.IsBin(c) || msgpcode.IsExt(c) {
			n = max(n, 16)
		}
		return key, nil, d.charge(n - len(key))
	}
	b, err := d.rawBytes()
	if err != nil {
		return "", nil, err
	}
	if !utf8.Valid(b) {
		return "", b, nil
	}
	if err := d.charge(heapSize(len(b), false)); err != nil {
		return "", nil, err
	}
	return string(b), nil, nil
}

// heapSize is the memory Go's allocator takes for an object of n bytes,
// which pointers tells whether it holds: its size class, counting the
// 8-byte header of an object holding pointers over 512 bytes, and whole
// 8 KiB pages above 32 KiB (internal/runtime/gc: SizeClassToSize,
// MinSizeForMallocHeader, MaxSmallSize). Counting a slice of record values
// by its length instead missed up to a quarter of it: 410 values took
// five 8 KiB pages for 32,800 bytes. Objects under 16 bytes without
// pointers share 16-byte blocks, as many as fit whole: a 9-byte string
// takes a block of its own (counted by their length, arrays of them took
// 1.08 times their count), a 5-byte one a third of one.
func heapSize(n int, pointers bool) int {
	if pointers && n > 512 {
		n += 8
	}
	switch {
	case n == 0:
		return 0
	case n < 16 && !pointers:
		per := 16 / n
		return (16 + per - 1) / per
	case n > 32768:
		return (n + 8191) &^ 8191
	}
	i, _ := slices.BinarySearch(sizeClasses[:], uint16(n))
	return int(sizeClasses[i])
}

// sizeClasses are the sizes of Go's small objects.
var sizeClasses = [...]uint16{0, 8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256, 288, 320, 352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280, 1408, 1536, 1792, 2048, 2304, 2688, 3072, 3200, 3456, 4096, 4864, 5376, 6144, 6528, 6784, 6912, 8192, 9472, 9728, 10240, 10880, 12288, 13568, 14336, 16384, 18432, 19072, 20480, 21760, 24576, 27264, 28672, 32768}

// chargeSlice charges a slice of n elements of each bytes holding
// pointers, as the allocator takes it (heapSize).
func (d *decoder) chargeSlice(n, each int) error {
	if n == 0 {
		return nil
	}
	if err := d.chargeEach(n, each); err != nil {
		return err
	}
	return d.charge(heapSize(n*each, true) - n*each)
}

// mapSlots is how many slots Go's hash table of n entries has: none while
// empty, one group of 8 for a small map, else room for n at 7/8 full
// rounded up to a power of two, as make with that hint allocates and as
// its tables grow (each doubles or splits when 7/8 full). Counting n slots
// instead missed up to 2.3 slots an entry: the real heap of maps of 57
// entries was 1.27 times their count.
func mapSlots(n int) int {
	switch {
	case n == 0:
		return 0
	case n <= 8:
		return 8
	}
	// In uint64: n·8 does not fit a 32-bit int for the largest frames.
	return int(1) << bits.Len64(uint64(n)*8/7-1)
}

// mapKey decodes the key of a user-value map as a string. A string key is
// kept as is; any other key becomes the display string TopGun's server
// makes of it (record.DisplayKey: "1", "0.1", "[1, 2]", "{k: v}", ...).
func (d *decoder) mapKey() (string, error) {
	c, err := d.peek()
	if err != nil {
		return "", err
	}
	switch {
	case msgpcode.IsString(c):
		b, err := d.rawBytes()
		if err != nil {
			return "", err
		}
		if err := d.charge(len(b)); err != nil {
			return "", err
		}
		return string(b), nil
	// The common non-string keys, without a detour through record (a frame
	// may hold a million of them) nor a boxed number, which would share a
	// 16-byte block with a short key and keep it alive: -1 took 16.
	case isUintCode(c):
		u, err := d.d.DecodeUint64()
		if err != nil {
			return "", errMalformed("truncated frame")
		}
		k := strconv.FormatUint(u, 10)
		return k, d.charge(len(k))
	case isIntCode(c):
		i, err := d.d.DecodeInt64()
		if err != nil {
			return "", errMalformed("truncated frame")
		}
		k := strconv.FormatInt(i, 10)
		return k, d.charge(len(k))
	case c == msgpcode.True, c == msgpcode.False:
		b, err := d.boolean()
		return strconv.FormatBool(b), err
	case c == msgpcode.Nil:
		_ = d.d.DecodeNil()
		return "nil", nil
	case c == msgpcode.Float:
		f, err := d.d.DecodeFloat32()
		if err != nil {
			return "", errMalformed("truncated frame")
		}
		k := record.FloatKey(float64(f), 32)
		return k, d.charge(len(k))
	case c == msgpcode.Double:
		f, err := d.d.DecodeFloat64()
		if err != nil {
			return "", errMalformed("truncated frame")
		}
		k := record.FloatKey(f, 64) // up to 309 digits, without exponent
		return k, d.charge(len(k))
	}
	start := len(d.buf) - d.remaining()
	if err := d.skip(); err != nil {
		return "", err
	}
	// A display string may be many times longer than its bytes ("[1, 2]";
	// 309 digits for a 9-byte float): made whole before it was counted, a
	// 2 MiB key of floats allocated 675 MiB whatever the limit.
	k, err := record.DisplayKeyMax(d.buf[start:len(d.buf)-d.remaining()], d.budget)
	if errors.Is(err, record.ErrKeyTooLong) {
		d.budget = -1
		return "", d.overBudget()
	}
	if err != nil {
		return "", err
	}
	return k, d.charge(len(k))
}

func keyString(v any) string {
	switch k := v.(type) {
	case nil:
		return "nil"
	case bool:
		return strconv.FormatBool(k)
	case int64:
		return strconv.FormatInt(k, 10)
	case uint64:
		return strconv.FormatUint(k, 10)
	case float64:
		return strconv.FormatFloat(k, 'g', -1, 64)
	case string:
		return k
	}
	return fmt.Sprint(v)
}
