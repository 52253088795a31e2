package wire

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"maps"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// TopGun's server evaluates regex predicates with Rust's regex crate. Its
// syntax is close to RE2's, which Go's regexp implements, but not equal:
// the same pattern can compile in both and match differently. translateRegex
// rewrites a Rust-regex pattern into a Go regexp pattern with Rust's
// meaning, or returns an error where Rust's parser rejects the pattern or
// where Go cannot express its meaning (such a pattern then matches nothing,
// as one that does not compile on TopGun). What it rewrites, with the Rust
// rule (regex crate docs, "Syntax"; regex-syntax ast/parse.rs):
//
//   - \d \s \w and \D \S \W, inside and outside brackets, are Unicode-aware
//     by default: \d is \p{Nd}, \s is \p{White_Space}, \w is the union
//     of \p{Alphabetic}, \p{M}, \d, \p{Pc} and \p{Join_Control}. Go's are
//     ASCII ([0-9], [\t\n\f\r ], [0-9A-Za-z_]); Go's \s lacks \v even there.
//     Under (?-u) they are ASCII, \s being [\t\n\v\f\r ].
//   - \xHH, \x{H…}, \uHHHH, \u{H…}, \UHHHHHHHH and \U{H…} name a Unicode
//     scalar value; Go knows only \x, and accepts surrogates Rust rejects.
//   - The flags u (Unicode) and x (verbose: whitespace and # comments are
//     ignored, in brackets too) are tracked and removed; Go knows neither.
//     i, m, s and U pass through. R (CRLF mode) cannot be expressed: error.
//   - Under (?-u), Rust's str Regex rejects anything that could match
//     invalid UTF-8 or needs Unicode: ., \D \S \W, \xHH above 7F, \p and
//     \P, a bracket holding a non-ASCII character (its items are bytes),
//     [:^class:] (checked on its own, whatever bracket holds it) and a
//     negated bracket (its items being ASCII, it holds the bytes past 7F).
//     So does the translation. A braced \x{H…} is a character there, as
//     elsewhere.
//   - Named groups: names are checked by Rust's rule (a letter or _, then
//     letters, digits, _ . [ ]; no duplicates) and dropped, as Go's names
//     are narrower and names do not change what matches.
//   - A bracket nested in a bracket ([a[bc]]) is a union in Rust and a
//     literal [ in Go: non-negated nested brackets are flattened; negated
//     ones and the set operators && -- ~~ cannot be expressed: error.
//   - The flag i is tracked as well (and passed on): under (?i) a bracket
//     is case-folded here, with Go's tables and Go's meaning, and written
//     in (?-i:…), as Go's parser folds a bracket range by visiting each of
//     its runes (see foldClass); \w \s and \W \S outside brackets too.
//   - Rust repeats a repetition (a**, a{2}{3}, \d+* is (?:\d+)*); Go's parser
//     rejects a repetition operator after another: the repeated
//     repetition is wrapped in a non-capturing group.
//   - \< \> and \b{…} are Unicode word-start and word-end assertions in
//     regex ≥ 1.10 (errors before), which RE2 cannot express: error, as
//     for the R flag (this differs from TopGun, documented at Match).
//   - Rust rejects \0…\9 (backreferences/octal), \Q…\E, any other escaped
//     letter, a { that does not start a valid counted repetition (Go
//     reads such a { as a literal), and a repetition operator right after
//     a (?flags) group (Go repeats the item before it). {m,n} may hold
//     spaces in Rust; they are removed.
//
// What stays different (documented at Match): \b and \B are ASCII word
// boundaries (Go has no other, and no look-around to build one), where
// Rust's are Unicode; they agree wherever the characters on both sides of
// the position are ASCII. (?i) folds case by Unicode rules even under
// (?-u), where Rust folds ASCII only. \p{…} is left to Go, which knows
// general categories and scripts by their exact names only (Rust also
// knows binary properties and loose names such as \p{letter}). Go caps
// counted repetitions at 1000. Unicode tables are Go's (15.0.0).
func translateRegex(pattern string) (string, error) {
	return translateRegexFold(pattern, true)
}

// translateRegexFold is translateRegex; foldClasses false leaves the case
// folding of bracket classes under (?i) to Go's parser, as a reference for
// tests (see foldClass).
func translateRegexFold(pattern string, foldClasses bool) (string, error) {
	if !utf8.ValidString(pattern) {
		return "", errRegex
	}
	t := &regexTranslator{src: pattern, flags: []rxFlags{{unicode: true}}, atom: -1, foldClasses: foldClasses}
	t.out.Grow(len(pattern) + 16)
	if err := t.run(); err != nil {
		return "", err
	}
	return t.out.String(), nil
}

// errRegex is returned for a pattern that TopGun's regex crate rejects or
// whose meaning Go's regexp cannot express; it is never shown to anyone.
var errRegex = errors.New("wire: regex not supported")

