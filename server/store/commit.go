package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/server/record"
)

// request is one Apply call (or one piece of server-side work) waiting for
// the committer.
type request struct {
	ops     []Op
	origin  uint64
	results []Result
	fn      func(t *txn) // server-side work (expiry, GC) instead of ops
	fnMuts  int          // the most records fn writes
	done    chan error
	// alone puts the request in a commit of its own; split is set, before
	// done is sent, when its commit failed as too large with other requests
	// in it, or failed with the one it was merged over (see Apply).
	alone, split bool
	// grouped is set, before done is sent, when its commit failed with
	// other requests in it, or with the one it was merged over: the
	// failure (a conflict) may be theirs.
	grouped bool
	// indexRefused is the number of ops of this merge admitKey rejected
	// (set by the committer before done is sent).
	indexRefused int
}

// Apply merges ops into the store and returns once the changes are durable
// in the backend (one group commit may carry the ops of many concurrent
// callers). Ops that cannot be applied are rejected one by one in the
// results; the error is for the call as a whole (backend failure, closed
// store, ctx done before the commit — in that last case the ops may still
// be committed, and re-sending them is harmless). With an error, results
// is empty unless the ops were applied in parts (see applyApart): then it
// holds the results of the ops settled before the failing part, a prefix
// of ops (stored, or rejected for good).
//
// A commit the backend does not finish within Options.CommitTimeout fails
// like one whose connection broke: the backend may still have applied it,
// so the store re-reads its records (writes to them merge against storage
// until then) and publishes its changes on the feed if storage holds them,
// as for every failed commit of unknown outcome (see settleUnsure).
//
// On shared storage a commit fails with CodeConflict when another process
// changed one of its records after this one read it; the ops are then
// merged again against what storage holds, up to maxConflictTries times;
// after a group commit of several requests conflicted, in a commit of
// their own, so that only their own records' conflicts spend those tries.
//
// A group commit the backend refuses as too large (a wasm plugin's request
// limit) while it carried other requests too, and a commit merged over such
// a refused one, are merged again and committed alone: a write that fits
// the backend on its own must not fail because others were gathered with
// it. So are those of a group commit storage refused for what one of its
// writes holds (refusesContent), and the write so refused alone is applied
// in parts, down to single ops (see applyApart): storage's refusal of an
// op is a rejection of that op, with storage's message, in its Result.
func (s *Store) Apply(ctx context.Context, ops []Op, origin uint64) ([]Result, error) {
	alone := false
	for try := 1; ; try++ {
		req := &request{ops: ops, origin: origin, results: make([]Result, len(ops)), done: make(chan error, 1), alone: alone}
		err := s.submit(ctx, req)
		if err != nil && try < maxConflictTries && abi.CodeOf(err) == abi.CodeConflict && ctx.Err() == nil {
			s.log.Debug("another server changed records this commit merged against; merging again", "try", try, "error", err)
			// Gathered with others, the conflict may be another write's:
			// merged again with them, a write of records no other server
			// writes spent its tries on a record another server keeps
			// changing. Alone, only its own records' conflicts count.
			alone = alone || req.grouped
			continue
		}
		// ctx first: submit may return on ctx before the applier answers.
		if err != nil && ctx.Err() == nil && try < maxConflictTries && req.split {
			s.log.Debug("a group commit was too large for the backend, or refused for another write; committing this write alone", "error", err)
			alone = true
			continue
		}
		if err != nil && ctx.Err() == nil && !req.split && refusesContent(err) {
			// Refused in a commit of its own: for what this write holds.
			return s.applyApart(ctx, ops, origin, err)
		}
		if err != nil {
			return nil, err
		}
		// Counted here, once the caller gets the rejections: a request
		// merged again (a conflict, a split) was refused at each merge.
		if req.indexRefused > 0 {
			s.indexRefused.Add(uint64(req.indexRefused))
		}
		return req.results, nil
	}
}

// refusesContent reports whether err, a failed commit or merge read, is
// storage refusing what it was asked for, as it will again (a plugin's
// stricter rule for a map name or key, data PostgreSQL rejects), rather
// than a failure that may pass (a dropped connection, a timeout, a closed
// store). Refused so, a group commit failed every write gathered with the
// one refused, and each client's re-send (ERROR 500) met it again.
func refusesContent(err error) bool {
	switch abi.CodeOf(err) {
	case abi.CodeInvalidArgument, abi.CodeNotFound, abi.CodeUnsupported:
		return true
	}
	return false
}

// applyApart applies ops, which storage refused in a commit of their own
// for their content (refusesContent: first is that refusal), in halves,
// down to single ops, so that only the ops storage refuses on their own
// are rejected, with its message, and the rest stored. Failed whole, the
// write came back refused at every re-send of its client. A part failing
// otherwise fails the call, with the results of the parts before it: they
// are stored, and an op the server stamps (an OR add without a tag) would
// be stored again if re-sent, so the caller acknowledges them (see Apply).
func (s *Store) applyApart(ctx context.Context, ops []Op, origin uint64, first error) ([]Result, error) {
	// Debug: a client writing what storage refuses must not flood the log.
	s.log.Debug("storage refused a write for its content; refusing its ops that storage refuses alone", "ops", len(ops), "error", first)
	if len(ops) == 1 {
		msg := first.Error()
		var ae *abi.Error
		if errors.As(first, &ae) {
			msg = ae.Error() // the backend's own, without the store's prefix
		}
		return []Result{{Err: &RejectError{Reason: fmt.Sprintf("storage refused it (%s): %s", abi.CodeOf(first), msg)}}}, nil
	}
	half := len(ops) / 2
	out := make([]Result, 0, len(ops))
	for at, part := range [][]Op{ops[:half], ops[half:]} {
		res, err := s.Apply(ctx, part, origin)
		for i := range res {
			if re, ok := res[i].Err.(*RejectError); ok {
				re.Op += at * half
			}
		}
		out = append(out, res...)
		if err != nil {
			return out, err // the parts before this one settled: a prefix
		}
	}
	return out, nil
}

// maxConflictTries bounds the merges of one Apply on shared storage.
const maxConflictTries = 8

func (s *Store) submit(ctx context.Context, req *request) error {
	if s.closed.Load() {
		return ErrClosed
	}
	select {
	case s.reqs <- req:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.closing:
		return ErrClosed
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-s.stopped:
		// The committer and applier are gone: a request not answered by
		// now raced with Close into the queue and was never merged.
		select {
		case err := <-req.done:
			return err
		default:
			return ErrClosed
		}
	}
}

// The write path is a two-stage pipeline. The committer goroutine merges
// requests into a txn against the index plus the txns still in flight; the
// applier goroutine commits txns to the backend one at a time, in order,
// then installs them in the index and answers their callers. While the
// applier waits for a commit to become durable, the committer keeps
// merging arriving requests into the next txn, so one backend batch carries
// everything that arrived during the previous commit (group commit), and
// merging overlaps with the backend's fsync. After answering a commit the
// applier gives its callers a moment to send their next requests (regroup),
// so that many writers do not split into two half-full alternating groups.
//
// A txn merged on top of a txn that then fails is failed too, unapplied:
// its merge decisions assumed the failed one's state (unless, on checked
// storage, it read none of it and that one only conflicted: standsAlone).
//
// Every backend call of the pipeline has a deadline, CommitTimeout: one
// that never returns (a database behind a dead link) would stop every
// write after it, unanswered, until TCP gave up, if ever.

// committer is the only goroutine that merges. It reads the index under
// the read lock; the applier is the only writer of the index.
func (s *Store) committer() {
	defer s.wg.Done()
	defer close(s.applyq)
	var inflight []*txn // handed to the applier, oldest first
	var next *request   // taken, but for the next txn (batch limit)
	for {
		var first *request
		if next != nil {
			first, next = next, nil
		} else {
			select {
			case first = <-s.reqs:
			case <-s.closing:
				// Commit what was already queued; later arrivals fail (submit).
				for {
					select {
					case r := <-s.reqs:
						t := s.newTxn(&inflight)
						t.add(r)
						s.applyq <- t
						inflight = append(inflight, t)
					default:
						return // later arrivals see s.stopped (submit)
					}
				}
			}
		}
		t := s.newTxn(&inflight)
		t.add(first)
		select {
		case s.txnReady <- struct{}{}: // see applier
		default:
		}
	fill:
		for !first.alone && t.n < s.opts.MaxCommitOps && len(t.buf) < s.maxCommitBytes {
			select {
			case s.applyq <- t:
				inflight = append(inflight, t)
				t = nil
				break fill
			case r := <-s.reqs:
				if r.alone || len(t.order)+r.maxMuts() > abi.MaxBatchOps {
					// The backend would refuse the batch, failing every
					// caller in it (or r asks for a commit of its own):
					// r goes into the next one.
					next = r
					break fill
				}
				t.add(r)
			}
		}
		s.merged.Store(0)
		if t != nil {
			s.applyq <- t
			inflight = append(inflight, t)
		}
		select {
		case <-s.txnReady: // delivered: no longer waiting
		default:
		}
	}
}

