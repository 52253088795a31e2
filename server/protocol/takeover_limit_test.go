package protocol

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/topgun-go/topgun/server/wire"
)

// handshake sends c's first message, AUTH (with a token for user) or
// DEVICE_HELLO, presenting deviceToken, after reading AUTH_REQUIRED when
// the server asks for one.
func handshake(t *testing.T, c *client, withAuth bool, user, deviceToken string) {
	t.Helper()
	if withAuth {
		expect[*wire.AuthRequired](c)
		c.send(&wire.Auth{Token: userToken(t, user), DeviceToken: deviceToken})
		return
	}
	c.send(&wire.DeviceHello{DeviceToken: deviceToken})
}

// acked reads the handshake's answer and returns its device id and token.
func acked(t *testing.T, c *client, withAuth bool) (id, token string) {
	t.Helper()
	if withAuth {
		a := expect[*wire.AuthAck](c)
		return a.DeviceID, a.DeviceToken
	}
	a := expect[*wire.DeviceAck](c)
	return a.DeviceID, a.DeviceToken
}

// closedWith checks that the server closed c with code and reason.
func closedWith(t *testing.T, c *client, code websocket.StatusCode, reason string) {
	t.Helper()
	if got := c.closed(); got != code {
		t.Fatalf("closed with %v (%v), want %v", got, c.err, code)
	}
	var ce websocket.CloseError
	if !errors.As(c.err, &ce) || ce.Reason != reason {
		t.Fatalf("close: %v, want reason %q", c.err, reason)
	}
}

// slotsBack waits until srv holds want regular slots and none of its
// reserve.
func slotsBack(t *testing.T, srv *Server, want int64) {
	t.Helper()
	eventually(t, "the slots back at the limit", func() bool {
		return srv.clients.Load() == want && srv.reserved.Load() == 0
	})
}

// limitOne is a server of MaxConnections 1, with authentication when
// withAuth, and the user its clients' tokens name then ("" without).
func limitOne(t *testing.T, withAuth bool) (*env, string) {
	cfg := envConfig{opts: Options{MaxConnections: 1}}
	if !withAuth {
		return newEnv(t, cfg), ""
	}
	cfg.opts.Auth = mustAuth(t, testSecret)
	return newEnv(t, cfg), "alice"
}

func authName(withAuth bool) string {
	return map[bool]string{false: "no auth", true: "auth"}[withAuth]
}

// At the connection limit, a device reconnecting while the server still
// takes its old connection for open (its client silent, as behind a
// network change) takes that connection over: the reconnection is
// admitted on trial, served once it presents its device token, and the old
// connection is closed with 1008; the slots end at the limit again, none
// of the reserve held, and nothing counts as refused.
func TestDevice_takeoverAtConnectionLimit(t *testing.T) {
	t.Parallel()
	for _, withAuth := range []bool{false, true} {
		t.Run(authName(withAuth), func(t *testing.T) {
			t.Parallel()
			e, user := limitOne(t, withAuth)

			// The device gets its identity.
			first := e.dial(t)
			handshake(t, first, withAuth, "alice", "")
			id, token := acked(t, first, withAuth)
			first.ws.Close(websocket.StatusNormalClosure, "")
			slotsBack(t, e.srv, 0)

			// Its next connection holds the only slot, sends a write, and
			// then reads nothing more: half-open as far as the server can
			// tell.
			old := e.dialPaused(t)
			if withAuth {
				old.sendRaw(mustEncode(t, &wire.Auth{Token: userToken(t, "alice"), DeviceToken: token}))
			} else {
				old.sendRaw(mustEncode(t, &wire.DeviceHello{DeviceToken: token}))
			}
			old.sendRaw(mustEncode(t, &wire.ClientOpMessage{ClientOp: putOp("1", "m", "k", "v", cts("c"))}))
			// The write is handled after the handshake, whose answer is
			// then queued (the device is bound just before it).
			eventually(t, "the old connection's write applied", func() bool {
				_, found, _ := e.st.Get(context.Background(), "m", "k")
				return found
			})
			key := deviceKey(user, id)
			e.srv.mu.RLock()
			bound := e.srv.devices[key] != nil
			e.srv.mu.RUnlock()
			if !bound {
				t.Fatal("the old connection is not bound to the device")
			}

			// The reconnection gets in over the limit and takes over.
			recon := e.dial(t)
			handshake(t, recon, withAuth, "alice", token)
			if got, minted := acked(t, recon, withAuth); got != id || minted != "" {
				t.Fatalf("reconnection bound %q (new token %q), want %q and no new token", got, minted, id)
			}
			recon.ping()
			old.resume()
			if withAuth {
				expect[*wire.AuthRequired](old)
			}
			acked(t, old, withAuth) // its own handshake's answer, queued before the close
			closedWith(t, old, websocket.StatusPolicyViolation, takeoverReason)
			slotsBack(t, e.srv, 1)
			recon.ping()
			if n := e.srv.Stats().ClientsRefused; n != 0 {
				t.Fatalf("ClientsRefused = %d, want 0", n)
			}
			if n := e.srv.Connections(); n != 1 {
				t.Fatalf("%d connections open, want 1", n)
			}
		})
	}
}

