package protocol

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/plugins/null"
	"github.com/topgun-go/topgun/server/record"
	"github.com/topgun-go/topgun/server/store"
	"github.com/topgun-go/topgun/server/wire"
)

// postSync sends a POST /sync and decodes a 200 answer.
func (e *env) postSync(t *testing.T, req *wire.HTTPSyncRequest, token string) *wire.HTTPSyncResponse {
	t.Helper()
	body, err := wire.EncodeHTTPSyncRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	code, out := e.postRaw(t, body, token)
	if code != 200 {
		t.Fatalf("POST /sync = %d %s", code, out)
	}
	resp, err := wire.DecodeHTTPSyncResponse(out)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func (e *env) postRaw(t *testing.T, body []byte, token string) (int, []byte) {
	t.Helper()
	r, err := http.NewRequest("POST", e.http.URL+"/sync", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/x-msgpack")
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == 200 && resp.Header.Get("Content-Type") != "application/msgpack" {
		t.Fatalf("content type %q", resp.Header.Get("Content-Type"))
	}
	return resp.StatusCode, out
}

func TestHTTPSync_operationsDeltasQueries(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	sub := e.dial(t)
	sub.send(&wire.QuerySub{QueryID: "q", MapName: "todos"})
	expect[*wire.QueryResp](sub)

	t0 := cts("http-client")
	resp := e.postSync(t, &wire.HTTPSyncRequest{ClientID: "c1", ClientHLC: t0, Operations: []wire.ClientOp{
		putOp("1", "todos", "a", map[string]any{"done": false}, cts("http-client")),
		putOp("2", "todos", "b", map[string]any{"done": true}, cts("http-client")),
		putOp("3", "_topgun_device_credentials", "x", "no", cts("http-client")),
	}}, "")
	if resp.Ack == nil || resp.Ack.LastID != "3" {
		t.Fatalf("ack %+v", resp.Ack)
	}
	if len(resp.Errors) != 1 || resp.Errors[0].Context != "3" || resp.Errors[0].Code != 403 {
		t.Fatalf("errors %+v", resp.Errors)
	}
	// Live subscribers hear of HTTP writes.
	if ev := expect[*wire.ServerEvent](sub); ev.Key != "a" {
		t.Fatalf("event %+v", ev)
	}

	// Deltas select by commit time with one millisecond of overlap (a
	// re-sent record is harmless to the client's LWW merge): leave a gap
	// so "since mid" excludes the first writes.
	time.Sleep(5 * time.Millisecond)
	mid := cts("http-client")
	rm := cts("http-client")
	e.postSync(t, &wire.HTTPSyncRequest{ClientID: "c1", ClientHLC: rm, Operations: []wire.ClientOp{removeOp("4", "todos", "a", rm)}}, "")

	// Deltas since the start: b, and a as a REMOVE; since mid: only a.
	resp = e.postSync(t, &wire.HTTPSyncRequest{ClientID: "c2", ClientHLC: cts("x"), SyncMaps: []wire.SyncMapEntry{
		{MapName: "todos", LastSyncTimestamp: wire.Timestamp{}},
		{MapName: "todos", LastSyncTimestamp: mid},
	}}, "")
	if len(resp.Deltas) != 2 {
		t.Fatalf("deltas %+v", resp.Deltas)
	}
	all, since := resp.Deltas[0], resp.Deltas[1]
	if len(all.Records) != 2 || all.Records[0].Key != "a" || all.Records[0].EventType != wire.EventRemove ||
		all.Records[0].Record.Value != nil || all.Records[1].Key != "b" || all.Records[1].EventType != wire.EventPut {
		t.Fatalf("full delta %+v", all.Records)
	}
	if len(since.Records) != 1 || since.Records[0].Key != "a" || since.Records[0].Record.Timestamp != rm {
		t.Fatalf("delta since mid %+v", since.Records)
	}
	if since.ServerSyncTimestamp.Millis == 0 || resp.ServerHLC.Millis == 0 {
		t.Fatalf("timestamps %+v %+v", since.ServerSyncTimestamp, resp.ServerHLC)
	}

	// Queries: filter as a where-clause, key order, pages with a cursor.
	var ops []wire.ClientOp
	for i := 0; i < 5; i++ {
		ops = append(ops, putOp(itoa(10+i), "items", "k"+itoa(i), map[string]any{"kind": "x", "i": int64(i)}, cts("h")))
	}
	ops = append(ops, putOp("20", "items", "other", map[string]any{"kind": "y"}, cts("h")))
	e.postSync(t, &wire.HTTPSyncRequest{ClientID: "c1", ClientHLC: cts("h"), Operations: ops}, "")
	lim := uint32(2)
	var got []int64
	cursor := ""
	for page := 0; page < 5; page++ {
		resp = e.postSync(t, &wire.HTTPSyncRequest{ClientID: "c1", ClientHLC: cts("h"), Queries: []wire.HTTPQuery{
			{QueryID: "q1", MapName: "items", Filter: map[string]any{"kind": "x"}, Limit: &lim, Cursor: cursor},
		}}, "")
		qr := resp.QueryResults[0]
		for _, v := range qr.Results {
			got = append(got, v.(map[string]any)["i"].(int64))
		}
		if qr.HasMore == nil || !*qr.HasMore {
			break
		}
		cursor = qr.NextCursor
	}
	if len(got) != 5 || got[0] != 0 || got[4] != 4 {
		t.Fatalf("paged results %v", got)
	}
	resp = e.postSync(t, &wire.HTTPSyncRequest{ClientID: "c1", ClientHLC: cts("h"), Queries: []wire.HTTPQuery{{QueryID: "bad", MapName: "items", Cursor: "!!!"}}}, "")
	if len(resp.Errors) != 1 || resp.Errors[0].Code != 400 || resp.Errors[0].Context != "bad" {
		t.Fatalf("bad cursor: %+v", resp.Errors)
	}
}

func TestHTTPSync_errors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{opts: Options{Auth: mustAuth(t, testSecret), MaxMessageBytes: 2048, MaxBatchOps: 3}})
	req := &wire.HTTPSyncRequest{ClientID: "c", ClientHLC: cts("c"), Operations: []wire.ClientOp{putOp("1", "m", "k", "v", cts("c"))}}
	body, _ := wire.EncodeHTTPSyncRequest(req)
	jsonErr := func(b []byte) (int, string) {
		var m struct {
			Code    int
			Message string
		}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("error body %q: %v", b, err)
		}
		return m.Code, m.Message
	}
	if code, out := e.postRaw(t, body, ""); code != 401 {
		t.Fatalf("no token: %d %s", code, out)
	}
	if code, out := e.postRaw(t, body, "garbage"); code != 401 {
		t.Fatalf("bad token: %d %s", code, out)
	}
	tok := userToken(t, "alice")
	if code, out := e.postRaw(t, []byte{0xc1, 0x00}, tok); code != 400 {
		t.Fatalf("bad body: %d %s", code, out)
	} else if c, msg := jsonErr(out); c != 400 || !strings.Contains(msg, "invalid MsgPack body") {
		t.Fatalf("bad body answer %d %q", c, msg)
	}
	code, out := e.postRaw(t, bytes.Repeat([]byte{0xc0}, 4096), tok)
	if c, msg := jsonErr(out); code != 413 || c != 413 || !strings.Contains(msg, "TOPGUN_MAX_MESSAGE_BYTES") {
		t.Fatalf("large body: %d %s", code, out)
	}
	// Over the ops limit: an error naming it, no ack, nothing stored
	// (ids that are not numbers: TopGun's numeric ones are acknowledged in
	// parts, see TestHTTPSync_backlogOverBatchLimitIsAcknowledgedInParts).
	many := &wire.HTTPSyncRequest{ClientID: "c", ClientHLC: cts("c")}
	for i := 0; i < 4; i++ {
		many.Operations = append(many.Operations, putOp("op-"+itoa(i), "m", "k"+itoa(i), "v", cts("c")))
	}
	resp := e.postSync(t, many, tok)
	if resp.Ack != nil || len(resp.Errors) != 1 || resp.Errors[0].Code != 413 || !strings.Contains(resp.Errors[0].Message, "TOPGUN_MAX_BATCH_OPS") {
		t.Fatalf("too many ops: %+v", resp)
	}
	if _, _, ok := e.getLWW("m", "k0"); ok {
		t.Fatal("ops of a refused request were stored")
	}
	// A backend failure: no ack.
	e.be.setFail(errInjected)
	resp = e.postSync(t, req, tok)
	if resp.Ack != nil || len(resp.Errors) != 1 || resp.Errors[0].Code != 500 {
		t.Fatalf("failing backend: %+v", resp)
	}
	e.be.setFail(nil)
	if resp = e.postSync(t, req, tok); resp.Ack == nil || resp.Ack.LastID != "1" {
		t.Fatalf("ack %+v", resp)
	}
	// An empty body is an empty request.
	if code, _ := e.postRaw(t, nil, tok); code != 200 {
		t.Fatalf("empty body: %d", code)
	}
}

