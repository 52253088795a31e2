package record

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"
	"golang.org/x/text/collate"
	"golang.org/x/text/language"
)

// Timestamp is a hybrid logical clock timestamp: wall-clock milliseconds,
// a logical counter and the id of the node that issued it.
//
// Timestamps order by Millis, then Counter, then NodeID as TopGun's
// TypeScript client orders it (see CompareNodeID).
type Timestamp struct {
	Millis  uint64
	Counter uint32
	NodeID  string
}

// Compare returns -1, 0 or +1 as t sorts before, equal to or after u.
func (t Timestamp) Compare(u Timestamp) int {
	switch {
	case t.Millis < u.Millis:
		return -1
	case t.Millis > u.Millis:
		return 1
	case t.Counter < u.Counter:
		return -1
	case t.Counter > u.Counter:
		return 1
	}
	return CompareNodeID(t.NodeID, u.NodeID)
}

// collators holds Unicode root collators (a Collator is not safe for
// concurrent use).
var collators = sync.Pool{New: func() any { return collate.New(language.Und) }}

// CompareNodeID orders two node ids as the TypeScript client's HLC.compare
// does, with String.prototype.localeCompare: by the Unicode (CLDR root)
// collation, so "a" < "B" and "A" > "a", unlike byte order (TopGun's Rust
// order). The server keeps the clients' own timestamps, so on an LWW tie
// (same millis and counter) it must pick the winner the clients pick, or a
// client keeps the write the server refused and never converges. Ids that
// collate equal (canonically equivalent, or differing only in ignorable
// characters; localeCompare returns 0) fall back to byte order, keeping
// the order total. Only the first maxCollatedNodeIDBytes of an id are
// collated (then the whole id is compared byte-wise), which keeps the order
// total and the client's for every id up to that length.
func CompareNodeID(a, b string) int {
	if a == b {
		return 0
	}
	c := collators.Get().(*collate.Collator)
	r := c.CompareString(collatedPart(a), collatedPart(b))
	collators.Put(c)
	if r != 0 {
		return r
	}
	return strings.Compare(a, b)
}

// maxCollatedNodeIDBytes bounds the part of a node id CompareNodeID
// collates. Collation costs up to about 700 ns per byte (U+FDFA expands to
// 18 collation elements) and a client's timestamp may carry a node id of
// megabytes: one write tying with a stored record of such an id held the
// store's merging for over a second. TopGun's clients use UUIDs, and a
// server's id is at most 256 bytes (hlc.MaxNodeIDBytes).
const maxCollatedNodeIDBytes = 256

// collatedPart is the prefix of id that CompareNodeID collates, cut at a
// rune boundary.
func collatedPart(id string) string {
	if len(id) <= maxCollatedNodeIDBytes {
		return id
	}
	i := maxCollatedNodeIDBytes
	for i > maxCollatedNodeIDBytes-utf8.UTFMax && !utf8.RuneStart(id[i]) {
		i--
	}
	return id[:i]
}

// IsZero reports whether t is the zero Timestamp.
func (t Timestamp) IsZero() bool { return t == Timestamp{} }

// String returns the form "millis:counter:nodeId" that TopGun uses for
// timestamps in text and for the tags of OR-Map entries.
func (t Timestamp) String() string {
	return string(t.AppendText(make([]byte, 0, 32+len(t.NodeID))))
}

// AppendText appends the String form of t to dst.
func (t Timestamp) AppendText(dst []byte) []byte {
	dst = strconv.AppendUint(dst, t.Millis, 10)
	dst = append(dst, ':')
	dst = strconv.AppendUint(dst, uint64(t.Counter), 10)
	dst = append(dst, ':')
	return append(dst, t.NodeID...)
}

// ErrInvalidTimestamp is returned (wrapped) by ParseTimestamp.
var ErrInvalidTimestamp = errors.New("record: invalid timestamp")

// ParseTimestamp parses the form "millis:counter:nodeId". As in TopGun, the
// text is split at the first two colons (so the node id may itself contain
// colons), millis must fit in 64 bits and counter in 32 bits (an optional
// leading '+' is accepted, as Rust's integer parser does), and the node id
// must not be empty.
func ParseTimestamp(s string) (Timestamp, error) {
	millisText, rest, ok1 := strings.Cut(s, ":")
	counterText, nodeID, ok2 := strings.Cut(rest, ":")
	if !ok1 || !ok2 {
		return Timestamp{}, fmt.Errorf("%w %q: want \"millis:counter:nodeId\"", ErrInvalidTimestamp, s)
	}
	millis, err := parseRustUint(millisText, 64)
	if err != nil {
		return Timestamp{}, fmt.Errorf("%w %q: millis must be an unsigned 64-bit integer", ErrInvalidTimestamp, s)
	}
	counter, err := parseRustUint(counterText, 32)
	if err != nil {
		return Timestamp{}, fmt.Errorf("%w %q: counter must be an unsigned 32-bit integer", ErrInvalidTimestamp, s)
	}
	if nodeID == "" {
		return Timestamp{}, fmt.Errorf("%w %q: the node id is empty", ErrInvalidTimestamp, s)
	}
	return Timestamp{Millis: millis, Counter: uint32(counter), NodeID: nodeID}, nil
}

// parseRustUint parses a decimal unsigned integer the way Rust's FromStr for
// u64/u32 does: ASCII digits with an optional leading '+'.
func parseRustUint(s string, bits int) (uint64, error) {
	if strings.HasPrefix(s, "+") {
		s = s[1:]
	}
	if s == "" || s[0] < '0' || s[0] > '9' {
		return 0, strconv.ErrSyntax
	}
	return strconv.ParseUint(s, 10, bits)
}

// EncodeMsgpack writes t as TopGun does, on the wire and on disk: a map
// {millis, counter, nodeId} with compact integers.
func (t Timestamp) EncodeMsgpack(enc *msgpack.Encoder) error {
	return encodeTimestamp(enc, t)
}

// DecodeMsgpack reads a Timestamp, accepting what TopGun accepts: fields in
// any order, unknown fields skipped, a whole float64 (as the TypeScript
// client sends for large millis) for millis and counter.
func (t *Timestamp) DecodeMsgpack(dec *msgpack.Decoder) error {
	d := decoder{dec: dec, wire: true, maxDepth: MaxWireDepth, keyMax: math.MaxInt}
	ts, err := d.timestamp(1)
	if err != nil {
		return err
	}
	*t = ts
	return nil
}
