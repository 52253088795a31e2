package host

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"maps"
	"slices"
	"testing"

	"github.com/tetratelabs/wazero"
)

// FuzzReadElided reads fuzzed modules, with or without a custom section
// large enough to be left out, as Inspect reads a .wasm file. A module
// left whole must come out as it went in; one with a payload left out must
// compile if and only if the whole one does, with the same imports and
// exports.
func FuzzReadElided(f *testing.F) {
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer rt.Close(ctx)
	// Sections in the order the runtime requires (the export section
	// before the code section), so that the seeds compile.
	types := []byte{1, 4, 1, 0x60, 0, 0}     // type section: one () -> ()
	funcs := []byte{3, 2, 1, 0}              // one function
	exports := []byte{7, 5, 1, 1, 'f', 0, 0} // export "f"
	code := []byte{10, 4, 1, 2, 0, 11}       // its body
	mod := slices.Concat(types, funcs, exports, code)
	f.Add(true, []byte(nil), "big", mod, uint32(0))
	f.Add(true, types, "big", slices.Concat(funcs, exports, code), uint32(0))
	f.Add(true, slices.Concat(types, funcs, exports), "big", code, uint32(0))
	f.Add(true, mod, "name", []byte(nil), uint32(0))
	f.Add(true, mod, "big", []byte(nil), uint32(5))
	f.Add(false, mod, "", []byte(nil), uint32(0))
	f.Add(false, []byte{0, 0x80, 0x80, 0x80, 0x80, 0}, "", mod, uint32(0))
	f.Fuzz(func(t *testing.T, big bool, before []byte, name string, after []byte, claim uint32) {
		in := slices.Concat(wasmMagic, before)
		if big {
			// A custom section of elideMin payload bytes, claiming
			// claim more (claim > 0: the file ends inside it).
			claim %= 1 << 20
			hdr := binary.AppendUvarint(nil, uint64(len(name)))
			hdr = append(hdr, name...)
			in = append(in, 0)
			in = binary.AppendUvarint(in, uint64(len(hdr))+elideMin+uint64(claim))
			in = append(in, hdr...)
			in = append(in, make([]byte, elideMin)...)
		}
		in = append(in, after...)
		out, elided, err := readElided(bufio.NewReaderSize(bytes.NewReader(in), 64<<10))
		if err != nil {
			t.Fatal(err)
		}
		if !elided && bytes.Equal(out, in) {
			return
		}
		if len(out) >= len(in) {
			t.Fatalf("%d bytes read as %d different ones (elided %v)", len(in), len(out), elided)
		}
		// Cut short other than by leaving a payload out: only a module
		// ending inside a large payload, refused either way.
		whole, errWhole := rt.CompileModule(ctx, in)
		part, errPart := rt.CompileModule(ctx, out)
		if (errWhole == nil) != (errPart == nil) {
			t.Fatalf("whole: %v; elided: %v", errWhole, errPart)
		}
		if errWhole != nil {
			return
		}
		if !elided {
			t.Fatalf("%d bytes of a module that compiles read as %d", len(in), len(out))
		}
		defer whole.Close(ctx)
		defer part.Close(ctx)
		if len(whole.ImportedFunctions()) != len(part.ImportedFunctions()) ||
			!slices.Equal(slices.Sorted(maps.Keys(whole.ExportedFunctions())), slices.Sorted(maps.Keys(part.ExportedFunctions()))) {
			t.Fatal("imports or exports differ")
		}
	})
}
