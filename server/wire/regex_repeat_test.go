package wire

import "testing"

// Rust's regex crate repeats a repetition: a** is (?:a*)*, \d+* is
// (?:\d+)*, a{2}{3} is (?:a{2}){3} (regex-syntax's parser refuses to
// repeat only nothing, an empty group or flags). Go's parser rejects a
// repetition operator after another, so such patterns matched nothing.
func TestCompilePattern_regexRepeatedRepetition(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, pattern, text string
		want                bool
	}{
		{"star star", `^a**$`, "aaa", true},
		{"plus star", `^\d+*$`, "123", true},
		{"star plus", `^x-a*+$`, "x-", true},
		{"counted counted", `^a{2}{3}$`, "aaaaaa", true},
		{"counted counted too few", `^a{2}{3}$`, "aaaa", false},
		{"lazy then optional", `^(a*?)?b$`, "aab", true},
		{"lazy star then question", `^a*??b$`, "aab", true},
		{"group repeated twice", `^(ab)+*$`, "abab", true},
		{"class repeated twice", `^[ab]+{2}$`, "ab", true},
		{"verbose spaces between", "(?x)^ a * * $", "aa", true},
		// Still what it was.
		{"lazy", `^a*?b$`, "aab", true},
		{"lazy question", `^a??b$`, "ab", true},
		{"repetition of nothing", `*a`, "a", false},
		{"repetition of flags", `(?i)*a`, "a", false},
		{"alternation then repetition", `a|*`, "a", false},
	}
	for _, tc := range tests {
		m := compilePattern(OpRegex, tc.pattern)
		got := m != nil && m.MatchString(tc.text)
		if got != tc.want {
			g, err := translateRegex(tc.pattern)
			t.Errorf("%s: %q matching %q = %v, want %v (translated %q, %v)", tc.name, tc.pattern, tc.text, got, tc.want, g, err)
		}
	}
}
