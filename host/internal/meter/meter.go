// Package meter rewrites a WebAssembly module so that it pays for its work
// out of a budget and calls the host whenever the budget runs out. The host
// uses that call to enforce a call deadline inside the guest's own thread:
// a runaway loop reaches the host within a bounded amount of work, however
// busy the process is.
//
// wazero's own mechanism (WithCloseOnContextDone) leaves compiled code for
// Go at every loop back-edge and function entry, which makes Go guests 5-6x
// slower. The metered module stays in compiled code: at each function entry
// and each loop header it subtracts the static size of the code it is about
// to run (the function body, the loop body) from a counter global, and only
// when the counter drops below zero does it call the imported check
// function, which returns the next budget (or traps). Every iteration of a
// loop and every call is charged, so the guest cannot run longer than one
// budget plus one body between checks.
//
// It also bounds the call stack, which wazero keeps on the host's heap
// outside linear memory (its own ceiling is about 100 MB per instance):
// each function entry adds an estimate of its frame's size to a second
// global and each exit subtracts it, and an entry that takes the sum past
// the limit calls the imported stack function, which traps. The estimate
// is meant as an upper bound of what wazero's compiled frame holds (it
// gives every value spilled across a call a slot of its own): 16 bytes
// for every local, for every value the body's instructions can leave on
// the operand stack (one per instruction, or a call's results), for every
// value a block may merge (each local set inside it, its parameters and
// results: the compiler makes one at a loop header or a block's end), for
// every value a branch back to a loop copies (the compiler moves each
// value the loop merges through a temporary of its own on every such
// branch) and for the parameters and results of the largest call, plus 64
// bytes of fixed overhead. It is checked against the worst shapes known
// (many live locals; many locals changed in deeply nested loops; a
// br_table of thousands of entries back to a loop), not proved. A function
// whose frame alone is over the limit is refused (ErrFrameTooLarge). A body is wrapped in a block so that
// every way out (its end, return, a branch to its label) passes the
// subtraction; return becomes a branch to that block.
//
// The rewrite changes nothing else: types, two imported functions and two
// globals are appended, function indices after the imports shift by two
// and are renumbered everywhere (calls, ref.func, exports, the start
// function, element segments, the name section). DWARF sections, whose
// code offsets the rewrite would invalidate, are dropped.
//
// Modules using proposals whose instructions the meter does not know (GC,
// typed function references, exception handling, multiple memories with
// 64-bit addresses are fine; see opcode handling) or tail calls (which the
// host's runtime does not enable) are refused with ErrUnsupported, so the
// caller can fall back to another mechanism.
package meter

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// The functions the metered module imports: ImportName, () -> i32, returns
// the next budget and may trap (a host panic) to stop the guest;
// StackImportName, () -> (), is called when the call stack passes its
// limit and must trap.
const (
	ImportModule    = "topgun_meter"
	ImportName      = "check"
	StackImportName = "stack"
)

// Version changes whenever Instrument's output for a given input does:
// the host keys its cache of metered modules by it.
const Version = 5

// ErrFrameTooLarge wraps the refusal of a function whose frame alone is
// estimated over the stack limit: it could never run.
var ErrFrameTooLarge = errors.New("meter: function frame over the stack limit")

// ErrUnsupported wraps the reason a module cannot be metered.
var ErrUnsupported = errors.New("meter: module not supported")

// Info describes a metered module.
type Info struct {
	// Checks is the number of check sites inserted (function entries plus
	// loop headers).
	Checks int
	// Functions is the number of function bodies.
	Functions int
}

// maxWeight caps the charge of one check site, so that a single giant body
// still fits the i32 arithmetic.
const maxWeight = 1 << 24

// Instrument returns the metered module. The counter starts at budget and
// the check function's result refills it; stackLimit bounds the estimated
// call stack in bytes (at most 1 GiB). Run Precheck on bin first (the
// host does, for every module): Instrument does not repeat its checks. A
// module that is not a well-formed binary, or that uses instructions the
// meter does not know, is an error wrapping ErrUnsupported or describing
// the malformation; the caller should then compile the original bytes and
// let the runtime report the problem.
func Instrument(bin []byte, budget, stackLimit int32) (out []byte, info Info, err error) {
	defer func() {
		// The parser bounds every read; a panic here is a bug, but a hostile
		// module must never take the process down with it.
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("meter: internal error: %v", r)
		}
	}()
	if budget <= 0 {
		return nil, info, fmt.Errorf("meter: budget %d must be positive", budget)
	}
	if stackLimit <= 0 || stackLimit > maxStackLimit {
		return nil, info, fmt.Errorf("meter: stack limit %d must be in [1, %d]", stackLimit, maxStackLimit)
	}
	m, err := parseModule(bin)
	if err != nil {
		return nil, info, err
	}
	return m.rewrite(budget, stackLimit)
}

