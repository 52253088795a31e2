package record

import (
	"bytes"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// This file converts between stored Values and the plain msgpack values of
// TopGun's client protocol, following TopGun's server (rmpv_to_value on the
// way in, value_to_rmpv on the way out):
//
//	wire                      Value
//	nil                       Null
//	bool                      Bool
//	any integer               Int (a uint64 above MaxInt64 wraps to negative)   [lossy]
//	float32, float64          Float (float32 widened)
//	str                       String (invalid UTF-8 becomes "")                  [lossy]
//	bin                       Bytes
//	array                     Array
//	map                       Map; a non-string key becomes its display string,
//	                          duplicate keys keep the last value                  [lossy]
//	ext (any type)            Null                                               [lossy]
//
// Going out: Null→nil, Bool→bool, Int→compact integer, Float→float64,
// String→str, Bytes→bin, Array→array, Map→map with keys in sorted order.
// A Value read from the wire and written back is therefore identical except
// at the lossy points above, and except that integers always come back in
// their most compact form and float32 as float64.

// EncodeWire writes v as a plain msgpack value of the client protocol.
func EncodeWire(enc *msgpack.Encoder, v Value) error {
	return encodeWire(enc, v, 0)
}

func encodeWire(enc *msgpack.Encoder, v Value, depth int) error {
	switch v.typ {
	case TypeNull:
		return enc.EncodeNil()
	case TypeBool:
		return enc.EncodeBool(v.num != 0)
	case TypeInt:
		return enc.EncodeInt(int64(v.num))
	case TypeFloat:
		return enc.EncodeFloat64(math.Float64frombits(v.num))
	case TypeString:
		return enc.EncodeString(v.str)
	case TypeBytes:
		if err := enc.EncodeBytesLen(len(v.str)); err != nil {
			return err
		}
		_, err := enc.Writer().Write([]byte(v.str))
		return err
	}
	if depth >= MaxStoredDepth {
		return invalid("containers nested deeper than " + strconv.Itoa(MaxStoredDepth))
	}
	switch v.typ {
	case TypeArray:
		if err := enc.EncodeArrayLen(len(v.items)); err != nil {
			return err
		}
		for i := range v.items {
			if err := encodeWire(enc, v.items[i], depth+1); err != nil {
				return atIndex(err, i)
			}
		}
		return nil
	case TypeMap:
		if err := enc.EncodeMapLen(len(v.fields)); err != nil {
			return err
		}
		for i := range v.fields {
			f := &v.fields[i]
			if err := enc.EncodeString(f.Key); err != nil {
				return err
			}
			if err := encodeWire(enc, f.Value, depth+1); err != nil {
				return at(err, "["+strconv.Quote(f.Key)+"]")
			}
		}
		return nil
	}
	return invalid("unknown value type " + strconv.Itoa(int(v.typ)))
}

// AppendWire appends the plain msgpack of v to dst.
func AppendWire(dst []byte, v Value) ([]byte, error) {
	e := encoderPool.Get().(*encoder)
	e.w.b = dst
	err := EncodeWire(e.enc, v)
	out := e.w.b
	e.w.b = nil
	encoderPool.Put(e)
	if err != nil {
		return dst, err
	}
	return out, nil
}

// DecodeWire reads one plain msgpack value of the client protocol and
// converts it as TopGun's server does (see the table above). Containers
// nested deeper than MaxWireDepth are refused. Errors match ErrMalformed.
func DecodeWire(dec *msgpack.Decoder) (Value, error) {
	d := decoder{dec: dec, wire: true, maxDepth: MaxWireDepth, keyMax: math.MaxInt}
	return d.wireValue(0)
}

// UnmarshalWire decodes b, which must hold exactly one plain msgpack value.
func UnmarshalWire(b []byte) (Value, error) {
	p := getDecoder(b)
	defer putDecoder(p)
	p.wire = true
	p.maxDepth = MaxWireDepth
	v, err := p.wireValue(0)
	if err != nil {
		return Value{}, err
	}
	if p.reader.Len() != 0 {
		return Value{}, p.failAt(p.offset(), "%d unexpected bytes after the value", p.reader.Len())
	}
	return v, nil
}

func (d *decoder) wireValue(depth int) (Value, error) {
	c, off, err := d.peek()
	if err != nil {
		return Value{}, err
	}
	switch {
	case c == msgpcode.Nil:
		if err := d.dec.DecodeNil(); err != nil {
			return Value{}, d.ioFail(off, err)
		}
		return Value{}, nil
	case c == msgpcode.True || c == msgpcode.False:
		b, err := d.dec.DecodeBool()
		if err != nil {
			return Value{}, d.ioFail(off, err)
		}
		return BoolValue(b), nil
	case isInt(c):
		i, u, big, err := d.readInt(c, off)
		if err != nil {
			return Value{}, err
		}
		if big {
			i = int64(u) // wraps, as TopGun does
		}
		return IntValue(i), nil
	case isFloat(c):
		f, err := d.readFloat(off)
		if err != nil {
			return Value{}, err
		}
		return FloatValue(f), nil
	case isStr(c):
		s, err := d.text(off)
		if err != nil {
			return Value{}, err
		}
		if !utf8.ValidString(s) {
			s = ""
		}
		return StringValue(s), nil
	case isBin(c):
		b, err := d.binary(off)
		if err != nil {
			return Value{}, err
		}
		return Value{typ: TypeBytes, str: string(b)}, nil
	case isArray(c):
		n, err := d.containerLen(c, off, depth)
		if err != nil {
			return Value{}, err
		}
		items := make([]Value, 0, d.capFor(n))
		for k := 0; k < n; k++ {
			v, err := d.wireValue(depth + 1)
			if err != nil {
				return Value{}, atIndex(err, k)
			}
			items = append(items, v)
		}
		return ArrayValue(items...), nil
	case isMap(c):
		n, err := d.containerLen(c, off, depth)
		if err != nil {
			return Value{}, err
		}
		fields := make([]Field, 0, d.capFor(n))
		for k := 0; k < n; k++ {
			key, err := d.wireKey(depth + 1)
			if err != nil {
				return Value{}, at(err, "(key)")
			}
			v, err := d.wireValue(depth + 1)
			if err != nil {
				return Value{}, at(err, "["+strconv.Quote(key)+"]")
			}
			fields = append(fields, Field{Key: key, Value: v})
		}
		return MapValue(fields...), nil
	case msgpcode.IsExt(c):
		if err := d.skipPayload(off); err != nil {
			return Value{}, err
		}
		return Value{}, nil
	}
	return Value{}, d.failAt(off, "found %s", codeName(c))
}

// wireKey reads a map key: a string as is (invalid UTF-8 becomes ""), any
// other value as its display string.
func (d *decoder) wireKey(depth int) (string, error) {
	c, off, err := d.peek()
	if err != nil {
		return "", err
	}
	if isStr(c) {
		s, err := d.text(off)
		if err != nil {
			return "", err
		}
		if !utf8.ValidString(s) {
			s = ""
		}
		return s, nil
	}
	var b strings.Builder
	if err := d.display(&b, depth); err != nil {
		return "", err
	}
	return b.String(), nil
}

// displayWriter is what display writes to: a strings.Builder, or a
// lenCounter measuring the string first.
type displayWriter interface {
	WriteString(s string) (int, error)
	WriteByte(c byte) error
	Write(p []byte) (int, error)
	Len() int
}

// lenCounter counts what is written to it.
type lenCounter struct{ n int }

func (c *lenCounter) WriteString(s string) (int, error) { c.n += len(s); return len(s), nil }
func (c *lenCounter) WriteByte(byte) error              { c.n++; return nil }
func (c *lenCounter) Write(p []byte) (int, error)       { c.n += len(p); return len(p), nil }
func (c *lenCounter) Len() int                          { return c.n }

// room refuses (ErrKeyTooLong) a display string that would pass keyMax
// with n bytes more.
func (d *decoder) room(b displayWriter, n int) error {
	if b.Len() > d.keyMax-n {
		return ErrKeyTooLong
	}
	return nil
}

// display writes the next value the way TopGun's server turns a non-string
// map key into a string (rmpv's Display): integers in decimal, floats in
// Rust's shortest form without exponent ("1", "0.1", "inf", "NaN"), "true",
// "nil", strings in double quotes, binary and arrays as "[a, b]", maps as
// "{k: v}", extensions as "[type, [bytes]]".
func (d *decoder) display(b displayWriter, depth int) error {
	if err := d.room(b, 0); err != nil {
		return err
	}
	c, off, err := d.peek()
	if err != nil {
		return err
	}
	switch {
	case c == msgpcode.Nil:
		if err := d.dec.DecodeNil(); err != nil {
			return d.ioFail(off, err)
		}
		b.WriteString("nil")
	case c == msgpcode.True || c == msgpcode.False:
		v, err := d.dec.DecodeBool()
		if err != nil {
			return d.ioFail(off, err)
		}
		b.WriteString(strconv.FormatBool(v))
	case isInt(c):
		i, u, big, err := d.readInt(c, off)
		if err != nil {
			return err
		}
		if big {
			b.WriteString(strconv.FormatUint(u, 10))
		} else {
			b.WriteString(strconv.FormatInt(i, 10))
		}
	case c == msgpcode.Float:
		f, err := d.dec.DecodeFloat32()
		if err != nil {
			return d.ioFail(off, err)
		}
		d.floatBuf = writeRustFloat(b, d.floatBuf, float64(f), 32)
	case c == msgpcode.Double:
		f, err := d.readFloat(off)
		if err != nil {
			return err
		}
		d.floatBuf = writeRustFloat(b, d.floatBuf, f, 64)
	case isStr(c):
		s, err := d.text(off)
		if err != nil {
			return err
		}
		if err := d.room(b, len(s)); err != nil {
			return err
		}
		if utf8.ValidString(s) {
			b.WriteByte('"')
			b.WriteString(s)
			b.WriteByte('"')
		} else {
			writeByteList(b, []byte(s))
		}
	case isBin(c):
		v, err := d.binary(off)
		if err != nil {
			return err
		}
		if err := d.room(b, 2*len(v)); err != nil {
			return err
		}
		writeByteList(b, v)
	case isArray(c), isMap(c):
		n, err := d.containerLen(c, off, depth)
		if err != nil {
			return err
		}
		open, close := "[", "]"
		if isMap(c) {
			open, close = "{", "}"
		}
		b.WriteString(open)
		for k := 0; k < n; k++ {
			if k > 0 {
				b.WriteString(", ")
			}
			if err := d.display(b, depth+1); err != nil {
				return err
			}
			if isMap(c) {
				b.WriteString(": ")
				if err := d.display(b, depth+1); err != nil {
					return err
				}
			}
		}
		b.WriteString(close)
	case msgpcode.IsExt(c):
		typ, n, err := d.dec.DecodeExtHeader()
		if err != nil {
			return d.ioFail(off, err)
		}
		data := make([]byte, 0, d.capBytes(n))
		for len(data) < n {
			chunk := make([]byte, min(n-len(data), 1<<16))
			if err := d.dec.ReadFull(chunk); err != nil {
				return d.ioFail(off, err)
			}
			data = append(data, chunk...)
		}
		if err := d.room(b, 2*len(data)); err != nil {
			return err
		}
		b.WriteByte('[')
		b.WriteString(strconv.Itoa(int(typ)))
		b.WriteString(", ")
		writeByteList(b, data)
		b.WriteByte(']')
	default:
		return d.failAt(off, "found %s", codeName(c))
	}
	return nil
}

func writeByteList(b displayWriter, p []byte) {
	b.WriteByte('[')
	for i, x := range p {
		if i > 0 {
			b.WriteString(", ")
		}
		// Digit by digit: strconv.Itoa makes a string for each byte over
		// 99, 8 bytes of garbage per byte of a key, twice (measured, then
		// made).
		if x >= 100 {
			b.WriteByte('0' + x/100)
		}
		if x >= 10 {
			b.WriteByte('0' + x/10%10)
		}
		b.WriteByte('0' + x%10)
	}
	b.WriteByte(']')
}

// FloatKey returns the string TopGun's server makes of a map key that is
// a float of the given width (32 or 64): Rust's Display, the shortest
// decimal that reads back, never in exponent form ("0.1", "1e21" as
// "1000000000000000000000", "NaN", "inf").
func FloatKey(f float64, bits int) string { return rustFloat(f, bits) }

// rustFloat formats f as Rust's Display does for f32/f64: the shortest
// decimal that reads back, never in exponent form.
func rustFloat(f float64, bits int) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	return strconv.FormatFloat(f, 'f', -1, bits)
}

