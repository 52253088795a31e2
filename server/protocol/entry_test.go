package protocol

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/topgun-go/topgun/server/wire"
)

// TopGun's server answers ENTRY_PROCESS and ENTRY_PROCESS_BATCH at once
// with success false (it runs no processors); its client waits 30 s for
// that answer and then fails the call with a timeout instead of returning
// the result the application checks.
func TestConn_entryProcess_refusedAsTopGun(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join("..", "wire", "testdata", "fixtures", "ENTRY_PROCESS.msgpack"))
	if err != nil {
		t.Skipf("TopGun fixtures not found: %v", err)
	}
	e := newEnv(t, envConfig{})
	c := e.dial(t)

	c.sendRaw(raw) // requestId ep-1, as TopGun's client encodes it
	c.send(&wire.Ping{Timestamp: 1})
	r := expect[*wire.EntryProcessResponse](c)
	if r.RequestID != "ep-1" || r.Success || r.Error == "" {
		t.Fatalf("ENTRY_PROCESS_RESPONSE %+v, want requestId ep-1, success false and an error", r)
	}
	expect[*wire.Pong](c)

	c.send(&wire.EntryProcessBatch{RequestID: "epb-1", MapName: "counters", Keys: []string{"a", "b"}})
	c.send(&wire.Ping{Timestamp: 2})
	b := expect[*wire.EntryProcessBatchResponse](c)
	if b.RequestID != "epb-1" || len(b.Results) != 2 {
		t.Fatalf("ENTRY_PROCESS_BATCH_RESPONSE %+v, want requestId epb-1 and a result per key", b)
	}
	for k, res := range b.Results {
		if (k != "a" && k != "b") || res.Success || res.Error == "" {
			t.Fatalf("result for %q: %+v, want success false and an error", k, res)
		}
	}
	expect[*wire.Pong](c)
}

// An ENTRY_PROCESS_BATCH within MaxMessageBytes must cost the server no
// more memory than a decoded message may take (32 × MaxMessageBytes):
// its answer holds a result per key, many times a key's bytes on the
// wire. 2M repeats of one key (a 2 MiB frame) made the server allocate
// 350 MiB (a results map sized for 2M keys); 400k distinct keys, 146 MiB.
// Repeats are answered once; an answer too large is refused with 413.
func TestConn_entryProcessBatch_memoryBounded(t *testing.T) {
	// Not parallel: it measures the heap's TotalAlloc.
	e := newEnv(t, envConfig{})
	c := e.dial(t)
	c.ping()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	distinct := make([]string, 0, 400_000)
	for i := range cap(distinct) {
		distinct = append(distinct, string([]byte{alphabet[i>>18&63], alphabet[i>>12&63], alphabet[i>>6&63], alphabet[i&63]}))
	}
	limit := uint64(wire.DecodedBytesPerMessageByte * DefaultMaxMessageBytes)
	for _, tc := range []struct {
		name string
		keys []string
		ok   func(wire.Message) bool
	}{
		{"2M repeats of one key", make([]string, 2_000_000), func(m wire.Message) bool {
			r, ok := m.(*wire.EntryProcessBatchResponse)
			return ok && r.RequestID == "epb" && len(r.Results) == 1 && r.Results[""].Error != ""
		}},
		{"400k distinct keys", distinct, func(m wire.Message) bool {
			r, ok := m.(*wire.ErrorMessage)
			return ok && r.Code == 413
		}},
	} {
		frame := mustEncode(t, &wire.EntryProcessBatch{RequestID: "epb", MapName: "m", Keys: tc.keys})
		if len(frame) > DefaultMaxMessageBytes {
			t.Fatalf("%s: frame of %d bytes is over MaxMessageBytes", tc.name, len(frame))
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		c.sendRaw(frame)
		m := c.next()
		runtime.ReadMemStats(&after)
		if !tc.ok(m) {
			t.Errorf("%s: answered %s %+v", tc.name, m.Type(), m)
		}
		if got := after.TotalAlloc - before.TotalAlloc; got > limit {
			t.Errorf("%s: a frame of %d KiB made the server allocate %d MiB, over the %d MiB a decoded message may take",
				tc.name, len(frame)>>10, got>>20, limit>>20)
		}
		c.ping() // the connection serves on
	}
}