// maxStackLimit keeps the stack arithmetic within i32: the sum never
// exceeds the limit before an entry adds at most limit+1.
const maxStackLimit = 1 << 30

// Section ids.
const (
	secCustom    = 0
	secType      = 1
	secImport    = 2
	secFunction  = 3
	secTable     = 4
	secMemory    = 5
	secGlobal    = 6
	secExport    = 7
	secStart     = 8
	secElement   = 9
	secCode      = 10
	secData      = 11
	secDataCount = 12
	secTag       = 13
)

// order is each known section's rank in the binary's required order.
var order = map[byte]int{
	secType: 1, secImport: 2, secFunction: 3, secTable: 4, secMemory: 5, secTag: 6,
	secGlobal: 7, secExport: 8, secStart: 9, secElement: 10, secDataCount: 11, secCode: 12, secData: 13,
}

type section struct {
	id   byte
	name string // custom sections only
	body []byte // the payload (for custom sections, after the name)
}

type module struct {
	size           int
	sections       []section
	params         []uint32 // parameter count of each type
	results        [][]byte // result types of each type
	funcTypes      []uint32 // type of each defined function
	importTypes    []uint32 // type of each imported function
	importedFuncs  uint32
	importedGlobal uint32
	definedGlobals uint32
	types          uint32
}

// malformed errors describe the problem only: the host prefixes them with
// the file and "invalid wasm module".
func malformed(format string, args ...any) error {
	return fmt.Errorf(format, args...)
}

func unsupported(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrUnsupported}, args...)...)
}

// splitModule reads the module's sections and checks that each vector
// count fits its section's bytes. It does not look inside the sections, so
// Precheck, which uses it, covers modules the meter cannot rewrite.
func splitModule(bin []byte) (*module, error) {
	if len(bin) < 8 || string(bin[:4]) != "\x00asm" {
		return nil, malformed("no wasm magic")
	}
	if binary.LittleEndian.Uint32(bin[4:8]) != 1 {
		return nil, unsupported("binary version %d", binary.LittleEndian.Uint32(bin[4:8]))
	}
	m := &module{size: len(bin)}
	r := &reader{b: bin, i: 8}
	last := 0
	for r.i < len(r.b) {
		if len(m.sections) == MaxSections {
			return nil, malformed("more than %d sections", MaxSections)
		}
		id := r.byte()
		size := r.u32()
		body := r.bytes(int(size))
		if r.err != nil {
			return nil, r.err
		}
		s := section{id: id, body: body}
		if id == secCustom {
			nr := &reader{b: body}
			s.name = string(nr.name())
			if nr.err != nil {
				return nil, malformed("custom section name: %v", nr.err)
			}
			s.body = body[nr.i:]
		} else {
			rank, ok := order[id]
			if !ok {
				// The runtime knows no other section either, but decodes
				// those before it: malformed, not unsupported, so that
				// Precheck refuses the module instead of leaving them
				// unchecked.
				return nil, malformed("section id %d is not a wasm section", id)
			}
			if rank <= last {
				return nil, malformed("section %d out of order", id)
			}
			last = rank
		}
		m.sections = append(m.sections, s)
	}
	for _, s := range m.sections {
		if s.id != secCustom && s.id != secStart && s.id != secDataCount {
			// Every vector element takes at least one byte. Checking this
			// before the runtime sees the module keeps a few bytes from
			// claiming millions of elements (wazero allocates for the
			// claimed count first).
			r := &reader{b: s.body}
			if n := r.u32(); r.err != nil || int64(n) > int64(len(s.body)-r.i) {
				return nil, malformed("section %d claims %d elements in %d bytes", s.id, n, len(s.body))
			}
		}
	}
	return m, nil
}

func parseModule(bin []byte) (*module, error) {
	m, err := splitModule(bin)
	if err != nil {
		return nil, err
	}
	for _, s := range m.sections {
		var err error
		switch s.id {
		case secType:
			m.params, m.results, err = typeSigs(s.body)
			m.types = uint32(len(m.params))
		case secImport:
			m.importTypes, m.importedGlobal, err = countImports(s.body)
			m.importedFuncs = uint32(len(m.importTypes))
		case secGlobal:
			r := &reader{b: s.body}
			m.definedGlobals = r.u32()
			err = r.err
		case secFunction:
			r := &reader{b: s.body}
			n := r.u32()
			for i := uint32(0); i < n && r.err == nil; i++ {
				m.funcTypes = append(m.funcTypes, r.u32())
			}
			err = r.done("function section")
		}
		if err != nil {
			return nil, err
		}
	}
	// The meter appends types: an import of one past the module's own
	// would become valid.
	for _, t := range m.importTypes {
		if t >= m.types {
			return nil, malformed("an import of type %d of %d types", t, m.types)
		}
	}
	return m, nil
}

