package redb

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/topgun-go/topgun/abi"
)

// The helper process is this test binary run again with
// -test.run=TestHelperProcess and these variables set.
const (
	helperEnvMode = "TOPGUN_REDB_HELPER_MODE" // "hold" or "write"
	helperEnvPath = "TOPGUN_REDB_HELPER_PATH"
)

// helperRecords is what the "write" helper stores.
const helperRecords = 500

// TestHelperProcess is not a test: it is the child process of the tests
// below. "hold" opens the file, prints "ready" and keeps it open until its
// stdin closes; "write" stores helperRecords records and exits.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnvMode)
	if mode == "" {
		t.Skip("helper process for the multi-process tests")
	}
	path := os.Getenv(helperEnvPath)
	ctx := context.Background()
	b, err := Open(ctx, path, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper: open:", err)
		os.Exit(2)
	}
	switch mode {
	case "hold":
		fmt.Println("ready")
		_, _ = io.Copy(io.Discard, os.Stdin)
	case "write":
		batch := &abi.Batch{Now: 42}
		for i := range helperRecords {
			batch.Put("child-map", fmt.Sprintf("key-%04d", i), i%2 == 1, fmt.Appendf(nil, "value-%d", i), int64(1000+i))
		}
		if err := b.Apply(ctx, batch); err != nil {
			fmt.Fprintln(os.Stderr, "helper: apply:", err)
			os.Exit(3)
		}
	default:
		fmt.Fprintln(os.Stderr, "helper: unknown mode", mode)
		os.Exit(4)
	}
	if err := b.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "helper: close:", err)
		os.Exit(5)
	}
	os.Exit(0)
}

func helperCmd(t *testing.T, ctx context.Context, mode, path string) *exec.Cmd {
	t.Helper()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnvMode+"="+mode, helperEnvPath+"="+path)
	cmd.Stderr = tWriter{t}
	return cmd
}

func TestOpen_lockedByAnotherProcess(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	path := filepath.Join(t.TempDir(), "shared.redb")
	cmd := helperCmd(t, ctx, "hold", path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		t.Fatalf("helper did not get ready: %q, %v", line, err)
	}

	start := time.Now()
	_, err = Open(ctx, path, testOptions(t))
	elapsed := time.Since(start)
	if err == nil {
		t.Fatal("a second process opened a file held by another")
	}
	t.Logf("second open failed after %v: %v", elapsed, err)
	wantCode(t, err, abi.CodeUnavailable)
	if !errors.Is(err, bolt.ErrTimeout) {
		t.Errorf("error %v does not keep bbolt's ErrTimeout as its cause", err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the file %s", err, path)
	}
	if elapsed > 2500*time.Millisecond {
		t.Errorf("second open took %v to fail, want about a second", elapsed)
	}

	// Once the holder exits, the file opens.
	_ = stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
	b, err := Open(ctx, path, testOptions(t))
	if err != nil {
		t.Fatalf("open after the holder exited: %v", err)
	}
	_ = b.Close()
}

func TestProcess_dataSurvives(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	path := filepath.Join(t.TempDir(), "child.redb")
	if out, err := helperCmd(t, ctx, "write", path).Output(); err != nil {
		t.Fatalf("writer process: %v (%s)", err, out)
	}
	b, err := Open(ctx, path, testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	checkConsistency(t, b)
	for _, backup := range []bool{false, true} {
		recs := scanAll(t, b, "child-map", backup, 0, 0)
		if len(recs) != helperRecords/2 {
			t.Fatalf("backup=%t: %d records, want %d", backup, len(recs), helperRecords/2)
		}
		for _, r := range recs {
			var i int
			if _, err := fmt.Sscanf(r.Key, "key-%d", &i); err != nil {
				t.Fatal(err)
			}
			if string(r.Value) != fmt.Sprintf("value-%d", i) || r.ExpirationTime != int64(1000+i) || r.CreatedAt != 42 || r.UpdatedAt != 42 || (i%2 == 1) != backup {
				t.Fatalf("record %+v", r)
			}
		}
	}
	exp, err := b.ListExpired(ctx, 1000+helperRecords, helperRecords+1)
	if err != nil || len(exp) != helperRecords {
		t.Fatalf("ListExpired = %d records, %v; want %d", len(exp), err, helperRecords)
	}
}
