package client

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/topgun-go/topgun/server/merkle"
	"github.com/topgun-go/topgun/server/wire"
)

// SyncResult is the outcome of SyncMap.
type SyncResult struct {
	// InSync is true when the server's root hash equalled the local one,
	// so nothing was exchanged beyond SYNC_INIT and SYNC_RESP_ROOT.
	InSync bool
	// LocalRoot and ServerRoot are the two root hashes compared.
	LocalRoot, ServerRoot uint32
	// Records are all records the server sent in SYNC_RESP_LEAF messages.
	Records []wire.LeafRecord
	// Newer are the received records that win over the local copy by LWW
	// (no local record, or a strictly greater timestamp): what the caller
	// should apply.
	Newer []wire.LeafRecord
	// Messages counts the frames exchanged, both directions.
	Messages int
	// BucketRequests counts the MERKLE_REQ_BUCKET messages sent.
	BucketRequests int
	// Unanswered counts bucket requests the server never answered (TopGun
	// sends nothing for a path that holds no keys). A request it answers
	// with an ERROR fails SyncMap with a *SyncError instead.
	Unanswered int
}

// syncKey names one sync request: SYNC_INIT, answered by SYNC_RESP_ROOT,
// or MERKLE_REQ_BUCKET for path, answered by SYNC_RESP_BUCKETS or
// SYNC_RESP_LEAF with that path (the protocol has one request for both).
type syncKey struct {
	init bool
	path string
}

// mapSyncs is the sync state of one map on the current connection. It is
// guarded by Client.mu and reset when the connection drops.
type mapSyncs struct {
	cur *syncSession // the running SyncMap, if any
	// owed counts the replies still due to requests of SyncMaps that have
	// returned early (ctx ended, error); the requests of one that reached
	// SyncIdleTimeout are deemed unanswered, not owed. A late reply pays
	// such a debt and is dropped, so a later
	// SyncMap never takes it for the answer to its own request for the
	// same path: it waits for a reply of its own. (Replies to one path are
	// assumed to come in request order, as TopGun answers a connection's
	// messages.) TopGun sends nothing for a path that holds no keys, so the
	// debts lapse after SyncIdleTimeout, the wait after which SyncMap deems
	// a request unanswered; otherwise they would swallow future answers.
	// Each debt is kept as its request's place in the order sent
	// (Client.syncSent), oldest first, so that an ERROR answering it is
	// told from one answering a running sync (failSyncs).
	owed      map[syncKey][]uint64
	owedUntil time.Time
}

// claim matches a reply to the request it answers, at the time now: an
// older SyncMap's debt first, then the running one. It returns the session
// to hand the reply to, or nil to drop it (owed, never requested, or
// already answered).
func (ms *mapSyncs) claim(k syncKey, now time.Time) *syncSession {
	if now.After(ms.owedUntil) {
		ms.owed = nil
	}
	if q := ms.owed[k]; len(q) > 0 {
		if len(q) == 1 {
			delete(ms.owed, k)
		} else {
			ms.owed[k] = q[1:]
		}
		return nil
	}
	if s := ms.cur; s != nil && s.outstanding[k] > 0 {
		delete(s.outstanding, k)
		return s
	}
	return nil
}

func (ms *mapSyncs) abort(err error) {
	if ms.cur != nil {
		ms.cur.abort(err)
	}
}

// syncSession receives the sync replies for one SyncMap call.
type syncSession struct {
	// outstanding are the requests sent and not yet answered, each with
	// its place in the order the client sent sync requests (from 1,
	// Client.syncSent); guarded by Client.mu.
	outstanding map[syncKey]uint64

	mu     sync.Mutex
	queue  []wire.Message  // replies claimed from outstanding: at most one per request
	prune  *wire.Timestamp // the greatest GC_PRUNE cut-off received before the root
	err    error
	notify chan struct{} // capacity 1: something was queued or err set
}

func newSyncSession() *syncSession {
	return &syncSession{outstanding: map[syncKey]uint64{}, notify: make(chan struct{}, 1)}
}

