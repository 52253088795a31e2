package meter

import (
	"encoding/binary"
	"fmt"
)

// Table limits. wazero caps linear memory (the host's memory limit) but
// not tables: table.grow on a table without a maximum allocates 8 bytes
// per entry on the host's heap, up to 2^32 entries, and a table's minimum
// is allocated at instantiation. Go's wasm output declares one table of
// its functions (6,590 entries for the null plugin) without a maximum and
// never grows it.
const (
	// MaxTableEntries is the most entries one table may declare or grow
	// to: 2 MiB of host memory.
	MaxTableEntries = 1 << 18
	// MaxTables is the most tables a module may define or import.
	MaxTables = 4
)

// CapTables returns bin with every defined table's maximum set to at most
// MaxTableEntries (table.grow past it fails, as the wasm spec allows), or
// an error when a table's minimum alone passes it or the module has more
// than MaxTables tables. Sections other than the table section are copied
// as they are.
func CapTables(bin []byte) ([]byte, error) {
	if len(bin) < 8 || string(bin[:4]) != "\x00asm" {
		return nil, malformed("no wasm magic")
	}
	tables := 0
	out := make([]byte, 0, len(bin)+16)
	out = append(out, bin[:8]...)
	r := &reader{b: bin, i: 8}
	for r.i < len(r.b) {
		start := r.i
		id := r.byte()
		size := r.u32()
		body := r.bytes(int(size))
		if r.err != nil {
			return nil, r.err
		}
		switch id {
		case secImport:
			n, err := importedTables(body)
			if err != nil {
				return nil, err
			}
			tables += n
		case secTable:
			capped, n, err := capTableSection(body)
			if err != nil {
				return nil, err
			}
			tables += n
			out = append(out, secTable)
			out = binary.AppendUvarint(out, uint64(len(capped)))
			out = append(out, capped...)
			continue
		}
		out = append(out, bin[start:r.i]...)
	}
	if tables > MaxTables {
		return nil, fmt.Errorf("the module has %d tables, the limit is %d", tables, MaxTables)
	}
	return out, nil
}

// capTableSection rewrites a table section, capping each maximum.
func capTableSection(body []byte) ([]byte, int, error) {
	r := &reader{b: body}
	n := r.count("table section", 3)
	out := binary.AppendUvarint(nil, uint64(n))
	for i := uint32(0); i < n && r.err == nil; i++ {
		ref := r.byte()
		if ref != 0x70 && ref != 0x6f {
			// 0x40: a table with an initializer (function references).
			return nil, 0, unsupported("table %d of type %#x", i, ref)
		}
		flags := r.byte()
		if flags > 1 {
			return nil, 0, unsupported("table %d with limits flags %#x (shared or 64-bit)", i, flags)
		}
		lo, hi := r.u32(), uint32(MaxTableEntries)
		if flags == 1 {
			hi = min(r.u32(), MaxTableEntries)
		}
		if r.err != nil {
			break
		}
		if lo > MaxTableEntries {
			return nil, 0, fmt.Errorf("table %d declares %d entries, the limit is %d", i, lo, MaxTableEntries)
		}
		if hi < lo {
			return nil, 0, malformed("table %d: maximum %d below minimum %d", i, hi, lo)
		}
		out = append(out, ref, 1)
		out = binary.AppendUvarint(out, uint64(lo))
		out = binary.AppendUvarint(out, uint64(hi))
	}
	if err := r.done("table section"); err != nil {
		return nil, 0, err
	}
	return out, int(n), nil
}

// importedTables counts the table imports of an import section.
func importedTables(body []byte) (int, error) {
	r := &reader{b: body}
	n := r.count("import section", 3)
	tables := 0
	for i := uint32(0); i < n && r.err == nil; i++ {
		r.name()
		r.name()
		switch kind := r.byte(); kind {
		case 0: // function
			r.u32()
		case 1: // table
			tables++
			r.byte()
			r.limits()
		case 2: // memory
			r.limits()
		case 3: // global
			if err := r.valType(); err != nil {
				return 0, err
			}
			r.byte()
		case 4: // tag
			r.byte()
			r.u32()
		default:
			return 0, malformed("import %d of kind %d", i, kind)
		}
	}
	return tables, r.done("import section")
}
