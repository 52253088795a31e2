package store

import (
	"testing"

	"github.com/topgun-go/topgun/plugins/null"
)

// A commit whose callers were answered waits for nothing: CommitStalled
// (behind GET /ready) must not report it, however little it allows. The
// applier cleared its mark only after answering, so a probe made as soon
// as a long-held write returned could still find that write "waiting" and
// fail readiness.
func TestCommitStalled_notAfterTheCommitAnswered(t *testing.T) {
	f := newFixture(t, null.Open(), nil)
	for i := 0; i < 2000; i++ {
		f.apply(put("m", "k", "v", ts(t0+uint64(i), 0, "c")))
		if err := f.s.CommitStalled(0); err != nil {
			t.Fatalf("after write %d returned: %v", i, err)
		}
	}
}
