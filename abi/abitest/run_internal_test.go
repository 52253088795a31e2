package abitest

import (
	"context"
	"strings"
	"sync"
	"testing"
)

func TestRunCase_outcomes(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name                string
		run                 func(t TB, h Harness)
		failed, skipped     bool
		wantMsgs            []string
		wantCleanupsInOrder bool
	}{
		{name: "pass", run: func(t TB, h Harness) { t.Logf("quiet") }},
		{name: "errorf continues", failed: true, wantMsgs: []string{"first", "second"}, run: func(t TB, h Harness) {
			t.Errorf("first")
			t.Errorf("second")
		}},
		{name: "fatalf stops", failed: true, wantMsgs: []string{"stop here"}, run: func(t TB, h Harness) {
			t.Fatalf("stop here")
			t.Errorf("not reached")
		}},
		{name: "failnow stops", failed: true, run: func(t TB, h Harness) {
			t.FailNow()
			t.Errorf("not reached")
		}},
		{name: "skipf", skipped: true, run: func(t TB, h Harness) {
			t.Skipf("no reason")
			t.Errorf("not reached")
		}},
		{name: "error then skip fails", failed: true, skipped: true, run: func(t TB, h Harness) {
			t.Errorf("broken")
			t.Skipf("skip")
		}},
		{name: "panic", failed: true, wantMsgs: []string{"panic: boom"}, run: func(t TB, h Harness) { panic("boom") }},
		{name: "errorf from goroutines", failed: true, wantMsgs: []string{"from goroutine"}, run: func(t TB, h Harness) {
			var wg sync.WaitGroup
			for i := 0; i < 8; i++ {
				wg.Add(1)
				go func() { defer wg.Done(); t.Errorf("from goroutine") }()
			}
			wg.Wait()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCase(ctx, Case{Name: tc.name, Run: tc.run}, Harness{})
			if r.failed != tc.failed || r.skipped != tc.skipped {
				t.Errorf("failed, skipped = %v, %v; want %v, %v (messages %q)", r.failed, r.skipped, tc.failed, tc.skipped, r.msgs)
			}
			all := strings.Join(r.msgs, "\n")
			for _, m := range tc.wantMsgs {
				if !strings.Contains(all, m) {
					t.Errorf("messages %q do not contain %q", r.msgs, m)
				}
			}
			if strings.Contains(all, "not reached") {
				t.Errorf("the case went on after stopping: %q", r.msgs)
			}
		})
	}
}

func TestRunCase_cleanups(t *testing.T) {
	var order []int
	r := runCase(context.Background(), Case{Name: "c", Run: func(tb TB, h Harness) {
		tb.Cleanup(func() { order = append(order, 1) })
		tb.Cleanup(func() { panic("cleanup boom") })
		tb.Cleanup(func() { order = append(order, 3); tb.Fatalf("fatal in cleanup") })
		tb.Cleanup(func() { order = append(order, 4) })
		tb.Fatalf("stop")
	}}, Harness{})
	if want := []int{4, 3, 1}; len(order) != len(want) || order[0] != 4 || order[1] != 3 || order[2] != 1 {
		t.Errorf("cleanups ran in order %v; want %v (last registered first, all of them)", order, want)
	}
	all := strings.Join(r.msgs, "\n")
	for _, m := range []string{"stop", "fatal in cleanup", "panic in cleanup: cleanup boom"} {
		if !strings.Contains(all, m) {
			t.Errorf("messages %q do not contain %q", r.msgs, m)
		}
	}
}

func TestRunCase_context(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var got context.Context
	runCase(ctx, Case{Name: "c", Run: func(tb TB, h Harness) { got = ctxOf(tb) }}, Harness{})
	if got != ctx {
		t.Errorf("ctxOf(runner TB) is not the run's context")
	}
	if ctxOf(t) != t.Context() {
		t.Errorf("ctxOf(*testing.T) is not t.Context()")
	}
}

func TestRunCase_interrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	go func() { <-started; cancel() }()
	r := runCase(ctx, Case{Name: "c", Run: func(tb TB, h Harness) {
		close(started)
		<-ctxOf(tb).Done()
		tb.Fatalf("interrupted: %v", ctxOf(tb).Err())
	}}, Harness{})
	if !r.failed || !strings.Contains(strings.Join(r.msgs, "\n"), "interrupted: context canceled") {
		t.Errorf("an interrupted case = failed %v, messages %q; want it failed with its own message", r.failed, r.msgs)
	}
}

func TestCases_names(t *testing.T) {
	seen := map[string]bool{}
	core := 0
	for _, c := range Cases() {
		if c.Name == "" || c.Run == nil {
			t.Errorf("case %+v has no name or no Run", c)
		}
		if seen[c.Name] {
			t.Errorf("case name %q is used twice", c.Name)
		}
		seen[c.Name] = true
		if strings.ContainsAny(c.Name, " \t\n") {
			t.Errorf("case name %q has white space; go test would rewrite it", c.Name)
		}
		if c.Core {
			core++
		}
	}
	if !seen["Model/Random"] {
		t.Errorf("Cases() lacks Model/Random")
	}
	if core == 0 || core == len(Cases()) {
		t.Errorf("%d of %d cases are core; want a proper subset", core, len(Cases()))
	}
}

func TestBenchKey(t *testing.T) {
	prev := ""
	for _, i := range []int{0, 1, 9, 10, 999, 1000, 123456789, 9_999_999_999} {
		k := benchKey(i)
		if len(k) != 20 {
			t.Errorf("benchKey(%d) = %q, %d bytes; want 20", i, k, len(k))
		}
		if k <= prev {
			t.Errorf("benchKey(%d) = %q is not after %q", i, k, prev)
		}
		prev = k
	}
}