func (s *syncSession) push(m wire.Message) {
	s.mu.Lock()
	s.queue = append(s.queue, m)
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// notePrune keeps a GC_PRUNE cut-off for the sync (the greatest: pruning
// by it prunes by the others too), not queued: it answers no request, so a
// queue would grow with every one a server sent.
func (s *syncSession) notePrune(ts wire.Timestamp) {
	s.mu.Lock()
	if s.prune == nil || ts.Compare(*s.prune) > 0 {
		s.prune = &ts
	}
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

func (s *syncSession) abort(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

func (s *syncSession) take() ([]wire.Message, *wire.Timestamp, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, p := s.queue, s.prune
	s.queue, s.prune = nil, nil
	return q, p, s.err
}

// toSync hands a sync reply to the SyncMap that asked for it, if any.
func (c *Client) toSync(mapName string, k syncKey, m wire.Message) {
	var s *syncSession
	c.mu.Lock()
	if ms := c.syncs[mapName]; ms != nil {
		s = ms.claim(k, time.Now())
	}
	c.mu.Unlock()
	if s != nil {
		s.push(m)
	}
}

// resetSync hands SYNC_RESET_REQUIRED, which answers no request, to the
// running SyncMap of the map.
func (c *Client) resetSync(mapName string, m wire.Message) {
	var s *syncSession
	c.mu.Lock()
	if ms := c.syncs[mapName]; ms != nil {
		s = ms.cur
	}
	c.mu.Unlock()
	if s != nil {
		s.push(m)
	}
}

// toSyncsBeforeRoot hands GC_PRUNE, which answers no request, to every
// running SyncMap whose SYNC_RESP_ROOT has not come yet. It runs on the
// reader, as toSync does, so the cut-off is noted before the root is
// queued.
func (c *Client) toSyncsBeforeRoot(m *wire.GCPrune) {
	var ss []*syncSession
	c.mu.Lock()
	for _, ms := range c.syncs {
		if s := ms.cur; s != nil && s.outstanding[syncKey{init: true}] > 0 {
			ss = append(ss, s)
		}
	}
	c.mu.Unlock()
	for _, s := range ss {
		s.notePrune(m.OlderThan)
	}
}

// SyncError is the server's ERROR answering a MERKLE_REQ_BUCKET of a
// SyncMap (it failed to read a leaf, refused the map or the path): the sync
// did not get that part of the map.
type SyncError struct {
	Code    uint32
	Message string
}

func (e *SyncError) Error() string {
	return fmt.Sprintf("client: the server failed a bucket request of the sync: %d %s", e.Code, e.Message)
}

// bucketRequestError reports whether an ERROR answers a MERKLE_REQ_BUCKET:
// as for ORGet (orGetError), the only tie the protocol gives is the text,
// which on this project's server starts by naming the request type.
func bucketRequestError(m *wire.ErrorMessage) bool {
	for _, p := range [...]string{"protocol: " + wire.TypeMerkleReqBucket, "protocol: message ignored: wire: cannot decode " + wire.TypeMerkleReqBucket} {
		if rest, ok := strings.CutPrefix(m.Message, p); ok && (strings.HasPrefix(rest, " ") || strings.HasPrefix(rest, ":")) {
			return true
		}
	}
	return false
}

// failSyncs fails, with the server's ERROR answering a MERKLE_REQ_BUCKET,
// the running SyncMaps waiting for a bucket request: taken for a path
// that holds nothing, a leaf the server could not read made SyncMap report
// success without its records. The ERROR names no map, so every such sync
// fails (their callers sync again). In each, it answers the oldest bucket
// request (the server answers a connection's requests in order), which is
// then not owed. An ERROR answering a request older than all of those,
// owed by a SyncMap that returned early, pays that debt instead and fails
// none: else the debt would swallow the answer to the next SyncMap's
// request for the path, which would report success without its records.
func (c *Client) failSyncs(m *wire.ErrorMessage) {
	var ss []*syncSession
	c.mu.Lock()
	var debtMap *mapSyncs
	var debtKey syncKey
	var debtAt, oldest uint64
	now := time.Now()
	for _, ms := range c.syncs {
		if !now.After(ms.owedUntil) {
			for k, q := range ms.owed {
				if !k.init && (debtAt == 0 || q[0] < debtAt) {
					debtMap, debtKey, debtAt = ms, k, q[0]
				}
			}
		}
		if s := ms.cur; s != nil {
			for k, n := range s.outstanding {
				if !k.init && (oldest == 0 || n < oldest) {
					oldest = n
				}
			}
		}
	}
	if debtAt > 0 && (oldest == 0 || debtAt < oldest) {
		debtMap.claim(debtKey, now) // paid: its answer came
		c.mu.Unlock()
		return
	}
	for _, ms := range c.syncs {
		s := ms.cur
		if s == nil {
			continue
		}
		var oldest syncKey
		var at uint64
		for k, n := range s.outstanding {
			if !k.init && (at == 0 || n < at) {
				oldest, at = k, n
			}
		}
		if at > 0 {
			delete(s.outstanding, oldest)
			ss = append(ss, s)
		}
	}
	c.mu.Unlock()
	for _, s := range ss {
		s.abort(&SyncError{Code: m.Code, Message: m.Message})
	}
}

// SyncMap reconciles an LWW map with the server by Merkle drill-down, as
// TopGun's TS client does: SYNC_INIT; if the server's root differs from the
// root of local, MERKLE_REQ_BUCKET for the root path, then for every child
// bucket whose server hash differs from the local one, down to the leaves,
// whose records arrive in SYNC_RESP_LEAF. local maps keys to the records the
// caller already holds (their values are not hashed, only key and
// timestamp). Local-only buckets are not pushed: LWW writes reach the server
// through Put. SyncMap needs a live connection and fails with
// ErrDisconnected if it drops; only one sync per map may run at a time.
// A SYNC_INIT left unanswered for Options.SyncIdleTimeout fails it with
// ErrSyncUnanswered (a server answers SYNC_INIT for every map it serves).
// A bucket request the server answers with an ERROR (this project's server
// does when it cannot read a leaf) fails it with a *SyncError; as the ERROR
// names no map, so does every other SyncMap waiting for a bucket then.
//
// Only replies to this call's own requests count: a reply for a path it did
// not ask for, or already got, is ignored. Each path is requested at most
// once, and bucket names must be single hex digits (else ErrSyncProtocol),
// so a sync sends at most 4,369 bucket requests (1+16+256+4096, the paths
// of TopGun's depth-3 trie) whatever the server answers.
//
// A GC_PRUNE arriving before the server's root (this project's server
// sends one, when it has collected tombstones, before the root of a
// connection's first sync) applies to the comparison: the tombstones of
// local older than its cut-off are left out, as TopGun's TS client drops
// them before it compares, and LocalRoot is the root without them; a
// record the server sends for such a key counts as Newer. local itself is
// not changed: the caller drops them in Options.OnGCPrune.
func (c *Client) SyncMap(ctx context.Context, mapName string, local map[string]wire.LWWRecord) (*SyncResult, error) {
	r := &syncRun{c: c, mapName: mapName, local: local, tree: newMerkleTree(local),
		s: newSyncSession(), requested: map[syncKey]bool{}}
	r.res.LocalRoot = r.tree.Root()
	if err := r.start(); err != nil {
		return nil, err
	}
	defer r.end()
	if err := r.request(ctx, syncKey{init: true}); err != nil {
		return nil, err
	}
	idle := time.NewTimer(c.opts.SyncIdleTimeout)
	defer idle.Stop()
	for r.waiting > 0 {
		select {
		case <-r.s.notify:
		case <-idle.C:
			r.res.Unanswered = r.waiting
			// Deemed unanswered (TopGun sends nothing for a path that
			// holds no keys): these requests are over, not owed, so end
			// must not turn them into debts that would swallow the
			// answer to the next SyncMap's request for the same path.
			c.mu.Lock()
			noRoot := r.s.outstanding[syncKey{init: true}] > 0
			clear(r.s.outstanding)
			c.mu.Unlock()
			if noRoot {
				// Every served SYNC_INIT is answered: nothing was synced.
				return nil, fmt.Errorf("%w (map %q, %v)", ErrSyncUnanswered, mapName, c.opts.SyncIdleTimeout)
			}
			return &r.res, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		msgs, prune, err := r.s.take()
		if prune != nil {
			// Noted before any root in msgs was queued.
			r.res.Messages++
			r.prune(*prune)
		}
		for _, m := range msgs {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if err := r.handle(ctx, m); errors.Is(err, ErrSyncReset) {
				return &r.res, err
			} else if err != nil {
				return nil, err
			}
		}
		if err != nil {
			return nil, err
		}
		idle.Reset(c.opts.SyncIdleTimeout)
	}
	return &r.res, nil
}

// syncRun is the state of one SyncMap call.
type syncRun struct {
	c         *Client
	mapName   string
	local     map[string]wire.LWWRecord
	tree      *merkle.Tree
	s         *syncSession
	cn        *conn
	requested map[syncKey]bool
	waiting   int // requests sent whose replies have not been handled
	rooted    bool
	res       SyncResult
}

// prune leaves out of the comparison the local tombstones older than
// before, as the server asked with GC_PRUNE, unless the roots were
// compared already.
func (r *syncRun) prune(before wire.Timestamp) {
	if r.rooted {
		return
	}
	var kept map[string]wire.LWWRecord
	for k, rec := range r.local {
		if rec.Value == nil && rec.Timestamp.Compare(before) < 0 {
			if kept == nil {
				kept = maps.Clone(r.local) // local is the caller's
			}
			delete(kept, k)
		}
	}
	if kept == nil {
		return // nothing to drop
	}
	r.local, r.tree = kept, newMerkleTree(kept)
	r.res.LocalRoot = r.tree.Root()
}

// start registers the session as the map's running sync.
func (r *syncRun) start() error {
	c := r.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == StateClosed {
		return c.err
	}
	if c.conn == nil {
		return ErrNotConnected
	}
	ms := c.syncs[r.mapName]
	if ms == nil {
		ms = &mapSyncs{}
		c.syncs[r.mapName] = ms
	}
	if ms.cur != nil {
		return ErrSyncInProgress
	}
	ms.cur = r.s
	r.cn = c.conn
	return nil
}

// end unregisters the session. Its unanswered requests become debts (see
// mapSyncs.owed), unless the connection they were sent on is gone.
func (r *syncRun) end() {
	c := r.c
	c.mu.Lock()
	defer c.mu.Unlock()
	ms := c.syncs[r.mapName]
	if ms == nil || ms.cur != r.s {
		return // the connection dropped: its replies will not come
	}
	ms.cur = nil
	now := time.Now()
	if now.After(ms.owedUntil) {
		ms.owed = nil
	}
	if len(r.s.outstanding) > 0 {
		if ms.owed == nil {
			ms.owed = map[syncKey][]uint64{}
		}
		for k, n := range r.s.outstanding {
			ms.owed[k] = append(ms.owed[k], n)
		}
		ms.owedUntil = now.Add(c.opts.SyncIdleTimeout)
	}
	if len(ms.owed) == 0 {
		delete(c.syncs, r.mapName)
	}
}

// request sends the request k, once per sync.
func (r *syncRun) request(ctx context.Context, k syncKey) error {
	if r.requested[k] {
		return nil
	}
	r.requested[k] = true
	var m wire.Message = &wire.SyncInit{MapName: r.mapName}
	if !k.init {
		m = &wire.MerkleReqBucket{MapName: r.mapName, Path: k.path}
		r.res.BucketRequests++
	}
	// Outstanding before the send: the reply may come before send returns.
	// Numbered under the send lock, so that the numbers of all maps'
	// requests follow the order they go out in (failSyncs).
	err := r.c.lockSend(ctx)
	if err == nil {
		r.c.mu.Lock()
		r.c.syncSent++
		r.s.outstanding[k] = r.c.syncSent
		r.c.mu.Unlock()
		err = r.c.send(ctx, r.cn, m)
		r.c.unlockSend()
	}
	if err != nil {
		r.c.mu.Lock()
		delete(r.s.outstanding, k) // not sent, or the connection is gone
		r.c.mu.Unlock()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return r.c.sendFailed(err)
	}
	r.res.Messages++
	r.waiting++
	return nil
}

// handle processes one reply to a request of this sync.
func (r *syncRun) handle(ctx context.Context, m wire.Message) error {
	res := &r.res
	res.Messages++
	r.waiting--
	switch m := m.(type) {
	case *wire.SyncRespRoot:
		r.rooted = true
		res.ServerRoot = m.RootHash
		if m.RootHash == res.LocalRoot {
			res.InSync = true
			return nil
		}
		return r.request(ctx, syncKey{path: ""})
	case *wire.SyncRespBuckets:
		chars := make([]string, 0, len(m.Buckets))
		for ch := range m.Buckets {
			if len(ch) != 1 || !strings.Contains(merkle.Digits, ch) {
				return fmt.Errorf("%w: bucket %q under path %q is not one hex digit", ErrSyncProtocol, ch, m.Path)
			}
			chars = append(chars, ch)
		}
		sort.Strings(chars)
		for _, ch := range chars {
			path := m.Path + ch
			if len(path) > merkle.Depth || nodeHash(r.tree, path) == m.Buckets[ch] {
				continue
			}
			if err := r.request(ctx, syncKey{path: path}); err != nil {
				return err
			}
		}
	case *wire.SyncRespLeaf:
		for _, rec := range m.Records {
			r.c.hlc.Update(rec.Record.Timestamp)
			res.Records = append(res.Records, rec)
			if l, ok := r.local[rec.Key]; !ok || rec.Record.Timestamp.Compare(l.Timestamp) > 0 {
				res.Newer = append(res.Newer, rec)
			}
		}
	case *wire.SyncResetRequired:
		return ErrSyncReset
	case *droppedFrame:
		return r.c.droppedError(m, fmt.Sprintf("%s of map %q, path %q", m.typ, r.mapName, m.head["path"]))
	}
	return nil
}
