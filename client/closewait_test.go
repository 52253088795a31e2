package client

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// Close waits for the callbacks already queued, up to StateClosed's,
// unless it is called from one. Called on another goroutine while a
// callback ran, it returned at once: the callbacks still queued (here
// OnStateChange(StateClosed)) ran after Close had returned, when the
// caller may have torn down what they use.
func TestClose_waitsForTheCallbackRunningOnAnotherGoroutine(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, "")
	o := testOptions(t)
	entered := make(chan struct{})
	release := make(chan struct{})
	var mu sync.Mutex
	var states []State
	o.OnStateChange = func(s State) {
		if s == StateConnected {
			close(entered)
			<-release
		}
		mu.Lock()
		states = append(states, s)
		mu.Unlock()
	}
	c := dial(t, fs.URL, o)
	<-entered // the callback of StateConnected runs, and blocks
	closed := make(chan string, 1)
	go func() {
		_ = c.Close()
		mu.Lock()
		defer mu.Unlock()
		closed <- fmt.Sprint(states)
	}()
	eventually(t, "the client closed", func() bool { return c.State() == StateClosed })
	// Long enough for a Close that does not wait to return; a Close that
	// waits cannot return before the release.
	var got string
	select {
	case got = <-closed:
	case <-time.After(200 * time.Millisecond):
		close(release)
		got = <-closed
	}
	if want := fmt.Sprint([]State{StateConnected, StateClosed}); got != want {
		t.Errorf("when Close returned the callbacks had seen %s, want %s", got, want)
	}
	select {
	case <-release:
	default:
		close(release)
	}
}
