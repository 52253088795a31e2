package meter

import (
	"cmp"
	"errors"
)

// MaxLocals caps the locals one function declares (the limit V8 and
// wasmtime use too).
const MaxLocals = 50_000

// MaxModuleLocals caps the locals of all function bodies of a module (a
// Go plugin declares about 10,000). wazero keeps 8 bytes for each local a
// body declares in 3 bytes: 5,000 bodies of MaxLocals locals, a file of
// 40 KB, made it hold 1.9 GiB. This cap is 32 MiB.
const MaxModuleLocals = 1 << 22

// MaxFunctions caps the function bodies of a module (V8's limit is
// 1,000,000; a Go plugin has a few thousand). The metered copy of a tiny
// body is many times its size, so a file of millions of empty functions
// would make the meter allocate gigabytes.
const MaxFunctions = 1_000_000

// MaxBodySize caps the bytes of one function body (V8's limit; the
// largest body of a Go plugin is about 30 KB). wazero's compiler takes
// about 85 times a body's size at its peak: a 12 MB body, 1 GB.
const MaxBodySize = 7_654_321

// MaxNames caps the entries of a module's name section: function names,
// functions with local names, and local names (a Go plugin has a few
// thousand). wazero keeps 24 to 32 bytes for each entry of 2 bytes while
// it loads the module: 4 GiB for a file within its limit.
const MaxNames = 1 << 22

// MaxExports caps the exports of a module (V8's limit too). wazero sizes
// a map and a slice by the claimed count first, 28 times the bytes of
// exports with empty names: gigabytes for a plugin file within its limit.
const MaxExports = 1_000_000

// MaxImports caps the imports of a module (V8's limit too). wazero sizes
// a slice of 112-byte imports by the claimed count first: 44 times the
// bytes of imports with empty names.
const MaxImports = 1_000_000

// MaxTypes caps the types of a module, members of recursive type groups
// included (V8's limit too). wazero keeps 96 bytes for each type of 3
// bytes, and allocates about 200 times the section's size appending them.
const MaxTypes = 1_000_000

// MaxParams caps the parameters, and the results, of one function type
// (V8's limit too). wazero builds the key of each type by appending one
// value's name at a time, quadratic in their number: a type of a million
// parameters, a file of one megabyte, makes it allocate 1.6 TB.
const MaxParams = 1000

// MaxDefinitionScan caps a module's functions (imported and defined)
// times its exports and local-name entries. wazero builds each function's
// definition, which the host asks for right after compiling, by scanning
// every export and every local-name entry: 16,384 functions and as many
// exports, a file of 200 KB, take 0.3 s, and a million of each hours.
const MaxDefinitionScan = 1 << 34

// MaxSections caps the sections of a module, custom sections included (a
// Go plugin has about twenty). Each one costs the parser and wazero's
// decoder a few hundred bytes however small it is, so without a cap a
// plugin file of millions of 4-byte custom sections would make a load
// allocate about 45 times the file's size.
const MaxSections = 10_000

// The runtime allocates for each instance, on the host's heap and outside
// its memory limit, about 90 bytes per global, 24 per data or element
// segment and 8 per element: without caps, a module of a few megabytes
// would make every instance of a pool take hundreds. Go plugins have 8
// globals, one element segment of a few thousand elements and tens of
// thousands of data segments.
const (
	// MaxGlobals caps the globals a module defines (9 MiB per instance).
	MaxGlobals = 100_000
	// MaxSegments caps the data and element segments of a module (12 MiB
	// per instance).
	MaxSegments = 1 << 19
	// MaxElements caps the elements of all element segments of a module
	// (8 MiB per instance).
	MaxElements = 1 << 20
)

