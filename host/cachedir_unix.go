//go:build unix

package host

import (
	"fmt"
	"os"
	"syscall"
)

// checkCacheDir refuses a compilation cache directory that someone else
// could write to: the server runs the native code it finds there, so a
// directory another user owns or may write to would let them run code in
// the server.
func checkCacheDir(dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != os.Getuid() {
		return fmt.Errorf("the directory belongs to user %d, not to this server's user %d, and the server runs the native code it holds", sys.Uid, os.Getuid())
	}
	if perm := st.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("other users may write to the directory (mode %04o), and the server runs the native code it holds; chmod go-w it", perm)
	}
	return nil
}
