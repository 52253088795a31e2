package host

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The host runs the native code and the metered copies the compilation
// cache holds, so a plugin must not be able to write there: a tenant
// whose data directory holds the cache could put its own code in place
// of another tenant's plugin, which would then run it on its own data.
// Load refuses a data directory that holds the cache or lies inside it.
func TestTenants_dataDirOverlappingTheCacheIsRefused(t *testing.T) {
	base := t.TempDir()
	cache := filepath.Join(base, "cache")
	if err := os.Mkdir(cache, 0o700); err != nil {
		t.Fatal(err)
	}
	tenantPath, nullPath := buildTestPlugin(t, "tenant"), nullWasm(t)
	sum := func(path string) string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		s := sha256.Sum256(b)
		return hex.EncodeToString(s[:])
	}

	o := testOptions(t)
	o.CacheDir, o.DataDir = cache, base
	o.Config = map[string]string{"tenant": "thief"}
	thief, err := Load(context.Background(), tenantPath, o)
	if err == nil {
		t.Cleanup(func() { _ = thief.Close() })
		// Show what it allows: the thief's metered code stands in for
		// the null plugin's, which the victim then loads.
		dir := "/data/cache/" + meteredDirName + "/"
		got, err := tenantGet(thief, "copy", dir+meteredKey(sum(tenantPath))+">"+dir+meteredKey(sum(nullPath)))
		if err != nil {
			t.Fatal(err)
		}
		vo := testOptions(t)
		vo.CacheDir, vo.DataDir = cache, t.TempDir()
		victim := mustLoad(t, nullPath, vo)
		// The null plugin has no map "whoami"; the thief's code answers it.
		who, err := tenantGet(victim, "whoami", "k")
		t.Fatalf("a plugin whose data directory holds the compilation cache loaded (copy: %q); the victim's null.wasm answers whoami with %q, %v", got, who, err)
	}
	for _, want := range []string{"compilation cache", cache, "TOPGUN_PLUGIN_DATA_DIR"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}

	// A data directory inside the cache is refused too.
	inside := filepath.Join(cache, meteredDirName)
	o = testOptions(t)
	o.CacheDir, o.DataDir = cache, inside
	if b, err := Load(context.Background(), tenantPath, o); err == nil {
		_ = b.Close()
		t.Fatalf("a plugin whose data directory %s is inside the compilation cache loaded", inside)
	}
	// Beside each other is fine.
	o = testOptions(t)
	o.CacheDir, o.DataDir = cache, t.TempDir()
	b, err := Load(context.Background(), tenantPath, o)
	if err != nil {
		t.Fatal(err)
	}
	_ = b.Close()
}