// A connection admitted over the limit that does not take over an open
// connection of its device is closed with 1013 (try again later) and no
// answer (AUTH_FAIL would make TopGun's client drop its token), counted
// in ClientsRefused; the slots come back to the limit and the connection
// holding the slot is still served.
func TestServer_connectionOnTrialRefused(t *testing.T) {
	t.Parallel()
	for _, withAuth := range []bool{false, true} {
		t.Run(authName(withAuth), func(t *testing.T) {
			t.Parallel()
			e, user := limitOne(t, withAuth)
			holder := e.dial(t)
			handshake(t, holder, withAuth, "alice", "")
			_, holderToken := acked(t, holder, withAuth)

			// A valid token of an identity no connection holds.
			_, idle, err := e.srv.mintDevice(context.Background(), user)
			if err != nil {
				t.Fatal(err)
			}
			unknown := "00000000-0000-4000-8000-000000000000." + strings.Repeat("ab", 32)
			cases := []struct {
				name, user, token string
			}{
				{"no device token", "alice", ""},
				{"unknown device token", "alice", unknown},
				{"identity not connected", "alice", idle},
				{"malformed device token", "alice", "not-a-token"},
			}
			if withAuth {
				// Another user's connection holds that identity.
				cases = append(cases, struct{ name, user, token string }{"another user's token", "mallory", holderToken})
			}
			for i, tc := range cases {
				c := e.dial(t)
				handshake(t, c, withAuth, tc.user, tc.token)
				closedWith(t, c, websocket.StatusTryAgainLater, trialRefusal("TOPGUN_MAX_CONNECTIONS"))
				if len(c.msgs) != 0 {
					t.Fatalf("%s: the connection on trial got %s", tc.name, (<-c.msgs).Type())
				}
				slotsBack(t, e.srv, 1)
				eventually(t, tc.name+" counted as refused", func() bool {
					return e.srv.Stats().ClientsRefused == uint64(i+1)
				})
				holder.ping()
			}
			n := uint64(len(cases))
			if withAuth {
				// A bad JWT gets AUTH_FAIL and 1008, as within the limit.
				c := e.dial(t)
				expect[*wire.AuthRequired](c)
				c.send(&wire.Auth{Token: "bad", DeviceToken: holderToken})
				expect[*wire.AuthFail](c)
				closedWith(t, c, websocket.StatusPolicyViolation, "authentication failed")
				n++
				slotsBack(t, e.srv, 1)
				eventually(t, "the bad JWT counted as refused", func() bool { return e.srv.Stats().ClientsRefused == n })
			}
			// Before authenticating, nothing is served: a write is dropped
			// and the connection is then refused all the same.
			c := e.dial(t)
			if withAuth {
				expect[*wire.AuthRequired](c)
			}
			c.send(&wire.OpBatch{Ops: []wire.ClientOp{putOp("1", "m", "k", "v", cts("c"))}})
			c.send(&wire.Ping{Timestamp: 1})
			handshake(t, c, false, "", "") // DEVICE_HELLO without a token
			if withAuth {
				// (dropped before AUTH: refused at the auth timeout)
				c.ws.CloseNow()
				<-c.done
			} else {
				closedWith(t, c, websocket.StatusTryAgainLater, trialRefusal("TOPGUN_MAX_CONNECTIONS"))
				if len(c.msgs) != 0 {
					t.Fatalf("the connection on trial got %s", (<-c.msgs).Type())
				}
			}
			n++
			slotsBack(t, e.srv, 1)
			eventually(t, "the last one counted as refused", func() bool { return e.srv.Stats().ClientsRefused == n })
			if _, found, _ := e.st.Get(context.Background(), "m", "k"); found {
				t.Fatal("a write of a connection on trial was applied")
			}
			holder.ping()
		})
	}
}

// A connection on trial that presents nothing is closed at the auth
// timeout with 1013 and counted as refused.
func TestServer_connectionOnTrialTimesOut(t *testing.T) {
	t.Parallel()
	for _, withAuth := range []bool{false, true} {
		t.Run(authName(withAuth), func(t *testing.T) {
			t.Parallel()
			// The holder must authenticate within it too: long enough
			// for a client that does so at once on a loaded machine.
			cfg := envConfig{opts: Options{MaxConnections: 1, AuthTimeout: 2 * time.Second}}
			if withAuth {
				cfg.opts.Auth = mustAuth(t, testSecret)
			}
			e := newEnv(t, cfg)
			holder := e.dial(t)
			handshake(t, holder, withAuth, "alice", "")
			acked(t, holder, withAuth)
			c := e.dial(t)
			if withAuth {
				expect[*wire.AuthRequired](c)
			}
			closedWith(t, c, websocket.StatusTryAgainLater, trialRefusal("TOPGUN_MAX_CONNECTIONS"))
			slotsBack(t, e.srv, 1)
			eventually(t, "the timeout counted as refused", func() bool { return e.srv.Stats().ClientsRefused == 1 })
			holder.ping()
		})
	}
}

