package protocol

import (
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"sort"
	"strconv"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/server/store"
	"github.com/topgun-go/topgun/server/wire"
)

// The write path of one connection.
//
// The reader hands every CLIENT_OP, OP_BATCH and ORMAP_PUSH_DIFF to the
// connection's single write worker, in arrival order. The worker takes all
// the jobs waiting (up to maxGroupOps operations), drops operations this
// connection already settled, applies the rest with ONE store.Apply (which
// returns once they are durable and may share a group commit with other
// connections), then answers each job in order: OP_REJECTED for each op the
// store refused, then OP_ACK. One Apply in flight per connection keeps the
// acknowledgements in order (TopGun's client marks every op up to lastId
// as synced) and the ops applied in the order the client sent them.
//
// TopGun's client re-sends every unacknowledged op with each new write, so
// 100 quick writes arrive as 100 OP_BATCHes with 5,050 ops. A re-sent op is
// recognised by a fingerprint of (id, map, key, kind, client timestamp,
// tag): one already applied (or refused) on this connection, or carried by
// an earlier job of the same group, is skipped before it reaches the store
// and does not count against MaxBatchOps. Skipping is exactly what the
// store would do with it (an LWW write with an equal timestamp, an OR add
// of a present tag, an OR remove of a tombstoned tag are no-ops), so it
// changes nothing but the cost. Ops the server stamps (no client
// timestamp) are never skipped.

// maxGroupOps bounds the operations the worker gathers into one Apply.
const maxGroupOps = 4096

// settledCap bounds the fingerprints a connection remembers (two
// generations of half this size; 8 bytes each).
const settledCap = 1 << 15

// writeJob is one write message waiting for the worker.
type writeJob struct {
	typ  string          // wire type, for errors
	ops  []wire.ClientOp // CLIENT_OP, OP_BATCH
	push *wire.ORMapPushDiff
	ack  string // lastId of the OP_ACK
	// bytes is the decoded size of the message the job came in, which
	// bounds what a connection may queue.
	bytes int
}

func (j *writeJob) size() int {
	if j.push != nil {
		n := 0
		for i := range j.push.Entries {
			n += len(j.push.Entries[i].Records) + min(len(j.push.Entries[i].Tombstones), 1)
		}
		return n
	}
	return len(j.ops)
}

// settledSet remembers fingerprints of ops a connection already settled.
type settledSet struct {
	seed      maphash.Seed
	cur, prev map[uint64]struct{}
}

func newSettledSet() *settledSet {
	return &settledSet{seed: maphash.MakeSeed(), cur: map[uint64]struct{}{}}
}

func (s *settledSet) has(k uint64) bool {
	if _, ok := s.cur[k]; ok {
		return true
	}
	_, ok := s.prev[k]
	return ok
}

func (s *settledSet) add(k uint64) {
	if len(s.cur) >= settledCap/2 {
		s.prev, s.cur = s.cur, make(map[uint64]struct{}, settledCap/2)
	}
	s.cur[k] = struct{}{}
}

// fingerprint identifies a re-sent op. ok is false for ops that must not be
// skipped: without an id, stamped by the server, or removing several tags
// (a push-diff entry's tombstones, which the store checks in one pass).
func (s *settledSet) fingerprint(id string, op *store.Op) (uint64, bool) {
	if id == "" || (op.Timestamp.IsZero() && op.Kind != store.OpORRemove) || len(op.Tags) > 0 {
		return 0, false
	}
	var h maphash.Hash
	h.SetSeed(s.seed)
	for _, str := range [...]string{id, op.Map, op.Key, op.Timestamp.NodeID, op.Tag} {
		h.WriteString(strconv.Itoa(len(str)))
		h.WriteByte(':')
		h.WriteString(str)
	}
	var b [13]byte
	b[0] = byte(op.Kind)
	for i := 0; i < 8; i++ {
		b[1+i] = byte(op.Timestamp.Millis >> (8 * i))
	}
	for i := 0; i < 4; i++ {
		b[9+i] = byte(op.Timestamp.Counter >> (8 * i))
	}
	h.Write(b[:])
	return h.Sum64(), true
}

// opRef ties a store op back to the job that asked for it.
type opRef struct {
	idx  int // position in the job's ops, for ordering OP_REJECTED
	id   string
	fp   uint64
	fpOK bool
	at   int // index in the Apply call
}