// A client that stops sending its body halfway gets 408 once IdleTimeout
// passes, and its connection is closed, instead of holding both forever.
func TestHTTPSync_slowBody(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{opts: Options{IdleTimeout: 200 * time.Millisecond}})
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.http.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "POST /sync HTTP/1.1\r\nHost: test\r\nContent-Type: application/x-msgpack\r\nContent-Length: 100\r\n\r\n0123456789"); err != nil {
		t.Fatal(err)
	}
	// Not a speed check: without the server's deadline nothing would ever
	// arrive, and this read would fail at its own deadline.
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), "did not arrive within 200ms") {
		t.Fatalf("stalled body: %d %s", resp.StatusCode, body)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("connection still open after the timeout: %v", err)
	}
	// Whole requests are still served.
	if code, out := e.postRaw(t, nil, ""); code != 200 {
		t.Fatalf("after a stalled body: %d %s", code, out)
	}
}

// One answer holds at most MaxQueryResults records (and OutboundBytes
// bytes): a delta larger than that comes in pages, oldest first, each
// serverSyncTimestamp resuming where the page ended; a second delta or a
// query that no longer fits gets an error naming the limits, and a query
// that pages with limit fits.
func TestHTTPSync_answerBounded(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{fakeWall: true, opts: Options{MaxQueryResults: 5}})
	for i := range 12 {
		e.wall.Add(1)
		e.postSync(t, &wire.HTTPSyncRequest{ClientID: "w", ClientHLC: cts("w"), Operations: []wire.ClientOp{
			putOp(itoa(i), "big", "k"+itoa(100-i), map[string]any{"i": int64(i)}, cts("w")),
		}}, "")
	}
	e.wall.Add(1)
	got := map[string]bool{}
	last := wire.Timestamp{}
	for page := 0; ; page++ {
		if page > 12 {
			t.Fatal("no end to the pages")
		}
		resp := e.postSync(t, &wire.HTTPSyncRequest{ClientID: "r", ClientHLC: cts("r"), SyncMaps: []wire.SyncMapEntry{
			{MapName: "big", LastSyncTimestamp: last},
			{MapName: "big", LastSyncTimestamp: last},
		}}, "")
		total := 0
		for _, d := range resp.Deltas {
			total += len(d.Records)
		}
		if len(resp.Deltas) == 0 || total > 5 {
			t.Fatalf("page %d: %+v", page, resp.Deltas)
		}
		d := resp.Deltas[0]
		if len(d.Records) == 5 {
			// The second copy of the request found the answer full.
			if len(resp.Errors) != 1 || resp.Errors[0].Code != 413 || resp.Errors[0].Context != "big" ||
				!strings.Contains(resp.Errors[0].Message, "TOPGUN_MAX_QUERY_RESULTS") {
				t.Fatalf("page %d: errors %+v", page, resp.Errors)
			}
		}
		fresh := 0
		for _, r := range d.Records {
			if !got[r.Key] {
				fresh++
			}
			got[r.Key] = true
		}
		if len(got) == 12 {
			break
		}
		if fresh == 0 || d.ServerSyncTimestamp.Millis <= last.Millis {
			t.Fatalf("page %d made no progress: %+v after %+v", page, d, last)
		}
		last = d.ServerSyncTimestamp
	}

	all := &wire.HTTPSyncRequest{ClientID: "r", ClientHLC: cts("r"), Queries: []wire.HTTPQuery{{QueryID: "all", MapName: "big"}}}
	resp := e.postSync(t, all, "")
	if len(resp.QueryResults) != 0 || len(resp.Errors) != 1 || resp.Errors[0].Code != 413 || resp.Errors[0].Context != "all" ||
		!strings.Contains(resp.Errors[0].Message, "limit and page with the cursor") {
		t.Fatalf("query over the limit: %+v", resp)
	}
	lim := uint32(5)
	resp = e.postSync(t, &wire.HTTPSyncRequest{ClientID: "r", ClientHLC: cts("r"), Queries: []wire.HTTPQuery{{QueryID: "p", MapName: "big", Limit: &lim}}}, "")
	if len(resp.Errors) != 0 || len(resp.QueryResults) != 1 || len(resp.QueryResults[0].Results) != 5 || !*resp.QueryResults[0].HasMore {
		t.Fatalf("paged query: %+v", resp)
	}
}

