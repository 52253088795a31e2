//go:build linux || darwin || freebsd || dragonfly

package host

import (
	"os"
	"syscall"
)

// statFS reads the free bytes and inodes of the file system holding dir:
// the blocks the server's user may write (root may write the reserved
// ones too).
func statFS(dir string) (free, files, filesFree uint64, ok bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, 0, false
	}
	blocks := uint64(st.Bavail)
	if os.Geteuid() == 0 {
		blocks = uint64(st.Bfree)
	}
	return blocks * uint64(st.Bsize), uint64(st.Files), uint64(st.Ffree), true
}