// writeRustFloat writes rustFloat(f, bits) to b through buf, which it
// returns for reuse: a key of many floats (up to 309 digits each) is
// displayed twice (measured, then made) without a string per float.
func writeRustFloat(b displayWriter, buf []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		b.WriteString("NaN")
	case math.IsInf(f, 1):
		b.WriteString("inf")
	case math.IsInf(f, -1):
		b.WriteString("-inf")
	default:
		buf = strconv.AppendFloat(buf[:0], f, 'f', -1, bits)
		b.Write(buf)
	}
	return buf
}

// FromWire converts a Go value holding a decoded wire value — the types the
// msgpack package's DecodeInterface produces (nil, bool, the integer types,
// float32, float64, string, []byte, []any, map[string]any, map[any]any,
// time.Time for the timestamp extension) — into a Value, following the table
// above. A Value passes through. Any other type, and anything nested deeper
// than MaxStoredDepth, becomes Null (as an extension does).
func FromWire(x any) Value {
	return fromWire(x, 0)
}

func fromWire(x any, depth int) Value {
	if depth > MaxStoredDepth {
		return Value{}
	}
	switch t := x.(type) {
	case nil:
		return Value{}
	case Value:
		return t
	case bool:
		return BoolValue(t)
	case int:
		return IntValue(int64(t))
	case int8:
		return IntValue(int64(t))
	case int16:
		return IntValue(int64(t))
	case int32:
		return IntValue(int64(t))
	case int64:
		return IntValue(t)
	case uint:
		return IntValue(int64(t))
	case uint8:
		return IntValue(int64(t))
	case uint16:
		return IntValue(int64(t))
	case uint32:
		return IntValue(int64(t))
	case uint64:
		return IntValue(int64(t)) // wraps above MaxInt64, as TopGun does
	case float32:
		return FloatValue(float64(t))
	case float64:
		return FloatValue(t)
	case string:
		if !utf8.ValidString(t) {
			t = ""
		}
		return StringValue(t)
	case []byte:
		return BytesValue(t)
	case []any:
		items := make([]Value, len(t))
		for i, it := range t {
			items[i] = fromWire(it, depth+1)
		}
		return ArrayValue(items...)
	case map[string]any:
		fields := make([]Field, 0, len(t))
		for k, v := range t {
			if !utf8.ValidString(k) {
				k = ""
			}
			fields = append(fields, Field{Key: k, Value: fromWire(v, depth+1)})
		}
		return MapValue(fields...)
	case map[any]any:
		fields := make([]Field, 0, len(t))
		for k, v := range t {
			fields = append(fields, Field{Key: displayGo(k), Value: fromWire(v, depth+1)})
		}
		return MapValue(fields...)
	case time.Time:
		return Value{} // the timestamp extension: an ext becomes Null
	}
	return Value{}
}

