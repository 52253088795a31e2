package abitest

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/topgun-go/topgun/abi"
)

func testScanEmpty(t TB, h Harness) {
	be := open(t, h)
	for _, lim := range []int{0, 1, 7} {
		if recs := scanAll(t, be, "missing", false, lim, 0); len(recs) != 0 {
			t.Errorf("Scan of a missing map returned %d records; want none", len(recs))
		}
	}
	putRecs(t, be, t0, rec("m", "a", false, "1", 0, 0, 0), rec("m", "b", false, "2", 0, 0, 0))
	if recs := scanAll(t, be, "m", true, 0, 0); len(recs) != 0 {
		t.Errorf("Scan of the backup side of a primary-only map returned %s; want nothing", fmtRec(recs[0]))
	}
	b := &abi.Batch{Now: t0 + 1}
	b.Delete("m", "a", false)
	b.Delete("m", "b", false)
	apply(t, be, b)
	for _, lim := range []int{0, 1} {
		if recs := scanAll(t, be, "m", false, lim, 0); len(recs) != 0 {
			t.Errorf("Scan of a map whose records were all deleted returned %s; want nothing", fmtRec(recs[0]))
		}
	}
}

// orderKeys are keys whose byte order differs from most collations: case,
// punctuation, digits as text, combining characters, multi-byte runes.
var orderKeys = []string{
	"b", "a", "", "ab", "a b", "a-b", "a_b", "A", "B", "Z", "~", "é", "e\u0301", "e", "f",
	"ключ", "Ключ", "😀", "\ufeff", "10", "9", "09", "a\x01", "\x7f", "zz", "z", " ", "a ", "%", "_",
}

func testScanOrder(t TB, h Harness) {
	be := open(t, h)
	var recs []abi.Record
	for i, k := range orderKeys {
		recs = append(recs, rec("m", k, false, fmt.Sprintf("v%d", i), 0, t0, t0))
	}
	putRecs(t, be, t0, recs...)
	want := append([]abi.Record(nil), recs...)
	sort.Slice(want, func(i, j int) bool { return want[i].Key < want[j].Key })
	first := scanAll(t, be, "m", false, 0, 0)
	if d := diffRecords(first, want); d != "" {
		t.Fatalf("Scan in byte order of keys: %s\ngot keys  %s\nwant keys %s", d, qs(keysOf(first)), qs(keysOf(want)))
	}
	for _, lim := range []int{-1, 1, 4} {
		if d := diffRecords(scanAll(t, be, "m", false, lim, -1), want); d != "" {
			t.Errorf("Scan(limit=%d) is not the same sequence as a full scan: %s", lim, d)
		}
	}
	// A cursor can be used twice: the same page comes back.
	ctx := ctxOf(t)
	p1, err := be.Scan(ctx, abi.ScanRequest{Map: "m", Limit: 3})
	if err != nil || len(p1.Cursor) == 0 {
		t.Fatalf("Scan(limit=3) = %d records, cursor %q, %v; want 3 records and a cursor", len(p1.Records), p1.Cursor, err)
	}
	a, errA := be.Scan(ctx, abi.ScanRequest{Map: "m", Cursor: p1.Cursor, Limit: 5})
	b, errB := be.Scan(ctx, abi.ScanRequest{Map: "m", Cursor: p1.Cursor, Limit: 5})
	if errA != nil || errB != nil {
		t.Fatalf("Scan from a cursor = %v, %v; want nil", errA, errB)
	}
	if d := diffRecords(a.Records, b.Records); d != "" {
		t.Errorf("Scan from the same cursor twice gave different pages: %s", d)
	}
	if d := diffRecords(a.Records, want[3:8]); d != "" {
		t.Errorf("Scan from the cursor after the first 3 records: %s", d)
	}
}

// pagingRecords builds n records with keys and values of varied sizes.
func pagingRecords(mapName string, backup bool, n int, now int64) []abi.Record {
	var recs []abi.Record
	for i := 0; i < n; i++ {
		key := fmt.Sprintf("key-%03d%s", i, strings.Repeat("k", i%5))
		recs = append(recs, abi.Record{Map: mapName, Key: key, Backup: backup, Value: pattern(i%13, byte(i)), CreatedAt: now, UpdatedAt: now})
	}
	return recs
}

