package client

import (
	"math"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/internal/sparselog"
	"github.com/topgun-go/topgun/server/wire"
)

// maxDrift is how far ahead of the wall clock a remote timestamp may be
// for the clock to advance to it: this project's server's default bound
// (TOPGUN_MAX_DRIFT_MS). Past it the clock ignores the timestamp, as the
// server's does: writes stamped after it would be refused by the server
// (OP_REJECTED) until the wall clock caught up, and one at the top of the
// range would stop the clock, repeating every later stamp and OR tag.
const maxDrift = 60 * time.Second

// maxServerAhead bounds how far ahead of the wall clock the server's clock
// (see ServerTime) is believed to be: a broken or hostile server must not
// carry the clock to the top of the range through it.
const maxServerAhead = 24 * time.Hour

// hlc is a hybrid logical clock with TopGun's rules (core HLC.ts/hlc.rs):
// now() takes the wall clock when it moved forward, else bumps the counter;
// update() merges a remote timestamp; a counter overflow carries into
// millis, as in TopGun's Rust core.
type hlc struct {
	mu      sync.Mutex
	millis  uint64
	counter uint32
	nodeID  string
	wall    func() uint64
	log     hclog.Logger
	// ahead: the warnings of ignored timestamps, which the server (or
	// the records it holds) may send in every message.
	ahead sparselog.Log
	// serverAhead is how far (ms) the server's clock was ahead of this
	// one at its last reading (negative if behind, 0 before the first).
	// The server bounds stamps by its own clock: a record stamped within
	// its bound, by a client whose clock runs ahead, is further ahead of a
	// client whose clock runs behind than maxDrift, yet a later write of
	// that client must still win over it; and a client whose clock runs
	// ahead must not follow a stamp past that bound, since its later
	// writes would be refused.
	serverAhead int64
}

func newHLC(nodeID string, log hclog.Logger) *hlc {
	return &hlc{nodeID: nodeID, log: log, wall: func() uint64 { return uint64(time.Now().UnixMilli()) }}
}

// Now returns a timestamp greater than every one returned or observed so far.
func (h *hlc) Now() wire.Timestamp {
	h.mu.Lock()
	defer h.mu.Unlock()
	if w := h.wall(); w > h.millis {
		h.millis, h.counter = w, 0
	} else {
		h.bump()
	}
	return wire.Timestamp{Millis: h.millis, Counter: h.counter, NodeID: h.nodeID}
}

func (h *hlc) bump() {
	if h.counter == math.MaxUint32 {
		if h.millis == math.MaxUint64 {
			// Only a hostile or broken peer's timestamp gets here:
			// stay at the largest timestamp rather than wrap to 0.
			return
		}
		h.millis++
		h.counter = 0
		return
	}
	h.counter++
}

// ServerTime records the server's clock (ms), read from a PONG (its wall
// clock) or a SYNC_RESP_ROOT (its clock, which may be ahead of its wall
// clock as far as the stamps it took: then records up to that much
// further ahead are followed, and writes after them may be refused).
func (h *hlc) ServerTime(ms uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	limit := uint64(maxServerAhead / time.Millisecond)
	if w := h.wall(); ms > w {
		h.serverAhead = int64(min(ms-w, limit))
	} else {
		h.serverAhead = -int64(min(w-ms, limit))
	}
}

// Update merges a remote timestamp so later Now values order after it,
// unless it is more than maxDrift ahead of the server's clock (as last
// read, else of this one's wall clock).
func (h *hlc) Update(remote wire.Timestamp) {
	h.mu.Lock()
	defer h.mu.Unlock()
	w := h.wall()
	ref := w + uint64(max(h.serverAhead, 0))
	if h.serverAhead < 0 {
		ref = w - min(w, uint64(-h.serverAhead))
	}
	if remote.Millis > ref && remote.Millis-ref > uint64(maxDrift/time.Millisecond) {
		h.ahead.Warn(h.log, "ignoring a timestamp too far ahead of the local clock", "drift_ms", remote.Millis-w, "node_id", remote.NodeID)
		return
	}
	m := max(h.millis, w, remote.Millis)
	switch {
	case m == h.millis && m == remote.Millis:
		h.counter = max(h.counter, remote.Counter)
		h.bump()
	case m == h.millis:
		h.bump()
	case m == remote.Millis:
		h.counter = remote.Counter
		h.millis = m
		h.bump()
	default:
		h.counter = 0
	}
	h.millis = max(h.millis, m)
}
