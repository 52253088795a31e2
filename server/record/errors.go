package record

import (
	"errors"
	"strconv"
	"strings"
)

// ErrMalformed is matched (errors.Is) by every error Decode, DecodeWire and
// the DecodeMsgpack methods return for bytes that are not a valid encoding.
var ErrMalformed = errors.New("record: malformed encoding")

// ErrKeyTooLong is returned by DisplayKeyMax for a key whose display string
// would be longer than its limit.
var ErrKeyTooLong = errors.New("record: the display string of a map key is over its limit")

// ErrInvalid is matched (errors.Is) by every error Encode and EncodeWire
// return for a value they refuse to write (invalid UTF-8, nesting deeper than
// the limit, an unknown kind).
var ErrInvalid = errors.New("record: invalid value")

// DecodeError describes where and why decoding failed.
type DecodeError struct {
	// Path names the element that failed, e.g. "orMap.records[2].timestamp.millis".
	Path string
	// Offset is the byte offset of the failure in the input, -1 when unknown
	// (decoding from a stream).
	Offset int
	// Reason says what was wrong.
	Reason string
	// Wire is true for the plain msgpack of the client protocol, false for
	// TopGun's stored RecordValue encoding.
	Wire bool
}

func (e *DecodeError) Error() string {
	var b strings.Builder
	b.WriteString("record: cannot decode ")
	if e.Wire {
		b.WriteString("wire value")
	} else {
		b.WriteString("stored record value")
	}
	if e.Path != "" {
		b.WriteString(" at ")
		b.WriteString(e.Path)
	}
	if e.Offset >= 0 {
		b.WriteString(" (byte ")
		b.WriteString(strconv.Itoa(e.Offset))
		b.WriteByte(')')
	}
	b.WriteString(": ")
	b.WriteString(e.Reason)
	if !e.Wire {
		b.WriteString("; the bytes are not a TopGun RecordValue (a corrupt row, or written by another program)")
	}
	return b.String()
}

// Is makes errors.Is(err, ErrMalformed) hold.
func (e *DecodeError) Is(target error) bool { return target == ErrMalformed }

// EncodeError describes why a value cannot be encoded.
type EncodeError struct {
	Path   string
	Reason string
}

func (e *EncodeError) Error() string {
	if e.Path == "" {
		return "record: cannot encode: " + e.Reason
	}
	return "record: cannot encode " + e.Path + ": " + e.Reason
}

// Is makes errors.Is(err, ErrInvalid) hold.
func (e *EncodeError) Is(target error) bool { return target == ErrInvalid }

// joinPath prefixes seg to rest ("a" + "b" = "a.b", "a" + "[1].b" = "a[1].b").
func joinPath(seg, rest string) string {
	switch {
	case rest == "":
		return seg
	case seg == "":
		return rest
	case rest[0] == '[':
		return seg + rest
	}
	return seg + "." + rest
}

// at prefixes the path of a decode or encode error with seg as the error
// travels up; other errors pass unchanged. Paths are only built on failure,
// so decoding allocates nothing for them on success.
func at(err error, seg string) error {
	switch e := err.(type) {
	case *DecodeError:
		e.Path = joinPath(seg, e.Path)
	case *EncodeError:
		e.Path = joinPath(seg, e.Path)
	}
	return err
}

func atIndex(err error, i int) error {
	return at(err, "["+strconv.Itoa(i)+"]")
}
