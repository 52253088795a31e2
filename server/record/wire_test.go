package record

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

func TestUnmarshalWire_conversions(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, in string
		want     Value
	}{
		{"nil", `c0`, NullValue()},
		{"bool", `c3`, BoolValue(true)},
		{"fixint", `2a`, IntValue(42)},
		{"negative", `d0 80`, IntValue(-128)},
		{"uint64 above MaxInt64 wraps", `cf ff ff ff ff ff ff ff ff`, IntValue(-1)},
		{"float32 widens", f32(0.5), FloatValue(0.5)},
		{"float64", f64(1700000000000), FloatValue(1700000000000)},
		{"str", `a2'hi'`, StringValue("hi")},
		{"invalid UTF-8 becomes empty", `a2 ff fe`, StringValue("")},
		{"bin", `c4 02 01 02`, BytesValue([]byte{1, 2})},
		{"array", `92 01 c0`, ArrayValue(IntValue(1), NullValue())},
		{"map sorted", `82 a1'b' 01 a1'a' 02`, MapValue(Field{"a", IntValue(2)}, Field{"b", IntValue(1)})},
		{"map16 as msgpackr writes", `de 00 01 a1'k' c2`, MapValue(Field{"k", BoolValue(false)})},
		{"duplicate keys keep the last", `82 a1'k' 01 a1'k' 02`, MapValue(Field{"k", IntValue(2)})},
		{"integer key", `81 2a c0`, MapValue(Field{"42", NullValue()})},
		{"negative integer key", `81 fb c0`, MapValue(Field{"-5", NullValue()})},
		{"u64 key", `81 cf ff ff ff ff ff ff ff ff c0`, MapValue(Field{"18446744073709551615", NullValue()})},
		{"float key", `81 ` + f64(1.5) + ` c0`, MapValue(Field{"1.5", NullValue()})},
		{"whole float key", `81 ` + f64(1) + ` c0`, MapValue(Field{"1", NullValue()})},
		{"float32 key", `81 ` + f32(0.1) + ` c0`, MapValue(Field{"0.1", NullValue()})},
		{"large float key has no exponent", `81 ` + f64(1e21) + ` c0`, MapValue(Field{"1000000000000000000000", NullValue()})},
		{"infinite float key", `81 ` + f64(math.Inf(-1)) + ` c0`, MapValue(Field{"-inf", NullValue()})},
		{"bool key", `81 c3 c0`, MapValue(Field{"true", NullValue()})},
		{"nil key", `81 c0 c0`, MapValue(Field{"nil", NullValue()})},
		{"bin key", `81 c4 02 01 02 c0`, MapValue(Field{"[1, 2]", NullValue()})},
		{"array key", `81 92 01 a1'x' c0`, MapValue(Field{`[1, "x"]`, NullValue()})},
		{"map key", `81 81 01 02 c0`, MapValue(Field{"{1: 2}", NullValue()})},
		{"ext key", `81 d5 07 01 02 c0`, MapValue(Field{"[7, [1, 2]]", NullValue()})},
		{"ext becomes null", `d6 ff 00 00 00 01`, NullValue()},
		{"ext inside array", `92 c7 02 05 01 02 01`, ArrayValue(NullValue(), IntValue(1))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := UnmarshalWire(hx(t, tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(tc.want) {
				t.Fatalf("UnmarshalWire = %v, want %v", got, tc.want)
			}
			// DecodeWire, which a Value's DecodeMsgpack uses, the same.
			if got, err := DecodeWire(msgpack.NewDecoder(bytes.NewReader(hx(t, tc.in)))); err != nil || !got.Equal(tc.want) {
				t.Fatalf("DecodeWire = %v, %v, want %v", got, err, tc.want)
			}
		})
	}
}

func TestUnmarshalWire_rejects(t *testing.T) {
	t.Parallel()
	for name, in := range map[string]string{
		"empty":       ``,
		"truncated":   `92 01`,
		"trailing":    `01 02`,
		"reserved":    `c1`,
		"too deep":    strings.Repeat("91 ", MaxWireDepth+1) + "c0",
		"hostile len": `dd ff ff ff ff`,
	} {
		if _, err := UnmarshalWire(hx(t, in)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: error = %v, want ErrMalformed", name, err)
		}
	}
	if _, err := UnmarshalWire(hx(t, strings.Repeat("91 ", MaxWireDepth)+"c0")); err != nil {
		t.Errorf("nesting at the limit: %v", err)
	}
}