// Precheck checks that every count a module claims fits the bytes that
// follow it: vector lengths of all sections, element segments, data
// segments, export names, the locals of each function and the name
// section's maps, import names and type signatures. It reads them as the
// runtime decodes them, typed references and recursive type groups
// included, which the meter cannot rewrite but the runtime decodes all the
// same. It also refuses a module past MaxGlobals, MaxSegments,
// MaxElements, MaxImports, MaxTypes, MaxParams, MaxFunctions,
// MaxModuleLocals, MaxBodySize, MaxNames or MaxDefinitionScan.
//
// wazero v1.12 allocates for a claimed count before it reads the elements,
// so a module of a hundred bytes claiming four billion function names or
// locals makes it allocate gigabytes and takes the process down. The host
// runs Precheck on every module before wazero sees it, in every trust mode.
func Precheck(bin []byte) error {
	m, err := splitModule(bin)
	if err != nil {
		return err
	}
	segments, elements := 0, 0
	// What wazero's function definitions scan: see MaxDefinitionScan.
	funcs, scanned := 0, 0
	names := uint64(0)
	// What is left unsupported here (a type other than a function, a tag
	// import, unknown limits, element or data flags) the runtime refuses
	// where it meets it; the sections before it, which it has decoded, are
	// checked.
	var unknown error
	for _, s := range m.sections {
		r := &reader{b: s.body}
		var err error
		switch s.id {
		case secType:
			err = precheckTypes(r)
		case secImport:
			err = precheckImports(r, &funcs)
		case secFunction:
			// The code section is checked against MaxFunctions, but wazero
			// allocates for this count first.
			n := r.u32()
			if n > MaxFunctions {
				err = malformed("%d functions, the limit is %d", n, MaxFunctions)
			}
			funcs += int(n)
		case secGlobal:
			if n := r.u32(); n > MaxGlobals {
				err = malformed("%d globals, the limit is %d", n, MaxGlobals)
			}
		case secElement:
			err = precheckElements(r, &segments, &elements)
		case secData:
			err = precheckData(r, &segments)
		case secExport:
			n := r.count("export section", 3)
			if n > MaxExports {
				err = malformed("%d exports, the limit is %d", n, MaxExports)
				break
			}
			scanned += int(n)
			for i := uint32(0); i < n && r.err == nil; i++ {
				r.name()
				r.byte()
				r.u32()
			}
			err = r.done("export section")
		case secCode:
			err = precheckCode(r)
		case secCustom:
			if s.name == "name" {
				err = precheckNames(r, &scanned, &names)
			}
		}
		if err == nil && segments > MaxSegments {
			err = malformed("more than %d data and element segments", MaxSegments)
		}
		if err == nil && elements > MaxElements {
			err = malformed("more than %d elements in element segments", MaxElements)
		}
		if errors.Is(err, ErrUnsupported) {
			unknown = cmp.Or(unknown, err)
			continue
		}
		if err != nil {
			return err
		}
	}
	if uint64(funcs)*uint64(scanned) > MaxDefinitionScan {
		return malformed("%d functions times %d exports and local-name entries, the limit is %d", funcs, scanned, uint64(MaxDefinitionScan))
	}
	return unknown
}

// count reads a vector length that must fit the remaining bytes, each
// element taking at least min bytes.
func (r *reader) count(what string, min int) uint32 {
	n := r.u32()
	if r.err == nil && int64(n)*int64(min) > int64(len(r.b)-r.i) {
		r.fail(malformed("%s claims %d elements in %d bytes", what, n, len(r.b)-r.i))
		return 0
	}
	return n
}

// anyType reads a value type as the runtime decodes it, whatever features
// are enabled: one byte, or a reference prefix and a heap type. Reading it
// as one byte (the meter's valType) would leave Precheck out of step with
// the runtime, which decodes the rest of the section differently.
func (r *reader) anyType() {
	if c := r.byte(); c == 0x63 || c == 0x64 {
		r.sleb(5)
	}
}

// skipExpr skips a constant expression as the runtime decodes it: the
// opcodes it knows, up to the first end. It validates the expression
// later, after decoding the whole module.
func skipExpr(r *reader) {
	for r.err == nil {
		switch op := r.byte(); op {
		case 0x0b:
			return
		case 0x41:
			r.sleb(5)
		case 0x42:
			r.sleb(10)
		case 0x43:
			r.bytes(4)
		case 0x44:
			r.bytes(8)
		case 0x23, 0xd2: // global.get, ref.func
			r.u32()
		case 0xd0: // ref.null: funcref, externref, exnref or a type index
			if c := r.byte(); r.err == nil && c != 0x70 && c != 0x6f && c != 0x69 {
				r.i--
				r.u32()
			}
		case 0xfd: // v128.const
			if r.byte() != 0x0c && r.err == nil {
				r.fail(malformed("opcode 0xfd %d in a constant expression", r.b[r.i-1]))
			}
			r.bytes(16)
		case 0x6a, 0x6b, 0x6c, 0x7c, 0x7d, 0x7e: // extended constants
		default:
			if r.err == nil {
				r.fail(malformed("opcode %#x in a constant expression", op))
			}
		}
	}
}

// precheckTypes reads the type section as the runtime decodes it,
// recursive type groups and typed references included: the meter cannot
// rewrite such a module, but the runtime loads it, after allocating for
// every count it claims.
func precheckTypes(r *reader) error {
	n := r.count("type section", 1)
	types := 0
	for i := uint32(0); i < n && r.err == nil; i++ {
		k := uint32(1)
		if r.i < len(r.b) && r.b[r.i] == 0x4e {
			r.i++
			k = r.count("recursive type group", 1)
		}
		if types += int(k); types > MaxTypes {
			return malformed("at least %d types, the limit is %d", types, MaxTypes)
		}
		for j := uint32(0); j < k && r.err == nil; j++ {
			if form := r.byte(); form != 0x60 && r.err == nil {
				return unsupported("type form %#x", form)
			}
			for p := 0; p < 2; p++ {
				m := r.count("function type", 1)
				if m > MaxParams {
					return malformed("type %d has %d parameters or results, the limit is %d", types-int(k)+int(j), m, MaxParams)
				}
				for v := uint32(0); v < m && r.err == nil; v++ {
					r.anyType()
				}
			}
		}
	}
	return r.done("type section")
}

