package loadgen_test

import (
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/topgun-go/topgun/client/loadgen"
)

// A server that refuses a connection at its TOPGUN_MAX_CONNECTIONS says so
// (503 to the upgrade, or, to one admitted on trial to take over its
// device's connection, the close): the error passes that on, rather than
// asking whether the server runs and the URL is right (both are).
func TestRun_refusedUpgradeSaysWhy(t *testing.T) {
	t.Parallel()
	url := startServer(t, map[string]string{"STORAGE_BACKEND": "null", "TOPGUN_MAX_CONNECTIONS": "1"})
	_, err := loadgen.Run(context.Background(), loadgen.Options{
		URL: url, Connections: 2, Duration: time.Second, Logger: testLogger(t),
	})
	if err == nil {
		t.Fatal("Run with 2 connections to a server serving 1 succeeded, want an error")
	}
	if !strings.Contains(err.Error(), "too many connections") || !strings.Contains(err.Error(), "TOPGUN_MAX_CONNECTIONS") {
		t.Errorf("err = %v\nwant the server's answer (too many connections, TOPGUN_MAX_CONNECTIONS)", err)
	}
}

// Run fails at once when a connection cannot be opened: once one dial has
// failed, the connections not dialled yet are not tried (each could wait
// its DialTimeout, 32 at a time: about 5 minutes for 1000 connections to a
// server that never answers).
func TestRun_stopsDiallingAfterAFailure(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int64
	var mu sync.Mutex
	var held []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			mu.Lock()
			held = append(held, c) // answer nothing
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	})
	const conns = 500
	_, err = loadgen.Run(context.Background(), loadgen.Options{
		URL: "ws://" + ln.Addr().String() + "/ws", Connections: conns, Duration: time.Second,
		DialTimeout: 200 * time.Millisecond, Logger: testLogger(t),
	})
	if err == nil || !strings.Contains(err.Error(), "loadgen: dial") {
		t.Fatalf("err = %v, want a dial error", err)
	}
	if n := accepted.Load(); n >= conns/2 {
		t.Errorf("%d of %d connections were dialled after the first dial failed; want the run to stop at the first failure", n, conns)
	}
}
