//go:build !unix

package redb

import (
	"os"
	"time"
)

// lockFile does nothing where flock is not available: bbolt's own lock in
// bolt.Open still keeps a second process out.
func lockFile(*os.File, time.Time, bool) error { return nil }