// typeSigs checks that every type is a plain function type (one index
// each; GC rec groups would make the count differ) and returns the number
// of parameters and the result types of each.
func typeSigs(body []byte) (params []uint32, results [][]byte, err error) {
	r := &reader{b: body}
	n := r.u32()
	for i := uint32(0); i < n && r.err == nil; i++ {
		if form := r.byte(); form != 0x60 {
			if r.err == nil {
				return nil, nil, unsupported("type form %#x", form)
			}
			break
		}
		for j := 0; j < 2; j++ {
			k := r.count("function type", 1)
			start := r.i
			for v := uint32(0); v < k && r.err == nil; v++ {
				if err := r.valType(); err != nil {
					return nil, nil, err
				}
			}
			if j == 0 {
				params = append(params, k)
			} else if r.err == nil {
				results = append(results, r.b[start:r.i])
			}
		}
	}
	return params, results, r.done("type section")
}

func countImports(body []byte) (funcs []uint32, globals uint32, err error) {
	r := &reader{b: body}
	n := r.u32()
	for i := uint32(0); i < n && r.err == nil; i++ {
		r.name()
		r.name()
		switch kind := r.byte(); kind {
		case 0x00:
			funcs = append(funcs, r.u32())
		case 0x01:
			if err := r.valType(); err != nil {
				return nil, 0, err
			}
			r.limits()
		case 0x02:
			r.limits()
		case 0x03:
			if err := r.valType(); err != nil {
				return nil, 0, err
			}
			r.byte()
			globals++
		default:
			if r.err == nil {
				return nil, 0, unsupported("import kind %#x", kind)
			}
		}
	}
	return funcs, globals, r.done("import section")
}

// rewrite builds the metered binary.
func (m *module) rewrite(budget, stackLimit int32) ([]byte, Info, error) {
	var info Info
	checkFunc := m.importedFuncs
	counter := m.importedGlobal + m.definedGlobals
	checkType := m.types
	remap := func(f uint32) uint32 {
		if f >= checkFunc {
			return f + 2
		}
		return f
	}
	// The check's type, the stack function's, and a block type [] -> results
	// for each result list of a function with parameters and several
	// results (the wrapping block cannot take the function's own type).
	newTypes := [][]byte{funcTypeI32(), {0x60, 0x00, 0x00}}
	blockTypes := map[string]uint32{}
	for _, ft := range m.funcTypes {
		if int(ft) >= len(m.params) || m.params[ft] == 0 || len(m.results[ft]) < 2 {
			continue
		}
		if _, ok := blockTypes[string(m.results[ft])]; !ok {
			blockTypes[string(m.results[ft])] = m.types + uint32(len(newTypes))
			t := binary.AppendUvarint([]byte{0x60, 0x00}, uint64(len(m.results[ft])))
			newTypes = append(newTypes, append(t, m.results[ft]...))
		}
	}
	w := &walker{remap: remap, counter: counter, check: checkFunc, params: m.params, funcTypes: m.funcTypes,
		types: m.types, depth: counter + 1, stack: checkFunc + 1, stackLimit: stackLimit, results: m.results,
		importTypes: m.importTypes, blockTypes: blockTypes}
	imports := [][]byte{checkImport(checkType, ImportName), checkImport(checkType+1, StackImportName)}
	globals := [][]byte{counterGlobal(budget), {0x7f, 0x01, 0x41, 0x00, 0x0b}} // the counter; the stack, i32 0

	out := make([]byte, 0, m.size+m.size/4+64)
	out = append(out, "\x00asm\x01\x00\x00\x00"...)
	emit := func(id byte, body []byte) {
		out = append(out, id)
		out = binary.AppendUvarint(out, uint64(len(body)))
		out = append(out, body...)
	}
	have := map[byte]bool{}
	for _, s := range m.sections {
		have[s.id] = true
	}
	// Sections the rewrite must add when the module has none, placed
	// before the first known section that follows them.
	pending := []struct {
		id   byte
		body func() []byte
	}{
		{secType, func() []byte { return appendVec(nil, 0, nil, newTypes...) }},
		{secImport, func() []byte { return appendVec(nil, 0, nil, imports...) }},
		{secGlobal, func() []byte { return appendVec(nil, 0, nil, globals...) }},
	}
	flush := func(before int) {
		for len(pending) > 0 && order[pending[0].id] < before {
			if !have[pending[0].id] {
				emit(pending[0].id, pending[0].body())
			}
			pending = pending[1:]
		}
	}
	for _, s := range m.sections {
		if s.id != secCustom {
			flush(order[s.id])
		}
		var body []byte
		var err error
		switch s.id {
		case secCustom:
			if strings.HasPrefix(s.name, ".debug_") || s.name == "sourceMappingURL" || s.name == "external_debug_info" {
				continue
			}
			if s.name == "name" {
				body, err = renameFunctions(s.body, remap)
				if err != nil {
					// The name section is advisory; a broken one is dropped
					// rather than failing the module.
					continue
				}
			} else {
				body = s.body
			}
			// Written in place: a copy of the payload joined to its
			// name would cost the section's size again.
			nameLen := binary.AppendUvarint(nil, uint64(len(s.name)))
			out = append(out, secCustom)
			out = binary.AppendUvarint(out, uint64(len(nameLen)+len(s.name)+len(body)))
			out = append(out, nameLen...)
			out = append(out, s.name...)
			out = append(out, body...)
			continue
		case secType:
			body, err = appendToVec(s.body, newTypes...)
		case secImport:
			body, err = appendToVec(s.body, imports...)
		case secGlobal:
			body, err = w.globals(s.body, globals...)
		case secExport:
			body, err = exports(s.body, remap, counter)
		case secStart:
			r := &reader{b: s.body}
			f := r.u32()
			err = r.done("start section")
			body = binary.AppendUvarint(nil, uint64(remap(f)))
		case secElement:
			body, err = w.elements(s.body)
		case secCode:
			body, err = w.code(s.body, &info)
		default:
			body = s.body
		}
		if err != nil {
			return nil, info, err
		}
		emit(s.id, body)
	}
	flush(1 << 30)
	return out, info, nil
}