type rejection struct {
	idx int
	msg wire.OpRejected
}

// jobState is the outcome of one job in a group.
type jobState struct {
	job      *writeJob
	refs     []opRef
	rejected []rejection
	err      *wire.ErrorMessage // the whole job failed
	grouped  bool               // an op was skipped because an earlier job of the group carries it
	ack      string             // lastId of its OP_ACK when not the job's (a partial ack)
	unstored []opRef            // ops not applied: past a partial ack, or of a job refused whole
	end      int                // index in the Apply call past its ops (and those it skipped as grouped)
}

// writeWorker is the connection's write loop.
func (c *conn) writeWorker() {
	defer c.wg.Done()
	var next *writeJob // taken, but for the next group (batch limit)
	for {
		var first *writeJob
		if next != nil {
			first, next = next, nil
		} else {
			select {
			case first = <-c.writes:
			case <-c.ctx.Done():
				return
			}
		}
		group := []*writeJob{first}
		n := first.size()
	gather:
		for n < maxGroupOps {
			select {
			case j := <-c.writes:
				if n+j.size() > abi.MaxBatchOps {
					// One store.Apply over the backend's batch limit
					// would fail every job of the group.
					next = j
					break gather
				}
				group = append(group, j)
				n += j.size()
			default:
				break gather
			}
		}
		c.applyGroup(group, c.s.opts.MaxBatchOps)
		c.unstoredN.Store(int64(len(c.unstored))) // before pending drops
		bytes := 0
		for _, j := range group {
			bytes += j.bytes
		}
		c.jobsDone(len(group), bytes)
	}
}

