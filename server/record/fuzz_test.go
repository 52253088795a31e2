package record

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// FuzzDecode: Decode never panics, and whatever it accepts encodes, decodes
// back to the same record, and re-encodes to the same bytes.
//
//	go test ./server/record -run '^$' -fuzz FuzzDecode -fuzztime 60s
func FuzzDecode(f *testing.F) {
	for _, g := range []string{goldenLWW, goldenORTombstones, goldenLegacyBareValue,
		goldenORMapTwoPrefix + ` 83 a5'value' 81 a6'String' a1'x' a3'tag' a2't1' a9'timestamp' 83 a6'millis' 01 a7'counter' 00 a6'nodeId' a1'a' ` +
			` 83 a5'value' a4'Null' a3'tag' a2't2' a9'timestamp' 83 a6'millis' 02 a7'counter' 01 a6'nodeId' a1'b' ` + goldenORMapTwoSuffix,
		`81 a3'lww' 92 81 a3'Int' 2a 93 cf 00 00 01 8b cf e5 6b e8 03 a6'node-b'`,
	} {
		f.Add(hx(f, g))
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20; i++ {
		rv := randRecord(r)
		b, err := Encode(nil, &rv)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		rv, err := Decode(in)
		if err != nil {
			return
		}
		b, err := Encode(nil, &rv)
		if err != nil {
			t.Fatalf("Decode accepted %x but Encode refuses the result: %v", in, err)
		}
		back, err := Decode(b)
		if err != nil {
			t.Fatalf("Decode(Encode(Decode(%x))): %v", in, err)
		}
		if !back.Equal(&rv) {
			t.Fatalf("round trip differs for %x:\n%+v\n%+v", in, rv, back)
		}
		if again, err := Encode(nil, &back); err != nil || !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs for %x: %x vs %x (%v)", in, again, b, err)
		}
	})
}

// FuzzUnmarshalWire: UnmarshalWire never panics, and what it accepts writes
// and reads back unchanged.
func FuzzUnmarshalWire(f *testing.F) {
	f.Add(hx(f, clientOpFixture))
	f.Add(hx(f, `81 92 01 a1'x' c0`))
	f.Add(hx(f, `92 c7 02 05 01 02 01`))
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 20; i++ {
		b, err := AppendWire(nil, randValue(r, 0))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		v, err := UnmarshalWire(in)
		if err != nil {
			return
		}
		b, err := AppendWire(nil, v)
		if err != nil {
			t.Fatalf("AppendWire(%v): %v", v, err)
		}
		back, err := UnmarshalWire(b)
		if err != nil || !back.Equal(v) {
			t.Fatalf("wire round trip of %v: %v, %v", v, back, err)
		}
	})
}