func testScanPaging(t TB, h Harness) {
	be := open(t, h)
	want := pagingRecords("m", false, 50, t0)
	putRecs(t, be, t0, want...)
	putRecs(t, be, t0, pagingRecords("m2", false, 5, t0)...) // a neighbour map that must not leak in
	for _, lim := range []int{1, 2, 7, 0} {
		for _, budget := range []int{0, 1, 12, 40, 100} {
			got := scanAll(t, be, "m", false, lim, budget)
			if d := diffRecords(got, want); d != "" {
				t.Errorf("Scan(limit=%d, budget=%d) did not visit every record exactly once in key order: %s", lim, budget, d)
			}
		}
	}
}

func testScanLargeRecord(t TB, h Harness) {
	be := open(t, h)
	want := []abi.Record{
		rec("m", "a", false, "tiny", 0, t0, t0),
		rec("m", "b", false, strings.Repeat("B", 100), 0, t0, t0),
		rec("m", "c", false, "tiny", 0, t0, t0),
		rec("m", "d", false, strings.Repeat("D", 200), 0, t0, t0),
		rec("m", "e", false, strings.Repeat("E", 60), 0, t0, t0),
		rec("m", "f", false, "", 0, t0, t0),
	}
	putRecs(t, be, t0, want...)
	putRecs(t, be, t0, rec("first-large", "a", false, strings.Repeat("A", 500), 0, t0, t0), rec("first-large", "b", false, "b", 0, t0, t0))
	for _, budget := range []int{1, 10, 50, 150, 1000} {
		for _, lim := range []int{0, 2} {
			// scanAll fails a page that holds a record larger than the budget
			// together with another one.
			if d := diffRecords(scanAll(t, be, "m", false, lim, budget), want); d != "" {
				t.Errorf("Scan(limit=%d, budget=%d): %s", lim, budget, d)
			}
		}
	}
	p, err := be.Scan(ctxOf(t), abi.ScanRequest{Map: "first-large", MaxBytes: 10})
	if err != nil {
		t.Fatalf("Scan(budget=10) = %v; want nil", err)
	}
	if len(p.Records) != 1 || p.Records[0].Key != "a" || len(p.Cursor) == 0 {
		t.Errorf("Scan(budget=10) of a map whose first record is 501 bytes = %d records, cursor %q; want that record alone and a cursor", len(p.Records), p.Cursor)
	}
}

// checkHarmlessPage checks the answer to a scan with a cursor the backend did
// not issue for this map: an invalid argument, or a valid page of the map.
func checkHarmlessPage(t TB, desc string, p abi.Page, err error, mapName string, backup bool, stored map[string]abi.Record) {
	t.Helper()
	if err != nil {
		if !errors.Is(err, abi.ErrInvalidArgument) {
			t.Errorf("%s = %v; want a page or an error with CodeInvalidArgument", desc, err)
		}
		return
	}
	for i, r := range p.Records {
		want, ok := stored[r.Key]
		if r.Map != mapName || r.Backup != backup || !ok || !sameRecord(r, want) {
			t.Errorf("%s returned %s, which is not a record of map %s (backup=%v)", desc, fmtRec(r), q(mapName), backup)
			return
		}
		if i > 0 && r.Key <= p.Records[i-1].Key {
			t.Errorf("%s returned key %s after %s; want strictly increasing keys", desc, q(r.Key), q(p.Records[i-1].Key))
			return
		}
	}
}

