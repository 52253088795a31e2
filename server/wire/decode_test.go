package wire

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

func TestEncode_golden(t *testing.T) {
	t.Parallel()
	ts := Timestamp{Millis: 1700000000000, Counter: 1, NodeID: "node-1"}
	tests := []struct {
		name string
		msg  Message
		want string
	}{
		{
			// type first, payload wrapped, compact uint, cf for millis.
			name: "SyncRespRoot",
			msg:  &SyncRespRoot{MapName: "users", RootHash: 12345, Timestamp: ts},
			want: "82 a4'type' ae'SYNC_RESP_ROOT' a7'payload' 83 a7'mapName' a5'users' a8'rootHash' cd3039" +
				" a9'timestamp' 83 a6'millis' cf0000018bcfe56800 a7'counter' 01 a6'nodeId' a6'node-1'",
		},
		{
			// What TopGun's server sends for every successful write.
			name: "OpAck",
			msg:  &OpAck{LastID: "7", AchievedLevel: Applied},
			want: "82 a4'type' a6'OP_ACK' a7'payload' 82 a6'lastId' a1'7' ad'achievedLevel' a7'APPLIED'",
		},
		{
			// Flat: fields beside type. An empty AUTH_REQUIRED is just the type.
			name: "AuthRequired",
			msg:  &AuthRequired{},
			want: "81 a4'type' ad'AUTH_REQUIRED'",
		},
		{
			name: "Pong",
			msg:  &Pong{Timestamp: 1700000000000, ServerTime: 5},
			want: "83 a4'type' a4'PONG' a9'timestamp' cf0000018bcfe56800 aa'serverTime' 05",
		},
		{
			// ttlMs: nil is written in records; optional event fields are omitted.
			name: "ServerEvent",
			msg: &ServerEvent{MapName: "m", EventType: EventPut, Key: "k",
				Record: &LWWRecord{Value: map[string]any{"b": int64(2), "a": "x"}, Timestamp: Timestamp{Millis: 3, NodeID: "n"}}},
			want: "82 a4'type' ac'SERVER_EVENT' a7'payload' 84 a7'mapName' a1'm' a9'eventType' a3'PUT' a3'key' a1'k'" +
				" a6'record' 83 a5'value' 82 a1'a' a1'x' a1'b' 02 a9'timestamp' 83 a6'millis' 03 a7'counter' 00 a6'nodeId' a1'n' a5'ttlMs' c0",
		},
		{
			// fullResync is omitted when false, coveringEpoch when absent.
			name: "ORMapSyncRespRoot",
			msg:  &ORMapSyncRespRoot{MapName: "m", Timestamp: Timestamp{NodeID: "n"}},
			want: "82 a4'type' b4'ORMAP_SYNC_RESP_ROOT' a7'payload' 83 a7'mapName' a1'm' a8'rootHash' 00" +
				" a9'timestamp' 83 a6'millis' 00 a7'counter' 00 a6'nodeId' a1'n'",
		},
		{
			name: "ErrorMessage",
			msg:  &ErrorMessage{Code: 429, Message: "rate limit exceeded, slow down"},
			want: "82 a4'type' a5'ERROR' a7'payload' 82 a4'code' cd01ad a7'message' be'rate limit exceeded, slow down'",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Encode(tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			if want := unhex(t, tc.want); !bytes.Equal(got, want) {
				t.Fatalf("Encode =\n%x\nwant\n%x", got, want)
			}
		})
	}
}

