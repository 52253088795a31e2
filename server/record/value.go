package record

import (
	"encoding/hex"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Type is the variant of a Value. The order is TopGun's variant order, which
// is also the variant index rmp-serde accepts in place of the variant name.
type Type uint8

// The Value variants.
const (
	TypeNull Type = iota
	TypeBool
	TypeInt
	TypeFloat
	TypeString
	TypeBytes
	TypeArray
	TypeMap
)

var typeNames = [...]string{
	TypeNull:   "Null",
	TypeBool:   "Bool",
	TypeInt:    "Int",
	TypeFloat:  "Float",
	TypeString: "String",
	TypeBytes:  "Bytes",
	TypeArray:  "Array",
	TypeMap:    "Map",
}

// String returns TopGun's variant name ("Null", "Int", ...).
func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "Type(" + strconv.Itoa(int(t)) + ")"
}

// Value is the storage-side dynamic value of a record: TopGun's Value enum
// (Null, Bool, Int(i64), Float(f64), String, Bytes, Array, Map with sorted
// string keys).
//
// The zero Value is Null. A Value is immutable once built: constructors copy
// or take ownership of their arguments as documented, and accessors that
// return slices return the Value's own storage, which must not be modified.
// Values are cheap to copy (a few words).
type Value struct {
	typ    Type
	num    uint64  // Bool (0/1), Int (int64 bits), Float (float64 bits)
	str    string  // String text, or Bytes content
	items  []Value // Array elements
	fields []Field // Map entries, sorted by Key (byte-wise), keys unique
}

// Field is one entry of a Map value.
type Field struct {
	Key   string
	Value Value
}

// NullValue returns the Null value (the same as the zero Value).
func NullValue() Value { return Value{} }

// BoolValue returns a Bool value.
func BoolValue(b bool) Value {
	v := Value{typ: TypeBool}
	if b {
		v.num = 1
	}
	return v
}

// IntValue returns an Int value.
func IntValue(i int64) Value { return Value{typ: TypeInt, num: uint64(i)} }

// FloatValue returns a Float value. NaN and infinities are kept as they are.
func FloatValue(f float64) Value { return Value{typ: TypeFloat, num: math.Float64bits(f)} }

// StringValue returns a String value. The text should be valid UTF-8:
// Encode refuses invalid UTF-8, as TopGun's own encoder cannot produce it.
func StringValue(s string) Value { return Value{typ: TypeString, str: s} }

// BytesValue returns a Bytes value holding a copy of b.
func BytesValue(b []byte) Value { return Value{typ: TypeBytes, str: string(b)} }

// ArrayValue returns an Array value. It takes ownership of items: the caller
// must not modify the slice afterwards.
func ArrayValue(items ...Value) Value {
	if len(items) == 0 {
		items = nil
	}
	return Value{typ: TypeArray, items: items}
}

// MapValue returns a Map value. It takes ownership of fields and sorts them
// by key in byte order; when a key occurs more than once the last occurrence
// wins, as when TopGun collects into its BTreeMap.
func MapValue(fields ...Field) Value {
	return Value{typ: TypeMap, fields: normalizeFields(fields)}
}

// MapValueOf returns a Map value built from m.
func MapValueOf(m map[string]Value) Value {
	fields := make([]Field, 0, len(m))
	for k, v := range m {
		fields = append(fields, Field{Key: k, Value: v})
	}
	return MapValue(fields...)
}

// normalizeFields sorts fields by key and keeps the last occurrence of each
// key. It reuses the slice.
func normalizeFields(fields []Field) []Field {
	if len(fields) == 0 {
		return nil
	}
	sorted := true
	for i := 1; i < len(fields); i++ {
		if fields[i-1].Key >= fields[i].Key {
			sorted = false
			break
		}
	}
	if sorted {
		return fields
	}
	// Not sort.SliceStable, which allocates (its swapper, about 200 bytes
	// a call): a client's write sorts one slice per map it decodes.
	slices.SortStableFunc(fields, func(a, b Field) int { return strings.Compare(a.Key, b.Key) })
	out := fields[:0]
	for i := 0; i < len(fields); i++ {
		if i+1 < len(fields) && fields[i+1].Key == fields[i].Key {
			continue // a later duplicate wins
		}
		out = append(out, fields[i])
	}
	return out
}

// Type returns the variant of v.
func (v Value) Type() Type { return v.typ }

// IsNull reports whether v is Null.
func (v Value) IsNull() bool { return v.typ == TypeNull }

