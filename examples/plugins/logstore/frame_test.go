package logstore

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestFrame_roundTrip(t *testing.T) {
	t.Parallel()
	put, voff := appendPut(nil, true, "ключ map", "with space:and colon", 123, 4, 5, []byte("value"))
	tests := []struct {
		name string
		data []byte
		want frame
	}{
		{"put", put, frame{kind: kindPut, backup: true, mapName: "ключ map", key: "with space:and colon", exp: 123, created: 4, updated: 5, value: []byte("value"), valueOff: voff}},
		{"put empty key and value", func() []byte { b, _ := appendPut(nil, false, "m", "", 0, 1, 1, nil); return b }(),
			frame{kind: kindPut, mapName: "m", created: 1, updated: 1, value: []byte{}, valueOff: 16}},
		{"delete", appendDelete(nil, false, "m", "k"), frame{kind: kindDelete, mapName: "m", key: "k"}},
		{"commit", appendCommit(nil, 70000), frame{kind: kindCommit, count: 70000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fr := newFrameReader(bytes.NewReader(tt.data), 0, int64(len(tt.data)))
			f, err := fr.next()
			if err != nil {
				t.Fatalf("next: %v", err)
			}
			if f.kind != tt.want.kind || f.backup != tt.want.backup || f.mapName != tt.want.mapName || f.key != tt.want.key ||
				f.exp != tt.want.exp || f.created != tt.want.created || f.updated != tt.want.updated || f.count != tt.want.count ||
				!bytes.Equal(f.value, tt.want.value) || f.valueOff != tt.want.valueOff {
				t.Fatalf("decoded %+v, want %+v", f, tt.want)
			}
			if fr.off != int64(len(tt.data)) {
				t.Fatalf("reader at %d after the frame, want %d", fr.off, len(tt.data))
			}
			if _, err := fr.next(); err != io.EOF {
				t.Fatalf("next after the last frame = %v, want io.EOF", err)
			}
		})
	}
}

// FuzzReadFrame feeds arbitrary bytes to the frame reader, as a damaged or
// hostile log file would. The reader must not panic, must fail only with
// io.EOF, errTorn or a *corruptError, must not read past the data, and
// every frame it accepts must be exactly the encoding of what it decoded.
//
// The checksum stops almost every random input at the header, so the same
// bytes are also read as the body of a frame with a valid checksum: that is
// how the fuzzer reaches the body decoder.
func FuzzReadFrame(f *testing.F) {
	put, _ := appendPut(nil, false, "m", "k", 10, 1, 2, []byte("value"))
	bput, _ := appendPut(nil, true, "map/ä", strings.Repeat("k", 200), 0, 1<<40, 1<<41, bytes.Repeat([]byte{0}, 300))
	del := appendDelete(nil, true, "m", "k")
	commit := appendCommit(nil, 3)
	batch := append(append(append(append([]byte{}, put...), bput...), del...), commit...)
	f.Add(batch)
	f.Add(put)
	f.Add(commit)
	f.Add(batch[:len(batch)-3])
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 1})
	f.Add(put[frameHeaderLen:])
	f.Add(del[frameHeaderLen:])
	f.Add(commit[frameHeaderLen:])
	f.Fuzz(func(t *testing.T, data []byte) {
		checkFrames(t, data)
		if len(data) > 0 && len(data) <= maxFrameBody {
			checkFrames(t, sealFrame(append(make([]byte, frameHeaderLen), data...), 0))
		}
	})
}

func checkFrames(t *testing.T, data []byte) {
	fr := newFrameReader(bytes.NewReader(data), 0, int64(len(data)))
	for n := 0; n < 1000; n++ {
		start := fr.off
		fm, err := fr.next()
		if err != nil {
			var ce *corruptError
			if err != io.EOF && !errors.Is(err, errTorn) && !errors.As(err, &ce) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			if err == io.EOF && start != int64(len(data)) {
				t.Fatalf("io.EOF at offset %d of %d bytes", start, len(data))
			}
			if fr.off != start {
				t.Fatalf("reader advanced from %d to %d on error %v", start, fr.off, err)
			}
			return
		}
		if fr.off > int64(len(data)) || fr.off <= start {
			t.Fatalf("reader moved from %d to %d in %d bytes", start, fr.off, len(data))
		}
		var enc []byte
		switch fm.kind {
		case kindPut:
			var voff int
			enc, voff = appendPut(nil, fm.backup, fm.mapName, fm.key, fm.exp, fm.created, fm.updated, fm.value)
			if voff != fm.valueOff {
				t.Fatalf("value offset %d, re-encoding puts it at %d", fm.valueOff, voff)
			}
		case kindDelete:
			enc = appendDelete(nil, fm.backup, fm.mapName, fm.key)
		case kindCommit:
			enc = appendCommit(nil, fm.count)
		default:
			t.Fatalf("accepted a frame of unknown kind %d", fm.kind)
		}
		if !bytes.Equal(enc, data[start:fr.off]) {
			t.Fatalf("frame at %d re-encodes differently:\n got %x\nwant %x", start, enc, data[start:fr.off])
		}
	}
}