// dialRefused dials url and checks it is refused with 503 and Retry-After.
func dialRefused(t *testing.T, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, url, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("upgrade with the reserve used up: err %v, response %+v; want 503 with Retry-After", err, resp)
	}
}

// Beyond the limit's reserve (1% of it, at least 1), upgrades are refused
// with 503 as before; POST /sync, which has no device identity, is refused
// at the limit even with the reserve free. A connection occupying the
// reserve may still take over; once it is gone the reserve admits again.
func TestServer_takeoverReserveBound(t *testing.T) {
	t.Parallel()
	if r := takeoverReserve(1); r != 1 {
		t.Fatalf("reserve of 1 = %d", r)
	}
	if r := takeoverReserve(DefaultMaxConnections); r != 100 {
		t.Fatalf("reserve of %d = %d", DefaultMaxConnections, r)
	}
	if r := takeoverReserve(1_000_000); r != 100 {
		t.Fatalf("reserve of 1000000 = %d", r)
	}
	if r := trialRefusal(strings.Repeat("x", 200)); len(r) > 123 || !strings.HasPrefix(r, "too many connections: ") {
		t.Fatalf("close reason with a long setting name: %q", r)
	}
	// The tenants example's name for its shared limit fits.
	if r := trialRefusal("max_connections in the tenants file"); !strings.Contains(r, "(max_connections in the tenants file)") {
		t.Fatalf("close reason %q (%d bytes) does not name the tenants file's setting", r, len(r))
	}
	e := newEnv(t, envConfig{opts: Options{MaxConnections: 1}})
	holder := e.dial(t)
	holder.send(&wire.DeviceHello{})
	token := expect[*wire.DeviceAck](holder).DeviceToken

	if code, out := e.postRaw(t, nil, ""); code != http.StatusServiceUnavailable {
		t.Fatalf("POST /sync at the limit: %d %s", code, out)
	}
	a := e.dial(t) // on trial, silent
	dialRefused(t, e.wsURL("/ws"))
	if code, out := e.postRaw(t, nil, ""); code != http.StatusServiceUnavailable {
		t.Fatalf("POST /sync at the limit: %d %s", code, out)
	}
	if n := e.srv.Stats().ClientsRefused; n != 3 {
		t.Fatalf("ClientsRefused = %d, want 3", n)
	}
	if got := e.srv.reserved.Load(); got != 1 {
		t.Fatalf("%d reserve slots held, want 1", got)
	}
	a.ws.CloseNow()
	<-a.done
	slotsBack(t, e.srv, 1)
	eventually(t, "the silent one counted as refused", func() bool { return e.srv.Stats().ClientsRefused == 4 })

	// The reserve admits again, and its connection takes over.
	b := e.dial(t)
	b.send(&wire.DeviceHello{DeviceToken: token})
	expect[*wire.DeviceAck](b)
	closedWith(t, holder, websocket.StatusPolicyViolation, takeoverReason)
	b.ping()
	slotsBack(t, e.srv, 1)
}

// Servers sharing a ConnectionLimit share its reserve too: a takeover
// on trial works when the shared limit is full, the shared counts end
// back at the limit, and an upgrade on any of them is refused once the
// shared reserve is taken.
func TestServer_takeoverAtSharedLimit(t *testing.T) {
	t.Parallel()
	shared := NewConnectionLimit(1, "max_connections")
	e1 := newEnv(t, envConfig{opts: Options{SharedConnections: shared}})
	e2 := newEnv(t, envConfig{opts: Options{SharedConnections: shared}})
	holder := e1.dial(t)
	holder.send(&wire.DeviceHello{})
	token := expect[*wire.DeviceAck](holder).DeviceToken

	a := e2.dial(t) // on trial (the shared limit is full), silent
	dialRefused(t, e1.wsURL("/ws"))
	if n := e1.srv.Stats().ClientsRefused; n != 1 {
		t.Fatalf("ClientsRefused of the first server = %d, want 1", n)
	}
	// The identity is the first server's: unknown to the second.
	a.send(&wire.DeviceHello{DeviceToken: token})
	closedWith(t, a, websocket.StatusTryAgainLater, "too many connections (max_connections): only a device taking over its connection is served; retry later")
	eventually(t, "the shared reserve free", func() bool { return shared.reserved.Load() == 0 })

	b := e1.dial(t)
	b.send(&wire.DeviceHello{DeviceToken: token})
	expect[*wire.DeviceAck](b)
	closedWith(t, holder, websocket.StatusPolicyViolation, takeoverReason)
	b.ping()
	eventually(t, "the shared slots back at the limit", func() bool {
		return shared.clients.Load() == 1 && shared.reserved.Load() == 0 &&
			e1.srv.clients.Load() == 1 && e1.srv.reserved.Load() == 0 &&
			e2.srv.clients.Load() == 0 && e2.srv.reserved.Load() == 0
	})
	if n1, n2 := e1.srv.Stats().ClientsRefused, e2.srv.Stats().ClientsRefused; n1 != 1 || n2 != 1 {
		t.Fatalf("ClientsRefused = %d and %d, want 1 each", n1, n2)
	}
}
