package merkle

import (
	"testing"
)

// Vectors of reference §2.2 (TopGun's own tests, re-checked in JavaScript).
func TestFNV1a_vectors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want uint32
	}{
		{"", 2166136261},
		{"hello", 1335831723},
		{"key1", 927623783},
		{"key1:100:0:test", 3988528110},
	}
	for _, tc := range cases {
		if got := FNV1a(tc.in); got != tc.want {
			t.Errorf("FNV1a(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

// fnvUnits is FNV-1a over explicit UTF-16 code units, the definition.
func fnvUnits(units ...uint16) uint32 {
	h := uint32(0x811c9dc5)
	for _, u := range units {
		h ^= uint32(u)
		h *= 0x01000193
	}
	return h
}

func TestFNV1a_utf16Units(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in    string
		units []uint16
	}{
		{"é", []uint16{0xE9}}, // one unit, although two UTF-8 bytes
		{"ключ", []uint16{0x43A, 0x43B, 0x44E, 0x447}},
		{"\uffff", []uint16{0xFFFF}},
		{"😀", []uint16{0xD83D, 0xDE00}}, // astral: a surrogate pair, two units
		{"a😀b", []uint16{'a', 0xD83D, 0xDE00, 'b'}},
		{"\U0010FFFF", []uint16{0xDBFF, 0xDFFF}},
		{"\xff", []uint16{0xFFFD}}, // invalid UTF-8 byte counts as U+FFFD
	}
	for _, tc := range cases {
		if got, want := FNV1a(tc.in), fnvUnits(tc.units...); got != want {
			t.Errorf("FNV1a(%q) = %d, want %d (units %x)", tc.in, got, want, tc.units)
		}
	}
	// node: hashString("😀") === 3409036472
	if got := FNV1a("😀"); got != 3409036472 {
		t.Errorf("FNV1a(😀) = %d", got)
	}
}

// Vectors of reference §2.3.
func TestCombine_vectors(t *testing.T) {
	t.Parallel()
	if got := Combine(0x64, 0xc8); got != 0xbc1dab1c {
		t.Fatalf("Combine(0x64, 0xc8) = %#x, want 0xbc1dab1c", got)
	}
	if Combine() != 0 || Mix(0) != 0 || Combine(0) != 0 {
		t.Fatal("empty combine, Mix(0) and Combine(0) must be 0")
	}
	if Combine(12345) != Mix(12345) {
		t.Fatal("Combine of one hash must be its Mix")
	}
	if Combine(1, 2, 3) != Combine(3, 1, 2) {
		t.Fatal("Combine must not depend on order")
	}
	// Compensating pairs of raw values do not collide once mixed.
	if Combine(100, 200) == Combine(250, 50) {
		t.Fatal("Combine(100, 200) == Combine(250, 50)")
	}
}

func TestPath(t *testing.T) {
	t.Parallel()
	if got := Path("key1"); got != "374a6a67" { // 927623783 = 0x374a6a67
		t.Fatalf("Path(key1) = %q", got)
	}
	if got := Path(""); got != "811c9dc5" {
		t.Fatalf("Path(\"\") = %q", got)
	}
	// Zero padding: find a key whose hash has a leading zero digit.
	for i := 0; i < 100000; i++ {
		k := "k" + itoa(i)
		if FNV1a(k) < 1<<28 {
			if p := Path(k); len(p) != 8 || p[0] != '0' {
				t.Fatalf("Path(%q) = %q, want 8 digits with a leading 0", k, p)
			}
			return
		}
	}
	t.Fatal("no key with a leading zero found")
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}
