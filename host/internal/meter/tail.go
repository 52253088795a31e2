package meter

import "unicode/utf8"

// TrimEmptyCustomTail returns bin without the empty custom sections (a
// name, no payload) that end it, as a prefix of bin (nothing is copied).
// wazero v1.12, when it keeps custom sections (debug info on), refuses a
// module whose last section is one: reading its 0 bytes at the end of the
// file gives EOF. A custom section means nothing to the runtime, so the
// module compiles to the same code without them. The name section, which
// wazero decodes instead and reads empty, and anything the runtime would
// refuse (a malformed section, a name that is not UTF-8, more than
// MaxSections sections) are left as they are, so that a module is refused
// as it would be whole.
func TrimEmptyCustomTail(bin []byte) []byte {
	if len(bin) < 8 {
		return bin
	}
	r := &reader{b: bin, i: 8}
	cut := len(bin) // where the trailing run of empty custom sections starts
	for n := 0; r.i < len(r.b); n++ {
		if n == MaxSections {
			return bin
		}
		start := r.i
		id := r.byte()
		body := r.bytes(int(r.u32()))
		if r.err != nil {
			return bin
		}
		empty := false
		if id == secCustom {
			nr := &reader{b: body}
			name := nr.name()
			empty = nr.err == nil && nr.i == len(body) && utf8.Valid(name) && string(name) != "name"
		}
		switch {
		case !empty:
			cut = len(bin)
		case cut == len(bin):
			cut = start
		}
	}
	return bin[:cut]
}
