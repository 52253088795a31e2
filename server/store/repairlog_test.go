package store

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/plugins/null"
)

// downBackend fails every commit and read while down is set.
type downBackend struct {
	abi.Backend
	down atomic.Bool
}

func (b *downBackend) Apply(ctx context.Context, batch *abi.Batch) error {
	if b.down.Load() {
		return abi.Errorf(abi.CodeUnavailable, "test: storage down")
	}
	return b.Backend.Apply(ctx, batch)
}

func (b *downBackend) Get(ctx context.Context, m string, backup bool, keys []string) ([]abi.Record, error) {
	if b.down.Load() {
		return nil, abi.Errorf(abi.CodeUnavailable, "test: storage down")
	}
	return b.Backend.Get(ctx, m, backup, keys)
}

// warnCounter counts the log lines at warn holding a string.
type warnCounter struct {
	want string
	mu   sync.Mutex
	n    int
}

func (w *warnCounter) Write(p []byte) (int, error) {
	if s := string(p); strings.Contains(s, "[WARN]") && strings.Contains(s, w.want) {
		w.mu.Lock()
		w.n++
		w.mu.Unlock()
	}
	return len(p), nil
}

// While storage is down, the records of every failed commit wait to be
// re-read. A failed commit warned once per map of all those waiting, not
// just its own: clients writing to many maps (each write failing, and
// sent again) made each failure warn as many times as maps had failed so
// far, and one write over many maps as many times as it named. The maps
// are now warned of in one line, at most one per sparselog.Every.
func TestStore_failedRereadsWarnOncePerCommit(t *testing.T) {
	t.Parallel()
	be := &downBackend{Backend: null.Open()}
	wc := &warnCounter{want: "cannot re-read records after a failed commit"}
	f := newFixture(t, be, func(o *Options) { o.Logger = hclog.New(&hclog.LoggerOptions{Output: wc, Level: hclog.Info}) })
	be.down.Store(true)
	var many []Op
	for i := 0; i < 50; i++ {
		many = append(many, put("many"+strconv.Itoa(i), "k", "v", ts(t0, 0, "c1")))
	}
	if _, err := f.s.Apply(context.Background(), many, 1); err == nil {
		t.Fatal("a commit succeeded with storage down")
	}
	wc.mu.Lock()
	if wc.n != 1 {
		t.Errorf("%d warnings of failed re-reads for one failed commit over 50 maps, want 1", wc.n)
	}
	wc.mu.Unlock()
	const commits = 20
	for i := 0; i < commits; i++ {
		if _, err := f.s.Apply(context.Background(), []Op{put("m"+strconv.Itoa(i), "k", "v", ts(t0, 0, "c1"))}, 1); err == nil {
			t.Fatal("a commit succeeded with storage down")
		}
	}
	wc.mu.Lock()
	defer wc.mu.Unlock()
	if wc.n > 1+commits {
		t.Errorf("%d warnings of failed re-reads for %d failed commits, want at most one each", wc.n, 1+commits)
	}
}

// Past the failed commits kept to learn their outcome (maxUnsure), each
// further failed commit drops the oldest with a warning: while storage is
// down, one per failed commit, at the rate clients send writes. They are
// warned of at most once per sparselog.Every, with the count.
func TestStore_droppedUnsureCommitsWarnSparsely(t *testing.T) {
	t.Parallel()
	be := &downBackend{Backend: null.Open()}
	wc := &warnCounter{want: "cannot tell whether a failed commit was applied"}
	f := newFixture(t, be, func(o *Options) { o.Logger = hclog.New(&hclog.LoggerOptions{Output: wc, Level: hclog.Info}) })
	be.down.Store(true)
	const commits = maxUnsure + 20
	for i := 0; i < commits; i++ {
		if _, err := f.s.Apply(context.Background(), []Op{put("m", "k"+strconv.Itoa(i), "v", ts(t0, 0, "c1"))}, 1); err == nil {
			t.Fatal("a commit succeeded with storage down")
		}
	}
	wc.mu.Lock()
	defer wc.mu.Unlock()
	// One, or two if the loop took longer than sparselog.Every.
	if wc.n < 1 || wc.n > 2 {
		t.Errorf("%d warnings of failed commits dropped for %d failed commits, want 1", wc.n, commits)
	}
}