// DisplayKey returns the string TopGun's server makes of a user-value map
// key that is not a string, given its msgpack encoding raw (exactly one
// value): rmpv's Display, as DecodeWire converts keys ("1", "0.1", "nil",
// "[1, 2]", "{k: v}", "[type, [bytes]]").
func DisplayKey(raw []byte) (string, error) { return DisplayKeyMax(raw, math.MaxInt) }

// DisplayKeyMax is DisplayKey refusing (ErrKeyTooLong) a key whose display
// string would pass max bytes, having allocated none of it: a display
// string can be 35 times its encoding (a float64 1e308 writes 309 digits),
// so a decoder bounding memory cannot make it before counting it.
func DisplayKeyMax(raw []byte, max int) (string, error) {
	// Measured first, then written into a buffer of its size: grown as it
	// is written, a long one left four times its size of garbage.
	var n lenCounter
	if err := displayKey(raw, max, &n); err != nil {
		return "", err
	}
	if n.n > max {
		// display stops early once past max, but the last thing it
		// wrote (a float's digits, a binary's list) can pass it.
		return "", ErrKeyTooLong
	}
	var b strings.Builder
	b.Grow(n.n)
	if err := displayKey(raw, max, &b); err != nil {
		return "", err
	}
	return b.String(), nil
}

