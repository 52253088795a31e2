package abitest

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/topgun-go/topgun/abi"
)

func testDescribe(t TB, h Harness) {
	be := open(t, h)
	d := be.Describe()
	if err := abi.ValidateBackendName(d.Name); err != nil {
		t.Errorf("Describe().Name: %v; a backend must name itself (the host refuses a plugin whose name is not 1 to %d bytes of UTF-8 without control characters)", err, abi.MaxBackendNameBytes)
	}
	if d.ABIMajor != abi.VersionMajor {
		t.Errorf("Describe().ABIMajor = %d; this suite tests ABI major version %d", d.ABIMajor, abi.VersionMajor)
	}
	if !d.Capabilities.Has(abi.CapAtomicBatch) {
		t.Errorf("Describe().Capabilities = %v; want atomic_batch declared (the server refuses backends without it)", d.Capabilities.Names())
	}
	if d2 := be.Describe(); d2 != d {
		t.Errorf("Describe() changed between calls: %+v then %+v", d, d2)
	}
}

func testGetNotFound(t TB, h Harness) {
	be := open(t, h)
	ctx := ctxOf(t)
	if recs := get(t, be, "missing-map", false, "a", "b", ""); len(recs) != 0 {
		t.Errorf("Get of a missing map returned %d records; want none", len(recs))
	}
	if _, err := abi.GetOne(ctx, be, "missing-map", "a", false); !errors.Is(err, abi.ErrNotFound) {
		t.Errorf("GetOne of a missing map = %v; want an error with CodeNotFound", err)
	}
	putRecs(t, be, t0, rec("m", "present", false, "v", 0, t0, t0))
	if recs := get(t, be, "m", false, "absent", "other"); len(recs) != 0 {
		t.Errorf("Get of missing keys returned %d records (%s); want none", len(recs), fmtRec(recs[0]))
	}
	if _, err := abi.GetOne(ctx, be, "m", "absent", false); !errors.Is(err, abi.ErrNotFound) {
		t.Errorf("GetOne of a missing key = %v; want an error with CodeNotFound", err)
	}
	if _, err := abi.GetOne(ctx, be, "m", "present", true); !errors.Is(err, abi.ErrNotFound) {
		t.Errorf("GetOne of the backup side of a primary-only key = %v; want an error with CodeNotFound", err)
	}
	if recs := get(t, be, "m", false); len(recs) != 0 {
		t.Errorf("Get with no keys returned %d records; want none", len(recs))
	}
	if recs := get(t, be, "m", false, []string{}...); len(recs) != 0 {
		t.Errorf("Get with an empty key list returned %d records; want none", len(recs))
	}
	mustHave(t, be, rec("m", "present", false, "v", 0, t0, t0))
}

func testGetOrder(t TB, h Harness) {
	be := open(t, h)
	var recs []abi.Record
	for _, k := range []string{"k1", "k2", "k3", "k4", "k5"} {
		recs = append(recs, rec("m", k, false, "value of "+k, 0, t0, t0))
	}
	putRecs(t, be, t0, recs...)
	byKey := map[string]abi.Record{}
	for _, r := range recs {
		byKey[r.Key] = r
	}
	for _, tc := range []struct {
		keys, want []string
	}{
		{[]string{"k3", "k1", "k5"}, []string{"k3", "k1", "k5"}},
		{[]string{"k5", "k4", "k3", "k2", "k1"}, []string{"k5", "k4", "k3", "k2", "k1"}},
		{[]string{"k3", "missing", "k1", "k3", "", "k5", "k1"}, []string{"k3", "k1", "k5"}},
		{[]string{"k2", "k2", "k2"}, []string{"k2"}},
		{[]string{"x", "k4", "y"}, []string{"k4"}},
		// A long list, so that a backend with another path for many keys
		// (a batched lookup, a merge with a sorted index) keeps the order
		// and answers a repeated key once too.
		{manyKeys(h.Short), []string{"k5", "k4", "k3", "k2", "k1"}},
	} {
		got := get(t, be, "m", false, tc.keys...)
		var want []abi.Record
		for _, k := range tc.want {
			want = append(want, byKey[k])
		}
		if d := diffRecords(got, want); d != "" {
			desc := qs(tc.keys)
			if len(tc.keys) > 10 {
				desc = fmt.Sprintf("%d keys %s…", len(tc.keys), qs(tc.keys[:6]))
			}
			t.Errorf("Get(%s): %s (records come in the order of keys, missing keys skipped, duplicates once)", desc, d)
		}
	}
}