// The bytes bound pages a delta too: three 30 KB records do not fit in a
// 64 KiB answer together.
func TestHTTPSync_answerBoundedInBytes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{fakeWall: true, opts: Options{OutboundBytes: MinOutboundBytes}})
	big := strings.Repeat("x", 30_000)
	for i := range 3 {
		e.wall.Add(1)
		e.postSync(t, &wire.HTTPSyncRequest{ClientID: "w", ClientHLC: cts("w"), Operations: []wire.ClientOp{
			putOp(itoa(i), "m", "k"+itoa(i), big, cts("w")),
		}}, "")
	}
	e.wall.Add(1)
	ask := func(last wire.Timestamp) wire.MapDelta {
		resp := e.postSync(t, &wire.HTTPSyncRequest{ClientID: "r", ClientHLC: cts("r"), SyncMaps: []wire.SyncMapEntry{{MapName: "m", LastSyncTimestamp: last}}}, "")
		if len(resp.Deltas) != 1 {
			t.Fatalf("%+v", resp)
		}
		return resp.Deltas[0]
	}
	first := ask(wire.Timestamp{})
	if len(first.Records) != 2 || first.Records[0].Key != "k0" || first.Records[1].Key != "k1" {
		t.Fatalf("first page: %d records", len(first.Records))
	}
	if rest := ask(first.ServerSyncTimestamp); len(rest.Records) < 1 || rest.Records[len(rest.Records)-1].Key != "k2" {
		t.Fatalf("second page: %d records", len(rest.Records))
	}
}

// A record larger than an answer's bytes still reaches the client: an
// answer holding nothing else may pass the bound by one millisecond's
// changes, so no map is stuck, and what follows comes next.
func TestHTTPSync_oversizedChangeStillDelivered(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{fakeWall: true, opts: Options{OutboundBytes: MinOutboundBytes}})
	for i, v := range []string{strings.Repeat("x", 70_000), "small"} {
		e.wall.Add(1)
		e.postSync(t, &wire.HTTPSyncRequest{ClientID: "w", ClientHLC: cts("w"), Operations: []wire.ClientOp{
			putOp(itoa(i), "m", "k"+itoa(i), v, cts("w")),
		}}, "")
	}
	e.wall.Add(1)
	got := map[string]bool{}
	last := wire.Timestamp{}
	for range 3 {
		resp := e.postSync(t, &wire.HTTPSyncRequest{ClientID: "r", ClientHLC: cts("r"), SyncMaps: []wire.SyncMapEntry{{MapName: "m", LastSyncTimestamp: last}}}, "")
		if len(resp.Deltas) != 1 {
			t.Fatalf("answer %+v", resp.Errors)
		}
		for _, r := range resp.Deltas[0].Records {
			got[r.Key] = true
		}
		last = resp.Deltas[0].ServerSyncTimestamp
	}
	if !got["k0"] || !got["k1"] {
		t.Fatalf("delivered %v, want k0 and k1", got)
	}
}

