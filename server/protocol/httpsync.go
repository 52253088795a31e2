package protocol

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/server/record"
	"github.com/topgun-go/topgun/server/store"
	"github.com/topgun-go/topgun/server/wire"
)

// POST /sync: TopGun's HTTP sync for clients that cannot hold a WebSocket
// (its HttpSyncProvider polls it every 5 s). The body is an
// HTTPSyncRequest in MsgPack; the answer an HTTPSyncResponse.
//
//   - operations are applied like an OP_BATCH: ack{lastId} once durable,
//     one error (with the op id as context) per op the store refused, or a
//     single error and no ack when nothing could be stored. An op repeated
//     in the request (TopGun's client re-sends every unacknowledged op
//     with each write, and its HttpSyncProvider sends all it queued since
//     the last poll) is applied once; a backlog of more new ops than
//     MaxBatchOps is applied and acknowledged in parts (httpAckablePrefix);
//   - syncMaps, which TopGun ignores, are answered with deltas: every LWW
//     record of the map (tombstones as REMOVE) committed since
//     lastSyncTimestamp, less a millisecond. Its serverSyncTimestamp is a
//     commit time of the store (store.SyncPoint), never past a commit
//     still being applied, so a client that sends it back misses nothing;
//   - queries scan the LWW records of a map, filter with `filter` used as a
//     where-clause, in key order, with offset, limit and a cursor;
//   - one answer holds at most MaxQueryResults records and OutboundBytes
//     bytes of them (answerBudget): a delta that does not fit comes in
//     pages, the oldest changes first, its serverSyncTimestamp marking
//     where the next request resumes; a query that does not fit, or a
//     delta when the answer is full, gets an error (413). One delta per
//     answer may pass what is left by the changes of one millisecond, so
//     a large record cannot stop a map's sync.
//
// With authentication on, a valid "Authorization: Bearer <jwt>" is
// required (TopGun's default lets anonymous HTTP writes through).

const httpSyncTimeout = 30 * time.Second

// maxDeltasPerMap is how many syncMaps entries of one request may name
// the same map (TopGun's client names each map once).
const maxDeltasPerMap = 4

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"code": code, "message": msg})
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if len(h) < 7 || !strings.EqualFold(h[:7], "bearer ") {
		return "", false
	}
	t := strings.TrimSpace(h[7:])
	return t, t != ""
}

