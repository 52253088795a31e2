package protocol

import (
	"errors"
	"fmt"
	"time"

	"github.com/coder/websocket"

	"github.com/topgun-go/topgun/server/wire"
)

// maxBatchNesting: a BATCH inside a BATCH is not unpacked again.
const maxBatchNesting = 1

// handleFrame handles one binary frame. It runs on the reader goroutine
// (and in tests and fuzzing, on the caller's). It never panics on any
// input: the decoder is hardened, and every handler checks what it uses.
func (c *conn) handleFrame(frame []byte, depth int) {
	if c.closing.Load() {
		return // closing (after AUTH_FAIL, a timeout, a shutdown): nothing more is served
	}
	if !c.authed.Load() {
		// Before AUTH_ACK everything but AUTH is dropped, without a word,
		// and without being decoded: decoded values take many times their
		// frame's size, which an unauthenticated client must not cost.
		// Without Auth only a connection on trial gets here, and
		// DEVICE_HELLO may present its device token too.
		typ, err := c.s.limits.Type(frame)
		if err != nil || typ != wire.TypeAuth && (typ != wire.TypeDeviceHello || c.s.opts.Auth != nil) {
			return
		}
		m, err := c.s.limits.Decode(frame)
		if err != nil {
			return
		}
		switch m := m.(type) {
		case *wire.Auth:
			c.handleAuth(m)
		case *wire.DeviceHello:
			c.handleDeviceHello(m)
		}
		return
	}
	// size is what the decoded message takes in memory: writes count it
	// against the bound of the write queue (enqueueWrite).
	m, size, err := c.s.limits.DecodeSize(frame)
	if err != nil {
		c.decodeFailed(err)
		return
	}
	switch m := m.(type) {
	case *wire.Auth:
		c.handleAuth(m)
	case *wire.DeviceHello:
		c.handleDeviceHello(m)
	case *wire.Ping:
		c.reply(&wire.Pong{Timestamp: m.Timestamp, ServerTime: uint64(time.Now().UnixMilli())})
	case *wire.ClientOpMessage:
		id := m.ID
		if id == "" {
			id = "unknown"
		}
		c.enqueueWrite(&writeJob{typ: wire.TypeClientOp, ops: []wire.ClientOp{m.ClientOp}, ack: id, bytes: size})
	case *wire.OpBatch:
		c.enqueueWrite(&writeJob{typ: wire.TypeOpBatch, ops: m.Ops, ack: lastOpID(m.Ops), bytes: size})
	case *wire.ORMapPushDiff:
		// TopGun's client pushes every key of a bucket the server lacks at
		// once and cannot split a push: one over MaxBatchOps, refused
		// whole, came again at every sync. Its entries go in jobs within
		// the limit, each answered (idempotent per entry); an entry over
		// it alone is still refused.
		for i, part := range splitPush(m, c.s.opts.MaxBatchOps) {
			b := 0
			if i == 0 {
				b = size // the frame's decoded size, counted once
			}
			c.enqueueWrite(&writeJob{typ: wire.TypeORMapPushDiff, push: part, ack: pushAckID, bytes: b})
		}
	case *wire.SyncInit:
		c.handleSyncInit(m)
	case *wire.MerkleReqBucket:
		c.handleBucket(m.MapName, m.Path, false)
	case *wire.ORMapSyncInit:
		c.handleORSyncInit(m)
	case *wire.ORMapMerkleReqBucket:
		c.handleBucket(m.MapName, m.Path, true)
	case *wire.ORMapDiffRequest:
		c.handleDiffRequest(m)
	case *wire.QuerySub:
		c.handleQuerySub(m, size)
	case *wire.QueryUnsub:
		c.handleQueryUnsub(m)
	case *wire.Batch:
		c.handleBatch(m, depth)
	case *wire.ClientApplyAck:
		// Tombstone GC by client epochs is not used: nothing to do.
	case *wire.EntryProcess:
		c.reply(&wire.EntryProcessResponse{RequestID: m.RequestID,
			EntryProcessKeyResult: wire.EntryProcessKeyResult{Error: entryProcessRefusal}})
	case *wire.EntryProcessBatch:
		// The answer holds each distinct key once (no capacity hint: 2M
		// repeats of one key would make a map of 2M slots), and is bounded
		// as a decoded message is: its results take many times the bytes
		// of their keys on the wire.
		limit := wire.DecodedBytesPerMessageByte * int64(c.s.opts.MaxMessageBytes)
		results := make(map[string]wire.EntryProcessKeyResult)
		var cost int64
		for _, k := range m.Keys {
			if _, ok := results[k]; ok {
				continue
			}
			if cost += entryResultBytes + int64(len(k)); cost > limit {
				c.reply(&wire.ErrorMessage{Code: 413, Message: fmt.Sprintf(
					"protocol: ENTRY_PROCESS_BATCH ignored: its answer (a result per key) would take more than %d bytes of memory, %d × %s: send fewer keys",
					limit, wire.DecodedBytesPerMessageByte, c.s.opts.setting("TOPGUN_MAX_MESSAGE_BYTES"))})
				return
			}
			results[k] = wire.EntryProcessKeyResult{Error: entryProcessRefusal}
		}
		c.reply(&wire.EntryProcessBatchResponse{RequestID: m.RequestID, Results: results})
	default:
		// Server-to-client types sent by a client are ignored, as TopGun does.
		c.log.Debug("ignoring message", "type", m.Type())
	}
}