// maxMuts is the most records a request writes.
func (r *request) maxMuts() int {
	if r.fn != nil {
		return r.fnMuts
	}
	return len(r.ops)
}

// newTxn starts a txn whose overlay is the txns still in flight.
func (s *Store) newTxn(inflight *[]*txn) *txn {
	// Drop settled txns: their states are in the index now.
	live := (*inflight)[:0]
	for _, o := range *inflight {
		if !o.settled.Load() {
			live = append(live, o)
		}
	}
	*inflight = live
	t := &txn{s: s, pending: map[cacheKey]*state{}, overlay: append([]*txn(nil), live...), freedAt: s.partsFreed.Load()}
	if s.checked != nil {
		t.base = map[cacheKey]abi.Expect{}
	}
	if len(live) > 0 {
		t.dep = live[len(live)-1]
	}
	return t
}

// standsAlone reports whether t may be committed though the txn before it
// failed: on checked storage, when that one's commit was refused as a
// conflict (so applied nothing) and t's merges read no state of a txn in
// flight, t assumed nothing of it, and its own commit checks what it read.
// Failed with it, a write of other keys (or a re-read of another server's
// changes) merged behind a conflict failed too, and under steady writes
// each such txn failed the next one merged behind it, spending writers'
// retries in milliseconds with no commit tried.
func (t *txn) standsAlone() bool {
	return t.base != nil && !t.readFlight && abi.CodeOf(t.dep.failErr) == abi.CodeConflict
}

// add merges one request into the txn.
func (t *txn) add(r *request) {
	t.s.merged.Add(1)
	t.reqs = append(t.reqs, r)
	t.n += len(r.ops) + 1
	t.req++
	t.changesFrom = len(t.changes)
	defer t.seal()
	if r.fn != nil {
		r.fn(t)
		return
	}
	if t.s.shared {
		keys := make([]cacheKey, 0, len(r.ops))
		for i := range r.ops {
			op := &r.ops[i]
			if abi.ValidateMapName(op.Map) == nil && abi.ValidateKey(op.Key) == nil {
				keys = append(keys, cacheKey{op.Map, op.Key})
			}
		}
		t.prefetch(keys)
	}
	refused := t.indexRefused
	for i := range r.ops {
		r.results[i] = t.apply(i, &r.ops[i], r.origin)
	}
	r.indexRefused = t.indexRefused - refused
	if h := t.s.mergedHook; h != nil {
		h()
	}
}

// maxCommitBytes caps the encoded records one group commit gathers (the
// backend holds them all until the commit): without it, many writers of
// large values arriving during a slow commit made one batch of gigabytes.
// A txn stops taking requests once past it, so it holds at most this
// plus one request.
const maxCommitBytes = 64 << 20

// Bounds of the wait between the re-reads the applier makes, while no
// commit arrives, of keys and failed commits whose stored state is not
// known (see applier).
const (
	settleRetryMin = 100 * time.Millisecond
	settleRetryMax = 30 * time.Second
)

// closeSettleTimeout bounds Close's last try at settling failed commits of
// unknown outcome, so a backend that does not answer cannot hold it up.
const closeSettleTimeout = 2 * time.Second

// applier commits txns in order and answers their callers. While failed
// commits of unknown outcome (or keys to re-read) are pending and no
// commit arrives, it retries on a timer, backing off: settled only before
// the next commit, a commit storage did apply was never published while
// no write came.
func (s *Store) applier() {
	defer s.wg.Done()
	ctx, cancel := s.closingContext()
	defer cancel()
	var (
		retry   *time.Timer
		retryC  <-chan time.Time
		backoff = settleRetryMin
	)
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	for {
		if len(s.unsure) > 0 || len(s.repair) > 0 { // applier-only state
			if retryC == nil {
				retry = time.NewTimer(backoff)
				retryC = retry.C
			}
		} else {
			if retry != nil {
				retry.Stop()
				retry, retryC = nil, nil
			}
			backoff = settleRetryMin
		}
		select {
		case t, ok := <-s.applyq:
			if !ok {
				s.closeUnsure()
				return
			}
			s.applyTxn(t)
		case <-retryC:
			retry, retryC = nil, nil
			// With ctx, which Close cancels: a backend that does not
			// answer must not hold up Close while no commit is waiting.
			// Bounded too, and cut short when a txn is waiting: that
			// commit re-reads the same records first, under a deadline
			// of its own, and its writers would otherwise wait for both
			// (a third commit timeout over a dead link).
			rctx, rcancel := context.WithTimeout(ctx, s.opts.CommitTimeout)
			go func() {
				select {
				case <-s.txnReady:
					rcancel()
				case <-rctx.Done():
				}
			}()
			s.repairIndex(rctx, true)
			s.flushWatchLater()
			s.settleUnsure(rctx)
			rcancel()
			backoff = min(2*backoff, settleRetryMax)
		}
	}
}

// closeUnsure tries a last time, at Close, to settle the failed commits of
// unknown outcome, and reports those it must drop: if storage applied
// them, their changes are never published.
func (s *Store) closeUnsure() {
	if len(s.unsure) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeSettleTimeout)
	defer cancel()
	s.settleUnsure(ctx)
	if n := len(s.unsure); n > 0 {
		records := 0
		for _, t := range s.unsure {
			records += len(t.order)
		}
		s.log.Warn("closing with failed commits whose outcome is unknown; their changes, if they were applied, are not published",
			"commits", n, "records", records)
		for len(s.unsure) > 0 {
			s.dropUnsure()
		}
	}
}

// applyTxn commits one txn and answers its callers (applier only). The
// re-reads before the commit, and the commit with those after it, have a
// deadline each, CommitTimeout, so its callers are answered within about
// twice that even when the backend does not answer.
func (s *Store) applyTxn(t *txn) {
	s.applyingMark.Store(&commitMark{since: time.Now(), allow: commitAllowance(len(t.order), len(t.buf))})
	// A re-read that failed is tried again before each commit, so the
	// index does not stay behind storage once the backend is back. Not
	// under the commit's deadline: re-reads that take longer than it (a
	// failed commit over many maps, a slow backend) would take all of it
	// each time, and no commit would be sent while the backend stayed slow.
	s.settleByReads(t)
	t.loaded = nil // read once: a failed t kept for settling must not hold it
	rctx, rcancel := context.WithTimeout(context.Background(), s.opts.CommitTimeout)
	s.repairIndex(rctx, true)
	s.settleUnsure(rctx)
	rcancel()
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.CommitTimeout)
	defer cancel()
	err, inherited := t.err, false
	if err == nil && t.dep != nil && t.dep.failed.Load() && !t.standsAlone() {
		err = t.dep.failErr
		inherited = true
	}
	// Merged, and its dep settled: the txns it was merged over are no
	// longer needed, and held, each txn kept the one before it, back to
	// the last pause in writes.
	t.dep, t.overlay = nil, nil
	if err == nil && len(t.order) > 0 {
		err = t.commit(ctx)
		// A batch refused for its content was not applied (abi.Backend's
		// Apply: only a lost connection or a deadline leaves it unknown):
		// nothing to re-read, and a re-read of a map storage refuses
		// failed before every later commit, kept for ever.
		if err != nil && !(refusesContent(err) && ctx.Err() == nil) {
			// The batch may have been applied (a networked backend can
			// lose the connection after sending the commit): re-read its
			// keys so the index matches storage.
			s.mu.Lock()
			for _, st := range t.order {
				s.repair[cacheKey{st.mapName, st.key}] = struct{}{}
			}
			s.mu.Unlock()
			for _, st := range t.order {
				s.cache.remove(cacheKey{st.mapName, st.key})
			}
			// With what is left of ctx: after a timeout the re-read fails
			// at once and the applier's retry timer takes over, rather
			// than holding the callers another timeout.
			s.repairIndex(ctx, false)
			if !s.shared {
				// Storage may hold the batch all the same: then it is
				// a commit, which the feed must report (repairShared
				// does so on shared storage).
				s.keepUnsure(t)
				for len(s.unsure) > maxUnsure || (len(s.unsure) > 1 && s.unsureBytes > maxUnsureBytes) {
					s.unsureDrops.Warn(s.log, "cannot tell whether a failed commit was applied; its changes, if it was, are not published", "records", len(s.unsure[0].order))
					s.dropUnsure()
				}
				s.settleUnsure(ctx)
			}
		}
	}
	if err == nil && len(t.order) == 0 {
		t.settleClean()
	}
	// A batch refused as too large, or for what one of its writes holds (a
	// commit, or a read merging it: t.err), or the failure of the one this
	// txn was merged over, may be no fault of a request: it was gathered
	// with others.
	split := err != nil && (inherited || len(t.reqs) > 1) &&
		(t.err == nil && abi.CodeOf(err) == abi.CodeResourceExhausted || refusesContent(err))
	if err != nil {
		t.failErr = err
		t.failed.Store(true)
	}
	t.settled.Store(true)
	s.flushWatchLater()
	// Before the callers hear of it: one that checks CommitStalled as its
	// write returns must not find that write still waiting.
	s.applyingMark.Store(nil)
	for _, r := range t.reqs {
		r.split = split && r.fn == nil
		r.grouped = err != nil && (inherited || len(t.reqs) > 1)
		r.done <- err
	}
	s.regroup(len(t.reqs))
}

