//go:build race

package store

// raceEnabled: the race detector is on, under which measuring the heap of
// large indexes takes minutes.
const raceEnabled = true
