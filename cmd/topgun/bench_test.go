package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/plugins/null"
	"github.com/topgun-go/topgun/server/hlc"
	"github.com/topgun-go/topgun/server/protocol"
	"github.com/topgun-go/topgun/server/store"
)

// benchLogWriter sends what is written to t.Log.
type benchLogWriter struct{ t testing.TB }

func (w benchLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// protocolServer serves the client protocol on a null store on 127.0.0.1,
// without authentication, and returns its WebSocket URL and the store.
func protocolServer(t *testing.T) (string, *store.Store) {
	t.Helper()
	log := hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: benchLogWriter{t}})
	clock, err := hlc.New("bench-test", nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), null.Open(), &store.Options{Clock: clock, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := protocol.New(st, &protocol.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	srv.Register(mux)
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.Close()
		hs.Close()
		st.Close()
	})
	return "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws", st
}

func TestBench_run(t *testing.T) {
	t.Parallel()
	url, st := protocolServer(t)
	code, stdout, stderr := runT(t, nil, "bench", "--url", url, "--connections", "3", "--batch", "20", "--maps", "2",
		"--value-bytes", "50", "--duration", "1200ms")
	if code != exitOK {
		t.Fatalf("exit %d, want 0", code)
	}
	m := regexp.MustCompile(`acknowledged:  (\d+) ops in (\d+) batches \(ack level APPLIED\)`).FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("no acknowledged line in stdout:\n%s", stdout)
	}
	ops, _ := strconv.Atoi(m[1])
	batches, _ := strconv.Atoi(m[2])
	if ops == 0 || ops != 20*batches {
		t.Errorf("%d ops in %d batches of 20", ops, batches)
	}
	for _, want := range []string{"connections:   3\n", "batch:         20 ops\n", "throughput:", "batch latency: p50 ", "errors:        0\n"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	if !strings.Contains(stderr, "loadgen: ") || !strings.Contains(stderr, "ops acknowledged") {
		t.Errorf("no progress line on stderr:\n%s", stderr)
	}
	// The acknowledged ops are on the server, in the two maps.
	total := 0
	for _, name := range []string{"loadgen-0", "loadgen-1"} {
		n := 0
		if err := st.Scan(context.Background(), name, func(*store.Entry) bool { n++; return true }); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Errorf("map %s is empty", name)
		}
		total += n
	}
	if total != ops {
		t.Errorf("the server holds %d records, the command counted %d acknowledged ops", total, ops)
	}
}

func TestBench_maxOpsWithoutProgress(t *testing.T) {
	t.Parallel()
	url, _ := protocolServer(t)
	code, stdout, stderr := runT(t, nil, "bench", "--url", url, "--connections", "2", "--batch", "10",
		"--max-ops", "95", "--duration", "1m", "--no-progress")
	if code != exitOK {
		t.Fatalf("exit %d, want 0", code)
	}
	if !strings.Contains(stdout, "acknowledged:  95 ops in 10 batches") {
		t.Errorf("stdout:\n%s\nwant 95 ops in 10 batches (9 of 10, 1 of 5)", stdout)
	}
	if strings.Contains(stderr, "ops acknowledged") {
		t.Errorf("progress written with --no-progress:\n%s", stderr)
	}
}

func TestBench_usageAndFailures(t *testing.T) {
	t.Parallel()
	// A port kept by a listener that hangs up at once: closed, it could
	// be taken by another test's server meanwhile.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	closed := "ws://" + ln.Addr().String() + "/ws"
	for _, tc := range []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{"help", []string{"bench", "-h"}, exitOK, "Usage: topgun bench", ""},
		{"listed", []string{"help"}, exitOK, "bench [flags]", ""},
		{"argument", []string{"bench", "extra"}, exitUsage, "", `unexpected argument "extra"`},
		{"zero connections", []string{"bench", "--connections", "0"}, exitUsage, "", "--connections 0 must be positive"},
		{"negative duration", []string{"bench", "--duration", "-1s"}, exitUsage, "", "--duration -1s must be positive"},
		{"bad URL", []string{"bench", "--url", "http://127.0.0.1:1/"}, exitUsage, "", "not a WebSocket URL"},
		{"too large", []string{"bench", "--batch", "10000", "--value-bytes", "1000"}, exitUsage, "", "lower BatchSize or ValueBytes"},
		{"no server", []string{"bench", "--url", closed, "--duration", "1s"}, exitFail, "", "topgun bench: loadgen: dial"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runT(t, nil, tc.args...)
			if code != tc.wantCode || !strings.Contains(stdout, tc.wantStdout) || !strings.Contains(stderr, tc.wantStderr) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q",
					code, stdout, stderr, tc.wantCode, tc.wantStdout, tc.wantStderr)
			}
		})
	}
}

// A server that accepts connections but never answers the handshake makes
// the dial time out (loadgen's 10 s): that is a failure to report as such,
// not an interruption.
func TestBench_dialTimeoutIsAnError(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c) // answer nothing
		}
	}()
	code, _, stderr := runT(t, nil, "bench", "--url", "ws://"+ln.Addr().String()+"/ws", "--connections", "1", "--duration", "1s", "--no-progress")
	if code != exitFail || strings.Contains(stderr, "interrupted") || !strings.Contains(stderr, "loadgen: dial") {
		t.Errorf("exit %d, stderr %q; want exit %d naming the dial failure, not an interruption", code, stderr, exitFail)
	}
}
