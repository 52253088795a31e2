package abitest_test

import (
	"bytes"
	"context"
	"slices"
	"sync"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/abi/abitest"
	"github.com/topgun-go/topgun/plugins/null"
)

// sharedStore is storage several backends use at once, as servers share a
// PostgreSQL table: one null backend, whose commits each handle's Watch
// hears from the others. Its mutex orders commits, so that ApplyChecked
// checks and applies in one step.
type sharedStore struct {
	data *null.Backend
	mu   sync.Mutex
	subs map[*sub]struct{}
}

// sub is one running Watch: fn is called from its own goroutine, for the
// commits of every handle but origin.
type sub struct {
	origin *sharedHandle
	ctx    context.Context
	fn     func(abi.Changed)
	mu     sync.Mutex
	queue  []abi.Changed
	wake   chan struct{}
}

// sharedHandle is one backend on a sharedStore. Each non-nil hook replaces
// one method, so a test can break exactly one promise of the optional
// interfaces.
type sharedHandle struct {
	s      *sharedStore
	mu     sync.Mutex
	closed bool
	stop   chan struct{}
	subs   sync.WaitGroup

	applyChecked func(ctx context.Context, b *abi.Batch, expect []abi.Expect) error
	watch        func(ctx context.Context, fn func(abi.Changed)) error
}

var (
	_ abi.Backend        = (*sharedHandle)(nil)
	_ abi.CheckedApplier = (*sharedHandle)(nil)
	_ abi.Watcher        = (*sharedHandle)(nil)
)

// sharedHarness opens handles on one sharedStore per case, each broken by
// mutate when it is set.
func sharedHarness(mutate func(h *sharedHandle)) abitest.Harness {
	open := func(s *sharedStore) abi.Backend {
		h := &sharedHandle{s: s, stop: make(chan struct{})}
		if mutate != nil {
			mutate(h)
		}
		return h
	}
	return abitest.Harness{
		Open: func(abitest.TB) abi.Backend {
			return open(&sharedStore{data: null.Open(), subs: map[*sub]struct{}{}})
		},
		OpenShared: func(_ abitest.TB, b abi.Backend) abi.Backend { return open(b.(*sharedHandle).s) },
		Short:      true,
	}
}

func (h *sharedHandle) live(ctx context.Context) error {
	if err := abi.ContextError(ctx); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return abi.Errorf(abi.CodeUnavailable, "shared: closed")
	}
	return nil
}

func (h *sharedHandle) Describe() abi.Description {
	return abi.Description{Name: "shared", ABIMajor: abi.VersionMajor, Capabilities: abi.CapAtomicBatch | abi.CapShared}
}

func (h *sharedHandle) Apply(ctx context.Context, b *abi.Batch) error {
	if err := h.live(ctx); err != nil {
		return err
	}
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	return h.s.commit(ctx, h, b)
}

// commit applies b and reports it to the other handles' watches; the
// caller holds s.mu.
func (s *sharedStore) commit(ctx context.Context, origin *sharedHandle, b *abi.Batch) error {
	if err := s.data.Apply(ctx, b); err != nil {
		return err
	}
	s.publish(origin, b)
	return nil
}