type rxFlags struct {
	unicode bool // u: Unicode-aware \d \s \w (Rust's default)
	verbose bool // x: ignore whitespace and # comments
	fold    bool // i: case-insensitive (passed to Go too; see foldClass)
}

type regexTranslator struct {
	src   string
	pos   int
	out   bytes.Buffer
	flags []rxFlags // one frame per open group; the last is current
	names map[string]bool
	// foldClasses enables foldClass. For the bracket being translated
	// under (?i), classNeg tells whether it is negated, classKept holds
	// the class items taken out of out as (?i) needs no work on them and
	// classExtra the runes (?i) adds to them (see foldNamed); namedFolds
	// caches foldNamed's verdicts.
	foldClasses bool
	classNeg    bool
	classKept   strings.Builder
	classExtra  []runeRange
	namedFolds  map[string]namedFold
	// atom is the offset in out where the last repeatable item written
	// starts (-1 when there is none), rep whether a repetition of it was
	// written last, and groups the offsets of the open groups' '('.
	atom   int
	rep    bool
	groups []int
}

// atomFlags is atom right after a (?flags) group.
const atomFlags = -2

func (t *regexTranslator) cur() *rxFlags { return &t.flags[len(t.flags)-1] }

func (t *regexTranslator) eof() bool { return t.pos >= len(t.src) }

func (t *regexTranslator) peek() byte {
	if t.eof() {
		return 0
	}
	return t.src[t.pos]
}

// skipSpace skips whitespace and # comments in verbose mode (Rust's
// bump_space, which also runs inside brackets).
func (t *regexTranslator) skipSpace() {
	if !t.cur().verbose {
		return
	}
	for !t.eof() {
		r, n := utf8.DecodeRuneInString(t.src[t.pos:])
		switch {
		case unicode.IsSpace(r):
			t.pos += n
		case r == '#':
			for !t.eof() && t.src[t.pos] != '\n' {
				t.pos++
			}
		default:
			return
		}
	}
}

func (t *regexTranslator) run() error {
	for {
		t.skipSpace()
		if t.eof() {
			return nil
		}
		c := t.src[t.pos]
		start := t.out.Len()
		switch c {
		case '\\':
			if _, err := t.escape(false); err != nil {
				return err
			}
			t.atom, t.rep = start, false
		case '[':
			t.pos++
			if err := t.class(); err != nil {
				return err
			}
			t.atom, t.rep = start, false
		case '(':
			depth := len(t.flags)
			if err := t.group(); err != nil {
				return err
			}
			if len(t.flags) > depth {
				t.groups = append(t.groups, start)
			}
			t.atom, t.rep = -1, false // nothing to repeat yet
			if len(t.flags) == depth {
				// (?flags): Rust rejects a repetition operator after it
				// (RepetitionMissing); Go would repeat the item before.
				t.atom = atomFlags
			}
		case ')':
			t.pos++
			if len(t.flags) > 1 {
				t.flags = t.flags[:len(t.flags)-1]
			}
			t.out.WriteByte(')') // an unopened ) is left for Go to reject
			t.atom, t.rep = -1, false
			if n := len(t.groups); n > 0 {
				t.atom, t.groups = t.groups[n-1], t.groups[:n-1]
			}
		case '|':
			t.pos++
			t.out.WriteByte('|')
			t.atom, t.rep = -1, false
		case '{':
			if t.atom == atomFlags {
				return errRegex
			}
			t.wrapRepeated()
			if err := t.counted(); err != nil {
				return err
			}
			t.repeated()
		case '*', '+', '?':
			if t.atom == atomFlags {
				return errRegex
			}
			t.wrapRepeated()
			t.pos++
			t.out.WriteByte(c)
			t.repeated()
		case '.':
			if !t.cur().unicode {
				return errRegex // (?-u:.) can match invalid UTF-8
			}
			t.pos++
			t.out.WriteByte('.')
			t.atom, t.rep = start, false
		default:
			_, n := utf8.DecodeRuneInString(t.src[t.pos:])
			t.out.WriteString(t.src[t.pos : t.pos+n])
			t.pos += n
			t.atom, t.rep = start, false
		}
	}
}

// wrapRepeated puts the last item in a non-capturing group when it is a
// repetition about to be repeated again: Rust reads a** as (?:a*)*, Go's
// parser rejects it ("invalid nested repetition operator").
func (t *regexTranslator) wrapRepeated() {
	if !t.rep || t.atom < 0 {
		return
	}
	s := string(t.out.Bytes()[t.atom:])
	t.out.Truncate(t.atom)
	t.out.WriteString("(?:")
	t.out.WriteString(s)
	t.out.WriteByte(')')
}

