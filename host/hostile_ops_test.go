package host

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/abi"
)

// testdata/wat/evil.wat misbehaves on a get of map "evil" by the first
// byte of its key (see the file).

// TestDeadline_sandboxedOpStopsAtCallTimeout: CallTimeout bounds every
// call. An op is more than one wasm call when the plugin moves its buffer
// (or the request needs a bigger one): a plugin that spends 70% of the
// timeout in topgun_call and 70% more in topgun_buffer must not get 140%.
func TestDeadline_sandboxedOpStopsAtCallTimeout(t *testing.T) {
	o := testOptions(t)
	o.CallTimeout = time.Second
	b := mustLoad(t, "testdata/wat/evil.wasm", o)
	ctx := context.Background()
	start := time.Now()
	_, err := b.Get(ctx, "evil", false, []string{"s"})
	took := time.Since(start)
	if !errors.Is(err, abi.ErrDeadlineExceeded) {
		t.Fatalf("get that took %s with a 1s timeout = %v, want deadline exceeded", took, err)
	}
	if !strings.HasPrefix(err.Error(), "plugin evil.wasm: get: did not finish within 1s") {
		t.Errorf("error %q does not name the plugin, the op and the timeout", err)
	}
	if _, err := b.Get(ctx, "m", false, []string{"k"}); err != nil {
		t.Fatalf("the call after the deadline: %v", err)
	}
	if st := b.Stats(); st.InstancesDiscarded != 1 {
		t.Errorf("stats %+v, want the overdue instance discarded", st)
	}
}

// TestHostile_movedBufferLie: a plugin that answers StatusBufferMoved and
// then cannot say where its buffer is (topgun_buffer returns 0) gave a
// malformed result: the call fails naming the op, the instance is
// discarded and the failure counts.
func TestHostile_movedBufferLie(t *testing.T) {
	b := mustLoad(t, "testdata/wat/evil.wasm", nil)
	ctx := context.Background()
	_, err := b.Get(ctx, "evil", false, []string{"m"})
	if !errors.Is(err, abi.ErrInternal) || !strings.HasPrefix(err.Error(), "plugin evil.wasm: get: malformed result") {
		t.Fatalf("get answered with a moved buffer that is nowhere = %v, want an internal error: plugin evil.wasm: get: malformed result", err)
	}
	if _, err := b.Get(ctx, "m", false, []string{"k"}); err != nil {
		t.Fatalf("the call after the lie: %v", err)
	}
	if st := b.Stats(); st.Failures != 1 || st.InstancesDiscarded != 1 || st.InstancesStarted != 2 {
		t.Errorf("stats %+v, want the failure counted and the instance replaced", st)
	}
}

// TestLogging_logCallIsOneLine: a log call is one line of the server's
// log (abi/WASM.md section 5), and the rate limit counts lines: a message
// holding line breaks must not add lines, such as one dressed as the
// server's own error.
func TestLogging_logCallIsOneLine(t *testing.T) {
	c := &logCapture{t: t}
	o := DefaultOptions()
	o.Logger = hclog.New(&hclog.LoggerOptions{Output: c, Level: hclog.Trace})
	b := mustLoad(t, "testdata/wat/evil.wasm", o)
	if _, err := b.Get(context.Background(), "evil", false, []string{"n"}); err != nil {
		t.Fatal(err)
	}
	entry := c.find("forged by a plugin")
	if entry == "" {
		t.Fatal("the log call was not logged")
	}
	if strings.Count(strings.TrimSuffix(entry, "\n"), "\n") != 0 {
		t.Errorf("one log call wrote several lines:\n%s", entry)
	}
	if !strings.Contains(entry, "plugin.evil.wasm") {
		t.Errorf("entry %q is not under plugin.evil.wasm", entry)
	}
}

// TestSandbox_longPathCostsTheHostNoCopies: a plugin may fill its memory
// with one path and open it in its data directory. The system refuses it
// (ENAMETOOLONG); the host must not first make copies of it on its own
// heap, several times the plugin's memory limit.
func TestSandbox_longPathCostsTheHostNoCopies(t *testing.T) {
	o := testOptions(t)
	o.DataDir = t.TempDir()
	// The call fills and hands over 32 MiB: about 1.5 s under -race on an
	// idle machine, 4 s and more on a busy one, close to the default 10 s
	// timeout. The promise checked is memory, not time.
	o.CallTimeout = 2 * time.Minute
	b := mustLoad(t, "testdata/wat/pathbomb.wasm", o)
	const path = 32 << 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if _, err := b.Get(context.Background(), "m", false, []string{"k"}); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	// wazero copies the path once into a string before the host sees it.
	if n := after.TotalAlloc - before.TotalAlloc; n > 2*path {
		t.Errorf("opening a path of %d MiB allocated %d MiB on the host's heap", path>>20, n>>20)
	}
}
