package protocol

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/topgun-go/topgun/server/record"
	"github.com/topgun-go/topgun/server/store"
	"github.com/topgun-go/topgun/server/wire"
)

// Live queries.
//
// QUERY_SUB registers a subscription, then reads the map (Store.Scan) and
// answers QUERY_RESP with the matching records, sorted and limited. From
// then on the change feed (fanout.go) hands every committed change of the
// map to the subscription, which keeps the set of keys in the result and
// sends QUERY_UPDATE ENTER, UPDATE or LEAVE, except for changes the
// subscriber itself wrote (its client already applied them locally).
//
// While the map is being read the subscription buffers the changes the
// feed delivers and replays them afterwards, so no change falls between the
// read and the live updates; only the last buffered change of each key is
// replayed, and not when it is older than what the read saw for a key in
// the result.
//
// A limited query keeps only its top `limit` records, in a heap by the
// query's order (results.go), so that a change costs O(log limit)
// comparisons on the feed loop. When one of them leaves (or sinks to the
// bottom, past the edge: the first record the last read left out, or a
// better one seen since) while other matching records exist outside the
// result, the subscription reads the map again in the background and sends
// the difference, so the result refills. The re-reads queued for one map
// share one read of it (resyncMap), however many queries wait.
//
// Results hold the LWW records of the map; OR-Map keys are not query
// results. Aggregation queries (groupBy, aggregations) are refused with an
// error in QUERY_RESP; cursors are ignored.

// maxPending bounds the changes buffered while a subscription reads its
// map; past it the read is simply done again.
const maxPending = 10_000

const queryTimeout = 60 * time.Second

type subState uint8

const (
	subInit subState = iota
	subReady
	subClosed
)

type subscription struct {
	c       *conn
	id      string
	mapName string
	q       *wire.Query
	// compare is q.Compare, the result order (a field so tests can count
	// its calls).
	compare func(a, b wire.QueryResult) int
	fields  []string
	limit   int // -1 when none
	// bytes is what the query takes in memory: its QUERY_SUB decoded,
	// and its compiled patterns and sets (counted in c.queryBytes until
	// released, under c.subsMu).
	bytes    int
	released bool

	// run is held throughout a read of the map (resyncMap, from before it
	// is taken off the resync queue; handleQuerySub from before the query
	// is registered): one at a time. Two at once (a QUERY_SUB's and a lag
	// resync's, or two resyncs) would reset each other's buffered changes,
	// and the older read finishing last would leave a stale result.
	run sync.Mutex

	mu       sync.Mutex
	state    subState
	pending  []*store.Change // the feed's, shared by the queries of the map (resyncMap reads for many at once): not a copy each
	overflow bool
	// retryIn is the wait before a failed resync is tried again (0 after
	// a resync that read the map).
	retryIn  time.Duration
	members  *resultSet
	complete bool // every matching record is in members (limited queries)
	queued   bool // a resync is queued

	// edge, when hasEdge, is a place in the result order that every
	// matching record outside an incomplete result sorts at or after. It
	// only moves toward the result between reads of the map.
	edge    wire.QueryResult
	hasEdge bool
}

func queryError(id, msg, code string) *wire.QueryResp {
	return &wire.QueryResp{QueryID: id, Results: []wire.QueryResult{}, Error: msg, Code: code}
}

// queryMemoryError refuses a QUERY_SUB over the connection's query budget.
func (s *Server) queryMemoryError(id string, held, size, budget int) *wire.QueryResp {
	return queryError(id, fmt.Sprintf("protocol: the query takes %d bytes of memory (its where-clause, predicates, patterns and $in lists), and the connection's live queries already %d, over the limit of %d (%d × %s); unsubscribe others or send a smaller query",
		size, held, budget, queryBytesPerMessageByte, s.opts.setting("TOPGUN_MAX_MESSAGE_BYTES")), "LIMIT")
}

// queryCostError refuses a query over wire.MaxQueryCost.
var queryCostError = fmt.Sprintf("protocol: the query's filter is too complex: matching it against one record would cost more than %d (wire.MaxQueryCost: predicate nodes, elements of lists and compared values, %d-byte pieces of patterns and field names, compiled regex instructions, sort fields for each comparison, projected fields), the limit; send a simpler query or split it", wire.MaxQueryCost, wire.CostBytesPerUnit)

