//go:build race

package wire

// raceEnabled: the race detector is on, under which the allocator gives
// each tiny object (a short map key) a 16-byte block of its own, so the
// live heap is larger than what the decoded-size count follows.
const raceEnabled = true