// serverSyncTimestamp is a commit time of the store's clock: a client
// write stamped ahead (within the allowed drift) moves the HLC forward,
// and must not make HTTP clients skip what commits meanwhile.
func TestHTTPSync_clockAheadSkipsNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{fakeWall: true})
	ahead := cts("w")
	ahead.Millis = uint64(e.wall.Load()) + 30_000
	e.postSync(t, &wire.HTTPSyncRequest{ClientID: "w", ClientHLC: ahead, Operations: []wire.ClientOp{putOp("1", "m", "a", "v", ahead)}}, "")
	resp := e.postSync(t, &wire.HTTPSyncRequest{ClientID: "r", ClientHLC: cts("r"), SyncMaps: []wire.SyncMapEntry{{MapName: "m"}}}, "")
	last := resp.Deltas[0].ServerSyncTimestamp
	e.wall.Add(10)
	e.postSync(t, &wire.HTTPSyncRequest{ClientID: "w", ClientHLC: cts("w"), Operations: []wire.ClientOp{putOp("2", "m", "b", "v", cts("w"))}}, "")
	e.wall.Add(10)
	resp = e.postSync(t, &wire.HTTPSyncRequest{ClientID: "r", ClientHLC: cts("r"), SyncMaps: []wire.SyncMapEntry{{MapName: "m", LastSyncTimestamp: last}}}, "")
	for _, r := range resp.Deltas[0].Records {
		if r.Key == "b" {
			return
		}
	}
	t.Fatalf("the change committed after the first sync was skipped: %+v", resp.Deltas[0].Records)
}

// A map whose oldest change is larger than what other maps leave of an
// answer is still delivered: one delta per answer may pass the rest by
// one millisecond's changes. Before, only an answer holding nothing yet
// could, and a map listed after a busy one was stuck for good.
func TestHTTPSync_oversizedChangeAfterOtherMaps(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{fakeWall: true, opts: Options{OutboundBytes: MinOutboundBytes}})
	e.wall.Add(1)
	e.postSync(t, &wire.HTTPSyncRequest{ClientID: "w", ClientHLC: cts("w"), Operations: []wire.ClientOp{
		putOp("big", "m", "big", strings.Repeat("x", 70_000), cts("w"))}}, "")
	lastA, lastM, gotBig := wire.Timestamp{}, wire.Timestamp{}, false
	for round := 0; round < 3 && !gotBig; round++ {
		e.wall.Add(1)
		e.postSync(t, &wire.HTTPSyncRequest{ClientID: "w", ClientHLC: cts("w"), Operations: []wire.ClientOp{
			putOp("a"+itoa(round), "a", "tick", int64(round), cts("w"))}}, "")
		e.wall.Add(1)
		resp := e.postSync(t, &wire.HTTPSyncRequest{ClientID: "r", ClientHLC: cts("r"), SyncMaps: []wire.SyncMapEntry{
			{MapName: "a", LastSyncTimestamp: lastA}, {MapName: "m", LastSyncTimestamp: lastM}}}, "")
		for _, d := range resp.Deltas {
			if d.MapName == "a" {
				lastA = d.ServerSyncTimestamp
				continue
			}
			lastM = d.ServerSyncTimestamp
			for _, r := range d.Records {
				gotBig = gotBig || r.Key == "big"
			}
		}
	}
	if !gotBig {
		t.Fatal("map m never delivered its record")
	}
}

// Paging a POST /sync query with its cursor reads every matching record
// once, also when a page ends on the empty key (which the storage contract
// allows): before, its cursor encoded to "", which is no cursor at all, so
// the answer said hasMore without a nextCursor and asking again without
// one returned the first page forever.
func TestHTTPSync_queryCursorAfterEmptyKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	e.postSync(t, &wire.HTTPSyncRequest{ClientID: "c1", ClientHLC: cts("h"), Operations: []wire.ClientOp{
		putOp("1", "items", "", map[string]any{"i": int64(0)}, cts("h")),
		putOp("2", "items", "a", map[string]any{"i": int64(1)}, cts("h")),
		putOp("3", "items", "b", map[string]any{"i": int64(2)}, cts("h")),
	}}, "")
	lim := uint32(1)
	var got []int64
	cursor := ""
	for page := 0; page < 10; page++ {
		resp := e.postSync(t, &wire.HTTPSyncRequest{ClientID: "c1", ClientHLC: cts("h"), Queries: []wire.HTTPQuery{
			{QueryID: "q", MapName: "items", Limit: &lim, Cursor: cursor},
		}}, "")
		if len(resp.QueryResults) != 1 {
			t.Fatalf("page %d: %+v", page, resp)
		}
		qr := resp.QueryResults[0]
		for _, v := range qr.Results {
			got = append(got, v.(map[string]any)["i"].(int64))
		}
		if qr.HasMore == nil || !*qr.HasMore {
			break
		}
		if qr.NextCursor == "" {
			t.Fatalf("page %d: hasMore without a nextCursor (results so far %v)", page, got)
		}
		cursor = qr.NextCursor
	}
	if !slices.Equal(got, []int64{0, 1, 2}) {
		t.Fatalf("paged results %v, want [0 1 2]", got)
	}
}