// fieldsCost is what projecting a value on a QUERY_SUB's fields costs, in
// wire.Query.Cost's units: a lookup of each field (one more per
// wire.CostBytesPerUnit bytes of it, which it hashes). Without it one
// frame of 340,000 fields cost nothing and took 33 ms of the feed's
// goroutine for every update of the query.
func fieldsCost(fields []string) int {
	n := 0
	for _, f := range fields {
		n += 1 + len(f)/wire.CostBytesPerUnit
	}
	return n
}

// queryBytesPerMessageByte is how many times MaxMessageBytes the live
// queries of one connection may take in memory (queryBudget).
const queryBytesPerMessageByte = 8

// queryBudget is the memory the live queries of one connection may take:
// their QUERY_SUBs decoded (wire.Limits.DecodeSize) and their compiled
// patterns and $in sets (wire.Query.CompileLimit). Without it 1024 queries
// of up to 64 MiB each, and patterns that compile to thousands of times
// their size, could take tens of GiB. A connection's only query may take
// as much as one message may once decoded, so that any QUERY_SUB the
// decoder accepts can run alone.
func (s *Server) queryBudget(held int) int {
	budget := queryBytesPerMessageByte * s.opts.MaxMessageBytes
	if held == 0 {
		one := s.limits.MaxDecodedBytes
		if one == 0 {
			one = wire.DecodedBytesPerMessageByte * s.opts.MaxMessageBytes
		}
		budget = max(budget, one)
	}
	return budget
}

// handleQuerySub starts the live query of a QUERY_SUB whose decoded
// message takes size bytes.
func (c *conn) handleQuerySub(m *wire.QuerySub, size int) {
	// Room for the answer is waited for here, since finishRead sends it
	// holding the subscription's lock, which the change feed needs.
	c.waitRoom()
	// The QUERY_SUB replaces any query of the same id, whatever its
	// answer: a refusal must not leave the previous one live behind it.
	c.subsMu.Lock()
	old := c.subs[m.QueryID]
	full := old == nil && len(c.subs) >= c.s.opts.MaxQueries
	held := c.queryBytes // without the query this one replaces
	if old != nil && !old.released {
		held -= old.bytes
	}
	c.subsMu.Unlock()
	budget := c.s.queryBudget(held)
	q := m.Query
	var refusal *wire.QueryResp
	nameCode, nameErr := readRefusal(m.MapName)
	switch {
	case nameCode == 403:
		refusal = queryError(m.QueryID, "protocol: "+nameErr.Error(), "FORBIDDEN")
	case nameErr != nil:
		// Not UNAVAILABLE ("subscribe again later"), which a failed read
		// gets: the client would retry it for good.
		refusal = queryError(m.QueryID, "protocol: "+nameErr.Error(), "INVALID")
	case m.Query.IsAggregate():
		refusal = queryError(m.QueryID, "protocol: aggregation queries (groupBy, aggregations) are not supported by this server", "UNSUPPORTED")
	case full:
		c.s.queriesCut.Add(1)
		refusal = queryError(m.QueryID, fmt.Sprintf("protocol: the connection already has %d live queries, the limit; unsubscribe some first", c.s.opts.MaxQueries), "LIMIT")
	case q.Cost(wire.MaxQueryCost)+fieldsCost(m.Fields) > wire.MaxQueryCost:
		// Before compiling: the feed matches every change of the map
		// against the query and projects the value of each update it
		// sends.
		c.s.queriesCut.Add(1)
		refusal = queryError(m.QueryID, queryCostError, "LIMIT")
	case held+size > budget:
		c.s.queriesCut.Add(1)
		refusal = c.s.queryMemoryError(m.QueryID, held, size, budget)
	default:
		// Once here, not for every record the query reads; stopped as
		// soon as it would pass the budget.
		compiled, ok := q.CompileLimit(budget - held - size)
		size += compiled
		if !ok {
			c.s.queriesCut.Add(1)
			refusal = c.s.queryMemoryError(m.QueryID, held, size, budget)
		}
	}
	if refusal != nil {
		if old != nil {
			c.s.unregister(old)
		}
		c.replyNow(refusal)
		return
	}
	sub := &subscription{c: c, id: m.QueryID, mapName: m.MapName, q: &q, compare: q.Compare, fields: m.Fields, limit: -1, bytes: size}
	if q.Limit != nil {
		sub.limit = int(*q.Limit)
	}
	sub.members = sub.newResults(0)
	c.subsMu.Lock()
	c.subs[m.QueryID] = sub
	c.queryBytes += size
	c.subsMu.Unlock()
	// Its first read is under way before the query is in the fan-out
	// index, where a lag resync can find it: that resync waits for the
	// QUERY_RESP (or refusal) of the QUERY_SUB.
	sub.run.Lock()
	defer sub.run.Unlock()
	c.startFeed()
	// The new query joins the fan-out index before the old one of its id
	// leaves it, so no SERVER_EVENT of the map falls between the two.
	c.s.register(sub)
	if old != nil {
		c.s.unregister(old)
	}
	c.s.runQueryLocked(sub, true)
}