// publish queues a Changed per map of b's primary records for the watches
// of every handle but origin; the caller holds s.mu.
func (s *sharedStore) publish(origin *sharedHandle, b *abi.Batch) {
	var changes []abi.Changed
	for _, m := range b.Mutations {
		if m.Backup {
			continue
		}
		i := slices.IndexFunc(changes, func(c abi.Changed) bool { return c.Map == m.Map })
		if i < 0 {
			changes = append(changes, abi.Changed{Map: m.Map})
			i = len(changes) - 1
		}
		if !slices.Contains(changes[i].Keys, m.Key) {
			changes[i].Keys = append(changes[i].Keys, m.Key)
		}
	}
	for w := range s.subs {
		if w.origin == origin {
			continue
		}
		w.mu.Lock()
		w.queue = append(w.queue, changes...)
		w.mu.Unlock()
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

func (h *sharedHandle) ApplyChecked(ctx context.Context, b *abi.Batch, expect []abi.Expect) error {
	if h.applyChecked != nil {
		return h.applyChecked(ctx, b, expect)
	}
	return h.checked(ctx, b, expect)
}

// checked is the correct ApplyChecked.
func (h *sharedHandle) checked(ctx context.Context, b *abi.Batch, expect []abi.Expect) error {
	if err := h.live(ctx); err != nil {
		return err
	}
	if err := abi.ValidateBatch(b); err != nil {
		return err
	}
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	if err := h.s.check(ctx, expect); err != nil {
		return err
	}
	return h.s.commit(ctx, h, b)
}

// check compares expect with the primary records stored.
func (s *sharedStore) check(ctx context.Context, expect []abi.Expect) error {
	for _, e := range expect {
		recs, err := s.data.Get(ctx, e.Map, false, []string{e.Key})
		if err != nil {
			return err
		}
		if holds := len(recs) == 1 == e.Present && (!e.Present || bytes.Equal(recs[0].Value, e.Value)); !holds {
			return abi.Errorf(abi.CodeConflict, "shared: record %q of map %q changed", e.Key, e.Map)
		}
	}
	return nil
}

func (h *sharedHandle) Watch(ctx context.Context, fn func(abi.Changed)) error {
	if h.watch != nil {
		return h.watch(ctx, fn)
	}
	return h.listen(ctx, fn)
}

// listen is the correct Watch.
func (h *sharedHandle) listen(ctx context.Context, fn func(abi.Changed)) error {
	if err := abi.ContextError(ctx); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return abi.Errorf(abi.CodeUnavailable, "shared: closed")
	}
	w := &sub{origin: h, ctx: ctx, fn: fn, wake: make(chan struct{}, 1)}
	h.s.mu.Lock()
	h.s.subs[w] = struct{}{}
	h.s.mu.Unlock()
	h.subs.Add(1)
	go func() {
		defer h.subs.Done()
		defer func() {
			h.s.mu.Lock()
			delete(h.s.subs, w)
			h.s.mu.Unlock()
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case <-h.stop:
				return
			case <-w.wake:
			}
			w.mu.Lock()
			q := w.queue
			w.queue = nil
			w.mu.Unlock()
			for _, c := range q {
				select {
				case <-ctx.Done():
					return
				case <-h.stop:
					return
				default:
				}
				fn(c)
			}
		}
	}()
	return nil
}

func (h *sharedHandle) Get(ctx context.Context, m string, backup bool, keys []string) ([]abi.Record, error) {
	if err := h.live(ctx); err != nil {
		return nil, err
	}
	return h.s.data.Get(ctx, m, backup, keys)
}

func (h *sharedHandle) Scan(ctx context.Context, req abi.ScanRequest) (abi.Page, error) {
	if err := h.live(ctx); err != nil {
		return abi.Page{}, err
	}
	return h.s.data.Scan(ctx, req)
}

func (h *sharedHandle) ListMaps(ctx context.Context) ([]string, error) {
	if err := h.live(ctx); err != nil {
		return nil, err
	}
	return h.s.data.ListMaps(ctx)
}

func (h *sharedHandle) ListExpired(ctx context.Context, now int64, limit int) ([]abi.Record, error) {
	if err := h.live(ctx); err != nil {
		return nil, err
	}
	return h.s.data.ListExpired(ctx, now, limit)
}

// Close stops the handle's watches and waits for them, a call of fn in
// progress included.
func (h *sharedHandle) Close() error {
	h.mu.Lock()
	if !h.closed {
		h.closed = true
		close(h.stop)
	}
	h.mu.Unlock()
	h.subs.Wait()
	return nil
}
