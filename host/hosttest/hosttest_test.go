package hosttest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBuildPlugin_rebuildsAfterChangeInLocalReplacement checks that a plugin
// kept in a module of its own, which points at a checkout of this repository
// with a replace directive (as examples/plugins/README.md tells authors
// outside it to do), is built again after the checkout's sources change:
// they are sources of the plugin as much as its own module's are.
func TestBuildPlugin_rebuildsAfterChangeInLocalReplacement(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a plugin for wasip1 twice; skipped in -short mode")
	}
	gocache, err := exec.Command("go", "env", "GOCACHE").Output()
	if err != nil {
		t.Fatalf("go env GOCACHE: %v", err)
	}
	// A cache of plugins of this test's own, and Go's build cache kept
	// where it is, so that the standard library is not built again.
	t.Setenv("GOCACHE", strings.TrimSpace(string(gocache)))
	t.Setenv("XDG_CACHE_HOME", t.TempDir())

	root := t.TempDir()
	write := func(rel, text string) {
		t.Helper()
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("lib/go.mod", "module example.com/lib\n\ngo 1.21\n")
	write("lib/lib.go", "package lib\n\nconst Marker = \"marker-alpha\"\n")
	write("plugin/go.mod", "module example.com/plugin\n\ngo 1.21\n\nrequire example.com/lib v0.0.0\n\nreplace example.com/lib => ../lib\n")
	write("plugin/main.go", "package main\n\nimport \"example.com/lib\"\n\nvar marker = lib.Marker\n\nfunc init() { println(marker) }\n\nfunc main() {}\n")
	pluginDir := filepath.Join(root, "plugin")

	contains := func(path, marker string) bool {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return bytes.Contains(b, []byte(marker))
	}
	if p := BuildPlugin(t, pluginDir); !contains(p, "marker-alpha") {
		t.Fatalf("the first build %s does not hold the library's marker", p)
	}

	write("lib/lib.go", "package lib\n\nconst Marker = \"marker-bravo\"\n")
	// A later test process: nothing remembered but the cache on disk.
	mu.Lock()
	clear(built)
	mu.Unlock()
	if p := BuildPlugin(t, pluginDir); !contains(p, "marker-bravo") {
		t.Errorf("after the replaced module changed, BuildPlugin returned %s, built from its old sources", p)
	}
}

// TestBuildPlugin_rebuildsAfterChangeInSymlinkedReplacement checks the same
// when the directory go.mod replaces with is a symbolic link (a checkout
// linked into the author's tree): Go builds from what it points at, so its
// sources must be hashed, not the link alone.
func TestBuildPlugin_rebuildsAfterChangeInSymlinkedReplacement(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a plugin for wasip1 twice; skipped in -short mode")
	}
	gocache, err := exec.Command("go", "env", "GOCACHE").Output()
	if err != nil {
		t.Fatalf("go env GOCACHE: %v", err)
	}
	t.Setenv("GOCACHE", strings.TrimSpace(string(gocache)))
	t.Setenv("XDG_CACHE_HOME", t.TempDir())

	root := t.TempDir()
	write := func(rel, text string) {
		t.Helper()
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("checkout/go.mod", "module example.com/lib\n\ngo 1.21\n")
	write("checkout/lib.go", "package lib\n\nconst Marker = \"marker-alpha\"\n")
	if err := os.Symlink(filepath.Join(root, "checkout"), filepath.Join(root, "lib")); err != nil {
		t.Skipf("symbolic links: %v", err)
	}
	write("plugin/go.mod", "module example.com/plugin\n\ngo 1.21\n\nrequire example.com/lib v0.0.0\n\nreplace example.com/lib => ../lib\n")
	write("plugin/main.go", "package main\n\nimport \"example.com/lib\"\n\nvar marker = lib.Marker\n\nfunc init() { println(marker) }\n\nfunc main() {}\n")
	pluginDir := filepath.Join(root, "plugin")

	contains := func(path, marker string) bool {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return bytes.Contains(b, []byte(marker))
	}
	if p := BuildPlugin(t, pluginDir); !contains(p, "marker-alpha") {
		t.Fatalf("the first build %s does not hold the library's marker", p)
	}

	write("checkout/lib.go", "package lib\n\nconst Marker = \"marker-bravo\"\n")
	mu.Lock()
	clear(built)
	mu.Unlock()
	if p := BuildPlugin(t, pluginDir); !contains(p, "marker-bravo") {
		t.Errorf("after the replaced module changed, BuildPlugin returned %s, built from its old sources", p)
	}
}

