package wire

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// addSeeds adds every fixture and a few hostile frames to the corpus.
func addSeeds(f *testing.F) {
	for _, name := range fixtureNames(f) {
		raw, err := os.ReadFile(filepath.Join(fixtureDir, name+".msgpack"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte{})
	f.Add([]byte{0xc1})
	f.Add(unhex(f, "82 a4'type' a4'PING' a9'timestamp' cb3ff8000000000000"))       // 1.5
	f.Add(unhex(f, "82 a4'type' a4'PING' a5'extra' dd ffffffff 01"))               // huge array
	f.Add(unhex(f, "82 a4'type' a4'PING' a5'extra' 91919191919191919191 c0"))      // nesting
	f.Add(unhex(f, "82 a4'type' a5'BATCH' a4'data' c4 0a 00000002 81a4'type' 91")) // bad batch
	f.Add(unhex(f, "82 a4'type' a9'QUERY_SUB' a7'payload' 83 a7'queryId' a1'q' a7'mapName' a1'm'"+
		" a5'query' 81 a9'predicate' 83 a2'op' a5'regex' a9'attribute' a1'a' a5'value' a3'(a+'"))
	// The entry-processor messages: TopGun's fixtures hold no BATCH forms.
	proc := map[string]any{"name": "inc", "code": "return (value || 0) + 1;", "args": []any{int64(1), "x"}}
	for _, m := range []Message{
		&EntryProcess{RequestID: "ep", MapName: "m", Key: "k"},
		&EntryProcessBatch{RequestID: "epb", MapName: "m", Keys: []string{"a", "b", "a", ""}, Processor: proc},
		&EntryProcessBatch{RequestID: "epb", Keys: []string{}},
		&EntryProcessBatchResponse{RequestID: "epb", Results: map[string]EntryProcessKeyResult{
			"a": {Error: "refused"}, "b": {Success: true, Result: int64(2), NewValue: map[string]any{"n": 2.5}}}},
	} {
		b, err := Encode(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(unhex(f, "83 a4'type' b3'ENTRY_PROCESS_BATCH' a9'requestId' a1'r' a4'keys' dd ffffffff a1'k'")) // huge key count
}

// FuzzDecode feeds arbitrary frames to Decode. It must never panic; errors
// must be one of the package's kinds; decoded messages must re-encode, the
// re-encoding must decode, and encoding must then be a fixed point. Decoded
// queries are evaluated and BATCH envelopes split and their items decoded.
func FuzzDecode(f *testing.F) {
	addSeeds(f)
	value := map[string]any{"a": int64(1), "name": "x", "tags": []any{"t"}, "nested": map[string]any{"b": 2.5}}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) &&
				!errors.Is(err, ErrTooDeep) && !errors.Is(err, ErrUnknownType) {
				t.Fatalf("error of unknown kind: %v", err)
			}
			return
		}
		re, err := Encode(m)
		if err != nil {
			t.Fatalf("Encode(Decode(b)) failed: %v", err)
		}
		m2, err := Decode(re)
		if err != nil {
			t.Fatalf("Decode(Encode(Decode(b))) failed: %v\n%x", err, re)
		}
		re2, err := Encode(m2)
		if err != nil || !bytes.Equal(re, re2) {
			t.Fatalf("encoding is not a fixed point: %v\n%x\n%x", err, re, re2)
		}
		switch x := m.(type) {
		case *QuerySub:
			want := x.Query.Match(value)
			x.Query.Apply([]QueryResult{{Key: "k", Value: value}, {Key: "j", Value: "s"}})
			x.Query.Compile()
			if x.Query.Match(value) != want {
				t.Fatal("Compile changed what the query matches")
			}
			// As the server prepares a live query: its cost, then its
			// predicate's patterns and sets, shared between nodes.
			_ = x.Query.Cost(MaxQueryCost)
			if _, ok := x.Query.CompileLimit(64 << 20); ok && x.Query.Match(value) != want {
				t.Fatal("CompileLimit changed what the query matches")
			}
		case *Batch:
			if items, err := x.Split(); err == nil {
				for _, it := range items {
					_, _ = Decode(it)
				}
			}
		}
	})
}

// FuzzDecodeHTTPSync feeds arbitrary bodies to both POST /sync decoders.
// The filters of decoded queries are evaluated as the server does: as a
// Where clause, compiled.
func FuzzDecodeHTTPSync(f *testing.F) {
	addSeeds(f)
	f.Add(unhex(f, "83 a8'clientId' a1'c' a9'clientHlc' 83 a6'millis' 01 a7'counter' 00 a6'nodeId' a1'n'"+
		" a7'queries' 91 83 a7'queryId' a1'q' a7'mapName' a1'm' a6'filter' 81 a4'name' 82 a5'$like' a2'x%' a6'$regex' a3'(a+'"))
	value := map[string]any{"a": int64(1), "name": "xy", "tags": []any{"t"}, "nested": map[string]any{"b": 2.5}}
	f.Fuzz(func(t *testing.T, b []byte) {
		if req, err := DecodeHTTPSyncRequest(b); err == nil {
			for _, hq := range req.Queries {
				if m, ok := hq.Filter.(map[string]any); ok {
					q := Query{Where: m}
					want := q.Match(value)
					q.Compile()
					if q.Match(value) != want {
						t.Fatal("Compile changed what the filter matches")
					}
				}
			}
			re, err := EncodeHTTPSyncRequest(req)
			if err != nil {
				t.Fatalf("re-encode request: %v", err)
			}
			if _, err := DecodeHTTPSyncRequest(re); err != nil {
				t.Fatalf("decode re-encoded request: %v", err)
			}
		}
		if resp, err := DecodeHTTPSyncResponse(b); err == nil {
			re, err := EncodeHTTPSyncResponse(resp)
			if err != nil {
				t.Fatalf("re-encode response: %v", err)
			}
			if _, err := DecodeHTTPSyncResponse(re); err != nil {
				t.Fatalf("decode re-encoded response: %v", err)
			}
		}
	})
}
