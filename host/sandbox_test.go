package host

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/abi"
)

func snoopGet(t *testing.T, b abi.Backend, key string) string {
	t.Helper()
	r, err := abi.GetOne(context.Background(), b, "snoop", key, false)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	return string(r.Value)
}

// TestSandbox_denyByDefault loads a plugin that tries to read the
// environment, its arguments and files outside its data directory.
func TestSandbox_denyByDefault(t *testing.T) {
	t.Setenv("TOPGUN_TEST_SECRET", "do-not-leak")
	path := buildTestPlugin(t, "snoop")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(filepath.Dir(dir), "outside.txt"), []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}

	t.Run("NoGrants", func(t *testing.T) {
		b := mustLoad(t, path, nil)
		if got := snoopGet(t, b, "env"); got != "" {
			t.Errorf("plugin sees environment %q, want none", got)
		}
		if got := snoopGet(t, b, "args"); strings.Contains(got, os.Args[0]) {
			t.Errorf("plugin sees the host's arguments %q", got)
		}
		for _, k := range []string{"read_etc_passwd", "read_escape"} {
			if got := snoopGet(t, b, k); !strings.HasPrefix(got, "error:") {
				t.Errorf("%s = %q, want an error", k, got)
			}
		}
		if got := snoopGet(t, b, "data_dir"); got != "" {
			t.Errorf("data dir %q without a grant", got)
		}
	})

	t.Run("DataDirAndConfig", func(t *testing.T) {
		o := testOptions(t)
		o.DataDir = dir
		o.Config = map[string]string{"greeting": "hi"}
		b := mustLoad(t, path, o)
		if got := snoopGet(t, b, "data_dir"); got != abi.WasmDataDir {
			t.Errorf("data dir = %q, want %q", got, abi.WasmDataDir)
		}
		if got := snoopGet(t, b, "write_data"); got != "ok" {
			t.Errorf("write into the data dir: %s", got)
		}
		if data, err := os.ReadFile(filepath.Join(dir, "hello.txt")); err != nil || string(data) != "hello" {
			t.Errorf("file written by the plugin: %q, %v", data, err)
		}
		if got := snoopGet(t, b, "read_escape"); !strings.HasPrefix(got, "error:") {
			t.Errorf("escape from /data: %q, want an error", got)
		}
		if got, want := snoopGet(t, b, "config"), "greeting=hi,topgun.data_dir=/data"; got != want {
			t.Errorf("config = %q, want %q", got, want)
		}
		if got := snoopGet(t, b, "env"); got != "" {
			t.Errorf("plugin sees environment %q, want none", got)
		}
	})
}

// TestHostile_recovery checks that a guest that loops, panics, runs out of
// memory or exits costs one failed call, and the next call works.
func TestHostile_recovery(t *testing.T) {
	path := hostileWasm(t)
	ctx := context.Background()
	put := func(mapName string) *abi.Batch {
		b := &abi.Batch{Now: 1}
		b.Put(mapName, "k", false, []byte("v"), 0)
		return b
	}
	o := testOptions(t)
	o.CallTimeout = 2 * time.Second
	o.MemoryLimitMB = 64
	b := mustLoad(t, path, o)
	if err := b.Apply(ctx, put("keep")); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		mapName   string
		want      *abi.Error // oom may also hit the deadline on a slow machine
		fresh     bool       // a fresh instance: memory state is lost
		mentioned string
	}{
		{"panic", abi.ErrInternal, false, "hostile: asked to panic"},
		{"loop", abi.ErrDeadlineExceeded, true, "did not finish within 2s"},
		{"oom", abi.ErrInternal, true, "plugin hostile.wasm: apply_runs:"},
		{"exit", abi.ErrInternal, true, "exited with code 3"},
	}
	for _, tc := range tests {
		t.Run(tc.mapName, func(t *testing.T) {
			if err := b.Apply(ctx, put("keep")); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			err := b.Apply(ctx, put(tc.mapName))
			if tc.mapName == "oom" && errors.Is(err, abi.ErrDeadlineExceeded) {
				t.Logf("oom hit the call deadline before the memory limit: %v", err)
			} else if !errors.Is(err, tc.want) {
				t.Fatalf("Apply(%s) = %v, want code %v", tc.mapName, err, tc.want.Code)
			}
			if !strings.Contains(err.Error(), tc.mentioned) {
				t.Errorf("error %q does not mention %q", err, tc.mentioned)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("the failing call took %s", d)
			}
			recs, err := b.Get(ctx, "keep", false, []string{"k"})
			if err != nil {
				t.Fatalf("Get after %s: %v", tc.mapName, err)
			}
			if tc.fresh != (len(recs) == 0) {
				t.Errorf("after %s: %d records kept, want fresh instance = %v", tc.mapName, len(recs), tc.fresh)
			}
		})
	}
}

