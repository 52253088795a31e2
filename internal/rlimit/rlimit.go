// Package rlimit reads the process's resource limits that storage runs
// into.
package rlimit
