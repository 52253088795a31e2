package store

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/plugins/null"
	"github.com/topgun-go/topgun/server/record"
)

// stallingBackend stands for a database behind a dead link: while stall
// is set, Apply (after applying the batch, with applyFirst: the commit
// reached the database, its answer is lost) and, with readsStall, Get wait
// for their context, as a connection whose packets vanish does.
type stallingBackend struct {
	abi.Backend
	stall, applyFirst, readsStall atomic.Bool
	release                       chan struct{} // closed at the end of the test
}

func (b *stallingBackend) wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return abi.FromContext(ctx.Err())
	case <-b.release:
		return abi.Errorf(abi.CodeUnavailable, "test: connection lost")
	}
}

func (b *stallingBackend) Apply(ctx context.Context, batch *abi.Batch) error {
	if !b.stall.Load() {
		return b.Backend.Apply(ctx, batch)
	}
	if b.applyFirst.Load() {
		if err := b.Backend.Apply(ctx, batch); err != nil {
			return err
		}
	}
	return b.wait(ctx)
}

func (b *stallingBackend) Get(ctx context.Context, m string, backup bool, keys []string) ([]abi.Record, error) {
	if b.readsStall.Load() {
		return nil, b.wait(ctx)
	}
	return b.Backend.Get(ctx, m, backup, keys)
}

const testCommitTimeout = 300 * time.Millisecond

func newStallingFixture(t *testing.T) (*fixture, *stallingBackend) {
	be := &stallingBackend{Backend: null.Open(), release: make(chan struct{})}
	f := newFixture(t, be, func(o *Options) { o.CommitTimeout = testCommitTimeout })
	t.Cleanup(func() { close(be.release) }) // before the fixture's Close
	return f, be
}

// applyWithin applies ops and fails the test when the store does not
// answer within limit.
func applyWithin(t *testing.T, f *fixture, limit time.Duration, ops ...Op) ([]Result, error) {
	t.Helper()
	type answer struct {
		res []Result
		err error
	}
	done := make(chan answer, 1)
	go func() {
		res, err := f.s.Apply(context.Background(), ops, 1)
		done <- answer{res, err}
	}()
	select {
	case a := <-done:
		return a.res, a.err
	case <-time.After(limit):
		t.Fatalf("the write was not answered within %s (commit timeout %s)", limit, testCommitTimeout)
		return nil, nil
	}
}

// A commit the backend never answers fails at the commit timeout, as one
// whose connection broke, and the store goes on: before, it waited with a
// context nothing cancelled, and every write queued behind it stayed
// unanswered until TCP gave up (if ever).
func TestStore_commitTimeoutFailsStalledCommit(t *testing.T) {
	f, be := newStallingFixture(t)
	f.apply(put("m", "k", "one", ts(t0, 0, "c1")))
	be.stall.Store(true)
	start := time.Now()
	_, err := applyWithin(t, f, 10*time.Second, put("m", "k", "two", ts(t0+1, 0, "c1")))
	if err == nil {
		t.Fatal("a commit the backend never answered succeeded")
	}
	if abi.CodeOf(err) != abi.CodeDeadlineExceeded {
		t.Fatalf("error %v (code %v), want deadline exceeded", err, abi.CodeOf(err))
	}
	if took := time.Since(start); took < testCommitTimeout {
		t.Fatalf("failed after %s, before the commit timeout", took)
	}
	be.stall.Store(false)
	// Not applied: the re-sent write changes the record.
	if r := f.apply(put("m", "k", "two", ts(t0+1, 0, "c1"))); !r[0].Changed {
		t.Fatal("the re-sent write of a commit storage never applied was taken for a no-op")
	}
	if v, _ := f.get("m", "k"); v != "two" {
		t.Fatalf("value %q, want two", v)
	}
	if got, want := f.s.Root("m", KindLWW), lwwRootOf(map[string]record.Timestamp{"k": ts(t0+1, 0, "c1")}); got != want {
		t.Fatalf("root %d, want %d", got, want)
	}
}