func (c *conn) handleQueryUnsub(m *wire.QueryUnsub) {
	c.subsMu.Lock()
	sub := c.subs[m.QueryID]
	c.subsMu.Unlock()
	if sub != nil {
		c.s.unregister(sub)
	}
}

// register adds a subscription to the fan-out index (state subInit: the
// feed buffers changes for it from now on).
func (s *Server) register(sub *subscription) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.byMap[sub.mapName]
	if m == nil {
		m = map[*subscription]struct{}{}
		s.byMap[sub.mapName] = m
	}
	m[sub] = struct{}{}
}

// unregister removes a subscription everywhere.
func (s *Server) unregister(sub *subscription) {
	s.mu.Lock()
	if m := s.byMap[sub.mapName]; m != nil {
		delete(m, sub)
		if len(m) == 0 {
			delete(s.byMap, sub.mapName)
		}
	}
	s.mu.Unlock()
	sub.c.subsMu.Lock()
	if sub.c.subs[sub.id] == sub {
		delete(sub.c.subs, sub.id)
	}
	if !sub.released {
		// Once, though a query may be unregistered twice (a refusal
		// racing the connection's close).
		sub.released = true
		sub.c.queryBytes -= sub.bytes
	}
	sub.c.subsMu.Unlock()
	sub.mu.Lock()
	sub.state = subClosed
	sub.pending = nil
	sub.c.queryResults.Add(-int64(sub.members.Len()))
	sub.members = nil
	sub.mu.Unlock()
}

type scanned struct {
	res []wire.QueryResult
	ts  map[string]record.Timestamp
	// over: the read stopped once the result was known to pass maxN.
	over bool
}

// queryRead is what one read of a map finds for one query.
type queryRead struct {
	sub  *subscription
	keep int // limit+1 for a limited query (the extra one tells whether the result is complete), else -1
	maxN int
	done bool
	out  scanned
}

// newQueryRead readies a read for sub. With maxN >= 0, the read stops
// (over) as soon as the result is known to hold more than maxN records,
// so that a query refused for its size does not first load the map into
// memory.
func newQueryRead(sub *subscription, maxN int) *queryRead {
	r := &queryRead{sub: sub, keep: -1, maxN: maxN, out: scanned{ts: map[string]record.Timestamp{}}}
	if sub.limit >= 0 {
		r.keep = sub.limit + 1
	}
	// A limited query within maxN never passes it: its trimming bounds
	// what the read holds.
	if maxN >= 0 && r.keep >= 0 && sub.limit <= maxN {
		r.maxN = -1
	}
	return r
}

// offer hands the read one live LWW record of the map, v its value.
func (r *queryRead) offer(e *store.Entry, v any) {
	if r.done || !r.sub.q.Match(v) {
		return
	}
	out := &r.out
	out.res = append(out.res, wire.QueryResult{Key: e.Key, Value: v})
	out.ts[e.Key] = e.Record.LWW.Timestamp
	if r.maxN >= 0 && len(out.res) > r.maxN {
		out.over, r.done = true, true
		return
	}
	if r.keep >= 0 && len(out.res) > 2*r.keep+64 {
		r.sub.q.SortResults(out.res)
		for _, x := range out.res[r.keep:] {
			delete(out.ts, x.Key)
		}
		out.res = out.res[:r.keep]
	}
}

