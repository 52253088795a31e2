package store

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/plugins/null"
)

// hangingBackend is a lyingBackend whose reads, while hang is set, wait
// for their context: a backend that does not answer.
type hangingBackend struct {
	lyingBackend
	hang    atomic.Bool
	waiting atomic.Int64
	release chan struct{} // closed at the end of the test
}

func (b *hangingBackend) Get(ctx context.Context, m string, backup bool, keys []string) ([]abi.Record, error) {
	if b.hang.Load() {
		b.waiting.Add(1)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-b.release:
			return nil, abi.Errorf(abi.CodeUnavailable, "test: connection down")
		}
	}
	return b.lyingBackend.Get(ctx, m, backup, keys)
}

// Close returns while the applier's idle retry of a failed commit's
// re-read waits on a backend that does not answer. Before, the retry read
// with a context Close never cancelled, and Close waited for it forever.
func TestStore_closeDoesNotWaitForIdleRetryRead(t *testing.T) {
	be := &hangingBackend{lyingBackend: lyingBackend{Backend: null.Open()}, release: make(chan struct{})}
	f := newFixture(t, be, nil)
	t.Cleanup(func() { close(be.release) }) // before the fixture's Close
	be.lie.Store(true)
	be.down.Store(true)
	if _, err := f.s.Apply(context.Background(), []Op{put("m", "k", "two", ts(t0+1, 0, "c1"))}, 1); err == nil {
		t.Fatal("expected the reported failure")
	}
	be.hang.Store(true)
	deadline := time.Now().Add(30 * time.Second)
	for be.waiting.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the applier never retried the re-read")
		}
		time.Sleep(time.Millisecond)
	}
	done := make(chan struct{})
	go func() {
		f.s.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Close hangs while the idle retry's read waits on the backend")
	}
}
