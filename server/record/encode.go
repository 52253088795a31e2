package record

import (
	"math"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"
)

// appendWriter is the io.Writer (and io.ByteWriter, so the msgpack encoder
// uses it without a buffer) that appends to a byte slice.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

func (w *appendWriter) WriteByte(c byte) error {
	w.b = append(w.b, c)
	return nil
}

type encoder struct {
	w   appendWriter
	enc *msgpack.Encoder
}

var encoderPool = sync.Pool{New: func() any {
	e := &encoder{}
	e.enc = msgpack.NewEncoder(&e.w)
	return e
}}

// Encode appends the stored encoding of rv to dst and returns the extended
// slice: rmp-serde's named msgpack of TopGun's RecordValue, byte for byte as
// TopGun writes it (structs as maps in declaration order, variants as
// one-entry maps or bare names, compact integers, float64 always as 0xcb,
// Bytes as an array of small integers, Map keys sorted, OR-Map tombstones
// omitted when empty).
//
// It refuses (with an error matching ErrInvalid, dst returned unchanged)
// strings that are not valid UTF-8, nesting deeper than MaxStoredDepth, an
// unknown Kind, and a KindORTombstones value that holds records.
func Encode(dst []byte, rv *RecordValue) ([]byte, error) {
	e := encoderPool.Get().(*encoder)
	e.w.b = dst
	err := e.recordValue(rv)
	out := e.w.b
	e.w.b = nil
	encoderPool.Put(e)
	if err != nil {
		return dst, err
	}
	return out, nil
}

func invalid(reason string) error { return &EncodeError{Reason: reason} }

func (e *encoder) recordValue(rv *RecordValue) error {
	if rv.LegacyBare {
		if rv.Kind != KindLWW {
			return invalid("LegacyBare is only valid for an LWW record")
		}
		return e.storedValue(rv.LWW.Value, 0)
	}
	enc := e.enc
	switch rv.Kind {
	case KindLWW:
		if err := enc.EncodeMapLen(1); err != nil {
			return err
		}
		if err := enc.EncodeString("lww"); err != nil {
			return err
		}
		if err := enc.EncodeMapLen(2); err != nil {
			return err
		}
		if err := enc.EncodeString("value"); err != nil {
			return err
		}
		if err := e.storedValue(rv.LWW.Value, 2); err != nil {
			return at(at(err, "value"), "lww")
		}
		if err := enc.EncodeString("timestamp"); err != nil {
			return err
		}
		if err := encodeTimestamp(enc, rv.LWW.Timestamp); err != nil {
			return at(at(err, "timestamp"), "lww")
		}
		return nil
	case KindORMap:
		m := &rv.ORMap
		if err := enc.EncodeMapLen(1); err != nil {
			return err
		}
		if err := enc.EncodeString("orMap"); err != nil {
			return err
		}
		n := 1
		if len(m.Tombstones) > 0 {
			n = 2
		}
		if err := enc.EncodeMapLen(n); err != nil {
			return err
		}
		if err := enc.EncodeString("records"); err != nil {
			return err
		}
		if err := enc.EncodeArrayLen(len(m.Records)); err != nil {
			return err
		}
		for i := range m.Records {
			if err := e.entry(&m.Records[i]); err != nil {
				return at(at(atIndex(err, i), "records"), "orMap")
			}
		}
		if len(m.Tombstones) > 0 {
			if err := enc.EncodeString("tombstones"); err != nil {
				return err
			}
			if err := e.strings(m.Tombstones); err != nil {
				return at(at(err, "tombstones"), "orMap")
			}
		}
		return nil
	case KindORTombstones:
		if len(rv.ORMap.Records) != 0 {
			return invalid("an orTombstones record cannot hold records (call Normalize first)")
		}
		if err := enc.EncodeMapLen(1); err != nil {
			return err
		}
		if err := enc.EncodeString("orTombstones"); err != nil {
			return err
		}
		if err := enc.EncodeMapLen(1); err != nil {
			return err
		}
		if err := enc.EncodeString("tags"); err != nil {
			return err
		}
		if err := e.strings(rv.ORMap.Tombstones); err != nil {
			return at(at(err, "tags"), "orTombstones")
		}
		return nil
	}
	return invalid("unknown record kind " + strconv.Itoa(int(rv.Kind)))
}

