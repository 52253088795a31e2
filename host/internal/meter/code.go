package meter

import (
	"encoding/binary"
	"fmt"
	"sort"
)

// reader reads a wasm binary. The first error sticks; reads after it
// return zero values, so callers check r.err once per item.
type reader struct {
	b   []byte
	i   int
	err error
}

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *reader) byte() byte {
	if r.err != nil {
		return 0
	}
	if r.i >= len(r.b) {
		r.fail(malformed("unexpected end at offset %d", r.i))
		return 0
	}
	c := r.b[r.i]
	r.i++
	return c
}

// u32 reads an unsigned LEB128 of at most 5 bytes that fits 32 bits.
func (r *reader) u32() uint32 {
	// Most immediates are one byte; this path inlines.
	if r.i < len(r.b) && r.b[r.i] < 0x80 && r.err == nil {
		r.i++
		return uint32(r.b[r.i-1])
	}
	v := r.uleb(5)
	if v > 1<<32-1 {
		r.fail(malformed("u32 out of range at offset %d", r.i))
		return 0
	}
	return uint32(v)
}

// uleb reads an unsigned LEB128 of at most max bytes.
func (r *reader) uleb(max int) uint64 {
	var v uint64
	for n := 0; n < max; n++ {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		v |= uint64(c&0x7f) << (7 * n)
		if c&0x80 == 0 {
			return v
		}
	}
	r.fail(malformed("LEB128 longer than %d bytes at offset %d", max, r.i))
	return 0
}

// sleb reads a signed LEB128 of at most max bytes.
func (r *reader) sleb(max int) int64 {
	var v int64
	shift := 0
	for n := 0; n < max; n++ {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		v |= int64(c&0x7f) << shift
		shift += 7
		if c&0x80 == 0 {
			if shift < 64 && c&0x40 != 0 {
				v |= -1 << shift
			}
			return v
		}
	}
	r.fail(malformed("LEB128 longer than %d bytes at offset %d", max, r.i))
	return 0
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b)-r.i {
		r.fail(malformed("length %d at offset %d runs past the end", n, r.i))
		return nil
	}
	p := r.b[r.i : r.i+n]
	r.i += n
	return p
}

func (r *reader) name() []byte { return r.bytes(int(r.u32())) }

// valType reads a one-byte value type; typed references (GC, function
// references) are unsupported.
func (r *reader) valType() error {
	c := r.byte()
	if r.err != nil {
		return r.err
	}
	if !isValType(c) {
		return unsupported("value type %#x", c)
	}
	return nil
}

func isValType(c byte) bool {
	switch c {
	case 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f:
		return true
	}
	return false
}

func (r *reader) limits() {
	flags := r.byte()
	if flags > 0x07 {
		r.fail(unsupported("limits flags %#x", flags))
		return
	}
	r.uleb(10)
	if flags&1 != 0 {
		r.uleb(10)
	}
}

func (r *reader) done(what string) error {
	if r.err != nil {
		return fmt.Errorf("%s: %w", what, r.err)
	}
	if r.i != len(r.b) {
		return malformed("%s: %d trailing bytes", what, len(r.b)-r.i)
	}
	return nil
}

// walker copies code, renumbering function indices and, in function
// bodies, inserting the metering sequences.
type walker struct {
	remap   func(uint32) uint32
	counter uint32 // the counter global, also the module's own global count
	types   uint32 // the module's own type count
	check   uint32 // the check function
	// params and funcTypes give each function's parameter count, to find
	// the index of the scratch local the metering sequence adds.
	params    []uint32
	funcTypes []uint32
	scratch   uint32 // the current function's scratch local
	// The call stack bound: the stack global, the stack function, the
	// limit, and what the frame estimate needs (see Instrument).
	depth       uint32
	stack       uint32
	stackLimit  int32
	results     [][]byte
	importTypes []uint32
	blockTypes  map[string]uint32 // [] -> results, by results, for functions with parameters
	bodyType    []byte            // the current function's wrapping block type
	locals      uint64            // the current function's locals, parameters and scratch included
	extra       int               // values the current body's calls push beyond one each
	phis        int               // merged values the current body's blocks may make (see setLocal)
	tags        int               // the sum of the open frames' tags (see loopEdges)
	callArity   int               // the most parameters and results of a call in the current body
	nextID      uint64            // the next frame id
	marks       []localMark       // by local index, for the first maxDenseMarks locals
	bigMarks    map[uint32]localMark
	sizeAt      []int // offsets of the current frame size's placeholders
	frames      []frame
	out         []byte
	flushed     int // input offset up to which the current expression is copied
	count       int // instructions copied so far in the current body
	r           *reader
	info        *Info
}

