//go:build unix

package redb

import (
	"errors"
	"os"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
)

// lockFile takes the same flock bbolt takes (exclusive, or shared for a
// read-only open), retrying until
// deadline, so that Open reads the file header only while no other process
// writes it. It returns bolt.ErrTimeout when the deadline passes. Closing f
// releases the lock.
func lockFile(f *os.File, deadline time.Time, exclusive bool) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	for {
		var lockErr error
		if err := rc.Control(func(fd uintptr) {
			lockErr = syscall.Flock(int(fd), how|syscall.LOCK_NB)
		}); err != nil {
			return err
		}
		if lockErr == nil {
			return nil
		}
		if !errors.Is(lockErr, syscall.EWOULDBLOCK) {
			return lockErr
		}
		if !time.Now().Before(deadline) {
			return bolt.ErrTimeout
		}
		time.Sleep(min(50*time.Millisecond, max(time.Until(deadline), time.Millisecond)))
	}
}
