//go:build linux || darwin || freebsd || openbsd || netbsd || dragonfly

package host

import (
	"errors"
	"os"
	"syscall"
)

// lockDataDir takes an exclusive flock on the data directory itself (not
// on a file in it, which a plugin may replace), without waiting. It fails
// with errDataDirLocked while another holder has it: another process, or
// another Load in this one (flock locks belong to the open file, not the
// process). Closing the returned file releases the lock, as does the
// process's death.
func lockDataDir(dir string) (*os.File, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(d.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		_ = d.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errDataDirLocked
		}
		return nil, err
	}
	return d, nil
}