// A request naming one map many times reads it a bounded number of
// times, whatever the count, and answers as if each query ran alone.
func TestHTTPSync_repeatedMapScansBounded(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	var ops []wire.ClientOp
	for i := 0; i < 20; i++ {
		ops = append(ops, putOp(itoa(i), "big", "k"+itoa(100+i), map[string]any{"i": int64(i), "even": i%2 == 0}, cts("h")))
	}
	e.postSync(t, &wire.HTTPSyncRequest{ClientID: "c", ClientHLC: cts("h"), Operations: ops}, "")

	lim := uint32(3)
	req := &wire.HTTPSyncRequest{ClientID: "c", ClientHLC: cts("h")}
	for i := 0; i < 200; i++ {
		q := wire.HTTPQuery{QueryID: "q" + itoa(i), MapName: "big", Filter: map[string]any{"even": i%2 == 0}}
		if i%3 == 0 {
			q.Limit = &lim
		}
		req.Queries = append(req.Queries, q)
	}
	for i := 0; i < 200; i++ {
		req.SyncMaps = append(req.SyncMaps, wire.SyncMapEntry{MapName: "big"})
	}
	before := e.be.scans.Load()
	resp := e.postSync(t, req, "")
	// Queries: at most two reads of the map; deltas: maxDeltasPerMap, and
	// one more read of a millisecond once per answer.
	if n := e.be.scans.Load() - before; n > 2+maxDeltasPerMap+1 {
		t.Fatalf("%d scans of one map for one request", n)
	}
	if len(resp.Deltas) != maxDeltasPerMap || len(resp.Deltas[0].Records) != 20 {
		t.Fatalf("%d deltas", len(resp.Deltas))
	}
	if len(resp.QueryResults) != 200 {
		t.Fatalf("%d query results, errors %+v", len(resp.QueryResults), resp.Errors)
	}
	for i, qr := range resp.QueryResults {
		want := 10
		if i%3 == 0 {
			want = 3
		}
		if qr.QueryID != "q"+itoa(i) || len(qr.Results) != want {
			t.Fatalf("query %d: %s %d results", i, qr.QueryID, len(qr.Results))
		}
		for _, v := range qr.Results {
			if v.(map[string]any)["even"] != (i%2 == 0) {
				t.Fatalf("query %d: result %v", i, v)
			}
		}
		if i%3 == 0 && (qr.HasMore == nil || !*qr.HasMore || qr.NextCursor == "") {
			t.Fatalf("query %d: hasMore %v cursor %q", i, qr.HasMore, qr.NextCursor)
		}
	}
}

// Queries that together pass the answer's budget get what running them
// one after another gives: each fits in what the ones before it left.
func TestHTTPSync_queriesShareBudgetInOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{opts: Options{MaxQueryResults: 25}})
	var ops []wire.ClientOp
	for i := 0; i < 20; i++ {
		ops = append(ops, putOp(itoa(i), "a", "k"+itoa(100+i), map[string]any{"i": int64(i)}, cts("h")))
		ops = append(ops, putOp(itoa(100+i), "b", "k"+itoa(100+i), map[string]any{"i": int64(i)}, cts("h")))
	}
	e.postSync(t, &wire.HTTPSyncRequest{ClientID: "c", ClientHLC: cts("h"), Operations: ops}, "")
	lim := uint32(5)
	before := e.be.scans.Load()
	// a (20) fits; b (20) does not; a with limit 5 fits (5 left); b
	// matching nothing fits; a limited again does not (nothing left).
	resp := e.postSync(t, &wire.HTTPSyncRequest{ClientID: "c", ClientHLC: cts("h"), Queries: []wire.HTTPQuery{
		{QueryID: "1", MapName: "a"},
		{QueryID: "2", MapName: "b"},
		{QueryID: "3", MapName: "a", Limit: &lim},
		{QueryID: "4", MapName: "b", Filter: map[string]any{"i": int64(99)}},
		{QueryID: "5", MapName: "a", Limit: &lim},
	}}, "")
	if n := e.be.scans.Load() - before; n > 4 {
		t.Fatalf("%d scans for two maps", n)
	}
	var ok []string
	for _, qr := range resp.QueryResults {
		ok = append(ok, qr.QueryID+":"+itoa(len(qr.Results)))
	}
	var failed []string
	for _, er := range resp.Errors {
		failed = append(failed, er.Context+":"+itoa(int(er.Code)))
	}
	if !slices.Equal(ok, []string{"1:20", "3:5", "4:0"}) || !slices.Equal(failed, []string{"2:413", "5:413"}) {
		t.Fatalf("results %v errors %v", ok, failed)
	}
	if v := resp.QueryResults[1].Results[0].(map[string]any)["i"]; v != int64(0) {
		t.Fatalf("query 3 starts at %v", v)
	}
}