// maxUnsure and maxUnsureBytes bound the failed commits kept for
// settleUnsure (each holds its encoded records) while storage cannot be
// read: a long outage under heavy writes must not fill memory with them.
const (
	maxUnsure      = 16
	maxUnsureBytes = 64 << 20
)

// dropUnsure forgets the oldest failed commit kept for settleUnsure.
func (s *Store) dropUnsure() {
	s.unsureBytes -= cap(s.unsure[0].buf)
	s.unsure[0] = nil
	s.unsure = s.unsure[1:]
	s.unsureN.Store(int32(len(s.unsure)))
}

// settleUnsure finds out, oldest first, whether the failed commits whose
// outcome was unknown were applied after all, and publishes the changes of
// those that were, as their commits. Each key is settled on its own: one a
// later commit overwrote was settled by that commit (whose change the feed
// reported, merged over what storage held), and storage holding exactly
// what the failed commit wrote for a key means it was applied. Compared as
// a whole, a key overwritten since made the commit count as not applied,
// and the changes to its other keys were never published. One that cannot
// be read now is tried again before the next commit, or on the applier's
// retry timer while none comes. It runs on the applier.
func (s *Store) settleUnsure(ctx context.Context) {
	for len(s.unsure) > 0 {
		t := s.unsure[0]
		if err := s.readUnsure(ctx, t); err != nil {
			s.log.Debug("cannot yet tell whether a failed commit was applied", "error", err)
			return
		}
		s.dropUnsure()
		var changes []Change
		for _, ch := range t.changes {
			if t.applied[cacheKey{ch.Map, ch.Key}] {
				changes = append(changes, ch)
			}
		}
		// The batch was atomic: one key found applied means all were. With
		// every key settled by later commits its cut-off stands (the
		// tombstones it removed are gone or written again either way).
		prune := t.prune
		if t.read && !t.wasApplied {
			prune = nil
		}
		if len(changes) > 0 || prune != nil {
			s.log.Warn("a commit reported failed was applied by the backend; publishing its changes", "records", len(t.order))
			s.publish(&Commit{Seq: s.seq.Add(1), Changes: changes, PruneBefore: prune})
		}
	}
}

// keepUnsure keeps a failed commit for settleUnsure, with all its keys
// still to settle.
func (s *Store) keepUnsure(t *txn) {
	t.open = make(map[cacheKey]struct{}, len(t.order))
	t.applied = map[cacheKey]bool{}
	for _, st := range t.order {
		t.open[cacheKey{st.mapName, st.key}] = struct{}{}
	}
	s.unsure = append(s.unsure, t)
	s.unsureN.Store(int32(len(s.unsure)))
	s.unsureBytes += cap(t.buf)
}

// settledBy settles, in the failed commits kept for settleUnsure, the keys
// the durable commit t wrote: their state is t's now, whichever way the
// failed ones went. An LWW change of theirs t's change supersedes; an OR
// one it does not (t's event carries only its own entries and tags), so
// those of a failed commit found applied on the key are published now,
// before t's. It runs on the applier.
func (s *Store) settledBy(t *txn) {
	var rescued []Change
	for _, u := range s.unsure {
		var hit map[cacheKey]bool
		for _, st := range t.order {
			ck := cacheKey{st.mapName, st.key}
			if u.applied[ck] {
				if hit == nil {
					hit = map[cacheKey]bool{}
				}
				hit[ck] = true
			}
			delete(u.open, ck)
			delete(u.applied, ck)
		}
		for _, ch := range u.changes {
			if (ch.Kind == ChangeORAdd || ch.Kind == ChangeORRemove) && hit[cacheKey{ch.Map, ch.Key}] {
				rescued = append(rescued, ch)
			}
		}
	}
	if len(rescued) > 0 {
		s.publish(&Commit{Seq: s.seq.Add(1), Changes: rescued})
	}
}

// settleByReads settles, in the failed commits kept for settleUnsure, the
// keys t's merge read from storage: no commit wrote them between (it
// would have settled them), so what t read is what a re-read would find,
// and it is known before t's own commit overwrites it. Otherwise a key
// read only after a later commit storage applied (failed too, so not
// settling it) held that commit's state, and the failed commit's OR change
// of it was taken for not applied, never published. It runs on the
// applier.
func (s *Store) settleByReads(t *txn) {
	if len(s.unsure) == 0 {
		return
	}
	for ck, ld := range t.loaded {
		for i := len(s.unsure) - 1; i >= 0; i-- {
			u := s.unsure[i]
			st := u.pending[ck]
			if st == nil || !st.dirty {
				continue
			}
			// The newest failed commit writing the key: storage holds its
			// state if it was applied.
			if _, open := u.open[ck]; open {
				delete(u.open, ck)
				u.read = true
				if st.present == ld.present && (!st.present || st.exp == ld.exp && st.rv.Equal(&ld.rv)) {
					u.applied[ck] = true
					u.wasApplied = true
				}
			}
			break
		}
	}
}

// readUnsure reads the keys of t not yet settled, one map at a time, and
// settles them: out of t.open, into t.applied when storage holds t's
// state. What it read stands when a later read fails, so a failed commit
// over more maps than one CommitTimeout reads is settled over several
// passes.
func (s *Store) readUnsure(ctx context.Context, t *txn) error {
	byMap := map[string][]*state{}
	for ck := range t.open {
		if st := t.pending[ck]; st != nil && st.dirty {
			byMap[ck.mapName] = append(byMap[ck.mapName], st)
		}
	}
	for name, sts := range byMap {
		keys := make([]string, len(sts))
		for i, st := range sts {
			keys[i] = st.key
		}
		recs, err := s.getRecords(ctx, name, keys)
		if err != nil {
			return err
		}
		found := make(map[string]*abi.Record, len(recs))
		for i := range recs {
			found[recs[i].Key] = &recs[i]
		}
		for _, st := range sts {
			ck := cacheKey{name, st.key}
			delete(t.open, ck)
			t.read = true
			r := found[st.key]
			if st.present {
				if r == nil || r.ExpirationTime != st.exp || !bytes.Equal(r.Value, st.enc) {
					continue
				}
			} else if r != nil {
				continue
			}
			t.applied[ck] = true
			t.wasApplied = true
		}
	}
	return nil
}

// regroupWait bounds how long the applier waits for the callers it just
// answered to send their next requests.
const regroupWait = 200 * time.Microsecond

