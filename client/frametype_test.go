package client

import (
	"testing"

	"github.com/topgun-go/topgun/server/wire"
)

// frameType reads the type of every message the server encodes, from a
// prefix of its frame.
func TestFrameType(t *testing.T) {
	t.Parallel()
	for _, m := range []wire.Message{
		&wire.ORMapDiffResponse{MapName: "m", Entries: []wire.ORMapEntry{{Key: "k", Records: []wire.ORMapRecord{}, Tombstones: []string{}}}},
		&wire.ErrorMessage{Code: 400, Message: "x"},
		&wire.Pong{Timestamp: 1},
	} {
		b, err := wire.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		if got := frameType(b[:min(len(b), 30)]); got != m.Type() {
			t.Errorf("frameType(%s) = %q", m.Type(), got)
		}
	}
}

// frameType reads untrusted bytes (the start of a frame over
// MaxReadBytes): it must not panic, whatever they are.
func FuzzFrameType(f *testing.F) {
	b, _ := wire.Encode(&wire.ORMapDiffResponse{MapName: "m"})
	f.Add(b)
	f.Add([]byte{0x81, 0xa4, 't', 'y', 'p', 'e', 0xdb, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = frameType(b)
	})
}