// httpPoll is one poll of TopGun's HttpSyncProvider: the request carries
// every OP_BATCH its client sent since the last poll, one after another,
// and each OP_BATCH carries every op not yet acknowledged. It returns the
// ops still pending after the answer: the provider turns ack into OP_ACK,
// and the client drops every op whose numeric id is at most lastId. The
// provider drops the request's ops from its queue on any 200 answer, with
// or without an ack (the client sends them again with its next write).
func (e *env) httpPoll(t *testing.T, pending []wire.ClientOp, batches int) ([]wire.ClientOp, *wire.HTTPSyncResponse) {
	t.Helper()
	var ops []wire.ClientOp
	for range batches {
		ops = append(ops, pending...)
	}
	resp := e.postSync(t, &wire.HTTPSyncRequest{ClientID: "c", ClientHLC: cts("c"), Operations: ops}, "")
	if resp.Ack == nil {
		return pending, resp
	}
	last, err := strconv.Atoi(resp.Ack.LastID)
	if err != nil {
		t.Fatalf("ack lastId %q is not an op id", resp.Ack.LastID)
	}
	return slices.DeleteFunc(slices.Clone(pending), func(op wire.ClientOp) bool {
		id, _ := strconv.Atoi(op.ID)
		return id <= last
	}), resp
}

// The ops TopGun's client re-sends do not count against MaxBatchOps on
// POST /sync either (README): ten quick writes between two polls make a
// request of 1+2+...+10 = 55 ops, ten of them new. Before, it was refused
// with 413 and no ack, and so was every later poll holding as many.
func TestHTTPSync_resentOperationsDoNotCount(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{opts: Options{MaxBatchOps: 10}})
	var written, ops []wire.ClientOp
	for i := 1; i <= 10; i++ {
		written = append(written, putOp(itoa(i), "m", "k"+itoa(i), int64(i), cts("c")))
		ops = append(ops, written...) // the OP_BATCH of write i
	}
	resp := e.postSync(t, &wire.HTTPSyncRequest{ClientID: "c", ClientHLC: cts("c"), Operations: ops}, "")
	if len(resp.Errors) != 0 || resp.Ack == nil || resp.Ack.LastID != ops[len(ops)-1].ID {
		t.Fatalf("ack %+v errors %+v", resp.Ack, resp.Errors)
	}
	if n := e.srv.opsApplied.Load(); n != 10 {
		t.Fatalf("%d ops applied, want each of the 10 once", n)
	}
	for i := 1; i <= 10; i++ {
		if _, _, ok := e.getLWW("m", "k"+itoa(i)); !ok {
			t.Fatalf("k%d not stored", i)
		}
	}
}

// An offline client's backlog of more ops than MaxBatchOps reaches the
// server over POST /sync in parts, as over a WebSocket: TopGun's client
// marks every op up to ack.lastId synced, so the server applies the first
// MaxBatchOps new ops and acknowledges up to the last of them. Before,
// every poll was refused with 413 and no ack, for good: the client's
// backlog only grows. Each round the client also makes one write, so its
// request carries the backlog twice.
func TestHTTPSync_backlogOverBatchLimitIsAcknowledgedInParts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{opts: Options{MaxBatchOps: 10}})
	var pending []wire.ClientOp
	for i := 1; i <= 25; i++ {
		pending = append(pending, putOp(itoa(i), "backlog", "k"+itoa(i), int64(i), cts("c")))
	}
	// A refused op past the first part is refused when its part is
	// applied, not before.
	pending[14] = putOp("15", "_topgun_device_credentials", "x", int64(1), cts("c"))
	var refused []string
	next := 26
	for round := 0; len(pending) > 0; round++ {
		if round == 6 {
			t.Fatalf("%d ops still unacknowledged after %d polls", len(pending), round)
		}
		if next <= 28 {
			pending = append(pending, putOp(itoa(next), "backlog", "k"+itoa(next), int64(next), cts("c")))
			next++
		}
		var resp *wire.HTTPSyncResponse
		pending, resp = e.httpPoll(t, pending, 2)
		refused = append(refused, refusals(t, round, resp)...)
	}
	if !slices.Equal(refused, []string{"15"}) {
		t.Fatalf("refused %v, want op 15 once", refused)
	}
	for i := 1; i < next; i++ {
		if _, _, ok := e.getLWW("backlog", "k"+itoa(i)); ok != (i != 15) {
			t.Fatalf("key k%d stored = %v", i, ok)
		}
	}
}

