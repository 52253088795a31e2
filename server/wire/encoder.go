package wire

import (
	"bytes"
	"encoding"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/topgun-go/topgun/server/record"
)

// encoder writes one message with the msgpack library. Writes go to a
// bytes.Buffer and cannot fail, so the only errors are user values that
// cannot be encoded; they are kept sticky in err so message encoders read
// as a flat list of fields.
type encoder struct {
	buf   bytes.Buffer
	e     *msgpack.Encoder
	err   error
	depth int
	max   int
	// maxBytes, when positive, is the frame limit the message must fit:
	// encoding stops once it cannot, so that a value of shared parts (a
	// DAG, written once per path to each part) fails at once rather than
	// after time exponential in its depth.
	maxBytes int
	// omitAbsentTTL: OR-Map records without a TTL are written without a
	// ttlMs field (OmitAbsentORTTL).
	omitAbsentTTL bool
}

var encoderPool = sync.Pool{New: func() any {
	e := &encoder{}
	e.e = msgpack.NewEncoder(&e.buf)
	e.e.UseCompactInts(true)
	e.e.SetSortMapKeys(true)
	return e
}}

func getEncoder(maxDepth int) *encoder {
	e := encoderPool.Get().(*encoder)
	e.buf.Reset()
	e.err = nil
	e.depth = 0
	e.max = maxDepth
	e.maxBytes = 0
	e.omitAbsentTTL = false
	return e
}

func putEncoder(e *encoder) {
	if e.buf.Cap() > 1<<20 {
		return // do not keep huge buffers alive
	}
	encoderPool.Put(e)
}

// bytes returns a copy of what was written.
func (e *encoder) bytes() []byte {
	return append([]byte(nil), e.buf.Bytes()...)
}

func (e *encoder) fail(format string, args ...any) {
	if e.err == nil {
		e.err = fmt.Errorf(format, args...)
	}
}

func (e *encoder) mapLen(n int) {
	if e.err == nil {
		e.err = e.e.EncodeMapLen(n)
	}
}

func (e *encoder) arrayLen(n int) {
	if e.err == nil {
		e.err = e.e.EncodeArrayLen(n)
	}
}

func (e *encoder) str(s string) {
	if e.err == nil {
		e.err = e.e.EncodeString(s)
	}
}

// kv writes a string key and a string value.
func (e *encoder) kv(k, v string) {
	e.str(k)
	e.str(v)
}

func (e *encoder) uint(u uint64) {
	if e.err == nil {
		e.err = e.e.EncodeUint(u)
	}
}

func (e *encoder) boolean(b bool) {
	if e.err == nil {
		e.err = e.e.EncodeBool(b)
	}
}

func (e *encoder) null() {
	if e.err == nil {
		e.err = e.e.EncodeNil()
	}
}

// bin writes b as MsgPack bin (an empty bin for nil; the library would
// write nil).
func (e *encoder) bin(b []byte) {
	if b == nil {
		b = []byte{}
	}
	if e.err == nil {
		e.err = e.e.EncodeBytes(b)
	}
}

func (e *encoder) strings(ss []string) {
	e.arrayLen(len(ss))
	for _, s := range ss {
		e.str(s)
	}
}

// hashMap writes a {string: u32} map with sorted keys.
func (e *encoder) hashMap(m map[string]uint32) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	e.mapLen(len(keys))
	for _, k := range keys {
		e.str(k)
		e.uint(uint64(m[k]))
	}
}

// count returns the number of true conditions (for map lengths).
func count(conds ...bool) int {
	n := 0
	for _, c := range conds {
		if c {
			n++
		}
	}
	return n
}

func (e *encoder) enter() bool {
	e.depth++
	if e.depth > e.max {
		e.fail("value nested deeper than %d levels (or cyclic)", e.max)
		return false
	}
	// Every value but a pointer writes a byte at least, so this bounds
	// the values visited by the frame limit (times the depth).
	if e.maxBytes > 0 && e.buf.Len() > e.maxBytes {
		e.tooLarge("")
		return false
	}
	return true
}

// tooLarge fails the message as over the frame limit, naming the Go type
// whose value made it so when there is one.
func (e *encoder) tooLarge(goType string) {
	if goType != "" {
		goType = ": a user value of Go type " + goType + " has more parts than the frame has bytes left"
	}
	if e.err == nil {
		e.err = fmt.Errorf("%w: it cannot fit the %d-byte frame limit (Limits.MaxMessageBytes)%s", ErrTooLarge, e.maxBytes, goType)
	}
}

