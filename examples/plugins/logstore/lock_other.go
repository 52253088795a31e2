//go:build !(linux || darwin || freebsd || openbsd || netbsd || dragonfly)

package logstore

import (
	"errors"
	"os"
)

var errLocked = errors.New("another store holds the directory")

// lockDir does nothing where there are no file locks (wasip1 among them):
// there only one Store may use a directory; under wasip1 the host locks the
// data directory it grants instead (see package host).
func lockDir(string) (*os.File, error) { return nil, nil }
