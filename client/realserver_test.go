package client

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/plugins/null"
	srvhlc "github.com/topgun-go/topgun/server/hlc"
	"github.com/topgun-go/topgun/server/protocol"
	"github.com/topgun-go/topgun/server/store"
)

// realServer runs this project's server (store on the null backend, no
// auth) on 127.0.0.1 and returns its WebSocket URL.
func realServer(t testing.TB) string {
	t.Helper()
	return realServerWith(t, nil)
}

// realServerWith is realServer with the server's options changed by edit.
func realServerWith(t testing.TB, edit func(*protocol.Options)) string {
	t.Helper()
	url, _ := serveBackend(t, null.Open(), 0, edit)
	return url
}

// serveBackend runs this project's server on be (closed with it), with a
// value cache of cacheBytes (0: the default; -1: none) and the options
// changed by edit (when not nil), and returns its WebSocket URL and its
// store (for reading what it holds).
func serveBackend(t testing.TB, be abi.Backend, cacheBytes int64, edit func(*protocol.Options)) (string, *store.Store) {
	t.Helper()
	clock, err := srvhlc.New("server-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), be, &store.Options{Clock: clock, Logger: testLogger(t), CacheBytes: cacheBytes})
	if err != nil {
		t.Fatal(err)
	}
	po := &protocol.Options{Logger: testLogger(t)}
	if edit != nil {
		edit(po)
	}
	srv, err := protocol.New(st, po)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	srv.Register(mux)
	hs := httptest.NewUnstartedServer(mux)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs.Listener = l
	hs.Start()
	t.Cleanup(func() {
		srv.Close()
		hs.Close()
		st.Close()
		be.Close()
	})
	return "ws://" + l.Addr().String() + "/ws", st
}
