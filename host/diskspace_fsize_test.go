//go:build linux || darwin

package host

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/topgun-go/topgun/abi"
)

// helperEnvFsize names the wasm file TestHelperSpaceFileSizeLimit loads,
// and helperEnvFsizeDir its data directory.
const (
	helperEnvFsize    = "TOPGUN_HOST_HELPER_FSIZE_WASM"
	helperEnvFsizeDir = "TOPGUN_HOST_HELPER_FSIZE_DIR"
)

// TestHelperSpaceFileSizeLimit is not a test: it is the child process of
// TestNoteSpace_fileSizeLimit. It loads logstore, lowers its file size
// limit (RLIMIT_FSIZE) just above the log's size and writes until a write
// fails, then prints the error.
func TestHelperSpaceFileSizeLimit(t *testing.T) {
	wasm, dir := os.Getenv(helperEnvFsize), os.Getenv(helperEnvFsizeDir)
	if wasm == "" {
		t.Skip("helper process for TestNoteSpace_fileSizeLimit")
	}
	o := DefaultOptions()
	o.DataDir = dir
	o.CallTimeout = time.Minute
	b, err := Load(context.Background(), wasm, o)
	if err != nil {
		fmt.Println("load:", err)
		os.Exit(2)
	}
	st, err := os.Stat(filepath.Join(dir, "logstore.log"))
	if err != nil {
		fmt.Println(err)
		os.Exit(2)
	}
	// Go ignores SIGXFSZ, so a write past the limit fails with EFBIG,
	// which wazero hands the plugin as EIO.
	n := uint64(st.Size()) + 8<<10
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: n, Max: n}); err != nil {
		fmt.Println("setrlimit:", err)
		os.Exit(2)
	}
	for i := 0; i < 100; i++ {
		batch := &abi.Batch{Now: int64(i + 1)}
		batch.Put("m", strconv.Itoa(i), false, make([]byte, 1000), 0)
		if err := b.Apply(context.Background(), batch); err != nil {
			fmt.Printf("apply: code %d: %v\n", abi.CodeOf(err), err)
			os.Exit(0)
		}
	}
	fmt.Println("no write failed under a file size limit of", n)
	os.Exit(3)
}

// Under a file size limit, writes fail with EFBIG, which reaches a wasm
// plugin as EIO too: logstore says "I/O error", and the host must name
// the limit, keeping logstore's code (Unavailable).
func TestNoteSpace_fileSizeLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process that loads logstore; skipped in -short mode")
	}
	wasm := logstoreWasm(t)
	// Compiled here first, into the cache the child shares.
	o := testOptions(t)
	o.DataDir = t.TempDir()
	_ = mustLoad(t, wasm, o).Close()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperSpaceFileSizeLimit$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnvFsize+"="+wasm, helperEnvFsizeDir+"="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, want := range []string{
		"apply: code 4: plugin logstore.wasm: apply_runs: logstore: write batch to /data/logstore.log; nothing of the batch was applied: write /data/logstore.log: I/O error; ",
		"I/O error; " + filepath.Join(root, "logstore.log") + " holds ",
		"the server's file size limit (RLIMIT_FSIZE, ulimit -f) is ",
		"which a wasm plugin sees as an I/O error; raise the limit\n",
	} {
		if !strings.Contains(s, want) {
			t.Fatalf("the child's failed write does not contain %q:\n%s", want, s)
		}
	}
}
