//go:build linux || darwin

package redb

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/topgun-go/topgun/abi"
)

// helperEnvFileSize is the file size limit (RLIMIT_FSIZE, in bytes) under
// which TestHelperFileSizeLimit creates the file at helperEnvPath.
const helperEnvFileSize = "TOPGUN_REDB_HELPER_FSIZE"

// TestHelperFileSizeLimit is not a test: it is the child process of
// TestOpen_creationCutShortStartsAfresh. It creates the database under a
// file size limit, which stops bbolt's first write as a full disk would,
// and exits 0 when Open fails as it should.
func TestHelperFileSizeLimit(t *testing.T) {
	limit := os.Getenv(helperEnvFileSize)
	if limit == "" {
		t.Skip("helper process for TestOpen_creationCutShortStartsAfresh")
	}
	n, err := strconv.ParseUint(limit, 10, 64)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(2)
	}
	// Go ignores SIGXFSZ, so a write past the limit fails with EFBIG.
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: n, Max: n}); err != nil {
		fmt.Fprintln(os.Stderr, "helper: setrlimit:", err)
		os.Exit(2)
	}
	b, err := Open(context.Background(), os.Getenv(helperEnvPath), nil)
	if err == nil {
		_ = b.Close()
		fmt.Fprintln(os.Stderr, "helper: open succeeded under a file size limit of", n)
		os.Exit(3)
	}
	fmt.Fprintln(os.Stderr, "helper: open:", err)
	os.Exit(0)
}

// A first start on a disk that fills during bbolt's first write leaves a
// file shorter than its header claims, which never held data. Once there
// is space again the next start must create the database, not call the
// file corrupt and send the operator to restore a backup that cannot
// exist.
func TestOpen_creationCutShortStartsAfresh(t *testing.T) {
	t.Parallel()
	for _, limit := range []int64{100, 4096, 10000, 12288} {
		t.Run(strconv.FormatInt(limit, 10), func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			path := filepath.Join(t.TempDir(), "new.redb")
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperFileSizeLimit$", "-test.count=1")
			cmd.Env = append(os.Environ(), helperEnvFileSize+"="+strconv.FormatInt(limit, 10), helperEnvPath+"="+path)
			cmd.Stderr = tWriter{t}
			if err := cmd.Run(); err != nil {
				t.Fatalf("helper: %v", err)
			}
			if st, err := os.Stat(path); err != nil || st.Size() != limit {
				t.Fatalf("the helper left %v (%v); want a file of %d bytes", st, err, limit)
			}
			b, err := Open(ctx, path, testOptions(t))
			if err != nil {
				t.Fatalf("Open once the limit is gone: %v", err)
			}
			defer b.Close()
			mustApply(t, b, &abi.Batch{Now: 1, Mutations: []abi.Mutation{{Kind: abi.OpPut, Map: "m", Key: "k", Value: []byte("v"), ExpirationTime: 5}}})
			checkConsistency(t, b)
		})
	}
}
