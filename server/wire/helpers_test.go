package wire

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/topgun-go/topgun/server/record"
)

// Test-only builders for hand-made frames. Values are written with exact
// MsgPack types so tests control what arrives on the wire.

type (
	f64Val float64 // written as float64 (0xcb)
	f32Val float32 // written as float32 (0xca)
	i64Val int64   // written as int64 (0xd3)
	u64Val uint64  // written as uint64 (0xcf)
	rawVal []byte  // written verbatim
	binVal []byte  // written as bin
)

// kv is an ordered map literal: keys and values alternate.
type kv []any

func writeVal(t testing.TB, e *msgpack.Encoder, buf *bytes.Buffer, v any) {
	t.Helper()
	var err error
	switch x := v.(type) {
	case f64Val:
		err = e.EncodeFloat64(float64(x))
	case f32Val:
		err = e.EncodeFloat32(float32(x))
	case i64Val:
		err = e.EncodeInt64(int64(x))
	case u64Val:
		err = e.EncodeUint64(uint64(x))
	case rawVal:
		buf.Write(x)
	case binVal:
		err = e.EncodeBytes(x)
	case kv:
		if len(x)%2 != 0 {
			t.Fatalf("odd kv literal %v", x)
		}
		err = e.EncodeMapLen(len(x) / 2)
		for i := 0; i < len(x) && err == nil; i += 2 {
			writeVal(t, e, buf, x[i])
			writeVal(t, e, buf, x[i+1])
		}
	case []any:
		err = e.EncodeArrayLen(len(x))
		for i := 0; i < len(x) && err == nil; i++ {
			writeVal(t, e, buf, x[i])
		}
	default:
		err = e.Encode(v)
	}
	if err != nil {
		t.Fatalf("build frame: %v", err)
	}
}

// frame encodes an ordered map literal.
func frame(t testing.TB, pairs ...any) []byte {
	t.Helper()
	var buf bytes.Buffer
	e := msgpack.NewEncoder(&buf)
	e.UseCompactInts(true)
	writeVal(t, e, &buf, kv(pairs))
	return buf.Bytes()
}

// unhex decodes a hex dump with spaces and 'quoted' ASCII runs, e.g.
// "82 'type' a4".
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	var out []byte
	for len(s) > 0 {
		s = strings.TrimLeft(s, " \n\t")
		if s == "" {
			break
		}
		if s[0] == '\'' {
			end := strings.IndexByte(s[1:], '\'')
			if end < 0 {
				t.Fatalf("unterminated quote in %q", s)
			}
			out = append(out, s[1:1+end]...)
			s = s[end+2:]
			continue
		}
		n := strings.IndexAny(s, " '\n\t")
		if n < 0 {
			n = len(s)
		}
		b, err := hex.DecodeString(s[:n])
		if err != nil {
			t.Fatalf("bad hex %q: %v", s[:n], err)
		}
		out = append(out, b...)
		s = s[n:]
	}
	return out
}

// testLogger-free helpers: u32p/u64p build optional numbers.
func u32p(v uint32) *uint32 { return &v }
func u64p(v uint64) *uint64 { return &v }
func strp(s string) *string { return &s }
func boolp(b bool) *bool    { return &b }

// plain is a record value of a decoded client write (a record.Value, or
// nil for Null) in the package's value model, for comparisons.
func plain(v any) any { return record.FromWire(v).ToWire() }

// stored is what decoding gives for a record value v of a client's write:
// the record.Value the server stores, nil for Null.
func stored(v any) any {
	if x := record.FromWire(v); !x.IsNull() {
		return x
	}
	return nil
}

// asDecoded sets the record values of the client writes in m (CLIENT_OP,
// OP_BATCH, ORMAP_PUSH_DIFF, a POST /sync request) to what decoding them
// gives (stored).
func asDecoded(m any) {
	ops := func(ops []ClientOp) {
		for i := range ops {
			if r := ops[i].Record; r != nil {
				r.Value = stored(r.Value)
			}
			if r := ops[i].ORRecord; r != nil {
				r.Value = stored(r.Value)
			}
		}
	}
	switch x := m.(type) {
	case *ClientOpMessage:
		ops([]ClientOp{x.ClientOp})
	case *OpBatch:
		ops(x.Ops)
	case *HTTPSyncRequest:
		ops(x.Operations)
	case *ORMapPushDiff:
		for i := range x.Entries {
			for j := range x.Entries[i].Records {
				r := &x.Entries[i].Records[j]
				r.Value = stored(r.Value)
			}
		}
	}
}
