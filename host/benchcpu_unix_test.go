//go:build unix

package host

import (
	"syscall"
	"time"
)

// cpuTime is the CPU time the process has used: benchmarks report it
// beside the wall time, which on a shared machine counts the time other
// processes held the CPU.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