func TestDecode_numbers(t *testing.T) {
	t.Parallel()
	ping := func(v any) []byte { return frame(t, "type", "PING", "timestamp", v) }
	accept := []struct {
		name string
		in   any
		want uint64
	}{
		{"fixint", 5, 5},
		{"uint16", 300, 300},
		{"uint64 max", u64Val(math.MaxUint64), math.MaxUint64},
		{"int64 positive", i64Val(1700000000000), 1700000000000},
		{"float64 whole (TS client millis)", f64Val(1700000000000), 1700000000000},
		{"float32 whole", f32Val(1024), 1024},
		{"negative zero", f64Val(math.Copysign(0, -1)), 0},
		{"float64 just below 2^64", f64Val(18446744073709549568), 18446744073709549568},
	}
	for _, tc := range accept {
		m, err := Decode(ping(tc.in))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got := m.(*Ping).Timestamp; got != tc.want {
			t.Errorf("%s: timestamp %d, want %d", tc.name, got, tc.want)
		}
	}
	reject := []struct {
		name string
		in   any
	}{
		{"fraction", f64Val(1.5)},
		{"negative int", -1},
		{"negative float", f64Val(-1)},
		{"NaN", f64Val(math.NaN())},
		{"+Inf", f64Val(math.Inf(1))},
		{"2^64 as float", f64Val(18446744073709551616)},
		{"string", "17"},
		{"nil", nil},
		{"bool", true},
	}
	for _, tc := range reject {
		_, err := Decode(ping(tc.in))
		var de *DecodeError
		if !errors.Is(err, ErrMalformed) || !errors.As(err, &de) || de.Path != "timestamp" {
			t.Errorf("%s: err = %v, want ErrMalformed at timestamp", tc.name, err)
		}
	}

	// u32 fields reject values above 2^32-1 in any form.
	ts := func(counter any) []byte {
		return frame(t, "type", "GC_PRUNE", "payload", kv{"olderThan", kv{"millis", 1, "counter", counter, "nodeId", "n"}})
	}
	if m, err := Decode(ts(f64Val(4294967295))); err != nil || m.(*GCPrune).OlderThan.Counter != math.MaxUint32 {
		t.Errorf("counter 2^32-1 as float: %v %v", m, err)
	}
	for _, c := range []any{f64Val(4294967296), u64Val(4294967296)} {
		_, err := Decode(ts(c))
		var de *DecodeError
		if !errors.As(err, &de) || de.Path != "payload.olderThan.counter" || !errors.Is(err, ErrMalformed) {
			t.Errorf("counter %v: err = %v, want ErrMalformed at payload.olderThan.counter", c, err)
		}
	}
}

func TestClientOp_absentVsNil(t *testing.T) {
	t.Parallel()
	rec := kv{"value", "v", "timestamp", kv{"millis", 1, "counter", 0, "nodeId", "n"}}
	orRec := kv{"value", "v", "timestamp", kv{"millis", 1, "counter", 0, "nodeId", "n"}, "tag", "t1"}
	tests := []struct {
		name   string
		fields []any
		kind   OpKind
		check  func(op *ClientOp) bool
	}{
		{"record present", []any{"record", rec}, OpPut, func(op *ClientOp) bool { return op.Record != nil && !op.RecordNil }},
		{"record absent", nil, OpPut, func(op *ClientOp) bool { return op.Record == nil && !op.RecordNil }},
		{"record nil is a remove", []any{"record", nil}, OpRemove, func(op *ClientOp) bool { return op.Record == nil && op.RecordNil }},
		{"opType REMOVE", []any{"opType", "REMOVE", "record", rec}, OpRemove, nil},
		{"orRecord", []any{"orRecord", orRec, "orTag", "t1"}, OpORAdd, func(op *ClientOp) bool { return op.ORRecord.Tag == "t1" && *op.ORTag == "t1" }},
		{"orTag alone", []any{"orTag", "t1"}, OpORRemove, nil},
		{"orTag nil", []any{"orTag", nil}, OpPut, func(op *ClientOp) bool { return op.ORTag == nil && op.ORTagNil }},
		{"orRecord nil with orTag", []any{"orRecord", nil, "orTag", "t1"}, OpPut, func(op *ClientOp) bool { return op.ORRecordNil }},
		{"remove wins over orRecord", []any{"record", nil, "orRecord", orRec}, OpRemove, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			payload := append(kv{"id", "1", "mapName", "m", "key", "k"}, tc.fields...)
			raw := frame(t, "type", "CLIENT_OP", "payload", payload)
			m, err := Decode(raw)
			if err != nil {
				t.Fatal(err)
			}
			op := &m.(*ClientOpMessage).ClientOp
			if op.Kind() != tc.kind {
				t.Errorf("Kind = %s, want %s", op.Kind(), tc.kind)
			}
			if tc.check != nil && !tc.check(op) {
				t.Errorf("decoded op %+v", op)
			}
			// Absent and nil survive a round trip.
			re, err := Encode(m)
			if err != nil {
				t.Fatal(err)
			}
			m2, err := Decode(re)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m, m2) {
				t.Errorf("round trip changed the op:\n%+v\n%+v", m, m2)
			}
		})
	}
}