func testScanCursor(t TB, h Harness) {
	be := open(t, h)
	ctx := ctxOf(t)
	side := func(m string, backup bool, n int) map[string]abi.Record {
		out := map[string]abi.Record{}
		var recs []abi.Record
		for i := 1; i <= n; i++ {
			r := rec(m, fmt.Sprintf("k%d", i), backup, fmt.Sprintf("%s/%v/%d", m, backup, i), 0, t0, t0)
			recs = append(recs, r)
			out[r.Key] = r
		}
		putRecs(t, be, t0, recs...)
		return out
	}
	side("A", false, 6)
	storedB := side("B", false, 6)
	storedAb := side("A", true, 3)
	p, err := be.Scan(ctx, abi.ScanRequest{Map: "A", Limit: 2})
	if err != nil || len(p.Cursor) == 0 {
		t.Fatalf("Scan(\"A\", limit=2) = %d records, cursor %q, %v; want 2 records and a cursor", len(p.Records), p.Cursor, err)
	}
	pb, err := be.Scan(ctx, abi.ScanRequest{Map: "B", Cursor: p.Cursor})
	checkHarmlessPage(t, "Scan of map \"B\" with a cursor from map \"A\"", pb, err, "B", false, storedB)
	pb, err = be.Scan(ctx, abi.ScanRequest{Map: "A", Backup: true, Cursor: p.Cursor})
	checkHarmlessPage(t, "Scan of the backup side with a cursor from the primary side", pb, err, "A", true, storedAb)

	garbage := [][]byte{
		{0}, {0xff, 0xfe, 0xfd}, []byte("garbage"), []byte("k\xff"), []byte("\x00k1"),
		pattern(5000, 9), []byte("k" + strings.Repeat("z", 3000)), []byte(strings.Repeat("\xff", 64)),
	}
	for _, c := range garbage {
		desc := fmt.Sprintf("Scan of map \"B\" with the garbage cursor %s", fmtValue(c))
		page, err := be.Scan(ctx, abi.ScanRequest{Map: "B", Cursor: c, Limit: 2})
		checkHarmlessPage(t, desc, page, err, "B", false, storedB)
		// If the backend took the cursor, paging on from its answer is harmless too.
		for i := 0; err == nil && len(page.Cursor) > 0 && i < 10; i++ {
			page, err = be.Scan(ctx, abi.ScanRequest{Map: "B", Cursor: page.Cursor, Limit: 2})
			checkHarmlessPage(t, desc+" (next page)", page, err, "B", false, storedB)
		}
	}
	// The backend still works.
	if got := scanAll(t, be, "B", false, 0, 0); len(got) != len(storedB) {
		t.Errorf("Scan of map \"B\" after garbage cursors returned %d records; want %d", len(got), len(storedB))
	}
}

func testScanBackup(t TB, h Harness) {
	be := open(t, h)
	var primary, backup []abi.Record
	for i := 1; i <= 5; i++ {
		primary = append(primary, rec("m", fmt.Sprintf("k%d", i), false, fmt.Sprintf("primary %d", i), 0, t0, t0))
	}
	for i := 3; i <= 8; i++ {
		backup = append(backup, rec("m", fmt.Sprintf("k%d", i), true, fmt.Sprintf("backup %d", i), int64(i), t0, t0))
	}
	putRecs(t, be, t0, append(append([]abi.Record(nil), primary...), backup...)...)
	for _, lim := range []int{0, 2} {
		if d := diffRecords(scanAll(t, be, "m", false, lim, 0), primary); d != "" {
			t.Errorf("Scan(primary, limit=%d): %s", lim, d)
		}
		if d := diffRecords(scanAll(t, be, "m", true, lim, 0), backup); d != "" {
			t.Errorf("Scan(backup, limit=%d): %s", lim, d)
		}
	}
}