func (e *encoder) leave() { e.depth-- }

// value writes an arbitrary user value. The package's own value model
// (what the decoder produces) is written directly; other Go values are
// written through reflection for slices, maps and pointers, and through
// the msgpack library for the rest (structs, time.Time, ...). Map keys are
// written sorted, as TopGun's server writes its BTreeMap values.
func (e *encoder) value(v any) {
	if e.err != nil {
		return
	}
	switch x := v.(type) {
	case nil:
		e.null()
	case bool:
		e.boolean(x)
	case string:
		e.str(x)
	case int64:
		e.err = e.e.EncodeInt(x)
	case uint64:
		e.uint(x)
	case float64:
		e.err = e.e.EncodeFloat64(x)
	case int:
		e.err = e.e.EncodeInt(int64(x))
	case int8:
		e.err = e.e.EncodeInt(int64(x))
	case int16:
		e.err = e.e.EncodeInt(int64(x))
	case int32:
		e.err = e.e.EncodeInt(int64(x))
	case uint:
		e.uint(uint64(x))
	case uint8:
		e.uint(uint64(x))
	case uint16:
		e.uint(uint64(x))
	case uint32:
		e.uint(uint64(x))
	case float32:
		e.err = e.e.EncodeFloat64(float64(x))
	case []byte:
		e.bin(x)
	case record.Value:
		e.recordValue(x)
	case []any:
		if !e.enter() {
			return
		}
		e.arrayLen(len(x))
		for _, el := range x {
			e.value(el)
		}
		e.leave()
	case map[string]any:
		if !e.enter() {
			return
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		e.mapLen(len(keys))
		for _, k := range keys {
			e.str(k)
			e.value(x[k])
		}
		e.leave()
	default:
		e.reflectValue(reflect.ValueOf(v))
	}
}

// recordValue writes a record.Value (the value of a decoded client write)
// as its wire form, the one ToWire gives (record.EncodeWire).
func (e *encoder) recordValue(v record.Value) {
	if e.err == nil {
		e.err = record.EncodeWire(e.e, v)
	}
}

func (e *encoder) reflectValue(rv reflect.Value) {
	switch rv.Kind() {
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			e.null()
			return
		}
		if !e.enter() {
			return
		}
		e.value(rv.Elem().Interface())
		e.leave()
	case reflect.Slice, reflect.Array:
		if rv.Kind() == reflect.Slice && rv.IsNil() {
			e.null()
			return
		}
		if !e.enter() {
			return
		}
		e.arrayLen(rv.Len())
		for i := 0; i < rv.Len(); i++ {
			e.value(rv.Index(i).Interface())
		}
		e.leave()
	case reflect.Map:
		if rv.IsNil() {
			e.null()
			return
		}
		if !e.enter() {
			return
		}
		type entry struct {
			k string
			v reflect.Value
		}
		entries := make([]entry, 0, rv.Len())
		it := rv.MapRange()
		for it.Next() {
			entries = append(entries, entry{keyString(normalizeKey(it.Key())), it.Value()})
		}
		sort.Slice(entries, func(i, j int) bool { return entries[i].k < entries[j].k })
		e.mapLen(len(entries))
		for _, en := range entries {
			e.str(en.k)
			e.value(en.v.Interface())
		}
		e.leave()
	case reflect.Func, reflect.Chan, reflect.UnsafePointer, reflect.Complex64, reflect.Complex128:
		e.fail("user value of Go type %s cannot be encoded as MsgPack", rv.Type())
	default:
		if e.err == nil {
			// The library recurses without a bound: a cycle through a
			// struct's fields overflowed the stack, which kills the
			// process.
			parts := math.MaxInt
			if e.maxBytes > 0 {
				parts = e.maxBytes - e.buf.Len()
			}
			if tooDeepForLibrary(rv, e.max-e.depth, 0, &parts) {
				if parts < 0 {
					e.tooLarge(rv.Type().String())
				} else {
					e.fail("user value of Go type %s nested deeper than %d levels (or cyclic)", rv.Type(), e.max)
				}
				return
			}
			start := e.buf.Len()
			// The library keeps the strings of fields tagged intern
			// across calls and writes a repeat as an index into them:
			// no reader of this value (a later message from this pooled
			// encoder) holds that dictionary.
			e.e.ResetWriter(&e.buf)
			err := libraryEncode(e.e, rv.Interface())
			// Once it holds a string, the library writes every string it
			// is given again (this encoder's own: a sibling value, a
			// nodeId, a field name) as an index into it, tagged or not.
			e.e.ResetWriter(&e.buf)
			if err != nil {
				e.fail("user value of Go type %s: %v", rv.Type(), err)
				return
			}
			// The library counts no depth: a struct's fields (a linked
			// list of structs, say) nest as deep as they go, and a
			// message the decoder refuses gets an ERROR naming no op.
			d := newDecoder(e.buf.Bytes()[start:], e.max-e.depth, math.MaxInt)
			err = d.skip()
			interned := d.internRefs
			putDecoder(d)
			if fe, ok := err.(*fieldError); ok && fe.kind == ErrTooDeep {
				e.fail("user value of Go type %s nested deeper than %d levels", rv.Type(), e.max)
			} else if interned > 0 {
				// A reader would decode it to nil, silently.
				e.fail("user value of Go type %s repeats a string of a field tagged intern, which the msgpack library writes as a reference no reader can resolve; drop the tag", rv.Type())
			}
		}
	}
}