func (s *Server) serveHTTPSync(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodOptions {
		s.servePreflight(w, r)
		return
	}
	// An allowed page reads every answer, the 503s below included (else
	// its browser shows it a network error, not a status to retry on).
	allowed := s.originAllowed(r)
	if allowed {
		allowOrigin(w, r)
	}
	if s.isClosed() {
		httpError(w, http.StatusServiceUnavailable, "server shutting down")
		return
	}
	// Each request holds up to MaxMessageBytes of body while it runs.
	// No device identity comes with it: it is never admitted on trial.
	if _, _, _, msg, ok := s.admit(w, r, false); !ok {
		httpError(w, http.StatusServiceUnavailable, msg)
		return
	}
	defer s.release(false)
	// Without authentication a cross-site page could otherwise post writes
	// (a text/plain POST needs no preflight) through a visitor's browser.
	if !allowed {
		httpError(w, http.StatusForbidden, s.originRefused(r))
		return
	}
	if s.opts.Auth != nil {
		token, ok := bearer(r)
		if !ok {
			httpError(w, http.StatusUnauthorized, "authentication required")
			return
		}
		if _, err := s.opts.Auth.Verify(token); err != nil {
			s.noteAuthFailed(s.log, err, "remote", r.RemoteAddr)
			httpError(w, http.StatusUnauthorized, "Authentication failed")
			return
		}
	}
	// A client that sends its body slowly, or stops halfway, must not hold
	// a connection and a goroutine forever: the body gets IdleTimeout, as a
	// silent WebSocket does. Errors are ignored: a connection that cannot
	// take deadlines (HTTP/2, tests) is left as it was.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(s.opts.IdleTimeout))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(s.opts.MaxMessageBytes)))
	// The answers below come after the body, which may take longer than
	// an HTTP server's own write timeout counted from the headers.
	_ = rc.SetWriteDeadline(time.Now().Add(s.opts.WriteTimeout))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			httpError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf(
				"body larger than the limit of %d bytes (%s); send fewer operations per request or raise the limit",
				s.opts.MaxMessageBytes, s.opts.setting("TOPGUN_MAX_MESSAGE_BYTES")))
			return
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			s.log.Info("POST /sync body too slow", "remote", r.RemoteAddr, "timeout", s.opts.IdleTimeout)
			httpError(w, http.StatusRequestTimeout, fmt.Sprintf("the body did not arrive within %s", s.opts.IdleTimeout))
			return
		}
		httpError(w, http.StatusBadRequest, "cannot read the body: "+err.Error())
		return
	}
	req, err := s.limits.DecodeHTTPSyncRequest(body)
	if errors.Is(err, wire.ErrDecodedTooLarge) {
		httpError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf(
			"body ignored: %v; a body may take at most %d × %[3]s once decoded: send fewer operations per request or raise %[3]s",
			err, wire.DecodedBytesPerMessageByte, s.opts.setting("TOPGUN_MAX_MESSAGE_BYTES")))
		return
	}
	if err != nil {
		httpError(w, http.StatusBadRequest, "invalid MsgPack body: "+err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), httpSyncTimeout)
	defer cancel()
	resp := s.httpSync(ctx, req)
	out, err := wire.EncodeHTTPSyncResponse(resp)
	if err != nil {
		s.log.Error("cannot encode a POST /sync response", "error", err)
		httpError(w, http.StatusInternalServerError, "cannot encode the response")
		return
	}
	w.Header().Set("Content-Type", "application/msgpack")
	w.Header().Set("Cache-Control", "no-store")
	// Nor may a client that does not read the answer.
	_ = rc.SetWriteDeadline(time.Now().Add(s.opts.writeTimeout(len(out))))
	_, _ = w.Write(out)
}

// httpSync processes a decoded request.
func (s *Server) httpSync(ctx context.Context, req *wire.HTTPSyncRequest) *wire.HTTPSyncResponse {
	resp := &wire.HTTPSyncResponse{}
	budget := &answerBudget{records: s.opts.MaxQueryResults, bytes: s.opts.OutboundBytes}
	addErr := func(code uint32, msg, context string) {
		resp.Errors = append(resp.Errors, wire.HTTPSyncError{Code: code, Message: msg, Context: context})
	}
	if req.Operations != nil {
		s.httpOps(ctx, req.Operations, resp, addErr)
	}
	named := map[string]int{}
	for _, sm := range req.SyncMaps {
		if code, err := readRefusal(sm.MapName); err != nil {
			addErr(code, err.Error(), sm.MapName)
			continue
		}
		// Each entry reads the whole map: naming one map thousands of
		// times would cost as many reads of it.
		if named[sm.MapName]++; named[sm.MapName] > maxDeltasPerMap {
			addErr(400, fmt.Sprintf("the request asks for the changes of map %s more than %d times; ask once per map", quoteName(sm.MapName), maxDeltasPerMap), sm.MapName)
			continue
		}
		d, code, err := s.delta(ctx, sm, budget)
		if err != nil {
			if code == 500 && ctx.Err() == nil {
				s.storageWarns.Warn(s.log, "cannot read deltas", "map", sm.MapName, "error", err)
			}
			addErr(code, err.Error(), sm.MapName)
			continue
		}
		resp.Deltas = append(resp.Deltas, d)
	}
	if len(req.Queries) > 0 {
		s.httpQueries(ctx, req.Queries, budget, resp, addErr)
	}
	if err := ctx.Err(); err != nil {
		// Once, not per map: a request may name tens of thousands of
		// maps, and each read after its end fails at once.
		// A client that left is at debug, as on WebSocket: it can leave
		// every request it sends. Running out of time is worth a warning.
		level := hclog.Warn
		if !errors.Is(err, context.DeadlineExceeded) {
			level = hclog.Debug
		}
		s.log.Log(level, "POST /sync ended before its reads: its client left or it ran out of time", "timeout", httpSyncTimeout, "error", err)
	}
	resp.ServerHLC = tsToWire(s.store.Clock().Now())
	return resp
}

