//go:build !wasip1

package logstore

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
	"sync"
	"testing"
	"time"

	"github.com/topgun-go/topgun/abi"
)

// The crash test runs this test binary again as a child (TestCrashChild)
// that applies batches to a store and prints "ack N" after batch N is
// acknowledged; the parent kills it with SIGKILL at a random moment, reopens
// the store and checks it.
const crashDirEnv = "LOGSTORE_CRASH_CHILD_DIR"

// Batches are deterministic in their number, so the parent can compute the
// exact expected state after any prefix of them. Batch i puts 1-12 records
// of up to 3 KiB into map "m<i%3>", deletes the records of batch i-3 (same
// map), and puts meta/last = i. The state after batches 0..M is therefore
// the records of batches M-2..M and meta/last = M.
type crashRecord struct {
	mapName, key string
	value        []byte
	exp          int64
}

func crashBatchRecords(i int) []crashRecord {
	rng := rand.New(rand.NewPCG(uint64(i), 0x10657023))
	n := 1 + rng.IntN(12)
	recs := make([]crashRecord, n)
	for j := range recs {
		v := make([]byte, rng.IntN(3<<10))
		for k := range v {
			v[k] = byte(rng.Uint32())
		}
		var exp int64
		if rng.IntN(4) == 0 {
			exp = int64(1_000_000 + i)
		}
		recs[j] = crashRecord{mapName: fmt.Sprintf("m%d", i%3), key: fmt.Sprintf("b%08d/%02d", i, j), value: v, exp: exp}
	}
	return recs
}

func crashBatch(i int) *abi.Batch {
	b := &abi.Batch{Now: int64(i + 1)}
	for _, r := range crashBatchRecords(i) {
		b.Put(r.mapName, r.key, false, r.value, r.exp)
	}
	if i >= 3 {
		for _, r := range crashBatchRecords(i - 3) {
			b.Delete(r.mapName, r.key, false)
		}
	}
	b.Put("meta", "last", false, []byte(strconv.Itoa(i)), 0)
	return b
}

func crashOptions(t testing.TB) *Options {
	o := testOptions(t)
	o.CompactMinBytes = 64 << 10 // compact often, so kills land in compactions too
	return o
}

// lastBatch returns the number of the last batch in the store, or -1.
func lastBatch(t testing.TB, s *Store) int {
	t.Helper()
	r, err := s.Get(context.Background(), "meta", false, []string{"last"})
	if err != nil {
		t.Fatalf("get meta/last: %v", err)
	}
	if len(r) == 0 {
		return -1
	}
	n, err := strconv.Atoi(string(r[0].Value))
	if err != nil {
		t.Fatalf("meta/last = %q: %v", r[0].Value, err)
	}
	return n
}

// crashKills returns the number of kills: TOPGUN_CRASH_KILLS when set (for
// a longer run by hand; make crash-test runs ./server/store only), else def.
func crashKills(t *testing.T, def int) int {
	v := os.Getenv("TOPGUN_CRASH_KILLS")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("TOPGUN_CRASH_KILLS=%q is not a positive integer", v)
	}
	return n
}

// TestCrashChild is the child of TestCrash_killAndReopen; it does nothing
// in a normal test run.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("runs only as the child of TestCrash_killAndReopen")
	}
	s, err := Open(context.Background(), dir, crashOptions(t))
	if err != nil {
		fmt.Printf("error %v\n", err)
		os.Exit(3)
	}
	next := lastBatch(t, s) + 1
	fmt.Printf("ready %d\n", next)
	deadline := time.Now().Add(20 * time.Second)
	for i := next; i < next+10_000 && time.Now().Before(deadline); i++ {
		if err := s.Apply(context.Background(), crashBatch(i)); err != nil {
			fmt.Printf("error %v\n", err)
			os.Exit(3)
		}
		// os.Stdout is unbuffered: once Printf returns, the line is in the
		// pipe and reaches the parent even if this process is killed.
		fmt.Printf("ack %d\n", i)
	}
	os.Exit(0)
}

