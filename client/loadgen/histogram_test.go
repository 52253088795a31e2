package loadgen

import (
	"testing"
	"time"
)

func TestHistogram_quantiles(t *testing.T) {
	t.Parallel()
	var h histogram
	if h.quantile(0.5) != 0 {
		t.Fatal("empty histogram has a non-zero median")
	}
	// 1..1000 µs, each once.
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}, {1, 1000 * time.Microsecond}} {
		got := h.quantile(tc.q)
		if got < tc.want || float64(got) > float64(tc.want)*1.016 {
			t.Errorf("quantile(%v) = %v, want %v within +1.6%%", tc.q, got, tc.want)
		}
	}
}

func TestHistogram_buckets(t *testing.T) {
	t.Parallel()
	if b := bucketOf(int64(maxTracked)); b >= numBuckets {
		t.Fatalf("bucketOf(maxTracked) = %d, out of %d buckets", b, numBuckets)
	}
	prev := -1
	for _, ns := range []int64{0, 1, 63, 64, 65, 127, 128, 1000, 1 << 20, 1<<20 + 1, int64(time.Second), int64(maxTracked)} {
		b := bucketOf(ns)
		if b < prev {
			t.Errorf("bucketOf(%d) = %d is below the bucket of a smaller value (%d)", ns, b, prev)
		}
		prev = b
		if up := bucketUpper(b); int64(up) < ns || (b > 0 && int64(bucketUpper(b-1)) >= ns) {
			t.Errorf("%d ns in bucket %d whose range ends at %d (previous ends at %d)", ns, b, up, bucketUpper(b-1))
		}
	}
	var h histogram
	h.record(2 * maxTracked)
	h.record(-time.Second)
	if h.total != 2 || h.quantile(1) < maxTracked {
		t.Errorf("out-of-range durations: total %d, max quantile %v", h.total, h.quantile(1))
	}
}

// TestHistogram_quantile_nearestRank checks that a quantile is a value at
// least that fraction of the samples do not exceed: with 60 samples, one
// slow batch is 1.7 % of them, so the p99 is that batch.
func TestHistogram_quantile_nearestRank(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		fast, slow int
		q          float64
		want       time.Duration
	}{
		{"p99 of 60 with 1 slow", 59, 1, 0.99, 100 * time.Millisecond},
		{"p99 of 160 with 2 slow", 158, 2, 0.99, 100 * time.Millisecond},
		{"p99 of 160 with 1 slow", 159, 1, 0.99, time.Millisecond},
		{"p99 of 100 with 1 slow", 99, 1, 0.99, time.Millisecond},
		{"p50 of 3 with 2 slow", 1, 2, 0.5, 100 * time.Millisecond},
		{"p50 of 4 with 2 slow", 2, 2, 0.5, time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h histogram
			for range tc.fast {
				h.record(time.Millisecond)
			}
			for range tc.slow {
				h.record(100 * time.Millisecond)
			}
			got := h.quantile(tc.q)
			if got < tc.want || float64(got) > float64(tc.want)*1.016 {
				t.Errorf("quantile(%v) = %v, want %v within +1.6%%", tc.q, got, tc.want)
			}
		})
	}
}