// Bool returns the boolean of a Bool value, false for other variants.
func (v Value) Bool() bool { return v.typ == TypeBool && v.num != 0 }

// Int returns the integer of an Int value, 0 for other variants.
func (v Value) Int() int64 {
	if v.typ != TypeInt {
		return 0
	}
	return int64(v.num)
}

// Float returns the number of a Float value, 0 for other variants.
func (v Value) Float() float64 {
	if v.typ != TypeFloat {
		return 0
	}
	return math.Float64frombits(v.num)
}

// Text returns the text of a String value, "" for other variants.
func (v Value) Text() string {
	if v.typ != TypeString {
		return ""
	}
	return v.str
}

// Bytes returns a copy of the content of a Bytes value, nil for other
// variants.
func (v Value) Bytes() []byte {
	if v.typ != TypeBytes {
		return nil
	}
	return []byte(v.str)
}

// Len returns the number of elements of an Array, of entries of a Map, of
// bytes of a Bytes value and of bytes of a String; 0 otherwise.
func (v Value) Len() int {
	switch v.typ {
	case TypeArray:
		return len(v.items)
	case TypeMap:
		return len(v.fields)
	case TypeBytes, TypeString:
		return len(v.str)
	}
	return 0
}

// Items returns the elements of an Array value (nil otherwise). The slice is
// the Value's own storage: do not modify it.
func (v Value) Items() []Value {
	if v.typ != TypeArray {
		return nil
	}
	return v.items
}

// Fields returns the entries of a Map value sorted by key (nil otherwise).
// The slice is the Value's own storage: do not modify it.
func (v Value) Fields() []Field {
	if v.typ != TypeMap {
		return nil
	}
	return v.fields
}

// Get returns the value stored under key in a Map value.
func (v Value) Get(key string) (Value, bool) {
	if v.typ != TypeMap {
		return Value{}, false
	}
	i := sort.Search(len(v.fields), func(i int) bool { return v.fields[i].Key >= key })
	if i < len(v.fields) && v.fields[i].Key == key {
		return v.fields[i].Value, true
	}
	return Value{}, false
}

// Equal reports whether v and w are the same value: same variant and same
// content, recursively. Floats compare by their bits, so a NaN equals the
// same NaN and 0 does not equal -0 (what Encode would write is compared).
func (v Value) Equal(w Value) bool {
	if v.typ != w.typ || v.num != w.num || v.str != w.str ||
		len(v.items) != len(w.items) || len(v.fields) != len(w.fields) {
		return false
	}
	for i := range v.items {
		if !v.items[i].Equal(w.items[i]) {
			return false
		}
	}
	for i := range v.fields {
		if v.fields[i].Key != w.fields[i].Key || !v.fields[i].Value.Equal(w.fields[i].Value) {
			return false
		}
	}
	return true
}

// String returns a debugging representation such as Int(42) or
// Map{"a": String("x")}. It is not an encoding.
func (v Value) String() string {
	var b strings.Builder
	v.appendDebug(&b)
	return b.String()
}

func (v Value) appendDebug(b *strings.Builder) {
	switch v.typ {
	case TypeNull:
		b.WriteString("Null")
	case TypeBool:
		b.WriteString("Bool(")
		b.WriteString(strconv.FormatBool(v.Bool()))
		b.WriteByte(')')
	case TypeInt:
		b.WriteString("Int(")
		b.WriteString(strconv.FormatInt(v.Int(), 10))
		b.WriteByte(')')
	case TypeFloat:
		b.WriteString("Float(")
		b.WriteString(strconv.FormatFloat(v.Float(), 'g', -1, 64))
		b.WriteByte(')')
	case TypeString:
		b.WriteString("String(")
		b.WriteString(strconv.Quote(v.str))
		b.WriteByte(')')
	case TypeBytes:
		b.WriteString("Bytes(")
		b.WriteString(hex.EncodeToString([]byte(v.str)))
		b.WriteByte(')')
	case TypeArray:
		b.WriteString("Array[")
		for i, it := range v.items {
			if i > 0 {
				b.WriteString(", ")
			}
			it.appendDebug(b)
		}
		b.WriteByte(']')
	case TypeMap:
		b.WriteString("Map{")
		for i, f := range v.fields {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(strconv.Quote(f.Key))
			b.WriteString(": ")
			f.Value.appendDebug(b)
		}
		b.WriteByte('}')
	default:
		b.WriteString(v.typ.String())
	}
}