// entry writes an OrMapEntry at depth 4 (record, orMap, records, entry).
func (e *encoder) entry(x *ORMapEntry) error {
	enc := e.enc
	n := 3
	if x.TTLMs != 0 {
		n = 4
	}
	if err := enc.EncodeMapLen(n); err != nil {
		return err
	}
	if err := enc.EncodeString("value"); err != nil {
		return err
	}
	if err := e.storedValue(x.Value, 4); err != nil {
		return at(err, "value")
	}
	if err := enc.EncodeString("tag"); err != nil {
		return err
	}
	if !utf8.ValidString(x.Tag) {
		return at(invalid("the string is not valid UTF-8"), "tag")
	}
	if err := enc.EncodeString(x.Tag); err != nil {
		return err
	}
	if err := enc.EncodeString("timestamp"); err != nil {
		return err
	}
	if err := encodeTimestamp(enc, x.Timestamp); err != nil {
		return at(err, "timestamp")
	}
	if x.TTLMs != 0 {
		if err := enc.EncodeString("ttlMs"); err != nil {
			return err
		}
		if err := enc.EncodeUint(x.TTLMs); err != nil {
			return err
		}
	}
	return nil
}

func (e *encoder) strings(ss []string) error {
	if err := e.enc.EncodeArrayLen(len(ss)); err != nil {
		return err
	}
	for i, s := range ss {
		if !utf8.ValidString(s) {
			return atIndex(invalid("the string is not valid UTF-8"), i)
		}
		if err := e.enc.EncodeString(s); err != nil {
			return err
		}
	}
	return nil
}

func encodeTimestamp(enc *msgpack.Encoder, t Timestamp) error {
	if !utf8.ValidString(t.NodeID) {
		return at(invalid("the string is not valid UTF-8"), "nodeId")
	}
	if err := enc.EncodeMapLen(3); err != nil {
		return err
	}
	if err := enc.EncodeString("millis"); err != nil {
		return err
	}
	if err := enc.EncodeUint(t.Millis); err != nil {
		return err
	}
	if err := enc.EncodeString("counter"); err != nil {
		return err
	}
	if err := enc.EncodeUint(uint64(t.Counter)); err != nil {
		return err
	}
	if err := enc.EncodeString("nodeId"); err != nil {
		return err
	}
	return enc.EncodeString(t.NodeID)
}

// storedValue writes TopGun's externally tagged Value. depth is the number of
// containers already open around it, counted as Decode counts them.
func (e *encoder) storedValue(v Value, depth int) error {
	enc := e.enc
	if v.typ == TypeNull {
		return enc.EncodeString("Null")
	}
	if v.typ > TypeMap {
		return invalid("unknown value type " + strconv.Itoa(int(v.typ)))
	}
	if depth+1 > MaxStoredDepth {
		return invalid("containers nested deeper than " + strconv.Itoa(MaxStoredDepth))
	}
	if err := enc.EncodeMapLen(1); err != nil {
		return err
	}
	if err := enc.EncodeString(typeNames[v.typ]); err != nil {
		return err
	}
	depth++
	var err error
	switch v.typ {
	case TypeBool:
		err = enc.EncodeBool(v.num != 0)
	case TypeInt:
		err = enc.EncodeInt(int64(v.num))
	case TypeFloat:
		err = enc.EncodeFloat64(math.Float64frombits(v.num))
	case TypeString:
		if !utf8.ValidString(v.str) {
			return at(invalid("the string is not valid UTF-8"), "String")
		}
		err = enc.EncodeString(v.str)
	case TypeBytes:
		if depth+1 > MaxStoredDepth {
			return at(invalid("containers nested deeper than "+strconv.Itoa(MaxStoredDepth)), "Bytes")
		}
		if err = enc.EncodeArrayLen(len(v.str)); err != nil {
			return err
		}
		for i := 0; i < len(v.str); i++ {
			if err = enc.EncodeUint(uint64(v.str[i])); err != nil {
				return err
			}
		}
	case TypeArray:
		if depth+1 > MaxStoredDepth {
			return at(invalid("containers nested deeper than "+strconv.Itoa(MaxStoredDepth)), "Array")
		}
		if err = enc.EncodeArrayLen(len(v.items)); err != nil {
			return err
		}
		for i := range v.items {
			if err = e.storedValue(v.items[i], depth+1); err != nil {
				return at(atIndex(err, i), "Array")
			}
		}
	case TypeMap:
		if depth+1 > MaxStoredDepth {
			return at(invalid("containers nested deeper than "+strconv.Itoa(MaxStoredDepth)), "Map")
		}
		if err = enc.EncodeMapLen(len(v.fields)); err != nil {
			return err
		}
		for i := range v.fields {
			f := &v.fields[i]
			if !utf8.ValidString(f.Key) {
				return at(invalid("a key is not valid UTF-8"), "Map")
			}
			if err = enc.EncodeString(f.Key); err != nil {
				return err
			}
			if err = e.storedValue(f.Value, depth+1); err != nil {
				return at(at(err, "["+strconv.Quote(f.Key)+"]"), "Map")
			}
		}
	}
	return err
}
