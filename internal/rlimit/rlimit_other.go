//go:build !(linux || darwin || freebsd || dragonfly)

package rlimit

// FileSize knows no file size limit on this system.
func FileSize() uint64 { return 0 }