// A commit the backend applied but whose answer never came fails at the
// commit timeout, unacknowledged, and is then settled like any commit of
// unknown outcome: the index and cache take what storage holds, and the
// change reaches the feed once (without another write arriving).
func TestStore_commitTimeoutAppliedCommitSettles(t *testing.T) {
	f, be := newStallingFixture(t)
	f.apply(put("m", "k", "one", ts(t0, 0, "c1")))
	if v, _ := f.get("m", "k"); v != "one" { // cached
		t.Fatalf("value %q, want one", v)
	}
	sub := f.s.Subscribe()
	defer sub.Close()
	be.stall.Store(true)
	be.applyFirst.Store(true)
	if _, err := applyWithin(t, f, 10*time.Second, put("m", "k", "two", ts(t0+1, 0, "c1"))); err == nil {
		t.Fatal("a commit whose answer never came succeeded")
	}
	be.stall.Store(false)
	awaitFeedPut(t, sub, "k", "two", "the applied write of k never reached the change feed")
	if v, _ := f.get("m", "k"); v != "two" {
		t.Fatalf("value %q after the timed-out commit was applied, want two", v)
	}
	if r := f.apply(put("m", "k", "two", ts(t0+1, 0, "c1"))); r[0].Changed {
		t.Fatal("the re-sent write of an applied commit changed the record again")
	}
	if r := f.apply(put("m", "k", "older", ts(t0, 5, "c2"))); r[0].Changed {
		t.Fatal("a write older than the stored one was applied")
	}
	if got, want := f.s.Root("m", KindLWW), lwwRootOf(map[string]record.Timestamp{"k": ts(t0+1, 0, "c1")}); got != want {
		t.Fatalf("root %d, want %d", got, want)
	}
	select {
	case c := <-sub.C():
		for _, ch := range c.Changes {
			if ch.Key == "k" {
				t.Fatalf("k published again: %+v", ch)
			}
		}
	default:
	}
}

// With reads stalled too (the whole link is dead), the re-reads after a
// timed-out commit, those before the next commit, and the reads a merge
// makes are bounded as well: every write is answered, with an error,
// about one commit timeout after its commit started, and once the link is
// back the store holds what storage holds.
func TestStore_commitTimeoutDeadLink(t *testing.T) {
	f, be := newStallingFixture(t)
	f.apply(put("m", "k", "one", ts(t0, 0, "c1")))
	be.readsStall.Store(true)
	be.stall.Store(true)
	be.applyFirst.Store(true)
	if _, err := applyWithin(t, f, 10*time.Second, put("m", "k", "two", ts(t0+1, 0, "c1"))); err == nil {
		t.Fatal("a commit over a dead link succeeded")
	}
	// k is to be re-read: the next commit's re-read stalls first, and the
	// merge of a write to k reads storage, which stalls as well.
	if _, err := applyWithin(t, f, 10*time.Second, put("m", "other", "x", ts(t0, 0, "c1"))); err == nil {
		t.Fatal("a commit over a dead link succeeded")
	}
	if _, err := applyWithin(t, f, 10*time.Second, put("m", "k", "three", ts(t0+2, 0, "c1"))); err == nil {
		t.Fatal("a write merged over a dead link succeeded")
	}
	be.stall.Store(false)
	be.applyFirst.Store(false)
	be.readsStall.Store(false)
	if r := f.apply(put("m", "k", "older", ts(t0, 5, "c2"))); r[0].Changed {
		t.Fatal("a write older than the stored one was applied")
	}
	f.apply(put("m", "other", "x", ts(t0, 0, "c1")))
	if v, _ := f.get("m", "k"); v != "two" {
		t.Fatalf("value %q, want two (applied before the link died)", v)
	}
	want := lwwRootOf(map[string]record.Timestamp{"k": ts(t0+1, 0, "c1"), "other": ts(t0, 0, "c1")})
	if got := f.s.Root("m", KindLWW); got != want {
		t.Fatalf("root %d, want %d", got, want)
	}
}

