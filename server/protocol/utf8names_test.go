package protocol

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/topgun-go/topgun/server/wire"
)

// A refusal naming what the client sent (a map name, a message type) cuts
// a long name at 64 bytes: cut inside a character, the text was not UTF-8,
// and a decoder that checks strings (this project's) refused the answer.
func TestConn_refusalsNameLongNamesInValidUTF8(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	c := e.dial(t)
	long := strings.Repeat("€", 30) // 3 bytes each: 64 falls inside one
	c.send(&wire.QuerySub{QueryID: "q", MapName: "_topgun_" + long})
	r := expect[*wire.QueryResp](c)
	if r.Error == "" || !utf8.ValidString(r.Error) || !strings.Contains(r.Error, "reserved") {
		t.Fatalf("QUERY_RESP error %q, want the reserved map named in valid UTF-8", r.Error)
	}
	c.sendRaw(mustEncodeMap(t, map[string]any{"type": "X" + long, "payload": map[string]any{}}))
	m := expect[*wire.ErrorMessage](c)
	if m.Code != 501 || !utf8.ValidString(m.Message) || len(m.Message) > 300 {
		t.Fatalf("ERROR %d %q, want 501 naming the type, cut, in valid UTF-8", m.Code, m.Message)
	}
}

// A one-shot request whose id is not UTF-8 gets ERROR 501, not a reply
// echoing the id, which would not be UTF-8 either.
func TestConn_refusalOfAnIDNotUTF8(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	c := e.dial(t)
	c.sendRaw(mustEncodeMap(t, map[string]any{"type": "SEARCH", "payload": map[string]any{"requestId": "r\xff", "mapName": "m", "query": "q"}}))
	m := c.next()
	if em, ok := m.(*wire.ErrorMessage); !ok || em.Code != 501 || !utf8.ValidString(em.Message) {
		t.Fatalf("got %s %+v, want ERROR 501", m.Type(), m)
	}
}