// regroup lets the n callers just answered send their next requests before
// the applier takes the next txn. Taking it at once seals it while they are
// still returning, so with many writers each commit carried only the half
// that was not waiting on the previous one (32 ops per commit with 64
// writers, twice the syncs of batches of 64). It returns when as many
// requests have been merged since the handoff, after regroupWait, or when
// the store closes; a lone writer's next request ends it at once.
func (s *Store) regroup(n int) {
	if n <= 1 {
		return
	}
	deadline := time.Now().Add(regroupWait)
	for s.merged.Load() < int64(n) && time.Now().Before(deadline) {
		select {
		case <-s.closing:
			return
		default:
		}
		runtime.Gosched()
	}
}

// state is a key's record state inside a commit.
type state struct {
	mapName, key string
	present      bool
	rv           record.RecordValue
	exp          int64
	dirty        bool
	enc          []byte // encoded rv, set by checkSize (nil: changed since)
	// size is the length of enc, or, after ops of this txn changed the
	// state in place (enc nil), the exact length of its encoding (see
	// grow); 0 when unknown.
	size int
	ord  int // index in txn.order (dirty states)
	req  int // txn.req when written
	// row and raw are what storage held when the state was read from it
	// on shared storage (row true with an undecodable value too).
	row bool
	raw []byte
	// orDel holds the removes the ops of the request that wrote st (an
	// OR state) made in place, not yet applied to its records; nil once
	// seal applied them (see orRemoved).
	orDel *orRemoved
}

// orRemoved holds the removes made in place on an OR state by the ops of
// one request, applied to its records by seal, at once (compact): deleting
// each from the records scanned them all, so n removes in one request on
// a key of R records cost n×R on the committer (10,000 removes on a key of
// 100,000 entries, one OP_BATCH, stopped every write for 20 s). Until
// then the removed records stay in the state's records, where only these
// ops, which know of them, read it.
type orRemoved struct {
	dead  map[string]struct{} // the tags whose records are removed
	live  int                 // the records not removed
	scans int                 // the removes that scanned the records
	at    map[string][]int    // the positions of the other records, by tag, once built
}

// orRemoveScans is how many removes in place of one request find their
// records by scanning the key's (a pass costs a few percent of building
// orRemoved.at) before their positions are indexed, so that a request
// removing a few entries does not index a large key for them.
const orRemoveScans = 16

// orLive is the number of records of an OR state, those removed in place
// not counted.
func (st *state) orLive() int {
	if st.orDel != nil {
		return st.orDel.live
	}
	return len(st.rv.ORMap.Records)
}

// orRemovals returns the removes deferred on st, an OR state the request
// being merged owns, starting them on the first.
func (t *txn) orRemovals(st *state) *orRemoved {
	if st.orDel == nil {
		st.orDel = &orRemoved{dead: map[string]struct{}{}, live: len(st.rv.ORMap.Records)}
		t.unsealed = append(t.unsealed, st) // seal compacts it
	}
	return st.orDel
}

// removedSize is the encoded bytes, and the number, of the records of
// cur, an OR state, whose tags are among added, found as removed tells.
func (t *txn) removedSize(cur *state, added []string, removed func(tag string) bool) (bytes, k int) {
	rs := cur.rv.ORMap.Records
	if d := cur.orDel; d != nil && d.scans >= orRemoveScans {
		if d.at == nil {
			// One pass; the removed records held until seal are not
			// indexed: their tags are tombstones now, never added.
			orTagScans.Add(uint64(len(rs)))
			d.at = make(map[string][]int, d.live)
			for j := range rs {
				if _, ok := d.dead[rs[j].Tag]; !ok {
					d.at[rs[j].Tag] = append(d.at[rs[j].Tag], j)
				}
			}
		}
		for _, tag := range added {
			for _, j := range d.at[tag] {
				bytes += t.entrySize(&rs[j]) // stored: it encodes
				k++
			}
		}
		return bytes, k
	} else if d != nil {
		d.scans++
	}
	orTagScans.Add(uint64(len(rs)))
	for j := range rs {
		if removed(rs[j].Tag) {
			bytes += t.entrySize(&rs[j]) // stored: it encodes
			k++
		}
	}
	return bytes, k
}

// compact applies the removes deferred on st to its records, keeping
// their order, and its expiry, and keeps the key's tag index in step.
func (t *txn) compact(st *state) {
	d := st.orDel
	if d == nil {
		return
	}
	st.orDel = nil
	if len(d.dead) == 0 {
		return
	}
	m := &st.rv.ORMap
	n := len(m.Records)
	orTagScans.Add(uint64(n))
	m.Records = slices.DeleteFunc(m.Records, func(r record.ORMapEntry) bool { _, ok := d.dead[r.Tag]; return ok })
	st.exp = orExpiry(m)
	if x := t.orTags[cacheKey{st.mapName, st.key}]; x != nil && x.st == st && x.nrec == n {
		x.nrec = len(m.Records)
	}
}

// expectOf is what storage holds for a key once st is committed (st
// dirty) or as it was read (st clean).
func expectOf(st *state) abi.Expect {
	if st.dirty {
		return abi.Expect{Map: st.mapName, Key: st.key, Present: st.present, Value: st.enc}
	}
	return abi.Expect{Map: st.mapName, Key: st.key, Present: st.row, Value: st.raw}
}

// txn is the overlay of one group commit: merged states not yet durable.
type txn struct {
	s       *Store
	reqs    []*request
	n       int    // ops and requests merged, bounded by MaxCommitOps
	overlay []*txn // txns in flight when this one started, oldest first
	dep     *txn   // the newest of them: if it fails, this one fails
	settled atomic.Bool
	failed  atomic.Bool
	failErr error // set before failed
	pending map[cacheKey]*state
	order   []*state // dirty states in first-touch order
	changes []Change
	prune   *record.Timestamp
	buf     []byte // encodings of the states (checkSize)
	scratch []byte // encodings only measured (entrySize)
	// req numbers the requests merged; ops change in place only states
	// written by the request being merged, whose changes (from
	// changesFrom) and unencoded states (unsealed) seal then finishes.
	req         int
	changesFrom int
	unsealed    []*state
	err         error // infrastructure failure: the whole group fails
	// open holds, once the txn failed with an unknown outcome, its keys
	// neither read nor settled by a later commit; applied those read
	// and found applied that no later commit settled since; read and
	// wasApplied say whether some key was read, and found applied (see
	// settleUnsure; applier only).
	open             map[cacheKey]struct{}
	applied          map[cacheKey]bool
	read, wasApplied bool
	// loaded holds, on storage that is not shared and while failed commits
	// are kept for settling, the states this txn's merge read from storage
	// (or the cache) as read (see settleByReads).
	loaded map[cacheKey]*state
	// base is, on shared storage with checked commits, what storage held
	// for each key when this txn first saw it: the commit applies only
	// over that.
	base map[cacheKey]abi.Expect
	// readFlight says a merge read the state of a txn in flight.
	readFlight bool
	// orTags indexes the tags of the OR states this txn's ops merge into
	// (see orIndex).
	orTags map[cacheKey]*orTagIndex
	// newBytes is what the keys this txn adds to the index take, and
	// newParts the parts of the index new to it they install (see
	// admitKey).
	newBytes int64
	newParts map[newPart]struct{}
	// freedAt is Store.partsFreed as the txn started (see admitKey).
	freedAt int64
	// indexRefused counts the ops admitKey rejected (see request).
	indexRefused int
}

// orTagIndex holds the tags of one OR-Map state as sets, so that an OR op
// asks whether its tags are tombstoned or live at a cost in proportion to
// its own tags, not to the key's tombstones and records: before, every op
// scanned them, and a remove of many tags rebuilt a set of all the key's
// tombstones, so 10,000 ops on a key of a million tombstones took seconds.
// It belongs to one txn and follows the state of its key there: built
// once when an op first meets that state, moved to the copy an op makes
// of it, and kept in step by the ops that change it in place.
type orTagIndex struct {
	st          *state
	nrec, ntomb int // the lengths of st's records and tombstones it follows
	tombs       map[string]struct{}
	live        map[string]int // the records of each tag
}

// orTagScans counts the tombstones and records of a key that OR ops
// examine (building orTagIndex, finding and deleting removed records), for
// tests that check an op costs its own tags, not the key's.
var orTagScans atomic.Uint64

