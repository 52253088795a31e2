package wire

import (
	"hash/maphash"
	"math"
	"sync/atomic"
	"unicode/utf8"
)

// maxPairwiseContains is the number of element pairs up to which
// containsAll/containsAny compares every element of the attribute's array
// with every element of the other list; above it the array is indexed
// (containsIndex), so that matching takes time about linear in the two
// lists, both of which a ValueRef reads from the record.
const maxPairwiseContains = 256

// maxPairwiseShort is the length of a list up to which comparing it with
// every element of the other, however long, is still compared pairwise:
// indexing costs about as much per element as that many comparisons
// (hashing, map inserts, allocation), so for the common short list
// (containsAny(tags, ["vip"])) an index of the record's array would cost
// ten to forty times the scan.
const maxPairwiseShort = 8

// containsCompares counts the elements containsMatch compares a value
// with (by valuesEqual or canonEqual), for tests that check matching two
// long lists is not quadratic.
var containsCompares atomic.Uint64

// containsMatch reports whether every element (all) or some element of
// want equals, by valuesEqual, an element of have.
func containsMatch(have, want []any, all bool) bool {
	if len(have)*len(want) <= maxPairwiseContains || min(len(have), len(want)) <= maxPairwiseShort {
		n := 0
		contains := func(x any) bool {
			for _, h := range have {
				n++
				if valuesEqual(h, x) {
					return true
				}
			}
			return false
		}
		found := containsEach(want, all, contains)
		containsCompares.Add(uint64(n))
		return found
	}
	ix := newContainsIndex(have)
	found := containsEach(want, all, ix.contains)
	containsCompares.Add(uint64(ix.compares))
	return found
}

func containsEach(want []any, all bool, contains func(any) bool) bool {
	for _, w := range want {
		if contains(w) != all {
			return !all
		}
	}
	return all
}

// containsIndex answers "does have hold a value equal to w" by valuesEqual
// without scanning have. Scalars go to a valueSet. Arrays, maps and bytes
// are hashed (hashValue) two ways: by a canonical key, equal for two values
// that valuesEqual finds equal except where one holds an integer of
// magnitude 2^53 or more and the other the float64 it rounds to
// (valuesEqual is not transitive there), and loosely, numbers by their
// float64 image, equal for any two values valuesEqual finds equal. A value
// is looked up among those of its canonical key and, only when it holds
// such big numbers, among those of its loose key that could match it
// through an integer/float pair. Values canonically equal are kept once,
// so repeats cost nothing.
//
// What remains quadratic: many distinct values of one loose key (arrays or
// maps of big integers that round to the same float64s) against
// many that hold big floats, or the reverse; matching those exactly is
// the orthogonal-vectors problem (a big float matches every integer
// rounding to it, two distinct integers do not match), for which no
// subquadratic method is known.
type containsIndex struct {
	scalars *valueSet
	elems   []indexedValue
	// Chains through elems by key: 1 + the index of the first element,
	// then nextCanon, nextBig or nextFloat, 0 at the end. big chains the
	// elements holding big numbers by loose key, float those of them that
	// hold a big float.
	canon, big, float map[uint64]int32
	memo              map[uint64][]memoEntry
	compares          int
	hasBytes          bool // elems holds bytes, which a string not valid UTF-8 may equal
}

type indexedValue struct {
	v                             any
	h                             valueHash
	nextCanon, nextBig, nextFloat int32
}

// memoEntry is the answer for a want value that took a loose search,
// so that its repeats do not search again.
type memoEntry struct {
	v     any
	found bool
}

// valueHash is what hashValue computes of a value. ok is false for a value
// valuesEqual finds equal to nothing: one holding a NaN, a kind outside the
// value model, or a value nested deeper than maxEvalDepth.
type valueHash struct {
	canon, loose  uint64
	big, bigFloat bool // holds a number of magnitude 2^53 or more (bigFloat: a float)
	ok            bool
}