// manyKeys returns a long key list (MaxGetKeys of them, fewer when short)
// that names k5 to k1 in that order, each many times, and a missing key.
func manyKeys(short bool) []string {
	n := abi.MaxGetKeys
	if short {
		n = 4*abi.DefaultScanLimit + 1
	}
	cycle := []string{"k5", "k4", "missing", "k3", "k2", "k1"}
	keys := make([]string, n)
	for i := range keys {
		keys[i] = cycle[i%len(cycle)]
	}
	return keys
}

func testGetInvalid(t TB, h Harness) {
	be := open(t, h)
	ctx := ctxOf(t)
	putRecs(t, be, t0, rec("m", "k", false, "v", 0, t0, t0))
	for _, tc := range []struct {
		name string
		m    string
		keys []string
	}{
		{"empty map name", "", []string{"k"}},
		{"map name too long", strings.Repeat("m", abi.MaxMapNameBytes+1), []string{"k"}},
		{"multi-byte map name too long", strings.Repeat("я", abi.MaxMapNameBytes/2) + "x", []string{"k"}},
		{"map name not UTF-8", "m\xff", []string{"k"}},
		{"NUL in map name", "m\x00", []string{"k"}},
		{"key too long", "m", []string{"k", strings.Repeat("k", abi.MaxKeyBytes+1)}},
		{"key not UTF-8", "m", []string{"k", "\xfe\xff"}},
		{"NUL in key", "m", []string{"k", "a\x00b"}},
		{"too many keys", "m", make([]string, abi.MaxGetKeys+1)},
	} {
		recs, err := be.Get(ctx, tc.m, false, tc.keys)
		if !errors.Is(err, abi.ErrInvalidArgument) {
			t.Errorf("Get with %s = %d records, %v; want an error with CodeInvalidArgument", tc.name, len(recs), err)
		}
	}
	if !h.Short {
		keys := make([]string, abi.MaxGetKeys)
		keys[len(keys)-1] = "k"
		if recs := get(t, be, "m", false, keys...); len(recs) != 1 {
			t.Errorf("Get of exactly MaxGetKeys (%d) keys returned %d records; want 1", abi.MaxGetKeys, len(recs))
		}
	}
}

func testPutGet(t TB, h Harness) {
	be := open(t, h)
	want := []abi.Record{
		rec("m", "a", false, "alpha", 0, t0, t0),
		rec("m", "b", false, "beta", t0+60_000, t0, t0),
		rec("m", "c", true, "gamma (backup)", t0-1, t0, t0),
		rec("other", "a", false, "\x00\x01\xff binary", 1, t0, t0),
	}
	putRecs(t, be, t0, want...)
	for _, r := range want {
		mustHave(t, be, r)
	}
	got := get(t, be, "m", false, "a", "b")
	if d := diffRecords(got, want[:2]); d != "" {
		t.Errorf("Get(\"m\", [a b]): %s", d)
	}
	// A second batch with a later time does not touch the first one's records.
	putRecs(t, be, t0+10, rec("m", "d", false, "delta", 0, 0, 0))
	mustHave(t, be, rec("m", "d", false, "delta", 0, t0+10, t0+10))
	mustHave(t, be, want[0])
}

