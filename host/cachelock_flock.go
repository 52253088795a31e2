//go:build linux || darwin || freebsd || openbsd || netbsd || dragonfly

package host

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// lockWait bounds the wait for the cache lock: a process stopped while it
// holds the lock (in a debugger, say) must not stop every other load.
var lockWait = time.Minute

// lockFile takes an flock on path (shared or exclusive), waiting while
// another holder (of any process sharing the directory) has a conflicting
// one, until ctx ends or lockWait has passed. The lock is held until
// release is called.
func lockFile(ctx context.Context, path string, exclusive bool) (release func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	give := time.Now().Add(lockWait)
	for wait := time.Millisecond; ; wait = min(2*wait, 50*time.Millisecond) {
		err = syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = f.Close() }, nil // closing releases the lock
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			_ = f.Close()
			return nil, err
		}
		if time.Now().After(give) {
			_ = f.Close()
			return nil, fmt.Errorf("another process has held %s for over %s", path, lockWait)
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, context.Cause(ctx)
		case <-time.After(wait):
		}
	}
}