// TestBuildPlugin_rebuildsAfterChangeInWorkspaceModule checks the same for a
// plugin built in a workspace (a go.work above it that uses a checkout):
// go build takes the module from the workspace, so its sources are the
// plugin's as much as a replaced directory's are.
func TestBuildPlugin_rebuildsAfterChangeInWorkspaceModule(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a plugin for wasip1 twice; skipped in -short mode")
	}
	gocache, err := exec.Command("go", "env", "GOCACHE").Output()
	if err != nil {
		t.Fatalf("go env GOCACHE: %v", err)
	}
	t.Setenv("GOCACHE", strings.TrimSpace(string(gocache)))
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("GOWORK", "") // found from the plugin's directory

	root := t.TempDir()
	write := func(rel, text string) {
		t.Helper()
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.work", "go 1.21\n\nuse (\n\t./lib\n\t./plugin\n)\n")
	write("lib/go.mod", "module example.com/lib\n\ngo 1.21\n")
	write("lib/lib.go", "package lib\n\nconst Marker = \"marker-alpha\"\n")
	write("plugin/go.mod", "module example.com/plugin\n\ngo 1.21\n\nrequire example.com/lib v0.0.0\n")
	write("plugin/main.go", "package main\n\nimport \"example.com/lib\"\n\nvar marker = lib.Marker\n\nfunc init() { println(marker) }\n\nfunc main() {}\n")
	pluginDir := filepath.Join(root, "plugin")

	contains := func(path, marker string) bool {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return bytes.Contains(b, []byte(marker))
	}
	if p := BuildPlugin(t, pluginDir); !contains(p, "marker-alpha") {
		t.Fatalf("the first build %s does not hold the library's marker", p)
	}

	write("lib/lib.go", "package lib\n\nconst Marker = \"marker-bravo\"\n")
	mu.Lock()
	clear(built)
	mu.Unlock()
	if p := BuildPlugin(t, pluginDir); !contains(p, "marker-bravo") {
		t.Errorf("after the workspace's module changed, BuildPlugin returned %s, built from its old sources", p)
	}
}

// TestBuildPlugin_rebuildsAfterChangeInWorkspaceModuleReplacement checks the
// same for a directory a workspace module's go.mod replaces a module with:
// in a workspace every used module's replacements apply, not only the main
// module's.
func TestBuildPlugin_rebuildsAfterChangeInWorkspaceModuleReplacement(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a plugin for wasip1 twice; skipped in -short mode")
	}
	gocache, err := exec.Command("go", "env", "GOCACHE").Output()
	if err != nil {
		t.Fatalf("go env GOCACHE: %v", err)
	}
	t.Setenv("GOCACHE", strings.TrimSpace(string(gocache)))
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("GOWORK", "") // found from the plugin's directory

	root := t.TempDir()
	write := func(rel, text string) {
		t.Helper()
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.work", "go 1.21\n\nuse (\n\t./lib\n\t./plugin\n)\n")
	write("lib/go.mod", "module example.com/lib\n\ngo 1.21\n\nrequire example.com/dep v0.0.0\n\nreplace example.com/dep => ../dep\n")
	write("lib/lib.go", "package lib\n\nimport \"example.com/dep\"\n\nconst Marker = dep.Marker\n")
	write("dep/go.mod", "module example.com/dep\n\ngo 1.21\n")
	write("dep/dep.go", "package dep\n\nconst Marker = \"marker-alpha\"\n")
	write("plugin/go.mod", "module example.com/plugin\n\ngo 1.21\n") // a workspace module needs no require of another
	write("plugin/main.go", "package main\n\nimport \"example.com/lib\"\n\nvar marker = lib.Marker\n\nfunc init() { println(marker) }\n\nfunc main() {}\n")
	pluginDir := filepath.Join(root, "plugin")

	contains := func(path, marker string) bool {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return bytes.Contains(b, []byte(marker))
	}
	if p := BuildPlugin(t, pluginDir); !contains(p, "marker-alpha") {
		t.Fatalf("the first build %s does not hold the dependency's marker", p)
	}

	write("dep/dep.go", "package dep\n\nconst Marker = \"marker-bravo\"\n")
	mu.Lock()
	clear(built)
	mu.Unlock()
	if p := BuildPlugin(t, pluginDir); !contains(p, "marker-bravo") {
		t.Errorf("after the module a workspace module replaces changed, BuildPlugin returned %s, built from its old sources", p)
	}
}