// applyGroup applies a group of jobs with one store.Apply and answers them
// in order. A job of more than limit new ops is refused, or, from TopGun's
// client, applied in part (see below).
func (c *conn) applyGroup(group []*writeJob, limit int) {
	s := c.s
	states := make([]jobState, len(group))
	var all []store.Op
	inGroup := map[uint64]struct{}{}
	type candidate struct {
		op  store.Op
		ref opRef
	}
	var cands []candidate
	// Counted once the group is applied: a group split below counts its
	// skips again, job by job.
	skipped := 0
	for gi, job := range group {
		st := &states[gi]
		st.job = job
		cands = cands[:0]
		add := func(idx int, id string, op store.Op) {
			fp, ok := c.settled.fingerprint(id, &op)
			if ok {
				if c.settled.has(fp) {
					skipped++
					return
				}
				if _, dup := inGroup[fp]; dup {
					skipped++
					st.grouped = true
					return
				}
			}
			cands = append(cands, candidate{op: op, ref: opRef{idx: idx, id: id, fp: fp, fpOK: ok}})
		}
		if job.push != nil {
			ops, err := pushDiffOps(job.push)
			if err != nil {
				st.err = &wire.ErrorMessage{Code: 403, Message: "protocol: ORMAP_PUSH_DIFF refused: " + err.Error()}
				continue
			}
			for i := range ops {
				// Push-diff ops carry no id; the tag and the client's
				// timestamp identify them.
				add(i, "#push", ops[i])
			}
		} else {
			for i := range job.ops {
				op := &job.ops[i]
				sop, skip, err := clientOp(op)
				if err != nil {
					code := uint32(403)
					st.rejected = append(st.rejected, rejection{idx: i, msg: wire.OpRejected{OpID: op.ID, Reason: err.Error(), Code: &code}})
					continue
				}
				if !skip {
					add(i, op.ID, sop)
				}
			}
		}
		if len(cands) > limit {
			if k := cands[limit-1].ref.idx; job.push == nil && idsAscend(job.ops) {
				// TopGun's client re-sends every unacknowledged op with
				// each write, so refusing a batch of more new ops than
				// the limit (an offline client's backlog) would refuse it
				// forever. Its ops carry ascending numeric ids and the
				// client marks every op up to lastId as synced: apply the
				// first MaxBatchOps and acknowledge up to the last of
				// them; the client sends the rest again.
				for _, cd := range cands[limit:] {
					st.unstored = append(st.unstored, cd.ref)
				}
				cands = cands[:limit]
				st.rejected = slices.DeleteFunc(st.rejected, func(r rejection) bool { return r.idx > k })
				st.ack = job.ops[k].ID
			} else {
				st.err = &wire.ErrorMessage{Code: 413, Message: fmt.Sprintf(
					"protocol: %s asks to apply %d operations, more than the limit of %d operations per batch (%s); send smaller batches or raise the limit",
					job.typ, len(cands), s.opts.MaxBatchOps, s.opts.setting("TOPGUN_MAX_BATCH_OPS"))}
				for _, cd := range cands {
					st.unstored = append(st.unstored, cd.ref)
				}
				st.rejected = nil
				st.grouped = false
				continue
			}
		}
		for _, cd := range cands {
			if cd.ref.fpOK {
				inGroup[cd.ref.fp] = struct{}{}
			}
			cd.ref.at = len(all)
			all = append(all, cd.op)
			st.refs = append(st.refs, cd.ref)
		}
		st.end = len(all)
	}

	var results []store.Result
	var applyErr error
	if len(all) > 0 {
		results, applyErr = s.store.Apply(c.ctx, all, c.id)
	}
	// With applyErr, results holds those of the ops stored (or refused)
	// before the failure, a prefix of all (store.Apply): nothing here
	// applies them again, as an op the server stamps would be stored twice.
	settled := len(results)
	// Refused whole as too large for the backend (nothing stored): split
	// as the cases below say.
	tooLarge := applyErr != nil && settled == 0 && abi.CodeOf(applyErr) == abi.CodeResourceExhausted && c.ctx.Err() == nil
	if tooLarge && len(group) > 1 {
		// Too large for the backend together (a wasm plugin's request
		// limit), though each job may fit: one at a time, so that only a
		// write too large on its own fails.
		c.log.Debug("writes grouped were too large for the backend; applying them one by one", "jobs", len(group), "error", applyErr)
		for _, job := range group {
			c.applyGroup([]*writeJob{job}, limit)
		}
		return
	}
	if p := group[0].push; tooLarge && len(group) == 1 && p != nil && len(p.Entries) > 1 {
		// A push too large for the backend, refused, came again at every
		// sync of TopGun's client, for good. Its entries are applied in
		// halves instead (idempotent each; every part is acknowledged, as
		// the parts of a push over MaxBatchOps are), so that only an entry
		// too large on its own fails.
		c.log.Debug("a push was too large for the backend; applying it in parts", "entries", len(p.Entries), "error", applyErr)
		half := len(p.Entries) / 2
		for _, part := range [][]wire.ORMapEntry{p.Entries[:half], p.Entries[half:]} {
			c.applyGroup([]*writeJob{{typ: group[0].typ, push: &wire.ORMapPushDiff{MapName: p.MapName, Entries: part}, ack: group[0].ack}}, limit)
		}
		return
	}
	if tooLarge && len(group) == 1 && len(all) > 1 && group[0].push == nil && idsAscend(group[0].ops) {
		// One message too large for the backend (TOPGUN_MAX_MESSAGE_BYTES
		// above a plugin's request limit): refused, TopGun's client would
		// send it again with every write, for good. Its first half is
		// applied and acknowledged instead; the client re-sends the rest.
		c.log.Debug("a write was too large for the backend; applying it in part", "ops", len(all), "error", applyErr)
		c.applyGroup(group, len(all)/2)
		return
	}
	s.opsApplied.Add(uint64(len(all)))
	s.opsSkipped.Add(uint64(skipped))
	if applyErr != nil && c.ctx.Err() == nil {
		c.s.storageWarns.Warn(c.log, "write failed", "ops", len(all), "error", applyErr)
	}

	for i := range states {
		st := &states[i]
		if st.err != nil {
			// Refused whole (403, 413): not stored, as a failed write. A
			// push refused unread (403) would be refused again.
			if st.unstored == nil {
				c.writeFailed.Store(true)
			}
			c.noteUnstored(st.unstored)
			c.answerWrite(st.err)
			continue
		}
		if applyErr != nil && (len(st.refs) > 0 || st.grouped) && st.end > settled && !st.cutAt(settled) {
			// A grouped op is noted by the earlier job carrying it.
			c.noteUnstored(st.refs)
			c.noteUnstored(st.unstored)
			// lastId names the message answered, as an OP_ACK would: ERROR
			// has no field for it.
			c.answerWrite(&wire.ErrorMessage{Code: 500, Message: "protocol: the write could not be stored (" + applyErr.Error() + "); it was not acknowledged, re-send it; lastId " + strconv.Quote(st.job.ack)})
			continue
		}
		for _, ref := range st.refs {
			res := results[ref.at]
			if res.Err != nil {
				reason := res.Err.Error()
				var re *store.RejectError
				if errors.As(res.Err, &re) {
					reason = re.Reason
				}
				code := uint32(400)
				st.rejected = append(st.rejected, rejection{idx: ref.idx, msg: wire.OpRejected{OpID: ref.id, Reason: reason, Code: &code}})
			}
			if ref.fpOK {
				c.settled.add(ref.fp)
				delete(c.unstored, ref.fp)
			}
		}
		sort.SliceStable(st.rejected, func(a, b int) bool { return st.rejected[a].idx < st.rejected[b].idx })
		for k := range st.rejected {
			m := st.rejected[k].msg
			if st.job.push != nil {
				m.OpID = ""
			}
			c.answerWrite(&m)
		}
		ack := st.job.ack
		if st.ack != "" {
			ack = st.ack
			// The ops past it are not stored until the client sends
			// them again, as after a failed write (pruneHeldLocked).
			c.noteUnstored(st.unstored)
		}
		c.answerWrite(&wire.OpAck{LastID: ack, AchievedLevel: s.ackLevel})
	}
}

