package store

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/plugins/null"
)

// holdBackend can hold one Get after it has read storage, and one Apply
// after it has written it, so a test can order a read against a commit.
type holdBackend struct {
	abi.Backend
	holdGet    atomic.Bool
	gotGet     chan struct{}
	releaseGet chan struct{}
	holdApply  atomic.Bool
	applied    chan struct{}
	release    chan struct{}
}

func (b *holdBackend) Get(ctx context.Context, m string, backup bool, keys []string) ([]abi.Record, error) {
	recs, err := b.Backend.Get(ctx, m, backup, keys)
	if b.holdGet.CompareAndSwap(true, false) {
		b.gotGet <- struct{}{}
		<-b.releaseGet
	}
	return recs, err
}

func (b *holdBackend) Apply(ctx context.Context, batch *abi.Batch) error {
	err := b.Backend.Apply(ctx, batch)
	if b.holdApply.CompareAndSwap(true, false) {
		b.applied <- struct{}{}
		<-b.release
	}
	return err
}

// TestStore_readsDoNotGoBackDuringCommit: a reader that read a record
// before a commit rewrote it, and fills the cache only after another
// reader already saw the new record in storage, must not make later reads
// return the old record (until the commit's own cache update).
func TestStore_readsDoNotGoBackDuringCommit(t *testing.T) {
	be := &holdBackend{Backend: null.Open(), gotGet: make(chan struct{}), releaseGet: make(chan struct{}),
		applied: make(chan struct{}), release: make(chan struct{})}
	f := newFixture(t, be, nil)
	f.apply(put("m", "k", "old", ts(t0, 0, "c1")))
	// A fresh store: the record is not cached.
	f.s.Close()
	f.open()

	// Reader A reads "old" from storage and stops before filling the cache.
	be.holdGet.Store(true)
	slow := make(chan string)
	go func() {
		v, _ := f.get("m", "k")
		slow <- v
	}()
	<-be.gotGet
	// A write of "new" reaches storage; its commit stops there.
	be.holdApply.Store(true)
	wrote := make(chan error, 1)
	go func() {
		_, err := f.s.Apply(context.Background(), []Op{put("m", "k", "new", ts(t0, 1, "c1"))}, 1)
		wrote <- err
	}()
	<-be.applied
	// Reader B reads "new" from storage.
	if v, _ := f.get("m", "k"); v != "new" {
		t.Fatalf("read %q, want the record in storage, %q", v, "new")
	}
	// Reader A fills the cache with what it read.
	close(be.releaseGet)
	<-slow
	// Reader B reads again: it must not go back.
	v, _ := f.get("m", "k")
	close(be.release)
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	if v != "new" {
		t.Fatalf("after reading %q, a read returned the older %q", "new", v)
	}
}
