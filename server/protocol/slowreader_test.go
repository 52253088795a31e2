package protocol

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

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
