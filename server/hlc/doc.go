// Package hlc is the server's hybrid logical clock, the same algorithm as
// TopGun's (core-rust hlc.rs and the TypeScript core HLC.ts), producing
// record.Timestamp values.
//
// # Basics
//
// A Clock keeps the last timestamp it issued or saw: (millis, counter). Now
// returns (wall, 0) when the wall clock has moved past it, and otherwise
// bumps the counter; Update merges a timestamp received from elsewhere so
// every later Now is greater. Timestamps from one Clock are strictly
// increasing, including under concurrent use.
//
//	clock, err := hlc.New(nodeID, nil) // nil options: 60 s max drift, time.Now
//	ts := clock.Now()                  // record.Timestamp{Millis, Counter, NodeID}
//	err = clock.Update(remoteTS)       // *DriftError if remoteTS is > 60 s ahead
//
// # Node ids
//
// A node id must be non-empty, valid UTF-8 and free of ':' (TopGun panics or
// throws on ':'; timestamps and OR-Map tags are written "millis:counter:nodeId").
// The server's id comes from TOPGUN_NODE_ID (cmd calls NodeIDFromEnv with
// os.LookupEnv; this package never reads the environment). Without it,
// DefaultNodeID derives one from the host name plus a random suffix, unique
// per process. TopGun's own server defaults to "topgun-server-node".
//
// # Caveats
//
//   - Drift: by default Update refuses, with a *DriftError (errors.Is
//     ErrClockDrift), a timestamp more than MaxDrift ahead of the wall
//     clock, and leaves the clock unchanged; the server uses this to reject
//     writes stamped by a client whose clock is far ahead. TopGun's default
//     is to log and accept; Options.AllowDrift restores that.
//   - Counter overflow moves to the next millisecond with counter 0, as
//     TopGun's Rust clock does (its TypeScript clock does not handle it).
//   - The clock trusts the wall clock it is given; if that jumps backwards,
//     timestamps keep increasing through the counter until the wall clock
//     catches up.
package hlc
