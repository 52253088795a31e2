// Package hosttest helps tests build Go storage plugins for the wasm host.
package hosttest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

var (
	mu    sync.Mutex
	built = map[string]string{}
)

// BuildPlugin builds the Go plugin main package in pkgDir (a directory,
// relative to the test's working directory or absolute) with
// GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared and returns the path
// of the .wasm file. Builds are cached under the user cache directory by a
// hash of the module's Go sources, so a suite rebuilds only after a change;
// within one process each package is built once.
func BuildPlugin(t testing.TB, pkgDir string) string {
	t.Helper()
	dir, err := filepath.Abs(pkgDir)
	if err != nil {
		t.Fatalf("hosttest: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if p, ok := built[dir]; ok {
		return p
	}
	root, err := moduleRoot(dir)
	if err != nil {
		t.Fatalf("hosttest: %v", err)
	}
	sum, err := sourceHash(root, dir)
	if err != nil {
		t.Fatalf("hosttest: hashing sources: %v", err)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	out := filepath.Join(cache, "topgun", "test-plugins", sum[:24], filepath.Base(dir)+".wasm")
	if _, err := os.Stat(out); err == nil {
		built[dir] = out
		return out
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		t.Fatalf("hosttest: %v", err)
	}
	// A per-process name: test binaries of several packages may build the
	// same plugin at once; the rename makes the winner's file appear whole.
	tmp := fmt.Sprintf("%s.%d.tmp", out, os.Getpid())
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", tmp, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hosttest: building %s for wasip1: %v\n%s", dir, err, msg)
	}
	if err := os.Rename(tmp, out); err != nil {
		t.Fatalf("hosttest: %v", err)
	}
	built[dir] = out
	return out
}

func moduleRoot(dir string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod above %s", dir)
		}
	}
}

// sourceHash hashes the Go version, the package path, go.mod, go.sum,
// every non-test .go file of the module and its PGO profiles.
func sourceHash(root, pkg string) (string, error) {
	h := sha256.New()
	fmt.Fprintln(h, runtime.Version(), pkg)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || name == "bin" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !(strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go")) && name != "go.mod" && name != "go.sum" && name != "default.pgo" {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		fmt.Fprintln(h, path)
		_, err = io.Copy(h, f)
		return err
	})
	return hex.EncodeToString(h.Sum(nil)), err
}

// Writer is an io.Writer that sends each write to t.Log, for routing an
// hclog logger into test output.
type Writer struct{ T testing.TB }

func (w Writer) Write(p []byte) (int, error) {
	w.T.Helper()
	w.T.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
