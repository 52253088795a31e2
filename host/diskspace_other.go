//go:build !(linux || darwin || freebsd || dragonfly)

package host

// statFS cannot read a file system's free space on this system.
func statFS(string) (free, files, filesFree uint64, ok bool) { return 0, 0, 0, false }