// slowBackend answers every Get after delay (or when its context ends
// first), as a database under load does.
type slowBackend struct {
	*stallingBackend
	delay atomic.Int64 // nanoseconds; 0: no delay
}

func (b *slowBackend) Get(ctx context.Context, m string, backup bool, keys []string) ([]abi.Record, error) {
	if d := time.Duration(b.delay.Load()); d > 0 {
		select {
		case <-ctx.Done():
			return nil, abi.FromContext(ctx.Err())
		case <-time.After(d):
		}
	}
	return b.stallingBackend.Get(ctx, m, backup, keys)
}

// newSlowRereadFixture returns a store on a slowBackend and the function
// that leaves it a failed commit of unknown outcome over three maps, whose
// re-reads then take 1.2 commit timeouts in all (one read per map, each
// well within it).
func newSlowRereadFixture(t *testing.T) (*fixture, func()) {
	sb := &stallingBackend{Backend: null.Open(), release: make(chan struct{})}
	be := &slowBackend{stallingBackend: sb}
	f := newFixture(t, be, func(o *Options) { o.CommitTimeout = testCommitTimeout })
	t.Cleanup(func() { close(sb.release) })
	return f, func() {
		t.Helper()
		sb.stall.Store(true)
		sb.applyFirst.Store(true)
		if _, err := applyWithin(t, f, 10*time.Second,
			put("m1", "k", "v", ts(t0, 0, "c1")), put("m2", "k", "v", ts(t0, 0, "c1")), put("m3", "k", "v", ts(t0, 0, "c1"))); err == nil {
			t.Fatal("a commit whose answer never came succeeded")
		}
		sb.stall.Store(false)
		sb.applyFirst.Store(false)
		be.delay.Store(int64(testCommitTimeout * 4 / 10)) // three maps: 1.2 commit timeouts
	}
}

// A failed commit of unknown outcome whose records take longer than the
// commit timeout to re-read (one read per map, each well within it) does
// not stop every later commit. Before, the re-reads before a commit shared
// its deadline: they took all of it each time, never finishing, and every
// commit after was refused unsent ("not started") for as long as the
// backend stayed that slow.
func TestStore_commitTimeoutSlowRereadsDoNotStopCommits(t *testing.T) {
	f, failCommit := newSlowRereadFixture(t)
	failCommit()
	for i := range 4 {
		if _, err := applyWithin(t, f, 10*time.Second, put("other", "j", "x", ts(t0+1, uint32(i), "c1"))); err != nil {
			t.Fatalf("write %d on a backend that answers every call within the commit timeout: %v", i, err)
		}
	}
}

// A failed commit of unknown outcome whose records take longer than the
// commit timeout to re-read is settled all the same, over several tries:
// what one try read stands. Before, each try began again, read as far as
// the timeout let it, and the commit's changes never reached the feed.
func TestStore_commitTimeoutSlowRereadsSettle(t *testing.T) {
	f, failCommit := newSlowRereadFixture(t)
	sub := f.s.Subscribe()
	defer sub.Close()
	failCommit()
	published := map[string]bool{}
	for i := 0; i < 8 && len(published) < 3; i++ {
		if _, err := applyWithin(t, f, 10*time.Second, put("other", "j", "x", ts(t0+1, uint32(i), "c1"))); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	drain:
		for {
			select {
			case c := <-sub.C():
				for _, ch := range c.Changes {
					if ch.Key == "k" {
						if published[ch.Map] {
							t.Fatalf("%s/k published twice", ch.Map)
						}
						published[ch.Map] = true
					}
				}
			default:
				break drain
			}
		}
	}
	if len(published) < 3 {
		t.Fatalf("the applied commit's changes reached the feed for %v only, want m1, m2 and m3", published)
	}
}

// readSignalBackend reports each stalled read that starts with time left
// on its context.
type readSignalBackend struct {
	*stallingBackend
	reading chan struct{}
}

