//go:build linux

package host

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// A tenant that opens files in its data directory and keeps them open
// stops at MaxOpenFiles: before, it took every descriptor the process may
// have, and every other tenant's file opens (and the server's accepts)
// failed with EMFILE until it was closed. The process's limit is lowered
// for the test, so that reaching it is quick.
func TestTenants_openFilesPerTenant(t *testing.T) {
	path := buildTestPlugin(t, "tenant")
	base := t.TempDir()
	var tenants []*Backend
	for _, name := range []string{"hog", "victim"} {
		o := testOptions(t)
		o.Logger = hclog.NewNullLogger()
		o.Config = map[string]string{"tenant": name}
		o.DataDir = filepath.Join(base, name)
		if err := os.Mkdir(o.DataDir, 0o700); err != nil {
			t.Fatal(err)
		}
		tenants = append(tenants, mustLoad(t, path, o))
	}
	hog, victim := tenants[0], tenants[1]
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skip(err)
	}
	used, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip(err)
	}
	low := lim
	low.Cur = uint64(len(used)) + MaxOpenFiles + 500
	if low.Cur > lim.Cur {
		t.Skipf("the process may open %d files, fewer than the test needs", lim.Cur)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Skip(err)
	}
	// Runs after the backends' Close (cleanups run last first).
	t.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim) })
	got, err := tenantGet(hog, "fds", "/data/f")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the hog opened: %s", got)
	if n, _, _ := strings.Cut(got, " "); n != strconv.Itoa(MaxOpenFiles-1) {
		// The directory itself, open since the first call, counts.
		t.Errorf("the hog opened %s files, want %d", n, MaxOpenFiles-1)
	}
	if got, err := tenantGet(victim, "write", "/data/f"); err != nil || got != "ok: " {
		t.Errorf("beside the hog, the victim's write = %q, %v", got, err)
	}
	if got, err := tenantGet(victim, "read", "/data/f"); err != nil || got != "ok: victim" {
		t.Errorf("beside the hog, the victim's read = %q, %v", got, err)
	}
	// The hog's files are released with its instance.
	if err := hog.Close(); err != nil {
		t.Fatal(err)
	}
	if now, err := os.ReadDir("/proc/self/fd"); err != nil || len(now) > len(used)+10 {
		t.Errorf("after the hog closed, %d files are open, %d before (%v)", len(now), len(used), err)
	}
}