// frame is an open block; charge is the offset of the weight placeholder of
// the check site it opened (a loop, or the function itself), or -1.
type frame struct {
	charge  int
	start   int
	wrapper bool   // the block wrapping a function body
	id      uint64 // increasing along the stack (see setLocal)
	// For the frame estimate of a loop (see loopEdges): its arity, the
	// branches to it, and the local sets counted from it up (tag) and in
	// all open frames when it opened (base).
	loop      bool
	arity     int
	edges     int
	tag, base int
}

// localMark records, for a local set in the current body, that the first
// k open frames contained a set of it when frame id was on top (see
// setLocal).
type localMark struct {
	k  int
	id uint64
}

func (w *walker) globals(body []byte, extra ...[]byte) ([]byte, error) {
	r := &reader{b: body}
	n := r.u32()
	w.out = binary.AppendUvarint(nil, uint64(n)+uint64(len(extra)))
	w.r = r
	for i := uint32(0); i < n && r.err == nil; i++ {
		start := r.i
		if err := r.valType(); err != nil {
			return nil, err
		}
		r.byte()
		w.out = append(w.out, r.b[start:r.i]...)
		if err := w.expr(false); err != nil {
			return nil, err
		}
	}
	if err := r.done("global section"); err != nil {
		return nil, err
	}
	for _, g := range extra {
		w.out = append(w.out, g...)
	}
	return w.out, nil
}

func (w *walker) elements(body []byte) ([]byte, error) {
	r := &reader{b: body}
	w.r = r
	n := r.u32()
	w.out = binary.AppendUvarint(nil, uint64(n))
	for i := uint32(0); i < n && r.err == nil; i++ {
		flags := r.u32()
		if r.err != nil {
			break
		}
		if flags > 7 {
			return nil, unsupported("element segment flags %d", flags)
		}
		w.out = binary.AppendUvarint(w.out, uint64(flags))
		if flags&2 != 0 && flags&1 == 0 { // explicit table index
			w.out = binary.AppendUvarint(w.out, uint64(r.u32()))
		}
		if flags&1 == 0 { // active: an offset expression
			if err := w.expr(false); err != nil {
				return nil, err
			}
		}
		if flags&3 != 0 { // elemkind or reftype
			start := r.i
			if flags&4 != 0 {
				if err := r.valType(); err != nil {
					return nil, err
				}
			} else if k := r.byte(); k != 0x00 && r.err == nil {
				return nil, unsupported("element kind %#x", k)
			}
			w.out = append(w.out, r.b[start:r.i]...)
		}
		k := r.u32()
		w.out = binary.AppendUvarint(w.out, uint64(k))
		for j := uint32(0); j < k && r.err == nil; j++ {
			if flags&4 != 0 {
				if err := w.expr(false); err != nil {
					return nil, err
				}
			} else {
				w.out = binary.AppendUvarint(w.out, uint64(w.remap(r.u32())))
			}
		}
	}
	if err := r.done("element section"); err != nil {
		return nil, err
	}
	return w.out, nil
}

func (w *walker) code(body []byte, info *Info) ([]byte, error) {
	r := &reader{b: body}
	n := r.u32()
	out := binary.AppendUvarint(make([]byte, 0, len(body)+len(body)/4), uint64(n))
	w.info = info
	var fn []byte
	for i := uint32(0); i < n && r.err == nil; i++ {
		size := r.u32()
		b := r.bytes(int(size))
		if r.err != nil {
			break
		}
		var err error
		if int(i) >= len(w.funcTypes) || int(w.funcTypes[i]) >= len(w.params) {
			return nil, malformed("function body %d has no valid type in the function section", i)
		}
		fn, err = w.function(b, fn[:0], w.funcTypes[i])
		if err != nil {
			return nil, fmt.Errorf("function body %d: %w", i, err)
		}
		out = binary.AppendUvarint(out, uint64(len(fn)))
		out = append(out, fn...)
		info.Functions++
	}
	if err := r.done("code section"); err != nil {
		return nil, err
	}
	return out, nil
}

