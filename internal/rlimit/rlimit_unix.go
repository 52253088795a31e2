//go:build linux || darwin || freebsd || dragonfly

package rlimit

import "syscall"

// FileSize returns the process's file size limit (RLIMIT_FSIZE, ulimit -f)
// in bytes, 0 for none. Go ignores SIGXFSZ, so a write or truncate past it
// fails with EFBIG.
func FileSize() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &rl); err != nil || uint64(rl.Cur) >= 1<<62 {
		// RLIM_INFINITY is all ones on Linux, 2^63-1 on the BSDs.
		return 0
	}
	return uint64(rl.Cur)
}
