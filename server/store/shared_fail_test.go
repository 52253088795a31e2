package store

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/plugins/postgres"
	"github.com/topgun-go/topgun/plugins/postgres/pgtest"
	"github.com/topgun-go/topgun/server/record"
)

// failingPG is a PostgreSQL backend whose checked commits fail, unapplied,
// while fail is set; held, when set, blocks a commit until it is closed.
type failingPG struct {
	*postgres.Backend
	fail    atomic.Bool
	entered chan struct{}
	held    atomic.Pointer[chan struct{}]
}

func (b *failingPG) ApplyChecked(ctx context.Context, batch *abi.Batch, expect []abi.Expect) error {
	if h := b.held.Load(); h != nil {
		select {
		case b.entered <- struct{}{}:
		default:
		}
		<-*h
	}
	if b.fail.Load() {
		return abi.Errorf(abi.CodeUnavailable, "test: commit failed")
	}
	return b.Backend.ApplyChecked(ctx, batch, expect)
}

// sharedPairFailing is sharedPairURL whose second store's commits can be
// made to fail; opts, if not nil, adjusts the second store's options.
func sharedPairFailing(t *testing.T, opts func(*Options)) (a, b *fixture, fb *failingPG, url string) {
	t.Helper()
	url = pgtest.FreshSchema(t)
	wall := &atomic.Int64{}
	wall.Store(t0)
	open := func() *postgres.Backend {
		be, err := postgres.Open(context.Background(), url, nil)
		if err != nil {
			t.Fatalf("postgres open: %v", err)
		}
		t.Cleanup(func() { be.Close() })
		return be
	}
	a = newFixtureOn(t, open(), wall, nil)
	fb = &failingPG{Backend: open(), entered: make(chan struct{}, 1)}
	b = newFixtureOn(t, fb, wall, opts)
	return a, b, fb, url
}

// awaitAnnounced waits for B's feed to announce A's write of key k and for
// B's Merkle root to match A's (storage's), failing after 10 s.
func awaitAnnounced(t *testing.T, a, b *fixture, sub *Subscription, k, want string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for heard := false; !heard; {
		select {
		case c, ok := <-sub.C():
			if !ok {
				t.Fatalf("feed closed: %v", sub.Err())
			}
			for _, ch := range c.Changes {
				if ch.Key == k && ch.Kind == ChangePut && ch.Record.LWW.Value.Text() == want {
					heard = true
				}
			}
		case <-deadline:
			t.Fatalf("another server's write of %q never reached B's feed", k)
		}
	}
	until(t, "B's Merkle root matches A's", func() bool { return a.s.Root("m", KindLWW) == b.s.Root("m", KindLWW) })
}

// Another server's write, read (and found newer) by a merge of this
// store whose commit then fails, is still announced and indexed once its
// notification arrives after the failure.
func TestShared_readByFailedCommitHeardAfter(t *testing.T) {
	a, b, fb, url := sharedPairFailing(t, nil)
	sub := b.s.Subscribe()
	defer sub.Close()
	notify := writeElsewhere(t, url, a, "m", "k2", record.NewLWW(record.StringValue("fromA"), ts(t0+10, 0, "c1")))
	fb.fail.Store(true)
	if _, err := b.s.Apply(context.Background(), []Op{put("m", "k1", "mine", ts(t0+1, 0, "c2")), put("m", "k2", "older", ts(t0, 0, "c2"))}, 1); err == nil {
		t.Fatal("the commit did not fail")
	}
	fb.fail.Store(false)
	notify()
	awaitAnnounced(t, a, b, sub, "k2", "fromA")
}

