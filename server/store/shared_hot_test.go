package store

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/plugins/postgres"
	"github.com/topgun-go/topgun/plugins/postgres/pgtest"
)

// hotPG is a PostgreSQL backend on which another server keeps changing
// one record: every checked commit writing it conflicts.
type hotPG struct {
	*postgres.Backend
	hot string
}

func (b *hotPG) ApplyChecked(ctx context.Context, batch *abi.Batch, expect []abi.Expect) error {
	for _, m := range batch.Mutations {
		if m.Key == b.hot {
			return abi.Errorf(abi.CodeConflict, "test: record %q changed since it was read (another server wrote it); merge again", m.Key)
		}
	}
	return b.Backend.ApplyChecked(ctx, batch, expect)
}

// A write of records no other server writes, gathered into a group commit
// with a write of a record another server keeps changing, got that
// write's conflict and was merged again, gathered with the hot record's
// writes again, until its eight tries were spent: its client got ERROR
// 500 naming a record it never wrote, and waited its backoff, for as long
// as the other record stayed hot.
func TestShared_writeBesideHotRecordStored(t *testing.T) {
	url := pgtest.FreshSchema(t)
	be, err := postgres.Open(context.Background(), url, nil)
	if err != nil {
		t.Fatalf("postgres open: %v", err)
	}
	t.Cleanup(func() { be.Close() })
	wall := &atomic.Int64{}
	wall.Store(t0)
	f := newFixtureOn(t, &hotPG{Backend: be, hot: "hot"}, wall, nil)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for n := uint32(0); ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				// Fails once its tries are spent: the record stays hot.
				_, _ = f.s.Apply(context.Background(), []Op{put("m", "hot", "h", ts(t0, n, fmt.Sprint("h", i)))}, 1)
			}
		})
	}
	failed := 0
	var firstErr error
	for i := range 100 {
		if _, err := f.s.Apply(context.Background(), []Op{put("m", fmt.Sprint("k", i), "v", ts(t0, 0, "c"))}, 1); err != nil {
			failed++
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	close(stop)
	wg.Wait()
	if failed > 0 {
		t.Errorf("%d of 100 writes of records no other server writes failed (first: %v)", failed, firstErr)
	}
}
