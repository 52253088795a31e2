package store

import (
	"bufio"
	"context"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/internal/testbin"
	"github.com/topgun-go/topgun/plugins/postgres"
	"github.com/topgun-go/topgun/plugins/postgres/pgtest"
	"github.com/topgun-go/topgun/plugins/redb"
	"github.com/topgun-go/topgun/server/hlc"
)

// The crash test: a child process writes continuously through the store and
// prints every acknowledged write; the parent SIGKILLs it at random moments,
// reopens the storage and checks that every acknowledged write is there with
// its value. TOPGUN_CRASH_KILLS sets the number of kills (default 20);
// `make crash-test` runs it longer.

// crashSpec names how the child and the parent open the same storage.
type crashSpec struct {
	kind string // redb | postgres | plugin
	arg  string // file path, database URL, or "wasm|datadir"
}

// crashOpeners lets other files (the plugin variant) add kinds.
var crashOpeners = map[string]func(ctx context.Context, arg string) (abi.Backend, error){
	"redb": func(ctx context.Context, arg string) (abi.Backend, error) {
		return redb.Open(ctx, arg, nil)
	},
	"postgres": func(ctx context.Context, arg string) (abi.Backend, error) {
		return postgres.Open(ctx, arg, nil)
	},
}

func openCrashBackend(ctx context.Context, spec crashSpec) (abi.Backend, error) {
	open := crashOpeners[spec.kind]
	if open == nil {
		return nil, fmt.Errorf("unknown crash backend %q", spec.kind)
	}
	return open(ctx, spec.arg)
}

func TestMain(m *testing.M) {
	code := m.Run()
	testbin.Cleanup()
	os.Exit(code)
}

// buildCrashChild builds testdata/crashchild without the race detector,
// once per test process.
func buildCrashChild(t *testing.T) string { return testbin.Build(t, "./testdata/crashchild") }

func crashKills(t *testing.T) int {
	if v := os.Getenv("TOPGUN_CRASH_KILLS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("TOPGUN_CRASH_KILLS=%q is not a positive number", v)
		}
		return n
	}
	return 20
}

// runCrash runs the kill loop against spec.
func runCrash(t *testing.T, spec crashSpec) {
	kills := crashKills(t)
	child := buildCrashChild(t)
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	t.Logf("crash test on %s: %d kills, seed %d", spec.kind, kills, seed)
	acked := map[string]bool{}
	for k := 0; k < kills; k++ {
		cmd := exec.Command(child, spec.kind, spec.arg, "r"+strconv.Itoa(k))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1024)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		// Kill at a random moment once the child has acknowledged something.
		delay := time.Duration(20+rng.Intn(200)) * time.Millisecond
		var killAt <-chan time.Time
		deadline := time.After(120 * time.Second)
		n := 0
	read:
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					break read
				}
				if key, ok := strings.CutPrefix(l, "ACK "); ok {
					acked[key] = true
					n++
					if killAt == nil {
						killAt = time.After(delay)
					}
				} else if strings.HasPrefix(l, "ERR") {
					cmd.Process.Kill()
					t.Fatalf("child: %s", l)
				}
			case <-killAt:
				cmd.Process.Signal(syscall.SIGKILL)
				killAt = nil
			case <-deadline:
				cmd.Process.Kill()
				t.Fatalf("child made no progress in 120s")
			}
		}
		cmd.Wait()
		if n == 0 {
			t.Fatalf("kill %d: child acknowledged nothing", k)
		}
	}
	// Reopen (as the next server start would) and check every ack.
	ctx := context.Background()
	be, err := openCrashBackend(ctx, spec)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer be.Close()
	clock, _ := hlc.New("checker", nil)
	s, err := Open(ctx, be, &Options{Clock: clock, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("store reopen: %v", err)
	}
	defer s.Close()
	keys := make([]string, 0, len(acked))
	for k := range acked {
		keys = append(keys, k)
	}
	missing := 0
	for len(keys) > 0 {
		n := min(len(keys), 1000)
		es, err := s.load(ctx, "crash", keys[:n])
		if err != nil {
			t.Fatalf("read back: %v", err)
		}
		got := map[string]string{}
		for _, e := range es {
			got[e.Key] = e.Record.LWW.Value.Text()
		}
		for _, k := range keys[:n] {
			if got[k] != "v"+k {
				missing++
				if missing <= 10 {
					t.Errorf("acknowledged write %q lost (read %q)", k, got[k])
				}
			}
		}
		keys = keys[n:]
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged writes lost (seed %d)", missing, len(acked), seed)
	}
	t.Logf("%d kills, %d acknowledged writes, all present", kills, len(acked))
}

func TestCrash_redb(t *testing.T) {
	runCrash(t, crashSpec{"redb", filepath.Join(t.TempDir(), "crash.redb")})
}

func TestCrash_postgres(t *testing.T) {
	runCrash(t, crashSpec{"postgres", pgtest.FreshSchema(t)})
}
