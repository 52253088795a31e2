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
	"github.com/topgun-go/topgun/server/record"
)

// The crash test: a child process writes continuously through the store and
// prints every acknowledged write; the parent SIGKILLs it at random moments,
// reopens the storage and checks that every acknowledged write is there with
// its value. Besides new keys, the child overwrites and deletes a few hot
// keys; each child prints them as stored when it starts, so every kill is
// checked: an acknowledged overwrite never comes back as an older value, an
// acknowledged delete never as live. TOPGUN_CRASH_KILLS sets the number of
// kills (default 20); `make crash-test` runs it longer.

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
	hot := map[string]hotWrite{} // the latest acknowledged write of each hot key
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
				} else if rest, ok := strings.CutPrefix(l, "W "); ok {
					w, err := parseHotWrite(rest, "r"+strconv.Itoa(k))
					if err != nil {
						cmd.Process.Kill()
						t.Fatalf("child: %q: %v", l, err)
					}
					if cur, ok := hot[w.key]; !ok || w.ts.Compare(cur.ts) > 0 {
						hot[w.key] = w
					}
				} else if rest, ok := strings.CutPrefix(l, "HOT "); ok {
					if err := checkHot(hot, rest); err != nil {
						cmd.Process.Kill()
						t.Fatalf("after kill %d (seed %d): %v", k, seed, err)
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
	hotKeys := make([]string, 0, len(hot))
	for k := range hot {
		hotKeys = append(hotKeys, k)
	}
	es, err := s.load(ctx, "crash", hotKeys)
	if err != nil {
		t.Fatalf("read back: %v", err)
	}
	stored := map[string]*Entry{}
	for i := range es {
		stored[es[i].Key] = &es[i]
	}
	for _, k := range hotKeys {
		line := k + " none"
		if e := stored[k]; e != nil {
			line = hotLine(k, e.Record)
		}
		if err := checkHot(hot, line); err != nil {
			t.Errorf("store reopened (seed %d): %v", seed, err)
		}
	}
	if len(hot) == 0 {
		t.Fatal("no overwrite or delete was acknowledged")
	}
	t.Logf("%d kills, %d acknowledged writes, all present; %d hot keys as acknowledged", kills, len(acked), len(hot))
}

// hotWrite is an acknowledged overwrite or delete of a hot key.
type hotWrite struct {
	key string
	del bool
	ts  record.Timestamp
}

// parseHotWrite parses the child's "key put|del millis counter".
func parseHotWrite(s, node string) (hotWrite, error) {
	var w hotWrite
	var kind string
	if _, err := fmt.Sscanf(s, "%s %s %d %d", &w.key, &kind, &w.ts.Millis, &w.ts.Counter); err != nil {
		return w, err
	}
	w.ts.NodeID, w.del = node, kind == "del"
	return w, nil
}

// hotValue is the value the child writes with ts (crashchild's hotValue).
func hotValue(key string, ts record.Timestamp) string {
	return fmt.Sprintf("v%s@%d.%d.%s", key, ts.Millis, ts.Counter, ts.NodeID)
}

// hotLine formats a stored record as the child's HOT lines do.
func hotLine(key string, rv record.RecordValue) string {
	if rv.Kind != record.KindLWW {
		return key + " other 0 0 - -"
	}
	ts, kind, v := rv.LWW.Timestamp, "put", rv.LWW.Value.Text()
	if rv.LWW.Value.IsNull() {
		kind, v = "del", "-"
	}
	return fmt.Sprintf("%s %s %d %d %s %s", key, kind, ts.Millis, ts.Counter, ts.NodeID, v)
}

// checkHot checks a hot key's stored state ("key none" or "key put|del
// millis counter node value") against the latest acknowledged write of
// it: the stored one is that write, or a later one (sent before a kill,
// its ack not printed), never an earlier one; a stored value is the one
// written with its timestamp.
func checkHot(hot map[string]hotWrite, line string) error {
	f := strings.Fields(line)
	if len(f) < 2 {
		return fmt.Errorf("bad hot key line %q", line)
	}
	a, acked := hot[f[0]]
	if f[1] == "none" {
		if acked && !a.del {
			return fmt.Errorf("acknowledged write of %s at %s lost: the key is gone", a.key, a.ts)
		}
		return nil
	}
	if len(f) != 6 || (f[1] != "put" && f[1] != "del") {
		return fmt.Errorf("hot key stored as %q", line)
	}
	var ts record.Timestamp
	if _, err := fmt.Sscanf(f[2]+" "+f[3]+" "+f[4], "%d %d %s", &ts.Millis, &ts.Counter, &ts.NodeID); err != nil {
		return fmt.Errorf("hot key line %q: %v", line, err)
	}
	del := f[1] == "del"
	if !del && f[5] != hotValue(f[0], ts) {
		return fmt.Errorf("hot key %s holds %q at %s, not the value written then", f[0], f[5], ts)
	}
	if !acked {
		return nil
	}
	switch c := ts.Compare(a.ts); {
	case c < 0 && a.del && !del:
		return fmt.Errorf("acknowledged delete of %s at %s came back as live (value %q of %s)", a.key, a.ts, f[5], ts)
	case c < 0:
		return fmt.Errorf("acknowledged write of %s at %s (delete %t) lost: storage holds the older %s (delete %t)", a.key, a.ts, a.del, ts, del)
	case c == 0 && del != a.del:
		return fmt.Errorf("acknowledged write of %s at %s (delete %t) stored as delete %t", a.key, a.ts, a.del, del)
	}
	return nil
}

func TestCrash_redb(t *testing.T) {
	runCrash(t, crashSpec{"redb", filepath.Join(t.TempDir(), "crash.redb")})
}

func TestCrash_postgres(t *testing.T) {
	runCrash(t, crashSpec{"postgres", pgtest.FreshSchema(t)})
}
