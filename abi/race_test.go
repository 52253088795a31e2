//go:build race

package abi

// raceEnabled: the race detector is on, under which sync.Pool drops
// items at random, so allocation counts include refills.
const raceEnabled = true