func (s *Server) httpOps(ctx context.Context, ops []wire.ClientOp, resp *wire.HTTPSyncResponse, addErr func(uint32, string, string)) {
	// TopGun's HttpSyncProvider sends in one request every OP_BATCH its
	// client queued since the last poll, and each OP_BATCH re-sends every
	// op not yet acknowledged: a repeat is applied once and, as on a
	// WebSocket, does not count against MaxBatchOps.
	fps := newSettledSet()
	seen := map[uint64]struct{}{}
	sops := make([]store.Op, 0, len(ops))
	ids := make([]string, 0, len(ops))
	type refusal struct {
		id, reason string
	}
	var refused []refusal // the ops clientOp refused, once per id
	refusedIDs := map[string]bool{}
	for i := range ops {
		sop, skip, err := clientOp(&ops[i])
		if err != nil {
			if id := ops[i].ID; id == "" || !refusedIDs[id] {
				refusedIDs[id] = true
				refused = append(refused, refusal{id, err.Error()})
			}
			continue
		}
		if skip {
			continue
		}
		if fp, ok := fps.fingerprint(ops[i].ID, &sop); ok {
			if _, dup := seen[fp]; dup {
				s.opsSkipped.Add(1)
				continue
			}
			seen[fp] = struct{}{}
		}
		sops = append(sops, sop)
		ids = append(ids, ops[i].ID)
	}
	ack := lastOpID(ops)
	cut := false // applied in part: the refusals past ack are not reported
	if len(sops) > s.opts.MaxBatchOps {
		last, ok := httpAckablePrefix(ops, ids, s.opts.MaxBatchOps)
		if !ok {
			for _, r := range refused {
				addErr(403, r.reason, r.id)
			}
			addErr(413, fmt.Sprintf("the request carries %d operations, more than the limit of %d per batch (%s); send fewer per request or raise the limit",
				len(sops), s.opts.MaxBatchOps, s.opts.setting("TOPGUN_MAX_BATCH_OPS")), "")
			return
		}
		// TopGun's client re-sends its whole backlog with every write, so
		// refusing one larger than the limit would refuse it for good. It
		// marks synced every op whose numeric id is at most ack.lastId:
		// apply the first MaxBatchOps new ops and acknowledge up to the
		// last of them; the client sends the rest again.
		sops, ids, ack, cut = sops[:s.opts.MaxBatchOps], ids[:s.opts.MaxBatchOps], ids[last], true
	}
	var results []store.Result
	var err error
	for len(sops) > 0 {
		results, err = s.store.Apply(ctx, sops, s.origins.Add(1))
		if err != nil && len(results) > 0 {
			// Applied in parts after storage refused an op, and a later
			// part failed: the ops settled before it, a prefix, are
			// acknowledged when they can be, as an op the server stamps
			// (an OR add without a tag) sent again would be stored twice.
			if last, ok := httpAckablePrefix(ops, ids, len(results)); ok {
				s.storageWarns.Warn(s.log, "write failed in part; acknowledging the operations stored", "ops", len(sops), "stored", len(results), "error", err)
				n := len(results)
				sops, ids, ack, cut, err = sops[:n], ids[:n], ids[last], true, nil
			}
			break
		}
		if err != nil && len(sops) > 1 && abi.CodeOf(err) == abi.CodeResourceExhausted && ctx.Err() == nil {
			// Too large for the backend (a plugin's request limit below
			// TOPGUN_MAX_MESSAGE_BYTES): refused, it would be refused at
			// every re-send, for good. Its first half, acknowledged alone,
			// is tried instead; the client sends the rest again.
			if last, ok := httpAckablePrefix(ops, ids, len(sops)/2); ok {
				n := len(sops) / 2
				sops, ids, ack, cut = sops[:n], ids[:n], ids[last], true
				continue
			}
		}
		break
	}
	if cut {
		lastID, _ := strconv.ParseUint(ack, 10, 64)
		refused = slices.DeleteFunc(refused, func(r refusal) bool {
			id, _ := strconv.ParseUint(r.id, 10, 64)
			return id > lastID // refused when sent again
		})
	}
	for _, r := range refused {
		addErr(403, r.reason, r.id)
	}
	if len(sops) > 0 {
		s.opsApplied.Add(uint64(len(sops)))
		if err != nil {
			if ctx.Err() == nil {
				// A client that left is noted once, at the end; its
				// write's wait cut short is no failure of storage.
				s.storageWarns.Warn(s.log, "write failed", "ops", len(sops), "error", err)
			}
			addErr(500, "the operations could not be stored ("+err.Error()+"); they were not acknowledged, re-send them", "")
			return
		}
		for i, res := range results {
			if res.Err == nil {
				continue
			}
			reason := res.Err.Error()
			var re *store.RejectError
			if errors.As(res.Err, &re) {
				reason = re.Reason
			}
			addErr(400, reason, ids[i])
		}
	}
	resp.Ack = &wire.HTTPSyncAck{LastID: ack}
}

