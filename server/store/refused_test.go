package store

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/internal/faultbackend"
	"github.com/topgun-go/topgun/plugins/null"
	"github.com/topgun-go/topgun/server/record"
)

// A group commit storage refuses for what one of its writes holds (on
// commit, or on the read merging it) fails only the ops refused: the other
// callers gathered with them are committed, and the ops refused are
// rejected one by one with storage's reason, the rest of their call
// stored. Before, every caller of the group commit got the error.
func TestStore_groupCommitRefusedForOneWriteFailsOnlyIt(t *testing.T) {
	for _, refusedAt := range []string{"commit", "read"} {
		t.Run(refusedAt, func(t *testing.T) {
			inner := null.Open()
			rb := &faultbackend.MapRefusing{Backend: inner, Refused: "bad"}
			be := &sizeBackend{Backend: rb, entered: make(chan struct{}, 1), hold: make(chan struct{})}
			f, merged, first := heldFirstCommit(t, be, nil)
			bad := put("bad", "k", "v", ts(t0, 1, "b"))
			if refusedAt == "read" { // an OR add reads the key to merge
				bad = Op{Map: "bad", Key: "k", Kind: OpORAdd, Value: record.StringValue("v"), Timestamp: ts(t0, 1, "b"), Tag: "t"}
			}
			type answer struct {
				res []Result
				err error
			}
			mixed := make(chan answer, 1)
			go func() {
				res, err := f.s.Apply(context.Background(), []Op{put("m", "mixed", "v", ts(t0, 1, "b")), bad, put("m", "mixed2", "v", ts(t0, 1, "b"))}, 2)
				mixed <- answer{res, err}
			}()
			const writers = 3
			errs := make(chan error, writers)
			for i := range writers {
				go func() {
					_, err := f.s.Apply(context.Background(), []Op{put("m", "k"+strconv.Itoa(i), "v", ts(t0, 1, "c"))}, uint64(i+3))
					errs <- err
				}()
			}
			for deadline := time.Now().Add(10 * time.Second); merged.Load() < writers+2 && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
			close(be.hold)
			if err := <-first; err != nil {
				t.Fatal(err)
			}
			for range writers {
				if err := <-errs; err != nil {
					t.Errorf("a write gathered with a refused one failed: %v", err)
				}
			}
			a := <-mixed
			if a.err != nil {
				t.Fatalf("the call holding the refused op failed whole: %v", a.err)
			}
			if a.res[0].Err != nil || a.res[2].Err != nil {
				t.Errorf("ops storage takes were rejected: %+v", a.res)
			}
			re, ok := a.res[1].Err.(*RejectError)
			if !ok || re.Op != 1 || !strings.Contains(re.Reason, `map "bad" is not allowed by this plugin`) || !strings.Contains(re.Reason, "invalid argument") {
				t.Errorf("refused op: %#v, want a rejection of op 1 with storage's reason", a.res[1].Err)
			}
			for _, k := range []string{"k0", "k1", "k2", "mixed", "mixed2"} {
				if _, ok := f.get("m", k); !ok {
					t.Errorf("%s not stored", k)
				}
			}
			if recs, err := inner.Get(context.Background(), "bad", false, []string{"k"}); err != nil || len(recs) != 0 {
				t.Errorf("the refused op: %d records stored, %v", len(recs), err)
			}
			// Refused, the batch was not applied: no commit after it
			// re-reads its keys (which failed before each, for good).
			reads := rb.Reads.Load()
			f.apply(put("m", "later", "v", ts(t0, 2, "c")))
			if n := rb.Reads.Load() - reads; n != 0 {
				t.Errorf("a later commit read the refused map %d times", n)
			}
		})
	}
}

// A commit that fails otherwise (storage unreachable) still fails its
// callers whole, for their clients to send again: only a refusal of the
// content is final.
func TestStore_unavailableCommitStillFailsWhole(t *testing.T) {
	f := newFixture(t, &failingApply{Backend: null.Open(), err: abi.Errorf(abi.CodeUnavailable, "connection lost")}, nil)
	_, err := f.s.Apply(context.Background(), []Op{put("m", "a", "v", ts(t0, 1, "c")), put("m", "b", "v", ts(t0, 1, "c"))}, 1)
	if abi.CodeOf(err) != abi.CodeUnavailable {
		t.Fatalf("Apply = %v, want the unavailable error", err)
	}
}

type failingApply struct {
	abi.Backend
	err error
}

func (b *failingApply) Apply(context.Context, *abi.Batch) error { return b.err }

// A call applied in parts after storage refused one of its ops, whose
// later part then fails otherwise, returns the results of the ops settled
// before that part with the error, for the caller to acknowledge them:
// without them its client sent every op again, and an OR add without a
// tag (the server stamps it) was stored twice.
func TestStore_failureWhileAppliedApartReturnsSettledPrefix(t *testing.T) {
	down := &faultbackend.MapUnavailable{Backend: null.Open(), Down: "flaky"}
	f := newFixture(t, &faultbackend.MapRefusing{Backend: down, Refused: "bad"}, nil)
	down.Failing.Store(true)
	res, err := f.s.Apply(context.Background(), []Op{
		{Map: "or", Key: "k", Kind: OpORAdd, Value: record.StringValue("v")},
		put("bad", "k", "v", ts(t0, 1, "c")),
		put("flaky", "k", "v", ts(t0, 1, "c")),
	}, 1)
	if abi.CodeOf(err) != abi.CodeUnavailable {
		t.Fatalf("Apply = %v, want the unavailable error", err)
	}
	if len(res) != 2 || res[0].Err != nil {
		t.Fatalf("results %+v, want those of ops 0 and 1", res)
	}
	if re, ok := res[1].Err.(*RejectError); !ok || re.Op != 1 {
		t.Fatalf("op 1: %#v, want its rejection", res[1].Err)
	}
	if e, ok, err := f.s.Get(context.Background(), "or", "k"); err != nil || !ok || len(e.Record.ORMap.Records) != 1 {
		t.Fatalf("or/k: %+v %v %v, want the add stored", e, ok, err)
	}
}
