package record

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTimestamp_Compare(t *testing.T) {
	t.Parallel()
	cases := []struct {
		a, b Timestamp
		want int
	}{
		{Timestamp{1, 0, "a"}, Timestamp{1, 0, "a"}, 0},
		{Timestamp{1, 0, "z"}, Timestamp{2, 0, "a"}, -1},
		{Timestamp{2, 0, "a"}, Timestamp{1, 9, "z"}, 1},
		{Timestamp{1, 1, "a"}, Timestamp{1, 2, "a"}, -1},
		{Timestamp{1, 2, "a"}, Timestamp{1, 1, "z"}, 1},
		{Timestamp{1, 1, "a"}, Timestamp{1, 1, "b"}, -1},
		{Timestamp{1, 1, "B"}, Timestamp{1, 1, "a"}, 1}, // the client's localeCompare, not byte order
		{Timestamp{math.MaxUint64, 0, ""}, Timestamp{0, math.MaxUint32, "z"}, 1},
	}
	for _, tc := range cases {
		if got := tc.a.Compare(tc.b); got != tc.want {
			t.Errorf("%v.Compare(%v) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := tc.b.Compare(tc.a); got != -tc.want {
			t.Errorf("%v.Compare(%v) = %d, want %d", tc.b, tc.a, got, -tc.want)
		}
	}
}

// TestTimestamp_Compare_nodeIDTieAsClient checks the tie-break on equal
// millis and counter against what TopGun's TypeScript client computes
// (HLC.compare: a.nodeId.localeCompare(b.nodeId); the signs below were taken
// from node 20, ICU 78). The server keeps client timestamps, so a different
// winner on a tie leaves the losing client diverged forever: it refuses the
// server's record as older, and the server refuses its re-sent write.
func TestTimestamp_Compare_nodeIDTieAsClient(t *testing.T) {
	t.Parallel()
	cases := []struct {
		a, b string
		want int // sign of a.localeCompare(b)
	}{
		{"a", "B", -1},
		{"A", "a", 1},
		{"x", "X", -1},
		{"alice", "Bob", -1},
		{"n1", "n_1", 1},
		{"node_1", "node-1", -1},
		{"node-a", "nodeA", -1},
		{"node 2", "node-2", -1},
		{"e", "é", -1},
		{"é", "f", -1},
		{"z", "é", 1},
		{"Émile", "emile", 1},
		{"ß", "ss", 1},
		{"中", "a", 1},
		{"😀", "a", -1},
		{"10", "9", -1},
		{"DB-Host-1-3f9a0c12", "d1b2c3d4-0000-4000-8000-000000000000", 1},
		{"0f3c2a1e-aaaa-4bbb-8ccc-111111111111", "0f3c2a1e-aaaa-4bbb-8ccc-11111111111a", -1},
	}
	for _, tc := range cases {
		a := Timestamp{Millis: 1700000000000, Counter: 3, NodeID: tc.a}
		b := Timestamp{Millis: 1700000000000, Counter: 3, NodeID: tc.b}
		if got := a.Compare(b); got != tc.want {
			t.Errorf("Compare(%q, %q) = %d, the client's localeCompare gives %d", tc.a, tc.b, got, tc.want)
		}
		if got := b.Compare(a); got != -tc.want {
			t.Errorf("Compare(%q, %q) = %d, the client's localeCompare gives %d", tc.b, tc.a, got, -tc.want)
		}
	}
	// Canonically equivalent ids collate equal (localeCompare returns 0);
	// the order stays total and antisymmetric.
	nfc, nfd := "é", "e\u0301"
	x, y := Timestamp{1, 0, nfc}, Timestamp{1, 0, nfd}
	if c := x.Compare(y); c == 0 || c != -y.Compare(x) {
		t.Errorf("Compare(NFC, NFD) = %d, reverse %d: want a non-zero antisymmetric order", c, y.Compare(x))
	}
}

func TestTimestamp_StringAndParse(t *testing.T) {
	t.Parallel()
	ts := Timestamp{Millis: 1700000001000, Counter: 3, NodeID: "node-b"}
	if got := ts.String(); got != "1700000001000:3:node-b" {
		t.Fatalf("String = %q", got)
	}
	good := []struct {
		in   string
		want Timestamp
	}{
		{"1700000001000:3:node-b", ts},
		{"1:2:a:b", Timestamp{1, 2, "a:b"}}, // split at the first two colons
		{"+1:+2:n", Timestamp{1, 2, "n"}},
		{"18446744073709551615:4294967295:n", Timestamp{math.MaxUint64, math.MaxUint32, "n"}},
		{"0:0:😀", Timestamp{0, 0, "😀"}},
	}
	for _, tc := range good {
		got, err := ParseTimestamp(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseTimestamp(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	bad := []string{"", "1", "1:2", "1:2:", ":2:n", "1::n", "-1:0:n", "1:-1:n", "x:0:n", "1:4294967296:n",
		"18446744073709551616:0:n", " 1:0:n", "1.5:0:n", "+:0:n", "++1:0:n", "1_000:0:n"}
	for _, in := range bad {
		if got, err := ParseTimestamp(in); !errors.Is(err, ErrInvalidTimestamp) {
			t.Errorf("ParseTimestamp(%q) = %+v, %v; want ErrInvalidTimestamp", in, got, err)
		}
	}
}

// A client's timestamp may carry a node id of megabytes (nothing bounds it
// but the message), and collating costs up to about 700 ns per byte: one
// write tying (same millis and counter) with a stored record whose node id
// differed only at its end held the store's merging, and every other
// writer, for over a second per 2 MiB. Only a bounded prefix is collated.
func TestCompareNodeID_longIDsCostBounded(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("\ufdfa", (2<<20)/len("\ufdfa"))
	a, b := long+"a", long+"b"
	if c := CompareNodeID(a, b); c != -1 {
		t.Errorf("CompareNodeID(long+a, long+b) = %d, want -1", c)
	}
	// What is collated is bounded (collating all of it took over a
	// second), and cut at a character boundary.
	for _, id := range []string{a, strings.Repeat("x", 255) + "\ufdfa", strings.Repeat("é", 200)} {
		p := collatedPart(id)
		if len(p) > maxCollatedNodeIDBytes || !strings.HasPrefix(id, p) || !utf8.ValidString(p) {
			t.Errorf("collatedPart of a %d-byte id: %d bytes, valid %v", len(id), len(p), utf8.ValidString(p))
		}
	}
}

// CompareNodeID must be a total order (antisymmetric, transitive, zero only
// for equal ids) for every string a client may send, invalid UTF-8, NUL,
// combining and ignorable characters included, and ids longer than the
// collated prefix: servers deciding LWW ties by a non-transitive order
// could keep different winners.
func TestCompareNodeID_totalOrder(t *testing.T) {
	t.Parallel()
	parts := []string{"a", "A", "b", "B", "e", "é", "e\u0301", "\u0301", "\u0327", "\x00", "\x01", "\xff", "\xc3",
		"-", "_", " ", "\u200b", "\u00ad", "ß", "ss", "中", "😀", "\ufffd", "1", "9", "\u034f", "\ufeff", "Å", "A\u030a",
		"\u212b", "\u1100", "\u1161", "\uac00", "\u0e40", "\u0e01", "\ufdfa", "\x80", "\xed\xa0\x80"}
	// Ids around 256 bytes, the collated prefix.
	prefixes := []string{"", strings.Repeat("x", 254), strings.Repeat("é", 127)}
	r := rand.New(rand.NewPCG(1, 2))
	ids := make([]string, 250)
	for i := range ids {
		var sb strings.Builder
		sb.WriteString(prefixes[r.IntN(len(prefixes))])
		for range r.IntN(6) {
			sb.WriteString(parts[r.IntN(len(parts))])
		}
		ids[i] = sb.String()
	}
	for _, a := range ids {
		for _, b := range ids {
			c, d := CompareNodeID(a, b), CompareNodeID(b, a)
			if c != -d || (c == 0) != (a == b) {
				t.Fatalf("CompareNodeID(%q, %q) = %d, reverse %d", a, b, c, d)
			}
		}
	}
	sorted := slices.Clone(ids)
	slices.SortFunc(sorted, CompareNodeID)
	for i := range sorted {
		for j := i + 1; j < len(sorted); j++ {
			if CompareNodeID(sorted[i], sorted[j]) > 0 {
				t.Fatalf("not transitive: %q sorts before %q but compares greater", sorted[i], sorted[j])
			}
		}
	}
}
