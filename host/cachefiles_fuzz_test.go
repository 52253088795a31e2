package host

import (
	"bytes"
	"context"
	"maps"
	"os"
	"path/filepath"
	"testing"
)

// FuzzCacheFiles reads fuzzed files as a compile cache's records and
// metered copies, as the host does at load from a cache directory another
// process (or a crash) may have left damaged. Neither read may panic; a
// metered copy is taken only when storing what was read writes the file
// back byte for byte, and a record read, written and read again is the
// same.
func FuzzCacheFiles(f *testing.F) {
	c, err := newCompileCache(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	defer c.wz.Close(context.Background())
	entry := bytes.Repeat([]byte("ab"), 32)
	f.Add(append(append(append([]byte{}, entry...), " sum\n"...), entry...), []byte("\x00asm\x01\x00\x00\x00"))
	f.Add([]byte(" \n\n"+string(entry)+"  \r\n"), []byte{})
	f.Add([]byte{}, []byte("\x00asm\x01\x00\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00"))
	const fileSum = "fuzz"
	const module = "0000000000000000000000000000000000000000000000000000000000000000"
	f.Fuzz(func(t *testing.T, record, metered []byte) {
		path := filepath.Join(c.metered, meteredKey(fileSum))
		if err := os.WriteFile(path, metered, 0o600); err != nil {
			t.Fatal(err)
		}
		if code, info, ok := c.loadMetered(fileSum); ok {
			if err := c.storeMetered(fileSum, code, info); err != nil {
				t.Fatal(err)
			}
			back, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(back, metered) {
				t.Fatalf("took %d bytes (%+v) from a copy of %d that stores back as %d: %v", len(code), info, len(metered), len(back), err)
			}
		} else if _, err := os.Stat(path); err == nil {
			t.Fatal("a damaged metered copy was kept")
		}
		rpath := filepath.Join(c.sums, module)
		if err := os.WriteFile(rpath, record, 0o600); err != nil {
			t.Fatal(err)
		}
		rec := c.readRecord(rpath)
		if err := c.writeRecord(module, rec); err != nil {
			t.Fatal(err)
		}
		if again := c.readRecord(rpath); !maps.Equal(rec, again) {
			t.Fatalf("record %q read as %q, written and read again as %q", record, rec, again)
		}
	})
}