// scanQueries reads a map once for reads, leaving in each the matching
// records in result order, at most limit+1 of them for a limited query.
func (s *Server) scanQueries(ctx context.Context, mapName string, reads []*queryRead) error {
	left := len(reads)
	err := s.store.Scan(ctx, mapName, func(e *store.Entry) bool {
		if e.Record.Kind != record.KindLWW {
			return true
		}
		v := e.Record.LWW.Value.ToWire()
		for _, r := range reads {
			if r.done {
				continue
			}
			if r.offer(e, v); r.done {
				left--
			}
		}
		return left > 0
	})
	for _, r := range reads {
		r.sub.q.SortResults(r.out.res)
	}
	return err
}

// resyncRetry is how long a resync that could not read the map first
// waits before it is tried again; the wait doubles up to maxResyncRetry.
const (
	resyncRetry    = time.Second
	maxResyncRetry = time.Minute
)

// runQueryLocked (re)reads a subscription's map for it alone and brings
// its result up to date (finishRead); the caller holds sub.run.
func (s *Server) runQueryLocked(sub *subscription, reader bool) {
	if !sub.startRead() {
		return
	}
	// The budget bounds a query when it starts (see finishRead): the
	// reader's read stops once the result is known to pass what is left
	// of it.
	maxN := -1
	if reader {
		maxN = max(s.opts.MaxQueryResults-int(sub.c.queryResults.Load()), 0)
	}
	r := newQueryRead(sub, maxN)
	ctx, cancel := context.WithTimeout(sub.c.ctx, queryTimeout)
	err := s.scanQueries(ctx, sub.mapName, []*queryRead{r})
	cancel()
	s.finishRead(sub, reader, r.out, err)
}

// resyncMap re-reads a map for subscriptions of it, whose run locks the
// caller holds: one read of the map, however many they are. Each then
// goes on as after a read of its own.
func (s *Server) resyncMap(mapName string, subs []*subscription) {
	reads := make([]*queryRead, 0, len(subs))
	for _, sub := range subs {
		if sub.startRead() {
			reads = append(reads, newQueryRead(sub, -1))
		}
	}
	if len(reads) == 0 {
		return
	}
	// The read matches every record against each query: it has the time
	// their reads one by one would have had. It ends early once every
	// subscription's connection closed.
	ctx, cancel := context.WithTimeout(context.Background(), queryTimeout*time.Duration(len(reads)))
	var open atomic.Int64
	open.Store(int64(len(reads)))
	stops := make([]func() bool, len(reads))
	for i, r := range reads {
		stops[i] = context.AfterFunc(r.sub.c.ctx, func() {
			if open.Add(-1) == 0 {
				cancel()
			}
		})
	}
	err := s.scanQueries(ctx, mapName, reads)
	cancel()
	for _, stop := range stops {
		stop()
	}
	for _, r := range reads {
		s.finishRead(r.sub, false, r.out, err)
	}
}

// startRead readies sub for a read of its map (the feed buffers its
// changes from then on) and reports whether it is still open.
func (sub *subscription) startRead() bool {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.state == subClosed {
		return false
	}
	sub.state, sub.pending, sub.overflow = subInit, nil, false
	return true
}

