package abi

import (
	"context"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// cannedRT answers every call with one fixed response.
type cannedRT struct{ resp []byte }

func (rt cannedRT) RoundTrip(_ context.Context, _ WasmCall, _ []byte, handle func(Code, []byte) error) error {
	return handle(CodeOK, rt.resp)
}

// erringRT answers every call with one error status and message.
type erringRT struct {
	code Code
	msg  []byte
}

func (rt erringRT) RoundTrip(_ context.Context, _ WasmCall, _ []byte, handle func(Code, []byte) error) error {
	return handle(rt.code, rt.msg)
}

// An error message crosses as the plugin's text, cut to
// MaxErrorMessageBytes. The cut must not split a character: the message
// reaches clients (an ERROR frame of a failed write), and a decoder that
// checks UTF-8, like this server's own wire package, refuses the frame.
// An empty message must still say what went wrong.
func TestCaller_errorMessage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name string
		code Code
		msg  string
		want string // the error's text after the prefix
	}{
		{"cutAtCharacter", CodeConflict, "x" + strings.Repeat("é", 3000), "x" + strings.Repeat("é", 2047)},
		{"notUTF8", CodeInternal, "bad \xff byte", "bad \uFFFD byte"},
		// 4096 bytes cut, then each 0xff replaced by three bytes: cut again.
		{"notUTF8Long", CodeInternal, strings.Repeat("a\xff", 3000), strings.Repeat("a\uFFFD", 1024)},
		{"empty", CodeNotFound, "", "not found"},
		{"short", CodeUnavailable, "closed", "closed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := NewCaller(erringRT{code: tc.code, msg: []byte(tc.msg)}, "plugin test")
			_, err := c.ListMaps(ctx)
			if !errors.Is(err, &Error{Code: tc.code}) {
				t.Fatalf("ListMaps = %v, want code %v", err, tc.code)
			}
			const prefix = "plugin test: list_maps: "
			if got := err.Error(); got != prefix+tc.want {
				t.Errorf("error = %.80q... (%d bytes), want %.80q... (%d bytes)", got, len(got), prefix+tc.want, len(prefix+tc.want))
			}
			if !utf8.ValidString(err.Error()) {
				t.Errorf("error is not valid UTF-8: %q", err.Error())
			}
		})
	}
}

// BenchmarkCaller_Get measures the host's side of a get of one record: the
// request encoding and the response decoding, without a plugin.
func BenchmarkCaller_Get(b *testing.B) {
	e := NewEncoder()
	e.Records([]Record{{Key: "key-0000000000000001", Value: make([]byte, 100), CreatedAt: 1, UpdatedAt: 2}})
	c := NewCaller(cannedRT{resp: e.Bytes()}, "plugin test")
	ctx := context.Background()
	keys := []string{"key-0000000000000001"}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		recs, err := c.Get(ctx, "bench", false, keys)
		if err != nil || len(recs) != 1 {
			b.Fatal(err, len(recs))
		}
	}
}

