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
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/plugins/postgres"
	"github.com/topgun-go/topgun/plugins/postgres/pgtest"
	"github.com/topgun-go/topgun/plugins/redb"
	"github.com/topgun-go/topgun/server/hlc"
	"github.com/topgun-go/topgun/server/record"
)

// The crash test: a child process writes continuously through the store and
// prints every acknowledged write; the parent SIGKILLs it at random moments,
// reopens the storage and checks that every acknowledged write is there with
// its value. TOPGUN_CRASH_KILLS sets the number of kills (default 20);
// `make crash-test` runs it longer.

const crashChildEnv = "TOPGUN_CRASH_CHILD"

// crashSpec names how the child and the parent open the same storage.
type crashSpec struct {
	kind string // redb | postgres | plugin
	arg  string // file path, database URL, or "wasm|datadir"
}

func (c crashSpec) String() string { return c.kind + "=" + c.arg }

func parseCrashSpec(s string) crashSpec {
	kind, arg, _ := strings.Cut(s, "=")
	return crashSpec{kind, arg}
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

// TestCrashChild is the child's body; it only runs when re-executed by
// runCrash.
func TestCrashChild(t *testing.T) {
	spec := os.Getenv(crashChildEnv)
	if spec == "" {
		t.Skip("helper process for the crash test")
	}
	run := os.Getenv("TOPGUN_CRASH_RUN")
	ctx := context.Background()
	be, err := openCrashBackend(ctx, parseCrashSpec(spec))
	if err != nil {
		fmt.Printf("ERR open: %v\n", err)
		os.Exit(3)
	}
	clock, _ := hlc.New("crash-"+run, nil)
	s, err := Open(ctx, be, &Options{Clock: clock, Logger: hclog.NewNullLogger()})
	if err != nil {
		fmt.Printf("ERR store: %v\n", err)
		os.Exit(3)
	}
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				n := 1 + i%5 // batches of 1..5 ops
				ops := make([]Op, n)
				for j := range ops {
					key := fmt.Sprintf("%s-%d-%d-%d", run, w, i, j)
					ops[j] = Op{Map: "crash", Key: key, Kind: OpPut, Value: record.StringValue("v" + key)}
				}
				res, err := s.Apply(ctx, ops, 0)
				if err != nil {
					fmt.Printf("ERR apply: %v\n", err)
					os.Exit(3)
				}
				mu.Lock()
				for j, r := range res {
					if r.Err == nil {
						fmt.Fprintf(out, "ACK %s\n", ops[j].Key)
					}
				}
				out.Flush()
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
}

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
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	t.Logf("crash test on %s: %d kills, seed %d", spec.kind, kills, seed)
	acked := map[string]bool{}
	for k := 0; k < kills; k++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v=false")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+spec.String(), "TOPGUN_CRASH_RUN=r"+strconv.Itoa(k))
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
		deadline := time.After(30 * time.Second)
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
				t.Fatalf("child made no progress in 30s")
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
