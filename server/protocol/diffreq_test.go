package protocol

import (
	"strings"
	"testing"

	"github.com/topgun-go/topgun/server/wire"
)

// An ORMAP_DIFF_REQUEST naming one key many times must not make the server
// build an answer holding that key's state once per mention: a frame of a
// few KiB would otherwise cost gigabytes of memory (a 2 MiB frame names a
// key a million times). TopGun's client never repeats a key, and one entry
// per distinct key answers it fully.
func TestDiffRequest_repeatedKeyAnsweredOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	c := e.dial(t)
	big := strings.Repeat("x", 16<<10)
	c.write(orAddOp("1", "tags", "k", big, cts("c")))

	keys := make([]string, 2000)
	for i := range keys {
		keys[i] = "k"
	}
	keys = append(keys, "other", "other")
	c.send(&wire.ORMapDiffRequest{MapName: "tags", Keys: keys})
	d := expect[*wire.ORMapDiffResponse](c)
	if len(d.Entries) != 2 || d.Entries[0].Key != "k" || len(d.Entries[0].Records) != 1 ||
		d.Entries[1].Key != "other" || len(d.Entries[1].Records) != 0 {
		t.Fatalf("diff response has %d entries, want one per distinct key (k, other)", len(d.Entries))
	}
}