// finishRead brings sub's result up to date with what a read of its map
// found (sc, or the read's error err): for the connection's reader
// handling the QUERY_SUB, by sending the QUERY_RESP; for a resync, by
// sending the difference as QUERY_UPDATEs.
func (s *Server) finishRead(sub *subscription, reader bool, sc scanned, err error) {
	// What the read found is put in order, and the QUERY_RESP encoded,
	// before sub is locked: the connection's feed worker, which hands
	// changes to its live queries, waits for that lock (a million records
	// take seconds). Meanwhile the feed buffers the
	// map's changes for sub (subInit), as during the read, and nothing
	// else changes sub's result: the caller holds sub.run.
	var rd readResult
	if err == nil && !(reader && sc.over) {
		var held *resultSet
		if !reader {
			// What the client holds: nothing changes it during the read
			// (the feed buffers, the caller holds sub.run), only a close
			// drops it, which finishRead checks under the lock.
			sub.mu.Lock()
			held = sub.members
			sub.mu.Unlock()
		}
		rd = sub.prepareRead(reader, sc, held)
	}
	if s.readyHook != nil {
		s.readyHook()
	}
	sub.mu.Lock()
	// A refusal is sent after the subscription left the fan-out index, so
	// a client that read it hears nothing more of the query (no
	// SERVER_EVENT for a commit it makes after reading it).
	var refusal wire.Message
	defer func() {
		sub.mu.Unlock()
		if refusal != nil {
			s.unregister(sub)
			sub.c.replyNow(refusal) // only the reader refuses
		}
	}()
	if sub.state == subClosed {
		return
	}
	if err != nil {
		if sub.c.ctx.Err() == nil {
			sub.c.s.storageWarns.Warn(sub.c.log, "cannot read the map of a live query", "map", sub.mapName, "query", wire.CutName(sub.id), "error", err)
		}
		if reader {
			// The client is told its QUERY_SUB failed: it must not go on
			// hearing of the query, nor hold a slot with it.
			refusal = queryError(sub.id, "protocol: cannot read map "+quoteName(sub.mapName)+"; subscribe again later", "UNAVAILABLE")
			return
		}
		// A resync that could not read: what committed meanwhile still
		// reaches the client against the result it holds, and the resync
		// is tried again (the result may lack what a limit would refill).
		pending := sub.pending
		sub.pending, sub.overflow = nil, false
		sub.state = subReady
		for _, ch := range pending {
			sub.applyLocked(ch)
		}
		// Doubling, so that a map that stays unreadable does not take a
		// resync worker every second.
		sub.retryIn = min(max(2*sub.retryIn, resyncRetry), maxResyncRetry)
		time.AfterFunc(sub.retryIn, func() { s.queueResync(sub) })
		return
	}
	sub.retryIn = 0
	n := len(sc.res)
	if sub.limit >= 0 {
		n = min(n, sub.limit)
	}
	delta := int64(n - sub.members.Len())
	// The budget bounds a query when it starts (its QUERY_SUB, on the
	// reader): a resync of a query the client holds, like the live updates
	// it replaces, is not refused. Refusals thus always leave from the
	// reader (which waited for room), in order with its other answers.
	if limit := int64(s.opts.MaxQueryResults); reader && (sc.over || delta > 0 && sub.c.queryResults.Load()+delta > limit) {
		s.queriesCut.Add(1)
		more := ""
		if sc.over {
			more = " or more" // the read stopped there
		}
		refusal = queryError(sub.id, fmt.Sprintf("protocol: the connection's live queries would hold %d records%s, over the limit of %d (%s); narrow the query with a where-clause or a limit, or unsubscribe others",
			sub.c.queryResults.Load()+delta, more, limit, s.opts.setting("TOPGUN_MAX_QUERY_RESULTS")), "LIMIT")
		return
	}
	fresh := rd.fresh
	if reader {
		if rd.resp != nil {
			sub.c.enqueue(rd.resp, true)
		}
	} else {
		for _, b := range rd.updates {
			sub.c.send(b)
		}
	}
	sub.c.queryResults.Add(delta)
	sub.members, sub.complete = fresh, rd.complete
	sub.edge, sub.hasEdge = rd.edge, !rd.complete
	pending := sub.pending
	sub.pending = nil
	sub.state = subReady
	sub.replayLocked(pending)
	if sub.overflow {
		sub.overflow = false
		s.queueResync(sub)
	}
}

// replayLocked applies the changes buffered during a read of the map, in
// commit order, but only the newest one of each key (the last of the
// greatest timestamp): each carries the key's whole state, and the read
// may have seen a later state than an older change's (a key written and
// then deleted before the read reached it, absent from the result), which
// replayed would take the result the client was just answered back to an
// older state (an ENTER, pushing a member out of a limited query, then a
// LEAVE).
func (sub *subscription) replayLocked(pending []*store.Change) {
	newest := make(map[string]int, len(pending))
	for i, ch := range pending {
		if ch.Record.Kind != record.KindLWW {
			continue
		}
		if j, ok := newest[ch.Key]; !ok || ch.Record.LWW.Timestamp.Compare(pending[j].Record.LWW.Timestamp) >= 0 {
			newest[ch.Key] = i
		}
	}
	for i, ch := range pending {
		if j, ok := newest[ch.Key]; ok && j == i {
			sub.applyLocked(ch)
		}
	}
}

// readResult is a read's result made ready for finishRead.
type readResult struct {
	res      []wire.QueryResult // the result, in order
	complete bool               // every matching record is in res
	edge     wire.QueryResult   // when not complete, the first one left out
	fresh    *resultSet         // res as sub's result set
	resp     []byte             // the QUERY_RESP encoded (the reader's read; nil if it cannot be)
	updates  [][]byte           // a resync's QUERY_UPDATEs from the result the client holds to res, encoded
}

