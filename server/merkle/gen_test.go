package merkle

import (
	"math"
	"math/rand/v2"
	"strconv"

	"github.com/topgun-go/topgun/server/record"
)

// Keys chosen to hit the quirks of the client's JSON.stringify with a
// replacer list: index-like keys, typed-array properties, inherited
// Object.prototype members, and UTF-16 vs UTF-8 order ("\uffff" vs "😀").
var quirkyKeys = []string{"a", "b", "A", "0", "1", "10", "2", "01", "length", "byteLength", "BYTES_PER_ELEMENT",
	"constructor", "toString", "valueOf", "é", "😀", "\uffff", "", "a b", "quote\"", "back\\slash", "nl\n", "\x01"}

var quirkyStrings = []string{"", "x", "null", "é", "😀", "\uffff", "\u2028", "tab\t", "quote\"", "\\", "\x00\x1f", "</script>", "a|b#c"}

var quirkyFloats = []float64{0, math.Copysign(0, -1), 1, -1, 0.1, 0.2, 0.30000000000000004, 1.5, -2.5e-7, 1e-6, 1e-7, 123e-20,
	1e21, 1e20, 123456789012345680000, 1.7976931348623157e308, 5e-324, math.Inf(1), math.Inf(-1), math.NaN(),
	1 << 53, 1<<53 + 2, 9007199254740993, 1700000000000, 4294967296, 2.5, 100, 1e300, 12345.678}

var quirkyInts = []int64{0, 1, -1, 42, 1 << 31, 1 << 32, 1 << 53, 1<<53 + 1, -(1<<53 + 1), math.MaxInt64, math.MinInt64, 1700000000000}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

func genString(r *rand.Rand) string {
	if r.IntN(3) == 0 {
		rs := make([]rune, r.IntN(12))
		for i := range rs {
			switch r.IntN(4) {
			case 0:
				rs[i] = rune(0x20 + r.IntN(0x5f))
			case 1:
				rs[i] = rune(0xE000 + r.IntN(0x2000)) // high BMP
			case 2:
				rs[i] = rune(0x10000 + r.IntN(0x10000)) // astral
			default:
				rs[i] = rune(r.IntN(0x800))
			}
		}
		return string(rs)
	}
	return pick(r, quirkyStrings)
}

func genFloat(r *rand.Rand) float64 {
	switch r.IntN(4) {
	case 0:
		return pick(r, quirkyFloats)
	case 1:
		return math.Float64frombits(r.Uint64())
	case 2:
		return float64(r.IntN(2000000)) / 1000
	}
	return r.NormFloat64() * math.Pow(10, float64(r.IntN(60)-30))
}

func genValue(r *rand.Rand, depth int) record.Value {
	n := 6
	if depth < 3 {
		n = 8
	}
	switch r.IntN(n) {
	case 0:
		return record.NullValue()
	case 1:
		return record.BoolValue(r.IntN(2) == 0)
	case 2:
		if r.IntN(2) == 0 {
			return record.IntValue(pick(r, quirkyInts))
		}
		return record.IntValue(int64(r.Uint64()) >> r.IntN(64))
	case 3:
		return record.FloatValue(genFloat(r))
	case 4:
		return record.StringValue(genString(r))
	case 5:
		b := make([]byte, r.IntN(13))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		return record.BytesValue(b)
	case 6:
		items := make([]record.Value, r.IntN(12))
		for i := range items {
			items[i] = genValue(r, depth+1)
		}
		return record.ArrayValue(items...)
	default:
		fields := make([]record.Field, r.IntN(6))
		for i := range fields {
			k := pick(r, quirkyKeys)
			if r.IntN(3) == 0 {
				k = genString(r)
			}
			fields[i] = record.Field{Key: k, Value: genValue(r, depth+1)}
		}
		return record.MapValue(fields...)
	}
}

func genTimestamp(r *rand.Rand) record.Timestamp {
	ts := record.Timestamp{Millis: 1700000000000 + uint64(r.IntN(1000)), Counter: uint32(r.IntN(4)), NodeID: pick(r, []string{"node-a", "node-b", "n", "ключ", "😀"})}
	if r.IntN(10) == 0 {
		ts.Millis = r.Uint64() >> r.IntN(64)
	}
	if r.IntN(10) == 0 {
		ts.Counter = r.Uint32()
	}
	return ts
}

func genKey(r *rand.Rand) string {
	switch r.IntN(3) {
	case 0:
		return genString(r)
	case 1:
		return "user-" + strconv.Itoa(r.IntN(500))
	}
	return pick(r, quirkyKeys)
}

func genEntries(r *rand.Rand) []record.ORMapEntry {
	recs := make([]record.ORMapEntry, r.IntN(5))
	for i := range recs {
		ts := genTimestamp(r)
		tag := ts.String()
		switch r.IntN(5) {
		case 0:
			tag = genString(r)
		case 1:
			if i > 0 {
				tag = recs[r.IntN(i)].Tag // a duplicate tag
			}
		}
		recs[i] = record.ORMapEntry{Value: genValue(r, 0), Tag: tag, Timestamp: ts}
		if r.IntN(4) == 0 {
			recs[i].TTLMs = uint64(r.IntN(1e7) + 1)
			if r.IntN(5) == 0 {
				recs[i].TTLMs = r.Uint64()
			}
		}
	}
	return recs
}