// libraryEncode has the msgpack library encode v, its panics returned as
// errors: it panics on some types it cannot write (an unexported embedded
// field it must read through an interface, a pointer embedded with the
// option inline), which would kill the process from a goroutine that
// encodes in the background (a client's replay).
func libraryEncode(enc *msgpack.Encoder, v any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the msgpack library cannot encode it: %v", r)
		}
	}()
	return enc.Encode(v)
}

// tooDeepForLibrary reports whether the msgpack library, encoding rv,
// would nest its structs, maps, slices and arrays more than levels deep
// (or follow more than 64 pointers in a row): a cyclic value is. It walks
// what the library writes: exported fields not tagged "-", and not into
// types that encode themselves. It also counts the elements, map entries
// and fields it walks down from *parts (each written takes a byte at
// least) and stops, true, when *parts goes below 0: the library would
// write more than that, and a value whose parts are shared would take it
// time exponential in its depth.
func tooDeepForLibrary(rv reflect.Value, levels, hops int, parts *int) bool {
	if rv.Kind() != reflect.Pointer && rv.Kind() != reflect.Interface && encodesItself(rv.Type()) {
		return false
	}
	switch rv.Kind() {
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return false
		}
		return hops >= 64 || tooDeepForLibrary(rv.Elem(), levels, hops+1, parts)
	case reflect.Struct:
		if levels <= 0 {
			return true
		}
		if embedsItself(rv.Type()) {
			return true
		}
		return fieldsTooDeep(rv, levels, hops, parts)
	case reflect.Map:
		if rv.IsNil() {
			return false
		}
		if levels <= 0 {
			return true
		}
		for it := rv.MapRange(); it.Next(); {
			if *parts--; *parts < 0 || tooDeepForLibrary(it.Key(), levels-1, 0, parts) || tooDeepForLibrary(it.Value(), levels-1, 0, parts) {
				return true
			}
		}
	case reflect.Slice, reflect.Array:
		if rv.Type().Elem().Kind() == reflect.Uint8 || rv.Kind() == reflect.Slice && rv.IsNil() {
			return false // binary, or nil
		}
		if levels <= 0 {
			return true
		}
		for i := range rv.Len() {
			if *parts--; *parts < 0 || tooDeepForLibrary(rv.Index(i), levels-1, 0, parts) {
				return true
			}
		}
	}
	return false
}

