package protocol

import (
	"errors"
	"testing"

	"github.com/coder/websocket"

	"github.com/topgun-go/topgun/server/wire"
)

// A newer connection bound to a device identity closes the older one
// holding it (TopGun's takeover); other identities are left alone, and a
// connection that ends releases its identity.
func TestDevice_takeover(t *testing.T) {
	t.Parallel()
	for _, withAuth := range []bool{false, true} {
		name := map[bool]string{false: "no auth", true: "auth"}[withAuth]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg := envConfig{}
			if withAuth {
				cfg.opts.Auth = mustAuth(t, testSecret)
			}
			e := newEnv(t, cfg)
			// hello binds a device on a new connection and returns it
			// with the identity it got.
			hello := func(user, token string) (*client, string, string) {
				c := e.dial(t)
				if withAuth {
					expect[*wire.AuthRequired](c)
					c.send(&wire.Auth{Token: userToken(t, user), DeviceToken: token})
					a := expect[*wire.AuthAck](c)
					return c, a.DeviceID, a.DeviceToken
				}
				c.send(&wire.DeviceHello{DeviceToken: token})
				a := expect[*wire.DeviceAck](c)
				return c, a.DeviceID, a.DeviceToken
			}
			first, id, token := hello("alice", "")
			other, otherID, _ := hello("alice", "")
			if otherID == id {
				t.Fatal("two new connections got one device id")
			}
			second, id2, _ := hello("alice", token)
			if id2 != id {
				t.Fatalf("re-presented token bound %q, want %q", id2, id)
			}
			if code := first.closed(); code != websocket.StatusPolicyViolation {
				t.Fatalf("displaced connection closed with %v, want %v", code, websocket.StatusPolicyViolation)
			}
			var ce websocket.CloseError
			if !errors.As(first.err, &ce) || ce.Reason != takeoverReason {
				t.Fatalf("displaced connection's close: %v", first.err)
			}
			second.ping()
			other.ping()
			if withAuth {
				// Another user presenting the token gets its own identity
				// and displaces nobody.
				third, id3, _ := hello("mallory", token)
				if id3 == id {
					t.Fatal("another user took over the device")
				}
				third.ping()
				second.ping()
			}

			// The owner's end releases the identity: a later connection
			// binds it and no one else is closed.
			second.ws.Close(websocket.StatusNormalClosure, "")
			<-second.done
			key := deviceKey(map[bool]string{true: "alice"}[withAuth], id)
			eventually(t, "the closed connection releases its identity", func() bool {
				e.srv.mu.RLock()
				defer e.srv.mu.RUnlock()
				_, held := e.srv.devices[key]
				return !held
			})
			fourth, id4, _ := hello("alice", token)
			if id4 != id {
				t.Fatalf("after the owner closed: bound %q, want %q", id4, id)
			}
			fourth.ping()
			other.ping()
		})
	}
}
