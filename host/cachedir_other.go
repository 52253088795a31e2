//go:build !unix

package host

// checkCacheDir has no ownership to check on this system.
func checkCacheDir(dir string) error { return nil }

// checkCacheSubdir has no ownership to check on this system.
func checkCacheSubdir(dir string) error { return nil }
