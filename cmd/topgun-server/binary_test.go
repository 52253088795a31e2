package main

// These tests build the real binary and run it as a child process, the way
// an operator or TopGun's own test harness does: PORT=0, read the PORT= line,
// probe /health and /ready, stop with SIGTERM.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/internal/testbin"
	"github.com/topgun-go/topgun/plugins"
	"github.com/topgun-go/topgun/plugins/postgres/pgtest"
)

const (
	// childEnv makes the test binary act as a small storage client process
	// (see childMain) instead of running tests.
	childEnv = "TOPGUN_SERVER_TEST_CHILD"
	// childPathEnv is the redb file the child uses.
	childPathEnv = "TOPGUN_SERVER_TEST_REDB"

	startTimeout = 30 * time.Second // build cache warm: about a second
	stopTimeout  = drainTimeout + 10*time.Second
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(childMain(mode))
	}
	code := m.Run()
	testbin.Cleanup()
	os.Exit(code)
}

// childMain writes (mode "write") or reads back and prints (mode "read") one
// record of the redb file named by childPathEnv, through plugins.Open like
// the server, in its own process.
func childMain(mode string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := plugins.Open(ctx, "redb", &plugins.Options{RedbPath: os.Getenv(childPathEnv)})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer s.Close()
	switch mode {
	case "write":
		b := &abi.Batch{Now: time.Now().UnixMilli()}
		b.Put("todo-items", "item:1", false, []byte("written by another process"), 0)
		err = s.Backend().Apply(ctx, b)
	case "read":
		var r abi.Record
		r, err = abi.GetOne(ctx, s.Backend(), "todo-items", "item:1", false)
		if err == nil {
			fmt.Printf("%s\n", r.Value)
		}
	default:
		err = fmt.Errorf("unknown child mode %q", mode)
	}
	if err == nil {
		err = s.Close()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// runChild runs the test binary in child mode and returns its stdout.
func runChild(t *testing.T, mode, redbPath string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+mode, childPathEnv+"="+redbPath)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child %s: %v\n%s", mode, err, &stderr)
	}
	return string(out)
}

// serverBinary builds the server once per test run.
func serverBinary(t testing.TB) string { return testbin.Build(t, ".") }

// portWriter collects stdout and reports the first PORT= line.
type portWriter struct {
	testbin.LockedBuffer
	once  sync.Once
	portc chan int
	line  []byte
}

func (w *portWriter) Write(p []byte) (int, error) {
	w.LockedBuffer.Write(p)
	w.line = append(w.line, p...)
	for {
		i := bytes.IndexByte(w.line, '\n')
		if i < 0 {
			return len(p), nil
		}
		l := string(w.line[:i])
		w.line = w.line[i+1:]
		if v, ok := strings.CutPrefix(l, "PORT="); ok {
			if n, err := strconv.Atoi(v); err == nil {
				w.once.Do(func() { w.portc <- n })
			}
		}
	}
}

// proc is one server process.
type proc struct {
	cmd    *exec.Cmd
	stdout *portWriter
	stderr *testbin.LockedBuffer
	exited chan struct{} // closed once the process has exited
	code   int           // exit code, valid after exited
	port   int
}

// launch starts the server with a clean environment: only PATH, loopback,
// PORT=0, JSON logs, no client authentication, then env (where an empty
// value unsets a setting).
func launch(t testing.TB, env map[string]string) *proc {
	t.Helper()
	cmd := exec.Command(serverBinary(t))
	cmd.Dir = t.TempDir() // where a relative TOPGUN_REDB_PATH lands
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "TOPGUN_BIND_ADDR=127.0.0.1", "PORT=0", "TOPGUN_LOG_FORMAT=json", "TOPGUN_LOG_LEVEL=debug", "TOPGUN_NO_AUTH=1"}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &proc{cmd: cmd, stdout: &portWriter{portc: make(chan int, 1)}, stderr: &testbin.LockedBuffer{}, exited: make(chan struct{})}
	cmd.Stdout = p.stdout
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := cmd.Wait()
		p.code = 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			p.code = ee.ExitCode()
		} else if err != nil {
			p.code = -1
		}
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			cmd.Process.Kill()
			<-p.exited
		}
		t.Logf("server stderr:\n%s", p.stderr)
	})
	return p
}

