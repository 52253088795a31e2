package wire

import (
	"math/rand/v2"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// likeRegexp is the regexp TopGun's server builds for a like pattern
// (evaluate_like), which this package used to match with.
func likeRegexp(pattern string) *regexp.Regexp {
	q := regexp.QuoteMeta(pattern)
	q = strings.ReplaceAll(q, "%", ".*")
	q = strings.ReplaceAll(q, "_", ".")
	re, err := regexp.Compile("(?i)^" + q + "$")
	if err != nil {
		return nil
	}
	return re
}

// TestLike_matchesRegexpForm checks the like matcher against the regexp
// form on random patterns and texts over an alphabet of wildcards,
// newlines, regexp metacharacters, case pairs (with the Kelvin sign and
// long s, which fold to ASCII), non-ASCII and invalid UTF-8, and on
// patterns long enough to span several words of state.
func TestLike_matchesRegexpForm(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 7))
	alpha := []string{"a", "A", "b", "%", "%", "_", "\n", "k", "K", "\u212a", "s", "\u017f", ".", "*", "\\", "é", "É", "\xff", "\ufffd", "["}
	word := func(n int) string {
		var b strings.Builder
		for range n {
			b.WriteString(alpha[r.IntN(len(alpha))])
		}
		return b.String()
	}
	check := func(pattern, text string) {
		t.Helper()
		re := likeRegexp(pattern)
		want := re != nil && re.MatchString(text)
		m := compilePattern(OpLike, pattern)
		got := m != nil && m.MatchString(text)
		if got != want {
			t.Fatalf("seed %d: like %q on %q = %v, regexp form says %v", seed, pattern, text, got, want)
		}
	}
	for range 20000 {
		pattern, text := word(r.IntN(8)), word(r.IntN(10))
		if r.IntN(3) == 0 && len(text) > 0 { // a pattern that often matches
			pattern = strings.Map(func(c rune) rune {
				if r.IntN(4) == 0 {
					return '_'
				}
				return c
			}, text)
			if r.IntN(2) == 0 {
				pattern = "%" + pattern[len(pattern)/2:]
			}
		}
		check(pattern, text)
	}
	// Patterns past 64 and 128 positions (state in several words).
	for _, n := range []int{63, 64, 65, 127, 128, 129, 300} {
		text := strings.Repeat("ab", n)
		check(strings.Repeat("a_", n), text)
		check(strings.Repeat("A%", n)+"b", text)
		check(strings.Repeat("%b", n), text)
		check(strings.Repeat("%b", n+1), text)
		check("%"+strings.Repeat("_", 2*n), text)
		check("%"+strings.Repeat("_", 2*n+1), text)
	}
}

// A long like pattern of many % against a long text is matched by the
// bit-parallel automaton, not a regexp: "%a%a…a" of MaxPatternBytes took
// about 4.7 s per 100 KB record through Go's regexp (whose matcher keeps
// one thread per pattern position, so 47 s for a 1 MB value), and a query
// reads every record of its map and every change to it.
func TestLike_hostilePatternLinearMatcher(t *testing.T) {
	t.Parallel()
	pattern := strings.Repeat("%a", MaxPatternBytes/2)
	m := compilePattern(OpLike, pattern)
	if _, ok := m.(*likeMatcher); !ok {
		t.Fatalf("like compiled to %T, want the bit-parallel matcher", m)
	}
	text := strings.Repeat("a", 1<<18)
	if !m.MatchString(text) {
		t.Error(`"%a%a…" did not match a text of a's longer than it`)
	}
	if m.MatchString(text[:MaxPatternBytes/2-1]) {
		t.Error(`"%a%a…" matched a text of too few a's`)
	}
	if m.MatchString(text + "b") {
		t.Error(`"%a%a…a" matched a text ending in b`)
	}
}

// FuzzLike checks the like matcher against the regexp form of the pattern.
func FuzzLike(f *testing.F) {
	for _, s := range [][2]string{{"a%", "abc"}, {"%_\n", "x\n"}, {"_", "\xff"}, {"K%", "\u212ax"}, {"%a%a%a", "aaa"}, {"[%", "[x"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, text string) {
		if len(pattern) > MaxPatternBytes {
			return
		}
		re := likeRegexp(pattern)
		want := re != nil && re.MatchString(text)
		m := compilePattern(OpLike, pattern)
		if got := m != nil && m.MatchString(text); got != want {
			t.Fatalf("like %q on %q = %v, regexp form says %v", pattern, text, got, want)
		}
	})
}

// A compiled like pattern is held for as long as its query: it must cost
// memory in proportion to the pattern. A dense mask of the whole state per
// distinct literal cost about 480 KB for a pattern of MaxPatternBytes
// distinct runes (a QUERY_SUB frame holds hundreds of such patterns, and a
// connection a thousand queries), several times the regexp it replaced.
func TestLike_compiledSizeFollowsPattern(t *testing.T) {
	var b strings.Builder
	for r := rune(0x100); b.Len()+utf8.UTFMax <= MaxPatternBytes; r++ {
		b.WriteRune(r)
	}
	pattern := b.String()
	const n = 20
	keep := make([]textMatcher, 0, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range n {
		keep = append(keep, compilePattern(OpLike, pattern))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / n
	t.Logf("%d heap bytes per compiled pattern of %d bytes", per, len(pattern))
	if keep[0] == nil || !keep[0].MatchString(pattern) {
		t.Fatal("the pattern does not match itself")
	}
	// The regexp form takes about 25 bytes per pattern byte.
	if limit := int64(32 * len(pattern)); per > limit {
		t.Fatalf("%d heap bytes per compiled pattern of %d bytes, want at most %d", per, len(pattern), limit)
	}
	runtime.KeepAlive(keep)
}