// orIndex returns the tag index of st, an OR-Map state (or an absent one)
// an op of this txn is about to merge into, building it when st is not
// the state it follows. Its lengths also catch a change made to st behind
// its back (none is known): it is then rebuilt.
func (t *txn) orIndex(st *state) *orTagIndex {
	ck := cacheKey{st.mapName, st.key}
	m := &st.rv.ORMap
	if x := t.orTags[ck]; x != nil && x.st == st && x.nrec == len(m.Records) && x.ntomb == len(m.Tombstones) {
		return x
	}
	t.compact(st) // none is known: the index counts the records that stay
	orTagScans.Add(uint64(len(m.Records) + len(m.Tombstones)))
	x := &orTagIndex{st: st, nrec: len(m.Records), ntomb: len(m.Tombstones),
		tombs: make(map[string]struct{}, len(m.Tombstones)), live: make(map[string]int, len(m.Records))}
	for _, tag := range m.Tombstones {
		x.tombs[tag] = struct{}{}
	}
	for _, r := range m.Records {
		x.live[r.Tag]++
	}
	if t.orTags == nil {
		t.orTags = map[cacheKey]*orTagIndex{}
	}
	t.orTags[ck] = x
	return x
}

// follow moves the index to st, the key's state once an op changed it (in
// place or in a copy), and takes in the op's change.
func (x *orTagIndex) follow(st *state, added *record.ORMapEntry, removed []string) {
	x.st = st
	if added != nil {
		x.live[added.Tag]++
	}
	for _, tag := range removed {
		x.tombs[tag] = struct{}{}
		delete(x.live, tag)
	}
	x.nrec, x.ntomb = len(st.rv.ORMap.Records), len(st.rv.ORMap.Tombstones)
}

// noteBase records the state a key had when this txn first saw it.
func (t *txn) noteBase(st *state) {
	if t.base == nil {
		return
	}
	ck := cacheKey{st.mapName, st.key}
	if _, ok := t.base[ck]; !ok {
		t.base[ck] = expectOf(st)
	}
}

func reject(i int, format string, args ...any) Result {
	return Result{Err: &RejectError{Op: i, Reason: fmt.Sprintf(format, args...)}}
}

// current returns the state of a key as this commit sees it: its own
// pending states, then those of the txns still in flight, then the index,
// then storage. needValue false allows answering LWW keys from the index.
func (t *txn) current(mapName, key string, needValue bool) (*state, error) {
	ck := cacheKey{mapName, key}
	if st, ok := t.pending[ck]; ok {
		return st, nil
	}
	if st, ok := t.inFlight(ck); ok {
		t.readFlight = true
		t.noteBase(st)
		return st, nil
	}
	if st, ok := t.peekIndex(mapName, key, needValue); ok {
		return st, nil
	}
	if t.err != nil {
		// The txn fails anyway: no read (of up to CommitTimeout each over
		// a dead link) for the rest of its ops.
		return nil, t.err
	}
	ctx, cancel := t.s.readContext()
	defer cancel()
	if t.s.shared {
		rows, err := t.s.loadStored(ctx, mapName, []string{key})
		if err != nil {
			return nil, err
		}
		return t.admitStored(rows, mapName, key), nil
	}
	st := &state{mapName: mapName, key: key}
	es, err := t.s.loadRaw(ctx, mapName, []string{key})
	if err != nil {
		return nil, err
	}
	if len(es) == 1 {
		st.present, st.rv, st.exp = true, es[0].Record, es[0].ExpirationTime
		st.rv.Normalize()
	}
	t.pending[ck] = st
	if t.s.unsureN.Load() > 0 {
		if t.loaded == nil {
			t.loaded = map[cacheKey]*state{}
		}
		t.loaded[ck] = st
	}
	return st, nil
}

// readContext bounds a read a merge makes (on the committer) by the
// commit timeout: one that never returned would stop every merge.
func (s *Store) readContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.opts.CommitTimeout)
}

// prefetch reads, on shared storage, the stored states of the keys that
// neither this txn nor one in flight holds, with one backend read per map
// instead of one per key. Other processes write the same records, so
// merges there read storage, never the index (see peekIndex); what they
// wrote that the index lacks is announced with this txn's changes.
func (t *txn) prefetch(keys []cacheKey) {
	if !t.s.shared || t.err != nil {
		return
	}
	byMap := map[string][]string{}
	seen := map[cacheKey]bool{}
	for _, ck := range keys {
		if _, ok := t.pending[ck]; ok || seen[ck] {
			continue
		}
		if _, ok := t.inFlight(ck); ok {
			continue
		}
		seen[ck] = true
		byMap[ck.mapName] = append(byMap[ck.mapName], ck.key)
	}
	ctx, cancel := t.s.readContext()
	defer cancel()
	for name, ks := range byMap {
		rows, err := t.s.loadStored(ctx, name, ks)
		if err != nil {
			t.err = err
			return
		}
		for _, k := range ks {
			t.admitStored(rows, name, k)
		}
	}
}

// installObserved installs in the index, on shared storage, the stored
// states this txn read and did not change: other processes may have
// written them since this index last saw them. The caller holds s.mu.
func (t *txn) installObserved() {
	if !t.s.shared {
		return
	}
	s := t.s
	for ck, st := range t.pending {
		if st.dirty {
			continue
		}
		if _, unknown := s.repair[ck]; unknown {
			continue
		}
		if st.present {
			s.index(ck.mapName, ck.key, &st.rv, st.exp)
		} else {
			s.index(ck.mapName, ck.key, nil, 0)
		}
	}
}

// settleClean finishes a txn that wrote nothing: it installs what it read
// and publishes its changes (those other processes made, see refresh).
func (t *txn) settleClean() {
	if t.s.shared {
		t.s.mu.Lock()
		t.installObserved()
		t.s.mu.Unlock()
	}
	if len(t.changes) > 0 || t.prune != nil {
		t.s.publish(&Commit{Seq: t.s.seq.Add(1), Changes: t.changes, PruneBefore: t.prune})
	}
}

// inFlight returns a key's state in the newest txn still in flight that
// holds it (the older ones settled: their states are in the index).
func (t *txn) inFlight(ck cacheKey) (*state, bool) {
	for i := len(t.overlay) - 1; i >= 0; i-- {
		o := t.overlay[i]
		if o.settled.Load() {
			break
		}
		if st, ok := o.pending[ck]; ok {
			return st, true
		}
	}
	return nil, false
}

// peekIndex answers from the index alone when it can (needValue false).
// On shared storage it never can: other processes write the same records.
func (t *txn) peekIndex(mapName, key string, needValue bool) (*state, bool) {
	if needValue || t.s.shared {
		return nil, false
	}
	t.s.mu.RLock()
	defer t.s.mu.RUnlock()
	if _, unknown := t.s.repair[cacheKey{mapName, key}]; unknown {
		return nil, false // the index may be behind storage: load it
	}
	st := &state{mapName: mapName, key: key}
	ms := t.s.maps[mapName]
	if ms == nil {
		return st, true
	}
	if m, ok := ms.lww.get(key); ok {
		st.present = true
		st.rv = record.NewLWW(record.Value{}, t.s.lwwTimestamp(m))
		st.exp = ms.exp[key]
		if !m.tombstone() {
			// The value is unknown here; mark it non-null so callers can
			// tell a live record from a tombstone without loading it.
			st.rv.LWW.Value = record.BoolValue(true)
		}
		return st, true
	}
	if _, ok := ms.or.get(key); ok {
		return nil, false // an OR key: the caller loads it
	}
	// The index knows every LWW key and every OR key with entries or
	// tombstones; a key in neither holds nothing an LWW write must respect
	// (at most TopGun's legacy OR tombstones or an unreadable record,
	// which the write replaces).
	return st, true
}

// write records a new state for a key. A key written again in the same
// txn keeps its place in order: the batch writes each key once, with its
// last state (before, every op added a mutation of the whole record, so n
// OR ops on one key stored n copies of it in one batch).
func (t *txn) write(st *state) {
	ck := cacheKey{st.mapName, st.key}
	p, ok := t.pending[ck]
	if !ok || p != st {
		t.pending[ck] = st
	}
	if st.dirty {
		return
	}
	st.dirty, st.req = true, t.req
	if ok && p != st && p.dirty {
		st.ord = p.ord
		t.order[p.ord] = st
		return
	}
	st.ord = len(t.order)
	t.order = append(t.order, st)
}

