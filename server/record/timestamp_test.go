package record

import (
	"errors"
	"math"
	"testing"
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
		{Timestamp{1, 1, "B"}, Timestamp{1, 1, "a"}, -1}, // byte-wise, not locale order
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
