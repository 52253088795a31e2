package client

import (
	"testing"
	"time"
)

// Reconnects and the re-sends of writes the server could not store wait
// their backoff scaled by a random factor in [0.8, 1.2): clients failed by
// one outage must not all come back at the same moments.
func TestJitter_spreadsTheBackoff(t *testing.T) {
	t.Parallel()
	const d = time.Second
	seen := map[time.Duration]bool{}
	for range 1000 {
		j := jitter(d)
		if j < 8*d/10 || j >= 12*d/10 {
			t.Fatalf("jitter(%v) = %v, outside [0.8, 1.2) of it", d, j)
		}
		seen[j] = true
	}
	if len(seen) < 900 {
		t.Fatalf("1000 jittered waits took %d values; want them spread", len(seen))
	}
}