func testPutOverwrite(t TB, h Harness) {
	be := open(t, h)
	putRecs(t, be, t0, rec("m", "k", false, "v1", t0+5_000, 0, 0), rec("m", "k", true, "b1", 0, 0, 0))
	putRecs(t, be, t0+1_000, rec("m", "k", false, "v2 longer value", 0, 0, 0))
	mustHave(t, be, rec("m", "k", false, "v2 longer value", 0, t0, t0+1_000))
	mustHave(t, be, rec("m", "k", true, "b1", 0, t0, t0))
	putRecs(t, be, t0+2_000, rec("m", "k", false, "", t0+9_000, 0, 0))
	mustHave(t, be, rec("m", "k", false, "", t0+9_000, t0, t0+2_000))
	if recs := scanAll(t, be, "m", false, 0, 0); len(recs) != 1 {
		t.Errorf("Scan after overwrites returned %d records; want 1 (an overwrite must not add a record)", len(recs))
	}
	// A put applies whatever the batch time: the server may commit several
	// batches in one millisecond, and its clock may step back across a
	// restart. A backend must not keep the newer record instead.
	for _, tc := range []struct {
		what  string
		now   int64
		value string
	}{
		{"the same time as the record's UpdatedAt", t0 + 2_000, "same time"},
		{"an older time than the record's UpdatedAt", t0 + 500, "older batch"},
		// The same value and expiration again: a backend that skips writes
		// that change nothing must still move UpdatedAt.
		{"the stored value and expiration at a later time", t0 + 3_000, "older batch"},
	} {
		putRecs(t, be, tc.now, rec("m", "k", false, tc.value, 0, 0, 0))
		want := rec("m", "k", false, tc.value, 0, t0, tc.now)
		if got, ok := getOne(t, be, "m", "k", false); !ok || !sameRecord(got, want) {
			t.Errorf("after a put with %s, Get = %s (found %v); want %s (a put sets the value and UpdatedAt = the batch's Now, whatever the stored UpdatedAt)", tc.what, fmtRec(got), ok, fmtRec(want))
		}
	}
}

func testPutValueOwnership(t TB, h Harness) {
	be := open(t, h)
	buf := []byte("original")
	b := &abi.Batch{Now: t0}
	b.Put("m", "k", false, buf, 0)
	apply(t, be, b)
	copy(buf, "CLOBBERD")
	mustHave(t, be, rec("m", "k", false, "original", 0, t0, t0))

	got := get(t, be, "m", false, "k")
	if len(got) == 1 && len(got[0].Value) > 0 {
		got[0].Value[0] = 'X'
	}
	mustHave(t, be, rec("m", "k", false, "original", 0, t0, t0))
	page := scanAll(t, be, "m", false, 0, 0)
	if len(page) == 1 && len(page[0].Value) > 0 {
		page[0].Value[0] = 'Y'
	}
	mustHave(t, be, rec("m", "k", false, "original", 0, t0, t0))
}

func testDelete(t TB, h Harness) {
	be := open(t, h)
	putRecs(t, be, t0,
		rec("m", "a", false, "va", t0+100, 0, 0),
		rec("m", "b", false, "vb", 0, 0, 0),
		rec("m", "a", true, "backup a", 0, 0, 0))
	b := &abi.Batch{Now: t0 + 1}
	b.Delete("m", "a", false)
	b.Delete("m", "never-there", false)
	b.Delete("missing-map", "x", false)
	b.Delete("missing-map", "x", true)
	apply(t, be, b)
	mustMiss(t, be, "m", "a", false)
	mustHave(t, be, rec("m", "b", false, "vb", 0, t0, t0))
	mustHave(t, be, rec("m", "a", true, "backup a", 0, t0, t0))
	if exp, err := listExpiredAll(ctxOf(t), be, t0+1_000); err != nil {
		t.Fatalf("%v", err)
	} else if len(exp) != 0 {
		t.Errorf("ListExpired after the delete returned %s; a deleted record must leave the expiry listing", fmtRec(exp[0]))
	}
	// Deleting again is not an error.
	b = &abi.Batch{Now: t0 + 2}
	b.Delete("m", "a", false)
	apply(t, be, b)
	// A put after a delete is a first insert: CreatedAt is the new batch's Now.
	putRecs(t, be, t0+3, rec("m", "a", false, "again", 0, 0, 0))
	mustHave(t, be, rec("m", "a", false, "again", 0, t0+3, t0+3))
	if got := keysOf(scanAll(t, be, "m", false, 0, 0)); !equalStrings(got, []string{"a", "b"}) {
		t.Errorf("Scan keys = %s; want [\"a\" \"b\"]", qs(got))
	}
}

