package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/host"
)

const (
	// slotHold is how long an open keeps its place among the openSlots:
	// past it the open goes on, and the next tenant waiting starts too, so
	// that a few tenants slow to open (a hostile plugin's endless scan, a
	// huge index to rebuild) cannot hold all the others back.
	slotHold = 30 * time.Second
	// retryFirst and retryMax bound the wait before opening a tenant again
	// after a failure: doubling from the first to the second.
	retryFirst = time.Second
	retryMax   = time.Minute
	// startingEvery is how often Start logs the tenants not yet serving.
	startingEvery = 10 * time.Second
	// startingRetryAfter is the Retry-After of a tenant being opened (or
	// waiting to be): its open may take long, and clients need not ask
	// every second.
	startingRetryAfter = 5 * time.Second
)

// openSlots is how many tenants Start opens at once. An open is mostly CPU
// (a compile on a cache miss, the plugin's open, the index rebuild, whose
// scan runs in wasm and whose decoding in Go) and memory (each rebuild's
// pages and growing index): more at once than CPUs only share them out,
// and beyond 4 the memory of the rebuilds at once and the reads of their
// disks grow while the tenants already open need the CPUs to serve. At
// least 2, so that on one CPU an open waiting on its disk does not leave
// the CPU idle and one slow open does not stop all the others until
// slotHold.
func openSlots() int { return max(2, min(runtime.GOMAXPROCS(0), 4)) }

// starting is a tenant Start has not opened yet.
type starting struct {
	since  time.Time // when Start began
	cancel context.CancelFunc
	done   chan struct{} // closed when its opener has ended

	// Under Tenants.mu.
	opening  time.Time // when the open in progress began; zero if none
	failures int       // failed opens
	err      error     // the last one's error
	retryAt  time.Time // when the next open begins, after a failure
}

// state says how far the tenant is, for the log and for its clients.
func (st *starting) state(now time.Time) string {
	s := "starting for " + now.Sub(st.since).Round(time.Second).String()
	switch {
	case !st.opening.IsZero():
		s += ", opening"
	case st.err != nil && st.retryAt.After(now):
		s += ", next open in " + st.retryAt.Sub(now).Round(time.Second).String()
	default:
		s += ", waiting its turn to open"
	}
	if st.failures > 0 {
		s += fmt.Sprintf(", %d failed open(s)", st.failures)
	}
	return s
}

// status is the 503 answer for a request to the tenant: the reason, and
// when to ask again.
func (st *starting) status(name string, now time.Time) (string, time.Duration) {
	why := fmt.Sprintf("tenant %s is starting (%s)", name, st.state(now))
	if st.err != nil {
		why += "; its last open failed: " + st.err.Error()
	}
	if st.opening.IsZero() && st.err != nil && st.retryAt.After(now) {
		return why, st.retryAt.Sub(now)
	}
	return why, startingRetryAfter
}

