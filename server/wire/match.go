package wire

import (
	"bytes"
	"cmp"
	"math"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"
	"unicode/utf8"
	"unsafe"
)

// Match reports whether a record value satisfies the query's filter, the
// way TopGun's server evaluates queries: the Predicate when set, else the
// Where clause, else everything matches. Values are in the package's value
// model (what Decode produces; other Go numeric kinds and []any/map[string]
// any trees also work). A value that is not a map matches only a query
// with neither Predicate nor Where. Match never panics and treats a malformed filter as no match.
//
// Where clause: each field (a top-level key, else a dotted path) must equal
// the given value, numbers comparing across int/float as in JavaScript. As
// an extension over TopGun's server, which only compares for equality, a
// value that is a map whose keys all start with "$" is an operator object:
// $eq, $ne, $gt, $gte, $lt, $lte, $in, $nin, $like, $regex, $exists (the
// form TopGun's own fixture uses, {"age": {"$gt": 18}}).
//
// Predicates: see PredicateOp. Attributes are dotted paths. eq/neq use the
// same equality; gt/gte/lt/lte compare numbers with numbers and strings
// with strings (byte-wise) and are false across kinds and for a query
// string that is not valid UTF-8 (as are between, startsWith and endsWith:
// TopGun's server reads such a string as bytes, which equality compares
// with a record's bytes, see valuesEqual); like is SQL LIKE
// (% and _, neither matching a newline, as in TopGun's regexp form),
// case-insensitive, anchored; regex is unanchored and case-sensitive,
// with the syntax and meaning of Rust's regex crate, which TopGun's server
// uses, run on Go's RE2 engine: \d \s \w (and \D \S \W) are Unicode-aware
// unless (?-u), \u escapes and the u and x flags work, and what the crate
// rejects matches nothing (see translateRegex for the full list). Four
// differences remain: \b and \B are ASCII word boundaries (Rust's are
// Unicode; they agree where both neighbouring characters are ASCII);
// nested negated brackets and the set operators && -- ~~ are not
// supported; the crate's word-start and word-end assertions (\< \>
// \b{start} \b{end} \b{start-half} \b{end-half}, since regex 1.10, which
// TopGun builds with) and its R flag (CRLF mode) cannot be expressed on
// RE2, so a pattern holding one matches nothing; \p{..} takes Go's names
// (general categories and scripts).
// A pattern longer than MaxPatternBytes matches nothing, as one that does
// not compile. A like/regex leaf with a ValueRef reads its pattern from
// each record, so it compiles per record what it has not met among the
// last patterns it keeps (at most refPatternCache, 32, of at most
// refCacheBytes together, which CompileLimit counts); a regex read so
// whose compiled program would take more than MaxRefPatternSize matches
// nothing, refused before it is compiled. in takes an array (a long one
// is looked up in a hash set, with the same equality) or, as on TopGun, a
// value that is not one, which an array attribute must hold; between
// takes [low, high] inclusive; containsAll/containsAny test an array
// attribute against an array, or (as TopGun) a value that is not one as a
// list of it; startsWith/endsWith test strings; isNull is true for a
// missing or nil attribute. and of no children is true, or of none is
// false, not of none is true. A ValueRef "data.path" reads the record itself; "auth.path" reads the auth value given to
// MatchAuth (Match has none, so such leaves are false).
func (q *Query) Match(value any) bool { return q.MatchAuth(value, nil) }

// MatchAuth is Match with an auth context (the caller's principal as a
// value tree) for predicates whose ValueRef starts with "auth.".
func (q *Query) MatchAuth(value, auth any) bool {
	if q == nil {
		return true
	}
	switch {
	case q.Predicate != nil:
		return q.Predicate.eval(value, auth, 0)
	case q.Where != nil:
		return matchWhere(q.Where, value, q.patterns, q.sets)
	}
	return true
}

// Eval evaluates the predicate against a record value and an optional auth
// context (nil when none).
func (p *Predicate) Eval(value, auth any) bool {
	if p == nil {
		return true
	}
	return p.eval(value, auth, 0)
}

// maxEvalDepth bounds recursion for predicate trees built in code (decoded
// ones are already bounded by Limits.MaxDepth).
const maxEvalDepth = 1000