type logCapture struct {
	mu    sync.Mutex
	lines []string
	t     *testing.T
}

func (c *logCapture) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.lines = append(c.lines, string(p))
	c.mu.Unlock()
	c.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func (c *logCapture) find(s string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range c.lines {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// TestLogging checks that the log import, stdout and stderr reach the
// logger named plugin.<file>, at their levels, with lines capped.
func TestLogging(t *testing.T) {
	c := &logCapture{t: t}
	o := DefaultOptions()
	o.Logger = hclog.New(&hclog.LoggerOptions{Output: c, Level: hclog.Trace, DisableTime: true})
	b := mustLoad(t, hostileWasm(t), o)
	batch := &abi.Batch{Now: 1}
	batch.Put("log", "k", false, nil, 0) // logs a 10,000-byte line
	if err := b.Apply(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if l := c.find("hostile: xxx"); l == "" {
		t.Error("log import line not logged")
	} else {
		if !strings.Contains(l, "[WARN]") || !strings.Contains(l, "plugin.hostile.wasm:") {
			t.Errorf("log line %q: want level WARN and logger plugin.hostile.wasm", l)
		}
		if len(l) > MaxLogLineBytes+200 || !strings.Contains(l, "truncated=true") {
			t.Errorf("log line of %d bytes, want it capped at %d and marked truncated", len(l), MaxLogLineBytes)
		}
	}
	if l := c.find("hello from stdout"); !strings.Contains(l, "[INFO]") || !strings.Contains(l, "stream=stdout") {
		t.Errorf("stdout line %q", l)
	}
	if l := c.find("hello from stderr"); !strings.Contains(l, "[WARN]") || !strings.Contains(l, "stream=stderr") {
		t.Errorf("stderr line %q", l)
	}
}

// TestCancel_runningCallKeepsInstance cancels the caller's context while a
// call runs: the call completes, and the instance and its data survive.
func TestCancel_runningCallKeepsInstance(t *testing.T) {
	b := mustLoad(t, hostileWasm(t), nil)
	keep := &abi.Batch{Now: 1}
	keep.Put("keep", "k", false, []byte("v"), 0)
	if err := b.Apply(context.Background(), keep); err != nil {
		t.Fatal(err)
	}
	// Cancel once the call has reached the instance (it takes 300 ms
	// there), not at a fixed delay, which a loaded machine may pass
	// before the call starts.
	ctx, cancel := context.WithCancel(context.Background())
	calls := b.Stats().Calls
	canceled := make(chan struct{})
	go func() {
		defer close(canceled)
		defer cancel()
		for deadline := time.Now().Add(time.Minute); b.Stats().Calls == calls && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
	}()
	slow := &abi.Batch{Now: 2}
	slow.Put("slow", "k", false, []byte("v"), 0)
	if err := b.Apply(ctx, slow); err != nil {
		t.Fatalf("Apply canceled while running = %v, want it to complete", err)
	}
	<-canceled
	if err := b.Apply(ctx, slow); !errors.Is(err, abi.ErrCanceled) {
		t.Errorf("Apply with a canceled context = %v, want canceled", err)
	}
	if recs, err := b.Get(context.Background(), "keep", false, []string{"k"}); err != nil || len(recs) != 1 {
		t.Errorf("Get after the cancellation = %v, %v; want the record kept", recs, err)
	}
	if st := b.Stats(); st.InstancesStarted != 1 || st.Failures != 0 {
		t.Errorf("stats %+v, want one instance and no failures", st)
	}
}

// A host call that takes the host long is stopped at the call's deadline
// (sandboxed mode), not when the meter next checks, which counts a host
// call as one instruction: one fd_write of 64 MiB of newlines to stdout
// (64 million lines, tens of seconds) ran to its end and the call then
// succeeded, and a loop of fd_reads of a million empty iovecs each (no
// reader runs to check the deadline) ran for hours.
func TestSandbox_hostCallsStopAtTheDeadline(t *testing.T) {
	for _, file := range []string{"newlines", "emptyiov"} {
		t.Run(file, func(t *testing.T) {
			o := testOptions(t)
			o.Logger = hclog.NewNullLogger()
			o.CallTimeout = 100 * time.Millisecond
			b := mustLoad(t, "testdata/wat/"+file+".wasm", o)
			_, err := b.Get(context.Background(), "m", false, []string{"k"})
			if !errors.Is(err, abi.ErrDeadlineExceeded) {
				t.Fatalf("get = %v, want deadline exceeded", err)
			}
		})
	}
}