// hashSeed keys the hashes, so that a client cannot choose values whose
// keys collide.
var hashSeed = maphash.MakeSeed()

func newContainsIndex(have []any) *containsIndex {
	n := 0
	for _, h := range have {
		if !setScalar(h) {
			n++
		}
	}
	ix := &containsIndex{
		scalars: &valueSet{},
		elems:   make([]indexedValue, 0, n),
		canon:   make(map[uint64]int32, n),
	}
	for _, h := range have {
		if setScalar(h) {
			ix.scalars.add(h)
			continue
		}
		hv := hashValue(h, 0)
		if !hv.ok || ix.find(h, hv, false) >= 0 {
			continue
		}
		_, isBytes := h.([]byte)
		ix.hasBytes = ix.hasBytes || isBytes
		i := int32(len(ix.elems))
		e := indexedValue{v: h, h: hv}
		e.nextCanon = chain(&ix.canon, hv.canon, i)
		if hv.big {
			e.nextBig = chain(&ix.big, hv.loose, i)
		}
		if hv.bigFloat {
			e.nextFloat = chain(&ix.float, hv.loose, i)
		}
		ix.elems = append(ix.elems, e)
	}
	return ix
}

// chain puts element i first in m's chain of key k and returns what
// follows it.
func chain(m *map[uint64]int32, k uint64, i int32) int32 {
	if *m == nil {
		*m = map[uint64]int32{}
	}
	next := (*m)[k]
	(*m)[k] = i + 1
	return next
}

// find returns the index of an element with v's canonical key that equals
// v canonically (same) or by valuesEqual, or -1.
func (ix *containsIndex) find(v any, hv valueHash, byValuesEqual bool) int32 {
	for i := ix.canon[hv.canon] - 1; i >= 0; i = ix.elems[i].nextCanon - 1 {
		e := &ix.elems[i]
		ix.compares++
		if byValuesEqual {
			if valuesEqual(e.v, v) {
				return i
			}
		} else if canonEqual(e.v, v, 0) {
			return i
		}
	}
	return -1
}

func (ix *containsIndex) contains(w any) bool {
	if setScalar(w) {
		if ix.scalars.contains(w) {
			return true
		}
		// A string that is not valid UTF-8 equals bytes holding it
		// (stringIsBytes), which are among the elements, hashed as it is.
		if s, ok := w.(string); !ok || !ix.hasBytes || utf8.ValidString(s) {
			return false
		}
	}
	hv := hashValue(w, 0)
	if !hv.ok {
		return false
	}
	if ix.find(w, hv, true) >= 0 {
		return true
	}
	if _, ok := w.([]byte); ok {
		// Or a string of have holding it, not valid UTF-8.
		return ix.scalars.contains(w)
	}
	if !hv.big {
		// Whatever equals w is canonically equal to it: it was found.
		return false
	}
	for _, m := range ix.memo[hv.canon] {
		ix.compares++
		if canonEqual(m.v, w, 0) {
			return m.found
		}
	}
	// An element equal to w but not canonically pairs a big integer of
	// one with a float of the other: if w holds no big float, the
	// element holds one.
	found := false
	if hv.bigFloat {
		for i := ix.big[hv.loose] - 1; i >= 0 && !found; i = ix.elems[i].nextBig - 1 {
			ix.compares++
			found = valuesEqual(ix.elems[i].v, w)
		}
	} else {
		for i := ix.float[hv.loose] - 1; i >= 0 && !found; i = ix.elems[i].nextFloat - 1 {
			ix.compares++
			found = valuesEqual(ix.elems[i].v, w)
		}
	}
	if ix.memo == nil {
		ix.memo = map[uint64][]memoEntry{}
	}
	ix.memo[hv.canon] = append(ix.memo[hv.canon], memoEntry{w, found})
	return found
}

