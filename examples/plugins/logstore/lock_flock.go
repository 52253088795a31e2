//go:build linux || darwin || freebsd || openbsd || netbsd || dragonfly

package logstore

import (
	"errors"
	"os"
	"syscall"
)

// errLocked reports a directory another Store holds.
var errLocked = errors.New("another store holds the directory")

// lockDir takes an exclusive flock on dir itself, not on the log, whose
// file a compaction replaces. Two stores appending to one log write over
// each other's acknowledged batches; the lock refuses the second one. It
// is released when the returned file is closed, or when the process dies.
func lockDir(dir string) (*os.File, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(d.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		d.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errLocked
		}
		return nil, err
	}
	return d, nil
}
