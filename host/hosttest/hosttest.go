// Package hosttest helps tests build Go storage plugins for the wasm host.
package hosttest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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
// hash of the Go sources of the module and of the modules its go.mod
// replaces with local directories, so a suite rebuilds only after a change;
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
// every non-test .go file and the PGO profiles of the module and of the
// modules its go.mod (or its workspace's go.work) replaces with local
// directories or the workspace uses.
func sourceHash(root, pkg string) (string, error) {
	h := sha256.New()
	fmt.Fprintln(h, runtime.Version(), pkg)
	dirs, err := localReplacements(root)
	if err != nil {
		return "", err
	}
	for _, dir := range append([]string{root}, dirs...) {
		if err := hashSources(h, dir); err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// localReplacements returns the directories that root's go.mod replaces
// modules with. A plugin kept outside this repository points at a checkout
// of it so, and builds from the checkout's sources as much as its own.
func localReplacements(root string) ([]string, error) {
	dirs, err := modReplacements(root)
	if err != nil {
		return nil, err
	}
	work, err := workspaceDirs(root)
	if err != nil {
		return nil, err
	}
	return append(dirs, work...), nil
}

// modReplacements returns the directories that root's go.mod replaces
// modules with.
func modReplacements(root string) ([]string, error) {
	cmd := exec.Command("go", "mod", "edit", "-json")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go mod edit -json in %s: %v", root, err)
	}
	var mod struct {
		Replace []struct {
			New struct{ Path, Version string }
		}
	}
	if err := json.Unmarshal(out, &mod); err != nil {
		return nil, fmt.Errorf("go mod edit -json in %s: %v", root, err)
	}
	var dirs []string
	for _, r := range mod.Replace {
		// A replacement without a version is a directory; one with a
		// version cannot change without go.sum changing.
		if r.New.Version != "" {
			continue
		}
		dir := r.New.Path
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(root, dir)
		}
		dirs = append(dirs, dir)
	}
	return dirs, nil
}

// workspaceDirs returns, when the build in root is in a workspace (a
// go.work above it, or GOWORK), the go.work file, the directories it uses
// and those it and its modules' go.mod files replace modules with: go
// build takes those modules from them, whatever root's go.mod says.
func workspaceDirs(root string) ([]string, error) {
	cmd := exec.Command("go", "env", "GOWORK")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go env GOWORK in %s: %v", root, err)
	}
	file := strings.TrimSpace(string(out))
	if file == "" || file == "off" {
		return nil, nil
	}
	cmd = exec.Command("go", "work", "edit", "-json", file)
	cmd.Dir = root
	if out, err = cmd.Output(); err != nil {
		return nil, fmt.Errorf("go work edit -json %s: %v", file, err)
	}
	var work struct {
		Use     []struct{ DiskPath string }
		Replace []struct {
			New struct{ Path, Version string }
		}
	}
	if err := json.Unmarshal(out, &work); err != nil {
		return nil, fmt.Errorf("go work edit -json %s: %v", file, err)
	}
	base := filepath.Dir(file)
	abs := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(base, p)
	}
	dirs := []string{file}
	for _, u := range work.Use {
		dirs = append(dirs, abs(u.DiskPath))
		// In a workspace the replacements of every module it uses
		// apply, not only the main module's.
		more, err := modReplacements(abs(u.DiskPath))
		if err != nil {
			return nil, err
		}
		dirs = append(dirs, more...)
	}
	for _, r := range work.Replace {
		if r.New.Version == "" {
			dirs = append(dirs, abs(r.New.Path))
		}
	}
	return dirs, nil
}

// hashSources writes into h the path and contents of each source file of
// the module in root that a build reads (of root itself when it is a file,
// a go.work).
func hashSources(h io.Writer, root string) error {
	// WalkDir does not follow a root that is a symbolic link (a checkout
	// linked into the author's tree), and hashed nothing of it.
	if r, err := filepath.EvalSymlinks(root); err == nil {
		root = r
	}
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
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
		if !(strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go")) && name != "go.mod" && name != "go.sum" && name != "default.pgo" && path != root {
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
}

// Writer is an io.Writer that sends each write to t.Log, for routing an
// hclog logger into test output.
type Writer struct{ T testing.TB }

func (w Writer) Write(p []byte) (int, error) {
	w.T.Helper()
	w.T.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