// The same with the notification heard while the failing commit is in
// flight: the refresh finds the key held and reads it again after.
func TestShared_readByFailedCommitHeardDuring(t *testing.T) {
	a, b, fb, url := sharedPairFailing(t, nil)
	sub := b.s.Subscribe()
	defer sub.Close()
	notify := writeElsewhere(t, url, a, "m", "k2", record.NewLWW(record.StringValue("fromA"), ts(t0+10, 0, "c1")))
	fb.fail.Store(true)
	hold := make(chan struct{})
	fb.held.Store(&hold)
	done := make(chan error, 1)
	go func() {
		_, err := b.s.Apply(context.Background(), []Op{put("m", "k1", "mine", ts(t0+1, 0, "c2")), put("m", "k2", "older", ts(t0, 0, "c2"))}, 1)
		done <- err
	}()
	<-fb.entered // the commit is in flight
	b.s.merged.Store(0)
	notify()
	// The refresh is merged into the next txn, on top of the held one.
	for i := 0; i < 1000 && b.s.merged.Load() == 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if b.s.merged.Load() == 0 {
		t.Fatal("the refresh was never merged")
	}
	fb.held.Store(nil)
	close(hold)
	if err := <-done; err == nil {
		t.Fatal("the commit did not fail")
	}
	fb.fail.Store(false)
	awaitAnnounced(t, a, b, sub, "k2", "fromA")
}

// flakyPG fails some checked commits: before applying them, or after (as
// when the connection breaks once the commit was sent).
type flakyPG struct {
	*postgres.Backend
	n, g atomic.Int64
}

func (b *flakyPG) Get(ctx context.Context, m string, backup bool, keys []string) ([]abi.Record, error) {
	if b.g.Add(1)%7 == 0 {
		return nil, abi.Errorf(abi.CodeUnavailable, "test: read failed")
	}
	return b.Backend.Get(ctx, m, backup, keys)
}

func (b *flakyPG) ApplyChecked(ctx context.Context, batch *abi.Batch, expect []abi.Expect) error {
	switch b.n.Add(1) % 5 {
	case 1:
		return abi.Errorf(abi.CodeUnavailable, "test: commit failed")
	case 3:
		if err := b.Backend.ApplyChecked(ctx, batch, expect); err != nil {
			return err
		}
		return abi.Errorf(abi.CodeUnavailable, "test: connection lost after commit")
	}
	return b.Backend.ApplyChecked(ctx, batch, expect)
}