// TestCrash_killAndReopen kills a writing child process about ten times at
// random moments and checks after each kill that every acknowledged batch is
// present and that no batch is partly visible.
func TestCrash_killAndReopen(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes; skipped in -short mode")
	}
	dir := t.TempDir()
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 1))
	t.Logf("seed %d", seed)
	rounds := crashKills(t, 10)
	maxAcked := -1
	// A kill may land before the child applied anything; where batches are
	// slow (a loaded machine, a slow fsync) few fit before the kill, so
	// more rounds run, up to ten times as many, until rounds batches were.
	for round := 0; round < rounds || (maxAcked < rounds && round < 10*rounds); round++ {
		acked, killed := runCrashChild(t, dir, time.Duration(5+rng.IntN(120))*time.Millisecond)
		if acked > maxAcked {
			maxAcked = acked
		}
		s, err := Open(context.Background(), dir, crashOptions(t))
		if err != nil {
			t.Fatalf("round %d: reopen after kill: %v", round, err)
		}
		last := lastBatch(t, s)
		if last < maxAcked || last > maxAcked+1 {
			t.Fatalf("round %d: store holds batches up to %d, but %d was acknowledged (at most one more may have been in flight)", round, last, maxAcked)
		}
		checkCrashState(t, s, last)
		st := s.Stats()
		s.Close()
		t.Logf("round %d: killed=%v, acked up to %d, store has up to %d, %d records, log %d bytes, live %d",
			round, killed, maxAcked, last, st.Records, st.FileBytes, st.LiveBytes)
		maxAcked = last // the next child continues after what is stored
	}
	if maxAcked < rounds {
		t.Fatalf("only %d batches were applied in %d rounds: the test did not exercise much", maxAcked+1, rounds)
	}
}

// runCrashChild starts the child, kills it after delay (counted from its
// "ready" line), and returns the last acknowledged batch.
func runCrashChild(t *testing.T, dir string, delay time.Duration) (acked int, killed bool) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
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
	var mu sync.Mutex
	acked = -1
	var lines []string
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			mu.Lock()
			switch {
			case strings.HasPrefix(line, "ready "):
				close(ready)
			case strings.HasPrefix(line, "ack "):
				n, _ := strconv.Atoi(strings.TrimPrefix(line, "ack "))
				acked = n
			default:
				lines = append(lines, line)
			}
			mu.Unlock()
		}
	}()
	select {
	case <-ready:
		time.Sleep(delay)
		killed = cmd.Process.Kill() == nil
	case <-readDone:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("child did not start within 60s; stderr:\n%s", stderr.String())
	}
	<-readDone
	werr := cmd.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(lines) > 0 || (!killed && werr != nil) {
		t.Fatalf("child failed (%v): %s\nstderr:\n%s", werr, strings.Join(lines, "\n"), stderr.String())
	}
	return acked, killed
}

// checkCrashState checks that the store holds exactly the state after
// batches 0..last.
func checkCrashState(t *testing.T, s *Store, last int) {
	t.Helper()
	want := map[string]map[string]crashRecord{"m0": {}, "m1": {}, "m2": {}}
	for i := max(0, last-2); i <= last; i++ {
		for _, r := range crashBatchRecords(i) {
			want[r.mapName][r.key] = r
		}
	}
	for m, recs := range want {
		got := scanAll(t, s, m, false)
		if len(got) != len(recs) {
			t.Fatalf("map %s has %d records, want %d (state after batch %d): a batch is partly visible or lost", m, len(got), len(recs), last)
		}
		for _, r := range got {
			w, ok := recs[r.Key]
			if !ok {
				t.Fatalf("map %s has unexpected key %q after batch %d", m, r.Key, last)
			}
			if !bytes.Equal(r.Value, w.value) || r.ExpirationTime != w.exp {
				t.Fatalf("map %s key %q has a wrong value or expiration after batch %d", m, r.Key, last)
			}
		}
	}
}
