package store

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

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

// A large group commit in progress is not a stalled one: GET /ready
// failed during any commit longer than its 2 s check, however much it
// carried. A commit is allowed time for its size; a small one that has
// waited as long is still reported. The commit is held after storage
// applied it, and its start moved back, so the test waits on no clock.
func TestCommitStalled_allowsALargeCommitItsSize(t *testing.T) {
	const waited, d = 3 * time.Second, 2 * time.Second
	value := strings.Repeat("v", 2<<10)
	for _, tc := range []struct {
		name    string
		records int
		stalled bool
	}{
		{"small", 1, true},
		{"large", 20_000, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be := &holdBackend{Backend: null.Open(), applied: make(chan struct{}), release: make(chan struct{})}
			f := newFixture(t, be, nil)
			ops := make([]Op, tc.records)
			for i := range ops {
				ops[i] = put("m", fmt.Sprintf("k%06d", i), value, ts(t0, uint32(i), "c"))
			}
			be.holdApply.Store(true)
			done := make(chan error, 1)
			go func() {
				_, err := f.s.Apply(context.Background(), ops, 1)
				done <- err
			}()
			<-be.applied
			m := *f.s.applyingMark.Load()
			m.since = time.Now().Add(-waited)
			f.s.applyingMark.Store(&m)
			err := f.s.CommitStalled(d)
			close(be.release)
			if werr := <-done; werr != nil {
				t.Fatal(werr)
			}
			if (err != nil) != tc.stalled {
				t.Fatalf("CommitStalled(%s) of %d records that waited %s: %v, want stalled %v", d, tc.records, waited, err, tc.stalled)
			}
		})
	}
}
