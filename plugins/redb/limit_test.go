//go:build linux || darwin

package redb

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

// helperEnvCommitFileSize is the headroom (bytes) above the database's
// size under which TestHelperCommitFileSizeLimit commits.
const helperEnvCommitFileSize = "TOPGUN_REDB_HELPER_COMMIT_FSIZE"

// TestHelperCommitFileSizeLimit is not a test: it is the child process of
// TestApply_fileSizeLimitIsResourceExhausted. It stores a record, lowers
// its file size limit to the database's size plus the given headroom,
// commits a batch the file cannot grow for, and prints the error's code.
func TestHelperCommitFileSizeLimit(t *testing.T) {
	headroom := os.Getenv(helperEnvCommitFileSize)
	if headroom == "" {
		t.Skip("helper process for TestApply_fileSizeLimitIsResourceExhausted")
	}
	fail := func(args ...any) {
		fmt.Fprintln(os.Stderr, append([]any{"helper:"}, args...)...)
		os.Exit(2)
	}
	n, err := strconv.ParseUint(headroom, 10, 64)
	if err != nil {
		fail(err)
	}
	path := os.Getenv(helperEnvPath)
	ctx := context.Background()
	b, err := Open(ctx, path, nil)
	if err != nil {
		fail("open:", err)
	}
	small := &abi.Batch{Now: 1}
	small.Put("m", "first", false, []byte("v"), 0)
	if err := b.Apply(ctx, small); err != nil {
		fail("apply:", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		fail(err)
	}
	// Go ignores SIGXFSZ, so a write or truncate past the limit fails
	// with EFBIG.
	limit := uint64(st.Size()) + n
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: limit, Max: limit}); err != nil {
		fail("setrlimit:", err)
	}
	big := &abi.Batch{Now: 2}
	for i := range 64 {
		big.Put("m", fmt.Sprintf("big-%02d", i), false, make([]byte, 64<<10), 0)
	}
	err = b.Apply(ctx, big)
	fmt.Printf("%d\n", abi.CodeOf(err))
	fmt.Fprintln(os.Stderr, "helper: apply under the limit:", err)
	if err := b.Close(); err != nil {
		fail("close:", err)
	}
	os.Exit(0)
}

// A commit the database file cannot grow for under the process's file
// size limit (ulimit -f) is a full disk in all but name: it must say
// resource exhausted, so that the server splits a group commit, not
// internal (bbolt reports the failed resize without its EFBIG). The file
// must stay consistent, without the batch, and take writes once the limit
// is gone.
func TestApply_fileSizeLimitIsResourceExhausted(t *testing.T) {
	t.Parallel()
	for _, headroom := range []int64{0, 4096, 64 << 10} {
		t.Run(strconv.FormatInt(headroom, 10), func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			path := filepath.Join(t.TempDir(), "limit.redb")
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperCommitFileSizeLimit$", "-test.count=1")
			cmd.Env = append(os.Environ(), helperEnvCommitFileSize+"="+strconv.FormatInt(headroom, 10), helperEnvPath+"="+path)
			cmd.Stderr = tWriter{t}
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("helper: %v", err)
			}
			if got := strings.TrimSpace(string(out)); got != strconv.Itoa(int(abi.CodeResourceExhausted)) {
				t.Fatalf("apply under the file size limit: code %s, want %d (resource exhausted)", got, abi.CodeResourceExhausted)
			}
			b, err := Open(ctx, path, testOptions(t))
			if err != nil {
				t.Fatalf("Open once the limit is gone: %v", err)
			}
			defer b.Close()
			checkConsistency(t, b)
			if recs, err := b.Get(ctx, "m", false, []string{"first", "big-00", "big-63"}); err != nil || len(recs) != 1 {
				t.Fatalf("after the failed commit: %d of first, big-00, big-63 stored (%v); want first only", len(recs), err)
			}
			mustApply(t, b, &abi.Batch{Now: 3, Mutations: []abi.Mutation{{Kind: abi.OpPut, Map: "m", Key: "after", Value: make([]byte, 64<<10)}}})
			checkConsistency(t, b)
		})
	}
}
