package abi

import (
	"encoding/binary"
	"math"

	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// The msgpack primitives of the Encoder and of the Decoder's hot paths work
// on the byte slice directly. Through the library, a value costs three to
// six calls that are not inlined (the code byte and each length byte come
// through io.ByteReader, an interface call), and inside wasm each costs
// 10-25 ns: a put decoded three values in about 200 ns. The Encoder writes
// the bytes the library writes (TestFastEncoding). The Decoder reads the
// common forms itself and hands every other form, and every error, to the
// library at the same position, so results and errors are the library's.

func (e *Encoder) arr(n int) {
	switch {
	case n < 16:
		e.w.b = append(e.w.b, msgpcode.FixedArrayLow|byte(n))
	case n <= math.MaxUint16:
		e.w.b = append(e.w.b, msgpcode.Array16, byte(n>>8), byte(n))
	default:
		e.w.b = binary.BigEndian.AppendUint32(append(e.w.b, msgpcode.Array32), uint32(n))
	}
}

func (e *Encoder) str(s string) {
	n := len(s)
	switch {
	case n < 32:
		e.w.b = append(e.w.b, msgpcode.FixedStrLow|byte(n))
	case n < 256:
		e.w.b = append(e.w.b, msgpcode.Str8, byte(n))
	case n <= math.MaxUint16:
		e.w.b = append(e.w.b, msgpcode.Str16, byte(n>>8), byte(n))
	default:
		e.w.b = binary.BigEndian.AppendUint32(append(e.w.b, msgpcode.Str32), uint32(n))
	}
	e.w.b = append(e.w.b, s...)
}

// bin encodes b as bin, or nil when b is nil (as the library does).
func (e *Encoder) bin(b []byte) {
	n := len(b)
	switch {
	case b == nil:
		e.w.b = append(e.w.b, msgpcode.Nil)
		return
	case n < 256:
		e.w.b = append(e.w.b, msgpcode.Bin8, byte(n))
	case n <= math.MaxUint16:
		e.w.b = append(e.w.b, msgpcode.Bin16, byte(n>>8), byte(n))
	default:
		e.w.b = binary.BigEndian.AppendUint32(append(e.w.b, msgpcode.Bin32), uint32(n))
	}
	e.w.b = append(e.w.b, b...)
}

func (e *Encoder) boolean(v bool) {
	c := msgpcode.False
	if v {
		c = msgpcode.True
	}
	e.w.b = append(e.w.b, c)
}

func (e *Encoder) uint64(v uint64) {
	switch {
	case v <= math.MaxInt8:
		e.w.b = append(e.w.b, byte(v))
	case v <= math.MaxUint8:
		e.w.b = append(e.w.b, msgpcode.Uint8, byte(v))
	case v <= math.MaxUint16:
		e.w.b = append(e.w.b, msgpcode.Uint16, byte(v>>8), byte(v))
	case v <= math.MaxUint32:
		e.w.b = binary.BigEndian.AppendUint32(append(e.w.b, msgpcode.Uint32), uint32(v))
	default:
		e.w.b = binary.BigEndian.AppendUint64(append(e.w.b, msgpcode.Uint64), v)
	}
}

func (e *Encoder) int64(v int64) {
	switch {
	case v >= 0:
		e.uint64(uint64(v))
	case v >= int64(int8(msgpcode.NegFixedNumLow)):
		e.w.b = append(e.w.b, byte(v))
	case v >= math.MinInt8:
		e.w.b = append(e.w.b, msgpcode.Int8, byte(v))
	case v >= math.MinInt16:
		e.w.b = append(e.w.b, msgpcode.Int16, byte(v>>8), byte(v))
	case v >= math.MinInt32:
		e.w.b = binary.BigEndian.AppendUint32(append(e.w.b, msgpcode.Int32), uint32(v))
	default:
		e.w.b = binary.BigEndian.AppendUint64(append(e.w.b, msgpcode.Int64), uint64(v))
	}
}

// arrayLen is msgpack's DecodeArrayLen.
func (d *Decoder) arrayLen() (int, error) {
	b, i := d.r.b, d.r.i
	if i < len(b) {
		if c := b[i]; msgpcode.IsFixedArray(c) {
			d.r.i = i + 1
			return int(c & msgpcode.FixedArrayMask), nil
		} else if c == msgpcode.Array16 && len(b)-i > 2 {
			d.r.i = i + 3
			return int(binary.BigEndian.Uint16(b[i+1:])), nil
		}
	}
	return d.dec.DecodeArrayLen()
}

// bytesLen is msgpack's DecodeBytesLen: the length of a str or bin, -1 for
// nil.
func (d *Decoder) bytesLen() (int, error) {
	b, i := d.r.b, d.r.i
	if i < len(b) {
		if c := b[i]; msgpcode.IsFixedString(c) {
			d.r.i = i + 1
			return int(c & msgpcode.FixedStrMask), nil
		} else if (c == msgpcode.Bin8 || c == msgpcode.Str8) && len(b)-i > 1 {
			d.r.i = i + 2
			return int(b[i+1]), nil
		}
	}
	return d.dec.DecodeBytesLen()
}

// int64v is msgpack's DecodeInt64.
func (d *Decoder) int64v() (int64, error) {
	b, i := d.r.b, d.r.i
	if i < len(b) {
		if c := b[i]; msgpcode.IsFixedNum(c) {
			d.r.i = i + 1
			return int64(int8(c)), nil
		} else if (c == msgpcode.Uint64 || c == msgpcode.Int64) && len(b)-i > 8 {
			d.r.i = i + 9
			return int64(binary.BigEndian.Uint64(b[i+1:])), nil
		}
	}
	return d.dec.DecodeInt64()
}

// uint64v is msgpack's DecodeUint64.
func (d *Decoder) uint64v() (uint64, error) {
	b, i := d.r.b, d.r.i
	if i < len(b) {
		if c := b[i]; msgpcode.IsFixedNum(c) {
			d.r.i = i + 1
			return uint64(int8(c)), nil
		}
	}
	return d.dec.DecodeUint64()
}

// boolv is msgpack's DecodeBool.
func (d *Decoder) boolv() (bool, error) {
	b, i := d.r.b, d.r.i
	if i < len(b) {
		if c := b[i]; c == msgpcode.True || c == msgpcode.False {
			d.r.i = i + 1
			return c == msgpcode.True, nil
		}
	}
	return d.dec.DecodeBool()
}