func testValueEmpty(t TB, h Harness) {
	be := open(t, h)
	b := &abi.Batch{Now: t0}
	b.Put("m", "nil", false, nil, 0)
	b.Put("m", "empty", false, []byte{}, 0)
	b.Put("m", "nil-backup", true, nil, t0)
	apply(t, be, b)
	for _, k := range []struct {
		key    string
		backup bool
	}{{"nil", false}, {"empty", false}, {"nil-backup", true}} {
		r, ok := getOne(t, be, "m", k.key, k.backup)
		if !ok {
			t.Errorf("Get(\"m\", backup=%v, [%s]) found nothing; a record with a 0-byte value is present", k.backup, q(k.key))
			continue
		}
		if len(r.Value) != 0 {
			t.Errorf("Get(\"m\", [%s]) value = %s; want 0 bytes", q(k.key), fmtValue(r.Value))
		}
	}
	recs := scanAll(t, be, "m", false, 0, 0)
	if got := keysOf(recs); !equalStrings(got, []string{"empty", "nil"}) {
		t.Errorf("Scan keys = %s; want [\"empty\" \"nil\"]", qs(got))
	}
	for _, r := range recs {
		if len(r.Value) != 0 {
			t.Errorf("Scan returned %s; want a 0-byte value", fmtRec(r))
		}
	}
	if maps, err := be.ListMaps(ctxOf(t)); err != nil || !equalStrings(maps, []string{"m"}) {
		t.Errorf("ListMaps() = %s, %v; want [\"m\"] (a map of 0-byte values holds records)", qs(maps), err)
	}
	// Overwriting a value with an empty one keeps the record.
	putRecs(t, be, t0+1, rec("m", "x", false, "some bytes", 0, 0, 0))
	putRecs(t, be, t0+2, rec("m", "x", false, "", 0, 0, 0))
	mustHave(t, be, rec("m", "x", false, "", 0, t0+1, t0+2))
}

// pattern returns n bytes that differ from position to position, so that a
// truncated or shifted value does not compare equal.
func pattern(n int, seed byte) []byte {
	v := make([]byte, n)
	for i := range v {
		v[i] = byte(i*7+i>>9) ^ seed
	}
	return v
}

func testValueLarge(t TB, h Harness) {
	be := open(t, h)
	const fourMiB = 4 << 20
	big1, big2 := pattern(fourMiB, 1), pattern(fourMiB, 2)
	b := &abi.Batch{Now: t0}
	b.Put("m", "a-small", false, []byte("s"), 0)
	b.Put("m", "big1", false, big1, 0)
	b.Put("m", "big2", false, big2, 0)
	b.Put("m", "z-small", false, []byte("z"), 0)
	apply(t, be, b)
	mustHave(t, be, abi.Record{Map: "m", Key: "big1", Value: big1, CreatedAt: t0, UpdatedAt: t0})
	mustHave(t, be, abi.Record{Map: "m", Key: "big2", Value: big2, CreatedAt: t0, UpdatedAt: t0})
	// The default budget (8 MiB) cannot hold both large values in one page.
	for _, budget := range []int{0, 1, fourMiB} {
		recs := scanAll(t, be, "m", false, 0, budget)
		if got := keysOf(recs); !equalStrings(got, []string{"a-small", "big1", "big2", "z-small"}) {
			t.Errorf("Scan(budget=%d) keys = %s; want [a-small big1 big2 z-small]", budget, qs(got))
			continue
		}
		if string(recs[1].Value) != string(big1) || string(recs[2].Value) != string(big2) {
			t.Errorf("Scan(budget=%d) returned large values that differ from the ones put", budget)
		}
	}
	if h.Short {
		return
	}
	maxVal := pattern(abi.MaxValueBytes, 3)
	putRecs(t, be, t0+1, abi.Record{Map: "m", Key: "max", Value: maxVal})
	mustHave(t, be, abi.Record{Map: "m", Key: "max", Value: maxVal, CreatedAt: t0 + 1, UpdatedAt: t0 + 1})
}

