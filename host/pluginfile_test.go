package host

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// bigCustomSize is the payload of the custom section the memory tests
// append to a plugin: large enough that a copy of it stands out from the
// compile's own allocations, on disk a hole.
const bigCustomSize = 64 << 20

// withCustomSection writes base followed by a custom section named name
// whose payload is payload zero bytes, the section's size field claiming
// claim more bytes than it holds (a truncated file), and returns its path.
func withCustomSection(t testing.TB, base []byte, name string, payload, claim int) string {
	t.Helper()
	hdr := binary.AppendUvarint(nil, uint64(len(name)))
	hdr = append(hdr, name...)
	sec := append([]byte{0}, binary.AppendUvarint(nil, uint64(len(hdr)+payload+claim))...)
	sec = append(sec, hdr...)
	path := filepath.Join(t.TempDir(), "custom.wasm")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(append(slices.Clip(base), sec...)); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(int64(len(base) + len(sec) + payload)); err != nil {
		t.Fatal(err)
	}
	return path
}

// allocated returns the bytes fn allocates on the heap in all.
func allocated(fn func()) uint64 {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// liveHeap returns the bytes of the heap in use after a collection.
func liveHeap() uint64 {
	var m runtime.MemStats
	for range 2 { // the second runs what the first's finalizers freed
		runtime.GC()
	}
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func fileSHA256(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestInspect_largeCustomSectionNotHeld inspects a small plugin with a
// 64 MiB custom section appended. inspect needs nothing of the payload but
// its hash, yet read the file with a growing buffer, copied it for the
// table caps and twice in the meter, and wazero kept one more copy: a
// 200 MB file peaked at about 1 GB. It must now allocate little more than
// for the plugin alone, and print the same.
func TestInspect_largeCustomSectionNotHeld(t *testing.T) {
	ctx := context.Background()
	const plain = "testdata/wat/hostile.wasm"
	base, err := os.ReadFile(plain)
	if err != nil {
		t.Fatal(err)
	}
	big := withCustomSection(t, base, "big", bigCustomSize, 0)
	o := testOptions(t)
	o.CacheDir = "-" // the same compile both times
	var want, got Info
	alone := allocated(func() { want, err = Inspect(ctx, plain, o) })
	if err != nil {
		t.Fatal(err)
	}
	with := allocated(func() { got, err = Inspect(ctx, big, o) })
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("allocated: %d MiB for the plugin, %d MiB with a %d MiB custom section", alone>>20, with>>20, bigCustomSize>>20)
	if with > alone+bigCustomSize/4 {
		t.Errorf("inspect allocated %d MiB more with a %d MiB custom section, want under %d MiB",
			(with-alone)>>20, bigCustomSize>>20, bigCustomSize/4>>20)
	}
	if st, err := os.Stat(big); err != nil || got.Size != st.Size() {
		t.Errorf("size %d, want the file's (%v)", got.Size, err)
	}
	if sum := fileSHA256(t, big); got.SHA256 != sum {
		t.Errorf("sha256 %s, want the file's %s", got.SHA256, sum)
	}
	// Everything else inspect prints is the plugin's.
	same := func(i Info) string {
		i.Path, i.Size, i.SHA256, i.CompileTime, i.InitTime = "", 0, "", 0, 0
		return i.String()
	}
	if same(got) != same(want) {
		t.Errorf("inspect with the custom section:\n%s\nwithout:\n%s", got, want)
	}
}

// TestLoad_largeCustomSectionCopies loads, sandboxed and through a fresh
// cache then a warm one, a small plugin with a 64 MiB custom section.
// The server must hand wazero the whole module, but it read it with a
// growing buffer, copied the payload twice in the meter and once more to
// cache the metered copy, and wazero kept a copy of it (debug info) for as
// long as the plugin was loaded: 6-8 times the payload allocated, once
// held. What is left: the file, the table caps' copy and the metered copy.
func TestLoad_largeCustomSectionCopies(t *testing.T) {
	ctx := context.Background()
	const plain = "testdata/wat/hostile.wasm"
	base, err := os.ReadFile(plain)
	if err != nil {
		t.Fatal(err)
	}
	big := withCustomSection(t, base, "big", bigCustomSize, 0)
	o := testOptions(t)
	o.CacheDir = t.TempDir()
	for _, run := range []string{"cold", "warm"} {
		held := liveHeap()
		var b *Backend
		n := allocated(func() { b, err = Load(ctx, big, o) })
		if err != nil {
			t.Fatal(err)
		}
		kept := int64(liveHeap()) - int64(held)
		t.Logf("%s load: allocated %d MiB, %d MiB held while loaded", run, n>>20, kept>>20)
		if n > 4*bigCustomSize {
			t.Errorf("%s load allocated %d MiB with a %d MiB custom section, want under %d MiB",
				run, n>>20, bigCustomSize>>20, 4*bigCustomSize>>20)
		}
		if kept > bigCustomSize/2 {
			t.Errorf("%s load holds %d MiB while loaded, want under %d MiB", run, kept>>20, bigCustomSize/2>>20)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestReadPluginFile_elideKeepsVerdict compiles modules with a large
// custom section, well formed or not, whole and with payloads left out as
// inspect reads them: the verdicts must be the same, in both trust modes.
func TestReadPluginFile_elideKeepsVerdict(t *testing.T) {
	ctx := context.Background()
	const size = elideMin + 10
	header := string(wasmMagic)
	// A type section, to follow a custom section.
	types := "\x01\x04\x01\x60\x00\x00"
	cases := []struct {
		name        string
		base        string
		section     string
		payload     int
		claim       int
		elided      bool
		wantCompile bool // compiles (and fails later: no exports)
	}{
		{name: "last", base: header, section: "big", payload: size, elided: true, wantCompile: true},
		{name: "beforeTypes", base: header + types, section: "big", payload: size, elided: true, wantCompile: true},
		{name: "truncated", base: header, section: "big", payload: size, claim: 5},
		{name: "nameSection", base: header, section: "name", payload: size},
		{name: "notUTF8", base: header, section: "\xff\xfe", payload: size},
		{name: "small", base: header, section: "small", payload: elideMin - 1, wantCompile: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := withCustomSection(t, []byte(tc.base), tc.section, tc.payload, tc.claim)
			if tc.name == "beforeTypes" {
				// Move the type section after the custom one.
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				b = append(append([]byte(header), b[len(header)+len(types):]...), types...)
				if err := os.WriteFile(path, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			pf, err := readPluginFile("p", path, true)
			if err != nil {
				t.Fatal(err)
			}
			if pf.elided != tc.elided {
				t.Errorf("elided = %v, want %v", pf.elided, tc.elided)
			}
			if sum := fileSHA256(t, path); pf.sum != sum {
				t.Errorf("sha256 %s, want the file's %s", pf.sum, sum)
			}
			for _, trust := range []Trust{TrustSandboxed, TrustTrusted} {
				o := testOptions(t)
				o.Trust, o.CacheDir = trust, "-"
				_, whole := compile(ctx, path, o, nil, false)
				_, elided := compile(ctx, path, o, nil, true)
				if whole == nil || elided == nil || whole.Error() != elided.Error() {
					t.Fatalf("%s: whole: %v; elided: %v", trust, whole, elided)
				}
				if compiled := strings.Contains(whole.Error(), "missing exports"); compiled != tc.wantCompile {
					t.Errorf("%s: %v, want compiled %v", trust, whole, tc.wantCompile)
				}
			}
		})
	}
}

// A custom section's name is read as the file holds it: a few bytes
// claiming a section and a name of a gigabyte made inspect allocate the
// claimed name at once.
func TestReadPluginFile_claimedNameNotAllocated(t *testing.T) {
	const claim = 1 << 30
	b := append([]byte(nil), wasmMagic...)
	b = append(b, customSection)
	b = binary.AppendUvarint(b, claim+5)
	b = binary.AppendUvarint(b, claim)
	b = append(b, "abc"...)
	path := filepath.Join(t.TempDir(), "claim.wasm")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	var pf pluginFile
	var err error
	if n := allocated(func() { pf, err = readPluginFile("p", path, true) }); n > 1<<20 {
		t.Errorf("reading a %d-byte file allocated %d bytes", len(b), n)
	}
	if err != nil || !slices.Equal(pf.bin, b) || pf.elided {
		t.Errorf("readPluginFile = %d bytes, elided %v, %v; want the file as it is", len(pf.bin), pf.elided, err)
	}
}
