package wire

import (
	"cmp"
	"slices"
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
//
// The positions of each literal are kept sparsely, only for the words of
// state that hold one (litWord), so that a pattern costs memory in
// proportion to its length: a dense mask per distinct literal cost about
// 480 KB for a 4 KB pattern of distinct runes (words × distinct runes),
// held for as long as the query that holds the pattern.
type likeMatcher struct {
	n     int // tokens; the text matches when bit n is set at its end
	words int
	star  []uint64 // positions holding %
	any   []uint64 // positions holding _
	// lits holds each literal's litWords, grouped by literal and in word
	// order; ascii and lit locate a folded rune's group in it.
	lits  []litWord
	ascii [utf8.RuneSelf]litSpan
	lit   map[rune]litSpan // by folded rune, beyond ASCII
}

// litWord is the positions one literal holds in one word of state.
type litWord struct {
	w    int
	bits uint64
}

// litSpan is where a literal's litWords are in likeMatcher.lits.
type litSpan struct{ start, end int32 }

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
	m := &likeMatcher{n: len(toks), words: len(toks)/64 + 1}
	m.star = make([]uint64, m.words)
	m.any = make([]uint64, m.words)
	// Literal positions, by literal and then by position.
	type litPos struct {
		r rune
		i int
	}
	var pos []litPos
	for i, t := range toks {
		w, b := i/64, uint64(1)<<(i%64)
		switch t.kind {
		case '%':
			m.star[w] |= b
		case '_':
			m.any[w] |= b
		default:
			pos = append(pos, litPos{t.r, i})
		}
	}
	slices.SortStableFunc(pos, func(a, b litPos) int { return cmp.Compare(a.r, b.r) })
	for j := 0; j < len(pos); {
		r, start := pos[j].r, int32(len(m.lits))
		for ; j < len(pos) && pos[j].r == r; j++ {
			w, b := pos[j].i/64, uint64(1)<<(pos[j].i%64)
			if k := len(m.lits) - 1; k >= int(start) && m.lits[k].w == w {
				m.lits[k].bits |= b
			} else {
				m.lits = append(m.lits, litWord{w: w, bits: b})
			}
		}
		span := litSpan{start, int32(len(m.lits))}
		if r < utf8.RuneSelf {
			m.ascii[r] = span
		} else {
			if m.lit == nil {
				m.lit = map[rune]litSpan{}
			}
			m.lit[r] = span
		}
	}
	return m
}

// litWords returns the positions of a folded literal, by word.
func (m *likeMatcher) litWords(folded rune) []litWord {
	var sp litSpan
	if folded >= 0 && folded < utf8.RuneSelf {
		sp = m.ascii[folded]
	} else {
		sp = m.lit[folded]
	}
	return m.lits[sp.start:sp.end]
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
		lit := m.litWords(foldRune(r))
		nl := r == '\n'
		var carry uint64
		live := uint64(0)
		for w := range m.words {
			var step uint64 // positions consuming r and moving on
			if len(lit) > 0 && lit[0].w == w {
				step = cur[w] & lit[0].bits
				lit = lit[1:]
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
