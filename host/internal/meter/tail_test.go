package meter

import (
	"testing"
)

func TestTrimEmptyCustomTail(t *testing.T) {
	t.Parallel()
	head := []byte("\x00asm\x01\x00\x00\x00\x01\x04\x01\x60\x00\x00") // one type
	empty := []byte{0x00, 0x02, 0x01, 'x'}
	tests := []struct {
		name string
		tail []byte
		keep int // bytes of tail kept
	}{
		{"None", nil, 0},
		{"One", empty, 0},
		{"Run", append(append([]byte{}, empty...), empty...), 0},
		{"NonEmptyLast", append(append([]byte{}, empty...), 0x00, 0x03, 0x01, 'y', 0x00), 9},
		{"EmptyAfterNonEmpty", append([]byte{0x00, 0x03, 0x01, 'y', 0x00}, empty...), 5},
		{"EmptyName", []byte{0x00, 0x01, 0x00}, 0},
		{"NameSection", []byte{0x00, 0x05, 0x04, 'n', 'a', 'm', 'e'}, 7},
		{"NameNotUTF8", []byte{0x00, 0x02, 0x01, 0xff}, 4},
		{"NoName", []byte{0x00, 0x00}, 2},
		{"PastTheEnd", []byte{0x00, 0x09, 0x01, 'x'}, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bin := append(append([]byte{}, head...), tc.tail...)
			got := TrimEmptyCustomTail(bin)
			if want := len(head) + tc.keep; len(got) != want {
				t.Errorf("kept %d bytes, want %d", len(got), want)
			}
			if len(got) > 0 && &got[0] != &bin[0] {
				t.Error("the result is a copy, want a prefix of the module")
			}
		})
	}
}