// BenchmarkCaller_Apply measures the host's side of an apply of 1000 puts.
func BenchmarkCaller_Apply(b *testing.B) {
	c := NewCaller(cannedRT{}, "plugin test")
	ctx := context.Background()
	batch := &Batch{Now: 1}
	for i := 0; i < 1000; i++ {
		batch.Put("bench", "key-0000000000000001", false, make([]byte, 100), 0)
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := c.Apply(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
}

// TestCaller_noAllocationPerCall: the Caller's own work per call (pooled
// state, a handler bound once) allocates nothing; what a call allocates is
// what its response decodes to.
func TestCaller_noAllocationPerCall(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items at random; run without -race")
	}
	ctx := context.Background()
	e := NewEncoder()
	e.Records(nil)
	get := NewCaller(cannedRT{resp: append([]byte(nil), e.Bytes()...)}, "plugin test")
	apply := NewCaller(cannedRT{}, "plugin test")
	apply.SetPeerMinor(1)
	batch := &Batch{Now: 1}
	batch.Put("m", "k", false, []byte("v"), 0)
	keys := []string{"k"}
	// Warm the pools.
	_, _ = get.Get(ctx, "m", false, keys)
	_ = apply.Apply(ctx, batch)
	if n := testing.AllocsPerRun(100, func() {
		if recs, err := get.Get(ctx, "m", false, keys); err != nil || len(recs) != 0 {
			t.Fatal(recs, err)
		}
	}); n != 0 {
		t.Errorf("a get answered with no records made %v allocations", n)
	}
	if n := testing.AllocsPerRun(100, func() {
		if err := apply.Apply(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("an apply made %v allocations", n)
	}
}

// A response holding more than its request allows is malformed, refused
// before the Caller allocates for it: more records than keys for get, more
// than the limit for scan and list_expired.
func TestCaller_responseBoundedByRequest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	recs := []Record{{Map: "m", Key: "a", Value: []byte{1}}, {Map: "m", Key: "b", Value: []byte{2}}}
	e := NewEncoder()
	e.Records(recs)
	two := NewCaller(cannedRT{resp: append([]byte(nil), e.Bytes()...)}, "plugin test")
	if _, err := two.Get(ctx, "m", false, []string{"a"}); !IsMalformed(err) {
		t.Errorf("get of 1 key answered with 2 records: %v, want malformed", err)
	}
	if got, err := two.Get(ctx, "m", false, []string{"a", "b"}); err != nil || len(got) != 2 {
		t.Errorf("get of 2 keys: %v %v", got, err)
	}
	e = NewEncoder()
	e.Page(&Page{Records: recs})
	page := NewCaller(cannedRT{resp: append([]byte(nil), e.Bytes()...)}, "plugin test")
	if _, err := page.Scan(ctx, ScanRequest{Map: "m", Limit: 1}); !IsMalformed(err) {
		t.Errorf("scan with limit 1 answered with 2 records: %v, want malformed", err)
	}
	if p, err := page.Scan(ctx, ScanRequest{Map: "m"}); err != nil || len(p.Records) != 2 {
		t.Errorf("scan with the default limit: %+v %v", p, err)
	}
	e = NewEncoder()
	e.Expired(recs)
	expired := NewCaller(cannedRT{resp: append([]byte(nil), e.Bytes()...)}, "plugin test")
	if _, err := expired.ListExpired(ctx, 1, 1); !IsMalformed(err) {
		t.Errorf("list_expired with limit 1 answered with 2 records: %v, want malformed", err)
	}
}

// UnaskedKey finds a record of a key the get did not ask for, whatever the
// order; an answer in the order of keys costs no allocation.
func TestUnaskedKey(t *testing.T) {
	recs := func(keys ...string) []Record {
		out := make([]Record, len(keys))
		for i, k := range keys {
			out[i] = Record{Map: "m", Key: k}
		}
		return out
	}
	for _, tc := range []struct {
		name string
		keys []string
		recs []Record
		want int
	}{
		{"none", []string{"a"}, nil, -1},
		{"in order, skipping", []string{"a", "b", "c", "d"}, recs("b", "d"), -1},
		{"repeated key", []string{"a", "b", "a"}, recs("b", "a"), -1},
		{"out of order", []string{"a", "b", "c"}, recs("c", "a", "b"), -1},
		{"another key", []string{"a"}, recs("x"), 0},
		{"no key asked", nil, recs("a"), 0},
		{"another key after asked ones", []string{"a", "b"}, recs("a", "b", "x"), 2},
		{"another key out of order", []string{"a", "b"}, recs("b", "a", "x"), 2},
	} {
		if got := UnaskedKey(tc.keys, tc.recs); got != tc.want {
			t.Errorf("%s: UnaskedKey(%q, %d records) = %d, want %d", tc.name, tc.keys, len(tc.recs), got, tc.want)
		}
	}
	keys := []string{"a", "b", "c", "d"}
	inOrder := recs("a", "c", "d")
	if n := testing.AllocsPerRun(100, func() { UnaskedKey(keys, inOrder) }); n != 0 {
		t.Errorf("UnaskedKey of an answer in order made %v allocations", n)
	}
}