// entryProcessRefusal is the error of every ENTRY_PROCESS result: the
// server runs no entry processors. It is TopGun's server's text, which
// refuses them the same way (at once, success false), so that its client
// returns the failure instead of waiting 30 s and failing with a timeout.
const entryProcessRefusal = "Entry processing not available: WASM sandbox required"

// entryResultBytes is what one key's result of ENTRY_PROCESS_BATCH takes
// besides its key, allocated: its slot in the results map and its encoded
// form (about 70 bytes), each with the slack of their growth.
const entryResultBytes = 512

// decodeFailed answers a frame that could not be decoded. A type of a
// feature the server does not serve (topics, locks, counters, search, ...)
// is refused: TopGun's client waits for the answer to many of them (a
// search 30 s, a lock its ttl plus 5 s) and then fails with a timeout that
// does not say why. A one-shot search or SQL query gets its reply type with
// the error, which fails the call at once; any other such type ERROR 501.
// A malformed frame gets ERROR 400, a frame nested too deeply or whose
// decoded form would pass the decoded-size limit ERROR 413. The connection
// survives either way.
func (c *conn) decodeFailed(err error) {
	if !errors.Is(err, wire.ErrUnknownType) {
		var de *wire.DecodeError
		typ := ""
		if errors.As(err, &de) {
			typ = de.Type
		}
		c.writeRefused(typ)
	}
	var ut *wire.UnknownTypeError
	switch {
	case errors.As(err, &ut):
		c.log.Debug("refusing message of an unsupported type", "type", ut.Type)
		reason := fmt.Sprintf("protocol: %s is not supported by this server, which serves maps (writes, sync, live queries) only", wire.CutName(ut.Type))
		if r, ok := wire.NewRefusal(ut, reason); ok {
			c.reply(r)
			return
		}
		c.reply(&wire.ErrorMessage{Code: 501, Message: reason + "; the message was ignored"})
	case errors.Is(err, wire.ErrTooDeep):
		c.reply(&wire.ErrorMessage{Code: 413, Message: fmt.Sprintf(
			"protocol: message nested deeper than the limit of %d maps and arrays; flatten the value", wire.DefaultMaxDepth)})
	case errors.Is(err, wire.ErrDecodedTooLarge):
		c.reply(&wire.ErrorMessage{Code: 413, Message: fmt.Sprintf(
			"protocol: message ignored: %v; a message may take at most %d × %[3]s once decoded: send smaller messages or raise %[3]s",
			err, wire.DecodedBytesPerMessageByte, c.s.opts.setting("TOPGUN_MAX_MESSAGE_BYTES"))})
	default:
		c.reply(&wire.ErrorMessage{Code: 400, Message: "protocol: message ignored: " + err.Error()})
	}
}