func (p *Predicate) eval(data, auth any, depth int) bool {
	if p == nil || depth > maxEvalDepth {
		return false
	}
	switch p.Op {
	case OpAnd:
		for _, c := range p.Children {
			if !c.eval(data, auth, depth+1) {
				return false
			}
		}
		return true
	case OpOr:
		for _, c := range p.Children {
			if c.eval(data, auth, depth+1) {
				return true
			}
		}
		return false
	case OpNot:
		if len(p.Children) == 0 {
			return true
		}
		return !p.Children[0].eval(data, auth, depth+1)
	case OpIsNull, OpIsNotNull:
		if p.Attribute == "" {
			return false
		}
		v, ok := lookup(data, p.Attribute)
		isNull := !ok || v == nil
		return isNull == (p.Op == OpIsNull)
	}

	if p.Attribute == "" {
		return false
	}
	actual, ok := lookup(data, p.Attribute)
	if !ok {
		return false
	}
	var expected any
	if p.ValueRef != "" {
		ns, rest, _ := strings.Cut(p.ValueRef, ".")
		var root any
		switch ns {
		case "data":
			root = data
		case "auth":
			if auth == nil {
				return false
			}
			root = auth
		default:
			return false
		}
		if rest == "" {
			expected = root
		} else if expected, ok = lookup(root, rest); !ok {
			return false
		}
	} else {
		// An absent value (nil: MsgPack nil decodes as absent, as in
		// TopGun) leaves nothing to compare with. A ValueRef that names a
		// null field does: TopGun compares with the null (eq holds for a
		// null attribute, neq for any other value).
		if p.Value == nil {
			return false
		}
		expected = p.Value
	}

	switch p.Op {
	case OpEq:
		return valuesEqual(actual, expected)
	case OpNeq:
		return !valuesEqual(actual, expected)
	case OpGt, OpGte, OpLt, OpLte:
		c, ok := compareOrdered(actual, expected)
		return ok && cmpHolds(p.Op, c) && (p.ValueRef != "" || isText(expected))
	case OpLike, OpRegex:
		text, ok1 := actual.(string)
		pattern, ok2 := expected.(string)
		if !ok1 || !ok2 {
			return false
		}
		m := p.pattern(pattern)
		return m != nil && m.MatchString(text)
	case OpIn:
		list, ok := expected.([]any)
		if !ok {
			// As on TopGun's server, in with a value that is not a list
			// tests whether the attribute's array holds it (its DSL's
			// "tags contains 'vip'").
			arr, ok := actual.([]any)
			return ok && listContains(arr, expected, nil)
		}
		var set *valueSet
		if p.ValueRef == "" { // a list read from the record changes per record
			set = p.inSet(list)
		}
		return listContains(list, actual, set)
	case OpBetween:
		r, ok := expected.([]any)
		if !ok || len(r) != 2 {
			return false
		}
		lo, ok1 := compareOrdered(actual, r[0])
		hi, ok2 := compareOrdered(actual, r[1])
		return ok1 && ok2 && lo >= 0 && hi <= 0 && (p.ValueRef != "" || isText(r[0]) && isText(r[1]))
	case OpContainsAll, OpContainsAny:
		have, ok := actual.([]any)
		if !ok {
			return false
		}
		want, ok := expected.([]any)
		if !ok {
			// TopGun's server takes a value that is not a list as a list
			// of that one value.
			return containsMatch(have, []any{expected}, p.Op == OpContainsAll)
		}
		return containsMatch(have, want, p.Op == OpContainsAll)
	case OpStartsWith, OpEndsWith:
		s, ok1 := actual.(string)
		x, ok2 := expected.(string)
		if !ok1 || !ok2 {
			return false
		}
		if p.Op == OpStartsWith {
			return strings.HasPrefix(s, x) && (p.ValueRef != "" || isText(x))
		}
		return strings.HasSuffix(s, x) && (p.ValueRef != "" || isText(x))
	}
	return false
}

func cmpHolds(op PredicateOp, c int) bool {
	switch op {
	case OpGt:
		return c > 0
	case OpGte:
		return c >= 0
	case OpLt:
		return c < 0
	case OpLte:
		return c <= 0
	}
	return false
}

// pattern compiles (once per pattern) the matcher of a like/regex node. It
// returns nil for a pattern that does not compile.
func (p *Predicate) pattern(pattern string) textMatcher {
	if p.ValueRef != "" {
		return p.refPattern(pattern)
	}
	if c := p.re.Load(); c != nil && c.pattern == pattern && c.op == p.Op {
		return c.m
	}
	c := &compiledPattern{op: p.Op, pattern: pattern, m: compilePattern(p.Op, pattern)}
	p.re.Store(c)
	return c.m
}

// refPatternCache is how many patterns a like/regex node whose pattern is
// read from each record (ValueRef) keeps compiled, the most recently
// compiled first: enough that records sharing a few dozen patterns
// (rules or masks stored with the data) compile each once. It also
// bounds the work of a miss, which copies what is kept.
const refPatternCache = 32

