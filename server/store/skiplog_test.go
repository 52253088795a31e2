package store

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/internal/testbin"
	"github.com/topgun-go/topgun/plugins/null"
)

// Records the store cannot read come from its backend (a faulty or
// hostile plugin, damaged storage), so their count is the backend's
// choice: warning once per record let a plugin whose own log lines are
// rate-limited write a line to the process's log for each record it
// answers. The warnings are rate-limited,
// and the count of those left out is kept.
func TestStore_skippedRecordsDoNotFloodTheLog(t *testing.T) {
	be := null.Open()
	const n = 5000
	b := &abi.Batch{Now: t0}
	keys := make([]string, n)
	for i := range n {
		keys[i] = fmt.Sprintf("bad%05d", i)
		b.Put("m", keys[i], false, []byte{0xc1}, 0)
	}
	if err := be.Apply(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	logs := &testbin.LockedBuffer{}
	f := newFixture(t, be, func(o *Options) {
		o.Logger = hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Info})
	})
	if leaf, _, _ := f.s.Leaf(context.Background(), "m", KindLWW, leafPath(keys[0])); len(leaf) != 0 {
		t.Fatalf("an undecodable record was indexed: %+v", leaf)
	}
	out := logs.String()
	if c := strings.Count(out, "skipping undecodable record"); c > 10 {
		t.Fatalf("%d warnings for %d undecodable records; want a few", c, n)
	}
	if !strings.Contains(out, fmt.Sprintf("skipped=%d", n)) {
		t.Errorf("the rebuild's log does not count the %d records skipped:\n%s", n, out)
	}
}