// writeRefused records that a frame of type typ ("" when not known) was
// refused before its ops reached the store (ERROR 400 or 413): a write
// among them is not stored until the client sends it again, as after a
// failed write, so cut-offs are held back (writeFailed, pruneHeldLocked).
func (c *conn) writeRefused(typ string) {
	switch typ {
	case "", wire.TypeClientOp, wire.TypeOpBatch, wire.TypeORMapPushDiff, wire.TypeBatch:
		c.writeFailed.Store(true)
	}
}

// tooLargeError is the ERROR for a frame over MaxMessageBytes.
func (s *Server) tooLargeError() *wire.ErrorMessage {
	return &wire.ErrorMessage{Code: 413, Message: fmt.Sprintf(
		"protocol: message ignored: it is larger than the limit of %d bytes (%s); send smaller messages or raise the limit",
		s.opts.MaxMessageBytes, s.opts.setting("TOPGUN_MAX_MESSAGE_BYTES"))}
}

// handleBatch unpacks a BATCH; each inner message is handled as if it had
// arrived alone.
func (c *conn) handleBatch(b *wire.Batch, depth int) {
	if depth >= maxBatchNesting {
		c.writeRefused(wire.TypeBatch)
		c.reply(&wire.ErrorMessage{Code: 400, Message: "protocol: a BATCH inside a BATCH is not unpacked"})
		return
	}
	frames, err := c.s.limits.SplitBatch(b)
	if err != nil {
		c.writeRefused(wire.TypeBatch)
		code := uint32(400)
		if errors.Is(err, wire.ErrTooLarge) {
			code = 413
		}
		c.reply(&wire.ErrorMessage{Code: code, Message: "protocol: BATCH ignored: " + err.Error()})
		return
	}
	for _, f := range frames {
		c.handleFrame(f, depth+1)
	}
}

// handleAuth verifies an AUTH. A duplicate AUTH after AUTH_ACK is ignored,
// as TopGun ignores it.
func (c *conn) handleAuth(a *wire.Auth) {
	if c.authAcked {
		c.log.Debug("ignoring a repeated AUTH")
		return
	}
	if c.s.opts.Auth == nil {
		// No authentication: TopGun ignores AUTH here, which leaves its
		// client waiting for AUTH_ACK forever; acknowledging it lets a
		// client configured with a token work against a no-auth server.
		id, token, ok := c.bindDevice("", a.DeviceToken)
		if !ok {
			return
		}
		c.authAcked = true
		c.authed.Store(true) // (a connection on trial was not)
		c.reply(&wire.AuthAck{DeviceID: id, DeviceToken: token})
		return
	}
	p, err := c.s.opts.Auth.Verify(a.Token)
	if err != nil {
		c.s.noteAuthFailed(c.log, err)
		c.reply(&wire.AuthFail{Error: "Authentication failed"})
		c.closeGraceful(websocket.StatusPolicyViolation, "authentication failed")
		return
	}
	c.principal = p
	if c.authTimer != nil {
		c.authTimer.Stop()
	}
	id, token, ok := c.bindDevice(p.UserID, a.DeviceToken)
	if !ok {
		return // on trial, and refused: not AUTH_FAIL, which makes TopGun's client drop its token
	}
	c.authAcked = true
	c.authed.Store(true)
	c.log.Debug("authenticated", "user", p.UserID)
	c.reply(&wire.AuthAck{UserID: p.UserID, DeviceID: id, DeviceToken: token})
}

// handleDeviceHello answers DEVICE_HELLO (a client without a token, on a
// server without authentication) with its device identity.
func (c *conn) handleDeviceHello(m *wire.DeviceHello) {
	id, token, ok := c.bindDevice(c.principal.UserID, m.DeviceToken)
	if !ok {
		return
	}
	c.authed.Store(true) // (a connection on trial was not)
	c.reply(&wire.DeviceAck{DeviceID: id, DeviceToken: token})
}