// refCacheBytes bounds what such a node keeps (its patterns and their
// compiled size as compilePatternSize estimates it, about 1.5 KB for a
// short pattern, 14 KB for one holding \w); CompileLimit counts it for
// each such node, so that the memory of a live query holding them is
// bounded. A pattern larger than it is compiled for each record that
// holds it and not kept: four kept patterns of up to MaxRefPatternSize
// per node let a query of 100 such nodes hold 100 MB and count nothing.
const refCacheBytes = 64 << 10

// refEntryOverhead is what a kept pattern costs besides its string and
// compiled size (its compiledPattern, its slots in the cache's map and
// list).
const refEntryOverhead = 128

// MaxRefPatternSize bounds the compiled size of a regex pattern read from
// the record or the auth value (ValueRef), as estimated before it is
// compiled (regexSize): such a pattern may differ in every record, so it
// is compiled per record, and a 4 KB pattern can otherwise take half a
// second and 25 MB to compile. A larger one matches nothing, as one that
// does not compile. 256 KiB holds about twenty Unicode classes such as \w
// (each about 11 KB of rune ranges), and any pattern of literal runes and
// ASCII classes up to MaxPatternBytes; compiling it takes a few
// milliseconds.
const MaxRefPatternSize = 256 << 10

// refPatterns is what a ValueRef like/regex node keeps: at most
// refPatternCache patterns of at most refCacheBytes together (their
// cost), by pattern and in order, most recently compiled first. A stored
// refPatterns is never changed (copy on write), so lookups take no lock.
type refPatterns struct {
	byPattern map[string]*compiledPattern
	order     []*compiledPattern
}

// refPattern is pattern for a ValueRef node: a bounded cache of recent
// patterns, and compiled size bounded by MaxRefPatternSize, so matching
// one record costs at most one bounded compilation.
func (p *Predicate) refPattern(pattern string) textMatcher {
	cur := p.refs.Load()
	if cur != nil {
		if c := cur.byPattern[pattern]; c != nil && c.op == p.Op {
			return c.m
		}
	}
	limit := math.MaxInt
	if p.Op == OpRegex { // a like pattern compiles in linear time and space
		limit = MaxRefPatternSize
	}
	m, size := compilePatternSize(p.Op, pattern, limit)
	if size > limit {
		m = nil
	}
	cost := refEntryOverhead + len(pattern)
	if m != nil {
		cost += size
	}
	if cost > refCacheBytes {
		return m // compiled for this record only (see refCacheBytes)
	}
	// Copy on write, within both bounds, dropping the oldest: concurrent
	// evaluations may lose an entry to each other, never see a torn one.
	// Hits do not reorder, so they write nothing.
	c := &compiledPattern{op: p.Op, pattern: pattern, m: m, cost: cost}
	keep := []*compiledPattern{c}
	if cur != nil {
		total := cost
		for _, old := range cur.order {
			if len(keep) == refPatternCache || total+old.cost > refCacheBytes {
				break
			}
			if old.pattern == pattern { // kept for another op
				continue
			}
			total += old.cost
			keep = append(keep, old)
		}
	}
	next := &refPatterns{byPattern: make(map[string]*compiledPattern, len(keep)), order: keep}
	for _, k := range keep {
		next.byPattern[k.pattern] = k
	}
	p.refs.Store(next)
	return m
}

// inSet returns the set (built once per list) of a long in list, or nil.
func (p *Predicate) inSet(list []any) *valueSet {
	if len(list) < minSetLen {
		return nil
	}
	k := keyOf(list)
	if c := p.set.Load(); c != nil && c.key == k {
		return c.set
	}
	c := &compiledSet{key: k, set: newValueSet(list)}
	p.set.Store(c)
	return c.set
}

// textMatcher is a compiled like or regex pattern; it is safe for
// concurrent use.
type textMatcher interface {
	MatchString(s string) bool
}

// MaxPatternBytes bounds a like or regex pattern. A longer one does not
// compile and matches nothing, as an invalid one: compiling a 200 KB
// pattern takes about a second, and matching costs time in proportion to
// the pattern's size for every record a query reads.
const MaxPatternBytes = 4096

// maxTranslatedPatternBytes bounds a regex pattern after translation to
// Go's syntax (translateRegex), where \w becomes about 120 bytes and a
// negated Unicode class inside brackets, such as [^\W_], about 11 KB of
// ranges; a longer result matches nothing, as a pattern over
// MaxPatternBytes. At the bound compiling takes about 0.2 s.
const maxTranslatedPatternBytes = 256 << 10