// httpAckablePrefix reports whether the first n new ops of a request (ids:
// the new ops' ids, in order) may be applied alone and acknowledged with
// the id of the last of them. TopGun's client marks synced every op whose
// numeric id is at most lastId's, so every op id of the request must be a
// decimal number and every new op left out must have a higher id. It
// returns the index in ids of the op to acknowledge.
func httpAckablePrefix(ops []wire.ClientOp, ids []string, n int) (int, bool) {
	if n < 1 || n > len(ids) {
		return 0, false
	}
	for i := range ops {
		if _, err := strconv.ParseUint(ops[i].ID, 10, 64); err != nil {
			return 0, false
		}
	}
	last, _ := strconv.ParseUint(ids[n-1], 10, 64)
	for _, id := range ids[n:] {
		if v, _ := strconv.ParseUint(id, 10, 64); v <= last {
			return 0, false
		}
	}
	return n - 1, true
}

// answerBudget is what is left of the records and bytes (as stored) one
// POST /sync answer may hold. Without it a 2 MiB request naming one large
// map thousands of times would make the server hold as many copies.
type answerBudget struct {
	records int
	bytes   int64
	// oversized: a delta already passed what was left by the changes of
	// one millisecond; an answer allows that once.
	oversized bool
}

func (s *Server) answerLimit() string {
	return fmt.Sprintf("the limit of %d records or %d bytes per answer (%s, %s)",
		s.opts.MaxQueryResults, s.opts.OutboundBytes, s.opts.setting("TOPGUN_MAX_QUERY_RESULTS"), s.opts.setting("TOPGUN_MAX_OUTBOUND_BYTES"))
}

