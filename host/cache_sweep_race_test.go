package host

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// A sweep beside a compile (a load starting while another tenant's module
// compiles) does not remove the record that compile writes as it ends:
// the sweep lists the entries before the entry is written and the records
// after its record is, so the record looks as if its entries were all
// gone. Without the record, the entry is unchecked, and the next start
// removes it and compiles the module again.
func TestCompileCache_sweepBesideKeepsAFreshRecord(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, err := newCompileCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer c.wz.Close(ctx)
	// Files the sweep looks at between listing the entries and listing
	// the records (recent temporary files, which it keeps): they widen
	// the window, as a busy cache directory does.
	for i := range 4000 {
		if err := os.WriteFile(filepath.Join(c.entries, fmt.Sprintf("t%d.tmp", i)), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	name := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	since := time.Now()
	lost := 0
	for i := range 40 {
		module, entry := name(fmt.Sprint("module", i)), name(fmt.Sprint("entry", i))
		var wg sync.WaitGroup
		wg.Go(func() { c.sweep(hclog.NewNullLogger(), since) })
		wg.Go(func() {
			time.Sleep(time.Duration(i%8) * 100 * time.Microsecond)
			// What a compile ending does: wazero writes the entry, then
			// the host records it.
			if err := os.WriteFile(filepath.Join(c.entries, entry), []byte("code"), 0o600); err != nil {
				t.Error(err)
			}
			if err := c.record(module, []string{entry}); err != nil {
				t.Error(err)
			}
		})
		wg.Wait()
		if _, err := os.Stat(filepath.Join(c.sums, module)); err != nil {
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("a sweep beside compiles removed %d of 40 records just written", lost)
	}
}