func testBackupSeparation(t TB, h Harness) {
	be := open(t, h)
	putRecs(t, be, t0,
		rec("m", "k", false, "primary", 0, 0, 0),
		rec("m", "k", true, "backup", t0+5, 0, 0),
		rec("backup-only", "k", true, "b", 0, 0, 0),
		// A backend that encodes the backup side into the map name must
		// keep these apart.
		rec("map__x__backup", "k", false, "primary of map__x__backup", 0, 0, 0),
		rec("map__x", "k", true, "backup of map__x", 0, 0, 0),
		rec("map__x", "k2", false, "primary of map__x", 0, 0, 0),
	)
	mustHave(t, be, rec("m", "k", false, "primary", 0, t0, t0))
	mustHave(t, be, rec("m", "k", true, "backup", t0+5, t0, t0))
	mustHave(t, be, rec("map__x__backup", "k", false, "primary of map__x__backup", 0, t0, t0))
	mustHave(t, be, rec("map__x", "k", true, "backup of map__x", 0, t0, t0))
	mustMiss(t, be, "map__x", "k", false)
	mustMiss(t, be, "map__x__backup", "k", true)
	mustMiss(t, be, "backup-only", "k", false)
	maps, err := be.ListMaps(ctxOf(t))
	if want := []string{"m", "map__x", "map__x__backup"}; err != nil || !equalStrings(maps, want) {
		t.Errorf("ListMaps() = %s, %v; want %s (primary records only)", qs(maps), err, qs(want))
	}
	// Deleting the primary side leaves the backup side, and the other way round.
	b := &abi.Batch{Now: t0 + 1}
	b.Delete("m", "k", false)
	b.Delete("map__x", "k", true)
	apply(t, be, b)
	mustMiss(t, be, "m", "k", false)
	mustHave(t, be, rec("m", "k", true, "backup", t0+5, t0, t0))
	mustHave(t, be, rec("map__x", "k2", false, "primary of map__x", 0, t0, t0))
	maps, err = be.ListMaps(ctxOf(t))
	if want := []string{"map__x", "map__x__backup"}; err != nil || !equalStrings(maps, want) {
		t.Errorf("ListMaps() after deleting m's only primary record = %s, %v; want %s (m holds backup records only)", qs(maps), err, qs(want))
	}
	// Deleting the primary side leaves the backup side's expiration listed
	// (an expiry index keyed by map and key alone loses it).
	if exp, err := listExpiredAll(ctxOf(t), be, t0+5); err != nil {
		t.Fatalf("%v", err)
	} else if d := diffRecords(exp, []abi.Record{{Map: "m", Key: "k", Backup: true, ExpirationTime: t0 + 5, CreatedAt: t0, UpdatedAt: t0}}); d != "" {
		t.Errorf("ListExpired(now=%d) after deleting the primary side of a key: %s (the backup side keeps its expiration)", t0+5, d)
	}
	// A backend that keeps every record in one keyspace under map + sep +
	// key makes ("x"+sep+"p", "q"+sep+"r") and ("x"+sep+"p"+sep+"q", "r")
	// one record, for any sep that names may hold (every byte but NUL).
	b = &abi.Batch{Now: t0 + 2}
	var joined []abi.Record
	names := []string{"map__x", "map__x__backup"}
	for i, sep := range separators() {
		r1 := rec("x"+sep+"p", "q"+sep+"r", false, fmt.Sprintf("1/%d", i), 0, t0+2, t0+2)
		r2 := rec("x"+sep+"p"+sep+"q", "r", false, fmt.Sprintf("2/%d", i), 0, t0+2, t0+2)
		for _, r := range []abi.Record{r1, r2} {
			b.Put(r.Map, r.Key, false, r.Value, 0)
			joined = append(joined, r)
			names = append(names, r.Map)
		}
	}
	apply(t, be, b)
	for _, r := range joined {
		if got := scanAll(t, be, r.Map, false, 0, 0); len(got) != 1 || !sameRecord(got[0], r) {
			t.Errorf("Scan(%s) = %d records; want only %s (map names and keys that share a separator must stay apart)", q(r.Map), len(got), fmtRec(r))
		}
		mustHave(t, be, r)
		if t.Failed() {
			return
		}
	}
	sort.Strings(names)
	if maps, err := be.ListMaps(ctxOf(t)); err != nil || !equalStrings(maps, names) {
		t.Errorf("ListMaps() with names that share a separator with keys = %s, %v; want %s", qs(maps), err, qs(names))
	}
}

