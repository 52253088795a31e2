//go:build linux || darwin || freebsd || openbsd || netbsd || dragonfly

package logstore

import (
	"context"
	"errors"
	"testing"

	"github.com/topgun-go/topgun/abi"
)

// TestOpen_directoryInUse checks that a second store on a directory in use
// is refused: both would append at the same offsets, and the batches one of
// them acknowledged would be overwritten by the other's (found by opening
// two stores, applying a batch through each and reopening: the first
// batch was gone, without an error).
func TestOpen_directoryInUse(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a := openT(t, dir, testOptions(t))
	b := &abi.Batch{Now: 1}
	b.Put("m", "from-a", false, []byte("acknowledged"), 0)
	applyT(t, a, b)

	if s2, err := Open(ctx, dir, testOptions(t)); err == nil {
		b := &abi.Batch{Now: 2}
		b.Put("m", "from-second", false, []byte("x"), 0)
		applyT(t, s2, b)
		s2.Close()
		t.Fatalf("a second Open of a directory in use succeeded; want it refused with CodeUnavailable")
	} else if !errors.Is(err, abi.ErrUnavailable) {
		t.Fatalf("a second Open of a directory in use = %v; want CodeUnavailable", err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	// Closing releases the directory.
	s := openT(t, dir, testOptions(t))
	if recs, err := s.Get(ctx, "m", false, []string{"from-a"}); err != nil || len(recs) != 1 {
		t.Fatalf("after reopening, Get of the acknowledged record = %d records, %v; want it", len(recs), err)
	}
}
