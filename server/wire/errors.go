package wire

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// Sentinel errors. Every error returned by Decode, DecodeHTTPSyncRequest,
// DecodeHTTPSyncResponse and Batch.Split matches exactly one of them with
// errors.Is, but for ErrDecodedTooLarge, which also matches ErrTooLarge.
var (
	// ErrUnknownType: the frame is a well-formed message map whose type this
	// package does not model. The concrete error is an *UnknownTypeError
	// naming the type.
	ErrUnknownType = errors.New("wire: unknown message type")

	// ErrMalformed: the bytes are not a valid message (bad MsgPack, a field
	// of the wrong type, a missing required field, a fraction where an
	// integer is expected, trailing bytes, ...). TopGun's server drops such
	// frames silently.
	ErrMalformed = errors.New("wire: malformed message")

	// ErrTooLarge: the frame, a length inside it, or a BATCH's item count is
	// over the configured Limits.
	ErrTooLarge = errors.New("wire: message too large")

	// ErrTooDeep: containers are nested deeper than Limits.MaxDepth.
	ErrTooDeep = errors.New("wire: message nested too deeply")

	// ErrDecodedTooLarge: decoded, the message would take more memory
	// than Limits.MaxDecodedBytes. It is a kind of ErrTooLarge:
	// errors.Is(err, ErrTooLarge) holds for it too.
	ErrDecodedTooLarge = errors.New("wire: decoded message too large")
)

// UnknownTypeError is returned by Decode for a well-formed frame whose
// `type` is not one this package decodes (out-of-scope TopGun features such
// as topics, locks, search or cluster messages, or a type from a newer
// client). errors.Is(err, ErrUnknownType) holds.
type UnknownTypeError struct {
	Type string
	// RequestID is the id of a one-shot request TopGun's client waits on
	// (SEARCH, SQL_QUERY, VECTOR_SEARCH, HYBRID_SEARCH), "" for other
	// types: NewRefusal answers it.
	RequestID string
}

func (e *UnknownTypeError) Error() string {
	return "wire: unknown message type " + quote(e.Type)
}

// Is reports whether target is ErrUnknownType.
func (e *UnknownTypeError) Is(target error) bool { return target == ErrUnknownType }

// DecodeError describes why a frame could not be decoded: the message type
// (when known), the path of the offending field inside the message, and the
// kind (one of ErrMalformed, ErrTooLarge, ErrDecodedTooLarge, ErrTooDeep)
// for errors.Is.
type DecodeError struct {
	Type   string // message type, "" when not known yet
	Path   string // dotted field path, e.g. "payload.record.timestamp.millis"
	Kind   error  // ErrMalformed, ErrTooLarge, ErrDecodedTooLarge or ErrTooDeep
	Reason string // what was wrong
}

func (e *DecodeError) Error() string {
	var b strings.Builder
	b.WriteString("wire: cannot decode ")
	if e.Type != "" {
		b.WriteString(e.Type)
	} else {
		b.WriteString("message")
	}
	if e.Path != "" {
		b.WriteString(" field ")
		b.WriteString(e.Path)
	}
	b.WriteString(": ")
	b.WriteString(e.Reason)
	return b.String()
}

// Is reports whether target is the kind of this error (or ErrTooLarge
// for ErrDecodedTooLarge).
func (e *DecodeError) Is(target error) bool {
	return target == e.Kind || (e.Kind == ErrDecodedTooLarge && target == ErrTooLarge)
}

// EncodeError is returned by Encode when a message cannot be encoded: a user
// value of a Go type MsgPack cannot represent, a value nested deeper than
// Limits.MaxDepth (or cyclic), a required field left empty, or (from
// Limits.Encode) a message that cannot fit Limits.MaxMessageBytes, whose
// Kind is ErrTooLarge.
type EncodeError struct {
	Type   string
	Reason string
	Kind   error // ErrTooLarge, or nil
}

func (e *EncodeError) Error() string {
	return "wire: cannot encode " + e.Type + ": " + e.Reason
}

// Unwrap returns the kind, for errors.Is(err, ErrTooLarge).
func (e *EncodeError) Unwrap() error { return e.Kind }

// fieldError is the internal error carried while unwinding nested decoders;
// each level prepends its field name. It is turned into a *DecodeError at
// the top.
type fieldError struct {
	path   []string // innermost last after reversal
	kind   error
	reason string
}

func (e *fieldError) Error() string { return e.reason }

func errMalformed(reason string) *fieldError { return &fieldError{kind: ErrMalformed, reason: reason} }
func errTooLarge(reason string) *fieldError  { return &fieldError{kind: ErrTooLarge, reason: reason} }
func errTooDeep(reason string) *fieldError   { return &fieldError{kind: ErrTooDeep, reason: reason} }

// inField records that err happened inside field name (or array index).
func inField(name string, err error) error {
	if err == nil {
		return nil
	}
	fe, ok := err.(*fieldError)
	if !ok {
		fe = &fieldError{kind: ErrMalformed, reason: cleanLibError(err)}
	}
	fe.path = append(fe.path, name)
	return fe
}

// toDecodeError converts any internal error into a *DecodeError.
func toDecodeError(typ string, err error) error {
	if err == nil {
		return nil
	}
	switch e := err.(type) {
	case *DecodeError, *UnknownTypeError:
		return err
	case *fieldError:
		var b strings.Builder
		for i := len(e.path) - 1; i >= 0; i-- {
			p := e.path[i]
			if b.Len() > 0 && !strings.HasPrefix(p, "[") {
				b.WriteByte('.')
			}
			b.WriteString(p)
		}
		return &DecodeError{Type: typ, Path: b.String(), Kind: e.kind, Reason: e.reason}
	default:
		return &DecodeError{Type: typ, Kind: ErrMalformed, Reason: cleanLibError(err)}
	}
}

// cleanLibError turns a codec error into a short lowercase reason.
func cleanLibError(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "msgpack: ")
	if s == "EOF" || s == "unexpected EOF" {
		return "truncated frame"
	}
	return s
}

func quote(s string) string { return "\"" + CutName(s) + "\"" }

// CutName cuts a name a client sent, for an error text, after 64 bytes at
// a character boundary and makes it valid UTF-8: error texts reach clients
// as strings, which decoders that check them refuse otherwise.
func CutName(s string) string {
	if len(s) > 64 {
		i := 64
		for i > 0 && !utf8.RuneStart(s[i]) {
			i--
		}
		s = s[:i] + "..."
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