// separators returns what a backend might put between a map name and a
// key: every ASCII byte but NUL, letters and digits, and a few longer
// strings.
func separators() []string {
	var seps []string
	for c := byte(1); c < 0x80; c++ {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			seps = append(seps, string(rune(c)))
		}
	}
	return append(seps, "::", "__", "||", "//", "\u00a0", "\u241f")
}

func testListMaps(t TB, h Harness) {
	be := open(t, h)
	ctx := ctxOf(t)
	if maps, err := be.ListMaps(ctx); err != nil || len(maps) != 0 {
		t.Fatalf("ListMaps() of an empty backend = %s, %v; want none", qs(maps), err)
	}
	// "～" (U+FF5E) and "😀" sort the other way round in UTF-16, the
	// order of string comparison in JavaScript, Java and C#.
	names := []string{"b", "a", "ключ", "😀", "A", "a/b", "a b", "c", "a-b", "～"}
	var recs []abi.Record
	for _, n := range names {
		recs = append(recs, rec(n, "k1", false, "v", 0, 0, 0), rec(n, "k2", false, "v", 0, 0, 0))
	}
	putRecs(t, be, t0, recs...)
	want := []string{"A", "a", "a b", "a-b", "a/b", "b", "c", "ключ", "～", "😀"} // byte order
	if maps, err := be.ListMaps(ctx); err != nil || !equalStrings(maps, want) {
		t.Errorf("ListMaps() = %s, %v; want %s (sorted in byte order, each once)", qs(maps), err, qs(want))
	}
	// Deleting one of two records keeps the map; deleting both drops it.
	b := &abi.Batch{Now: t0 + 1}
	b.Delete("b", "k1", false)
	b.Delete("c", "k1", false)
	b.Delete("c", "k2", false)
	apply(t, be, b)
	want = []string{"A", "a", "a b", "a-b", "a/b", "b", "ключ", "～", "😀"}
	if maps, err := be.ListMaps(ctx); err != nil || !equalStrings(maps, want) {
		t.Errorf("ListMaps() after deleting every record of \"c\" = %s, %v; want %s", qs(maps), err, qs(want))
	}
	// Emptying a map and refilling it in one batch keeps it listed.
	b = &abi.Batch{Now: t0 + 2}
	b.Delete("A", "k1", false)
	b.Delete("A", "k2", false)
	b.Put("A", "k3", false, []byte("v"), 0)
	b.Delete("ключ", "k1", false)
	b.Delete("ключ", "k2", false)
	apply(t, be, b)
	want = []string{"A", "a", "a b", "a-b", "a/b", "b", "～", "😀"}
	if maps, err := be.ListMaps(ctx); err != nil || !equalStrings(maps, want) {
		t.Errorf("ListMaps() = %s, %v; want %s", qs(maps), err, qs(want))
	}
	// A batch that puts a new map's only primary record and then deletes
	// it leaves no map: a backend that takes a map a batch put into for
	// non-empty without looking lists it for good.
	b = &abi.Batch{Now: t0 + 3}
	b.Put("put-then-deleted", "k", false, []byte("v"), 0)
	b.Delete("put-then-deleted", "k", false)
	b.Put("backup-stays", "k", false, []byte("v"), 0)
	b.Put("backup-stays", "k", true, []byte("v"), 0)
	b.Delete("backup-stays", "k", false)
	apply(t, be, b)
	if maps, err := be.ListMaps(ctx); err != nil || !equalStrings(maps, want) {
		t.Errorf("ListMaps() after a batch that put a map's only primary record and then deleted it = %s, %v; want %s (a map is listed only while it holds a primary record)", qs(maps), err, qs(want))
	}
	// Many maps are all listed: the server rebuilds its index from
	// ListMaps at start, so a map left out is lost to clients.
	b = &abi.Batch{Now: t0 + 4}
	for i := 0; i < 2*abi.DefaultScanLimit+1; i++ {
		name := fmt.Sprintf("many/%05d", i)
		b.Put(name, "k", false, []byte("v"), 0)
		want = append(want, name)
	}
	apply(t, be, b)
	sort.Strings(want)
	if maps, err := be.ListMaps(ctx); err != nil || !equalStrings(maps, want) {
		t.Errorf("ListMaps() with %d maps = %d names, %v; want every map once, sorted", len(want), len(maps), err)
	}
}