// Start checks that every tenant's plugin file exists and returns at once,
// serving none yet; then it opens the tenants in the background, at most
// openSlots at a time, and serves each as soon as it is open. Until then
// a request for a tenant (WebSocket, POST /sync, /ready) is answered 503
// with Retry-After and the reason: still opening (and for how long), or
// the error of its last open. A tenant whose open fails (the plugin
// refuses to open, its data directory is locked by another process, a
// storage error) is logged and opened again after a wait doubling from
// 1 s to 1 min, until it opens or Close. Every 10 s Start logs the tenants
// not yet serving. Cancelling ctx, Remove and Close stop the opens: one in
// progress stops at its plugin's next call (or the deadline of the call
// in progress) and closes what it opened, releasing the data directory.
func Start(ctx context.Context, cfg *Config, sh Shared) (*Tenants, error) {
	var errs []error
	for i, tc := range cfg.Tenants {
		// A missing plugin is a mistake in the tenants file, not a
		// failure to retry.
		if fi, err := os.Stat(tc.Plugin); err != nil {
			errs = append(errs, fmt.Errorf("tenants file: tenant %d (%q): plugin: %w", i+1, tc.Name, err))
		} else if !fi.Mode().IsRegular() {
			errs = append(errs, fmt.Errorf("tenants file: tenant %d (%q): plugin %s is not a file", i+1, tc.Name, tc.Plugin))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := checkRealPaths(cfg); err != nil {
		return nil, err
	}
	// A cache no tenant can use is the operator's to fix, not a failure
	// to retry per tenant.
	if err := host.CheckCacheDir(sh.CacheDir); err != nil {
		return nil, fmt.Errorf("%w; set %s to a private writable directory (or - to disable it)", err, settingName("TOPGUN_PLUGIN_CACHE_DIR"))
	}
	// As the host refuses at each open (the plugin could replace the
	// code the cache holds): a mistake in the tenants file, not a failure
	// to retry.
	for i, tc := range cfg.Tenants {
		if tc.DataDir != "" && !host.DataDirApartFromCache(tc.DataDir, sh.CacheDir) {
			errs = append(errs, fmt.Errorf("tenants file: tenant %d (%q): data_dir %s holds the compilation cache or lies inside it (%s), whose code the server runs; give them directories apart",
				i+1, tc.Name, tc.DataDir, settingName("TOPGUN_PLUGIN_CACHE_DIR")))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	ts, sh := newTenants(cfg, sh)
	ctx, ts.stop = context.WithCancel(ctx)
	slots := make(chan struct{}, openSlots())
	now := time.Now()
	for _, tc := range cfg.Tenants {
		tctx, cancel := context.WithCancel(ctx)
		st := &starting{since: now, cancel: cancel, done: make(chan struct{})}
		ts.starting[tc.Name] = st
		ts.openers.Go(func() { ts.keepOpening(tctx, tc, sh, st, slots) })
	}
	ts.openers.Go(func() { ts.logStarting(ctx, sh.Logger) })
	return ts, nil
}

// keepOpening opens one tenant until it serves or ctx ends.
func (ts *Tenants) keepOpening(ctx context.Context, tc TenantConfig, sh Shared, st *starting, slots chan struct{}) {
	defer close(st.done)
	defer st.cancel()
	log := sh.Logger.Named("tenant." + tc.Name)
	wait := retryFirst
	for {
		t, err := ts.tryOpen(ctx, tc, sh, st, slots)
		if err == nil {
			ts.mu.Lock()
			// Not after Close or Remove, nor once ctx has ended.
			ok := !ts.closed && ts.starting[tc.Name] == st && ctx.Err() == nil
			if ok {
				delete(ts.starting, tc.Name)
				ts.tenants[tc.Name] = t
			}
			ts.mu.Unlock()
			if ok {
				ts.logServing(tc, sh, t)
				return
			}
			if err := t.close(); err != nil {
				log.Warn("closing the tenant opened as it was stopped", "error", err)
			}
			ts.commits.Delete(tc.Name)
			return
		}
		if ctx.Err() != nil {
			return // stopped: the error is the stop's
		}
		ts.mu.Lock()
		st.opening = time.Time{}
		st.failures++
		st.err = err
		st.retryAt = time.Now().Add(wait)
		n := st.failures
		ts.mu.Unlock()
		log.Error("cannot open the tenant; it is not served until it opens", "error", err, "failed_opens", n, "retry_in", wait)
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		wait = min(2*wait, retryMax)
	}
}

// tryOpen opens the tenant once it has a slot.
func (ts *Tenants) tryOpen(ctx context.Context, tc TenantConfig, sh Shared, st *starting, slots chan struct{}) (*tenant, error) {
	select {
	case slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	free := sync.OnceFunc(func() { <-slots })
	hold := time.AfterFunc(slotHold, free)
	defer func() {
		hold.Stop()
		free()
	}()
	ts.mu.Lock()
	st.opening = time.Now()
	ts.mu.Unlock()
	return ts.openTenant(ctx, tc, sh)
}

// logStarting logs the tenants not yet serving every startingEvery, until
// none is left or ctx ends.
func (ts *Tenants) logStarting(ctx context.Context, log hclog.Logger) {
	tick := time.NewTicker(startingEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now()
		ts.mu.RLock()
		names := slices.Sorted(maps.Keys(ts.starting))
		var list []string
		for _, n := range names[:min(len(names), 20)] {
			list = append(list, n+" ("+ts.starting[n].state(now)+")")
		}
		ts.mu.RUnlock()
		if len(names) == 0 {
			return
		}
		if len(names) > len(list) {
			list = append(list, fmt.Sprintf("and %d more", len(names)-len(list)))
		}
		log.Info("tenants not serving yet", "count", len(names), "tenants", strings.Join(list, ", "))
	}
}