func testScanWritesBetweenPages(t TB, h Harness) {
	be := open(t, h)
	ctx := ctxOf(t)
	const n = 40
	initial := map[string]abi.Record{}
	ever := map[string]bool{}
	var recs []abi.Record
	for i := 0; i < n; i++ {
		r := rec("m", fmt.Sprintf("k%02d", i), false, fmt.Sprintf("v%d", i), 0, t0, t0)
		recs = append(recs, r)
		initial[r.Key] = r
		ever[r.Key] = true
	}
	putRecs(t, be, t0, recs...)
	deleted := map[string]bool{}
	p := newPager(ctx, be, "m", false, scanOpts{limit: 3, maxPages: 200})
	next := 1
	for round := 0; !p.done; round++ {
		if _, err := p.next(); err != nil {
			t.Fatalf("with writes between pages: %v", err)
		}
		// Between pages: delete two of the initial records (some behind
		// the cursor, some ahead of it), and insert new records behind and
		// ahead of the cursor.
		b := &abi.Batch{Now: t0 + int64(round) + 1}
		for j := 0; j < 2 && next < n; j++ {
			k := fmt.Sprintf("k%02d", next)
			b.Delete("m", k, false)
			deleted[k] = true
			next += 4
		}
		for _, k := range []string{fmt.Sprintf("k%02d-new%d", round%n, round), fmt.Sprintf("k%02d-new%d", (round*7)%n, round), fmt.Sprintf("zz-new%d", round)} {
			b.Put("m", k, false, []byte("new"), 0)
			ever[k] = true
		}
		apply(t, be, b)
	}
	seen := map[string]bool{}
	for _, r := range p.out {
		seen[r.Key] = true
		if want, ok := initial[r.Key]; ok {
			if !sameRecord(r, want) {
				t.Errorf("Scan with writes between pages returned %s; want %s", fmtRec(r), fmtRec(want))
			}
		} else if !ever[r.Key] || string(r.Value) != "new" {
			t.Errorf("Scan with writes between pages returned %s, which was never written", fmtRec(r))
		}
	}
	for k := range initial {
		if !deleted[k] && !seen[k] {
			t.Errorf("Scan with writes between pages never visited %s, which was present for the whole scan", q(k))
		}
	}
	if len(deleted) < 4 {
		t.Errorf("internal: the scan ended after deleting only %d records; the case tests too little", len(deleted))
	}
	// The record a cursor names may be deleted before the next page: the
	// scan resumes at the first key after it. A backend that seeks to the
	// cursor's key and then always steps once skips that record.
	var five []abi.Record
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		five = append(five, rec("c", k, false, "v"+k, 0, t0, t0))
	}
	putRecs(t, be, t0, five...)
	p1, err := be.Scan(ctx, abi.ScanRequest{Map: "c", Limit: 2})
	if err != nil || len(p1.Records) == 0 || len(p1.Cursor) == 0 {
		t.Fatalf("Scan(\"c\", limit=2) = %d records, cursor %q, %v; want records and a cursor", len(p1.Records), p1.Cursor, err)
	}
	last := p1.Records[len(p1.Records)-1].Key
	rest := five[len(p1.Records):] // the records after last
	b := &abi.Batch{Now: t0 + 1_000}
	b.Delete("c", last, false)
	apply(t, be, b)
	p2, err := be.Scan(ctx, abi.ScanRequest{Map: "c", Cursor: p1.Cursor, Limit: 2})
	if err != nil {
		t.Fatalf("Scan(\"c\") from a cursor whose record was deleted = %v; want nil", err)
	}
	if n := len(p2.Records); n == 0 || n > len(rest) || diffRecords(p2.Records, rest[:n]) != "" {
		t.Errorf("Scan(\"c\", limit=2) from the cursor after %s, deleted since, returned keys %s; want the records from %s on (the next page starts at the first key after the cursor's, whether or not its record still exists)", q(last), qs(keysOf(p2.Records)), q(rest[0].Key))
	}
}

func testScanInvalid(t TB, h Harness) {
	be := open(t, h)
	ctx := ctxOf(t)
	for _, tc := range []struct{ name, m string }{
		{"empty map name", ""},
		{"map name too long", strings.Repeat("m", abi.MaxMapNameBytes+1)},
		{"multi-byte map name too long", strings.Repeat("я", abi.MaxMapNameBytes/2) + "x"},
		{"map name not UTF-8", "\xff"},
		{"NUL in map name", "m\x00"},
	} {
		p, err := be.Scan(ctx, abi.ScanRequest{Map: tc.m})
		if !errors.Is(err, abi.ErrInvalidArgument) {
			t.Errorf("Scan with %s = %d records, %v; want an error with CodeInvalidArgument", tc.name, len(p.Records), err)
		}
	}
}