// repeated notes that a repetition operator was written, and copies the ?
// that makes it lazy, which Rust takes after it (and after spaces in
// verbose mode), as part of it.
func (t *regexTranslator) repeated() {
	t.skipSpace()
	if t.peek() == '?' {
		t.pos++
		t.out.WriteByte('?')
	}
	t.rep = t.atom >= 0
}

// counted translates {m}, {m,} or {m,n}, which Rust lets hold spaces;
// anything else after { is an error in Rust, and a literal in Go.
func (t *regexTranslator) counted() error {
	end := strings.IndexByte(t.src[t.pos:], '}')
	if end < 0 {
		return errRegex
	}
	body := t.src[t.pos+1 : t.pos+end]
	t.pos += end + 1
	lo, hi, comma := strings.Cut(body, ",")
	lo, hi = strings.TrimSpace(lo), strings.TrimSpace(hi)
	if !isDecimal(lo) || (comma && hi != "" && !isDecimal(hi)) {
		return errRegex
	}
	m, err1 := strconv.ParseUint(lo, 10, 32)
	if err1 != nil {
		return errRegex
	}
	t.out.WriteByte('{')
	t.out.WriteString(strconv.FormatUint(m, 10))
	if comma {
		t.out.WriteByte(',')
		if hi != "" {
			n, err := strconv.ParseUint(hi, 10, 32)
			if err != nil || n < m {
				return errRegex
			}
			t.out.WriteString(strconv.FormatUint(n, 10))
		}
	}
	t.out.WriteByte('}')
	return nil
}

