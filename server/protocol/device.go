package protocol

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/topgun-go/topgun/server/record"
	"github.com/topgun-go/topgun/server/store"
)

// Device identity, as TopGun's server keeps it: a device token is
// "{uuid}.{hex of 32 random bytes}"; the server stores the SHA-256 of the
// secret bytes as an LWW Bytes value in the reserved map
// _topgun_device_credentials, under "a{len(user)}:{user}|{deviceId}" for an
// authenticated user or "n:{deviceId}" without authentication. A client
// presenting a valid token keeps its device id and gets no new token;
// otherwise a new identity is minted and its token returned once. Binding a
// device never fails a handshake: on a storage error the client simply gets
// no device id. A newer connection bound to an identity closes the older
// one holding it (TopGun's takeover), so a device reconnecting after a
// network change does not leave its half-open connection behind.
//
// At the connection limit that half-open connection would still hold its
// slot until the idle timeout, refusing the device's reconnection. So a
// few WebSocket connections are admitted over the limit on trial
// (takeoverReserve): one is served only if, within AuthTimeout, it
// presents a valid device token whose identity an open connection holds;
// it then takes that connection's slots, and the displaced one the
// reserve's until it ends. Any other is closed with 1013 (try again
// later) and counted as refused, as its upgrade would have been.

// DeviceMap is the reserved map holding device credentials.
const DeviceMap = "_topgun_device_credentials"

const deviceTimeout = 5 * time.Second

func deviceKey(principal, deviceID string) string {
	if principal == "" {
		return "n:" + deviceID
	}
	return "a" + strconv.Itoa(len(principal)) + ":" + principal + "|" + deviceID
}

// trialRefusal is the close reason of a connection on trial refused, at
// the limit of setting: named as a 503's message names it, when the
// reason fits in a close frame.
func trialRefusal(setting string) string {
	const rest = ": only a device taking over its connection is served; retry later"
	if r := "too many connections (" + setting + ")" + rest; len(r) <= 123 {
		return r
	}
	return "too many connections" + rest
}

// bindDevice gives the connection its device identity (once): the
// presented one when its token checks out, else a new one. token is set
// only when minted. A connection on trial gets only a presented identity
// it takes over, unless a slot freed meanwhile; otherwise it is closed
// (1013) and ok is false: the caller answers nothing.
func (c *conn) bindDevice(principal, presented string) (id, token string, ok bool) {
	if c.deviceBound {
		return c.deviceID, "", true
	}
	ctx, cancel := context.WithTimeout(c.ctx, deviceTimeout)
	defer cancel()
	if c.onTrial {
		if c.authTimer != nil {
			c.authTimer.Stop() // presented in time; the check may take up to deviceTimeout
		}
		if c.closing.Load() {
			return "", "", false // refused at the auth timeout already
		}
	}
	refuse := func() (string, string, bool) {
		c.log.Debug("closing connection on trial: it presented no device identity an open connection holds", "presented", presented != "")
		c.closeGraceful(websocket.StatusTryAgainLater, c.refusal)
		return "", "", false
	}
	if presented != "" {
		if id, ok := c.s.checkDevice(ctx, principal, presented); ok {
			key := deviceKey(principal, id)
			if !c.s.claimDevice(c, key) && c.onTrial {
				// No open connection holds it: served only in a slot
				// freed meanwhile.
				if !c.s.promote(c) {
					return refuse()
				}
				c.s.claimDevice(c, key)
			}
			c.deviceID, c.deviceBound = id, true
			return id, "", true
		}
	}
	if c.onTrial && !c.s.promote(c) {
		return refuse()
	}
	id, token, err := c.s.mintDevice(ctx, principal)
	if err != nil {
		c.s.storageWarns.Warn(c.log, "cannot store a device identity; the client continues without one", "error", err)
		return "", "", true
	}
	c.deviceID, c.deviceBound = id, true
	c.s.claimDevice(c, deviceKey(principal, id))
	return id, token, true
}

// takeoverReason is the close reason a displaced connection gets.
const takeoverReason = "device identity taken over by a newer connection"

// claimDevice makes c the owner of the device identity key and closes the
// connection that owned it, after the messages already queued for it (its
// acks). Writes it received but had not acknowledged are re-sent by its
// client as after any drop. A connection on trial (c.onTrial: claimDevice
// runs on c's reader) claims only an identity an open connection holds,
// and trades its reserve slots for that one's; false when not claimed.
func (s *Server) claimDevice(c *conn, key string) bool {
	s.mu.Lock()
	old := s.devices[key]
	if _, open := s.conns[c]; !open {
		// c already ended (its removal would not release the key).
		s.mu.Unlock()
		return false
	}
	trial := c.onTrial
	if trial {
		if old == nil || old == c || c.closing.Load() {
			s.mu.Unlock()
			return false
		}
		// The count of clients over the limit stays the same, and drops
		// when old ends.
		c.reserved, old.reserved = old.reserved, c.reserved
		c.onTrial = false
	}
	s.devices[key] = c
	c.deviceKey = key
	s.mu.Unlock()
	if trial {
		s.noteAdmitted()
		c.log.Debug("admitted over the connection limit: took over its device's connection", "from", old.id)
	}
	if old != nil && old != c {
		old.log.Info("closing: a newer connection took over its device identity", "by", c.id)
		old.closeGraceful(websocket.StatusPolicyViolation, takeoverReason)
	}
	return true
}

// checkDevice verifies a presented device token.
func (s *Server) checkDevice(ctx context.Context, principal, token string) (string, bool) {
	id, secretHex, ok := strings.Cut(token, ".")
	if !ok || len(id) == 0 || len(id) > 64 || len(secretHex) != 64 {
		return "", false
	}
	secret, err := hex.DecodeString(secretHex)
	if err != nil {
		return "", false
	}
	e, found, err := s.store.Get(ctx, DeviceMap, deviceKey(principal, id))
	if err != nil || !found || e.Record.Kind != record.KindLWW || e.Record.LWW.Value.Type() != record.TypeBytes {
		return "", false
	}
	sum := sha256.Sum256(secret)
	if subtle.ConstantTimeCompare(sum[:], e.Record.LWW.Value.Bytes()) != 1 {
		return "", false
	}
	return id, true
}

// mintDevice creates and stores a new device identity.
func (s *Server) mintDevice(ctx context.Context, principal string) (id, token string, err error) {
	var b [48]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", fmt.Errorf("protocol: random device id: %w", err)
	}
	u := b[:16]
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	h := hex.EncodeToString(u)
	id = h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
	secret := b[16:48]
	sum := sha256.Sum256(secret)
	res, err := s.store.Apply(ctx, []store.Op{{
		Map: DeviceMap, Key: deviceKey(principal, id), Kind: store.OpPut, Value: record.BytesValue(sum[:]),
	}}, 0)
	if err != nil {
		return "", "", err
	}
	if res[0].Err != nil {
		return "", "", res[0].Err
	}
	return id, id + "." + hex.EncodeToString(secret), nil
}
