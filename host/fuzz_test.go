package host

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/topgun-go/topgun/abi"
)

// fuzzOps are the calls FuzzDecodeResponse sends; its op argument picks one.
var fuzzOps = []abi.WasmCall{abi.CallGet, abi.CallScan, abi.CallListMaps, abi.CallListExpired, abi.CallDescribe, abi.CallApply}

// recorder records the responses a plugin gives, for fuzz seeds.
type recorder struct {
	b    *Backend
	seen []recorded
}

type recorded struct {
	call   abi.WasmCall
	status abi.Code
	body   []byte
}

func (r *recorder) RoundTrip(ctx context.Context, call abi.WasmCall, req []byte, handle func(abi.Code, []byte) error) error {
	return r.b.RoundTrip(ctx, call, req, func(status abi.Code, resp []byte) error {
		r.seen = append(r.seen, recorded{call, status, append([]byte(nil), resp...)})
		return handle(status, resp)
	})
}

// nullResponses records real responses of wasm null to every op, errors
// included.
func nullResponses(f *testing.F) []recorded {
	b := mustLoad(f, nullWasm(f), testOptions(f))
	r := &recorder{b: b}
	c := abi.NewCaller(r, "plugin null.wasm")
	ctx := context.Background()
	batch := &abi.Batch{Now: 5}
	batch.Put("m", "k1", false, []byte("v1"), 0)
	batch.Put("m", "k2", false, []byte{0, 1, 2, 0xff}, 3)
	batch.Put("m", "k3", true, nil, 0)
	if err := c.Apply(ctx, batch); err != nil {
		f.Fatal(err)
	}
	bad := &abi.Batch{Now: 6}
	bad.Put("", "k", false, nil, 0)
	_ = c.Apply(ctx, bad) // invalid argument: an error response
	_, _ = c.Get(ctx, "m", false, []string{"k1", "k2", "missing"})
	_, _ = c.Scan(ctx, abi.ScanRequest{Map: "m", Limit: 1})
	_, _ = c.Scan(ctx, abi.ScanRequest{Map: "m"})
	_, _ = c.ListMaps(ctx)
	_, _ = c.ListExpired(ctx, 10, 10)
	_, _ = c.Describe(ctx)
	return r.seen
}

// FuzzDecodeResponse feeds arbitrary results (status and length) and
// bodies, as a plugin could leave them in its memory, through the host's
// whole response path: a real instance (testdata/wat/liar.wasm replays
// what the fuzzer staged), the checks on the status and length, and the
// decoding of every op's response. The host must never panic; a call
// either succeeds or returns an *abi.Error naming the plugin and the op;
// a malformed answer discards the instance and the next call works.
// Seeds are real responses of wasm null.
func FuzzDecodeResponse(f *testing.F) {
	for _, r := range nullResponses(f) {
		op := -1
		for i, c := range fuzzOps {
			if c == r.call {
				op = i
			}
		}
		if op >= 0 {
			f.Add(uint8(op), uint32(r.status), uint32(len(r.body)), r.body)
		}
	}
	f.Add(uint8(0), uint32(0), uint32(5), []byte{0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Add(uint8(1), abi.StatusBufferMoved, uint32(3), []byte{0x92, 0x90, 0xc0})

	o := testOptions(f)
	o.BreakerFailures = -1
	o.Logger = nil // a fuzz run discards many instances
	b := mustLoad(f, "testdata/wat/liar.wasm", o)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, op uint8, status, length uint32, body []byte) {
		if len(body) > 0x10000 {
			body = body[:0x10000]
		}
		in, _, err := b.pool.acquire(ctx, abi.CallGet, false)
		if err != nil {
			t.Fatalf("acquire: %v", err)
		}
		var result [8]byte
		for i := range result {
			result[i] = byte(abi.PackResult(status, length) >> (8 * i))
		}
		if !in.mem.Write(16, result[:]) || !in.mem.WriteUint32Le(24, 1) || !in.mem.Write(0x20000, body) {
			t.Fatal("staging outside the liar's memory")
		}
		b.pool.release(in)

		call := fuzzOps[int(op)%len(fuzzOps)]
		switch call {
		case abi.CallGet:
			recs, err2 := b.Get(ctx, "m", false, []string{"k"})
			err = err2
			for _, r := range recs {
				if r.Map != "m" {
					t.Fatalf("record of map %q from a get of map m", r.Map)
				}
			}
		case abi.CallScan:
			_, err = b.Scan(ctx, abi.ScanRequest{Map: "m"})
		case abi.CallListMaps:
			_, err = b.ListMaps(ctx)
		case abi.CallListExpired:
			_, err = b.ListExpired(ctx, 1, 10)
		case abi.CallDescribe:
			_, err = b.Caller.Describe(ctx)
		case abi.CallApply:
			err = b.Apply(ctx, &abi.Batch{Now: 1})
		}
		if err != nil {
			var e *abi.Error
			if !errors.As(err, &e) {
				t.Fatalf("%s: error %v is not an *abi.Error", call, err)
			}
			if !strings.HasPrefix(err.Error(), "plugin liar.wasm: "+call.String()+": ") {
				t.Fatalf("%s: error %q does not name the plugin and op", call, err)
			}
		}
		// Whatever the answer, the plugin serves the next call.
		if err := b.Apply(ctx, &abi.Batch{Now: 1}); err != nil {
			t.Fatalf("the call after %s failed: %v", call, err)
		}
		if st := b.Stats(); st.Live != 1 || st.MemoryBytes > 4<<16 {
			t.Fatalf("stats %+v: want one instance of 4 pages", st)
		}
	})
}