// prepareRead orders what a read found into a result set and encodes what
// the client is sent: for the reader, the QUERY_RESP; for a resync, the
// QUERY_UPDATEs from held, the result the client holds. It uses only what
// does not change while sub is read (its query, limit and fields, held),
// not its lock.
func (sub *subscription) prepareRead(reader bool, sc scanned, held *resultSet) readResult {
	rd := readResult{res: sc.res, complete: true}
	if sub.limit >= 0 && len(rd.res) > sub.limit {
		// The read's first record past the limit sorts before the others
		// it left out.
		rd.complete, rd.edge = false, rd.res[sub.limit]
		rd.res = rd.res[:sub.limit]
	}
	keys := make([]string, len(rd.res))
	ms := make([]member, len(rd.res))
	for i, r := range rd.res {
		keys[i], ms[i] = r.Key, member{ts: sc.ts[r.Key]}
		if sub.limit >= 0 {
			ms[i].value = r.Value
		}
	}
	rd.fresh = sub.newResults(len(rd.res))
	rd.fresh.appendSorted(keys, ms)
	if reader {
		results := make([]wire.QueryResult, len(rd.res))
		for i, r := range rd.res {
			results[i] = wire.QueryResult{Key: r.Key, Value: project(r.Value, sub.fields)}
		}
		resp := &wire.QueryResp{QueryID: sub.id, Results: results}
		if sub.limit >= 0 {
			more := !rd.complete
			resp.HasMore = &more
		}
		b, err := wire.Encode(resp)
		if err != nil {
			sub.c.log.Error("cannot encode message", "type", resp.Type(), "error", err)
		}
		rd.resp = b
		return rd
	}
	if held == nil {
		return rd // closed meanwhile: nothing is sent
	}
	if h := sub.c.s.resyncDiffHook; h != nil {
		h()
	}
	add := func(key string, value any, ct wire.ChangeType) {
		if b := sub.updateMsg(key, value, ct); b != nil {
			rd.updates = append(rd.updates, b)
		}
	}
	held.Range(func(k string, _ member) {
		if _, ok := rd.fresh.Get(k); !ok {
			add(k, nil, wire.Leave)
		}
	})
	for _, r := range rd.res {
		old, was := held.Get(r.Key)
		switch {
		case !was:
			add(r.Key, r.Value, wire.Enter)
		case old.ts != sc.ts[r.Key]:
			add(r.Key, r.Value, wire.Update)
		}
	}
	return rd
}

// onChange hands one committed change of the subscription's map to it.
func (sub *subscription) onChange(ch *store.Change) {
	if h := sub.c.s.changeHook; h != nil {
		h(sub)
	}
	sub.mu.Lock()
	defer sub.mu.Unlock()
	switch sub.state {
	case subClosed:
		return
	case subInit:
		if len(sub.pending) >= maxPending {
			sub.overflow = true
			return
		}
		sub.pending = append(sub.pending, ch)
		return
	}
	sub.applyLocked(ch)
}

// emit sends one QUERY_UPDATE (the value projected; nil on LEAVE).
func (sub *subscription) emit(key string, value any, ct wire.ChangeType) {
	if b := sub.updateMsg(key, value, ct); b != nil {
		sub.c.send(b)
	}
}

// updateMsg encodes one QUERY_UPDATE (nil, logged, if it cannot be).
func (sub *subscription) updateMsg(key string, value any, ct wire.ChangeType) []byte {
	if ct == wire.Leave {
		value = nil
	} else {
		value = project(value, sub.fields)
	}
	m := &wire.QueryUpdate{QueryID: sub.id, Key: key, Value: value, ChangeType: ct}
	b, err := wire.Encode(m)
	if err != nil {
		sub.c.log.Error("cannot encode message", "type", m.Type(), "error", err)
	}
	return b
}

// newResults returns an empty result set for the subscription's query:
// ordered for a limited one.
func (sub *subscription) newResults(size int) *resultSet {
	if sub.limit < 0 {
		return newResultSet(nil, size)
	}
	return newResultSet(sub.compare, size)
}