func displayKey(raw []byte, max int, w displayWriter) error {
	p := getDecoder(raw)
	defer putDecoder(p)
	p.wire = true
	p.maxDepth = MaxWireDepth
	p.keyMax = max
	if err := p.display(w, 0); err != nil {
		return err
	}
	if p.reader.Len() != 0 {
		return p.failAt(p.offset(), "%d unexpected bytes after the key", p.reader.Len())
	}
	return nil
}

// displayGo is display for a map key already decoded into a Go value. Keys
// that collide after conversion keep an arbitrary one of their values (Go
// maps have no order); DecodeWire keeps the last in stream order.
func displayGo(k any) string {
	switch t := k.(type) {
	case string:
		if !utf8.ValidString(t) {
			return ""
		}
		return t
	case nil:
		return "nil"
	case bool:
		return strconv.FormatBool(t)
	case float32:
		return rustFloat(float64(t), 32)
	case float64:
		return rustFloat(t, 64)
	case []byte:
		var b strings.Builder
		writeByteList(&b, t)
		return b.String()
	}
	rv := reflect.ValueOf(k)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(rv.Int(), 10)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.FormatUint(rv.Uint(), 10)
	}
	// Compound keys: re-encode and display the msgpack, as the stream path does.
	var buf bytes.Buffer
	if err := msgpack.NewEncoder(&buf).Encode(k); err != nil {
		return ""
	}
	p := getDecoder(buf.Bytes())
	defer putDecoder(p)
	p.wire = true
	p.maxDepth = MaxWireDepth
	var b strings.Builder
	if err := p.display(&b, 0); err != nil {
		return ""
	}
	return b.String()
}

