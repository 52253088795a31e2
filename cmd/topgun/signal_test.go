//go:build unix

package main

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain_helperProcess is not a test: TestMain_secondSignalKills runs the
// test binary as the topgun command through it.
func TestMain_helperProcess(t *testing.T) {
	args, ok := os.LookupEnv("TOPGUN_CLI_HELPER_ARGS")
	if !ok {
		t.Skip("helper process of TestMain_secondSignalKills")
	}
	os.Args = append([]string{"topgun"}, strings.Split(args, "\n")...)
	main()
}

// TestMain_secondSignalKills checks that a second Ctrl-C stops the command
// at once. The first one only asks it to stop, which a plugin call in
// progress delays up to the call deadline (here a plugin whose _initialize
// never returns, with a 10-minute deadline); a second one must not be
// swallowed too.
func TestMain_secondSignalKills(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^TestMain_helperProcess$")
	cmd.Env = append(os.Environ(),
		"TOPGUN_CLI_HELPER_ARGS=plugin\ninspect\n-log-level\ndebug\n../../host/testdata/wat/initloop.wasm",
		"TOPGUN_PLUGIN_CALL_TIMEOUT=10m",
		"TOPGUN_PLUGIN_CACHE_DIR="+t.TempDir(),
	)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := false
		for sc.Scan() {
			t.Logf("child: %s", sc.Text())
			// Logged after the signal handler is installed, just before
			// _initialize runs.
			if !once && strings.Contains(sc.Text(), "plugin metered") {
				once = true
				close(started)
			}
		}
		exited <- cmd.Wait()
	}()
	select {
	case <-started:
	case err := <-exited:
		t.Fatalf("the command ended before the plugin started: %v", err)
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		<-exited
		t.Fatal("the plugin was not started within 2 minutes")
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		t.Fatal("still running 30s after a second SIGINT")
	}
}
