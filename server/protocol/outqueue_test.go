package protocol

import (
	"strconv"
	"testing"
)

// A queue that is never drained to empty (a client that keeps up with a
// steady stream, one message always waiting) must hold memory for what is
// queued, not for every message that went through it, nor for a burst
// long read; and it stays first in, first out.
func TestOutQueue_steadyStreamBounded(t *testing.T) {
	t.Parallel()
	q := outQueue{ready: make(chan struct{}, 1)}
	pushed, popped := 0, 0
	push := func() {
		q.push(outItem{b: []byte(strconv.Itoa(pushed))})
		pushed++
	}
	pop := func() {
		it, ok := q.pop()
		if !ok {
			t.Fatal("queue empty")
		}
		if got := string(it.b); got != strconv.Itoa(popped) {
			t.Fatalf("popped message %s, want %d", got, popped)
		}
		popped++
	}
	// A burst, read down to one message, then the steady stream.
	for range 100_000 {
		push()
	}
	for q.len() > 1 {
		pop()
	}
	for range 100_000 {
		push()
		pop()
	}
	if n := q.len(); n != 1 {
		t.Fatalf("%d queued, want 1", n)
	}
	q.mu.Lock()
	c := cap(q.items)
	q.mu.Unlock()
	if c > 4096 {
		t.Fatalf("the queue holds %d slots for 1 queued message", c)
	}
}