// The queries of a request share one read of their map, so each record
// read is matched against every query: a page of the scan costs its
// records times the queries. The request's deadline must stop that work,
// not only the read of the next page. Before, a request of a few hundred
// queries with distinct $regex patterns (more than the pattern cache
// holds, so each match compiles its pattern again) kept a CPU busy for
// minutes per page past the deadline. Here the deadline passes as the
// first page is read: the request must end at once and fail its queries.
func TestHTTPSync_queriesStopAtDeadlineWithinPage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	const records, queries = 200, 300
	ops := make([]store.Op, 0, records)
	for i := 0; i < records; i++ {
		ops = append(ops, store.Op{Map: "big", Key: "k" + itoa(1000+i), Kind: store.OpPut, Value: record.FromWire(map[string]any{"s": "abab"})})
	}
	if _, err := e.st.Apply(context.Background(), ops, 1); err != nil {
		t.Fatal(err)
	}
	req := &wire.HTTPSyncRequest{ClientID: "c", ClientHLC: cts("c")}
	alt := strings.Repeat("ab|", 100)
	for i := 0; i < queries; i++ {
		re := "^(" + alt + "q" + itoa(i) + ")$" // matches nothing here
		req.Queries = append(req.Queries, wire.HTTPQuery{QueryID: itoa(i), MapName: "big", Filter: map[string]any{"s": map[string]any{"$regex": re}}})
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e.be.mu.Lock()
	e.be.scanned = cancel
	e.be.mu.Unlock()
	start := time.Now()
	resp := e.srv.httpSync(ctx, req)
	// The whole page takes 60,000 compilations of a 300-byte pattern
	// (seconds); stopping at the deadline, a few.
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the request ran %s past its deadline", d)
	}
	if len(resp.QueryResults) != 0 || len(resp.Errors) != queries || resp.Errors[0].Code != 500 {
		t.Fatalf("%d results, %d errors: %+v", len(resp.QueryResults), len(resp.Errors), resp.Errors[:min(len(resp.Errors), 1)])
	}
}

// A request that ends (its client left, or httpSyncTimeout passed) while
// it still has maps to read asks the backend for none of them and logs
// one line (at debug when its client left). Before, each of its syncMaps
// entries and query maps was still read, failed at once and logged a
// warning of its own naming the map: one 2 MiB request naming tens of
// thousands of maps, whose client hung up at once, wrote as many warnings.
func TestHTTPSync_endedRequestReadsAndWarnsNoMore(t *testing.T) {
	t.Parallel()
	logs := &lineLog{t: t}
	e := newEnv(t, envConfig{opts: Options{Logger: hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Debug})}})
	const maps = 200
	req := &wire.HTTPSyncRequest{ClientID: "c", ClientHLC: cts("c")}
	for i := 0; i < maps; i++ {
		req.SyncMaps = append(req.SyncMaps, wire.SyncMapEntry{MapName: "d" + itoa(i)})
		req.Queries = append(req.Queries, wire.HTTPQuery{QueryID: itoa(i), MapName: "q" + itoa(i)})
	}
	// The request ends as its first read is made.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e.be.mu.Lock()
	e.be.scanned = cancel
	e.be.mu.Unlock()
	resp := e.srv.httpSync(ctx, req)
	if n := e.be.scans.Load(); n != 1 {
		t.Errorf("%d maps read after the request ended, want none (1 read in all)", n-1)
	}
	if n := logs.count("[WARN]"); n != 0 {
		t.Errorf("%d warnings logged for one request whose client left, want 0", n)
	}
	if n := logs.count("POST /sync ended before its reads"); n != 1 {
		t.Errorf("%d lines note the end of one request, want 1", n)
	}
	// Every entry the request did not read is still answered.
	if len(resp.Deltas)+len(resp.Errors) != 2*maps {
		t.Fatalf("%d deltas and %d errors for %d entries", len(resp.Deltas), len(resp.Errors), 2*maps)
	}
	for _, er := range resp.Errors {
		if er.Code != 500 || er.Context == "" {
			t.Fatalf("error %+v", er)
		}
	}
}

// A map name no map can have (empty, with a NUL byte, longer than the
// storage contract allows) is the request's fault, never the server's: its
// deltas and queries get error 400, not the 500 "retry later" a failed
// read of the storage gets, which a client would retry forever.
func TestHTTPSync_invalidMapNameRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	for _, name := range []string{"", "m\x00", strings.Repeat("m", 513)} {
		resp := e.postSync(t, &wire.HTTPSyncRequest{ClientID: "c", ClientHLC: cts("c"),
			SyncMaps: []wire.SyncMapEntry{{MapName: name}},
			Queries:  []wire.HTTPQuery{{QueryID: "q", MapName: name}},
		}, "")
		if len(resp.Deltas) != 0 || len(resp.QueryResults) != 0 || len(resp.Errors) != 2 {
			t.Fatalf("map name %.20q: %+v", name, resp)
		}
		for _, er := range resp.Errors {
			if er.Code != 400 || !strings.Contains(er.Message, "map name") {
				t.Errorf("map name %.20q: error %+v, want 400 naming the map name", name, er)
			}
		}
	}
}

// refusals returns the ids of the ops resp refused (error 403), failing
// the test on any other error.
func refusals(t *testing.T, round int, resp *wire.HTTPSyncResponse) []string {
	t.Helper()
	var ids []string
	for _, er := range resp.Errors {
		if er.Code != 403 {
			t.Fatalf("round %d: error %+v", round, er)
		}
		ids = append(ids, er.Context)
	}
	return ids
}

// keepOpen is a backend a server's close leaves open, for a restart on
// the same storage.
type keepOpen struct{ abi.Backend }

func (keepOpen) Close() error { return nil }