func TestAppendWire_encodings(t *testing.T) {
	t.Parallel()
	cases := []struct {
		v    Value
		want string
	}{
		{NullValue(), `c0`},
		{IntValue(1 << 32), `cf 00 00 00 01 00 00 00 00`},
		{IntValue(-1), `ff`},
		{FloatValue(2), f64(2)},
		{BytesValue([]byte{1, 2}), `c4 02 01 02`},
		{BytesValue(nil), `c4 00`},
		{MapValue(Field{"b", NullValue()}, Field{"a", BoolValue(true)}), `82 a1'a' c3 a1'b' c0`},
	}
	for _, tc := range cases {
		got, err := AppendWire(nil, tc.v)
		if err != nil {
			t.Fatal(err)
		}
		if want := hx(t, tc.want); !bytes.Equal(got, want) {
			t.Errorf("AppendWire(%v) = %x, want %x", tc.v, got, want)
		}
	}
}

// TestWire_roundTrip: a Value written to the wire and read back is the same
// Value (the lossy points of the conversion cannot arise from a Value).
func TestWire_roundTrip(t *testing.T) {
	t.Parallel()
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 3))
	for i := 0; i < 3000; i++ {
		v := randValue(r, 0)
		b, err := AppendWire(nil, v)
		if err != nil {
			t.Fatal(err)
		}
		back, err := UnmarshalWire(b)
		if err != nil {
			t.Fatalf("%v: %v", v, err)
		}
		if !back.Equal(v) {
			t.Fatalf("round trip of %v gave %v", v, back)
		}
		// FromWire over the generic decoding agrees with the streaming path.
		x, err := msgpack.NewDecoder(bytes.NewReader(b)).DecodeInterface()
		if err != nil {
			t.Fatal(err)
		}
		if got := FromWire(x); !got.Equal(v) {
			t.Fatalf("FromWire(DecodeInterface(%v)) = %v", v, got)
		}
		// ToWire re-encoded by the generic encoder reads back the same.
		var buf bytes.Buffer
		enc := msgpack.NewEncoder(&buf)
		enc.SetSortMapKeys(true)
		if err := enc.Encode(v.ToWire()); err != nil {
			t.Fatal(err)
		}
		if got, err := UnmarshalWire(buf.Bytes()); err != nil || !got.Equal(v) {
			t.Fatalf("ToWire of %v read back as %v, %v", v, got, err)
		}
	}
}

func TestFromWire_goTypes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   any
		want Value
	}{
		{nil, NullValue()},
		{uint64(math.MaxUint64), IntValue(-1)},
		{int8(-3), IntValue(-3)},
		{uint16(7), IntValue(7)},
		{float32(0.5), FloatValue(0.5)},
		{"\xff", StringValue("")},
		{time.Unix(1, 0), NullValue()},
		{struct{}{}, NullValue()},
		{map[any]any{int8(1): "x", true: nil, 2.5: int64(1)}, MapValue(
			Field{"1", StringValue("x")}, Field{"true", NullValue()}, Field{"2.5", IntValue(1)})},
		{map[any]any{[2]any{int8(1), "a"}: nil}, MapValue(Field{`[1, "a"]`, NullValue()})},
		{IntValue(5), IntValue(5)},
	}
	for _, tc := range cases {
		if got := FromWire(tc.in); !got.Equal(tc.want) {
			t.Errorf("FromWire(%#v) = %v, want %v", tc.in, got, tc.want)
		}
	}
	cyclic := make([]any, 1)
	cyclic[0] = cyclic
	_ = FromWire(cyclic) // must terminate
}

func TestValue_msgpackMethods(t *testing.T) {
	t.Parallel()
	type msg struct {
		V Value `msgpack:"v"`
	}
	in := msg{V: MapValue(Field{"x", BytesValue([]byte{9})})}
	b, err := msgpack.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := hx(t, `81 a1'v' 81 a1'x' c4 01 09`); !bytes.Equal(b, want) {
		t.Fatalf("Marshal = %x, want %x", b, want)
	}
	var out msg
	if err := msgpack.Unmarshal(b, &out); err != nil || !out.V.Equal(in.V) {
		t.Fatalf("Unmarshal = %v, %v", out.V, err)
	}
}

