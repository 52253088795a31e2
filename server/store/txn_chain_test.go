package store

import (
	"context"
	"testing"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/plugins/null"
)

// gatedBackend holds every Apply until the test lets it through.
type gatedBackend struct {
	abi.Backend
	entered chan struct{}
	release chan struct{}
}

func (b *gatedBackend) Apply(ctx context.Context, batch *abi.Batch) error {
	b.entered <- struct{}{}
	<-b.release
	return b.Backend.Apply(ctx, batch)
}

// A settled txn no longer holds the txns that were in flight when it was
// merged. Each txn merged while the one before was committing (every txn
// under steady writes) kept it as its dep and overlay, and so on back: the
// newest txn held every txn of the stretch, with their states, encoded
// records and requests, so memory grew with every write for as long as
// writes kept coming.
func TestTxnChainReleased(t *testing.T) {
	be := &gatedBackend{Backend: null.Open(), entered: make(chan struct{}), release: make(chan struct{})}
	f := newFixture(t, be, nil)
	const rounds = 10
	var last *txn
	submit := func(i int) chan error {
		merged := make(chan struct{})
		done := make(chan error, 1)
		op := put("m", "k", "v", ts(t0+uint64(i), 0, "c1"))
		req := &request{done: make(chan error, 1), fnMuts: 1, fn: func(tx *txn) {
			last = tx
			tx.apply(0, &op, 1)
			close(merged)
		}}
		go func() { done <- f.s.submit(context.Background(), req) }()
		<-merged
		return done
	}
	var dones []chan error
	dones = append(dones, submit(0))
	<-be.entered // the first commit is in flight
	for i := 1; i < rounds; i++ {
		dones = append(dones, submit(i)) // merged behind the one in flight
		be.release <- struct{}{}
		<-be.entered
	}
	be.release <- struct{}{}
	for _, d := range dones {
		if err := <-d; err != nil {
			t.Fatal(err)
		}
	}
	held := map[*txn]bool{}
	var walk func(x *txn)
	walk = func(x *txn) {
		if x == nil || held[x] {
			return
		}
		held[x] = true
		walk(x.dep)
		for _, o := range x.overlay {
			walk(o)
		}
	}
	walk(last)
	if n := len(held); n > 2 {
		t.Errorf("the last txn holds %d txns (itself included), want at most 2", n)
	}
}