// precheckImports reads the import section as the runtime decodes it.
func precheckImports(r *reader, funcs *int) error {
	n := r.count("import section", 3)
	if n > MaxImports {
		return malformed("%d imports, the limit is %d", n, MaxImports)
	}
	for i := uint32(0); i < n && r.err == nil; i++ {
		r.name()
		r.name()
		switch kind := r.byte(); kind {
		case 0x00:
			r.u32()
			*funcs++
		case 0x01:
			init := false
			if r.i < len(r.b) && r.b[r.i] == 0x40 { // a table with an initializer
				r.bytes(2)
				init = true
			}
			r.anyType()
			r.limits()
			if init {
				skipExpr(r)
			}
		case 0x02:
			r.limits()
		case 0x03:
			r.anyType()
			r.byte()
		default:
			// Tags (exception handling is off in the host's runtime) or no
			// import at all: the runtime stops decoding here too.
			if r.err == nil {
				return unsupported("import kind %#x", kind)
			}
		}
	}
	return r.done("import section")
}

func precheckElements(r *reader, segments, elements *int) error {
	n := r.count("element section", 1)
	*segments += int(n)
	for i := uint32(0); i < n && r.err == nil; i++ {
		flags := r.u32()
		if flags > 7 {
			return unsupported("element segment flags %d", flags)
		}
		if flags&2 != 0 && flags&1 == 0 {
			r.u32()
		}
		if flags&1 == 0 {
			skipExpr(r)
		}
		if flags&4 != 0 && flags&3 != 0 {
			r.anyType()
		} else if flags&3 != 0 {
			r.byte()
		}
		k := r.count("element segment", 1)
		*elements += int(k)
		for j := uint32(0); j < k && r.err == nil; j++ {
			if flags&4 != 0 {
				skipExpr(r)
			} else {
				r.u32()
			}
		}
	}
	return r.done("element section")
}

func precheckData(r *reader, segments *int) error {
	n := r.count("data section", 1)
	*segments += int(n)
	for i := uint32(0); i < n && r.err == nil; i++ {
		flags := r.u32()
		switch flags {
		case 0:
			skipExpr(r)
		case 1:
		case 2:
			r.u32()
			skipExpr(r)
		default:
			return unsupported("data segment flags %d", flags)
		}
		r.bytes(int(r.u32()))
	}
	return r.done("data section")
}

func precheckCode(r *reader) error {
	n := r.count("code section", 1)
	if n > MaxFunctions && r.err == nil {
		return malformed("%d function bodies, the limit is %d", n, MaxFunctions)
	}
	var total uint64
	for i := uint32(0); i < n && r.err == nil; i++ {
		body := r.bytes(int(r.u32()))
		if r.err != nil {
			break
		}
		if len(body) > MaxBodySize {
			return malformed("function body %d is %d bytes, the limit is %d", i, len(body), MaxBodySize)
		}
		br := &reader{b: body}
		k := br.count("locals", 2)
		var sum uint64
		for j := uint32(0); j < k && br.err == nil; j++ {
			sum += uint64(br.u32())
			br.anyType()
		}
		if br.err != nil {
			return br.err
		}
		if sum > MaxLocals {
			return malformed("function body %d declares %d locals, the limit is %d", i, sum, MaxLocals)
		}
		if total += sum; total > MaxModuleLocals {
			return malformed("function bodies 0 to %d declare %d locals in all, the limit is %d", i, total, MaxModuleLocals)
		}
	}
	return r.done("code section")
}

// precheckNames reads a name section; names counts the entries of every
// name section of the module.
func precheckNames(r *reader, scanned *int, names *uint64) error {
	tooMany := func(sub *reader, n uint32) {
		if *names += uint64(n); *names > MaxNames && sub.err == nil {
			sub.fail(malformed("the name section has more than %d entries", MaxNames))
		}
	}
	for r.i < len(r.b) && r.err == nil {
		id := r.byte()
		sub := &reader{b: r.bytes(int(r.u32()))}
		if r.err != nil {
			break
		}
		switch id {
		case 0:
			sub.name()
		case 1:
			n := sub.count("function names", 2)
			tooMany(sub, n)
			for i := uint32(0); i < n && sub.err == nil; i++ {
				sub.u32()
				sub.name()
			}
		case 2:
			n := sub.count("local names", 2)
			*scanned += int(n)
			tooMany(sub, n)
			for i := uint32(0); i < n && sub.err == nil; i++ {
				sub.u32()
				k := sub.count("local names of a function", 2)
				tooMany(sub, k)
				for j := uint32(0); j < k && sub.err == nil; j++ {
					sub.u32()
					sub.name()
				}
			}
		}
		if id <= 2 {
			// The runtime reads these without bounding them by their size,
			// so each must end exactly where its size says.
			if err := sub.done("name subsection"); err != nil {
				return err
			}
		}
	}
	return r.done("name section")
}