func TestValue_accessors(t *testing.T) {
	t.Parallel()
	m := MapValueOf(map[string]Value{"b": IntValue(2), "a": StringValue("x")})
	if v, ok := m.Get("a"); !ok || v.Text() != "x" {
		t.Fatalf("Get(a) = %v, %v", v, ok)
	}
	if _, ok := m.Get("c"); ok {
		t.Fatal("Get(c) found a value")
	}
	if m.Len() != 2 || m.Fields()[0].Key != "a" {
		t.Fatalf("fields = %v", m.Fields())
	}
	if IntValue(3).Float() != 0 || FloatValue(1).Int() != 0 || NullValue().Items() != nil {
		t.Fatal("accessors of the wrong variant must return zero values")
	}
	if FloatValue(math.NaN()).Equal(FloatValue(0)) || !FloatValue(math.NaN()).Equal(FloatValue(math.NaN())) {
		t.Fatal("Equal compares floats by bits")
	}
	if FloatValue(0).Equal(FloatValue(math.Copysign(0, -1))) {
		t.Fatal("0 and -0 encode differently and must not be Equal")
	}
	b := []byte{1}
	v := BytesValue(b)
	b[0] = 9
	if v.Bytes()[0] != 1 {
		t.Fatal("BytesValue must copy its argument")
	}
	if s := MapValue(Field{"k", ArrayValue(BytesValue([]byte{0xab}), FloatValue(0.5))}).String(); s != `Map{"k": Array[Bytes(ab), Float(0.5)]}` {
		t.Fatalf("String = %s", s)
	}
}

// A key of many floats, or of bytes over 99 (a binary, an extension, a
// string that is not valid UTF-8), is displayed without a string per
// element: measured, then made, it allocated two throwaway strings for each
// (214 MiB for a 2 MiB key of floats), uncounted by a decoder bounding
// memory.
func TestDisplayKey_makesNoStringPerElement(t *testing.T) {
	floats := []byte{0xdc, 0x03, 0xe8} // array 16 of 1000
	for range 1000 {
		floats = append(floats, 0xcb, 0x7f, 0xe1, 0xcc, 0xf3, 0x85, 0xeb, 0xc8, 0xa0) // 1e308
	}
	for _, tc := range []struct {
		name string
		raw  []byte
		want string
	}{
		{"1000 floats", floats, "[" + strings.Repeat("1"+strings.Repeat("0", 308)+", ", 999) + "1" + strings.Repeat("0", 308) + "]"},
		{"1000 bytes", append([]byte{0xc5, 0x03, 0xe8}, bytes.Repeat([]byte{0xff}, 1000)...), "[" + strings.Repeat("255, ", 999) + "255]"},
	} {
		key, err := DisplayKey(tc.raw)
		if err != nil {
			t.Fatal(err)
		}
		if key != tc.want {
			t.Fatalf("%s: display string %.40q... of %d bytes, want %.40q... of %d", tc.name, key, len(key), tc.want, len(tc.want))
		}
		allocs := testing.AllocsPerRun(5, func() {
			if _, err := DisplayKey(tc.raw); err != nil {
				t.Fatal(err)
			}
		})
		// A few, besides refills of the decoder pool (which the race
		// detector empties at random); one per element was 2000 or more.
		if allocs > 100 {
			t.Errorf("displaying a key of %s made %v allocations, want far fewer than one per element", tc.name, allocs)
		}
	}
}

// DisplayKeyMax refuses a key whose display string passes max, whatever
// writes past it: a float's digits, the bytes of a binary or of a string
// that is not valid UTF-8 (up to 5 bytes of display each), closing
// brackets. Each was written whole once the string so far fitted, and the
// string returned: up to 5 times max for a decoder bounding memory.
func TestDisplayKeyMax_refusesPastMax(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in string
	}{
		{"float", f64(1e308)},
		{"array of a float", `91 ` + f64(1e308)},
		{"binary", `c4 04 ff ff ff ff`},
		{"array of invalid UTF-8", `91 a4 ff ff ff ff`},
		{"extension", `d6 01 ff ff ff ff`},
		{"nested arrays", strings.Repeat("91 ", 20) + "c0"},
	} {
		raw := hx(t, tc.in)
		full, err := DisplayKey(raw)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got, err := DisplayKeyMax(raw, len(full)); err != nil || got != full {
			t.Errorf("%s: DisplayKeyMax(%d) = %q, %v, want %q", tc.name, len(full), got, err, full)
		}
		for _, max := range []int{len(full) - 1, len(full) / 4, 1} {
			if got, err := DisplayKeyMax(raw, max); !errors.Is(err, ErrKeyTooLong) {
				t.Errorf("%s: DisplayKeyMax(%d) = %d bytes, %v, want ErrKeyTooLong", tc.name, max, len(got), err)
			}
		}
	}
}
