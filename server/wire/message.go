package wire

import (
	"errors"
	"sort"
	"strconv"
)

// Message is one TopGun protocol message. The concrete types in this
// package are the only implementations; switch on them after Decode.
type Message interface {
	// Type returns the wire discriminator, e.g. "CLIENT_OP".
	Type() string

	// body writes the message's fields: beside "type" for flat messages,
	// inside "payload" for wrapped ones.
	body(e *encoder)
	// fields reports the number of fields body writes.
	fields() int
}

// kind tells how a message type is laid out on the wire.
type kind struct {
	wrapped bool                                               // fields inside "payload"
	decode  func(d *decoder, field fieldFunc) (Message, error) // builds the message from its fields
}

// fieldFunc iterates the message's fields (top level or payload) and calls
// fn for each; fn must consume the value.
type fieldFunc func(fn func(key []byte) error) error

var kinds = map[string]kind{}

func register(typ string, wrapped bool, decode func(d *decoder, field fieldFunc) (Message, error)) {
	kinds[typ] = kind{wrapped: wrapped, decode: decode}
}

// Types returns the message types Decode understands, sorted.
func Types() []string {
	out := make([]string, 0, len(kinds))
	for t := range kinds {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// IsWrapped reports whether messages of type typ carry their fields in a
// "payload" map (true) or beside "type" (false). Unknown types give false.
func IsWrapped(typ string) bool { return kinds[typ].wrapped }

// Decode decodes one frame with DefaultLimits.
func Decode(b []byte) (Message, error) { return DefaultLimits().Decode(b) }

// Decode decodes one frame: a MsgPack map with a string "type" and either
// the fields beside it or a "payload" map, as TopGun's client sends them.
// Field order and unknown fields do not matter. Integers may arrive as whole
// float64. The error is an *UnknownTypeError for a well-formed frame of a
// type this package does not know, else a *DecodeError (ErrMalformed,
// ErrTooLarge, ErrTooDeep). Decode never panics.
func (l Limits) Decode(b []byte) (Message, error) {
	m, _, err := l.DecodeSize(b)
	return m, err
}

// DecodeSize is Decode that also returns the decoded size of the message:
// the memory it takes, as counted against MaxDecodedBytes (see the package
// doc). A server that holds decoded messages bounds them by it.
func (l Limits) DecodeSize(b []byte) (Message, int, error) {
	d, err := l.frameDecoder(b)
	if err != nil {
		return nil, 0, err
	}
	defer putDecoder(d)

	// Pass 1: find "type" and check the whole frame's structure (depth,
	// lengths, trailing bytes) before anything is allocated for it.
	typ, err := d.scanType()
	if err != nil {
		return nil, 0, toDecodeError(typ, err)
	}
	k, ok := kinds[typ]
	if !ok {
		ut := &UnknownTypeError{Type: typ}
		if r, ok := refusable[typ]; ok {
			ut.RequestID = d.requestID(r.id)
		}
		return nil, 0, ut
	}

	// Pass 2: decode the fields.
	d.reset()
	var field fieldFunc
	found := false
	if k.wrapped {
		field = func(fn func(key []byte) error) error {
			return d.readStruct(func(key []byte) error {
				if string(key) != "payload" || found {
					return d.skip()
				}
				found = true
				return d.readStruct(fn)
			})
		}
	} else {
		field = func(fn func(key []byte) error) error {
			return d.readStruct(func(key []byte) error {
				if string(key) == "type" {
					return d.skip()
				}
				return fn(key)
			})
		}
	}
	m, err := k.decode(d, field)
	if k.wrapped {
		fe, isField := err.(*fieldError)
		switch {
		case !found && (err == nil || isField && len(fe.path) == 0):
			err = errMalformed("missing required field payload")
		case isField && len(fe.path) == 0:
			fe.path = append(fe.path, "payload") // a required payload field is missing
		}
	}
	if err != nil {
		return nil, 0, toDecodeError(typ, err)
	}
	return m, d.decoded(), nil
}

// Type returns the "type" of a frame without decoding its fields: the
// first pass of Decode, which checks the frame's structure and allocates
// nothing for its values. Callers that serve only some types (before
// authentication, only AUTH) check it before they Decode. Its errors are
// Decode's.
func (l Limits) Type(b []byte) (string, error) {
	d, err := l.frameDecoder(b)
	if err != nil {
		return "", err
	}
	defer putDecoder(d)
	typ, err := d.scanType()
	if err != nil {
		return "", toDecodeError(typ, err)
	}
	return typ, nil
}

// frameDecoder checks a frame's size and returns a pooled decoder over it
// with the limits applied; release it with putDecoder.
func (l Limits) frameDecoder(b []byte) (*decoder, error) {
	if len(b) > l.MaxMessageBytes {
		return nil, &DecodeError{Kind: ErrTooLarge, Reason: "frame of " + itoa(len(b)) + " bytes exceeds the limit of " + itoa(l.MaxMessageBytes)}
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	return newDecoder(b, l.MaxDepth, l.maxDecoded()), nil
}

// scanType walks the whole frame once, returning the "type" string.
func (d *decoder) scanType() (string, error) {
	var typ string
	found := false
	err := d.readStruct(func(key []byte) error {
		if string(key) != "type" || found {
			return d.skip()
		}
		found = true
		s, err := d.str()
		typ = s
		return err
	})
	if err != nil {
		return typ, err
	}
	if d.remaining() != 0 {
		return typ, errMalformed(itoa(d.remaining()) + " trailing bytes after the message")
	}
	if !found {
		return "", errMalformed("missing required field type")
	}
	return typ, nil
}

// Encode encodes m with DefaultLimits' MaxDepth, and no bound on its size
// (the server's answers are not held to the limit on what it accepts).
func Encode(m Message) ([]byte, error) { return DefaultLimits().encode(m, 0) }

// Encode encodes m as TopGun's server does: "type" first, then the fields in
// TopGun's order, optional fields omitted where TopGun omits them, integers
// in their most compact form, user-value maps with sorted keys. A message
// that cannot fit MaxMessageBytes may fail (errors.Is ErrTooLarge) as soon
// as that is seen, before all its values are written.
func (l Limits) Encode(m Message) ([]byte, error) { return l.encode(m, l.MaxMessageBytes) }

func (l Limits) encode(m Message, maxBytes int) ([]byte, error) {
	if m == nil {
		return nil, &EncodeError{Type: "<nil>", Reason: "nil message"}
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	e := getEncoder(l.MaxDepth)
	defer putEncoder(e)
	e.maxBytes = maxBytes
	typ := m.Type()
	_, refusal := m.(*Refusal)
	if kinds[typ].wrapped || refusal {
		e.mapLen(2)
		e.kv("type", typ)
		e.str("payload")
		e.mapLen(m.fields())
		m.body(e)
	} else {
		e.mapLen(1 + m.fields())
		e.kv("type", typ)
		m.body(e)
	}
	if e.err != nil {
		ee := &EncodeError{Type: typ, Reason: e.err.Error()}
		if errors.Is(e.err, ErrTooLarge) {
			ee.Kind = ErrTooLarge
		}
		return nil, ee
	}
	return e.bytes(), nil
}

func itoa(n int) string { return strconv.Itoa(n) }