// delta lists the LWW records of a map changed after lastSyncTimestamp,
// the oldest first when they do not all fit in the budget. code is the
// error's HTTP-style code.
func (s *Server) delta(ctx context.Context, sm wire.SyncMapEntry, budget *answerBudget) (wire.MapDelta, uint32, error) {
	if budget.records <= 0 || budget.bytes <= 0 {
		return wire.MapDelta{}, 413, fmt.Errorf("this answer reached %s; ask for the changes of map %s in another request", s.answerLimit(), quoteName(sm.MapName))
	}
	if ctx.Err() != nil {
		// The request ended (its client left, or httpSyncTimeout passed):
		// the backend is not asked for what no one will read.
		return wire.MapDelta{}, 500, fmt.Errorf("the request ended before the changes of map %s were read; retry", quoteName(sm.MapName))
	}
	since := tsFromWire(sm.LastSyncTimestamp)
	// Taken before reading: the next request resumes from it, so it must
	// not pass what commits while this one reads. It is a commit time
	// (the store's wall clock), not the HLC, which a client's write
	// stamped ahead can move up to the allowed drift.
	point := s.store.SyncPoint()
	restartedAt, mark, restarted := s.store.ClockRestart()
	if restarted && since.Counter != mark && since.Millis > uint64(max(restartedAt, 0)) {
		// Given out before commit times restarted from the wall clock
		// (see below): once the wall clock has passed it, it is no longer
		// past this process's points, yet the commits since the restart
		// are below it. So are those of an earlier process that restarted
		// them too, before restartedAt: the client gets the changes from
		// the start.
		since = record.Timestamp{}
	}
	if since.Millis > uint64(max(point, 0))+1 && !s.store.Backend().Describe().Capabilities.Has(abi.CapShared) {
		// Past every point this storage's commit times have reached: given
		// out by a process whose commit times ran ahead (the store restarts
		// them from the wall clock when far ahead). The commits since the
		// restart are below it, and the point this answer gives would move
		// the client past them: it gets the changes from the start.
		since = record.Timestamp{}
	}
	// The client sends back serverSyncTimestamp as lastSyncTimestamp, and
	// a request reads what committed after it less one millisecond (a
	// re-sent record is harmless to the client's LWW merge).
	millis := int64(min(since.Millis, 1<<62))
	if millis > 0 {
		millis--
	}
	// One delta per answer may pass what is left by the changes of one
	// millisecond, so that no map is ever stuck behind one larger than
	// the rest of an answer (whichever maps come before it).
	entries, upTo, complete, err := s.store.Since(ctx, sm.MapName, millis,
		store.SinceLimits{Records: budget.records, Bytes: budget.bytes, WholeFirst: !budget.oversized})
	if err != nil {
		return wire.MapDelta{}, 500, fmt.Errorf("cannot read the changes of map %s; retry later", quoteName(sm.MapName))
	}
	if !complete && len(entries) == 0 {
		return wire.MapDelta{}, 413, fmt.Errorf("the rest of this answer cannot hold the changes of map %s up to one millisecond under %s; ask for them in another request", quoteName(sm.MapName), s.answerLimit())
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Key < entries[j].Key })
	resume := point
	if !complete {
		resume = min(resume, upTo)
	}
	d := wire.MapDelta{MapName: sm.MapName, Records: []wire.DeltaRecord{},
		ServerSyncTimestamp: wire.Timestamp{Millis: uint64(max(resume+1, 0)), Counter: mark, NodeID: s.store.Clock().NodeID()}}
	for i := range entries {
		e := &entries[i]
		budget.records--
		budget.bytes -= int64(e.Size)
		if e.Record.Kind != record.KindLWW {
			continue
		}
		ev := wire.EventPut
		if e.Record.LWW.Value.IsNull() {
			ev = wire.EventRemove
		}
		d.Records = append(d.Records, wire.DeltaRecord{Key: e.Key, Record: lwwToWire(&e.Record, e.TTLMs()), EventType: ev})
	}
	if budget.records < 0 || budget.bytes < 0 {
		budget.oversized = true // this delta passed what was left
	}
	return d, 0, nil
}

// cursorMark starts a query cursor: the last key returned, base64url
// encoded. Without it the empty key (which the storage contract allows)
// would encode to "", which is no cursor at all. '.' is outside the base64url
// alphabet, so cursors without it (from before) still decode as they did.
const cursorMark = "."

func encodeCursor(key string) string {
	return cursorMark + base64.RawURLEncoding.EncodeToString([]byte(key))
}

func decodeCursor(c string) (string, bool) {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(c, cursorMark))
	return string(b), err == nil
}

// HTTP queries. The queries of a request that name one map share one read
// of it: a request naming a large map thousands of times must not cost
// thousands of scans. The answers are those of running the queries one
// after another: a query whose results pass what the queries before it
// left of the answer (answerBudget) gets an error (413). A read keeps the
// values it finds only while, all queries together, they fit in what was
// left of the answer when the queries started; past that it only counts,
// so a request never holds more than one answer's worth of records, and
// the maps of the queries that fit are read once more for their values.
// A request thus costs at most two reads of each map its queries name.

// httpQueryRun is one query of a request and what a read found for it.
type httpQueryRun struct {
	hq        *wire.HTTPQuery
	q         wire.Query
	after     string // with hasCursor: results come after this key
	hasCursor bool
	offset    int
	limit     int // -1 when none

	skip       int
	n          int // results found
	bytes      int64
	keys       []string // the results' keys and values, when kept
	values     []any
	more, over bool
	done       bool // nothing more to find in this read

	code uint32 // an error (HTTP-style code) instead of results
	err  error
	// grantN and grantBytes are what the answer's budget gave the query.
	grantN     int
	grantBytes int64
}

