package host

import "golang.org/x/sys/unix"

// The errnos of a file system refusing a write for a quota and for space.
var errQuota, errNoSpace error = unix.EDQUOT, unix.ENOSPC

// probeWrite writes one block to an O_TMPFILE file in dir: it has no name
// (the plugin cannot see it, the data quota's walk does not count it) and
// its block is freed at close. It is charged to the quotas of the
// server's user and group and of dir's project, as the plugin's files are;
// creating it fails with EDQUOT when the inode quota is used up. A file
// system without O_TMPFILE is not probed.
func probeWrite(dir string) error {
	fd, err := unix.Open(dir, unix.O_WRONLY|unix.O_TMPFILE|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		if err == unix.EDQUOT || err == unix.ENOSPC {
			return err
		}
		return nil
	}
	defer unix.Close(fd)
	var block [4096]byte
	_, err = unix.Write(fd, block[:])
	return err
}
