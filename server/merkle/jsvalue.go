package merkle

import (
	"math"
	"sort"
	"strconv"
	"unicode/utf8"

	"github.com/topgun-go/topgun/server/record"
)

// This file reproduces, for a record.Value, the text the TypeScript client
// hashes for an OR-Map record value (stringifyValue in core/src/ORMapMerkle.ts):
//
//	null, undefined → String(v)
//	object          → JSON.stringify(v, Object.keys(v).sort())
//	anything else   → String(v)
//
// evaluated on the JavaScript value the client holds after decoding the value
// from the wire (record.EncodeWire): Null → null, Bool → boolean, Int and
// Float → number, String → string, Bytes → Uint8Array, Array → Array,
// Map → plain object.
//
// The replacer array of JSON.stringify is a property allow-list applied at
// every nesting level, in the order of the list, so nested objects keep only
// the keys that the top-level object (or, for a top-level array, its index
// strings "0", "1", …) also has. Arrays themselves ignore the list.

// appendJSNumber appends String(f) as JavaScript formats a number
// (Number::toString): the shortest digits that read back, in plain notation
// for exponents -7 < e < 21 and in exponent notation ("1e+21", "1.5e-7")
// outside; NaN, Infinity, -Infinity; -0 prints as "0".
func appendJSNumber(dst []byte, f float64) []byte {
	switch {
	case f != f:
		return append(dst, "NaN"...)
	case f == 0:
		return append(dst, '0')
	case math.IsInf(f, 1):
		return append(dst, "Infinity"...)
	case math.IsInf(f, -1):
		return append(dst, "-Infinity"...)
	}
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return strconv.AppendInt(dst, int64(f), 10)
	}
	if f < 0 {
		dst = append(dst, '-')
		f = -f
	}
	var buf [32]byte
	s := strconv.AppendFloat(buf[:0], f, 'e', -1, 64) // d.ddde±xx
	ePos := len(s) - 1
	for s[ePos] != 'e' {
		ePos--
	}
	exp, _ := strconv.Atoi(string(s[ePos+1:]))
	var digits [24]byte
	k := 0
	for _, ch := range s[:ePos] {
		if ch != '.' {
			digits[k] = ch
			k++
		}
	}
	d := digits[:k]
	n := exp + 1 // value = 0.d × 10^n
	switch {
	case k <= n && n <= 21:
		dst = append(dst, d...)
		for i := k; i < n; i++ {
			dst = append(dst, '0')
		}
	case 0 < n && n <= 21:
		dst = append(dst, d[:n]...)
		dst = append(dst, '.')
		dst = append(dst, d[n:]...)
	case -6 < n && n <= 0:
		dst = append(dst, "0."...)
		for i := 0; i < -n; i++ {
			dst = append(dst, '0')
		}
		dst = append(dst, d...)
	default:
		dst = append(dst, d[0])
		if k > 1 {
			dst = append(dst, '.')
			dst = append(dst, d[1:]...)
		}
		dst = append(dst, 'e')
		if n-1 >= 0 {
			dst = append(dst, '+')
		}
		dst = strconv.AppendInt(dst, int64(n-1), 10)
	}
	return dst
}

// appendJSUint appends an unsigned integer as the client prints a number
// holding it (exact up to 2^53, rounded to float64 beyond).
func appendJSUint(dst []byte, u uint64) []byte {
	if u <= 1<<53 {
		return strconv.AppendUint(dst, u, 10)
	}
	return appendJSNumber(dst, float64(u))
}

// appendJSONString appends s quoted as JSON.stringify quotes it.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			dst = append(dst, c)
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			dst = utf8.AppendRune(dst, r)
			i += size
			continue
		}
		switch c {
		case '"':
			dst = append(dst, '\\', '"')
		case '\\':
			dst = append(dst, '\\', '\\')
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', Digits[c>>4], Digits[c&15])
		}
		i++
	}
	return append(dst, '"')
}