// owns reports whether cur is the state the request being merged wrote
// for its key, which its later ops may change in place: nothing else sees
// it before seal.
func (t *txn) owns(cur *state) bool {
	return cur.dirty && cur.req == t.req && cur.size > 0 && t.pending[cacheKey{cur.mapName, cur.key}] == cur
}

// grow changes the size of an owned state, about to be changed in place,
// by delta encoded bytes (exactly: its size stays exact), which tooLarge
// has found to fit, and drops the encoding, which seal redoes once.
// Exact, a size lets tooLarge refuse an op without copying or encoding
// the record: with a bound, every op near the limit took the exact path,
// copying and encoding the whole record and keeping the encoding (an
// OP_BATCH of 166 adds and removes of 12 KB on a key of 8 MB took 7 GB
// and 14 s).
func (t *txn) grow(st *state, delta int) {
	if st.enc != nil {
		t.unsealed = append(t.unsealed, st)
	}
	st.size, st.enc = st.size+delta, nil
}

// tooLarge refuses a change of delta encoded bytes to a state whose size
// is known (a size is exact once set), before the change copies or encodes
// the record.
func tooLarge(cur *state, delta int) error {
	if n := cur.size + delta; cur.size > 0 && n > abi.MaxValueBytes {
		return fmt.Errorf("record of key %q would be %d bytes, the limit is %d", cur.key, n, abi.MaxValueBytes)
	}
	return nil
}

// learnSize keeps the size of cur, a state this txn read and did not
// change, measured by st, its copy changed by delta bytes, whose
// encoding was refused as too large: later ops on the key are refused by
// tooLarge without copying and encoding it again (every op of an OP_BATCH
// on a full key did, 2 ms each for a key of 8 MB).
func (t *txn) learnSize(cur, st *state, delta int) {
	if st.size > 0 && cur.size == 0 && !cur.dirty && t.pending[cacheKey{cur.mapName, cur.key}] == cur {
		cur.size = st.size - delta
	}
}

// entrySize is the encoded bytes an OR entry takes in a record's records
// array, or -1 when it cannot be encoded (the exact path reports it).
func (t *txn) entrySize(e *record.ORMapEntry) int {
	rv := record.NewORMap([]record.ORMapEntry{*e}, nil)
	b, err := record.Encode(t.scratch[:0], &rv)
	if err != nil {
		return -1
	}
	t.scratch = b[:0]
	return len(b) - emptyORSize
}

// emptyORSize is the encoded size of an OR-Map record with no records and
// no tombstones (its records array header included).
var emptyORSize = func() int {
	rv := record.NewORMap(nil, nil)
	b, err := record.Encode(nil, &rv)
	if err != nil {
		panic(err)
	}
	return len(b)
}()

// arrayHeaderSize and stringSize are the encoded sizes of an array header
// and of a string, in msgpack's most compact forms, as record.Encode writes
// them.
func arrayHeaderSize(n int) int {
	switch {
	case n < 16:
		return 1
	case n <= math.MaxUint16:
		return 3
	}
	return 5
}

func stringSize(s string) int {
	switch n := len(s); {
	case n < 32:
		return 1 + n
	case n < 256:
		return 2 + n
	case n <= math.MaxUint16:
		return 3 + n
	default:
		return 5 + n
	}
}

// tombstonesDelta is the exact change of the encoded size of an OR-Map
// record when the tags are appended to its tombstones (the field appears
// with the first).
func tombstonesDelta(m *record.ORMap, tags []string) int {
	d := 0
	for _, tag := range tags {
		d += stringSize(tag)
	}
	m0, m1 := len(m.Tombstones), len(m.Tombstones)+len(tags)
	if m0 == 0 {
		return d + stringSize("tombstones") + arrayHeaderSize(m1)
	}
	return d + arrayHeaderSize(m1) - arrayHeaderSize(m0)
}

// seal finishes merging a request: it applies the removes its ops
// deferred, encodes the states they changed in place, and gives each of
// its OR changes the final state of the key (later ops changed it in place
// after the change was noted).
func (t *txn) seal() {
	// OR states changed in place that an LWW write of the request then
	// replaced: the key's OR changes get them, as they got the records
	// left by the last remove. Whether removes are still deferred does not
	// tell: a refused add's copy applied them earlier, to the records
	// those changes share.
	var replaced map[cacheKey]*state
	for _, st := range t.unsealed {
		t.compact(st)
		ck := cacheKey{st.mapName, st.key}
		if t.pending[ck] != st {
			if st.present && st.rv.Kind == record.KindORMap {
				if replaced == nil {
					replaced = map[cacheKey]*state{}
				}
				replaced[ck] = st
			}
			continue
		}
		if st.present && st.enc == nil {
			_ = t.checkSize(st) // its exact size fits (tooLarge)
		}
	}
	t.unsealed = t.unsealed[:0]
	for i := t.changesFrom; i < len(t.changes); i++ {
		ch := &t.changes[i]
		if ch.Kind != ChangeORAdd && ch.Kind != ChangeORRemove {
			continue
		}
		ck := cacheKey{ch.Map, ch.Key}
		if st, ok := t.pending[ck]; ok && st.dirty && st.present && st.rv.Kind == ch.Record.Kind {
			ch.Record, ch.ExpirationTime = st.rv, st.exp
		} else if st := replaced[ck]; st != nil {
			ch.Record, ch.ExpirationTime = st.rv, st.exp
		}
	}
}

func (t *txn) apply(i int, op *Op, origin uint64) Result {
	if t.err != nil {
		return Result{}
	}
	if err := abi.ValidateMapName(op.Map); err != nil {
		return reject(i, "%v", err)
	}
	if err := abi.ValidateKey(op.Key); err != nil {
		return reject(i, "%v", err)
	}
	ts := op.Timestamp
	if ts.IsZero() {
		ts = t.s.clock.Now()
	} else if err := t.s.clock.Update(ts); err != nil {
		return reject(i, "%v", err)
	}
	switch op.Kind {
	case OpPut, OpRemove:
		return t.applyLWW(i, op, ts, origin)
	case OpORAdd:
		return t.applyORAdd(i, op, ts, origin)
	case OpORRemove:
		return t.applyORRemove(i, op, origin)
	}
	return reject(i, "unknown op kind %d", op.Kind)
}

// stampAfter returns a server timestamp greater than ts: the clock's,
// after merging ts into it, or, when the clock refuses ts (further ahead
// of the wall clock than the drift bound), the next counter after ts.
func (s *Store) stampAfter(ts record.Timestamp) record.Timestamp {
	_ = s.clock.Update(ts)
	if n := s.clock.Now(); n.Compare(ts) > 0 {
		return n
	}
	n := justAfter(ts)
	n.NodeID = s.clock.NodeID()
	return n
}

func (t *txn) applyLWW(i int, op *Op, ts record.Timestamp, origin uint64) Result {
	cur, err := t.current(op.Map, op.Key, false)
	if err != nil {
		t.err = err
		return Result{}
	}
	if cur.present && cur.rv.Kind != record.KindLWW {
		if cur.orLive() > 0 {
			return reject(i, "key %q of map %q holds an OR-Map record, not an LWW one", op.Key, op.Map)
		}
		// OR tombstones only: nothing an LWW write must respect.
	} else if cur.present {
		if op.Timestamp.IsZero() && ts.Compare(cur.rv.LWW.Timestamp) <= 0 {
			// Stamped by the server, whose clock may be behind the record
			// (a client's stamp ahead of it, another server's write, the
			// wall clock stepped back): the server's own write is the
			// latest, as TopGun's unconditional overwrite.
			ts = t.s.stampAfter(cur.rv.LWW.Timestamp)
		}
		if ts.Compare(cur.rv.LWW.Timestamp) <= 0 {
			return Result{} // older or the same write: LWW keeps the current one
		}
	}
	if res, ok := t.admitKey(i, cur, false, ts.NodeID, op.TTLMs > 0 && op.Kind == OpPut && !op.Value.IsNull(), 0); !ok {
		return res
	}
	v := op.Value
	kind := ChangePut
	if op.Kind == OpRemove {
		v = record.Value{}
	}
	if v.IsNull() {
		kind = ChangeRemove
	}
	st := &state{mapName: op.Map, key: op.Key, present: true, rv: record.NewLWW(v, ts)}
	ttl := op.TTLMs
	if ttl > 0 && kind == ChangePut {
		st.exp = expiresAt(ts.Millis, ttl)
	} else {
		ttl = 0
	}
	if err := t.checkSize(st); err != nil {
		return reject(i, "%v", err)
	}
	t.write(st)
	t.changes = append(t.changes, Change{Map: op.Map, Key: op.Key, Kind: kind, Record: st.rv, ExpirationTime: st.exp, TTLMs: ttl, Origin: origin})
	return Result{Changed: true}
}