func (w *walker) function(body, dst []byte, typ uint32) ([]byte, error) {
	params, results := w.params[typ], w.results[typ]
	// bodyType is reused across bodies; it never aliases results, which
	// point into the input.
	switch bt := w.bodyType[:0]; {
	case len(results) == 0:
		w.bodyType = append(bt, 0x40)
	case len(results) == 1:
		w.bodyType = append(bt, results[0])
	case params == 0:
		w.bodyType = appendSLEB(bt, int64(typ))
	default:
		w.bodyType = appendSLEB(bt, int64(w.blockTypes[string(results)]))
	}
	r := &reader{b: body}
	w.r = r
	w.out = dst
	n := r.u32()
	locals := uint64(params)
	start := r.i
	for i := uint32(0); i < n && r.err == nil; i++ {
		locals += uint64(r.u32())
		if err := r.valType(); err != nil {
			return nil, err
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	if locals >= 1<<32-1 {
		return nil, malformed("%d locals", locals)
	}
	// One more i32 local: the metering sequence keeps the counter in it
	// rather than reading the global back.
	w.scratch = uint32(locals)
	w.locals = locals + 1
	w.out = binary.AppendUvarint(w.out, uint64(n)+1)
	w.out = append(w.out, body[start:r.i]...)
	w.out = append(w.out, 0x01, 0x7f)
	if err := w.expr(true); err != nil {
		return nil, err
	}
	if r.i != len(r.b) {
		return nil, malformed("%d bytes after the end of the body", len(r.b)-r.i)
	}
	return w.out, nil
}

// chargeSite appends the metering sequence and returns the offset of its
// 5-byte weight, patched when the charged block ends (L is the scratch
// local):
//
//	global.get C; i32.const W; i32.sub; local.tee L; global.set C
//	local.get L; i32.const 0; i32.lt_s
//	if; call check; global.set C; end
func (w *walker) chargeSite() int {
	o := w.out
	o = append(o, 0x23)
	o = binary.AppendUvarint(o, uint64(w.counter))
	o = append(o, 0x41)
	at := len(o)
	o = append(o, 0x81, 0x80, 0x80, 0x80, 0x00) // weight 1, padded to 5 bytes
	o = append(o, 0x6b)
	w.out = w.storeAndCheck(o)
	return at
}

// storeAndCheck appends, after the sequence that left the new counter on
// the stack, the part that stores it and calls the check when it is below
// 0 (L is the scratch local):
//
//	local.tee L; global.set C; local.get L; i32.const 0; i32.lt_s
//	if; call check; global.set C; end
func (w *walker) storeAndCheck(o []byte) []byte {
	o = append(o, 0x22)
	o = binary.AppendUvarint(o, uint64(w.scratch))
	o = append(o, 0x24)
	o = binary.AppendUvarint(o, uint64(w.counter))
	o = append(o, 0x20)
	o = binary.AppendUvarint(o, uint64(w.scratch))
	o = append(o, 0x41, 0x00, 0x48, 0x04, 0x40, 0x10)
	o = binary.AppendUvarint(o, uint64(w.check))
	o = append(o, 0x24)
	o = binary.AppendUvarint(o, uint64(w.counter))
	o = append(o, 0x0b)
	w.info.Checks++
	return o
}

// label checks a branch's label depth against the original code's labels:
// the meter's own (the block wrapping a body) must not become reachable,
// nor may anything else the meter adds (globals, the scratch local, types)
// turn an invalid module valid.
func (w *walker) label(metered bool, depth uint32) error {
	if metered && w.r.err == nil && int64(depth) > int64(len(w.frames))-2 {
		return malformed("branch to label %d of %d", depth, len(w.frames)-1)
	}
	if metered && w.r.err == nil {
		w.frames[len(w.frames)-1-int(depth)].edges++
	}
	return nil
}

// funcType is the type of function f (original index), or -1.
func (w *walker) funcType(f uint32) int64 {
	if f < uint32(len(w.importTypes)) {
		return int64(w.importTypes[f])
	}
	if f -= uint32(len(w.importTypes)); f < uint32(len(w.funcTypes)) {
		return int64(w.funcTypes[f])
	}
	return -1
}

// pushes counts the values a call of type typ leaves beyond the one its
// instruction is counted for, and keeps the largest call's parameters and
// results: their area of the frame holds each of them once more.
func (w *walker) pushes(typ int64) {
	if typ < 0 || typ >= int64(len(w.results)) {
		return
	}
	if len(w.results[typ]) > 1 {
		w.extra += len(w.results[typ]) - 1
	}
	w.callArity = max(w.callArity, int(w.params[typ])+len(w.results[typ]))
}

// maxPhis caps the merged-value count of a body: far past any stack
// limit, and within int arithmetic.
const maxPhis = 1 << 40

// loopEdges counts, when loop frame f ends, the values its branches copy:
// every branch back to a loop header moves each value the header merges
// (its parameters and the locals set inside the loop) through a temporary
// of its own in wazero's lowering, and each one spilled takes a slot, so
// a loop costs edges x (sets + arity). The sets are counted in O(1) per
// set: setLocal tags the lowest frame it adds a local to (which covers
// that frame and every one above it), tags sums all open frames' tags,
// and so a frame's count is what tags gained since it opened, once the
// frames above it have closed and taken their tags out.
func (w *walker) loopEdges(f frame) {
	sets := w.tags - f.base
	w.tags -= f.tag
	if f.loop && f.edges > 0 {
		w.phis = min(w.phis+min(f.edges, maxPhis/(sets+f.arity+1))*(sets+f.arity), maxPhis)
	}
}

// enterSite appends the stack entry sequence (S the stack global, F the
// frame estimate, patched at the end of the body, L the scratch local):
//
//	global.get S; i32.const F; i32.add; local.tee L; global.set S
//	local.get L; i32.const limit; i32.gt_u; if; call stack; end
func (w *walker) enterSite() {
	o := append(w.out, 0x23)
	o = binary.AppendUvarint(o, uint64(w.depth))
	o = append(o, 0x41)
	w.sizeAt = append(w.sizeAt, len(o))
	o = append(o, 0x80, 0x80, 0x80, 0x80, 0x00, 0x6a, 0x22)
	o = binary.AppendUvarint(o, uint64(w.scratch))
	o = append(o, 0x24)
	o = binary.AppendUvarint(o, uint64(w.depth))
	o = append(o, 0x20)
	o = binary.AppendUvarint(o, uint64(w.scratch))
	o = append(o, 0x41)
	o = appendSLEB(o, int64(w.stackLimit))
	o = append(o, 0x4b, 0x04, 0x40, 0x10)
	o = binary.AppendUvarint(o, uint64(w.stack))
	w.out = append(o, 0x0b)
}

// exitSite appends the stack exit sequence, which leaves the operand
// stack as it was:
//
//	global.get S; i32.const F; i32.sub; global.set S
func (w *walker) exitSite() {
	o := append(w.out, 0x23)
	o = binary.AppendUvarint(o, uint64(w.depth))
	o = append(o, 0x41)
	w.sizeAt = append(w.sizeAt, len(o))
	o = append(o, 0x80, 0x80, 0x80, 0x80, 0x00, 0x6b, 0x24)
	w.out = binary.AppendUvarint(o, uint64(w.depth))
}

// patchSizes writes the current function's frame estimate into its entry
// and exit sequences: 64 bytes, and 16 for every local, every value its
// instructions can push, every value its blocks may merge or its loops'
// branches copy, and the parameters and results of its largest call (see
// Instrument). A frame over the limit could never run: the module is
// refused rather than compiled (such a body can also take wazero's
// compiler minutes and gigabytes).
func (w *walker) patchSizes() error {
	size := uint64(64) + 16*w.locals + 16*uint64(w.count+w.extra) + 16*uint64(w.phis) + 16*uint64(w.callArity)
	if size > uint64(w.stackLimit) {
		return fmt.Errorf("%w: its frame is estimated at %d bytes, over the call stack limit of %d", ErrFrameTooLarge, size, w.stackLimit)
	}
	for _, at := range w.sizeAt {
		w.putPadded(at, uint32(size))
	}
	return nil
}

func (w *walker) patch(at, weight int) {
	if weight < 1 {
		weight = 1
	}
	if weight > maxWeight {
		weight = maxWeight
	}
	w.putPadded(at, uint32(weight))
}

// putPadded writes v, below 2^31, over the 5-byte i32.const immediate at
// at: a LEB128 padded to 5 bytes, so placeholders can be filled in later.
func (w *walker) putPadded(at int, v uint32) {
	for k := 0; k < 4; k++ {
		w.out[at+k] = 0x80 | byte(v>>(7*k))&0x7f
	}
	w.out[at+4] = byte(v>>28) & 0x07
}

// u32 skips a u32 immediate. Instructions are not copied one by one: expr
// copies the input in spans between the places it changes (flush).
func (w *walker) u32() uint32 { return w.r.u32() }

// flush copies the input from the last flush up to pos.
func (w *walker) flush(pos int) {
	w.out = append(w.out, w.r.b[w.flushed:pos]...)
	w.flushed = pos
}

// blockType reads a block type and returns the number of values the
// block merges (its parameters and results).
func (w *walker) blockType() (int, error) {
	r := w.r
	start := r.i
	c := r.byte()
	if r.err != nil {
		return 0, r.err
	}
	switch {
	case c == 0x40:
		return 0, nil
	case isValType(c):
		return 1, nil
	}
	r.i = start
	v := r.sleb(5)
	if r.err == nil && v < 0 {
		return 0, unsupported("block type %d", v)
	}
	if r.err == nil && v >= int64(w.types) {
		return 0, malformed("block type %d of %d types", v, w.types)
	}
	if r.err != nil || v >= int64(len(w.params)) {
		return 0, r.err
	}
	return int(w.params[v]) + len(w.results[v]), nil
}

// push opens a block frame.
func (w *walker) push(f frame) {
	f.id = w.nextID
	f.base = w.tags
	w.nextID++
	w.frames = append(w.frames, f)
}

// maxDenseMarks bounds the slice of local marks; a body may declare
// billions of locals in a few bytes.
const maxDenseMarks = 1 << 16

// setLocal counts, for a local.set or local.tee of local x, the open
// blocks that had no set of x yet: where such a block merges control flow
// (a loop header, a block's or an if's end) the compiler may make one more
// value for x, and wazero gives every value spilled across a call a stack
// slot of its own. The blocks holding a set of x are always a prefix of
// the open ones (a set counts for every enclosing block), so a mark per
// local tells how many of the open blocks already count x: those opened
// before the mark was taken (ids increase along the stack) and within the
// prefix it recorded. The body and its wrapping block (the first two
// frames) merge nothing.
func (w *walker) setLocal(x uint32) {
	n := len(w.frames)
	var m localMark
	if x < maxDenseMarks {
		if int(x) < len(w.marks) {
			m = w.marks[x]
		}
	} else {
		m = w.bigMarks[x]
	}
	j := 0
	if m.k > 0 {
		lim := min(m.k, n)
		j = sort.Search(lim, func(i int) bool { return w.frames[i].id > m.id })
	}
	if lo := max(j, 2); lo < n {
		w.phis = min(w.phis+n-lo, maxPhis)
		w.frames[lo].tag++
		w.tags++
	}
	m = localMark{k: n, id: w.frames[n-1].id}
	if x < maxDenseMarks {
		for int(x) >= len(w.marks) {
			w.marks = append(w.marks, localMark{})
		}
		w.marks[x] = m
	} else {
		if w.bigMarks == nil {
			w.bigMarks = map[uint32]localMark{}
		}
		w.bigMarks[x] = m
	}
}

func (w *walker) memArg() {
	align := w.u32()
	if align&0x40 != 0 { // multiple memories: a memory index follows
		w.u32()
	}
	w.r.uleb(10)
}

// expr copies one expression up to and including its final end. With
// metered set it is a function body: the entry and every loop are charged.
func (w *walker) expr(metered bool) error {
	r := w.r
	w.frames = w.frames[:0]
	w.count = 0
	w.flushed = r.i
	if metered {
		w.push(frame{charge: w.chargeSite(), start: 0})
		w.extra, w.phis, w.tags, w.callArity = 0, 0, 0, 0
		clear(w.marks)
		w.marks = w.marks[:0]
		clear(w.bigMarks)
		w.sizeAt = w.sizeAt[:0]
		w.enterSite()
		w.out = append(w.out, 0x02)
		w.out = append(w.out, w.bodyType...)
		w.push(frame{charge: -1, wrapper: true})
	} else {
		w.push(frame{charge: -1})
	}
	for r.err == nil {
		start := r.i
		op := r.byte()
		if r.err != nil {
			break
		}
		w.count++
		switch {
		case op == 0x02 || op == 0x04: // block, if
			arity, err := w.blockType()
			if err != nil {
				return err
			}
			w.phis += arity
			w.push(frame{charge: -1})
		case op == 0x03: // loop
			arity, err := w.blockType()
			if err != nil {
				return err
			}
			w.phis += arity
			f := frame{charge: -1, start: w.count, loop: true, arity: arity}
			if metered {
				w.flush(r.i)
				f.charge = w.chargeSite()
			}
			w.push(f)
		case op == 0x0b: // end
			f := w.frames[len(w.frames)-1]
			w.frames = w.frames[:len(w.frames)-1]
			if f.charge >= 0 {
				w.patch(f.charge, w.count-f.start)
			}
			if metered {
				w.loopEdges(f)
			}
			if f.wrapper {
				// The body's end now closes the wrapping block; the
				// function's own end follows the subtraction.
				w.flush(r.i)
				w.exitSite()
				w.out = append(w.out, 0x0b)
				if err := w.patchSizes(); err != nil {
					return err
				}
				f = w.frames[0]
				w.frames = w.frames[:0]
				w.patch(f.charge, w.count-f.start)
				return nil
			}
			if len(w.frames) == 0 {
				w.flush(r.i)
				return nil
			}
		case op == 0x0f && metered: // return: a branch to the wrapping block
			w.flush(start)
			w.out = append(w.out, 0x0c)
			w.out = binary.AppendUvarint(w.out, uint64(len(w.frames)-2))
			w.flushed = r.i
		case op == 0x0c || op == 0x0d: // br, br_if
			if err := w.label(metered, w.u32()); err != nil {
				return err
			}
		case op == 0x0e: // br_table
			n := w.u32()
			for i := uint32(0); i <= n && r.err == nil; i++ {
				if err := w.label(metered, w.u32()); err != nil {
					return err
				}
			}
		case op == 0x12 || op == 0x13: // return_call, return_call_indirect
			// Tail calls are off in the host's runtime, and wazero makes
			// one with many arguments a plain call, which keeps the frame
			// the stack bound would have given back.
			return unsupported("tail call (opcode %#x) at offset %d", op, start)
		case op == 0x10 || op == 0xd2: // call, ref.func
			w.flush(r.i)
			f := r.u32()
			w.out = binary.AppendUvarint(w.out, uint64(w.remap(f)))
			w.flushed = r.i
			if op == 0x10 {
				w.pushes(w.funcType(f))
			}
		case op == 0x11: // call_indirect
			typ := w.u32()
			if r.err == nil && typ >= w.types {
				return malformed("call_indirect of type %d of %d types", typ, w.types)
			}
			w.pushes(int64(typ))
			w.u32()
		case op == 0x1c: // select t*
			n := w.u32()
			for i := uint32(0); i < n && r.err == nil; i++ {
				if err := r.valType(); err != nil {
					return err
				}
			}
		case op >= 0x20 && op <= 0x22: // local.get, local.set, local.tee
			i := w.u32()
			if r.err == nil && metered {
				if i >= w.scratch {
					return malformed("local %d of %d", i, w.scratch)
				}
				if op != 0x20 {
					w.setLocal(i)
				}
			}
		case op == 0x23 || op == 0x24: // global.get, global.set
			if i := w.u32(); r.err == nil && i >= w.counter {
				return malformed("global %d of %d", i, w.counter)
			}
		case op == 0x25 || op == 0x26: // table.get, table.set
			w.u32()
		case op >= 0x28 && op <= 0x3e: // loads and stores
			w.memArg()
		case op == 0x3f || op == 0x40: // memory.size, memory.grow
			w.u32()
		case op == 0x41:
			r.sleb(5)
		case op == 0x42:
			r.sleb(10)
		case op == 0x43:
			r.bytes(4)
		case op == 0x44:
			r.bytes(8)
		case op == 0xd0: // ref.null
			if err := r.valType(); err != nil {
				return err
			}
		case op <= 0x01 || op == 0x05 || op == 0x0f || op == 0x1a || op == 0x1b ||
			(op >= 0x45 && op <= 0xc4) || op == 0xd1:
			// no immediates
		case op == 0xfc:
			sub, err := w.prefixFC()
			if err != nil {
				return err
			}
			if metered && bulkLength(sub) {
				w.flush(start)
				w.chargeLength()
			}
		case op == 0xfd:
			if err := w.prefixFD(); err != nil {
				return err
			}
		case op == 0xfe:
			if err := w.prefixFE(); err != nil {
				return err
			}
		default:
			return unsupported("opcode %#x at offset %d", op, start)
		}
	}
	return r.err
}

func (w *walker) prefixFC() (uint32, error) {
	sub := w.u32()
	switch {
	case sub <= 7: // saturating truncations
	case sub == 8 || sub == 10 || sub == 12 || sub == 14: // memory.init, memory.copy, table.init, table.copy
		w.u32()
		w.u32()
	case sub == 9 || sub == 11 || sub == 13 || (sub >= 15 && sub <= 17): // data.drop, memory.fill, elem.drop, table.grow/size/fill
		w.u32()
	default:
		return 0, unsupported("opcode 0xfc %d", sub)
	}
	return sub, w.r.err
}

// bulkLength reports whether the 0xfc instruction sub takes a length as
// its last operand and works through that many bytes or entries:
// memory.init, memory.copy, memory.fill, table.init, table.copy,
// table.fill. Counted as one instruction, a loop of them would run for
// seconds between checks (a 64 MiB fill takes milliseconds), inside
// compiled code that also holds off the Go collector's stop-the-world.
func bulkLength(sub uint32) bool {
	switch sub {
	case 8, 10, 11, 12, 14, 17:
		return true
	}
	return false
}

// lengthShift converts a bulk operation's length to weight: one unit per
// 16 bytes, about what such an operation costs against an instruction.
const lengthShift = 4

// chargeLength appends, before a bulk operation whose length is on top of
// the stack, a sequence that leaves the length there, charges it (shifted
// by lengthShift) to the counter and calls the check when the counter
// goes below 0 (L is the scratch local):
//
//	local.tee L; global.get C; local.get L; i32.const S; i32.shr_u; i32.sub
//	local.tee L; global.set C; local.get L; i32.const 0; i32.lt_s
//	if; call check; global.set C; end
func (w *walker) chargeLength() {
	o := w.out
	o = append(o, 0x22)
	o = binary.AppendUvarint(o, uint64(w.scratch))
	o = append(o, 0x23)
	o = binary.AppendUvarint(o, uint64(w.counter))
	o = append(o, 0x20)
	o = binary.AppendUvarint(o, uint64(w.scratch))
	o = append(o, 0x41, lengthShift, 0x76, 0x6b)
	w.out = w.storeAndCheck(o)
}

func (w *walker) prefixFD() error {
	sub := w.u32()
	switch {
	case sub <= 11 || sub == 92 || sub == 93: // v128 loads and stores
		w.memArg()
	case sub == 12 || sub == 13: // v128.const, i8x16.shuffle
		w.r.bytes(16)
	case sub >= 21 && sub <= 34: // extract_lane, replace_lane
		w.r.bytes(1)
	case sub >= 84 && sub <= 91: // load/store lane
		w.memArg()
		w.r.bytes(1)
	case sub <= 0x113: // no immediates (including relaxed SIMD)
	default:
		return unsupported("opcode 0xfd %d", sub)
	}
	return w.r.err
}

func (w *walker) prefixFE() error {
	sub := w.u32()
	switch {
	case sub == 0x03: // atomic.fence
		w.r.bytes(1)
	case sub <= 0x02 || (sub >= 0x10 && sub <= 0x4e):
		w.memArg()
	default:
		return unsupported("opcode 0xfe %d", sub)
	}
	return w.r.err
}

func appendSLEB(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}