// patternCompiles counts compilePattern calls, for tests that check
// patterns are compiled per query rather than per record.
var patternCompiles atomic.Uint64

// compilePattern returns nil (not a typed nil) for a pattern that does not
// compile.
func compilePattern(op PredicateOp, pattern string) textMatcher {
	m, _ := compilePatternSize(op, pattern, math.MaxInt)
	return m
}

// compilePatternSize is compilePattern that also returns an estimate of
// the memory the matcher holds. A regex's compiled program can take
// thousands of times its pattern's bytes (\pL is 1,400 rune ranges: a 4 KB
// pattern of them takes 7 MB; \w repeated, 25 MB and half a second), so
// its size is measured on a parse of its own before regexp compiles it,
// and a pattern whose program would take more than limit bytes is not
// compiled (nil, and a size over limit).
func compilePatternSize(op PredicateOp, pattern string, limit int) (textMatcher, int) {
	patternCompiles.Add(1)
	if len(pattern) > MaxPatternBytes {
		return nil, 0
	}
	if op == OpLike {
		if m := compileLike(pattern); m != nil {
			// Per pattern rune at most a token, a literal position and a
			// map entry; 1 KB of ASCII spans.
			return m, likeOverhead + likeBytesPerPatternByte*len(pattern)
		}
		return nil, 0
	}
	goPattern, err := translateRegex(pattern)
	if err != nil || len(goPattern) > maxTranslatedPatternBytes {
		return nil, 0
	}
	size := 0
	if limit < math.MaxInt {
		var ok bool
		if size, ok = regexSize(goPattern, limit); !ok {
			return nil, 0 // regexp would refuse it too
		}
		if size > limit {
			return nil, size
		}
	}
	re, err := regexp.Compile(goPattern)
	if err != nil {
		return nil, 0
	}
	return re, size
}

// Estimates of compiled memory (see compilePatternSize, setSize).
const (
	likeOverhead            = 1280
	likeBytesPerPatternByte = 48
	regexOverhead           = 1024 // the Regexp, its prefix and expression strings
	setOverhead             = 256
	setBytesPerElement      = 48 // a hash-table slot of a value, keys of the list's values shared
)

// regexSize estimates what regexp.Compile(goPattern) holds: the
// instructions of its program and the rune ranges they point to (shared
// between the copies of a repetition, and between the runes of a
// literal), as regexp compiles them. ok is false when the pattern does not
// compile. With a limit (below math.MaxInt), a pattern that cannot fit is
// told apart before the work of compiling it: by its length and the
// Unicode tables it names, which the parser copies into its classes, and
// then by the instructions its parsed repetitions expand to; the size
// returned is then a bound past limit, not the full estimate.
func regexSize(goPattern string, limit int) (int, bool) {
	n := regexOverhead + 2*len(goPattern)
	if limit < math.MaxInt {
		if pre := n + 4*tableRunes(goPattern); pre > limit {
			return pre, true
		}
	}
	re, err := syntax.Parse(goPattern, syntax.Perl)
	if err != nil {
		return 0, false
	}
	if limit < math.MaxInt {
		if insts := n + minInsts(re, 0)*int(unsafe.Sizeof(syntax.Inst{})); insts > limit {
			return insts, true
		}
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return 0, false
	}
	n += len(prog.Inst) * int(unsafe.Sizeof(syntax.Inst{}))
	// A rune slice may be a window on a larger array: the literal "abc"
	// compiles to three instructions holding [a], [b] and [c] of one
	// array. Count each array once, by where it ends, at its largest cap.
	arrays := map[*rune]int{}
	for i := range prog.Inst {
		r := prog.Inst[i].Rune
		if cap(r) == 0 {
			continue
		}
		end := &r[:cap(r)][cap(r)-1]
		arrays[end] = max(arrays[end], cap(r))
	}
	for _, c := range arrays {
		n += 4 * c
	}
	return n, true
}

// minInsts is a lower bound of the instructions syntax.Compile makes of
// re once simplified (counted repetitions expanded), saturating far past
// any limit.
func minInsts(re *syntax.Regexp, depth int) int {
	const most = 1 << 40
	if depth > maxEvalDepth {
		return most
	}
	subs := 0
	for _, s := range re.Sub {
		subs = min(subs+minInsts(s, depth+1), most)
	}
	switch re.Op {
	case syntax.OpLiteral:
		return max(len(re.Rune), 1)
	case syntax.OpCapture, syntax.OpStar, syntax.OpPlus, syntax.OpQuest:
		return subs + 1
	case syntax.OpRepeat:
		copies := re.Max
		if copies == 0 {
			return 1 // x{0} is the empty match
		}
		if copies < 0 {
			copies = max(re.Min, 1)
		}
		return min(subs*copies, most)
	case syntax.OpConcat, syntax.OpAlternate:
		return max(subs, 1)
	}
	return subs + 1
}