// weirdNames are map names (and keys) that break naive backends: path and
// SQL syntax, LIKE wildcards, the backup naming scheme, case, spaces,
// normalization, multi-byte runes and the size limit.
func weirdNames() []string {
	return []string{
		"todo-items", "a/b", "ключ", "with space", "a:b:c", "map__x__backup", "$sys/x",
		"'; DROP TABLE x; --", "😀🚀", "%", "_", `a\b`, `"quoted"`, "tab\there", "x\x01y",
		"A", "a", "a ", "é", "e\u0301", ".", "..",
		strings.Repeat("n", abi.MaxMapNameBytes), strings.Repeat("я", abi.MaxMapNameBytes/2),
	}
}

// weirdKeys are keys that break naive backends, including the empty key and
// keys at the size limit.
func weirdKeys() []string {
	keys := append(weirdNames(), "", "k", "*", "?", "[a-z]", "/", "null", "NULL", "\u00a0", "\ufeff", "\u200b",
		strings.Repeat("k", abi.MaxKeyBytes), strings.Repeat("ключ", abi.MaxKeyBytes/8))
	seen := map[string]bool{}
	out := keys[:0]
	for _, k := range keys {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

func testNamesWeird(t TB, h Harness) {
	be := open(t, h)
	ctx := ctxOf(t)
	names, keys := weirdNames(), weirdKeys()
	want := map[string][]abi.Record{} // by map, in the order of keys
	b := &abi.Batch{Now: t0}
	for mi, m := range names {
		for ki, k := range keys {
			exp := int64(0)
			if k == "" {
				exp = t0 + 1
			}
			r := rec(m, k, false, fmt.Sprintf("m%d/k%d", mi, ki), exp, t0, t0)
			want[m] = append(want[m], r)
			b.Put(m, k, false, r.Value, exp)
		}
	}
	apply(t, be, b)
	for _, m := range names {
		if d := diffRecords(get(t, be, m, false, keys...), want[m]); d != "" {
			t.Errorf("Get(%s, every weird key): %s", q(m), d)
		}
		for _, r := range want[m] {
			mustHave(t, be, r)
		}
		sorted := append([]abi.Record(nil), want[m]...)
		sort.Slice(sorted, func(i, j int) bool { return sorted[i].Key < sorted[j].Key })
		if d := diffRecords(scanAll(t, be, m, false, 7, 0), sorted); d != "" {
			t.Errorf("Scan(%s): %s", q(m), d)
		}
		if got := scanAll(t, be, m, true, 0, 0); len(got) != 0 {
			t.Errorf("Scan(%s, backup) returned %s; want nothing", q(m), fmtRec(got[0]))
		}
		if t.Failed() {
			return
		}
	}
	sortedNames := append([]string(nil), names...)
	sort.Strings(sortedNames)
	if maps, err := be.ListMaps(ctx); err != nil || !equalStrings(maps, sortedNames) {
		t.Errorf("ListMaps() = %s, %v; want %s", qs(maps), err, qs(sortedNames))
	}
	exp, err := listExpiredAll(ctx, be, t0+1)
	if err != nil {
		t.Fatalf("%v", err)
	}
	var wantExp []abi.Record
	for _, m := range names {
		wantExp = append(wantExp, abi.Record{Map: m, Key: "", ExpirationTime: t0 + 1, CreatedAt: t0, UpdatedAt: t0})
	}
	sortExpired(wantExp)
	if d := diffRecords(exp, wantExp); d != "" {
		t.Errorf("ListExpired with weird map names: %s", d)
	}
	b = &abi.Batch{Now: t0 + 1}
	for _, m := range names {
		for _, k := range keys {
			b.Delete(m, k, false)
		}
	}
	apply(t, be, b)
	for _, m := range names {
		if got := get(t, be, m, false, keys...); len(got) != 0 {
			t.Errorf("Get(%s) after deleting every key returned %s; want nothing", q(m), fmtRec(got[0]))
		}
		if got := scanAll(t, be, m, false, 0, 0); len(got) != 0 {
			t.Errorf("Scan(%s) after deleting every key returned %s; want nothing", q(m), fmtRec(got[0]))
		}
	}
	if maps, err := be.ListMaps(ctx); err != nil || len(maps) != 0 {
		t.Errorf("ListMaps() after deleting everything = %s, %v; want none", qs(maps), err)
	}
}