// compareUTF16 compares strings in the order of their UTF-16 code units, the
// order of JavaScript's default sort (it differs from byte order only
// between characters above U+FFFF and characters U+E000..U+FFFF).
func compareUTF16(a, b string) int {
	n := min(len(a), len(b))
	i := 0
	for i < n && a[i] == b[i] {
		i++
	}
	if i == n {
		switch {
		case len(a) < len(b):
			return -1
		case len(a) > len(b):
			return 1
		}
		return 0
	}
	if a[i] < utf8.RuneSelf && b[i] < utf8.RuneSelf {
		if a[i] < b[i] {
			return -1
		}
		return 1
	}
	// Back up to the start of the differing character (the prefix is shared).
	for i > 0 && !utf8.RuneStart(a[i]) {
		i--
	}
	ra, _ := utf8.DecodeRuneInString(a[i:])
	rb, _ := utf8.DecodeRuneInString(b[i:])
	ua, ub := firstUnit(ra), firstUnit(rb)
	switch {
	case ua < ub:
		return -1
	case ua > ub:
		return 1
	case ra < rb:
		return -1
	case ra > rb:
		return 1
	}
	return 0
}

func firstUnit(r rune) rune {
	if r >= 0x10000 {
		return 0xD800 + ((r - 0x10000) >> 10)
	}
	return r
}

func sortUTF16(ss []string) {
	sort.Slice(ss, func(i, j int) bool { return compareUTF16(ss[i], ss[j]) < 0 })
}

// appendStringifyValue appends stringifyValue(v) of the TypeScript client.
func appendStringifyValue(dst []byte, v record.Value) []byte {
	switch v.Type() {
	case record.TypeNull:
		return append(dst, "null"...)
	case record.TypeBool:
		return strconv.AppendBool(dst, v.Bool())
	case record.TypeInt:
		return appendJSNumber(dst, float64(v.Int()))
	case record.TypeFloat:
		return appendJSNumber(dst, v.Float())
	case record.TypeString:
		return append(dst, v.Text()...)
	case record.TypeMap:
		fields := v.Fields()
		list := make([]string, len(fields))
		for i, f := range fields {
			list[i] = f.Key
		}
		sortUTF16(list)
		return appendJSON(dst, v, list)
	default: // Bytes (a Uint8Array) and Array: the list is their index strings
		list := indexList(v.Len())
		return appendJSON(dst, v, list)
	}
}

// indexList returns "0".."n-1" sorted as strings.
func indexList(n int) []string {
	list := make([]string, n)
	for i := range list {
		list[i] = strconv.Itoa(i)
	}
	sort.Strings(list) // ASCII digits: byte order is UTF-16 order
	return list
}

// appendJSON appends JSON.stringify(v) with the property list list.
func appendJSON(dst []byte, v record.Value, list []string) []byte {
	switch v.Type() {
	case record.TypeNull:
		return append(dst, "null"...)
	case record.TypeBool:
		return strconv.AppendBool(dst, v.Bool())
	case record.TypeInt:
		return appendJSNumber(dst, float64(v.Int()))
	case record.TypeFloat:
		f := v.Float()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return append(dst, "null"...)
		}
		return appendJSNumber(dst, f)
	case record.TypeString:
		return appendJSONString(dst, v.Text())
	case record.TypeArray:
		dst = append(dst, '[')
		for i, it := range v.Items() {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSON(dst, it, list)
		}
		return append(dst, ']')
	case record.TypeBytes:
		b := v.Bytes()
		dst = append(dst, '{')
		first := true
		for _, k := range list {
			var x int
			if i, ok := arrayIndex(k); ok && i < len(b) {
				x = int(b[i])
			} else if k == "length" || k == "byteLength" {
				x = len(b)
			} else if k == "BYTES_PER_ELEMENT" {
				x = 1
			} else {
				continue
			}
			if !first {
				dst = append(dst, ',')
			}
			first = false
			dst = appendJSONString(dst, k)
			dst = append(dst, ':')
			dst = strconv.AppendInt(dst, int64(x), 10)
		}
		return append(dst, '}')
	default: // Map
		dst = append(dst, '{')
		first := true
		for _, k := range list {
			x, ok := v.Get(k)
			if !ok {
				continue
			}
			if !first {
				dst = append(dst, ',')
			}
			first = false
			dst = appendJSONString(dst, k)
			dst = append(dst, ':')
			dst = appendJSON(dst, x, list)
		}
		return append(dst, '}')
	}
}

// arrayIndex parses a canonical array index string ("0", "17"; not "01").
func arrayIndex(k string) (int, bool) {
	if k == "" || len(k) > 9 || (len(k) > 1 && k[0] == '0') {
		return 0, false
	}
	n := 0
	for i := 0; i < len(k); i++ {
		if k[i] < '0' || k[i] > '9' {
			return 0, false
		}
		n = n*10 + int(k[i]-'0')
	}
	return n, true
}