// tableRunes counts the runes of the Unicode tables a Go pattern names
// (\pL, \p{Greek}, \P{..}), as the parser copies them into its classes;
// a name it does not know counts as the largest table.
func tableRunes(goPattern string) int {
	sizes := unicodeTableRunes()
	n := 0
	for i := 0; i < len(goPattern); i++ {
		if goPattern[i] != '\\' || i+1 >= len(goPattern) {
			continue
		}
		i++
		if c := goPattern[i]; c != 'p' && c != 'P' || i+1 >= len(goPattern) {
			continue
		}
		name := goPattern[i+1 : i+2]
		if name == "{" {
			end := strings.IndexByte(goPattern[i+1:], '}')
			if end < 0 {
				continue
			}
			name = strings.TrimPrefix(goPattern[i+2:i+1+end], "^")
			i += end
		}
		i++
		if c, ok := sizes.byName[name]; ok {
			n += c
		} else {
			n += sizes.most
		}
	}
	return n
}

type tableSizes struct {
	byName map[string]int
	most   int
}

// unicodeTableRunes is the number of runes the parser makes of each table
// of unicode.Categories and unicode.Scripts (ranges of stride 1 are two
// runes, others two per member, adjacent ones merged).
var unicodeTableRunes = sync.OnceValue(func() tableSizes {
	count := func(t *unicode.RangeTable) int {
		n, last := 0, rune(-2)
		add := func(lo, hi rune) {
			if lo <= last+1 {
				last = max(last, hi)
				return
			}
			n += 2
			last = hi
		}
		each := func(lo, hi, stride rune) {
			if stride == 1 {
				add(lo, hi)
				return
			}
			for c := lo; c <= hi; c += stride {
				add(c, c)
			}
		}
		for _, r := range t.R16 {
			each(rune(r.Lo), rune(r.Hi), rune(r.Stride))
		}
		for _, r := range t.R32 {
			each(rune(r.Lo), rune(r.Hi), rune(r.Stride))
		}
		return n
	}
	s := tableSizes{byName: map[string]int{"Any": 2}}
	for _, m := range []map[string]*unicode.RangeTable{unicode.Categories, unicode.Scripts} {
		for name, t := range m {
			c := count(t)
			s.byName[name] = c
			s.most = max(s.most, c)
		}
	}
	return s
})

// setSize estimates what the valueSet of a list holds.
func setSize(list []any) int { return setOverhead + setBytesPerElement*len(list) }

// patternKey names a where-clause pattern: its operator and its text.
type patternKey struct {
	op      PredicateOp
	pattern string
}

// Compile compiles the $like and $regex patterns of the query's Where
// clause, and builds hash sets of its long $in/$nin lists, and keeps them
// with the query (and with copies of it made after the call), so Match
// neither compiles them again nor scans a list for every record. Call it
// once the query is built, before matching, and again after changing Where
// (including the elements of a list in it); Match compiles a pattern, and
// scans a list, Compile has not seen on every call. Predicate nodes need
// no Compile: each keeps its own compiled pattern and in set, built on
// first use (change a node's Value by assigning a new list, not by
// writing into the old one). Compile is
// not safe for concurrent use with Match on the same Query.
func (q *Query) Compile() {
	q.compile(math.MaxInt, false)
}

// CompileLimit is Compile that also prepares the patterns and long in
// lists of the Predicate tree's nodes (those that compare with a Value, not
// a ValueRef; identical patterns share one matcher), and counts what all
// of them take in memory, an estimate, with what each like/regex node
// with a ValueRef may keep of the patterns it reads from records
// (refCacheBytes, 64 KiB). It returns the count; ok is false,
// and the count past limit, as soon as it passes limit, before anything
// more is compiled: such a query still matches correctly, compiling the
// rest on use, but a server holding it should drop it. A regex pattern
// takes up to thousands of times its length once compiled (see
// MaxPatternBytes), so this is what bounds the memory of a query beyond
// its decoded size (Limits.DecodeSize).
func (q *Query) CompileLimit(limit int) (size int, ok bool) {
	return q.compile(limit, true)
}

