//go:build !wasip1

package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/host"
	"github.com/topgun-go/topgun/host/hosttest"
)

// The kill test runs this test binary again as a child that loads the wasm
// plugin through the host, as the server does, and applies batches until it
// is killed with SIGKILL.
const (
	killWasmEnv = "LOGSTORE_KILL_CHILD_WASM"
	killDirEnv  = "LOGSTORE_KILL_CHILD_DIR"
)

// Batch i puts k<i> = i and meta/last = i, and deletes k<i-5>: after batches
// 0..M the map holds exactly k<M-4> .. k<M>.
func killBatch(i int) *abi.Batch {
	b := &abi.Batch{Now: int64(i + 1)}
	b.Put("m", fmt.Sprintf("k%08d", i), false, []byte(strconv.Itoa(i)), 0)
	if i >= 5 {
		b.Delete("m", fmt.Sprintf("k%08d", i-5), false)
	}
	b.Put("meta", "last", false, []byte(strconv.Itoa(i)), 0)
	return b
}

func loadForKill(wasm, dir string) (*host.Backend, error) {
	return host.Load(context.Background(), wasm, &host.Options{
		DataDir:     dir,
		Config:      map[string]string{"compact_min_bytes": "4096"},
		CallTimeout: time.Minute, // a loaded machine must not fail a call
	})
}

func lastOf(t testing.TB, b abi.Backend) int {
	t.Helper()
	r, err := b.Get(context.Background(), "meta", false, []string{"last"})
	if err != nil {
		t.Fatalf("get meta/last: %v", err)
	}
	if len(r) == 0 {
		return -1
	}
	n, err := strconv.Atoi(string(r[0].Value))
	if err != nil {
		t.Fatalf("meta/last = %q", r[0].Value)
	}
	return n
}

// TestKillChild is the child of TestHost_killKeepsData.
func TestKillChild(t *testing.T) {
	wasm, dir := os.Getenv(killWasmEnv), os.Getenv(killDirEnv)
	if wasm == "" || dir == "" {
		t.Skip("runs only as the child of TestHost_killKeepsData")
	}
	b, err := loadForKill(wasm, dir)
	if err != nil {
		fmt.Printf("error %v\n", err)
		os.Exit(3)
	}
	next := lastOf(t, b) + 1
	fmt.Printf("ready %d\n", next)
	deadline := time.Now().Add(20 * time.Second)
	for i := next; i < next+10_000 && time.Now().Before(deadline); i++ {
		if err := b.Apply(context.Background(), killBatch(i)); err != nil {
			fmt.Printf("error %v\n", err)
			os.Exit(3)
		}
		fmt.Printf("ack %d\n", i) // unbuffered: in the pipe before the next batch
	}
	os.Exit(0)
}

// TestHost_killKeepsData kills a process running the plugin under the host
// at random moments and checks that every acknowledged batch survives and
// no batch is half applied.
func TestHost_killKeepsData(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugin and starts child processes; skipped in -short mode")
	}
	wasm := hosttest.BuildPlugin(t, ".")
	// Compile the plugin into the compilation cache the children share
	// before the first one starts: compiling it takes tens of seconds on a
	// loaded machine, which the child's start must not have to include.
	if b, err := loadForKill(wasm, t.TempDir()); err != nil {
		t.Fatalf("load: %v", err)
	} else if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 2))
	t.Logf("seed %d", seed)
	rounds := 5
	if v := os.Getenv("TOPGUN_CRASH_KILLS"); v != "" { // a longer run by hand (make crash-test runs ./server/store only)
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("TOPGUN_CRASH_KILLS=%q is not a positive integer", v)
		}
		rounds = n
	}
	last := -1
	// A kill may land before the child applied anything; where batches are
	// slow (a loaded machine, a slow fsync) few fit before the kill, so
	// more rounds run, up to ten times as many, until rounds batches were.
	for round := 0; round < rounds || (last < rounds && round < 10*rounds); round++ {
		acked := runKillChild(t, wasm, dir, time.Duration(20+rng.IntN(200))*time.Millisecond)
		b, err := loadForKill(wasm, dir)
		if err != nil {
			t.Fatalf("round %d: load after kill: %v", round, err)
		}
		got := lastOf(t, b)
		if got < acked || got > max(acked, last)+1 {
			b.Close()
			t.Fatalf("round %d: the store holds batches up to %d, %d was acknowledged", round, got, acked)
		}
		var keys []string
		req := abi.ScanRequest{Map: "m"}
		for {
			p, err := b.Scan(context.Background(), req)
			if err != nil {
				t.Fatalf("scan: %v", err)
			}
			for _, r := range p.Records {
				keys = append(keys, r.Key+"="+string(r.Value))
			}
			if p.Cursor == nil {
				break
			}
			req.Cursor = p.Cursor
		}
		var want []string
		for i := max(0, got-4); i <= got; i++ {
			want = append(want, fmt.Sprintf("k%08d=%d", i, i))
		}
		if strings.Join(keys, " ") != strings.Join(want, " ") {
			t.Fatalf("round %d: map m = %v, want %v (state after batch %d)", round, keys, want, got)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: acked up to %d, store has up to %d", round, acked, got)
		last = got
	}
	if last < rounds {
		t.Fatalf("only %d batches in %d rounds: the test did not exercise much", last+1, rounds)
	}
}

// runKillChild starts the child, kills it delay after it is ready, and
// returns the last batch it acknowledged (-1 for none).
func runKillChild(t *testing.T, wasm, dir string, delay time.Duration) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), killWasmEnv+"="+wasm, killDirEnv+"="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	acked := -1
	var other []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "ready "):
				close(ready)
			case strings.HasPrefix(line, "ack "):
				acked, _ = strconv.Atoi(strings.TrimPrefix(line, "ack "))
			default:
				other = append(other, line)
			}
		}
	}()
	killed := false
	select {
	case <-ready:
		time.Sleep(delay)
		killed = cmd.Process.Kill() == nil
	case <-done:
	case <-time.After(5 * time.Minute): // only bounds a hang
		cmd.Process.Kill()
	}
	<-done // the reader has seen every line the child wrote
	werr := cmd.Wait()
	if len(other) > 0 || !killed {
		t.Fatalf("child was not killed as planned (%v): %s\nstderr:\n%s", werr, strings.Join(other, "\n"), stderr.String())
	}
	return acked
}