func (b *readSignalBackend) Get(ctx context.Context, m string, backup bool, keys []string) ([]abi.Record, error) {
	if b.readsStall.Load() && ctx.Err() == nil {
		select {
		case b.reading <- struct{}{}:
		default:
		}
	}
	return b.stallingBackend.Get(ctx, m, backup, keys)
}

// A write that arrives while the applier re-reads, on its own (retry
// timer), the records of a failed commit gives way to it: over a dead link
// it is answered within about twice the commit timeout (the re-reads
// before it, then its commit), as documented. Before, it first waited for
// the retry pass to time out too: three commit timeouts.
func TestStore_commitTimeoutRetryPassGivesWayToWrites(t *testing.T) {
	const timeout = time.Second
	sb := &stallingBackend{Backend: null.Open(), release: make(chan struct{})}
	be := &readSignalBackend{stallingBackend: sb, reading: make(chan struct{}, 1)}
	f := newFixture(t, be, func(o *Options) { o.CommitTimeout = timeout })
	t.Cleanup(func() { close(sb.release) })
	f.apply(put("m", "k", "one", ts(t0, 0, "c1")), put("m", "other", "x", ts(t0, 0, "c1")))
	sb.readsStall.Store(true)
	sb.stall.Store(true)
	sb.applyFirst.Store(true)
	if _, err := applyWithin(t, f, 10*time.Second, put("m", "k", "two", ts(t0+1, 0, "c1"))); err == nil {
		t.Fatal("a commit over a dead link succeeded")
	}
	select {
	case <-be.reading: // the retry pass reads k again, and stalls
	case <-time.After(10 * time.Second):
		t.Fatal("no re-read of the failed commit's records")
	}
	start := time.Now()
	if _, err := applyWithin(t, f, 10*time.Second, put("m", "other", "y", ts(t0+1, 0, "c1"))); err == nil {
		t.Fatal("a commit over a dead link succeeded")
	}
	if took := time.Since(start); took > 5*timeout/2 {
		t.Fatalf("a write was answered after %s, over twice the commit timeout (%s)", took, timeout)
	}
}

// repairRaceBackend is a stallingBackend on shared storage, heard by a
// Watch that reports nothing, whose reads of one key fail while
// failSingle is set (reads of several keys, as a merge's prefetch of a
// batch makes, go through).
type repairRaceBackend struct {
	*stallingBackend
	failSingle atomic.Bool
}

func (b *repairRaceBackend) Describe() abi.Description {
	d := b.stallingBackend.Describe()
	d.Capabilities |= abi.CapShared
	return d
}

func (b *repairRaceBackend) Watch(ctx context.Context, fn func(abi.Changed)) error { return nil }

func (b *repairRaceBackend) Get(ctx context.Context, m string, backup bool, keys []string) ([]abi.Record, error) {
	if len(keys) == 1 && b.failSingle.Load() {
		return nil, abi.Errorf(abi.CodeUnavailable, "test: read failed")
	}
	return b.stallingBackend.Get(ctx, m, backup, keys)
}

// On shared storage, a timed-out commit that storage applied reaches the
// feed once, even when a write to its key was merged (reading storage,
// and announcing what the index lacked) before the re-read of the failed
// commit's keys succeeded. Before, the re-read published the change on
// its own (repairShared), and the write's commit published it again.
func TestStore_commitTimeoutSharedPublishedOnce(t *testing.T) {
	sb := &stallingBackend{Backend: null.Open(), release: make(chan struct{})}
	be := &repairRaceBackend{stallingBackend: sb}
	f := newFixture(t, be, func(o *Options) { o.CommitTimeout = testCommitTimeout })
	t.Cleanup(func() { close(sb.release) })
	f.apply(put("m", "k", "one", ts(t0, 0, "c1")))
	sub := f.s.Subscribe()
	defer sub.Close()

	// Once merged, the failed commit's keys cannot be re-read.
	f.s.mergedHook = func() { be.failSingle.Store(true) }
	sb.stall.Store(true)
	sb.applyFirst.Store(true)
	if _, err := applyWithin(t, f, 10*time.Second, put("m", "k", "two", ts(t0+1, 0, "c1"))); err == nil {
		t.Fatal("a commit whose answer never came succeeded")
	}
	sb.stall.Store(false)
	sb.applyFirst.Store(false)
	// The next write reads k from storage (a read of two keys), then the
	// re-reads work again.
	f.s.mergedHook = func() { be.failSingle.Store(false) }
	if _, err := applyWithin(t, f, 10*time.Second, put("m", "k", "three", ts(t0+2, 0, "c1")), put("m", "k2", "x", ts(t0, 0, "c1"))); err != nil {
		t.Fatal(err)
	}
	twos := 0
	for {
		select {
		case c := <-sub.C():
			for _, ch := range c.Changes {
				if ch.Key == "k" && ch.Kind == ChangePut && ch.Record.LWW.Value.Text() == "two" {
					twos++
				}
			}
			continue
		default:
		}
		break
	}
	if twos != 1 {
		t.Fatalf("the applied write of k (two) reached the feed %d times, want once", twos)
	}
}