const (
	tagNil uint64 = iota + 1
	tagFalse
	tagTrue
	tagFloat
	tagInt
	tagNegInt
	tagString // and bytes, which equal a string holding them that is not valid UTF-8
	tagArray
	tagMap
)

// mix64 is MurmurHash3's finalizer: a bijection that spreads every input
// bit over the output.
func mix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// hashKey keys the hashes of numbers, as hashSeed those of strings.
var hashKey = maphash.Comparable(hashSeed, uint64(0))

func leafHash(tag, x uint64) uint64 {
	return mix64(mix64(x^hashKey) ^ tag*0x9e3779b97f4a7c15)
}

// isBig reports whether n is a number that valuesEqual compares with
// others in a way that is not transitive: from ±2^53 on, an integer
// equals the float64 it rounds to and that float equals other integers.
func isBig(n number) bool {
	return math.Abs(n.f) >= maxExactInt && !math.IsInf(n.f, 0)
}

// hashValue hashes v at depth as valuesEqualDepth compares it: values it
// finds equal get the same loose key, and the same canonical key unless
// a big integer (isBig) meets a float.
func hashValue(v any, depth int) valueHash {
	if depth > maxEvalDepth {
		return valueHash{}
	}
	if n, ok := toNumber(v); ok {
		if n.isFloat && math.IsNaN(n.f) {
			return valueHash{}
		}
		f := n.f
		if f == 0 {
			f = 0 // -0 equals 0
		}
		loose := leafHash(tagFloat, math.Float64bits(f))
		hv := valueHash{canon: loose, loose: loose, ok: true}
		if isBig(n) {
			hv.big = true
			if n.isFloat {
				hv.bigFloat = true
			} else {
				tag := tagInt
				if n.neg {
					tag = tagNegInt
				}
				hv.canon = leafHash(tag, n.mag)
			}
		}
		return hv
	}
	switch x := v.(type) {
	case nil:
		return scalarHash(leafHash(tagNil, 0))
	case bool:
		if x {
			return scalarHash(leafHash(tagTrue, 0))
		}
		return scalarHash(leafHash(tagFalse, 0))
	case string:
		return scalarHash(leafHash(tagString, maphash.String(hashSeed, x)))
	case []byte:
		return scalarHash(leafHash(tagString, maphash.Bytes(hashSeed, x))) // as maphash.String of them
	case []any:
		h := leafHash(tagArray, uint64(len(x)))
		hv := valueHash{canon: h, loose: h, ok: true}
		for _, e := range x {
			eh := hashValue(e, depth+1)
			if !eh.ok {
				return valueHash{}
			}
			hv.canon = mix64(hv.canon ^ eh.canon)
			hv.loose = mix64(hv.loose ^ eh.loose)
			hv.big = hv.big || eh.big
			hv.bigFloat = hv.bigFloat || eh.bigFloat
		}
		return hv
	case map[string]any:
		// Entries are summed: the hash does not depend on their order.
		hv := valueHash{ok: true}
		for k, e := range x {
			eh := hashValue(e, depth+1)
			if !eh.ok {
				return valueHash{}
			}
			kh := leafHash(tagString, maphash.String(hashSeed, k))
			hv.canon += mix64(kh ^ mix64(eh.canon+1))
			hv.loose += mix64(kh ^ mix64(eh.loose+1))
			hv.big = hv.big || eh.big
			hv.bigFloat = hv.bigFloat || eh.bigFloat
		}
		h := leafHash(tagMap, uint64(len(x)))
		hv.canon = mix64(h ^ hv.canon)
		hv.loose = mix64(h ^ hv.loose)
		return hv
	}
	return valueHash{}
}

func scalarHash(h uint64) valueHash { return valueHash{canon: h, loose: h, ok: true} }

// canonEqual is valuesEqualDepth with big numbers (isBig) equal only to
// numbers of their kind (integer or float): two values it finds equal
// are equal by valuesEqual to the same values.
func canonEqual(a, b any, depth int) bool { return equalDepth(a, b, depth, true) }