// cutAt acknowledges in part a job whose ops the store settled up to
// index settled of the Apply call only (a request applied in parts, one of
// which failed), as a job over MaxBatchOps is: an ERROR 500 had its client
// send the stored ops again, and an op the server stamps (an OR add
// without a tag) was then stored twice. Only a job of TopGun's ascending
// numeric ids whose ops stored are a prefix of it can be, as its client
// marks synced every op up to lastId. It reports whether the job was cut.
func (st *jobState) cutAt(settled int) bool {
	if st.job.push != nil || !idsAscend(st.job.ops) {
		return false
	}
	n := 0 // refs are in the order of the job's ops and of the call
	for n < len(st.refs) && st.refs[n].at < settled {
		n++
	}
	if n == 0 {
		return false
	}
	k := st.refs[n-1].idx
	st.unstored = append(slices.Clone(st.refs[n:]), st.unstored...)
	st.refs = st.refs[:n]
	st.rejected = slices.DeleteFunc(st.rejected, func(r rejection) bool { return r.idx > k })
	st.ack = st.job.ops[k].ID
	return true
}

// noteUnstored records ops the connection sent that a write left
// unstored: cut-offs are held back until the client has sent each again
// and it is settled (applied or refused; pruneHeldLocked). An op without a
// fingerprint cannot be recognised again, nor is more than settledCap/2
// remembered: then they are held back until the client's next connection.
func (c *conn) noteUnstored(refs []opRef) {
	for _, r := range refs {
		if !r.fpOK || len(c.unstored) >= settledCap/2 {
			c.writeFailed.Store(true)
			return
		}
		if c.unstored == nil {
			c.unstored = map[uint64]struct{}{}
		}
		c.unstored[r.fp] = struct{}{}
	}
}

// idsAscend reports whether every op id is a decimal number and the ids
// ascend, as TopGun's client's do: its OP_ACK then acknowledges exactly the
// ops up to the one whose id it names (the client marks synced every op
// whose numeric id is at most lastId's).
func idsAscend(ops []wire.ClientOp) bool {
	var prev uint64
	for i := range ops {
		id, err := strconv.ParseUint(ops[i].ID, 10, 64)
		if err != nil || (i > 0 && id <= prev) {
			return false
		}
		prev = id
	}
	return true
}

// lastOpID is the lastId TopGun acknowledges a batch with: the id of its
// last op, or "unknown".
func lastOpID(ops []wire.ClientOp) string {
	if len(ops) == 0 || ops[len(ops)-1].ID == "" {
		return "unknown"
	}
	return ops[len(ops)-1].ID
}

// pushAckID is the lastId of the OP_ACK answering ORMAP_PUSH_DIFF. TopGun
// sends an internal call id, which its own client can mistake for an op-log
// id and mark pending ops as synced; "0" marks nothing (op-log ids start
// at 1).
const pushAckID = "0"
