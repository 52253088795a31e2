// Package testbin builds the programs that tests run as child processes
// (the server binary, crash children) once per test process, into one
// temporary directory that Cleanup removes, and collects their output.
package testbin

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	mu    sync.Mutex
	dir   string
	built = map[string]*binary{}
)

type binary struct {
	once sync.Once
	path string
	err  error
}

// Build builds the main package pkg (an import path, or a directory
// relative to the test's working directory) with go build and flags, once
// per test process, and returns the binary's path. Tests that call it
// should call Cleanup from TestMain after m.Run.
func Build(t testing.TB, pkg string, flags ...string) string {
	t.Helper()
	key := strings.Join(append([]string{pkg}, flags...), "\x00")
	mu.Lock()
	if dir == "" {
		d, err := os.MkdirTemp("", "topgun-testbin-")
		if err != nil {
			mu.Unlock()
			t.Fatal(err)
		}
		dir = d
	}
	b := built[key]
	if b == nil {
		b = &binary{path: filepath.Join(dir, fmt.Sprintf("%s-%d", filepath.Base(pkg), len(built)))}
		built[key] = b
	}
	mu.Unlock()
	b.once.Do(func() {
		args := append(append([]string{"build"}, flags...), "-o", b.path, pkg)
		if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// Cleanup removes every binary Build made.
func Cleanup() {
	mu.Lock()
	defer mu.Unlock()
	if dir != "" {
		_ = os.RemoveAll(dir)
	}
	dir, built = "", map[string]*binary{}
}

// LockedBuffer collects a child's output: one writer, concurrent readers.
type LockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *LockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
