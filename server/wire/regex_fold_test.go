package wire

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
)

// foldedClasses returns the character classes of goPattern that Go's
// parser built under FoldCase, that is by visiting every rune of their
// ranges between U+0041 and U+1E943 (regexp/syntax appendFoldedRange).
func foldedClasses(t *testing.T, goPattern string) []string {
	t.Helper()
	re, err := syntax.Parse(goPattern, syntax.Perl)
	if err != nil {
		t.Fatalf("parse %q: %v", goPattern, err)
	}
	var found []string
	var walk func(re *syntax.Regexp)
	walk = func(re *syntax.Regexp) {
		if re.Op == syntax.OpCharClass && re.Flags&syntax.FoldCase != 0 {
			found = append(found, re.String())
		}
		for _, s := range re.Sub {
			walk(s)
		}
	}
	walk(re)
	return found
}

// Under (?i) Go's parser folds a bracket range one rune at a time: the 17
// bytes of (?i)[B-\x{1E942}] cost 125,000 SimpleFold calls, and a 4 KB
// pattern of them a second of CPU per compilation, on every query and, for
// a ValueRef pattern, every record, while regexSize sees a small pattern.
// The translation folds such classes itself, from the runes that fold,
// and gives Go's parser classes it reads without folding.
func TestTranslateRegex_foldClassesNotLeftToGo(t *testing.T) {
	t.Parallel()
	for _, p := range []string{
		`(?i)[B-\x{1E942}]`, `(?i)[^B-\x{1E942}]`, `(?i)[\S]`, `(?i)[\W]`, `(?i)[\w]`, `(?i)\w`, `(?i)\W`,
		`(?i)[a-z]`, `(?i)[\pL\P{Lu}[:^alpha:]x-\x{FFFF}]`, `(?i:[a-\x{10000}])+`, `(?i-u)[\w]`,
		`(?i)(?x)[ \x{100} - \x{20000} ]`,
	} {
		goPattern, err := translateRegex(p)
		if err != nil {
			t.Fatalf("%q: %v", p, err)
		}
		if f := foldedClasses(t, goPattern); len(f) > 0 {
			t.Errorf("%q: Go's parser folds %d classes of its translation rune by rune", p, len(f))
		}
	}
	// A pattern of MaxPatternBytes of them compiles into a small
	// translation with no class left to fold.
	p := "(?i)" + strings.Repeat(`[B-\x{1E942}]`, (MaxPatternBytes-4)/len(`[B-\x{1E942}]`))
	goPattern, err := translateRegex(p)
	if err != nil {
		t.Fatal(err)
	}
	if f := foldedClasses(t, goPattern); len(f) > 0 || len(goPattern) > 4*len(p) {
		t.Errorf("%d bytes translate to %d, %d classes left to fold", len(p), len(goPattern), len(f))
	}
	if m := compilePattern(OpRegex, p); m == nil || !m.MatchString(strings.Repeat("a", 400)) {
		t.Error("the folded pattern does not match 400 a")
	}
}

// foldOrbits holds every rune that case folding maps elsewhere.
func TestFoldOrbits_complete(t *testing.T) {
	t.Parallel()
	var want []rune
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if unicode.SimpleFold(r) != r {
			want = append(want, r)
		}
	}
	if got := foldOrbits().runes; !slices.Equal(got, want) {
		t.Errorf("foldOrbits has %d runes, %d fold", len(got), len(want))
	}
}

// foldTestRunes are runes around the case-folding oddities: orbits of
// three or four (K k KELVIN SIGN, S s ſ, Dž, Θ θ ϑ ϴ, ß ẞ), runes folding
// only to a mark (U+0345), scripts far up (Deseret, Adlam), no-case runes.
var foldTestRunes = []rune{
	'0', '9', 'A', 'B', 'J', 'K', 'L', 'R', 'S', 'T', 'Z', '_', 'a', 'b', 'k', 'l', 's', 'z', '-', '^', ']',
	0xB5, 0xC0, 0xDF, 0xE0, 0xFF, 0x100, 0x130, 0x131, 0x17F, 0x1C4, 0x1C5, 0x1C6, 0x345, 0x390, 0x391,
	0x398, 0x3B8, 0x3C2, 0x3C3, 0x3D1, 0x3F4, 0x400, 0x42F, 0x44F, 0x13A0, 0x13F5, 0x1E9E, 0x2126, 0x212A,
	0x212B, 0x24B6, 0x24D0, 0x2C00, 0xA640, 0xAB70, 0xFF21, 0xFF41, 0x10400, 0x10428, 0x1E900, 0x1E922,
	0x1E942, 0x1E943, 0x1F600, 0x10FFFF,
}

