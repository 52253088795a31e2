package client

import (
	"context"
	"errors"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/topgun-go/topgun/server/wire"
)

// Close racing every call: each returns ErrClosed (or, having started
// before it, succeeds or fails with ErrSyncInProgress),
// and no goroutine of the client outlives it.
func TestCloseRacesEveryCall(t *testing.T) {
	for round := 0; round < 10; round++ {
		before := runtime.NumGoroutine()
		fs := newFakeServer(t, "")
		fs.noAcks.Store(true)
		fs.noPongs.Store(true)
		fs.setIntercept(func(c *fakeConn, m wire.Message) bool {
			switch m.(type) {
			case *wire.QuerySub, *wire.SyncInit:
				return true // never answered
			}
			return false
		})
		o := testOptions(t)
		o.OnStateChange = func(State) {}
		o.OnServerError = func(*wire.ErrorMessage) {}
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		c, err := Dial(ctx, fs.URL, o)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 100)
		calls := []func() error{
			func() error { return c.Put(ctx, "m", "k", 1) },
			func() error { return c.Batch(ctx, Op{Map: "m", Key: "a", Value: 1}, Op{Map: "m", Key: "b", Value: 2}) },
			func() error { _, err := c.ORAdd(ctx, "o", "k", 1, 0); return err },
			func() error { _, err := c.ORGet(ctx, "o", "k"); return err },
			func() error { _, err := c.Subscribe(ctx, "m", nil); return err },
			func() error { _, err := c.SyncMap(ctx, "s", nil); return err },
			func() error { _, err := c.Ping(ctx); return err },
		}
		for _, f := range calls {
			for i := 0; i < 3; i++ {
				wg.Add(1)
				go func() { defer wg.Done(); errs <- f() }()
			}
		}
		if round%2 == 0 {
			time.Sleep(20 * time.Millisecond)
		}
		var cw sync.WaitGroup
		for i := 0; i < 2; i++ {
			cw.Add(1)
			go func() { defer cw.Done(); _ = c.Close() }()
		}
		cw.Wait()
		wg.Wait()
		close(errs)
		for err := range errs {
			if err == nil || errors.Is(err, ErrClosed) || errors.Is(err, ErrSyncInProgress) {
				continue
			}
			t.Errorf("round %d: call after Close = %v", round, err)
		}
		cancel()
		fs.Close()
		deadline := time.Now().Add(waitFor)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<20)
			t.Fatalf("round %d: %d goroutines, %d before\n%s", round, n, before, buf[:runtime.Stack(buf, true)])
		}
	}
}

// Close while calls wait behind, or inside, a frame write blocked on a
// server that stopped reading: each call fails with ErrClosed, as Close
// promises, not with ErrDisconnected (which says "retry").
func TestClose_callsBlockedOnSendGetErrClosed(t *testing.T) {
	t.Parallel()
	_, c := stalledClient(t)
	big := strings.Repeat("x", 1900<<10) // under the 2 MiB frame limit
	type result struct {
		name string
		err  error
	}
	res := make(chan result, 16)
	// ORGets of a 1.9 MB key: one of them blocks in its own frame write,
	// holding the send lock, and the others wait for it or for an answer.
	for i := 0; i < 6; i++ {
		go func() {
			_, err := c.ORGet(ctxT(t), "o", big+strconv.Itoa(i))
			res <- result{"ORGet", err}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	go func() { _, err := c.Ping(ctxT(t)); res <- result{"Ping", err} }()
	go func() { _, err := c.SyncMap(ctxT(t), "s", nil); res <- result{"SyncMap", err} }()
	time.Sleep(100 * time.Millisecond)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 8; i++ {
		select {
		case r := <-res:
			if !errors.Is(r.err, ErrClosed) {
				t.Errorf("%s = %v, want ErrClosed", r.name, r.err)
			}
		case <-time.After(waitFor):
			t.Fatal("a call did not return after Close")
		}
	}
}

// Subscribe whose ctx ends while it waits for the initial results returns
// then, even when another write is blocked holding the send lock (its
// QUERY_UNSUB must not wait for that write's WriteTimeout).
func TestSubscribe_ctxEndsWhileSendBlocked(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, "")
	fs.setIntercept(func(c *fakeConn, m wire.Message) bool {
		_, ok := m.(*wire.QuerySub)
		return ok // never answered
	})
	o := testOptions(t)
	o.WriteTimeout = stalledWriteTimeout
	c := dial(t, fs.URL, o)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	subErr := make(chan error, 1)
	go func() { _, err := c.Subscribe(ctx, "m", nil); subErr <- err }()
	eventually(t, "QUERY_SUB", func() bool { return fs.count(wire.TypeQuerySub) == 1 })
	stall(t, fs, c)
	blockSend(c)
	cancel()
	select {
	case err := <-subErr:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Subscribe = %v, want context.Canceled", err)
		}
	case <-time.After(callBound):
		t.Fatal("Subscribe did not return when its ctx ended")
	}
}

// A subscription that is not drained is closed with ErrSlowConsumer without
// stalling the connection's reader, even while a write is blocked: the
// other subscriptions keep getting their updates.
func TestSlowConsumer_doesNotStallReaderBehindBlockedWrite(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, "")
	o := testOptions(t)
	o.WriteTimeout = stalledWriteTimeout
	o.SubscriptionBuffer = 1
	c := dial(t, fs.URL, o)
	slow, err := c.Subscribe(ctxT(t), "m", nil)
	if err != nil {
		t.Fatal(err)
	}
	fast, err := c.Subscribe(ctxT(t), "m", nil)
	if err != nil {
		t.Fatal(err)
	}
	var conn *fakeConn
	fs.mu.Lock()
	for fc := range fs.conns {
		conn = fc
	}
	fs.mu.Unlock()
	stall(t, fs, c)
	blockSend(c)
	// Two updates to slow: the first fills its buffer, the second closes it.
	for i := 0; i < 3; i++ {
		fs.send(conn, &wire.QueryUpdate{QueryID: fast.ID, Key: "k" + strconv.Itoa(i), Value: i, ChangeType: wire.Enter})
		if i < 2 {
			fs.send(conn, &wire.QueryUpdate{QueryID: slow.ID, Key: "k", Value: i, ChangeType: wire.Enter})
		}
		select {
		case <-fast.Updates:
		case <-time.After(callBound):
			t.Fatalf("update %d not delivered: the reader is stalled", i)
		}
	}
	eventually(t, "slow closed", func() bool { return errors.Is(slow.Err(), ErrSlowConsumer) })
}

// A call made while Close runs sees either the connection or the close,
// never a client that is neither connected nor closed (ErrNotConnected
// says "wait for a reconnect", which never comes).
func TestClose_noNotConnectedWindow(t *testing.T) {
	fs := newFakeServer(t, "")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel() // Ping answers at once from its checks, without the network
	for round := 0; round < 300; round++ {
		c := dial(t, fs.URL, testOptions(t))
		stop := make(chan struct{})
		bad := make(chan error, 1)
		var wg sync.WaitGroup
		for i := 0; i < 2; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := 0; n < 1_000_000; n++ {
					_, err := c.Ping(cancelled)
					if errors.Is(err, ErrNotConnected) {
						select {
						case bad <- err:
						default:
						}
						return
					}
					if errors.Is(err, ErrClosed) {
						return
					}
					select {
					case <-stop:
						return
					default:
					}
				}
			}()
		}
		runtime.Gosched()
		_ = c.Close()
		close(stop)
		wg.Wait()
		select {
		case err := <-bad:
			t.Fatalf("round %d: Ping during Close = %v, want ErrClosed", round, err)
		default:
		}
	}
}