func (q *Query) compile(limit int, tree bool) (int, bool) {
	if q == nil {
		return 0, true
	}
	q.patterns = nil
	q.sets = nil
	size := 0
	add := func(n int) bool {
		size += n
		return size <= limit
	}
	for _, want := range q.Where {
		ops, ok := operatorObject(want)
		if !ok {
			continue
		}
		for op, arg := range ops {
			if list, isList := arg.([]any); isList && (op == "$in" || op == "$nin") && len(list) >= minSetLen {
				if !add(setSize(list)) {
					return size, false
				}
				if q.sets == nil {
					q.sets = map[listKey]*valueSet{}
				}
				q.sets[keyOf(list)] = newValueSet(list)
				continue
			}
			kind, isPattern := patternOps[op]
			pat, isString := arg.(string)
			if !isPattern || !isString {
				continue
			}
			k := patternKey{kind, pat}
			if _, done := q.patterns[k]; done {
				continue
			}
			m, n := compilePatternSize(kind, pat, max(limit-size, 0))
			if !add(n) {
				return size, false
			}
			if q.patterns == nil {
				q.patterns = map[patternKey]textMatcher{}
			}
			q.patterns[k] = m
		}
	}
	if !tree || q.Predicate == nil {
		return size, true
	}
	shared := map[patternKey]*compiledPattern{}
	var walk func(p *Predicate, depth int) bool
	walk = func(p *Predicate, depth int) bool {
		if p == nil || depth > maxEvalDepth {
			return true
		}
		for _, c := range p.Children {
			if !walk(c, depth+1) {
				return false
			}
		}
		if p.ValueRef != "" {
			// Patterns read from records are compiled on use; what
			// the node keeps of them is bounded (refCacheBytes).
			if p.Op == OpLike || p.Op == OpRegex {
				return add(refCacheBytes)
			}
			return true
		}
		switch p.Op {
		case OpLike, OpRegex:
			pat, isString := p.Value.(string)
			if !isString {
				return true
			}
			k := patternKey{p.Op, pat}
			c := shared[k]
			if c == nil {
				m, n := compilePatternSize(p.Op, pat, max(limit-size, 0))
				if !add(n) {
					return false
				}
				c = &compiledPattern{op: p.Op, pattern: pat, m: m}
				shared[k] = c
			}
			p.re.Store(c)
		case OpIn:
			if list, isList := p.Value.([]any); isList && len(list) >= minSetLen {
				if !add(setSize(list)) {
					return false
				}
				p.set.Store(&compiledSet{key: keyOf(list), set: newValueSet(list)})
			}
		}
		return true
	}
	ok := walk(q.Predicate, 0)
	return size, ok
}

// patternOps maps the where-clause pattern operators to their kind.
var patternOps = map[string]PredicateOp{"$like": OpLike, "$regex": OpRegex}

func matchWhere(where map[string]any, data any, patterns map[patternKey]textMatcher, sets map[listKey]*valueSet) bool {
	if _, ok := data.(map[string]any); !ok {
		return false
	}
	for field, want := range where {
		got, ok := lookup(data, field)
		if ops, isOps := operatorObject(want); isOps {
			if !matchOperators(ops, got, ok, patterns, sets) {
				return false
			}
			continue
		}
		if !ok || !valuesEqual(got, want) {
			return false
		}
	}
	return true
}

// operatorObject reports whether v is {"$op": operand, ...}.
func operatorObject(v any) (map[string]any, bool) {
	m, ok := v.(map[string]any)
	if !ok || len(m) == 0 {
		return nil, false
	}
	for k := range m {
		if !strings.HasPrefix(k, "$") {
			return nil, false
		}
	}
	return m, true
}

