package loadgen

import (
	"math"
	"math/bits"
	"time"
)

// histogram counts durations in log-linear buckets: exact below 64 ns,
// then 64 sub-buckets per power of two (relative error under 1.6 %), up to
// maxTracked; longer durations land in the last bucket.
type histogram struct {
	counts [numBuckets]uint64
	total  uint64
}

const (
	subBits    = 6
	subCount   = 1 << subBits // 64
	maxTracked = time.Hour
	// numBuckets covers every duration below 2^42 ns (73 min), so up to
	// maxTracked.
	numBuckets = subCount + (42-subBits)*subCount
)

func bucketOf(ns int64) int {
	if ns < subCount {
		if ns < 0 {
			return 0
		}
		return int(ns)
	}
	// v>>e is in [64, 128).
	e := bits.Len64(uint64(ns)) - subBits - 1
	return subCount + e*subCount + int(ns>>e) - subCount
}

// bucketUpper is the largest duration that falls in bucket i.
func bucketUpper(i int) time.Duration {
	if i < subCount {
		return time.Duration(i)
	}
	e := (i - subCount) / subCount
	m := int64((i-subCount)%subCount + subCount)
	return time.Duration((m+1)<<e - 1)
}

func (h *histogram) record(d time.Duration) {
	d = min(d, maxTracked)
	h.counts[bucketOf(int64(d))]++
	h.total++
}

// quantile returns the upper bound of the bucket holding the q-th
// quantile (0 < q <= 1), 0 when nothing was recorded.
func (h *histogram) quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	// Nearest rank: the smallest value at least q of the samples do not
	// exceed, so ceil(q*total); rounding would drop a tail of just over
	// 1-q (one slow batch in 60 is no p99 of 1.7 %). The epsilon keeps
	// float error from pushing an exact product to the next rank.
	rank := uint64(math.Ceil(q*float64(h.total) - 1e-9))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return bucketUpper(i)
		}
	}
	return maxTracked
}