func TestDecode_errors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   []byte
		kind error
		path string
		typ  string
	}{
		{"empty", nil, ErrMalformed, "", ""},
		{"not a map", frameArray(t), ErrMalformed, "", ""},
		{"no type", frame(t, "payload", kv{}), ErrMalformed, "", ""},
		{"type not a string", frame(t, "type", 1), ErrMalformed, "type", ""},
		{"trailing bytes", append(frame(t, "type", "PING", "timestamp", 1), 0xc0), ErrMalformed, "", "PING"},
		{"truncated", frame(t, "type", "PING", "timestamp", 1)[:10], ErrMalformed, "type", ""},
		{"missing payload", frame(t, "type", "OP_ACK"), ErrMalformed, "", "OP_ACK"},
		{"payload not a map", frame(t, "type", "OP_ACK", "payload", "x"), ErrMalformed, "payload", "OP_ACK"},
		{"missing required field", frame(t, "type", "OP_ACK", "payload", kv{}), ErrMalformed, "payload", "OP_ACK"},
		{"wrong field type deep", frame(t, "type", "CLIENT_OP", "payload", kv{"mapName", "m", "key", "k",
			"record", kv{"value", 1, "timestamp", kv{"millis", "soon", "counter", 0, "nodeId", "n"}}}),
			ErrMalformed, "payload.record.timestamp.millis", "CLIENT_OP"},
		{"array element path", frame(t, "type", "OP_BATCH", "payload", kv{"ops", []any{kv{"mapName", "m", "key", "k"}, kv{"mapName", "m"}}}),
			ErrMalformed, "payload.ops[1]", "OP_BATCH"},
		{"invalid utf-8 in a name", frame(t, "type", "QUERY_UNSUB", "payload", kv{"queryId", rawVal{0xa2, 0xff, 0xfe}}),
			ErrMalformed, "payload.queryId", "QUERY_UNSUB"},
		{"unknown enum", frame(t, "type", "OP_BATCH", "payload", kv{"ops", []any{}, "writeConcern", "SOMETIMES"}),
			ErrMalformed, "payload.writeConcern", "OP_BATCH"},
		{"unknown predicate op", frame(t, "type", "QUERY_SUB", "payload", kv{"queryId", "q", "mapName", "m",
			"query", kv{"predicate", kv{"op", "xor"}}}), ErrMalformed, "payload.query.predicate.op", "QUERY_SUB"},
		{"reserved code 0xc1", append(unhex(t, "82 a4'type' a4'PING' a9'timestamp'"), 0xc1), ErrMalformed, "timestamp", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Decode(tc.in)
			if err == nil {
				t.Fatalf("Decode = %+v, want error", m)
			}
			if !errors.Is(err, tc.kind) {
				t.Fatalf("err = %v, want %v", err, tc.kind)
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("err %T is not a *DecodeError", err)
			}
			if de.Path != tc.path || (tc.typ != "" && de.Type != tc.typ) {
				t.Errorf("err = %v (type %q path %q), want type %q path %q", err, de.Type, de.Path, tc.typ, tc.path)
			}
			if !strings.HasPrefix(err.Error(), "wire: ") {
				t.Errorf("error %q does not name the package", err)
			}
		})
	}
}

func frameArray(t *testing.T) []byte { return []byte{0x91, 0x01} }