// startServer launches the server and waits for its PORT= line.
func startServer(t testing.TB, env map[string]string) *proc {
	t.Helper()
	p := launch(t, env)
	select {
	case p.port = <-p.stdout.portc:
	case <-p.exited:
		t.Fatalf("server exited with %d before printing PORT=", p.code)
	case <-time.After(startTimeout):
		t.Fatalf("server printed no PORT= line within %v", startTimeout)
	}
	if p.port <= 0 {
		t.Fatalf("PORT=%d is not a usable port", p.port)
	}
	return p
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
		return p.code
	case <-time.After(timeout):
		t.Fatalf("server still running after %v", timeout)
		return -1
	}
}

// stop sends SIGTERM and returns the exit code.
func (p *proc) stop(t *testing.T) int {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	return p.wait(t, stopTimeout)
}

// checkUp checks /health, /ready and /metrics.
func (p *proc) checkUp(t *testing.T) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	base := "http://127.0.0.1:" + strconv.Itoa(p.port)
	if code, body := getJSON(t, client, base+"/health"); code != http.StatusOK || body["status"] != "ok" {
		t.Errorf("/health = %d %v, want 200 ok", code, body)
	}
	if code, body := getJSON(t, client, base+"/ready"); code != http.StatusOK || body["status"] != "ready" {
		t.Errorf("/ready = %d %v, want 200 ready", code, body)
	}
	resp, err := client.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "topgun_backend_info{") {
		t.Errorf("/metrics = %d, without topgun_backend_info:\n%.300s", resp.StatusCode, b)
	}
}

// logLines returns the JSON log lines with the given message.
func (p *proc) logLines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(p.stderr.String()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Errorf("stderr line is not JSON (TOPGUN_LOG_FORMAT=json): %q", sc.Text())
			continue
		}
		if m["@message"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// storageLine returns the one "storage opened" log line.
func (p *proc) storageLine(t *testing.T) map[string]any {
	t.Helper()
	lines := p.logLines(t, "storage opened")
	if len(lines) != 1 {
		t.Fatalf("%d \"storage opened\" log lines, want 1", len(lines))
	}
	return lines[0]
}

func TestBinary_null(t *testing.T) {
	t.Parallel()
	p := startServer(t, map[string]string{"STORAGE_BACKEND": "null"})
	p.checkUp(t)
	if code := p.stop(t); code != exitOK {
		t.Errorf("exit code after SIGTERM = %d, want 0", code)
	}
	l := p.storageLine(t)
	if l["backend"] != "null" || l["location"] != "memory" || l["capabilities"] != "atomic_batch" || l["@module"] != "server" {
		t.Errorf("storage log line = %v, want backend null, location memory, capabilities atomic_batch from module server", l)
	}
	if got, want := p.stdout.String(), fmt.Sprintf("PORT=%d\n", p.port); got != want {
		t.Errorf("stdout = %q, want only %q", got, want)
	}
}

func TestBinary_redb(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "data.redb")
	p := startServer(t, map[string]string{"TOPGUN_REDB_PATH": path}) // STORAGE_BACKEND unset: redb
	p.checkUp(t)
	if code := p.stop(t); code != exitOK {
		t.Errorf("exit code after SIGTERM = %d, want 0", code)
	}
	l := p.storageLine(t)
	if l["backend"] != "redb" || l["location"] != path {
		t.Errorf("storage log line = %v, want backend redb at %s", l, path)
	}
	if caps, _ := l["capabilities"].(string); !strings.Contains(caps, "durable") {
		t.Errorf("redb capabilities %q do not include durable", caps)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("redb file not left behind: %v", err)
	}
}

