package hosttest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// rebuildCase is a plugin in a tree of modules: files (path relative to
// the tree: contents), made before the first build (then link, when set,
// links link[1] to link[0]); changed holds the file whose constant Marker
// goes from "marker-alpha" to "marker-bravo" between the builds.
type rebuildCase struct {
	files   map[string]string
	link    [2]string
	changed string // e.g. "lib/lib.go"
	pkg     string // its package, when not its directory's name
}

// checkRebuild checks that BuildPlugin builds the plugin in the tree's
// plugin directory again after c.changed changes: its sources are the
// plugin's as much as the plugin module's own are.
func checkRebuild(t *testing.T, c rebuildCase) {
	t.Helper()
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
	t.Setenv("GOWORK", "") // a go.work is found from the plugin's directory

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
	for rel, text := range c.files {
		write(rel, text)
	}
	if c.link[0] != "" {
		if err := os.Symlink(filepath.Join(root, c.link[0]), filepath.Join(root, c.link[1])); err != nil {
			t.Skipf("symbolic links: %v", err)
		}
	}
	pkg := c.pkg
	if pkg == "" {
		pkg = filepath.Base(filepath.Dir(c.changed))
	}
	marker := func(m string) string {
		return "package " + pkg + "\n\nconst Marker = \"" + m + "\"\n"
	}
	write(c.changed, marker("marker-alpha"))
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
		t.Fatalf("the first build %s does not hold the marker", p)
	}
	write(c.changed, marker("marker-bravo"))
	// A later test process: nothing remembered but the cache on disk.
	mu.Lock()
	clear(built)
	mu.Unlock()
	if p := BuildPlugin(t, pluginDir); !contains(p, "marker-bravo") {
		t.Errorf("after %s changed, BuildPlugin returned %s, built from its old sources", c.changed, p)
	}
}

const (
	libMod           = "module example.com/lib\n\ngo 1.21\n"
	pluginReplaceMod = "module example.com/plugin\n\ngo 1.21\n\nrequire example.com/lib v0.0.0\n\nreplace example.com/lib => ../lib\n"
)

// A plugin kept in a module of its own, which points at a checkout of this
// repository with a replace directive (as examples/plugins/README.md tells
// authors outside it to do), is built again after the checkout changes.
func TestBuildPlugin_rebuildsAfterChangeInLocalReplacement(t *testing.T) {
	checkRebuild(t, rebuildCase{
		files:   map[string]string{"lib/go.mod": libMod, "plugin/go.mod": pluginReplaceMod},
		changed: "lib/lib.go",
	})
}

// The same when the directory go.mod replaces with is a symbolic link (a
// checkout linked into the author's tree): its sources are hashed, not the
// link alone.
func TestBuildPlugin_rebuildsAfterChangeInSymlinkedReplacement(t *testing.T) {
	checkRebuild(t, rebuildCase{
		files:   map[string]string{"checkout/go.mod": libMod, "plugin/go.mod": pluginReplaceMod},
		link:    [2]string{"checkout", "lib"},
		changed: "checkout/lib.go",
		pkg:     "lib",
	})
}

// The same for a plugin built in a workspace (a go.work above it that uses
// a checkout): go build takes the module from the workspace.
func TestBuildPlugin_rebuildsAfterChangeInWorkspaceModule(t *testing.T) {
	checkRebuild(t, rebuildCase{
		files: map[string]string{
			"go.work":       "go 1.21\n\nuse (\n\t./lib\n\t./plugin\n)\n",
			"lib/go.mod":    libMod,
			"plugin/go.mod": "module example.com/plugin\n\ngo 1.21\n\nrequire example.com/lib v0.0.0\n",
		},
		changed: "lib/lib.go",
	})
}

// The same for a directory a workspace module's go.mod replaces a module
// with: in a workspace every used module's replacements apply, not only
// the main module's.
func TestBuildPlugin_rebuildsAfterChangeInWorkspaceModuleReplacement(t *testing.T) {
	checkRebuild(t, rebuildCase{
		files: map[string]string{
			"go.work":       "go 1.21\n\nuse (\n\t./lib\n\t./plugin\n)\n",
			"lib/go.mod":    "module example.com/lib\n\ngo 1.21\n\nrequire example.com/dep v0.0.0\n\nreplace example.com/dep => ../dep\n",
			"lib/lib.go":    "package lib\n\nimport \"example.com/dep\"\n\nconst Marker = dep.Marker\n",
			"dep/go.mod":    "module example.com/dep\n\ngo 1.21\n",
			"plugin/go.mod": "module example.com/plugin\n\ngo 1.21\n", // a workspace module needs no require of another
		},
		changed: "dep/dep.go",
	})
}