// ToWire returns v as plain Go values for a generic msgpack encoder: nil,
// bool, int64, float64, string, []byte, []any and map[string]any. A Go map
// loses the key order: use EncodeWire where the order of the bytes matters.
func (v Value) ToWire() any {
	switch v.typ {
	case TypeBool:
		return v.num != 0
	case TypeInt:
		return int64(v.num)
	case TypeFloat:
		return math.Float64frombits(v.num)
	case TypeString:
		return v.str
	case TypeBytes:
		return []byte(v.str)
	case TypeArray:
		out := make([]any, len(v.items))
		for i := range v.items {
			out[i] = v.items[i].ToWire()
		}
		return out
	case TypeMap:
		out := make(map[string]any, len(v.fields))
		for i := range v.fields {
			out[v.fields[i].Key] = v.fields[i].Value.ToWire()
		}
		return out
	}
	return nil
}

// EncodeMsgpack writes v in its plain wire form (EncodeWire), so a Value can
// sit in protocol message structs encoded by the msgpack package. The stored
// form is written by Encode, never by this method.
func (v Value) EncodeMsgpack(enc *msgpack.Encoder) error {
	return EncodeWire(enc, v)
}

// DecodeMsgpack reads v from its plain wire form (DecodeWire).
func (v *Value) DecodeMsgpack(dec *msgpack.Decoder) error {
	x, err := DecodeWire(dec)
	if err != nil {
		return err
	}
	*v = x
	return nil
}