func (r *httpQueryRun) reset() {
	r.skip, r.n, r.bytes, r.keys, r.values = r.offset, 0, 0, nil, nil
	r.more, r.over, r.done = false, false, false
}

// offer hands the run one live LWW record of its map, v its value, and
// reports whether it is a result. maxN and maxBytes bound the results:
// past them the query is over.
func (r *httpQueryRun) offer(e *store.Entry, v any, maxN int, maxBytes int64, keep bool) bool {
	if r.done || (r.hasCursor && e.Key <= r.after) || !r.q.Match(v) {
		return false
	}
	if r.skip > 0 {
		r.skip--
		return false
	}
	if r.limit >= 0 && r.n == r.limit {
		r.more, r.done = true, true
		return false
	}
	if r.n >= maxN || r.bytes+int64(e.Size) > maxBytes {
		r.over, r.done = true, true
		return false
	}
	r.n++
	r.bytes += int64(e.Size)
	if keep {
		r.keys = append(r.keys, e.Key)
		r.values = append(r.values, v)
	}
	return true
}

// queryKeep tracks the values one request's query reads hold.
type queryKeep struct {
	keep    bool
	n       int
	bytes   int64
	maxN    int
	maxB    int64
	holding []*httpQueryRun // the runs that may hold values
}

// add counts a kept result; past the bounds every run drops its values.
func (k *queryKeep) add(size int) {
	k.n++
	k.bytes += int64(size)
	if k.n > k.maxN || k.bytes > k.maxB {
		k.keep = false
		for _, r := range k.holding {
			r.keys, r.values = nil, nil
		}
		k.holding = nil
	}
}

// readQueries reads a map once for runs, each bounded by maxN and maxB (or,
// when grant, by what the budget gave it). A read error fails them all.
func (s *Server) readQueries(ctx context.Context, mapName string, runs []*httpQueryRun, maxN int, maxB int64, grant bool, k *queryKeep) {
	for _, r := range runs {
		r.reset()
	}
	if ctx.Err() != nil {
		// The request ended: see delta.
		for _, r := range runs {
			r.code, r.err = 500, fmt.Errorf("the request ended before map %s was read; retry", quoteName(mapName))
		}
		return
	}
	if k.keep {
		k.holding = append(k.holding, runs...)
	}
	left := len(runs)
	// Every record is matched against every run: a page read costs its
	// records times the runs, so the deadline is checked between matches,
	// not only when the next page is read.
	done, matches := ctx.Done(), 0
	var stopped error
	err := s.store.Scan(ctx, mapName, func(e *store.Entry) bool {
		if e.Record.Kind != record.KindLWW {
			return true
		}
		v := e.Record.LWW.Value.ToWire()
		for _, r := range runs {
			if r.done {
				continue
			}
			if matches++; matches%16 == 0 {
				select {
				case <-done:
					stopped = ctx.Err()
					return false
				default:
				}
			}
			n, b := maxN, maxB
			if grant {
				n, b = r.grantN, r.grantBytes
			}
			if r.offer(e, v, n, b, k.keep) && k.keep {
				k.add(e.Size)
			}
			if r.done {
				left--
			}
		}
		return left > 0
	})
	if err == nil {
		err = stopped
	}
	if err != nil {
		for _, r := range runs {
			r.code, r.err = 500, fmt.Errorf("cannot read map %s; retry later", quoteName(mapName))
		}
		if ctx.Err() == nil { // else httpSync logs the request's end once
			s.storageWarns.Warn(s.log, "cannot run a query", "map", mapName, "error", err)
		}
	}
}