func TestBinary_redbDefaultPath(t *testing.T) {
	t.Parallel()
	p := startServer(t, nil)
	if code := p.stop(t); code != exitOK {
		t.Errorf("exit code after SIGTERM = %d, want 0", code)
	}
	if _, err := os.Stat(filepath.Join(p.cmd.Dir, "topgun.redb")); err != nil {
		t.Errorf("default redb file ./topgun.redb not created in the working directory: %v", err)
	}
}

// TestBinary_redbSecondServer checks that redb is single-process: a second
// server on the same file fails promptly, and the first one is unaffected.
func TestBinary_redbSecondServer(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "data.redb")
	env := map[string]string{"STORAGE_BACKEND": "redb", "TOPGUN_REDB_PATH": path}
	first := startServer(t, env)

	second := launch(t, env)
	start := time.Now()
	if code := second.wait(t, 15*time.Second); code != exitFailed {
		t.Errorf("second server exit code = %d, want %d", code, exitFailed)
	}
	t.Logf("second server exited after %v", time.Since(start).Round(time.Millisecond))
	if second.stdout.String() != "" {
		t.Errorf("second server printed %q on stdout, want nothing", second.stdout.String())
	}
	lines := second.logLines(t, "cannot open storage")
	if len(lines) != 1 {
		t.Fatalf("second server logged %d \"cannot open storage\" lines, want 1", len(lines))
	}
	if e, _ := lines[0]["error"].(string); !strings.Contains(e, path) || !strings.Contains(strings.ToLower(e), "lock") {
		t.Errorf("second server error %q does not name the locked file %s", e, path)
	}

	first.checkUp(t)
	if code := first.stop(t); code != exitOK {
		t.Errorf("first server exit code = %d, want 0", code)
	}
}

// TestBinary_redbKeepsDataAcrossProcesses writes a record from one process,
// runs and stops the server on the file twice, and reads the record back
// from yet another process.
func TestBinary_redbKeepsDataAcrossProcesses(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "data.redb")
	runChild(t, "write", path)
	for i := range 2 {
		p := startServer(t, map[string]string{"TOPGUN_REDB_PATH": path})
		p.checkUp(t)
		if code := p.stop(t); code != exitOK {
			t.Fatalf("run %d: exit code = %d, want 0", i, code)
		}
	}
	if got, want := runChild(t, "read", path), "written by another process\n"; got != want {
		t.Errorf("record read back = %q, want %q", got, want)
	}
}

func TestBinary_postgres(t *testing.T) {
	t.Parallel()
	u, err := url.Parse(pgtest.FreshSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	// Local connections are trusted: the password is accepted and must
	// never be printed.
	const secret = "pw-must-not-leak"
	u.User = url.UserPassword(u.User.Username(), secret)
	p := startServer(t, map[string]string{"STORAGE_BACKEND": "postgres", "DATABASE_URL": u.String()})
	p.checkUp(t)
	if code := p.stop(t); code != exitOK {
		t.Errorf("exit code after SIGTERM = %d, want 0", code)
	}
	l := p.storageLine(t)
	if loc, _ := l["location"].(string); l["backend"] != "postgres" || !strings.Contains(loc, u.Hostname()) {
		t.Errorf("storage log line = %v, want backend postgres at %s", l, u.Hostname())
	}
	if strings.Contains(p.stderr.String(), secret) || strings.Contains(p.stdout.String(), secret) {
		t.Errorf("the database password was printed:\n%s", p.stderr)
	}
}

func TestBinary_configErrorExits2(t *testing.T) {
	t.Parallel()
	p := launch(t, map[string]string{"PORT": "abc", "TOPGUN_LOG_FORMAT": "xml", "STORAGE_BACKEND": "postgres"})
	if code := p.wait(t, startTimeout); code != exitConfig {
		t.Errorf("exit code = %d, want %d", code, exitConfig)
	}
	for _, name := range []string{"PORT", "TOPGUN_LOG_FORMAT", "DATABASE_URL"} {
		if !strings.Contains(p.stderr.String(), name) {
			t.Errorf("stderr does not name %s:\n%s", name, p.stderr)
		}
	}
}
