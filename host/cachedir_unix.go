//go:build unix

package host

import (
	"fmt"
	"io/fs"
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
	return checkOwnDir(dir, st)
}

// checkCacheSubdir checks a directory the host keeps inside the cache
// directory (wazero's entries, the records, the metered copies) as
// checkCacheDir does, and refuses a symbolic link: one left from before
// the cache directory was made private could still be writable by others.
func checkCacheSubdir(dir string) error {
	st, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if st.Mode()&fs.ModeSymlink != 0 {
		return fmt.Errorf("%s is a symbolic link; the server runs the native code the cache holds, so its directories must be its own", dir)
	}
	return checkOwnDir(dir, st)
}

func checkOwnDir(dir string, st fs.FileInfo) error {
	if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != os.Getuid() {
		return fmt.Errorf("the directory %s belongs to user %d, not to this server's user %d, and the server runs the native code it holds", dir, sys.Uid, os.Getuid())
	}
	if perm := st.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("other users may write to the directory %s (mode %04o), and the server runs the native code it holds; chmod go-w it", dir, perm)
	}
	return nil
}