// orCurrent returns the current state of an OR-Map key (read-only).
func (t *txn) orCurrent(i int, op *Op) (*state, Result, bool) {
	cur, err := t.current(op.Map, op.Key, true)
	if err != nil {
		t.err = err
		return nil, Result{}, false
	}
	if cur.present && cur.rv.Kind == record.KindLWW {
		return nil, reject(i, "key %q of map %q holds an LWW record, not an OR-Map one", op.Key, op.Map), false
	}
	return cur, Result{}, true
}

// orCopy returns a new state holding a copy of an OR-Map key's state, so
// a rejected op (e.g. too large) leaves the current one alone.
func (t *txn) orCopy(cur *state) *state {
	t.compact(cur) // the copy holds the records that stay
	return &state{mapName: cur.mapName, key: cur.key, present: true, exp: cur.exp, rv: record.NewORMap(
		slices.Clone(cur.rv.ORMap.Records), slices.Clone(cur.rv.ORMap.Tombstones))}
}

func (t *txn) applyORAdd(i int, op *Op, ts record.Timestamp, origin uint64) Result {
	tag := op.Tag
	if tag == "" {
		if !op.Timestamp.IsZero() {
			return reject(i, "OR add of key %q has no tag", op.Key)
		}
		tag = ts.String()
	}
	cur, res, ok := t.orCurrent(i, op)
	if !ok {
		return res
	}
	x := t.orIndex(cur)
	if _, gone := x.tombs[tag]; gone {
		return Result{} // removed before: remove wins
	}
	if x.live[tag] > 0 {
		return Result{} // a re-sent add
	}
	if res, ok := t.admitKey(i, cur, true, "", op.TTLMs > 0, 1); !ok {
		return res
	}
	e := record.ORMapEntry{Value: op.Value, Tag: tag, Timestamp: ts, TTLMs: op.TTLMs}
	es := t.entrySize(&e)
	n := cur.orLive()
	delta := es + arrayHeaderSize(n+1) - arrayHeaderSize(n)
	if es >= 0 {
		if err := tooLarge(cur, delta); err != nil {
			return reject(i, "%v", err)
		}
	}
	var st *state
	if es >= 0 && t.owns(cur) {
		// Written by an earlier op of this request: changed in place, as
		// copying and encoding it for every op cost n² for n ops on a key.
		t.grow(cur, delta)
		st = cur
		st.rv.ORMap.Records = append(st.rv.ORMap.Records, e)
		if d := st.orDel; d != nil {
			d.live++
			if d.at != nil {
				d.at[tag] = append(d.at[tag], len(st.rv.ORMap.Records)-1)
			}
		}
		if e.TTLMs > 0 {
			if x := expiresAt(e.Timestamp.Millis, e.TTLMs); st.exp == 0 || x < st.exp {
				st.exp = x
			}
		}
	} else {
		st = t.orCopy(cur)
		m := &st.rv.ORMap
		m.Records = append(m.Records, e)
		st.exp = orExpiry(m)
		if err := t.checkSize(st); err != nil {
			if es >= 0 {
				t.learnSize(cur, st, delta)
			}
			return reject(i, "%v", err)
		}
		t.write(st)
	}
	x.follow(st, &e, nil)
	t.changes = append(t.changes, Change{Map: op.Map, Key: op.Key, Kind: ChangeORAdd, Record: st.rv, ExpirationTime: st.exp, Entry: e, Tag: tag, Origin: origin})
	return Result{Changed: true}
}

func (t *txn) applyORRemove(i int, op *Op, origin uint64) Result {
	tags := op.Tags
	if len(tags) == 0 {
		tags = []string{op.Tag}
	}
	for _, tag := range tags {
		if tag == "" {
			return reject(i, "OR remove of key %q has no tag", op.Key)
		}
		// Checked here: a remove changing the record in place is not
		// encoded before the commit, which would fail whole.
		if !utf8.ValidString(tag) {
			return reject(i, "OR remove of key %q has a tag that is not valid UTF-8", op.Key)
		}
	}
	cur, res, ok := t.orCurrent(i, op)
	if !ok {
		return res
	}
	x := t.orIndex(cur)
	var added []string
	if len(tags) == 1 {
		if _, gone := x.tombs[tags[0]]; !gone {
			added = tags
		}
	} else {
		seen := make(map[string]struct{}, len(tags)) // the op's own repeats
		for _, tag := range tags {
			if _, gone := x.tombs[tag]; gone {
				continue
			}
			if _, ok := seen[tag]; !ok {
				seen[tag] = struct{}{}
				added = append(added, tag)
			}
		}
	}
	if len(added) == 0 {
		return Result{} // a re-sent remove
	}
	live := 0
	for _, tag := range added {
		if x.live[tag] > 0 {
			live++
		}
	}
	var removed func(tag string) bool // the tags of the records removed
	switch {
	case live == 0: // no record holds the tags: nothing to look for
	case len(added) == 1:
		removed = func(tag string) bool { return tag == added[0] }
	default:
		gone := make(map[string]struct{}, live)
		for _, tag := range added {
			if x.live[tag] > 0 {
				gone[tag] = struct{}{}
			}
		}
		removed = func(tag string) bool { _, ok := gone[tag]; return ok }
	}
	// The exact change of the record's size (see grow).
	delta := tombstonesDelta(&cur.rv.ORMap, added)
	inPlace := t.owns(cur) // as in applyORAdd
	// k counts the records removed.
	k := 0
	if removed != nil {
		if inPlace {
			t.orRemovals(cur) // deferred to seal (see orRemoved)
		}
		var bytes int
		bytes, k = t.removedSize(cur, added, removed)
		n := cur.orLive()
		delta += arrayHeaderSize(n-k) - arrayHeaderSize(n) - bytes
	}
	if err := tooLarge(cur, delta); err != nil {
		return reject(i, "%v", err)
	}
	if res, ok := t.admitKey(i, cur, true, "", false, len(added)-k); !ok {
		return res
	}
	st := cur
	if inPlace {
		t.grow(cur, delta)
		if removed != nil {
			d := cur.orDel
			for _, tag := range added {
				if c := x.live[tag]; c > 0 {
					d.dead[tag] = struct{}{}
					d.live -= c
					delete(d.at, tag)
				}
			}
		}
		st.rv.ORMap.Tombstones = append(st.rv.ORMap.Tombstones, added...)
	} else {
		st = t.orCopy(cur)
		m := &st.rv.ORMap
		if removed != nil {
			m.Records = slices.DeleteFunc(m.Records, func(r record.ORMapEntry) bool { return removed(r.Tag) })
		}
		m.Tombstones = append(m.Tombstones, added...)
		st.exp = orExpiry(m)
		if err := t.checkSize(st); err != nil {
			t.learnSize(cur, st, delta)
			return reject(i, "%v", err)
		}
		t.write(st)
	}
	x.follow(st, nil, added)
	ch := Change{Map: op.Map, Key: op.Key, Kind: ChangeORRemove, Record: st.rv, ExpirationTime: st.exp, Origin: origin}
	if len(added) == 1 {
		ch.Tag = added[0]
	} else {
		ch.Tags = added
	}
	t.changes = append(t.changes, ch)
	return Result{Changed: true}
}

// orExpiry is the row's expiration: the earliest entry expiry, 0 for none.
// expiresAt is when a record stamped at millis with a time to live of ttl
// ms expires (Unix ms). It saturates at 2^62: ttlMs is any u64 on the
// wire, and a sum that wrapped would expire the record at once.
func expiresAt(millis, ttl uint64) int64 {
	const never = 1 << 62
	if ttl >= never || millis >= never-ttl {
		return never
	}
	return int64(millis + ttl)
}

