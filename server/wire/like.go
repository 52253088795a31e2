package wire

import (
	"unicode"
	"unicode/utf8"
)

// likeMatcher matches a like pattern exactly as the regexp TopGun's server
// builds from it ("(?i)^" + the escaped pattern with % as .* and _ as .
// + "$"): % matches any run of runes and _ any one rune, neither matching
// a newline; other runes match case-insensitively (by Unicode simple case
// folding); the whole text must match.
//
// It runs the pattern's automaton bit-parallel (shift-and): one bit per
// position in the pattern, one pass over the text, so matching costs
// O(len(text) × len(pattern)/64) word operations. Go's regexp simulates
// the same automaton one thread per position, and a hostile pattern such
// as "%a%a%a…" (4 KB) took seconds per 100 KB record that way.
type likeMatcher struct {
	n     int // tokens; the text matches when bit n is set at its end
	words int
	star  []uint64 // positions holding %
	any   []uint64 // positions holding _
	ascii [utf8.RuneSelf][]uint64
	lit   map[rune][]uint64 // by folded rune, beyond ASCII
}

// compileLike returns nil for a pattern that is not valid UTF-8, which the
// regexp does not compile either.
func compileLike(pattern string) *likeMatcher {
	if !utf8.ValidString(pattern) {
		return nil
	}
	type token struct {
		kind byte // '%', '_' or 0 for a literal
		r    rune // folded literal
	}
	var toks []token
	for _, r := range pattern {
		switch {
		case r == '%':
			if len(toks) > 0 && toks[len(toks)-1].kind == '%' {
				continue // %% is %; it also keeps the closure a single step
			}
			toks = append(toks, token{kind: '%'})
		case r == '_':
			toks = append(toks, token{kind: '_'})
		default:
			toks = append(toks, token{r: foldRune(r)})
		}
	}
	m := &likeMatcher{n: len(toks), words: len(toks)/64 + 1, lit: map[rune][]uint64{}}
	m.star = make([]uint64, m.words)
	m.any = make([]uint64, m.words)
	for i, t := range toks {
		w, b := i/64, uint64(1)<<(i%64)
		switch t.kind {
		case '%':
			m.star[w] |= b
		case '_':
			m.any[w] |= b
		default:
			mask := m.litMask(t.r)
			if mask == nil {
				mask = make([]uint64, m.words)
				if t.r < utf8.RuneSelf {
					m.ascii[t.r] = mask
				} else {
					m.lit[t.r] = mask
				}
			}
			mask[w] |= b
		}
	}
	return m
}

func (m *likeMatcher) litMask(folded rune) []uint64 {
	if folded >= 0 && folded < utf8.RuneSelf {
		return m.ascii[folded]
	}
	return m.lit[folded]
}

// MatchString reports whether the whole of s matches the pattern.
func (m *likeMatcher) MatchString(s string) bool {
	var buf [8]uint64
	var cur, next []uint64
	if 2*m.words <= len(buf) {
		cur, next = buf[:m.words], buf[m.words:2*m.words]
	} else {
		cur, next = make([]uint64, m.words), make([]uint64, m.words)
	}
	cur[0] = 1
	m.closure(cur)
	for _, r := range s {
		lit := m.litMask(foldRune(r))
		nl := r == '\n'
		var carry uint64
		live := uint64(0)
		for w := range m.words {
			var step uint64 // positions consuming r and moving on
			if lit != nil {
				step = cur[w] & lit[w]
			}
			stay := uint64(0) // % consuming r in place
			if !nl {
				step |= cur[w] & m.any[w]
				stay = cur[w] & m.star[w]
			}
			next[w] = step<<1 | carry | stay
			carry = step >> 63
			live |= next[w]
		}
		if live == 0 {
			return false
		}
		m.closure(next)
		cur, next = next, cur
	}
	return cur[m.n/64]&(uint64(1)<<(m.n%64)) != 0
}

// closure lets a reached % also match the empty run: position i holding %
// reaches i+1. No two % are adjacent, so one step is enough.
func (m *likeMatcher) closure(set []uint64) {
	var carry uint64
	for w := range set {
		s := set[w] & m.star[w]
		set[w] |= s<<1 | carry
		carry = s >> 63
	}
}

// foldRune maps r to the smallest rune of its simple case folding orbit,
// so two runes match case-insensitively exactly when they fold equal (the
// rule of Go's and Rust's (?i)).
func foldRune(r rune) rune {
	if r < utf8.RuneSelf {
		if 'a' <= r && r <= 'z' {
			return r - 'a' + 'A'
		}
		return r
	}
	min := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		if f < min {
			min = f
		}
	}
	return min
}