// multiReadBackend is a stallingBackend whose reads of several keys at
// once fail while failMulti is set: the re-reads of a failed commit over
// several keys of a map fail, while a merge's read of one key goes through.
type multiReadBackend struct {
	*stallingBackend
	failMulti atomic.Bool
}

func (b *multiReadBackend) Get(ctx context.Context, m string, backup bool, keys []string) ([]abi.Record, error) {
	if len(keys) > 1 && b.failMulti.Load() {
		return nil, abi.Errorf(abi.CodeUnavailable, "test: read failed")
	}
	return b.stallingBackend.Get(ctx, m, backup, keys)
}

func orAdd(m, k, tag string, at record.Timestamp) Op {
	return Op{Map: m, Key: k, Kind: OpORAdd, Value: record.StringValue(tag), Tag: tag, Timestamp: at}
}

// drainFeed counts, by key and tag (OR adds) or value (LWW puts), the
// changes the feed holds now.
func drainFeed(sub *Subscription) map[string]int {
	seen := map[string]int{}
	for range 1000 {
		select {
		case c := <-sub.C():
			for _, ch := range c.Changes {
				switch ch.Kind {
				case ChangeORAdd:
					seen[ch.Key+"/"+ch.Tag]++
				case ChangePut:
					seen[ch.Key+"="+ch.Record.LWW.Value.Text()]++
				}
			}
			continue
		default:
		}
		break
	}
	return seen
}

// applyTimedOut applies ops as a commit of unknown outcome: the backend
// applies them but never answers, and re-reads of several keys fail (the
// failed commit's keys cannot be re-read).
func applyTimedOut(t *testing.T, f *fixture, be *multiReadBackend, ops ...Op) {
	t.Helper()
	be.failMulti.Store(true)
	be.stall.Store(true)
	be.applyFirst.Store(true)
	if _, err := applyWithin(t, f, 10*time.Second, ops...); err == nil {
		t.Fatal("a commit whose answer never came succeeded")
	}
}

// wantOnce checks that each of the OR adds (key/tag) reached the feed once.
func wantOnce(t *testing.T, seen map[string]int, adds ...string) {
	t.Helper()
	for _, k := range adds {
		if seen[k] != 1 {
			t.Errorf("OR add %s reached the feed %d times, want once (feed: %v)", k, seen[k], seen)
		}
	}
}

func newMultiReadFixture(t *testing.T) (*fixture, *multiReadBackend) {
	sb := &stallingBackend{Backend: null.Open(), release: make(chan struct{})}
	be := &multiReadBackend{stallingBackend: sb}
	f := newFixture(t, be, func(o *Options) { o.CommitTimeout = testCommitTimeout })
	t.Cleanup(func() { close(sb.release) })
	return f, be
}