// httpQueries answers the queries of a request, in their order.
func (s *Server) httpQueries(ctx context.Context, queries []wire.HTTPQuery, budget *answerBudget, resp *wire.HTTPSyncResponse, addErr func(uint32, string, string)) {
	runs := make([]*httpQueryRun, len(queries))
	var order []string
	byMap := map[string][]*httpQueryRun{}
	compileLeft := s.queryBudget(0)
	for i := range queries {
		hq := &queries[i]
		r := &httpQueryRun{hq: hq, limit: -1}
		runs[i] = r
		if code, err := readRefusal(hq.MapName); err != nil {
			r.code, r.err = code, err
			continue
		}
		if m, ok := hq.Filter.(map[string]any); ok {
			r.q.Where = m
			if r.q.Cost(wire.MaxQueryCost) > wire.MaxQueryCost {
				r.code, r.err = 413, errors.New(strings.TrimPrefix(queryCostError, "protocol: "))
				continue
			}
			// Once here, not for every record the query reads. The
			// patterns and sets of a request's queries may take as much
			// as the live queries of a connection (a pattern can compile
			// to thousands of times its size).
			n, ok := r.q.CompileLimit(compileLeft)
			if !ok {
				r.code, r.err = 413, fmt.Errorf("the queries' patterns and $in lists would take more than %d bytes of memory once compiled; send fewer or simpler filters", s.queryBudget(0))
				continue
			}
			compileLeft -= n
		}
		if hq.Cursor != "" {
			var ok bool
			if r.after, ok = decodeCursor(hq.Cursor); !ok {
				r.code, r.err = 400, errors.New("invalid or expired cursor")
				continue
			}
			r.hasCursor = true
		}
		if hq.Offset != nil && !r.hasCursor {
			r.offset = int(*hq.Offset)
		}
		if hq.Limit != nil {
			r.limit = int(*hq.Limit)
		}
		if byMap[hq.MapName] == nil {
			order = append(order, hq.MapName)
		}
		byMap[hq.MapName] = append(byMap[hq.MapName], r)
	}
	k := &queryKeep{keep: true, maxN: budget.records, maxB: budget.bytes}
	for _, m := range order {
		s.readQueries(ctx, m, byMap[m], budget.records, budget.bytes, false, k)
	}
	// What each query gets, in order, as if each ran after the ones before.
	reread := map[string][]*httpQueryRun{}
	for _, r := range runs {
		if r.err != nil {
			continue
		}
		if r.over || (r.n > 0 && (r.n > budget.records || r.bytes > budget.bytes)) {
			r.code, r.err = 413, fmt.Errorf("the query's results pass what is left of %s; ask for fewer with limit and page with the cursor", s.answerLimit())
			continue
		}
		r.grantN, r.grantBytes = r.n, r.bytes
		budget.records -= r.n
		budget.bytes -= r.bytes
		if len(r.values) != r.n {
			reread[r.hq.MapName] = append(reread[r.hq.MapName], r)
		}
	}
	// The values of the queries that fit, which the first read only counted.
	k = &queryKeep{keep: true, maxN: math.MaxInt, maxB: math.MaxInt64}
	for _, m := range order {
		rs := reread[m]
		if len(rs) == 0 {
			continue
		}
		s.readQueries(ctx, m, rs, 0, 0, true, k)
		for _, r := range rs {
			if r.err == nil && r.over {
				// The map grew between the reads.
				r.code, r.err = 413, fmt.Errorf("the query's results pass what is left of %s; ask for fewer with limit and page with the cursor", s.answerLimit())
			}
			if r.err != nil {
				budget.records += r.grantN
				budget.bytes += r.grantBytes
				continue
			}
			budget.records += r.grantN - r.n
			budget.bytes += r.grantBytes - r.bytes
		}
	}
	for _, r := range runs {
		if r.err != nil {
			addErr(r.code, r.err.Error(), r.hq.QueryID)
			continue
		}
		// Keys are compared as the backend orders them (byte order).
		res := wire.HTTPQueryResult{QueryID: r.hq.QueryID, Results: r.values}
		if res.Results == nil {
			res.Results = []any{}
		}
		if r.limit >= 0 {
			more := r.more
			res.HasMore = &more
			if more && len(r.keys) > 0 {
				res.NextCursor = encodeCursor(r.keys[len(r.keys)-1])
			}
		}
		resp.QueryResults = append(resp.QueryResults, res)
	}
}