func TestDecode_unknownType(t *testing.T) {
	t.Parallel()
	_, err := Decode(frame(t, "type", "TOPIC_PUB", "payload", kv{"topic", "x", "data", 1}))
	var ut *UnknownTypeError
	if !errors.As(err, &ut) || ut.Type != "TOPIC_PUB" || !errors.Is(err, ErrUnknownType) {
		t.Fatalf("err = %v, want *UnknownTypeError for TOPIC_PUB", err)
	}
}

func TestDecode_orderAndUnknownFields(t *testing.T) {
	t.Parallel()
	// type last, unknown fields (the TS client's "timestamp"/"synced" on ops)
	// and a non-string key are ignored.
	raw := frame(t,
		"payload", kv{"key", "k", "extra", kv{"deep", []any{1, 2}}, "mapName", "m", "synced", false, "timestamp", 5, 7, "x"},
		"junk", nil,
		"type", "CLIENT_OP")
	m, err := Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	op := m.(*ClientOpMessage)
	if op.MapName != "m" || op.Key != "k" {
		t.Fatalf("decoded %+v", op)
	}
}

func TestDecode_values(t *testing.T) {
	t.Parallel()
	raw := frame(t, "type", "QUERY_UPDATE", "payload", kv{"queryId", "q", "key", "k", "changeType", "ENTER",
		"value", kv{
			"i", -5, "u", u64Val(math.MaxUint64), "small", u64Val(7), "f", f32Val(1.5), "s", "x", "b", binVal{1, 2},
			"n", nil, "t", true, "a", []any{1, "y"}, 12, "int key", "ext", rawVal{0xd6, 0xff, 0, 0, 0, 1},
		}})
	m, err := Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"i": int64(-5), "u": uint64(math.MaxUint64), "small": int64(7), "f": 1.5, "s": "x", "b": []byte{1, 2},
		"n": nil, "t": true, "a": []any{int64(1), "y"}, "12": "int key", "ext": nil,
	}
	if got := m.(*QueryUpdate).Value; !reflect.DeepEqual(got, want) {
		t.Fatalf("value =\n%#v\nwant\n%#v", got, want)
	}
}

func TestLimits_depth(t *testing.T) {
	t.Parallel()
	nested := func(levels int) []byte {
		// {type: QUERY_UPDATE, payload: {queryId, key, changeType, value: [[[...]]]}}
		head := frame(t, "type", "QUERY_UPDATE", "payload", kv{"queryId", "q", "key", "k", "changeType", "ENTER", "value", rawVal{}})
		out := append([]byte{}, head...)
		out = append(out, bytes.Repeat([]byte{0x91}, levels)...)
		return append(out, 0xc0)
	}
	// The message map and the payload are 2 levels; 254 nested arrays reach 256.
	if _, err := Decode(nested(DefaultMaxDepth - 2)); err != nil {
		t.Fatalf("depth exactly %d: %v", DefaultMaxDepth, err)
	}
	if _, err := Decode(nested(DefaultMaxDepth - 1)); !errors.Is(err, ErrTooDeep) {
		t.Fatalf("depth %d: err = %v, want ErrTooDeep", DefaultMaxDepth+1, err)
	}
	// A depth bomb filling the frame fails fast with ErrTooDeep, in a
	// value and in an ignored field alike.
	bomb := nested(DefaultMaxMessageBytes - 100)
	if _, err := Decode(bomb); !errors.Is(err, ErrTooDeep) {
		t.Fatalf("bomb: err = %v, want ErrTooDeep", err)
	}
	ignored := append(unhex(t, "82 a4'type' a4'PING' a5'extra'"), bytes.Repeat([]byte{0x81, 0xa1, 'k'}, 100000)...)
	if _, err := Decode(ignored); !errors.Is(err, ErrTooDeep) {
		t.Fatalf("bomb in ignored field: err = %v, want ErrTooDeep", err)
	}
	// A deep predicate tree.
	pred := []byte{}
	for i := 0; i < 300; i++ {
		pred = append(pred, unhex(t, "82 a2'op' a3'not' a8'children' 91")...)
	}
	pred = append(pred, unhex(t, "81 a2'op' a2'eq'")...)
	raw := append(unhex(t, "82 a4'type' a9'QUERY_SUB' a7'payload' 83 a7'queryId' a1'q' a7'mapName' a1'm' a5'query' 81 a9'predicate'"), pred...)
	if _, err := Decode(raw); !errors.Is(err, ErrTooDeep) {
		t.Fatalf("deep predicate: err = %v, want ErrTooDeep", err)
	}
	// A custom, smaller limit.
	l := DefaultLimits()
	l.MaxDepth = 8
	if _, err := l.Decode(nested(7)); !errors.Is(err, ErrTooDeep) {
		t.Fatalf("MaxDepth 8: err = %v, want ErrTooDeep", err)
	}
}

