package merkle

import "unicode/utf8"

const (
	fnvOffset uint32 = 0x811c9dc5
	fnvPrime  uint32 = 0x01000193
)

// FNV1a is TopGun's 32-bit FNV-1a over the UTF-16 code units of s (not its
// bytes): each unit is XORed into the hash, which is then multiplied by the
// FNV prime. A character outside the Basic Multilingual Plane counts as its
// two surrogate units, as in JavaScript. A byte sequence that is not valid
// UTF-8 counts as U+FFFD per invalid byte.
func FNV1a(s string) uint32 {
	return fnvString(fnvOffset, s)
}

// fnvString continues an FNV-1a hash h over the UTF-16 units of s.
func fnvString(h uint32, s string) uint32 {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			h = (h ^ uint32(c)) * fnvPrime
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		h = fnvRune(h, r)
	}
	return h
}

// fnvBytes is fnvString for a byte slice holding UTF-8.
func fnvBytes(h uint32, b []byte) uint32 {
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			h = (h ^ uint32(c)) * fnvPrime
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		i += size
		h = fnvRune(h, r)
	}
	return h
}

func fnvRune(h uint32, r rune) uint32 {
	if r < 0x10000 {
		return (h ^ uint32(r)) * fnvPrime
	}
	r -= 0x10000
	h = (h ^ uint32(0xD800+(r>>10))) * fnvPrime
	return (h ^ uint32(0xDC00+(r&0x3FF))) * fnvPrime
}

// Mix is MurmurHash3's fmix32 finalizer, the avalanche step TopGun applies
// to every hash it combines. Mix(0) == 0.
func Mix(h uint32) uint32 {
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}

// Combine is TopGun's combine_hashes: the wrapping sum of Mix(h). It does
// not depend on the order of hs; Combine() == 0 and Combine(h) == Mix(h).
func Combine(hs ...uint32) uint32 {
	var sum uint32
	for _, h := range hs {
		sum += Mix(h)
	}
	return sum
}

// Digits are the characters of trie paths, in bucket order.
const Digits = "0123456789abcdef"

// Path returns the trie path of key: FNV1a(key) as 8 lowercase hex digits.
// Level i of the trie uses character i.
func Path(key string) string {
	h := FNV1a(key)
	var b [8]byte
	for i := 7; i >= 0; i-- {
		b[i] = Digits[h&15]
		h >>= 4
	}
	return string(b[:])
}