func funcTypeI32() []byte { return []byte{0x60, 0x00, 0x01, 0x7f} }

func checkImport(typeIdx uint32, name string) []byte {
	var b []byte
	b = binary.AppendUvarint(b, uint64(len(ImportModule)))
	b = append(b, ImportModule...)
	b = binary.AppendUvarint(b, uint64(len(name)))
	b = append(b, name...)
	b = append(b, 0x00)
	return binary.AppendUvarint(b, uint64(typeIdx))
}

func counterGlobal(budget int32) []byte {
	b := []byte{0x7f, 0x01, 0x41}
	b = appendSLEB(b, int64(budget))
	return append(b, 0x0b)
}

// appendToVec appends encoded items to a vector section body.
func appendToVec(body []byte, items ...[]byte) ([]byte, error) {
	r := &reader{b: body}
	n := r.u32()
	if r.err != nil {
		return nil, r.err
	}
	return appendVec(nil, n, body[r.i:], items...), nil
}

// appendVec appends a vector of n encoded items, then the extra ones.
func appendVec(dst []byte, n uint32, encoded []byte, extra ...[]byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(n)+uint64(len(extra)))
	dst = append(dst, encoded...)
	for _, item := range extra {
		dst = append(dst, item...)
	}
	return dst
}

// exports renumbers exported functions; an exported global must be one of
// the module's own (globals counts them), not the meter's.
func exports(body []byte, remap func(uint32) uint32, globals uint32) ([]byte, error) {
	r := &reader{b: body}
	n := r.u32()
	out := binary.AppendUvarint(nil, uint64(n))
	for i := uint32(0); i < n && r.err == nil; i++ {
		start := r.i
		r.name()
		kind := r.byte()
		out = append(out, r.b[start:r.i]...)
		idx := r.u32()
		if kind == 0x00 {
			idx = remap(idx)
		}
		if kind == 0x03 && idx >= globals && r.err == nil {
			return nil, malformed("export of global %d of %d", idx, globals)
		}
		out = binary.AppendUvarint(out, uint64(idx))
	}
	return out, r.done("export section")
}

// renameFunctions renumbers the function and local name maps of a name
// section and drops the subsections that index code by function in other
// ways (labels); the rest is kept as is.
func renameFunctions(body []byte, remap func(uint32) uint32) ([]byte, error) {
	r := &reader{b: body}
	var out []byte
	for r.i < len(r.b) && r.err == nil {
		id := r.byte()
		size := r.u32()
		sub := r.bytes(int(size))
		if r.err != nil {
			break
		}
		switch id {
		case 1, 2:
			sr := &reader{b: sub}
			n := sr.u32()
			nb := binary.AppendUvarint(nil, uint64(n))
			for i := uint32(0); i < n && sr.err == nil; i++ {
				nb = binary.AppendUvarint(nb, uint64(remap(sr.u32())))
				start := sr.i
				if id == 1 {
					sr.name()
				} else {
					k := sr.u32()
					for j := uint32(0); j < k && sr.err == nil; j++ {
						sr.u32()
						sr.name()
					}
				}
				nb = append(nb, sr.b[start:sr.i]...)
			}
			if err := sr.done("name subsection"); err != nil {
				return nil, err
			}
			sub = nb
		case 3:
			continue
		}
		out = append(out, id)
		out = binary.AppendUvarint(out, uint64(len(sub)))
		out = append(out, sub...)
	}
	return out, r.done("name section")
}
