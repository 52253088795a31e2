package client

import (
	"context"
	"errors"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// hookedDialer dials the client's TCP connections with hooks on their
// writes, for tests that must end a call's ctx at an exact point of its
// frame write.
type hookedDialer struct {
	dials atomic.Int32
	// after runs once, inside the next Write, once its bytes are written:
	// before coder/websocket's write returns.
	after atomic.Pointer[func()]
	// stall makes the next Write wait until the channel is closed (or
	// the connection is), as one to a server that stopped reading does;
	// stalled is told when it starts waiting.
	stall   atomic.Pointer[chan struct{}]
	stalled chan struct{}
}

type hookedConn struct {
	net.Conn
	d      *hookedDialer
	closed chan struct{}
	once   sync.Once
}

func (c *hookedConn) Write(p []byte) (int, error) {
	if ch := c.d.stall.Swap(nil); ch != nil {
		c.d.stalled <- struct{}{}
		select {
		case <-*ch:
		case <-c.closed:
			return 0, net.ErrClosed
		}
	}
	n, err := c.Conn.Write(p)
	if f := c.d.after.Swap(nil); f != nil {
		(*f)()
	}
	return n, err
}

func (c *hookedConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// dialHooked dials url with every connection of the client (its
// reconnects too) made by a hookedDialer. The client dials through
// http.DefaultClient, which this swaps until the test ends: tests using
// it cannot be parallel.
func dialHooked(t *testing.T, url string, o *Options) (*Client, *hookedDialer) {
	t.Helper()
	d := &hookedDialer{stalled: make(chan struct{}, 1)}
	orig := http.DefaultClient
	t.Cleanup(func() { http.DefaultClient = orig }) // after dial's Close
	http.DefaultClient = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			d.dials.Add(1)
			return &hookedConn{Conn: c, d: d, closed: make(chan struct{})}, nil
		},
	}}
	return dial(t, url, o), d
}

// recordStates sets o.OnStateChange to keep the states it reports.
func recordStates(o *Options) func() []State {
	var mu sync.Mutex
	var states []State
	o.OnStateChange = func(s State) {
		mu.Lock()
		states = append(states, s)
		mu.Unlock()
	}
	return func() []State {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(states)
	}
}

// A call whose ctx ended just after its frame was written, before the
// WebSocket library's write returned, dropped the connection: the library
// closes it when the ctx of a Write ends before the write is done. Every
// other call on the client then waited for a reconnect. Frames are now
// written under a ctx the caller cannot cancel.
func TestCalls_ctxEndingJustAfterTheWriteKeepsTheConnection(t *testing.T) {
	fs := newFakeServer(t, "")
	o := testOptions(t)
	states := recordStates(o)
	c, d := dialHooked(t, fs.URL, o)
	calls := []struct {
		name string
		call func(ctx context.Context, i int) error
	}{
		{"Put", func(ctx context.Context, i int) error { return c.Put(ctx, "m", strconv.Itoa(i), i) }},
		{"Ping", func(ctx context.Context, _ int) error { _, err := c.Ping(ctx); return err }},
		{"Subscribe", func(ctx context.Context, _ int) error { _, err := c.Subscribe(ctx, "m", nil); return err }},
	}
	for i := range 10 {
		for _, tc := range calls {
			ctx, cancel := context.WithCancel(context.Background())
			f := func() { cancel() }
			d.after.Store(&f)
			err := tc.call(ctx, i)
			cancel()
			// Its answer may win the race with the ctx's end.
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Fatalf("%s %d = %v, want nil or context.Canceled", tc.name, i, err)
			}
		}
	}
	if err := c.Put(ctxT(t), "m", "last", 1); err != nil {
		t.Fatal(err)
	}
	_ = c.Close() // waits for the state callbacks
	if n := d.dials.Load(); n != 1 {
		t.Errorf("%d connections, want 1; states %v", n, states())
	}
	if slices.Contains(states(), StateDisconnected) {
		t.Errorf("states %v: the connection dropped", states())
	}
}

// A call whose ctx ends while its frame write is blocked returns at once;
// the frame goes out whole once the server reads again, on the same
// connection, or, if it does not within WriteTimeout, the connection is
// dropped and the write replayed on the next.
func TestPut_ctxEndsWhileItsFrameIsBlocked(t *testing.T) {
	for _, tc := range []struct {
		name    string
		release bool // the server reads again
		dials   int32
	}{
		{"server reads again", true, 1},
		{"write times out", false, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFakeServer(t, "")
			o := testOptions(t)
			if !tc.release {
				o.WriteTimeout = 100 * time.Millisecond
			}
			c, d := dialHooked(t, fs.URL, o)
			release := make(chan struct{})
			d.stall.Store(&release)
			ctx, cancel := context.WithCancel(context.Background())
			errc := make(chan error, 1)
			go func() { errc <- c.Put(ctx, "m", "k", 1) }()
			<-d.stalled
			cancel()
			select {
			case err := <-errc:
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("Put = %v, want context.Canceled", err)
				}
			case <-time.After(waitFor):
				t.Fatal("Put did not return when its ctx ended during its blocked write")
			}
			if tc.release {
				close(release)
			}
			eventually(t, "the write acknowledged", func() bool { return c.Pending() == 0 })
			if _, ok := fs.record("m", "k"); !ok {
				t.Error("the write is not stored")
			}
			if n := d.dials.Load(); n != tc.dials {
				t.Errorf("%d connections, want %d", n, tc.dials)
			}
		})
	}
}
