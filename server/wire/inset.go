package wire

import (
	"math"
	"unicode/utf8"
	"unsafe"
)

// minSetLen is the list length from which in, $in and $nin look values up
// in a valueSet instead of scanning the list: below it a scan is cheaper
// than building the set.
const minSetLen = 16

// valueSet answers "does the list hold a value equal to v" by
// valuesEqual, in time independent of the list's length for scalars.
// valuesEqual is not transitive across int and float (int64 2^53+1 equals
// float64 2^53, which equals int64 2^53, which does not equal 2^53+1), so
// numbers are kept by kind and each lookup reproduces the comparison
// compareNumbers makes: integers exactly with integers, anything else as
// float64, NaN equal to nothing, -0 equal to 0.
type valueSet struct {
	pos, neg  map[uint64]struct{}  // integers by magnitude (neg: below zero)
	floats    map[float64]struct{} // floats, NaN left out (it equals nothing)
	inexact   map[float64]struct{} // float64(i) of integers beyond ±2^53
	strs      map[string]struct{}
	hasTrue   bool
	hasFalse  bool
	hasNil    bool
	rest      []any // bytes, arrays, maps and other kinds: scanned
	anyNumber bool
	restBytes bool // rest holds bytes, which a string not valid UTF-8 may equal
}

// setScalar reports whether a valueSet looks v up by hash rather than
// keeping it in rest, which it scans (newValueSet's split; Query.Cost
// counts the others).
func setScalar(v any) bool {
	if _, ok := toNumber(v); ok {
		return true
	}
	switch v.(type) {
	case nil, string, bool:
		return true
	}
	return false
}

// maxExactInt is the magnitude up to which float64 holds every integer.
const maxExactInt = 1 << 53

func newValueSet(list []any) *valueSet {
	s := &valueSet{}
	for _, x := range list {
		s.add(x)
	}
	return s
}

func (s *valueSet) add(x any) {
	if n, ok := toNumber(x); ok {
		s.anyNumber = true
		s.addNumber(n)
		return
	}
	switch x := x.(type) {
	case nil:
		s.hasNil = true
	case string:
		if s.strs == nil {
			s.strs = map[string]struct{}{}
		}
		s.strs[x] = struct{}{}
	case bool:
		if x {
			s.hasTrue = true
		} else {
			s.hasFalse = true
		}
	default:
		_, isBytes := x.([]byte)
		s.restBytes = s.restBytes || isBytes
		s.rest = append(s.rest, x)
	}
}

func (s *valueSet) addNumber(n number) {
	if n.isFloat {
		if !math.IsNaN(n.f) {
			if s.floats == nil {
				s.floats = map[float64]struct{}{}
			}
			s.floats[n.f] = struct{}{} // -0 and 0 are one key
		}
		return
	}
	m := &s.pos
	if n.neg {
		m = &s.neg
	}
	if *m == nil {
		*m = map[uint64]struct{}{}
	}
	(*m)[n.mag] = struct{}{}
	if n.mag > maxExactInt {
		if s.inexact == nil {
			s.inexact = map[float64]struct{}{}
		}
		s.inexact[n.f] = struct{}{}
	}
}

// contains reports whether slices.ContainsFunc(list, func(x any) bool {
// return valuesEqual(v, x) }) holds for the list the set was built from.
func (s *valueSet) contains(v any) bool {
	if n, ok := toNumber(v); ok {
		return s.anyNumber && s.containsNumber(n)
	}
	switch v := v.(type) {
	case nil:
		return s.hasNil
	case string:
		if _, ok := s.strs[v]; ok || !s.restBytes || utf8.ValidString(v) {
			return ok
		}
		// Not valid UTF-8: it equals bytes holding it (stringIsBytes).
	case bool:
		return (v && s.hasTrue) || (!v && s.hasFalse)
	case []byte:
		if _, ok := s.strs[string(v)]; ok && !utf8.Valid(v) {
			return true
		}
	}
	for _, x := range s.rest {
		if valuesEqual(v, x) {
			return true
		}
	}
	return false
}

func (s *valueSet) containsNumber(n number) bool {
	if !n.isFloat {
		// An integer equals an integer exactly, a float as float64.
		if _, ok := s.intMap(n.neg)[n.mag]; ok {
			return true
		}
		_, ok := s.floats[n.f]
		return ok
	}
	if math.IsNaN(n.f) {
		return false
	}
	// A float equals a float, or an integer i when float64(i) == f: within
	// ±2^53 that is the integer f itself, beyond it any integer rounding
	// to f (kept in inexact).
	if _, ok := s.floats[n.f]; ok {
		return true
	}
	if _, ok := s.inexact[n.f]; ok {
		return true
	}
	if f := n.f; f == math.Trunc(f) && math.Abs(f) <= maxExactInt {
		if f < 0 {
			_, ok := s.neg[uint64(-f)]
			return ok
		}
		_, ok := s.pos[uint64(f)] // -0 is 0
		return ok
	}
	return false
}

func (s *valueSet) intMap(neg bool) map[uint64]struct{} {
	if neg {
		return s.neg
	}
	return s.pos
}

// listKey identifies a list by its backing array and length, so a set built
// for it is found again for the same list and not for another.
type listKey struct {
	data *any
	n    int
}

func keyOf(list []any) listKey { return listKey{unsafe.SliceData(list), len(list)} }

// listContains reports whether list holds a value equal to v, by the
// prepared set when there is one for this list, else by a scan.
func listContains(list []any, v any, set *valueSet) bool {
	if set != nil {
		return set.contains(v)
	}
	for _, x := range list {
		if valuesEqual(v, x) {
			return true
		}
	}
	return false
}