// fieldsTooDeep is tooDeepForLibrary for the fields of the struct rv,
// whether or not its type encodes itself: the library lists the fields of
// a struct embedded with the option inline even then.
func fieldsTooDeep(rv reflect.Value, levels, hops int, parts *int) bool {
	t := rv.Type()
	omitAll := false // the library's struct-wide omitempty, for the fields after it
	for i := range t.NumField() {
		f := t.Field(i)
		// The library skips a field named "-", options or not.
		name, opts, _ := strings.Cut(f.Tag.Get("msgpack"), ",")
		if f.Name == "_msgpack" && name != "-" && hasTagOption(opts, "omitempty") {
			omitAll = true
		}
		if !f.IsExported() && !f.Anonymous || name == "-" {
			continue
		}
		if f.Anonymous && hasTagOption(opts, "inline") {
			// Inline forced: the library lists the fields of a struct
			// that encodes itself too, and panics on any other type.
			if f.Type.Kind() != reflect.Struct {
				return true
			}
			if hops >= 64 || fieldsTooDeep(rv.Field(i), levels, hops+1, parts) {
				return true
			}
			continue
		}
		if f.Anonymous && !strings.Contains(opts, "noinline") && inlinable(f.Type) {
			// Written in this struct's map (unless shadowed, which
			// the check of what was written catches): no level of
			// its own, and hops bound a cycle of embedded pointers.
			if hops >= 64 || tooDeepForLibrary(rv.Field(i), levels, hops+1, parts) {
				return true
			}
			continue
		}
		// Left out by the library, and holding no pointer to walk.
		if (omitAll || hasTagOption(opts, "omitempty")) && emptyForLibrary(rv.Field(i)) {
			continue
		}
		if *parts--; *parts < 0 || tooDeepForLibrary(rv.Field(i), levels-1, 0, parts) {
			return true
		}
	}
	return false
}

// emptyForLibrary reports whether the library leaves v out as an empty
// field tagged omitempty (a zero value, or a slice, map, array or string
// of no elements, also in an interface); none holds a pointer to walk. A
// value whose IsZero method says so is left out too, but is walked.
func emptyForLibrary(v reflect.Value) bool {
	for v.Kind() == reflect.Interface && !v.IsNil() {
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	}
	return v.IsZero()
}

// hasTagOption reports whether a msgpack tag's options (what follows the
// name) hold name, as the library's tag parser reads them.
func hasTagOption(opts, name string) bool {
	for o := range strings.SplitSeq(opts, ",") {
		if k, _, _ := strings.Cut(o, ":"); k == name {
			return true
		}
	}
	return false
}

// embedsItselfCache holds embedsItself's answer by type.
var embedsItselfCache sync.Map

// embedsItself reports whether t embeds, through embedded structs and
// pointers to structs, a type that embeds itself (type T struct{ *T }):
// the library, listing the fields it writes inline, recursed until the
// stack overflowed, whatever the value (a nil pointer too).
func embedsItself(t reflect.Type) bool {
	if v, ok := embedsItselfCache.Load(t); ok {
		return v.(bool)
	}
	var walk func(t reflect.Type, path []reflect.Type) bool
	walk = func(t reflect.Type, path []reflect.Type) bool {
		if slices.Contains(path, t) {
			return true
		}
		path = append(path, t)
		for i := range t.NumField() {
			f := t.Field(i)
			name, opts, _ := strings.Cut(f.Tag.Get("msgpack"), ",")
			if !f.Anonymous || name == "-" || strings.Contains(opts, "noinline") {
				continue
			}
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct && (!encodesItself(ft) || strings.Contains(opts, "inline")) && walk(ft, path) {
				return true
			}
		}
		return false
	}
	v := walk(t, nil)
	embedsItselfCache.Store(t, v)
	return v
}

// inlinable reports whether the library may write an embedded field of
// type t inline: a struct, or a pointer to one, written field by field.
func inlinable(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Kind() == reflect.Struct && !encodesItself(t)
}

// encodesItself reports whether the msgpack library encodes values of t
// (or of *t) by their own method rather than by their fields.
func encodesItself(t reflect.Type) bool {
	for _, x := range []reflect.Type{t, reflect.PointerTo(t)} {
		if x.Implements(customEncoderType) || x.Implements(marshalerType) ||
			x.Implements(binaryMarshalerType) || x.Implements(textMarshalerType) {
			return true
		}
	}
	return false
}

var (
	customEncoderType   = reflect.TypeFor[msgpack.CustomEncoder]()
	marshalerType       = reflect.TypeFor[msgpack.Marshaler]()
	binaryMarshalerType = reflect.TypeFor[encoding.BinaryMarshaler]()
	textMarshalerType   = reflect.TypeFor[encoding.TextMarshaler]()
)

// normalizeKey turns a reflected map key into the value model for keyString.
func normalizeKey(k reflect.Value) any {
	switch k.Kind() {
	case reflect.String:
		return k.String()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return k.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return k.Uint()
	case reflect.Float32, reflect.Float64:
		return k.Float()
	case reflect.Bool:
		return k.Bool()
	case reflect.Interface:
		if k.IsNil() {
			return nil
		}
		return normalizeKey(k.Elem())
	}
	return fmt.Sprint(k.Interface())
}