// An HTTP client keeps its serverSyncTimestamp across a restart of the
// server. Here it polled an idle map, and the server restarted with its
// wall clock behind the point it was given (stepped back while the server
// was down, or another host): before, the writes made after the restart
// were committed at times below that point, and the client's next polls
// never returned them.
func TestHTTPSync_deltaAfterRestartWithClockBehind(t *testing.T) {
	t.Parallel()
	inner := null.Open()
	defer inner.Close()
	e := newEnv(t, envConfig{backend: keepOpen{inner}, fakeWall: true})
	e.postSync(t, &wire.HTTPSyncRequest{ClientID: "w", ClientHLC: cts("w"), Operations: []wire.ClientOp{putOp("1", "m", "a", "v", cts("w"))}}, "")
	e.wall.Add(10_000)
	resp := e.postSync(t, &wire.HTTPSyncRequest{ClientID: "r", ClientHLC: cts("r"), SyncMaps: []wire.SyncMapEntry{{MapName: "m"}}}, "")
	last := resp.Deltas[0].ServerSyncTimestamp
	e.srv.Close()
	e.http.Close()
	e.st.Close()

	// The restarted server's clock is 10 s behind the first one's.
	e2 := newEnv(t, envConfig{backend: keepOpen{inner}, fakeWall: true})
	e2.postSync(t, &wire.HTTPSyncRequest{ClientID: "w", ClientHLC: cts("w"), Operations: []wire.ClientOp{putOp("2", "m", "b", "v", cts("w"))}}, "")
	e2.wall.Add(1)
	resp = e2.postSync(t, &wire.HTTPSyncRequest{ClientID: "r", ClientHLC: cts("r"), SyncMaps: []wire.SyncMapEntry{{MapName: "m", LastSyncTimestamp: last}}}, "")
	for _, r := range resp.Deltas[0].Records {
		if r.Key == "b" {
			return
		}
	}
	t.Fatalf("the write made after the restart is missing from the delta since %+v: %+v", last, resp.Deltas[0].Records)
}

// A filter bound that is not valid UTF-8 is bytes to TopGun's server, and
// its $lt never holds, even where the bytes would compare below it.
func TestHTTPSync_filterInvalidUTF8MatchesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	e.postSync(t, &wire.HTTPSyncRequest{ClientID: "c1", ClientHLC: cts("h"), Operations: []wire.ClientOp{
		putOp("1", "items", "a", map[string]any{"n": "b"}, cts("h")),
	}}, "")
	resp := e.postSync(t, &wire.HTTPSyncRequest{ClientID: "c1", ClientHLC: cts("h"), Queries: []wire.HTTPQuery{
		{QueryID: "bytes", MapName: "items", Filter: map[string]any{"n": map[string]any{"$lt": "\xff"}}},
		{QueryID: "text", MapName: "items", Filter: map[string]any{"n": map[string]any{"$lt": "c"}}},
	}}, "")
	var got []string
	for _, qr := range resp.QueryResults {
		got = append(got, qr.QueryID+":"+itoa(len(qr.Results)))
	}
	if !slices.Equal(got, []string{"bytes:0", "text:1"}) {
		t.Fatalf("results %v, want [bytes:0 text:1] (errors %+v)", got, resp.Errors)
	}
}

// lineLog keeps the log lines written to it, and sends each to t.Log.
type lineLog struct {
	t     testing.TB
	mu    sync.Mutex
	lines []string
}

func (l *lineLog) Write(p []byte) (int, error) {
	line := strings.TrimRight(string(p), "\n")
	l.mu.Lock()
	l.lines = append(l.lines, line)
	l.mu.Unlock()
	l.t.Log(line)
	return len(p), nil
}

func (l *lineLog) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

// A POST /sync whose client leaves while its write waits for storage is
// not a failure of storage: the server notes at debug that the request
// ended early, and does not warn that the write failed, as it does not for
// a WebSocket whose connection ends while its write waits. Clients on a
// poor network leave often, and a client can leave each request it sends
// at once: a warning per request would let it write the log at the rate
// it sends them, each reading like a storage fault.
func TestHTTPSync_clientLeavingDuringWriteIsNoWriteFailure(t *testing.T) {
	t.Parallel()
	logs := &lineLog{t: t}
	e := newEnv(t, envConfig{opts: Options{Logger: hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Debug})}})
	const requests = 3
	for i := 1; i <= requests; i++ {
		release := e.be.holdCommits()
		body, err := wire.EncodeHTTPSyncRequest(&wire.HTTPSyncRequest{ClientID: "c1", ClientHLC: cts("c1"),
			Operations: []wire.ClientOp{putOp(strconv.Itoa(i), "m", "k"+strconv.Itoa(i), "v", cts("c1"))}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		r, err := http.NewRequestWithContext(ctx, "POST", e.http.URL+"/sync", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set("Content-Type", "application/x-msgpack")
		done := make(chan struct{})
		go func() {
			defer close(done)
			if resp, err := http.DefaultClient.Do(r); err == nil {
				resp.Body.Close()
			}
		}()
		eventually(t, "the write to wait for storage", func() bool { return e.be.held.Load() > 0 })
		cancel()
		<-done
		// Logged after the request's write returned.
		eventually(t, "the server to note the request's early end", func() bool { return logs.count("POST /sync ended before its reads") == i })
		release()
		eventually(t, "the held commit to end", func() bool { return e.be.held.Load() == 0 })
	}
	if n := logs.count("write failed"); n != 0 {
		t.Errorf("%d \"write failed\" warnings for writes whose clients left, want 0", n)
	}
	if n := logs.count("[WARN]"); n != 0 {
		t.Errorf("%d warnings for %d requests whose clients left, want 0", n, requests)
	}
}