func orExpiry(m *record.ORMap) int64 {
	var exp int64
	for i := range m.Records {
		r := &m.Records[i]
		if r.TTLMs == 0 {
			continue
		}
		e := expiresAt(r.Timestamp.Millis, r.TTLMs)
		if exp == 0 || e < exp {
			exp = e
		}
	}
	return exp
}

// checkSize rejects a state whose encoding would exceed the backend's
// value limit, before it can fail a whole group commit.
// The encoding is kept for the commit.
func (t *txn) checkSize(st *state) error {
	start := len(t.buf)
	b, err := record.Encode(t.buf, &st.rv)
	if err != nil {
		return err
	}
	if n := len(b) - start; n > abi.MaxValueBytes {
		t.buf = b[:start]
		st.size = n // for learnSize; st is not written
		return fmt.Errorf("record of key %q would be %d bytes, the limit is %d", st.key, n, abi.MaxValueBytes)
	}
	t.buf = b
	st.enc = b[start:len(b):len(b)]
	st.size = len(st.enc)
	return nil
}

// commit writes the dirty states as one backend batch, under ctx (see
// applyTxn), and, once it is durable, installs them in the index and
// cache and publishes the changes.
func (t *txn) commit(ctx context.Context) error {
	s := t.s
	b := &abi.Batch{Now: s.stamp(), Mutations: make([]abi.Mutation, 0, len(t.order))}
	defer s.applied()
	for _, st := range t.order {
		if !st.present {
			b.Delete(st.mapName, st.key, false)
			continue
		}
		if st.enc == nil {
			if err := t.checkSize(st); err != nil {
				return fmt.Errorf("store: encode %q/%q: %w", st.mapName, st.key, err)
			}
		}
		b.Put(st.mapName, st.key, false, st.enc, st.exp)
	}
	// Until the records are in the cache (or dropped from it, below and in
	// applyTxn), readers must not fill it with what they read of them.
	keys := make([]cacheKey, len(t.order))
	for i, st := range t.order {
		keys[i] = cacheKey{st.mapName, st.key}
	}
	s.cache.begin(keys)
	defer s.cache.end(keys)
	start := time.Now()
	var err error
	if t.base != nil {
		expect := make([]abi.Expect, 0, len(t.order))
		seen := make(map[cacheKey]bool, len(t.order))
		for _, st := range t.order {
			ck := cacheKey{st.mapName, st.key}
			if e, ok := t.base[ck]; ok && !seen[ck] {
				seen[ck] = true
				expect = append(expect, e)
			}
		}
		err = s.checked.ApplyChecked(ctx, b, expect)
	} else {
		err = s.be.Apply(ctx, b)
	}
	if s.opts.OnCommit != nil {
		s.opts.OnCommit(len(b.Mutations), time.Since(start), err)
	}
	if err != nil {
		for _, k := range keys {
			s.cache.remove(k) // storage may hold the batch or not
		}
	}
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("store: commit of %d records did not finish within the commit timeout (%s); the backend may have applied it: %w",
			len(b.Mutations), s.opts.CommitTimeout, err)
	}
	if err != nil {
		return fmt.Errorf("store: commit of %d records: %w", len(b.Mutations), err)
	}
	for _, st := range t.order {
		if st.present { // a commit of deletes only leaves no commit time stored
			s.committed(b.Now)
			break
		}
	}
	s.mu.Lock()
	for _, st := range t.order {
		if st.present {
			s.index(st.mapName, st.key, &st.rv, st.exp)
		} else {
			s.index(st.mapName, st.key, nil, 0)
		}
		// Merged from storage (see peekIndex), so now known again.
		delete(s.repair, cacheKey{st.mapName, st.key})
	}
	t.installObserved()
	s.mu.Unlock()
	for _, st := range t.order {
		s.cache.put(cacheKey{st.mapName, st.key}, &entryValue{rv: st.rv, exp: st.exp, present: st.present})
	}
	s.settledBy(t)
	s.publish(&Commit{Seq: s.seq.Add(1), Changes: t.changes, PruneBefore: t.prune})
	return nil
}

// repairIndex re-reads keys whose last commit failed and indexes what
// storage holds. Keys it cannot read stay queued: the applier tries again
// before each commit (retry, logged quietly: the commits fail loudly
// enough while the backend is down). It runs on the applier.
func (s *Store) repairIndex(ctx context.Context, retry bool) {
	// Only the applier writes s.repair, so it may read its length without
	// the lock: a commit with nothing to repair takes none.
	if len(s.repair) == 0 {
		return
	}
	s.mu.RLock()
	byMap := map[string][]string{}
	for k := range s.repair {
		byMap[k.mapName] = append(byMap[k.mapName], k.key)
	}
	s.mu.RUnlock()
	// The maps that cannot be read are warned of in one line, at most one
	// per sparselog.Every: every failed commit re-reads all the maps still
	// waiting, so while storage is down a line per map and commit would
	// grow with the square of the maps clients write to.
	var failedMaps, failedKeys int
	var firstErr error
	failed := func(name string, keys []string, err error) {
		s.log.Debug("still cannot re-read records after a failed commit", "map", name, "keys", len(keys), "error", err)
		if failedMaps++; firstErr == nil {
			firstErr = err
		}
		failedKeys += len(keys)
	}
	defer func() {
		if firstErr != nil && !retry {
			s.rereads.Warn(s.log, "cannot re-read records after a failed commit; until they are, writes to them read storage",
				"maps", failedMaps, "keys", failedKeys, "error", firstErr)
		}
	}()
	for name, keys := range byMap {
		if s.shared {
			if err := s.repairShared(ctx, name, keys); err != nil {
				failed(name, keys, err)
			}
			continue
		}
		es, err := s.loadRaw(ctx, name, keys)
		if err != nil {
			failed(name, keys, err)
			continue
		}
		found := make(map[string]*Entry, len(es))
		for i := range es {
			found[es[i].Key] = &es[i]
		}
		s.mu.Lock()
		for _, k := range keys {
			if e := found[k]; e != nil {
				s.index(name, k, &e.Record, e.ExpirationTime)
			} else {
				s.index(name, k, nil, 0)
			}
			delete(s.repair, cacheKey{name, k})
		}
		s.mu.Unlock()
	}
}

// flushWatchLater queues the re-reads repairShared left for after the
// commit being applied (applier only).
func (s *Store) flushWatchLater() {
	for _, c := range s.watchLater {
		s.watchq.add(c)
	}
	s.watchLater = nil
}

// repairShared is repairIndex on shared storage: what storage holds now
// may be another process's commit (the one a checked commit conflicted
// with), which this store's clients hear of only here, as the refresh of
// its notification found the key in flight or finds the index repaired.
// So what differs from the index is published, as refresh does. It runs
// on the applier.
//
// When other processes' commits are heard, the keys are re-read as theirs
// are, through the committer (refresh): a merge that read them since the
// failed commit announced what the index lacked with its own commit, and
// publishing it here as well, outside the committer, announced it twice.
func (s *Store) repairShared(ctx context.Context, name string, keys []string) error {
	if s.watchq != nil {
		s.mu.Lock()
		for _, k := range keys {
			delete(s.repair, cacheKey{name, k})
		}
		s.mu.Unlock()
		// Queued once the failed commit is settled (flushWatchLater): a
		// re-read queued now was merged behind it and failed with it,
		// and with the re-read, writes merged beside it.
		s.watchLater = append(s.watchLater, abi.Changed{Map: name, Keys: keys})
		return nil
	}
	rows, err := s.loadStored(ctx, name, keys)
	if err != nil {
		return err
	}
	states := make([]*state, len(keys))
	var changes []Change
	for i, k := range keys {
		states[i] = rows.state(name, k)
		changes = s.changesSince(changes, states[i])
	}
	s.mu.Lock()
	for _, st := range states {
		if st.present {
			s.index(name, st.key, &st.rv, st.exp)
		} else {
			s.index(name, st.key, nil, 0)
		}
		delete(s.repair, cacheKey{name, st.key})
	}
	s.mu.Unlock()
	if len(changes) > 0 {
		s.feed.publish(&Commit{Seq: s.seq.Add(1), Changes: changes})
	}
	return nil
}