func TestLimits_hugeLengths(t *testing.T) {
	// Not parallel: AllocsPerRun.
	prefix := unhex(t, "82 a4'type' a4'PING' a5'extra'")
	tests := []struct {
		name string
		tail string
		kind error
	}{
		{"array32 of 4G elements", "dd ffffffff 01", ErrTooLarge},
		{"map32 of 4G entries", "df ffffffff 01 01", ErrTooLarge},
		{"array16 longer than the frame", "dc ffff 01 02", ErrTooLarge},
		{"str32 of 4GB", "db ffffffff 'abc'", ErrMalformed},
		{"bin32 of 4GB", "c6 ffffffff 'abc'", ErrMalformed},
		{"ext32 of 4GB", "c9 ffffffff 01 'abc'", ErrMalformed},
	}
	for _, tc := range tests {
		raw := append(append([]byte{}, prefix...), unhex(t, tc.tail)...)
		allocs := testing.AllocsPerRun(5, func() { _, _ = Decode(raw) })
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := Decode(raw)
		runtime.ReadMemStats(&after)
		if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
			t.Errorf("%s: %d KiB allocated to reject a %d-byte frame", tc.name, got>>10, len(raw))
		}
		if !errors.Is(err, tc.kind) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.kind)
		}
		if allocs > 50 {
			t.Errorf("%s: %v allocations to reject a %d-byte frame", tc.name, allocs, len(raw))
		}
	}
	// Frames over the size limit are refused before parsing.
	big := make([]byte, DefaultMaxMessageBytes+1)
	if _, err := Decode(big); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized frame: err = %v, want ErrTooLarge", err)
	}
	if _, err := DecodeHTTPSyncRequest(big); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized /sync body: err = %v, want ErrTooLarge", err)
	}
}

func TestBatch_packSplit(t *testing.T) {
	t.Parallel()
	a, _ := Encode(&Ping{Timestamp: 1})
	b, _ := Encode(&QueryUnsub{QueryID: "q"})
	batch, err := PackBatch(a, b, []byte{})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := Encode(batch)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	frames, err := m.(*Batch).Split()
	if err != nil {
		t.Fatal(err)
	}
	if len(frames) != 3 || !bytes.Equal(frames[0], a) || !bytes.Equal(frames[1], b) || len(frames[2]) != 0 {
		t.Fatalf("frames = %x", frames)
	}
	if got, err := Decode(frames[1]); err != nil || got.(*QueryUnsub).QueryID != "q" {
		t.Fatalf("inner decode = %v, %v", got, err)
	}

	// An empty BATCH (nil data) encodes as an empty bin and splits to nothing.
	raw, err = Encode(&Batch{})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := Decode(raw); err != nil {
		t.Fatalf("empty batch: %v", err)
	} else if items, err := m.(*Batch).Split(); err != nil || len(items) != 0 {
		t.Fatalf("empty batch split = %v, %v", items, err)
	}

	tests := []struct {
		name  string
		batch Batch
		kind  error
	}{
		{"too many items", Batch{Count: DefaultMaxBatchItems + 1}, ErrTooLarge},
		{"count above data", Batch{Count: 2, Data: []byte{0, 0, 0, 1, 0xc0}}, ErrMalformed},
		{"length past end", Batch{Count: 1, Data: []byte{0, 0, 0, 9, 0xc0}}, ErrMalformed},
		{"bytes left over", Batch{Count: 1, Data: []byte{0, 0, 0, 1, 0xc0, 0xc0}}, ErrMalformed},
		{"huge count tiny data", Batch{Count: math.MaxUint32, Data: []byte{0}}, ErrTooLarge},
	}
	for _, tc := range tests {
		if _, err := tc.batch.Split(); !errors.Is(err, tc.kind) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.kind)
		}
	}
}

