package loadgen_test

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/internal/testbin"
)

// The tests run the real server binary, built once per test run.

func TestMain(m *testing.M) {
	code := m.Run()
	testbin.Cleanup()
	os.Exit(code)
}

func serverBinary(t testing.TB) string {
	return testbin.Build(t, "github.com/topgun-go/topgun/cmd/topgun-server")
}

// logWriter sends what is written to t.Log.
type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t testing.TB) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: logWriter{t}})
}

// startServer runs the server on 127.0.0.1 with PORT=0, no authentication
// and env on top, and returns its WebSocket URL. The server is stopped
// with SIGTERM at the end of the test.
func startServer(t testing.TB, env map[string]string) string {
	t.Helper()
	cmd := exec.Command(serverBinary(t))
	cmd.Dir = t.TempDir()
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "TOPGUN_BIND_ADDR=127.0.0.1", "PORT=0", "TOPGUN_NO_AUTH=1", "TOPGUN_LOG_LEVEL=warn"}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &testbin.LockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	portc := make(chan int, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "PORT="); ok {
				if n, err := strconv.Atoi(v); err == nil {
					portc <- n
				}
			}
		}
		io.Copy(io.Discard, stdout)
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if s := stderr.String(); s != "" {
			t.Logf("server stderr:\n%s", s)
		}
	})
	select {
	case port := <-portc:
		return "ws://127.0.0.1:" + strconv.Itoa(port) + "/ws"
	case <-exited:
		t.Fatalf("server exited before printing PORT=:\n%s", stderr)
	case <-time.After(30 * time.Second):
		t.Fatal("server printed no PORT= line within 30s")
	}
	return ""
}
