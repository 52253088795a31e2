package protocol

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/topgun-go/topgun/server/wire"
)

// A program that configures its protocol servers in code names the
// settings its own way (Options.SettingName): the refusals clients get
// name those, not topgun-server's environment variables. Without it they
// name the variables (the other tests check those).
func TestServer_settingNameInRefusals(t *testing.T) {
	t.Parallel()
	names := map[string]string{
		"TOPGUN_MAX_MESSAGE_BYTES": "limits.message_bytes",
		"TOPGUN_MAX_BATCH_OPS":     "limits.batch_ops",
		"TOPGUN_ALLOWED_ORIGINS":   "web.origins",
		"TOPGUN_MAX_CONNECTIONS":   "limits.connections",
	}
	opts := Options{
		MaxMessageBytes: 4096,
		MaxBatchOps:     2,
		MaxConnections:  1,
		SettingName:     func(env string) string { return names[env] },
	}
	check := func(t *testing.T, what, msg, want string) {
		t.Helper()
		if !strings.Contains(msg, want) || strings.Contains(msg, "TOPGUN_") {
			t.Fatalf("%s: %q; want it to name %s and no TOPGUN_ variable", what, msg, want)
		}
	}
	post := func(t *testing.T, e *env, body []byte, origin string) (int, string) {
		t.Helper()
		r, _ := http.NewRequest("POST", e.http.URL+"/sync", bytes.NewReader(body))
		r.Header.Set("Content-Type", "text/plain")
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(out)
	}
	t.Run("websocket", func(t *testing.T) {
		e := newEnv(t, envConfig{opts: opts})
		c := e.dial(t)
		c.send(&wire.OpBatch{Ops: []wire.ClientOp{putOp("1", "m", "big", strings.Repeat("x", 10_000), cts("c1"))}})
		m := expect[*wire.ErrorMessage](c)
		if m.Code != 413 {
			t.Fatalf("ERROR = %+v, want 413", m)
		}
		check(t, "message over the limit", m.Message, "limits.message_bytes")
		c.send(&wire.OpBatch{Ops: []wire.ClientOp{
			putOp("a", "m", "k1", 1, cts("c1")), putOp("b", "m", "k2", 2, cts("c1")), putOp("c", "m", "k3", 3, cts("c1")),
		}})
		m = expect[*wire.ErrorMessage](c)
		if m.Code != 413 {
			t.Fatalf("ERROR = %+v, want 413", m)
		}
		check(t, "batch over the limit", m.Message, "limits.batch_ops")

		// The only slot is taken, and its reserve for takeovers: a third
		// client is refused.
		e.dial(t)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, resp, err := websocket.Dial(ctx, e.wsURL("/ws"), nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("second connection: err %v, response %+v; want 503", err, resp)
		}
		body, _ := io.ReadAll(resp.Body)
		check(t, "connection over the limit", string(body), "limits.connections")
	})
	t.Run("http", func(t *testing.T) {
		e := newEnv(t, envConfig{opts: opts})
		code, msg := post(t, e, bytes.Repeat([]byte{0xc0}, 5000), "")
		if code != http.StatusRequestEntityTooLarge {
			t.Fatalf("body over the limit: %d %s", code, msg)
		}
		check(t, "body over the limit", msg, "limits.message_bytes")
		code, msg = post(t, e, nil, "https://evil.example")
		if code != http.StatusForbidden {
			t.Fatalf("POST /sync from a page elsewhere: %d %s", code, msg)
		}
		check(t, "POST /sync origin refusal", msg, "web.origins")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, resp, err := websocket.Dial(ctx, e.wsURL("/ws"), &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://evil.example"}}})
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("upgrade from a page elsewhere: err %v, response %+v; want 403", err, resp)
		}
		body, _ := io.ReadAll(resp.Body)
		check(t, "upgrade origin refusal", string(body), "web.origins")
	})
}