func isDecimal(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// group translates an opening parenthesis and what follows it up to the
// group's body: a plain group, a named one, or flags.
func (t *regexTranslator) group() error {
	t.pos++ // (
	if t.peek() != '?' {
		t.flags = append(t.flags, *t.cur())
		t.out.WriteByte('(')
		return nil
	}
	t.pos++ // ?
	rest := t.src[t.pos:]
	switch {
	case strings.HasPrefix(rest, "P<"):
		t.pos += 2
		return t.namedGroup()
	case strings.HasPrefix(rest, "<") && !strings.HasPrefix(rest, "<=") && !strings.HasPrefix(rest, "<!"):
		t.pos++
		return t.namedGroup()
	}
	// Flags: (?flags) or (?flags:…); Rust's parse_flags rules.
	f := *t.cur()
	var goOn, goOff strings.Builder
	neg, seen, lastNeg := false, map[byte]bool{}, false
	for {
		if t.eof() {
			return errRegex
		}
		c := t.src[t.pos]
		t.pos++
		if c == ')' || c == ':' {
			if lastNeg || (c == ')' && len(seen) == 0 && !neg) {
				return errRegex // dangling -, or the empty (?)
			}
			flags := goOn.String()
			if goOff.Len() > 0 {
				flags += "-" + goOff.String()
			}
			if c == ')' {
				*t.cur() = f
				if flags != "" {
					t.out.WriteString("(?" + flags + ")")
				}
				return nil
			}
			t.flags = append(t.flags, f)
			t.out.WriteString("(?" + flags + ":")
			return nil
		}
		if c == '-' {
			if neg {
				return errRegex
			}
			neg, lastNeg = true, true
			continue
		}
		lastNeg = false
		if seen[c] {
			return errRegex
		}
		seen[c] = true
		switch c {
		case 'i', 'm', 's', 'U':
			if c == 'i' {
				f.fold = !neg
			}
			if neg {
				goOff.WriteByte(c)
			} else {
				goOn.WriteByte(c)
			}
		case 'u':
			f.unicode = !neg
		case 'x':
			f.verbose = !neg
		default: // R (CRLF mode), look-around, anything else
			return errRegex
		}
	}
}

// namedGroup checks a group name by Rust's rule and opens a plain capturing
// group: the name does not change what matches.
func (t *regexTranslator) namedGroup() error {
	end := strings.IndexByte(t.src[t.pos:], '>')
	if end <= 0 {
		return errRegex
	}
	name := t.src[t.pos : t.pos+end]
	t.pos += end + 1
	for i, r := range name {
		ok := r == '_' || unicode.IsLetter(r) || unicode.Is(unicode.Other_Alphabetic, r) || unicode.Is(unicode.Nl, r)
		if i > 0 {
			ok = ok || r == '.' || r == '[' || r == ']' || unicode.IsNumber(r)
		}
		if !ok {
			return errRegex
		}
	}
	if t.names[name] {
		return errRegex
	}
	if t.names == nil {
		t.names = map[string]bool{}
	}
	t.names[name] = true
	t.flags = append(t.flags, *t.cur())
	t.out.WriteByte('(')
	return nil
}

// escape translates the escape at t.pos; inClass tells whether it stands in
// a bracket. isClass reports whether it wrote a class rather than a
// literal or an assertion.
func (t *regexTranslator) escape(inClass bool) (isClass bool, err error) {
	t.pos++ // backslash
	if t.eof() {
		return false, errRegex
	}
	r, n := utf8.DecodeRuneInString(t.src[t.pos:])
	t.pos += n
	switch r {
	case 'd', 'D', 's', 'S', 'w', 'W':
		before := t.out.Len()
		if err := t.perlClass(byte(r), inClass); err != nil {
			return true, err
		}
		if inClass && t.folding() && t.cur().unicode && perlClassesFoldClosed() {
			t.keepClassItem(before) // (?i) adds nothing to them
		}
		return true, nil
	case 'p', 'P':
		before := t.out.Len()
		if err := t.unicodeClass(r); err != nil {
			return true, err
		}
		if inClass && t.folding() {
			return true, t.foldNamed(before)
		}
		return true, nil
	}
	return false, t.escapeLiteral(r, inClass)
}

// unicodeClass copies \pX or \p{…}, left to Go, after its p or P.
func (t *regexTranslator) unicodeClass(r rune) error {
	if !t.cur().unicode {
		return errRegex // Unicode classes need Unicode mode
	}
	t.out.WriteByte('\\')
	t.out.WriteRune(r)
	if t.peek() == '{' {
		end := strings.IndexByte(t.src[t.pos:], '}')
		if end < 0 {
			return errRegex
		}
		t.out.WriteString(t.src[t.pos : t.pos+end+1])
		t.pos += end + 1
		return nil
	}
	if t.eof() {
		return errRegex
	}
	c, m := utf8.DecodeRuneInString(t.src[t.pos:])
	if c == '\\' {
		return errRegex
	}
	t.out.WriteRune(c)
	t.pos += m
	return nil
}

// escapeLiteral translates an escape (after its backslash) that is not a
// class: a literal or an assertion.
func (t *regexTranslator) escapeLiteral(r rune, inClass bool) error {
	uni := t.cur().unicode
	switch r {
	case 'x', 'u', 'U':
		braced := t.peek() == '{'
		c, err := t.hexEscape(byte(r))
		if err != nil {
			return err
		}
		switch {
		case uni || c <= 0x7f:
		case inClass:
			return errRegex // Rust's byte classes hold ASCII literals only
		case r == 'x' && !braced:
			return errRegex // (?-u:\xFF) is a byte: invalid UTF-8
		}
		fmt.Fprintf(&t.out, `\x{%X}`, c)
		return nil
	case 'b', 'B':
		if inClass {
			return errRegex
		}
		if r == 'b' && t.peek() == '{' && !isDecimalStart(t.src[t.pos+1:]) {
			return errRegex // \b{start} and friends
		}
		t.out.WriteByte('\\')
		t.out.WriteRune(r)
		return nil
	case 'A', 'z':
		if inClass {
			return errRegex
		}
		t.out.WriteByte('\\')
		t.out.WriteRune(r)
		return nil
	case 'a', 'f', 't', 'n', 'r', 'v':
		t.out.WriteByte('\\')
		t.out.WriteRune(r)
		return nil
	case '<', '>':
		return errRegex
	}
	if r < utf8.RuneSelf && !isASCIIAlnum(byte(r)) {
		t.out.WriteByte('\\') // an escaped punctuation, space or control
		t.out.WriteRune(r)
		return nil
	}
	return errRegex // \0-\9, \Q, \E, \C, \e, other letters, non-ASCII
}

func isDecimalStart(s string) bool {
	s = strings.TrimLeft(s, " \t\n\r\f\v")
	return s != "" && s[0] >= '0' && s[0] <= '9'
}

func isASCIIAlnum(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// hexEscape reads the digits of \x, \u or \U (fixed width 2, 4 or 8, or
// any number in braces) and returns a Unicode scalar value.
func (t *regexTranslator) hexEscape(kind byte) (rune, error) {
	var digits string
	if t.peek() == '{' {
		end := strings.IndexByte(t.src[t.pos:], '}')
		if end < 0 {
			return 0, errRegex
		}
		digits = t.src[t.pos+1 : t.pos+end]
		t.pos += end + 1
	} else {
		width := map[byte]int{'x': 2, 'u': 4, 'U': 8}[kind]
		if len(t.src)-t.pos < width {
			return 0, errRegex
		}
		digits = t.src[t.pos : t.pos+width]
		t.pos += width
	}
	if digits == "" {
		return 0, errRegex
	}
	for i := 0; i < len(digits); i++ {
		if !isHexDigit(digits[i]) {
			return 0, errRegex
		}
	}
	v, err := strconv.ParseUint(digits, 16, 32)
	if err != nil || v > unicode.MaxRune || (v >= 0xD800 && v <= 0xDFFF) {
		return 0, errRegex // Rust's char::from_u32 fails
	}
	return rune(v), nil
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// perlClass writes \d \s \w or a negation with Rust's meaning: as a class
// of its own outside brackets, as class items inside.
func (t *regexTranslator) perlClass(c byte, inClass bool) error {
	if t.out.Len() > maxTranslatedPatternBytes {
		return errRegex // stop early: the result is too long anyway
	}
	negated := c == 'D' || c == 'S' || c == 'W'
	if !t.cur().unicode {
		if negated {
			return errRegex // (?-u:\W) can match invalid UTF-8
		}
		items := map[byte]string{'d': `0-9`, 's': `\t\n\v\f\r `, 'w': `0-9A-Za-z_`}[c]
		if inClass {
			t.out.WriteString(items)
		} else {
			t.out.WriteString("[" + items + "]")
		}
		return nil
	}
	lower := c | 0x20
	if lower == 'd' {
		if negated {
			t.out.WriteString(`\P{Nd}`)
		} else {
			t.out.WriteString(`\p{Nd}`)
		}
		return nil
	}
	pc := perlClasses()
	items, complement := pc.word, pc.wordComplement
	if lower == 's' {
		items, complement = pc.space, pc.spaceComplement
	}
	if !inClass && t.folding() {
		folded, spaceFolded := perlFolded()
		if lower == 's' {
			folded = spaceFolded
		}
		// A class Go's parser would fold rune by rune (about 0.25 ms for
		// \w): the folding, computed once, is written out instead.
		if negated {
			t.out.WriteString("(?-i:[^" + items + folded + "])")
		} else {
			t.out.WriteString("(?-i:[" + items + folded + "])")
		}
		return nil
	}
	switch {
	case !inClass && negated:
		t.out.WriteString("[^" + items + "]")
	case !inClass:
		t.out.WriteString("[" + items + "]")
	case negated:
		t.out.WriteString(complement) // Go has no negated group inside [...]
	default:
		t.out.WriteString(items)
	}
	return nil
}

// class translates a bracket whose [ has been read, up to its ].
func (t *regexTranslator) class() error {
	if t.folding() {
		return t.foldClass()
	}
	t.out.WriteByte('[')
	if err := t.classBody(true); err != nil {
		return err
	}
	t.out.WriteByte(']')
	return nil
}

// classBody writes the items of a bracket; top is false for a nested
// bracket, flattened into its parent (Rust's union of the two).
func (t *regexTranslator) classBody(top bool) error {
	t.skipSpace()
	if t.peek() == '^' {
		if !top {
			return errRegex // a negated nested bracket: Go has no way to say it
		}
		if !t.cur().unicode {
			// Its items are ASCII (see below), so it holds the bytes
			// past 7F, invalid UTF-8: Rust refuses every one.
			return errRegex
		}
		t.pos++
		t.out.WriteByte('^')
		t.classNeg = true
		t.skipSpace()
	}
	// Rust's parse_set_class_open: any number of leading - are literals,
	// and then a ] that comes first is one.
	empty := true
	for t.peek() == '-' {
		t.pos++
		t.out.WriteString(`\-`)
		empty = false
		t.skipSpace()
	}
	if empty && t.peek() == ']' {
		t.pos++
		t.out.WriteString(`\]`)
	}
	lastWasClass := false
	for {
		t.skipSpace()
		if t.eof() {
			return errRegex
		}
		rest := t.src[t.pos:]
		c := rest[0]
		switch {
		case c == ']':
			t.pos++
			return nil
		case strings.HasPrefix(rest, "&&"), strings.HasPrefix(rest, "--"), strings.HasPrefix(rest, "~~"):
			return errRegex // class set operations
		case c == '[':
			if negated, n, ok := asciiClassAt(rest); ok {
				if negated && !t.cur().unicode {
					// [:^alpha:] holds non-ASCII bytes, which Rust
					// checks on the item itself: refused in any bracket.
					return errRegex
				}
				t.pos += n
				before := t.out.Len()
				t.out.WriteString(rest[:n]) // the same ASCII class in Go
				if t.folding() {
					if err := t.foldNamed(before); err != nil {
						return err
					}
				}
			} else {
				t.pos++
				if err := t.classBody(false); err != nil {
					return err
				}
			}
			lastWasClass = true
		case c == '-':
			t.pos++
			t.skipSpace()
			if t.peek() == ']' {
				t.out.WriteString(`\-`) // a trailing - is a literal
				continue
			}
			next := t.src[t.pos:]
			if lastWasClass || strings.HasPrefix(next, "[") ||
				(len(next) > 1 && next[0] == '\\' && strings.IndexByte("dDsSwWpP", next[1]) >= 0) {
				return errRegex // a range from or to a class
			}
			t.out.WriteByte('-')
		case c == '\\':
			isClass, err := t.escape(true)
			if err != nil {
				return err
			}
			lastWasClass = isClass
		default:
			r, n := utf8.DecodeRuneInString(rest)
			if r >= utf8.RuneSelf && !t.cur().unicode {
				return errRegex // Rust's byte classes hold ASCII literals only
			}
			t.out.WriteString(rest[:n])
			t.pos += n
			lastWasClass = false
		}
	}
}

// asciiClassAt recognises [:name:] and [:^name:] at the start of s.
func asciiClassAt(s string) (negated bool, n int, ok bool) {
	if !strings.HasPrefix(s, "[:") {
		return false, 0, false
	}
	body := s[2:]
	if strings.HasPrefix(body, "^") {
		negated, body = true, body[1:]
	}
	end := strings.Index(body, ":]")
	if end < 0 {
		return false, 0, false
	}
	switch body[:end] {
	case "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower",
		"print", "punct", "space", "upper", "word", "xdigit":
	default:
		return false, 0, false
	}
	n = 2 + end + 2
	if negated {
		n++
	}
	return negated, n, true
}

// perlClasses holds the Unicode Perl classes as Go class items, built from
// Go's tables on first use.
type perlClassItems struct {
	word, wordComplement, space, spaceComplement string
}

// perlFolded holds what (?i) adds to \w and \s (nothing, with Go's
// tables; computed rather than assumed), for perlClass to write them
// without leaving the folding to Go's parser.
var perlFolded = sync.OnceValues(func() (word, space string) {
	pc := perlClasses()
	fold := func(items string) string {
		rs, err := classRanges("["+items+"]", false)
		if err != nil {
			panic(err) // our own items
		}
		return formatRanges(foldAdditions(rs))
	}
	return fold(pc.word), fold(pc.space)
})

var perlClasses = sync.OnceValue(func() perlClassItems {
	// \w = Alphabetic + M + Nd + Pc + Join_Control, Alphabetic being
	// L + Nl + Other_Alphabetic (UTS #18 annex C, which the regex crate
	// follows; Unicode DerivedCoreProperties). Go names the general
	// categories; the few Other_Alphabetic and Join_Control runes outside
	// them are listed.
	cats := []*unicode.RangeTable{unicode.L, unicode.M, unicode.Nd, unicode.Nl, unicode.Pc}
	var extra []runeRange
	for _, rr := range tableRanges(unicode.Other_Alphabetic, unicode.Join_Control) {
		for r := rr.lo; r <= rr.hi; r++ {
			if !unicode.In(r, cats...) {
				extra = addRune(extra, r)
			}
		}
	}
	word := tableRanges(append(cats, unicode.Other_Alphabetic, unicode.Join_Control)...)
	space := tableRanges(unicode.White_Space) // \s = White_Space
	return perlClassItems{
		word:            `\p{L}\p{M}\p{Nd}\p{Nl}\p{Pc}` + formatRanges(extra),
		wordComplement:  formatRanges(complementRanges(word)),
		space:           formatRanges(space),
		spaceComplement: formatRanges(complementRanges(space)),
	}
})

type runeRange struct{ lo, hi rune }

func addRune(rs []runeRange, r rune) []runeRange {
	if n := len(rs); n > 0 && rs[n-1].hi+1 == r {
		rs[n-1].hi = r
		return rs
	}
	return append(rs, runeRange{r, r})
}

// tableRanges returns the union of tables as sorted, merged ranges.
func tableRanges(tabs ...*unicode.RangeTable) []runeRange {
	var rs []runeRange
	add := func(lo, hi, stride rune) {
		if stride == 1 {
			rs = append(rs, runeRange{lo, hi})
			return
		}
		for r := lo; r <= hi; r += stride {
			rs = append(rs, runeRange{r, r})
		}
	}
	for _, tab := range tabs {
		for _, r := range tab.R16 {
			add(rune(r.Lo), rune(r.Hi), rune(r.Stride))
		}
		for _, r := range tab.R32 {
			add(rune(r.Lo), rune(r.Hi), rune(r.Stride))
		}
	}
	return mergeRanges(rs)
}

// mergeRanges sorts rs and merges overlapping and adjacent ranges.
func mergeRanges(rs []runeRange) []runeRange {
	slices.SortFunc(rs, func(a, b runeRange) int { return cmp.Compare(a.lo, b.lo) })
	var out []runeRange
	for _, r := range rs {
		if n := len(out); n > 0 && r.lo <= out[n-1].hi+1 {
			out[n-1].hi = max(out[n-1].hi, r.hi)
			continue
		}
		out = append(out, r)
	}
	return out
}

func complementRanges(rs []runeRange) []runeRange {
	var out []runeRange
	next := rune(0)
	for _, r := range rs {
		if r.lo > next {
			out = append(out, runeRange{next, r.lo - 1})
		}
		next = r.hi + 1
	}
	if next <= unicode.MaxRune {
		out = append(out, runeRange{next, unicode.MaxRune})
	}
	return out
}

func formatRanges(rs []runeRange) string {
	var b strings.Builder
	for _, r := range rs {
		if r.lo == r.hi {
			fmt.Fprintf(&b, `\x{%X}`, r.lo)
		} else {
			fmt.Fprintf(&b, `\x{%X}-\x{%X}`, r.lo, r.hi)
		}
	}
	return b.String()
}

// Case folding of bracket classes. Under (?i) Go's parser folds a class
// range by visiting every rune of it that lies between U+0041 and U+1E943
// (regexp/syntax appendFoldedRange): (?i)[B-\x{1E942}] takes milliseconds
// to parse, a 4 KB pattern of such brackets a second, on every
// compilation, though it looks small to regexSize. foldClass computes the
// same class from the ~2,900 runes that fold at all and writes it in
// (?-i:…), where Go's parser does no folding. Go's meaning, which is also
// Rust's (simple case folding of each item, then the negation), is kept:
// the items are written unchanged and the runes (?i) adds to them are
// appended.

func (t *regexTranslator) folding() bool { return t.foldClasses && t.cur().fold }

// foldClass is class under (?i).
func (t *regexTranslator) foldClass() error {
	start := t.out.Len()
	t.classNeg, t.classExtra = false, t.classExtra[:0]
	t.classKept.Reset()
	if err := t.classBody(true); err != nil {
		return err
	}
	// What is left in out are runes and ranges (and ASCII classes under
	// (?-u)): Go's parser reads them without folding, cheaply, and the
	// runes sharing a case orbit with one of them are added.
	body := string(t.out.Bytes()[start:])
	t.out.Truncate(start)
	if t.classNeg {
		body = body[1:] // the ^ classBody wrote
	}
	if strings.HasPrefix(body, "^") {
		body = `\` + body // a literal ^ that keepClassItem left first
	}
	var items []runeRange
	if body != "" {
		var err error
		if items, err = classRanges("["+body+"]", false); err != nil {
			return errRegex // Go's parser would reject it as well
		}
	}
	extra := mergeRanges(append(foldAdditions(items), t.classExtra...))
	added := formatRanges(subtractRanges(extra, items))
	kept := t.classKept.String()
	t.out.WriteString("(?-i:[")
	switch {
	case body == "" && kept == "" && added == "" && t.classNeg:
		t.out.WriteString(`\x{0}-\x{10FFFF}`) // the negation of nothing
	case body == "" && kept == "" && added == "":
		t.out.WriteString(`^\x{0}-\x{10FFFF}`) // an empty class
	default:
		if t.classNeg {
			t.out.WriteByte('^')
		}
		t.out.WriteString(body)
		t.out.WriteString(kept)
		t.out.WriteString(added)
	}
	t.out.WriteString("])")
	if t.out.Len() > maxTranslatedPatternBytes {
		return errRegex // stop early: the result is too long anyway
	}
	return nil
}

// keepClassItem moves the class item written at out[before:] to
// classKept, out of what foldClass parses and folds.
func (t *regexTranslator) keepClassItem(before int) {
	t.classKept.Write(t.out.Bytes()[before:])
	t.out.Truncate(before)
}

// namedFold is foldNamed's verdict on one named class item.
type namedFold struct {
	keep  bool        // the item stays as written, and
	extra []runeRange // these runes are what (?i) adds to it
}

// foldNamed handles, under (?i), the named class just written at
// out[before:] (\p{…}, \P{…}, [:name:] or [:^name:]), which Go's parser
// folds from its tables rather than rune by rune: it asks Go's parser what
// the item is with and without (?i). Folding a negated class is not
// negating the folded one ((?i)\P{Lu} holds no cased letter), so an item
// whose folded form does not contain its plain form is replaced by the
// folded runes.
func (t *regexTranslator) foldNamed(before int) error {
	item := string(t.out.Bytes()[before:])
	key := namedClassKey(item)
	nf, ok := t.namedFolds[key]
	if !ok {
		plain, err1 := classRanges("["+item+"]", false)
		folded, err2 := classRanges("["+item+"]", true)
		if err1 != nil || err2 != nil {
			return errRegex // an unknown \p name: Go's parser rejects it too
		}
		if len(subtractRanges(plain, folded)) == 0 {
			nf = namedFold{keep: true, extra: subtractRanges(folded, plain)}
		} else {
			nf = namedFold{extra: folded}
		}
		if t.namedFolds == nil {
			t.namedFolds = map[string]namedFold{}
		}
		t.namedFolds[key] = nf
	}
	if nf.keep {
		t.keepClassItem(before)
	} else {
		t.out.Truncate(before)
	}
	t.classExtra = append(t.classExtra, nf.extra...)
	return nil
}

// namedClassKey names a \p item by its sign and its name as Go's parser
// looks it up (ASCII case, spaces, _ and - ignored), so that spellings of
// one table are examined once.
func namedClassKey(item string) string {
	if len(item) < 3 || item[0] != '\\' {
		return item // [:name:]
	}
	neg := item[1] == 'P'
	name := strings.TrimSuffix(strings.TrimPrefix(item[2:], "{"), "}")
	if strings.HasPrefix(name, "^") {
		neg, name = !neg, name[1:]
	}
	key := []byte{'+'}
	if neg {
		key[0] = '-'
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c == '_' || c == '-' || c == ' ':
		case 'A' <= c && c <= 'Z':
			key = append(key, c+'a'-'A')
		default:
			key = append(key, c)
		}
	}
	return string(key)
}

// perlClassesFoldClosed reports whether (?i) adds nothing to the Unicode
// \d, \s and \w (and so to \D, \S, \W): true with Go's tables, checked
// rather than assumed.
var perlClassesFoldClosed = sync.OnceValue(func() bool {
	word, space := perlFolded()
	digits, err := classRanges(`[\p{Nd}]`, false)
	return err == nil && word == "" && space == "" && len(foldAdditions(digits)) == 0
})

// classRanges parses a Go bracket expression (as Go's regexp would, with
// FoldCase when fold) and returns its runes as sorted, merged ranges.
func classRanges(class string, fold bool) ([]runeRange, error) {
	flags := syntax.Perl
	if fold {
		flags |= syntax.FoldCase
	}
	re, err := syntax.Parse(class, flags)
	if err != nil {
		return nil, err
	}
	var rs []runeRange
	switch re.Op {
	case syntax.OpCharClass:
		for i := 0; i+1 < len(re.Rune); i += 2 {
			rs = append(rs, runeRange{re.Rune[i], re.Rune[i+1]})
		}
	case syntax.OpLiteral: // the parser's form of [a], and of [Aa] with FoldCase
		for _, r := range re.Rune {
			rs = append(rs, runeRange{r, r})
			if re.Flags&syntax.FoldCase != 0 {
				for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
					rs = append(rs, runeRange{f, f})
				}
			}
		}
	case syntax.OpAnyChar:
		rs = append(rs, runeRange{0, unicode.MaxRune})
	case syntax.OpAnyCharNotNL:
		rs = append(rs, runeRange{0, '\n' - 1}, runeRange{'\n' + 1, unicode.MaxRune})
	case syntax.OpNoMatch:
	default:
		return nil, errRegex
	}
	return mergeRanges(rs), nil
}

// foldOrbits lists the runes whose simple case folding orbit holds other
// runes (about 2,900), sorted, each with the other members of its orbit.
var foldOrbits = sync.OnceValue(func() (o struct {
	runes  []rune
	others [][]rune
}) {
	// A rune folds only if it has a case mapping (unicode.SimpleFold) or
	// shares an orbit with one that has (ß with ẞ), so the orbits of the
	// runes of unicode.CaseRanges are all there is.
	seen := map[rune]bool{}
	for _, cr := range unicode.CaseRanges {
		for r := rune(cr.Lo); r <= rune(cr.Hi); r++ {
			for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
				seen[r], seen[f] = true, true
			}
		}
	}
	o.runes = slices.Sorted(maps.Keys(seen))
	for _, r := range o.runes {
		var others []rune
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			others = append(others, f)
		}
		o.others = append(o.others, others)
	}
	return o
})

// foldAdditions returns the runes outside rs (sorted and merged) that
// share a case orbit with a rune of rs, as merged ranges: what (?i) adds
// to the class rs. It visits only the runes of rs that fold.
func foldAdditions(rs []runeRange) []runeRange {
	o := foldOrbits()
	var add []runeRange
	for _, r := range rs {
		i, _ := slices.BinarySearch(o.runes, r.lo)
		for ; i < len(o.runes) && o.runes[i] <= r.hi; i++ {
			for _, f := range o.others[i] {
				if !inRanges(rs, f) {
					add = append(add, runeRange{f, f})
				}
			}
		}
	}
	return mergeRanges(add)
}

func inRanges(rs []runeRange, r rune) bool {
	_, found := slices.BinarySearchFunc(rs, r, func(x runeRange, r rune) int {
		switch {
		case x.hi < r:
			return -1
		case x.lo > r:
			return +1
		}
		return 0
	})
	return found
}

// subtractRanges returns the runes of a (merged) not in b (merged).
func subtractRanges(a, b []runeRange) []runeRange {
	var out []runeRange
	for _, r := range a {
		lo := r.lo
		i, _ := slices.BinarySearchFunc(b, lo, func(x runeRange, r rune) int { return cmp.Compare(x.hi, r) })
		for ; i < len(b) && b[i].lo <= r.hi && lo <= r.hi; i++ {
			if b[i].lo > lo {
				out = append(out, runeRange{lo, b[i].lo - 1})
			}
			lo = max(lo, b[i].hi+1)
		}
		if lo <= r.hi {
			out = append(out, runeRange{lo, r.hi})
		}
	}
	return out
}
