package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/internal/faultbackend"
	"github.com/topgun-go/topgun/plugins/null"
	"github.com/topgun-go/topgun/server/wire"
)

// failingApply is a backend whose next fail commits fail, and, when every
// is set, every every-th commit, as a store that is briefly unreachable
// does.
type failingApply struct {
	abi.Backend
	fail    atomic.Int32
	every   int64
	commits atomic.Int64
}

func (f *failingApply) Apply(ctx context.Context, b *abi.Batch) error {
	n := f.commits.Add(1)
	if f.fail.Add(-1) >= 0 || (f.every > 0 && n%f.every == 0) {
		return abi.Errorf(abi.CodeUnavailable, "injected commit failure")
	}
	return f.Backend.Apply(ctx, b)
}

// This project's server answers a write it could not store with ERROR 500
// ("re-send it") and keeps the connection. The client kept such a write
// pending without sending it again for as long as the connection lived
// (not with the next write either): its Put waited for its ctx and
// Pending stayed above 0. It is sent again now, after a pause, on the same
// connection, until stored; a write queued behind it waits for nothing.
func TestPut_writeTheServerFailedToStoreIsSentAgain(t *testing.T) {
	before, _ := clientGoroutines()
	be := &failingApply{Backend: null.Open()}
	url, st := serveBackend(t, be, -1, nil)
	o := testOptions(t)
	states := recordStates(o)
	var serverErrors atomic.Int32
	o.OnServerError = func(*wire.ErrorMessage) { serverErrors.Add(1) }
	c := dial(t, url, o)

	be.fail.Store(3) // the first write fails three times
	if err := c.Put(ctxT(t), "m", "k", "v1"); err != nil {
		t.Fatalf("Put of a write the server failed to store, then stored: %v", err)
	}
	if n := serverErrors.Load(); n != 3 {
		t.Errorf("%d ERRORs, want 3 (one per failed commit)", n)
	}
	if err := c.Put(ctxT(t), "m", "k2", "v2"); err != nil {
		t.Fatal(err)
	}
	if n := c.Pending(); n != 0 {
		t.Errorf("%d writes pending after every Put returned", n)
	}
	for _, k := range []string{"k", "k2"} {
		if _, ok, err := st.Get(ctxT(t), "m", k); err != nil || !ok {
			t.Errorf("%s not stored (%v, %v)", k, ok, err)
		}
	}
	if st := states(); slices.Contains(st, StateDisconnected) {
		t.Errorf("states %v: the write was re-sent by a reconnect, not on its connection", st)
	}

	// Close while a failed write waits to be sent again.
	be.fail.Store(1 << 30)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Put(ctx, "m", "k3", "v3") }()
	eventually(t, "an ERROR for the failing write", func() bool { return serverErrors.Load() > 3 })
	_ = c.Close()
	cancel()
	<-done
	noGoroutinesLeft(t, before)
}

// keyAttempts counts, per key, the commits a backend was asked to make
// that carried it.
type keyAttempts struct {
	abi.Backend
	mu sync.Mutex
	n  map[string]int
}

func (k *keyAttempts) Apply(ctx context.Context, b *abi.Batch) error {
	k.mu.Lock()
	for _, m := range b.Mutations {
		k.n[m.Key]++
	}
	k.mu.Unlock()
	return k.Backend.Apply(ctx, b)
}

func (k *keyAttempts) of(key string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.n[key]
}

// A write the server could not store waits out its backoff before it is
// sent again, also while the client sends other writes. Sent along with
// each new write, a client writing steadily while its server's storage is
// down sent its whole backlog of failed writes again with every new one.
func TestPut_failedWriteWaitsItsBackoffWhileOthersAreSent(t *testing.T) {
	failing := &failingApply{Backend: null.Open()}
	failing.fail.Store(1 << 30)
	be := &keyAttempts{Backend: failing, n: map[string]int{}}
	url, _ := serveBackend(t, be, -1, nil)
	o := testOptions(t)
	o.BackoffInitial = time.Hour
	o.BackoffMax = time.Hour
	var serverErrors atomic.Int32
	o.OnServerError = func(*wire.ErrorMessage) { serverErrors.Add(1) }
	c := dial(t, url, o)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // before the wait: the Puts wait out an hour otherwise
	const writes = 5
	for i := range writes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.Put(ctx, "m", fmt.Sprint("k", i), "v")
		}()
		eventually(t, "the write's ERROR", func() bool {
			return be.of(fmt.Sprint("k", i)) > 0 && serverErrors.Load() >= int32(i+1)
		})
	}
	for i := range writes {
		if n := be.of(fmt.Sprint("k", i)); n != 1 {
			t.Errorf("k%d was sent %d times within its first backoff of an hour, want once", i, n)
		}
	}
	if n := serverErrors.Load(); n != writes {
		t.Errorf("%d ERRORs for %d failed writes, each within its first backoff", n, writes)
	}
}

// Once the server acknowledges a write, its storage stores again: a write
// it failed to store is sent at once, not after the rest of its backoff.
func TestPut_failedWriteSentAgainOnceAnotherIsAcknowledged(t *testing.T) {
	be := &failingApply{Backend: null.Open()}
	url, st := serveBackend(t, be, -1, nil)
	o := testOptions(t)
	o.BackoffInitial = time.Hour
	o.BackoffMax = time.Hour
	var serverErrors atomic.Int32
	o.OnServerError = func(*wire.ErrorMessage) { serverErrors.Add(1) }
	c := dial(t, url, o)
	be.fail.Store(1)
	done := make(chan error, 1)
	go func() { done <- c.Put(ctxT(t), "m", "failed", "v") }()
	eventually(t, "the write's ERROR", func() bool { return serverErrors.Load() > 0 })
	if err := c.Put(ctxT(t), "m", "stored", "v"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the failed write, once another was acknowledged: %v", err)
	}
	if _, ok, err := st.Get(ctxT(t), "m", "failed"); err != nil || !ok {
		t.Errorf("the failed write is not stored (%v, %v)", ok, err)
	}
}

// A write the server's storage refuses for what it holds (a plugin's
// stricter rule) is final: Put and ORAdd return a *RejectedError with
// storage's reason at once, and the write is not sent again. The server
// answered it with ERROR 500 ("re-send it") before, so the client sent it
// again after every backoff, for good, and Put waited for its ctx.
func TestPut_writeStorageRefusesIsRejected(t *testing.T) {
	url, _ := serveBackend(t, &faultbackend.MapRefusing{Backend: null.Open(), Refused: "bad"}, -1, nil)
	o := testOptions(t)
	var serverErrors atomic.Int32
	o.OnServerError = func(*wire.ErrorMessage) { serverErrors.Add(1) }
	c := dial(t, url, o)
	check := func(what string, err error) {
		t.Helper()
		var re *RejectedError
		if !errors.As(err, &re) || !errors.Is(err, ErrRejected) || !strings.Contains(re.Reason, `map "bad" is not allowed by this plugin`) {
			t.Errorf("%s = %v, want a *RejectedError with storage's reason", what, err)
		}
	}
	check("Put", c.Put(ctxT(t), "bad", "k", "v"))
	_, err := c.ORAdd(ctxT(t), "bad", "o", "v", 0) // refused at the merge's read
	check("ORAdd", err)
	if err := c.Put(ctxT(t), "good", "k", "v"); err != nil {
		t.Fatal(err)
	}
	if n := c.Pending(); n != 0 {
		t.Errorf("%d writes pending: the refused ones are kept to send again", n)
	}
	if n := serverErrors.Load(); n != 0 {
		t.Errorf("%d ERRORs, want none", n)
	}
}
