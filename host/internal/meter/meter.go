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
// The rewrite changes nothing else: one type, one imported function and one
// global are appended, function indices after the imports shift by one and
// are renumbered everywhere (calls, ref.func, exports, the start function,
// element segments, the name section). DWARF sections, whose code offsets
// the rewrite would invalidate, are dropped.
//
// Modules using proposals whose instructions the meter does not know (GC,
// typed function references, exception handling, multiple memories with
// 64-bit addresses are fine; see opcode handling) are refused with
// ErrUnsupported, so the caller can fall back to another mechanism.
package meter

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Import is the function the metered module imports: () -> i32, the next
// budget. It may trap (a host panic) to stop the guest.
const (
	ImportModule = "topgun_meter"
	ImportName   = "check"
)

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
// the check function's result refills it. Run Precheck on bin first (the
// host does, for every module): Instrument does not repeat its checks. A
// module that is not a well-formed binary, or that uses instructions the
// meter does not know, is an error wrapping ErrUnsupported or describing
// the malformation; the caller should then compile the original bytes and
// let the runtime report the problem.
func Instrument(bin []byte, budget int32) (out []byte, info Info, err error) {
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
	m, err := parseModule(bin)
	if err != nil {
		return nil, info, err
	}
	return m.rewrite(budget)
}

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
	funcTypes      []uint32 // type of each defined function
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

func parseModule(bin []byte) (*module, error) {
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
				return nil, unsupported("section id %d", id)
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
		var err error
		switch s.id {
		case secType:
			m.params, err = typeParams(s.body)
			m.types = uint32(len(m.params))
		case secImport:
			m.importedFuncs, m.importedGlobal, err = countImports(s.body)
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
	return m, nil
}

// typeParams checks that every type is a plain function type (one index
// each; GC rec groups would make the count differ) and returns the number
// of parameters of each.
func typeParams(body []byte) ([]uint32, error) {
	r := &reader{b: body}
	n := r.u32()
	var params []uint32
	for i := uint32(0); i < n && r.err == nil; i++ {
		if form := r.byte(); form != 0x60 {
			if r.err == nil {
				return nil, unsupported("type form %#x", form)
			}
			break
		}
		for j := 0; j < 2; j++ {
			k := r.count("function type", 1)
			if j == 0 {
				params = append(params, k)
			}
			for v := uint32(0); v < k && r.err == nil; v++ {
				if err := r.valType(); err != nil {
					return nil, err
				}
			}
		}
	}
	return params, r.done("type section")
}

func countImports(body []byte) (funcs, globals uint32, err error) {
	r := &reader{b: body}
	n := r.u32()
	for i := uint32(0); i < n && r.err == nil; i++ {
		r.name()
		r.name()
		switch kind := r.byte(); kind {
		case 0x00:
			r.u32()
			funcs++
		case 0x01:
			if err := r.valType(); err != nil {
				return 0, 0, err
			}
			r.limits()
		case 0x02:
			r.limits()
		case 0x03:
			if err := r.valType(); err != nil {
				return 0, 0, err
			}
			r.byte()
			globals++
		default:
			if r.err == nil {
				return 0, 0, unsupported("import kind %#x", kind)
			}
		}
	}
	return funcs, globals, r.done("import section")
}

// rewrite builds the metered binary.
func (m *module) rewrite(budget int32) ([]byte, Info, error) {
	var info Info
	checkFunc := m.importedFuncs
	counter := m.importedGlobal + m.definedGlobals
	checkType := m.types
	remap := func(f uint32) uint32 {
		if f >= checkFunc {
			return f + 1
		}
		return f
	}
	w := &walker{remap: remap, counter: counter, check: checkFunc, params: m.params, funcTypes: m.funcTypes}

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
		{secType, func() []byte { return appendVec(nil, 0, nil, funcTypeI32()) }},
		{secImport, func() []byte { return appendVec(nil, 0, nil, checkImport(checkType)) }},
		{secGlobal, func() []byte { return appendVec(nil, 0, nil, counterGlobal(budget)) }},
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
			var cb []byte
			cb = binary.AppendUvarint(cb, uint64(len(s.name)))
			cb = append(cb, s.name...)
			emit(secCustom, append(cb, body...))
			continue
		case secType:
			body, err = appendToVec(s.body, funcTypeI32())
		case secImport:
			body, err = appendToVec(s.body, checkImport(checkType))
		case secGlobal:
			body, err = w.globals(s.body, counterGlobal(budget))
		case secExport:
			body, err = exports(s.body, remap)
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

func checkImport(typeIdx uint32) []byte {
	var b []byte
	b = binary.AppendUvarint(b, uint64(len(ImportModule)))
	b = append(b, ImportModule...)
	b = binary.AppendUvarint(b, uint64(len(ImportName)))
	b = append(b, ImportName...)
	b = append(b, 0x00)
	return binary.AppendUvarint(b, uint64(typeIdx))
}

func counterGlobal(budget int32) []byte {
	b := []byte{0x7f, 0x01, 0x41}
	b = appendSLEB(b, int64(budget))
	return append(b, 0x0b)
}

// appendToVec appends one encoded item to a vector section body.
func appendToVec(body, item []byte) ([]byte, error) {
	r := &reader{b: body}
	n := r.u32()
	if r.err != nil {
		return nil, r.err
	}
	return appendVec(nil, n, body[r.i:], item), nil
}

func appendVec(dst []byte, n uint32, items, item []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(n)+1)
	dst = append(dst, items...)
	return append(dst, item...)
}

func exports(body []byte, remap func(uint32) uint32) ([]byte, error) {
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
