package wire

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// Regex predicates match with the meaning TopGun's server gives them: it
// compiles them with Rust's regex crate. Expectations follow the crate's
// documented syntax (docs.rs/regex, "Syntax": "Perl character classes
// (Unicode friendly)", "Escape sequences", "Grouping and flags") and its
// parser (regex-syntax src/ast/parse.rs). Before the translation \w, \d and
// \s were ASCII, \s missed \v, and \u escapes made the pattern fail.
func TestCompilePattern_regexRustSemantics(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, pattern, text string
		want                bool
	}{
		// \w is \p{Alphabetic} + \p{M} + \d + \p{Pc} + \p{Join_Control}.
		{"w unicode letter", `^\w+$`, "café", true},
		{"w combining mark", `^\w+$`, "cafe\u0301", true},
		{"w circled letter (Other_Alphabetic)", `^\w$`, "Ⓐ", true},
		{"w zero-width joiner (Join_Control)", `^\w$`, "\u200d", true},
		{"w punctuation", `^\w+$`, "a-b", false},
		{"W not a unicode letter", `^\W$`, "é", false},
		{"W punctuation", `^\W$`, "!", true},
		// \d is \p{Nd}; \s is \p{White_Space}, which holds \v and NBSP.
		{"d arabic-indic digits", `^\d+$`, "١٢٣", true},
		{"D arabic-indic digit", `^\D$`, "٣", false},
		{"s no-break space", `^\s$`, "\u00a0", true},
		{"s vertical tab", `^\s$`, "\v", true},
		{"S vertical tab", `^\S$`, "\v", false},
		{"S letter", `^\S$`, "é", true},
		// Inside brackets, and negated inside brackets.
		{"class w and dash", `^[\w-]+$`, "é-x", true},
		{"class letters only", `^[^\W\d_]+$`, "Ünïcode", true},
		{"class letters only rejects digit", `^[^\W\d_]+$`, "abc1", false},
		{"class s and d", `^[\s\d]+$`, "\u3000٣", true},
		{"class S", `^[\S]+$`, "a\u00a0", false},
		// (?-u) makes them ASCII; Rust's str Regex rejects what could match
		// invalid UTF-8 there (., \W, negated brackets, \xFF).
		{"ascii w", `(?-u)^\w$`, "é", false},
		{"ascii d", `(?-u:\d)`, "5", true},
		{"ascii s holds \\v", `(?-u)^\s$`, "\v", true},
		{"ascii then unicode", `^(?-u:\w)(?u:\w)$`, "aé", true},
		{"ascii scope ends with group", `^(?:(?-u)\w)\w$`, "aé", true},
		{"ascii dot rejected", `(?-u).`, "a", false},
		{"ascii W rejected", `(?-u)\W`, "!", false},
		{"ascii negated class rejected", `(?-u)[^a]`, "b", false},
		{"ascii high byte rejected", `(?-u)\xFF`, "ÿ", false},
		// ...but a braced \x names a character, as outside (?-u); inside
		// brackets, which hold bytes there, only ASCII is accepted.
		{"ascii braced x is a character", `(?-u)^\x{FF}$`, "ÿ", true},
		{"ascii class of a non-ascii literal rejected", `(?-u)[é]`, "é", false},
		{"ascii class of a non-ascii escape rejected", `(?-u)[\u00e9]`, "é", false},
		// Rust checks [:^name:] on its own (hir_ascii_byte_class), and a
		// negated bracket of ASCII items always holds the bytes past 7F:
		// both are refused under (?-u), whatever the bracket around them
		// (regex-syntax's translate tests: (?-u)[[:^lower:]] and (?-u)[^a]
		// are InvalidUtf8 errors).
		{"ascii negated class of a negated name rejected", `(?-u)^[^[:^alpha:]]+$`, "aZ", false},
		{"ascii negated class matching nothing rejected", `(?-u)a|[^[:^alpha:][:alpha:]]`, "a", false},
		{"ascii negated class of a negated ascii name rejected", `(?-u)^[^[:^ascii:]]$`, "a", false},
		{"ascii negated name alone rejected", `(?-u)[[:^alpha:]]`, "!", false},
		{"ascii negated name in nested bracket rejected", `(?-u)[^[[:^alpha:]]]`, "a", false},
		// Escapes: \x, \u and \U in fixed and braced forms; scalar values only.
		{"u4", `\u00e9`, "café", true},
		{"u braced", `\u{e9}`, "é", true},
		{"U8", `\U000000E9`, "é", true},
		{"x braced", `\x{1F600}`, "😀", true},
		{"x2", `\xE9`, "é", true},
		{"u range in class", `^[\u0041-\u005A]+$`, "ABC", true},
		{"u surrogate rejected", `a|\u{D800}`, "a", false},
		{"x surrogate rejected", `a|\x{D800}`, "a", false},
		{"u above max rejected", `\u{110000}`, "a", false},
		{"u short rejected", `\u00e`, "é", false},
		{"escaped backslash then d", `^\\d$`, `\d`, true},
		{"escaped backslash then d is not a digit", `^\\d$`, "5", false},
		{"escaped backslash then w", `^\\\w$`, `\é`, true},
		// Flags: u and x are Rust's; x ignores whitespace and comments.
		{"verbose", "(?x) ^ a \\  b # a comment\n $", "a b", true},
		{"verbose in class", `(?x)^[ a b ]+$`, "ab", true},
		{"verbose scoped", `^(?x: a b )c d$`, "abc d", true},
		{"i passes through", `(?i)CAFÉ`, "café", true},
		{"R flag unsupported", `(?R)^a$`, "a", false},
		// Brackets: a nested bracket is a union; set operations are not
		// supported here and match nothing (Rust would evaluate them).
		{"nested union", `^[a[bc]]$`, "b", true},
		{"leading dashes literal", `^[--a]$`, "b", false},
		{"leading dashes literal dash", `^[--a]$`, "-", true},
		{"intersection unsupported", `[a-z&&[^aeiou]]`, "b", false},
		// What Rust's parser rejects matches nothing, where Go would read a
		// literal or an octal escape.
		{"empty min count rejected", `a{,3}`, "a{,3}", false},
		{"lone brace rejected", `a{`, "a{", false},
		{"count with spaces", `^a{ 2 , 3 }$`, "aa", true},
		{"backreference rejected", `(a)\1`, "aa", false},
		{"octal rejected", `\012`, "\n", false},
		{"word start rejected", `\<a`, "<a", false},
		{"special boundary rejected", `\b{start}a`, "a", false},
		{"quote rejected", `\Qa.b\E`, "a.b", false},
		// A repetition of a flags group is RepetitionMissing in Rust; Go
		// repeats the item before it.
		{"plus after flags rejected", `a(?i)+`, "a", false},
		{"count after flags rejected", `^a(?m){2}$`, "aa", false},
		{"lazy after verbose flags rejected", "a(?x) ?", "a", false},
		{"question after two flag groups rejected", `a(?s)(?U)?`, "a", false},
		{"repeated scoped flags group", `^a(?i:b)+$`, "abB", true},
		{"repetition after flags and an item", `^(?i)a+$`, "aA", true},
		{"named groups", `^(?P<first>a)(?<second>b)$`, "ab", true},
		{"unicode group name", `^(?P<café>a)$`, "a", true},
		{"duplicate group name", `(?P<n>a)(?P<n>b)`, "ab", false},
		// \p{..} is left to Go.
		{"p letter", `^\pL$`, "é", true},
		{"p script", `^\p{Greek}+$`, "αβ", true},
		// \b stays an ASCII word boundary (documented at Match): the same
		// as Rust's where both sides are ASCII...
		{"b ascii", `\bfoo\b`, "a foo b", true},
		{"b ascii inside word", `\bfoo\b`, "afoo", false},
		// ...but here Rust's Unicode \b finds no boundary between f and é,
		// and Go's does.
		{"b differs beside non-ascii", `caf\b`, "café", true},
	}
	for _, tc := range tests {
		m := compilePattern(OpRegex, tc.pattern)
		got := m != nil && m.MatchString(tc.text)
		if got != tc.want {
			tr, err := translateRegex(tc.pattern)
			t.Errorf("%s: %q on %q = %v, want %v (translated %.200q, %v)", tc.name, tc.pattern, tc.text, got, tc.want, tr, err)
		}
	}
}