// Two servers writing the same keys (LWW and OR), with commits failing
// both ways: once quiet, each index matches a store rebuilt from storage.
func TestShared_convergesUnderFailures(t *testing.T) {
	url := pgtest.FreshSchema(t)
	wall := &atomic.Int64{}
	wall.Store(t0)
	var fs []*fixture
	for i := 0; i < 2; i++ {
		be, err := postgres.Open(context.Background(), url, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { be.Close() })
		fs = append(fs, newFixtureOn(t, &flakyPG{Backend: be}, wall, func(o *Options) { o.Logger = hclog.NewNullLogger() }))
	}
	var models []*feedModel
	for _, f := range fs {
		models = append(models, watchFeed(t, f.s))
	}
	var wg sync.WaitGroup
	var ok, failed atomic.Int64
	for fi, f := range fs {
		for w := 0; w < 3; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 60; i++ {
					k := fmt.Sprint("k", (i*7+w*3+fi)%6)
					stamp := ts(t0+uint64(i*10+w*3+fi), 0, fmt.Sprint("c", fi, w))
					tag := fmt.Sprint(fi, w, i)
					var ops []Op
					switch i % 3 {
					case 0:
						ops = []Op{put("l", k, tag, stamp), put("l", "x"+k, tag, stamp)}
					case 1:
						ops = []Op{{Map: "o", Key: k, Kind: OpORAdd, Value: record.StringValue(tag), Timestamp: stamp, Tag: tag}}
					default:
						ops = []Op{{Map: "o", Key: k, Kind: OpORRemove, Tag: fmt.Sprint(1-fi, w, i-1)}, put("l", k, tag, ts(t0, 0, "old"))}
					}
					if fi == 0 && w == 0 && i == 30 {
						pgtest.Exec(t, url, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = $1`,
							"LISTEN "+pgx.Identifier{f.be.(*flakyPG).Channel()}.Sanitize())
					}
					if _, err := f.s.Apply(context.Background(), ops, uint64(fi+1)); err != nil {
						failed.Add(1)
					} else {
						ok.Add(1)
					}
				}
			}()
		}
	}
	wg.Wait()
	t.Logf("%d applies succeeded, %d failed", ok.Load(), failed.Load())
	be, err := postgres.Open(context.Background(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	ref := newFixtureOn(t, be, wall, nil)
	for _, m := range []struct {
		name string
		kind Kind
	}{{"l", KindLWW}, {"o", KindOR}} {
		for i, f := range fs {
			until(t, fmt.Sprintf("server %d's %s root matches storage's", i, m.name), func() bool {
				return f.s.Root(m.name, m.kind) == ref.s.Root(m.name, m.kind)
			})
		}
	}

	// A client that only follows a server's feed holds what storage holds.
	want := newFeedModel()
	want.fromStore(t, ref)
	for i, m := range models {
		until(t, fmt.Sprintf("server %d's feed follower holds what storage holds", i), func() bool { return m.equal(want) })
	}
}

// feedModel is what a client following a store's feed holds: LWW stamps
// by key and live OR tags by key.
type feedModel struct {
	mu   sync.Mutex
	lww  map[string]record.Timestamp
	or   map[string]map[string]bool
	tomb map[string]map[string]bool
}

func newFeedModel() *feedModel {
	return &feedModel{lww: map[string]record.Timestamp{}, or: map[string]map[string]bool{}, tomb: map[string]map[string]bool{}}
}

func watchFeed(t *testing.T, s *Store) *feedModel {
	m := newFeedModel()
	sub := s.Subscribe()
	t.Cleanup(sub.Close)
	go func() {
		for c := range sub.C() {
			m.mu.Lock()
			for _, ch := range c.Changes {
				m.take(ch)
			}
			m.mu.Unlock()
		}
		if err := sub.Err(); err != nil && err != errFeedClosed {
			t.Errorf("feed: %v", err)
		}
	}()
	return m
}

func (m *feedModel) take(ch Change) {
	k := ch.Map + "/" + ch.Key
	switch ch.Kind {
	case ChangePut, ChangeRemove:
		if cur, ok := m.lww[k]; !ok || ch.Record.LWW.Timestamp.Compare(cur) > 0 {
			m.lww[k] = ch.Record.LWW.Timestamp
		}
	case ChangeORAdd:
		if m.tomb[k][ch.Tag] {
			return
		}
		if m.or[k] == nil {
			m.or[k] = map[string]bool{}
		}
		m.or[k][ch.Tag] = true
	case ChangeORRemove:
		tags := ch.Tags
		if len(tags) == 0 {
			tags = []string{ch.Tag}
		}
		for _, tag := range tags {
			if m.tomb[k] == nil {
				m.tomb[k] = map[string]bool{}
			}
			m.tomb[k][tag] = true
			delete(m.or[k], tag)
		}
	}
}

// fromStore fills the model from storage, through a store's reads.
func (m *feedModel) fromStore(t *testing.T, f *fixture) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, name := range []string{"l", "o"} {
		err := f.s.scanPages(context.Background(), name, 100, func(r *abi.Record) bool {
			rv, err := record.Decode(r.Value)
			if err != nil {
				t.Error(err)
				return false
			}
			k := name + "/" + r.Key
			if rv.Kind == record.KindLWW {
				m.lww[k] = rv.LWW.Timestamp
				return true
			}
			for _, e := range rv.ORMap.Records {
				if m.or[k] == nil {
					m.or[k] = map[string]bool{}
				}
				m.or[k][e.Tag] = true
			}
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func (m *feedModel) equal(o *feedModel) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(m.lww) != len(o.lww) {
		return false
	}
	for k, v := range m.lww {
		if o.lww[k] != v {
			return false
		}
	}
	live := func(x map[string]map[string]bool) map[string]map[string]bool {
		out := map[string]map[string]bool{}
		for k, tags := range x {
			if len(tags) > 0 {
				out[k] = tags
			}
		}
		return out
	}
	a, b := live(m.or), live(o.or)
	if len(a) != len(b) {
		return false
	}
	for k, tags := range a {
		if len(tags) != len(b[k]) {
			return false
		}
		for tag := range tags {
			if !b[k][tag] {
				return false
			}
		}
	}
	return true
}