// applyLocked updates the result for one change and tells the client,
// unless the subscriber wrote the change itself.
func (sub *subscription) applyLocked(ch *store.Change) {
	if ch.Record.Kind != record.KindLWW || sub.limit == 0 {
		return
	}
	notify := ch.Origin != sub.c.id
	send := func(key string, v any, ct wire.ChangeType) {
		if notify {
			sub.emit(key, v, ct)
		}
	}
	ts := ch.Record.LWW.Timestamp
	old, was := sub.members.Get(ch.Key)
	if was && ts.Compare(old.ts) <= 0 {
		return // older than what the result holds (a replayed change)
	}
	live := !ch.Record.LWW.Value.IsNull() && (ch.ExpirationTime == 0 || ch.ExpirationTime > time.Now().UnixMilli())
	var v any
	matches := false
	if live {
		v = ch.Record.LWW.Value.ToWire()
		matches = sub.q.Match(v)
	}
	m := member{ts: ts}
	if sub.limit >= 0 {
		m.value = v
	}
	switch {
	case matches && was:
		sub.members.Put(ch.Key, m)
		send(ch.Key, v, wire.Update)
		if sub.limit >= 0 && !sub.complete {
			// Now last, it may sort after a record outside the result,
			// unless it sorts before the edge.
			if wk, _, _ := sub.members.Worst(); wk == ch.Key &&
				(!sub.hasEdge || sub.compare(wire.QueryResult{Key: ch.Key, Value: v}, sub.edge) >= 0) {
				sub.c.s.queueResync(sub)
			}
		}
	case matches:
		if sub.limit < 0 || sub.members.Len() < sub.limit {
			sub.members.Put(ch.Key, m)
			sub.c.queryResults.Add(1)
			send(ch.Key, v, wire.Enter)
			return
		}
		wk, wm, _ := sub.members.Worst()
		out := wire.QueryResult{Key: ch.Key, Value: v} // what is left outside
		if sub.compare(out, wire.QueryResult{Key: wk, Value: wm.value}) < 0 {
			sub.members.Delete(wk)
			sub.members.Put(ch.Key, m)
			send(wk, nil, wire.Leave)
			send(ch.Key, v, wire.Enter)
			out = wire.QueryResult{Key: wk, Value: wm.value}
		}
		if sub.complete || !sub.hasEdge || sub.compare(out, sub.edge) < 0 {
			sub.edge, sub.hasEdge = out, true
		}
		sub.complete = false
	case was:
		sub.members.Delete(ch.Key)
		sub.c.queryResults.Add(-1)
		send(ch.Key, nil, wire.Leave)
		if sub.limit >= 0 && !sub.complete {
			sub.c.s.queueResync(sub)
		}
	}
}

// queueResync schedules a background re-read of a subscription's map.
func (s *Server) queueResync(sub *subscription) {
	s.resyncMu.Lock()
	defer s.resyncMu.Unlock()
	if sub.queued {
		return
	}
	sub.queued = true
	s.resyncsQueued.Add(1)
	s.resyncQ = append(s.resyncQ, sub)
	s.resyncCond.Signal()
}

// resyncWorker runs queued resyncs until the server closes.
func (s *Server) resyncWorker() {
	defer s.wg.Done()
	for {
		s.resyncMu.Lock()
		for len(s.resyncQ) == 0 && !s.resyncStop {
			s.resyncCond.Wait()
		}
		if s.resyncStop {
			s.resyncMu.Unlock()
			return
		}
		sub := s.resyncQ[0]
		s.resyncQ[0] = nil
		s.resyncQ = s.resyncQ[1:]
		sub.queued = false
		s.resyncMu.Unlock()
		sub.run.Lock()
		subs := s.takeResyncs(sub)
		s.resyncMap(sub.mapName, subs)
		for _, o := range subs {
			o.run.Unlock()
		}
	}
}

// takeResyncs returns sub, whose run lock the caller holds, with the
// other queued resyncs of its map, taken off the queue with their run
// locks held: one read of the map serves them all. A subscription being
// read (its run lock held) stays queued.
func (s *Server) takeResyncs(sub *subscription) []*subscription {
	subs := []*subscription{sub}
	s.resyncMu.Lock()
	defer s.resyncMu.Unlock()
	q := s.resyncQ[:0]
	for _, o := range s.resyncQ {
		if o.mapName == sub.mapName && o.run.TryLock() {
			o.queued = false
			subs = append(subs, o)
			continue
		}
		q = append(q, o)
	}
	clear(s.resyncQ[len(q):])
	s.resyncQ = q
	return subs
}