func randomFoldClass(r *rand.Rand, depth int) string {
	pick := func() rune { return foldTestRunes[r.IntN(len(foldTestRunes))] }
	lit := func(c rune) string {
		if c < 0x80 && (unicode.IsLetter(c) || unicode.IsDigit(c)) && r.IntN(2) == 0 {
			return string(c)
		}
		return fmt.Sprintf(`\x{%X}`, c)
	}
	named := []string{`\w`, `\d`, `\s`, `\W`, `\D`, `\S`, `\pL`, `\p{Lu}`, `\p{Ll}`, `\P{Lu}`, `\P{Ll}`,
		`\p{Greek}`, `\P{Greek}`, `\p{^Greek}`, `\pN`, `\p{Lt}`, `[:alpha:]`, `[:^upper:]`, `[:lower:]`,
		`[:^alpha:]`, `[:word:]`, `\p{Adlam}`, `\P{Cherokee}`, `\.`, `\-`}
	var b strings.Builder
	b.WriteByte('[')
	if depth == 0 && r.IntN(3) == 0 {
		b.WriteByte('^')
	}
	for n := 1 + r.IntN(4); n > 0; n-- {
		switch k := r.IntN(10); {
		case k < 3:
			b.WriteString(lit(pick()))
		case k < 6:
			lo, hi := pick(), pick()
			if lo > hi {
				lo, hi = hi, lo
			}
			b.WriteString(lit(lo) + "-" + lit(hi))
		case k < 9:
			b.WriteString(named[r.IntN(len(named))])
		case depth == 0:
			b.WriteString(randomFoldClass(r, 1))
		default:
			b.WriteString(lit(pick()))
		}
	}
	b.WriteByte(']')
	return b.String()
}

// The classes translated under (?i) hold exactly the runes Go's own (?i)
// gives them (the translation before folding was moved into it), on random
// classes mixing runes, ranges, Perl and Unicode classes, negations and
// nested brackets, under (?i), (?i-u) and (?-i) scopes.
func TestTranslateRegex_foldClassesDifferential(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 11))
	var texts []rune
	for _, c := range foldTestRunes {
		texts = append(texts, c-1, c, c+1)
		for f := unicode.SimpleFold(c); f != c; f = unicode.SimpleFold(f) {
			texts = append(texts, f)
		}
	}
	prefixes := []string{`(?i)`, `(?i)`, `(?i)`, `(?i-u)`, `(?i:`, `(?i)(?-i:`}
	for i := 0; i < 400; i++ {
		prefix := prefixes[r.IntN(len(prefixes))]
		class := randomFoldClass(r, 0)
		pattern := prefix + "^" + class + "$"
		if strings.HasSuffix(prefix, ":") {
			pattern += ")"
		}
		got, err1 := translateRegex(pattern)
		want, err2 := translateRegexFold(pattern, false)
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("seed %d: %q: error %v, before folding %v", seed, pattern, err1, err2)
		}
		if err1 != nil {
			continue
		}
		gotRe, err1 := regexp.Compile(got)
		wantRe, err2 := regexp.Compile(want)
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("seed %d: %q: compile %q: %v, before folding %q: %v", seed, pattern, got, err1, want, err2)
		}
		if err1 != nil {
			continue
		}
		if f := foldedClasses(t, got); len(f) > 0 {
			t.Fatalf("seed %d: %q: %q leaves %v to Go's folding", seed, pattern, got, f)
		}
		for _, c := range texts {
			if c < 0 || c > unicode.MaxRune || (c >= 0xD800 && c <= 0xDFFF) {
				continue
			}
			if a, b := gotRe.MatchString(string(c)), wantRe.MatchString(string(c)); a != b {
				t.Fatalf("seed %d: %q on U+%04X: %v (%q), Go's (?i) says %v (%q)", seed, pattern, c, a, got, b, want)
			}
		}
	}
	// Sequences with scopes: (?i) turned off and on between classes.
	for i := 0; i < 200; i++ {
		var p strings.Builder
		p.WriteString("(?i)^")
		for n := 1 + r.IntN(3); n > 0; n-- {
			switch r.IntN(4) {
			case 0:
				p.WriteString("(?-i:" + randomFoldClass(r, 0) + ")")
			case 1:
				p.WriteString("(?:k|" + randomFoldClass(r, 0) + ")")
			default:
				p.WriteString(randomFoldClass(r, 0))
			}
		}
		p.WriteString("$")
		got, err1 := translateRegex(p.String())
		want, err2 := translateRegexFold(p.String(), false)
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("seed %d: %q: error %v, before folding %v", seed, p.String(), err1, err2)
		}
		if err1 != nil {
			continue
		}
		gotRe, err1 := regexp.Compile(got)
		wantRe, err2 := regexp.Compile(want)
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("seed %d: %q: compile %q: %v, before folding %q: %v", seed, p.String(), got, err1, want, err2)
		}
		if err1 != nil {
			continue
		}
		for j := 0; j < 300; j++ {
			var text strings.Builder
			for n := 1 + r.IntN(3); n > 0; n-- {
				text.WriteRune(texts[r.IntN(len(texts))])
			}
			if a, b := gotRe.MatchString(text.String()), wantRe.MatchString(text.String()); a != b {
				t.Fatalf("seed %d: %q on %q: %v (%q), Go's (?i) says %v (%q)", seed, p.String(), text.String(), a, got, b, want)
			}
		}
	}
}
