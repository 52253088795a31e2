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

// DeviceMap is the reserved map holding device credentials.
const DeviceMap = "_topgun_device_credentials"

const deviceTimeout = 5 * time.Second

func deviceKey(principal, deviceID string) string {
	if principal == "" {
		return "n:" + deviceID
	}
	return "a" + strconv.Itoa(len(principal)) + ":" + principal + "|" + deviceID
}

// bindDevice gives the connection its device identity (once): the
// presented one when its token checks out, else a new one. token is set
// only when minted.
func (c *conn) bindDevice(principal, presented string) (id, token string) {
	if c.deviceBound {
		return c.deviceID, ""
	}
	ctx, cancel := context.WithTimeout(c.ctx, deviceTimeout)
	defer cancel()
	if presented != "" {
		if id, ok := c.s.checkDevice(ctx, principal, presented); ok {
			c.deviceID, c.deviceBound = id, true
			c.s.claimDevice(c, deviceKey(principal, id))
			return id, ""
		}
	}
	id, token, err := c.s.mintDevice(ctx, principal)
	if err != nil {
		c.log.Warn("cannot store a device identity; the client continues without one", "error", err)
		return "", ""
	}
	c.deviceID, c.deviceBound = id, true
	c.s.claimDevice(c, deviceKey(principal, id))
	return id, token
}

// takeoverReason is the close reason a displaced connection gets.
const takeoverReason = "device identity taken over by a newer connection"

// claimDevice makes c the owner of the device identity key and closes the
// connection that owned it, after the messages already queued for it (its
// acks). Writes it received but had not acknowledged are re-sent by its
// client as after any drop.
func (s *Server) claimDevice(c *conn, key string) {
	s.mu.Lock()
	old := s.devices[key]
	if _, open := s.conns[c]; !open {
		// c already ended (its removal would not release the key).
		s.mu.Unlock()
		return
	}
	s.devices[key] = c
	c.deviceKey = key
	s.mu.Unlock()
	if old != nil && old != c {
		old.log.Info("closing: a newer connection took over its device identity", "by", c.id)
		old.closeGraceful(websocket.StatusPolicyViolation, takeoverReason)
	}
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