// An OR entry of a timed-out commit storage applied reaches the feed once,
// even when a later commit writes its key while the failed commit's
// records cannot be re-read: the later commit's event carries only its own
// entry, and the client's re-sent add is a no-op. Before, that commit
// settled the key and the entry was never announced.
func TestStore_commitTimeoutOREntryReachesFeedAfterLaterCommit(t *testing.T) {
	f, be := newMultiReadFixture(t)
	sub := f.s.Subscribe()
	defer sub.Close()
	applyTimedOut(t, f, be, orAdd("o", "k", "a", ts(t0, 0, "c1")), orAdd("o", "k2", "c", ts(t0, 1, "c1")), orAdd("o", "k3", "d", ts(t0, 2, "c1")))
	be.stall.Store(false)
	be.applyFirst.Store(false)
	// Merged reading k alone; the re-reads of the failed commit's keys
	// before its commit fail.
	if _, err := applyWithin(t, f, 10*time.Second, orAdd("o", "k", "b", ts(t0+1, 0, "c2"))); err != nil {
		t.Fatal(err)
	}
	be.failMulti.Store(false)
	// The client re-sends its add: a no-op, storage has it.
	if r, err := applyWithin(t, f, 10*time.Second, orAdd("o", "k", "a", ts(t0, 0, "c1"))); err != nil || r[0].Changed {
		t.Fatalf("re-sent add: %+v, %v", r, err)
	}
	if _, err := applyWithin(t, f, 10*time.Second, put("other", "j", "x", ts(t0, 0, "c1"))); err != nil {
		t.Fatal(err)
	}
	wantOnce(t, drainFeed(sub), "k/a", "k/b", "k2/c", "k3/d")
}

// The same for LWW: the later write of the key supersedes the failed
// commit's value, and its event carries the whole record, so the failed
// commit's own change of the key is not needed (it is not published).
func TestStore_commitTimeoutLWWAfterLaterCommit(t *testing.T) {
	f, be := newMultiReadFixture(t)
	sub := f.s.Subscribe()
	defer sub.Close()
	applyTimedOut(t, f, be, put("m", "k", "two", ts(t0, 0, "c1")), put("m", "k2", "x", ts(t0, 1, "c1")))
	be.stall.Store(false)
	be.applyFirst.Store(false)
	if _, err := applyWithin(t, f, 10*time.Second, put("m", "k", "three", ts(t0+1, 0, "c2"))); err != nil {
		t.Fatal(err)
	}
	be.failMulti.Store(false)
	if _, err := applyWithin(t, f, 10*time.Second, put("other", "j", "x", ts(t0, 0, "c1"))); err != nil {
		t.Fatal(err)
	}
	seen := drainFeed(sub)
	if seen["k=three"] != 1 || seen["k2=x"] != 1 || seen["k=two"] > 1 {
		t.Fatalf("feed %v, want k=three and k2=x once (k=two, superseded, at most once)", seen)
	}
	if v, _ := f.get("m", "k"); v != "three" {
		t.Fatalf("value %q, want three", v)
	}
}

// An OR entry of a timed-out commit storage applied reaches the feed once
// when the next commit on its key times out too, applied as well: storage
// then holds the later commit's state of the key, and, compared with it,
// the first commit looked not applied there. Before, its entry was never
// announced (the later commit's event carries only its own entry).
func TestStore_commitTimeoutOREntryReachesFeedAfterLaterFailedCommit(t *testing.T) {
	f, be := newMultiReadFixture(t)
	sub := f.s.Subscribe()
	defer sub.Close()
	applyTimedOut(t, f, be, orAdd("o", "k", "a", ts(t0, 0, "c1")), orAdd("o", "k2", "c", ts(t0, 1, "c1")), orAdd("o", "k3", "d", ts(t0, 2, "c1")))
	applyTimedOut(t, f, be, orAdd("o", "k", "b", ts(t0+1, 0, "c2")))
	be.stall.Store(false)
	be.applyFirst.Store(false)
	be.failMulti.Store(false)
	if _, err := applyWithin(t, f, 10*time.Second, put("other", "j", "x", ts(t0, 0, "c1"))); err != nil {
		t.Fatal(err)
	}
	wantOnce(t, drainFeed(sub), "k/a", "k/b", "k2/c", "k3/d")
}