func matchOperators(ops map[string]any, got any, present bool, patterns map[patternKey]textMatcher, sets map[listKey]*valueSet) bool {
	for op, arg := range ops {
		if op == "$exists" {
			want, _ := arg.(bool)
			if present != want {
				return false
			}
			continue
		}
		if !present {
			return false
		}
		var ok bool
		switch op {
		case "$eq":
			ok = valuesEqual(got, arg)
		case "$ne", "$neq":
			ok = !valuesEqual(got, arg)
		case "$gt", "$gte", "$lt", "$lte":
			c, comparable := compareOrdered(got, arg)
			ok = comparable && cmpHolds(PredicateOp(op[1:]), c) && isText(arg)
		case "$in", "$nin":
			list, isList := arg.([]any)
			ok = isList && listContains(list, got, sets[keyOf(list)]) == (op == "$in")
		case "$like", "$regex":
			s, ok1 := got.(string)
			pat, ok2 := arg.(string)
			if ok1 && ok2 {
				k := patternKey{patternOps[op], pat}
				m, compiled := patterns[k]
				if !compiled {
					m = compilePattern(k.op, pat)
				}
				ok = m != nil && m.MatchString(s)
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// lookup finds field in a map value: the key itself first, else a dotted
// path through nested maps.
func lookup(v any, field string) (any, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, false
	}
	if x, ok := m[field]; ok {
		return x, true
	}
	if !strings.Contains(field, ".") {
		return nil, false
	}
	cur := v
	for seg := range strings.SplitSeq(field, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[seg]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// number is a numeric value kept exact for integers.
type number struct {
	isFloat bool
	neg     bool    // integer sign
	mag     uint64  // integer magnitude
	f       float64 // value as float64
}

func toNumber(v any) (number, bool) {
	switch x := v.(type) {
	case int64:
		return intNumber(x), true
	case int:
		return intNumber(int64(x)), true
	case int32:
		return intNumber(int64(x)), true
	case int16:
		return intNumber(int64(x)), true
	case int8:
		return intNumber(int64(x)), true
	case uint64:
		return number{mag: x, f: float64(x)}, true
	case uint:
		return number{mag: uint64(x), f: float64(x)}, true
	case uint32:
		return number{mag: uint64(x), f: float64(x)}, true
	case uint16:
		return number{mag: uint64(x), f: float64(x)}, true
	case uint8:
		return number{mag: uint64(x), f: float64(x)}, true
	case float64:
		return number{isFloat: true, f: x}, true
	case float32:
		return number{isFloat: true, f: float64(x)}, true
	}
	return number{}, false
}

func intNumber(i int64) number {
	if i < 0 {
		return number{neg: true, mag: uint64(-(i + 1)) + 1, f: float64(i)}
	}
	return number{mag: uint64(i), f: float64(i)}
}

// compareNumbers compares exactly when both are integers, else as float64.
// ok is false when a NaN is involved.
func compareNumbers(a, b number) (int, bool) {
	if a.isFloat || b.isFloat {
		if math.IsNaN(a.f) || math.IsNaN(b.f) {
			return 0, false
		}
		return cmp.Compare(a.f, b.f), true
	}
	switch {
	case a.neg && !b.neg:
		return -1, true
	case !a.neg && b.neg:
		return 1, true
	case a.neg:
		return cmp.Compare(b.mag, a.mag), true
	}
	return cmp.Compare(a.mag, b.mag), true
}

// isText is false for a string that is not valid UTF-8, true for any
// other value. TopGun's server decodes such a string of a query as bytes,
// which gt/gte/lt/lte, between, startsWith and endsWith never match, so
// they ask it of the query's own operand once its bytes would match. The
// strings of records (and what a ValueRef reads from one) are not checked,
// which would read each whole string: the server stores a string that is
// not valid UTF-8 as "" and refuses one read back from storage.
func isText(v any) bool {
	s, ok := v.(string)
	return !ok || utf8.ValidString(s)
}

// stringIsBytes reports whether s, a string that is not valid UTF-8, holds
// b. TopGun's server decodes such a string of a query as bytes (rmp-serde
// hands them to rmpv, which keeps them as Binary), and so finds it equal
// to a record's bytes (eq, neq, in, containsAll/containsAny and the where
// clause, at any depth); a record's strings are valid UTF-8 (isText), so
// it equals none of them. Only a string meeting bytes comes here, and the
// string is read for validity only when its bytes are theirs.
func stringIsBytes(s string, b []byte) bool {
	return s == string(b) && !utf8.ValidString(s)
}

// compareOrdered compares numbers with numbers and strings with strings.
func compareOrdered(a, b any) (int, bool) {
	if na, ok := toNumber(a); ok {
		if nb, ok := toNumber(b); ok {
			return compareNumbers(na, nb)
		}
		return 0, false
	}
	if sa, ok := a.(string); ok {
		if sb, ok := b.(string); ok {
			return strings.Compare(sa, sb), true
		}
	}
	return 0, false
}

// valuesEqual is TopGun's equality: numbers across int/float, then strings,
// booleans, nil, bytes, and structural equality for arrays and maps. A
// string that is not valid UTF-8 equals the bytes it holds (stringIsBytes).
func valuesEqual(a, b any) bool {
	return valuesEqualDepth(a, b, 0)
}

func valuesEqualDepth(a, b any, depth int) bool {
	return equalDepth(a, b, depth, false)
}

// equalDepth is valuesEqualDepth, or with canon canonEqual: big numbers
// (isBig) equal only numbers of their kind (integer or float), so that two
// values it finds equal are equal by valuesEqual to the same values.
func equalDepth(a, b any, depth int, canon bool) bool {
	if depth > maxEvalDepth {
		return false
	}
	if na, ok := toNumber(a); ok {
		nb, ok := toNumber(b)
		if !ok {
			return false
		}
		if canon && isBig(na) && na.isFloat != nb.isFloat {
			return false
		}
		c, ok := compareNumbers(na, nb)
		return ok && c == 0
	}
	switch x := a.(type) {
	case nil:
		return b == nil
	case string:
		switch y := b.(type) {
		case string:
			return x == y
		case []byte:
			return stringIsBytes(x, y)
		}
		return false
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case []byte:
		switch y := b.(type) {
		case []byte:
			return bytes.Equal(x, y)
		case string:
			return stringIsBytes(y, x)
		}
		return false
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equalDepth(x[i], y[i], depth+1, canon) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, xv := range x {
			yv, ok := y[k]
			if !ok || !equalDepth(xv, yv, depth+1, canon) {
				return false
			}
		}
		return true
	}
	return false
}

// Compare orders two results by the query's sort fields and returns -1, 0
// or +1. Numbers compare with numbers (across int and float, exactly), strings
// byte-wise, false before true; across kinds numbers come before strings,
// strings before booleans, and booleans before everything else (nil,
// arrays, maps, binary), which tie. Desc reverses that order. A missing
// field sorts last in either direction. The key (ascending) breaks ties, so
// the order is total and deterministic. (TopGun's server sorts by the first
// sort field only and leaves values of different kinds unordered.)
func (q *Query) Compare(a, b QueryResult) int {
	if q != nil {
		for _, s := range q.Sort {
			va, oka := lookup(a.Value, s.Field)
			vb, okb := lookup(b.Value, s.Field)
			switch {
			case !oka && !okb:
				continue
			case !oka:
				return 1
			case !okb:
				return -1
			}
			c := sortCompare(va, vb)
			if c == 0 {
				continue
			}
			if s.Direction == Desc {
				return -c
			}
			return c
		}
	}
	return strings.Compare(a.Key, b.Key)
}

// sortCompare is the total order of sort values described at Compare.
func sortCompare(a, b any) int {
	ra, rb := sortRank(a), sortRank(b)
	if ra != rb {
		return cmp.Compare(ra, rb)
	}
	switch ra {
	case 0:
		na, _ := toNumber(a)
		nb, _ := toNumber(b)
		c, ok := compareExact(na, nb)
		if !ok { // NaN sorts after every other number
			return cmp.Compare(boolInt(math.IsNaN(na.f)), boolInt(math.IsNaN(nb.f)))
		}
		return c
	case 1:
		return strings.Compare(a.(string), b.(string))
	case 2:
		return cmp.Compare(boolInt(a.(bool)), boolInt(b.(bool)))
	}
	return 0
}

// compareExact is compareNumbers without rounding an integer compared
// with a float: rounded, 2^60-1 and 2^60+1 both equal 2^60.0, and an
// order that is not transitive gives a limited live query a result that
// depends on the order of the writes. ok is false when a NaN is involved.
func compareExact(a, b number) (int, bool) {
	if a.isFloat == b.isFloat {
		return compareNumbers(a, b)
	}
	if a.isFloat {
		c, ok := compareExact(b, a)
		return -c, ok
	}
	if math.IsNaN(b.f) {
		return 0, false
	}
	// Rounding to nearest keeps order: an integer and a float that differ
	// once it is rounded compare as they do then.
	if c := cmp.Compare(a.f, b.f); c != 0 {
		return c, true
	}
	// b equals a rounded: a whole number in [-2^63, 2^64].
	if b.f >= 1<<64 {
		return -1, true
	}
	bi := number{neg: b.f < 0}
	if bi.neg {
		bi.mag = uint64(-b.f)
	} else {
		bi.mag = uint64(b.f)
	}
	return compareNumbers(a, bi)
}

func sortRank(v any) int {
	if _, ok := toNumber(v); ok {
		return 0
	}
	switch v.(type) {
	case string:
		return 1
	case bool:
		return 2
	}
	return 3
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// SortResults sorts results in place by Compare.
func (q *Query) SortResults(results []QueryResult) {
	slices.SortFunc(results, q.Compare)
}

// Apply filters entries with Match, sorts them with Compare and applies the
// limit: the initial result set of a live query. entries is not modified.
// Cursors and aggregation are not evaluated here.
func (q *Query) Apply(entries []QueryResult) []QueryResult {
	out := make([]QueryResult, 0, len(entries))
	for _, e := range entries {
		if q.Match(e.Value) {
			out = append(out, e)
		}
	}
	q.SortResults(out)
	if q != nil && q.Limit != nil && int64(len(out)) > int64(*q.Limit) {
		out = out[:*q.Limit]
	}
	return out
}