func TestEncode_errors(t *testing.T) {
	t.Parallel()
	cyclic := []any{nil}
	cyclic[0] = cyclic
	tests := []struct {
		name string
		msg  Message
	}{
		{"unsupported value", &QueryUpdate{QueryID: "q", Key: "k", Value: make(chan int), ChangeType: Enter}},
		{"cyclic value", &QueryUpdate{QueryID: "q", Key: "k", Value: cyclic, ChangeType: Enter}},
		{"nil message", nil},
	}
	for _, tc := range tests {
		_, err := Encode(tc.msg)
		var ee *EncodeError
		if !errors.As(err, &ee) {
			t.Errorf("%s: err = %v, want *EncodeError", tc.name, err)
		}
	}
	// Other Go types are written through reflection, with sorted keys.
	raw, err := Encode(&QueryUpdate{QueryID: "q", Key: "k", ChangeType: Enter,
		Value: map[string]int{"z": 1, "a": 2}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.(*QueryUpdate).Value; !reflect.DeepEqual(got, map[string]any{"a": int64(2), "z": int64(1)}) {
		t.Fatalf("value = %#v", got)
	}
}

func TestLimits_Validate(t *testing.T) {
	t.Parallel()
	if err := DefaultLimits().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, l := range []Limits{{}, {MaxMessageBytes: 1 << 20, MaxDepth: 1, MaxBatchItems: 1}, {MaxMessageBytes: 1 << 20, MaxDepth: 100, MaxBatchItems: 0}} {
		if err := l.Validate(); err == nil || !strings.HasPrefix(err.Error(), "wire: ") {
			t.Errorf("Validate(%+v) = %v, want a wire: error", l, err)
		}
	}
}

func TestHTTPSync_emptyBody(t *testing.T) {
	t.Parallel()
	req, err := DecodeHTTPSyncRequest(nil)
	if err != nil || req.ClientID != "" || req.Operations != nil {
		t.Fatalf("empty body = %+v, %v", req, err)
	}
	if _, err := DecodeHTTPSyncRequest([]byte{0xc1}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("bad body: err = %v", err)
	}
}

// TestDecode_nonStringMapKeysBecomeTopGunDisplayStrings checks the promise
// of the package doc ("Non-string map keys become strings (1 → "1"), as
// TopGun's server converts them"): TopGun's server turns a non-string key
// into rmpv's Display string, which writes floats without exponent and in
// their own width, binary and arrays as "[1, 2]", maps as "{k: v}" and
// extensions as "[type, [bytes]]" (record.DecodeWire does the same). A frame
// with such keys must not be refused.
func TestDecode_nonStringMapKeysBecomeTopGunDisplayStrings(t *testing.T) {
	t.Parallel()
	value := kv{
		f64Val(1e21), "big float",
		f64Val(1e-6), "small float",
		f32Val(0.1), "float32",
		f64Val(2), "whole float",
		binVal{1, 2}, "bin",
		[]any{1, "a"}, "array",
		kv{"k", 1}, "map",
		rawVal{0xd4, 0x05, 0x07}, "ext",
		-3, "negative",
		true, "bool",
		nil, "nil",
	}
	raw := frame(t, "type", "QUERY_UPDATE", "payload", kv{"queryId", "q", "key", "k", "changeType", "ENTER", "value", value})
	m, err := Decode(raw)
	if err != nil {
		t.Fatalf("Decode refused a frame TopGun accepts: %v", err)
	}
	want := map[string]any{
		"1000000000000000000000": "big float",
		"0.000001":               "small float",
		"0.1":                    "float32",
		"2":                      "whole float",
		"[1, 2]":                 "bin",
		`[1, "a"]`:               "array",
		`{"k": 1}`:               "map",
		"[5, [7]]":               "ext",
		"-3":                     "negative",
		"true":                   "bool",
		"nil":                    "nil",
	}
	if got := m.(*QueryUpdate).Value; !reflect.DeepEqual(got, want) {
		t.Fatalf("value =\n%#v\nwant\n%#v", got, want)
	}
}

// TestLimits_frameAllocatesInProportionToItsContent checks the promise of
// the package doc that no length in a frame makes the decoder allocate
// beyond what the frame holds: a 2 MiB frame of one-byte elements (nils
// where ClientOps or OR entries belong, or one map key repeated) must not
// make Decode allocate hundreds of MiB. Decode runs before authentication,
// so any client could send such frames.
func TestLimits_frameAllocatesInProportionToItsContent(t *testing.T) {
	n := (DefaultMaxMessageBytes - 128) / 2
	nils := func(count int) rawVal { return rawVal(bytes.Repeat([]byte{0xc0}, count)) }
	arrayHeader := func(count int) rawVal {
		return rawVal{0xdd, byte(count >> 24), byte(count >> 16), byte(count >> 8), byte(count)}
	}
	mapHeader := func(count int) rawVal {
		return rawVal{0xdf, byte(count >> 24), byte(count >> 16), byte(count >> 8), byte(count)}
	}
	cases := map[string][]byte{
		"OP_BATCH ops of nils": append(frame(t, "type", "OP_BATCH", "payload", kv{"ops", arrayHeader(2 * n)}), nils(2*n)...),
		"ORMAP_PUSH_DIFF entries of nils": append(frame(t, "type", "ORMAP_PUSH_DIFF", "payload",
			kv{"mapName", "m", "entries", arrayHeader(2 * n)}), nils(2*n)...),
		"value map with one key repeated": append(frame(t, "type", "QUERY_UPDATE", "payload",
			kv{"queryId", "q", "key", "k", "changeType", "ENTER", "value", mapHeader(n)}), bytes.Repeat([]byte{0, 0}, n)...),
	}
	for name, raw := range cases {
		if len(raw) > DefaultMaxMessageBytes {
			t.Fatalf("%s: frame of %d bytes is over the limit", name, len(raw))
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, _ = Decode(raw)
		runtime.ReadMemStats(&after)
		got := after.TotalAlloc - before.TotalAlloc
		if got > 32<<20 {
			t.Errorf("%s: decoding a frame of %d KiB allocated %d MiB", name, len(raw)>>10, got>>20)
		}
	}
}

func TestDecode_unknownTypeRequestID(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		frame []byte
		id    string
	}{
		{"search", frame(t, "type", "SEARCH", "payload", kv{"requestId", "r-1", "mapName", "m", "query", "q"}), "r-1"},
		{"type last", frame(t, "payload", kv{"queryId", "q-1", "sql", "SELECT 1"}, "type", "SQL_QUERY"), "q-1"},
		{"vector id", frame(t, "type", "VECTOR_SEARCH", "payload", kv{"id", "v-1", "k", 3}), "v-1"},
		{"id not a string", frame(t, "type", "HYBRID_SEARCH", "payload", kv{"requestId", 7}), ""},
		{"no payload", frame(t, "type", "SEARCH", "requestId", "flat"), ""},
		{"not refusable", frame(t, "type", "LOCK_REQUEST", "payload", kv{"requestId", "l-1"}), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(tc.frame)
			var ut *UnknownTypeError
			if !errors.As(err, &ut) || ut.RequestID != tc.id {
				t.Fatalf("err = %#v, want an *UnknownTypeError with RequestID %q", err, tc.id)
			}
			if r, ok := NewRefusal(ut, "no"); ok != (tc.id != "") || ok && r.ID != tc.id {
				t.Fatalf("NewRefusal = %+v, %v", r, ok)
			}
		})
	}
}
