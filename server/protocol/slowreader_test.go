package protocol

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/topgun-go/topgun/server/wire"
)

// A client on a slow link reads a large POST /sync answer for longer than
// WriteTimeout: the answer, which may hold up to OutboundBytes, is allowed
// the time its size takes at MinWriteRate on top. Before, a client slower
// than its size per WriteTimeout was cut every time and asked for the same
// answer again, never syncing.
func TestHTTPSync_largeAnswerToSlowReader(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{opts: Options{WriteTimeout: 50 * time.Millisecond}})
	value := strings.Repeat("v", 1<<20)
	const records = 16 // well past what the sockets' buffers hold
	for i := range records {
		k := string(rune('a' + i))
		e.postSync(t, &wire.HTTPSyncRequest{ClientID: "w", ClientHLC: cts("w"), Operations: []wire.ClientOp{putOp(k, "m", k, value, cts("w"))}}, "")
	}
	body, err := wire.EncodeHTTPSyncRequest(&wire.HTTPSyncRequest{ClientID: "r", ClientHLC: cts("r"), SyncMaps: []wire.SyncMapEntry{{MapName: "m"}}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(e.http.URL+"/sync", "application/x-msgpack", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST /sync = %d", resp.StatusCode)
	}
	// About 16 MiB/s: seconds for the answer, far more than WriteTimeout.
	var out bytes.Buffer
	buf := make([]byte, 16<<10)
	for {
		n, err := resp.Body.Read(buf)
		out.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading the answer slowly, after %d bytes: %v", out.Len(), err)
		}
		time.Sleep(time.Millisecond)
	}
	got, err := wire.Limits{MaxMessageBytes: 64 << 20}.DecodeHTTPSyncResponse(out.Bytes())
	if err != nil {
		t.Fatalf("answer of %d bytes read slowly: %v", out.Len(), err)
	}
	n := 0
	for _, d := range got.Deltas {
		n += len(d.Records)
	}
	if n != records {
		t.Errorf("answer holds %d records, want %d", n, records)
	}
}

// A client reading a large WebSocket answer slowly, its PING behind it
// unanswered until the answer is written (the reader waits for room), is
// not idle: it is closed neither halfway nor right after the answer. Before,
// the idle timer closed it once the answer was read, and a client that
// subscribes again on reconnecting was sent the same answer every time.
func TestWS_largeAnswerToSlowReaderIsNotIdle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{opts: Options{IdleTimeout: time.Second, OutboundBytes: 4 << 20}})
	value := strings.Repeat("v", 1<<20)
	const records = 16 // well past what the sockets' buffers hold
	for i := range records {
		k := string(rune('a' + i))
		e.postSync(t, &wire.HTTPSyncRequest{ClientID: "w", ClientHLC: cts("w"), Operations: []wire.ClientOp{putOp(k, "m", k, value, cts("w"))}}, "")
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, e.wsURL("/ws"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	ws.SetReadLimit(64 << 20)
	send := func(m wire.Message) {
		b, err := wire.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		if err := ws.Write(ctx, websocket.MessageBinary, b); err != nil {
			t.Fatal(err)
		}
	}
	send(&wire.QuerySub{QueryID: "q", MapName: "m"})
	_, r, err := ws.Reader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16<<10)
	if _, err := io.ReadFull(r, buf[:1]); err != nil {
		t.Fatal(err)
	}
	// The answer is being written: the PING waits behind it.
	send(&wire.Ping{Timestamp: 1})
	// About 4 MiB/s: the answer takes several idle timeouts to read.
	n := 1
	for {
		k, err := r.Read(buf)
		n += k
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading the answer slowly, after %d bytes: %v", n, err)
		}
		time.Sleep(4 * time.Millisecond)
	}
	if n < records<<20 {
		t.Fatalf("answer of %d bytes, want more than %d", n, records<<20)
	}
	_, b, err := ws.Read(ctx)
	if err != nil {
		t.Fatalf("after the answer: %v, want the PONG", err)
	}
	if m, err := wire.Decode(b); err != nil || m.Type() != wire.TypePong {
		t.Fatalf("after the answer: %v (%v), want the PONG", m, err)
	}
}