// The translation reaches both query forms.
func TestQuery_Match_regexIsUnicodeAware(t *testing.T) {
	t.Parallel()
	v := map[string]any{"name": "café"}
	if !leaf(OpRegex, "name", `^\w+$`).Eval(v, nil) {
		t.Error(`regex predicate ^\w+$ did not match "café"`)
	}
	q := &Query{Where: map[string]any{"name": map[string]any{"$regex": `\u00e9$`}}}
	if !q.Match(v) {
		t.Error(`$regex \u00e9$ did not match "café" before Compile`)
	}
	q.Compile()
	if !q.Match(v) {
		t.Error(`$regex \u00e9$ did not match "café" after Compile`)
	}
}

// A pattern whose translation would be huge matches nothing instead of
// taking seconds to compile.
func TestCompilePattern_regexTranslationBounded(t *testing.T) {
	t.Parallel()
	if m := compilePattern(OpRegex, strings.Repeat(`[\W]`, MaxPatternBytes/4)); m != nil {
		t.Error("a pattern of 1024 [\\W] compiled")
	}
}

// FuzzTranslateRegex checks that translateRegex never panics and that where
// Go's regexp already agrees with Rust's regex crate — ASCII text without
// \v, patterns Go compiles as they are — the translation changes nothing:
// a translated pattern that compiles matches as the original. The
// exceptions are the syntax Go reads differently (see goReadsDifferently).
func FuzzTranslateRegex(f *testing.F) {
	for _, s := range []string{`^\w+$`, `[\W\d]`, `\s+`, `(?i)a\b`, `[^\S]`, `\x{41}`, `(?-u:\w)`, `a{2,3}`,
		`(?P<n>a)|b`, `[[:alpha:]]`, `[a-]`, `[]a]`, `\\d`, `(?x) a # c`, `[^-a]`, `\pL\PN`} {
		f.Add(s, "abc 123 _-!")
	}
	f.Fuzz(func(t *testing.T, pattern, text string) {
		goPattern, err := translateRegex(pattern)
		if err != nil || len(pattern) > 256 || len(text) > 256 {
			return // long inputs only slow matching down
		}
		translated, err := regexp.Compile(goPattern)
		if err != nil {
			return
		}
		original, err := regexp.Compile(pattern)
		if err != nil || !isASCII(text) || strings.ContainsRune(text, '\v') || goReadsDifferently(pattern) {
			return
		}
		if a, b := original.MatchString(text), translated.MatchString(text); a != b {
			t.Fatalf("%q on %q: original %v, translated (%q) %v", pattern, text, a, goPattern, b)
		}
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// goReadsDifferently reports syntax Go's regexp accepts with a meaning
// other than Rust's (translateRegex rewrites it): [ or a leading -- in a
// bracket, a space or a leading zero in {m,n}.
func goReadsDifferently(p string) bool {
	inClass := false
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '\\':
			i++
		case !inClass && c == '[':
			inClass = true
			rest := strings.TrimPrefix(p[i+1:], "^")
			if strings.HasPrefix(rest, "--") {
				return true
			}
			if strings.HasPrefix(rest, "]") {
				i += len(p[i+1:]) - len(rest) + 1
			}
		case inClass && c == '[':
			if _, n, ok := asciiClassAt(p[i:]); ok {
				i += n - 1
				break
			}
			return true
		case inClass && c == ']':
			inClass = false
		case !inClass && c == '{':
			j := strings.IndexByte(p[i:], '}')
			if j > 0 && strings.ContainsAny(p[i:i+j], " \t\n\r\f\v") {
				return true
			}
			for _, n := range strings.Split(p[i+1:i+max(j, 1)], ",") {
				if len(n) > 1 && n[0] == '0' {
					return true // Go reads {00} as a literal, Rust as {0}
				}
			}
		}
	}
	return false
}
