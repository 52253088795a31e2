package redb

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/topgun-go/topgun/abi"
)

// FuzzDecodeRecord checks the record decoder on arbitrary stored bytes: it
// never panics, and what it accepts re-encodes to the same bytes.
func FuzzDecodeRecord(f *testing.F) {
	f.Add([]byte("rkey"), encodeRecord([]byte("rkey"), recordHeader{CreatedAt: 1, UpdatedAt: 2, ExpirationTime: 3}, []byte("value")))
	f.Add([]byte("r"), encodeRecord([]byte("r"), recordHeader{CreatedAt: 1 << 62, UpdatedAt: 1 << 62}, nil))
	f.Add([]byte("rk"), []byte{})
	f.Add([]byte("rk"), []byte{recordTag})
	f.Add([]byte("rk"), bytes.Repeat([]byte{0xff}, recordHeaderLen+3))
	f.Fuzz(func(t *testing.T, key, b []byte) {
		h, v, err := decodeRecord(key, b)
		if err != nil {
			return
		}
		if h.CreatedAt <= 0 || h.UpdatedAt <= 0 || h.ExpirationTime < 0 {
			t.Fatalf("accepted out-of-range header %+v", h)
		}
		if got := encodeRecord(key, h, v); !bytes.Equal(got, b) {
			t.Fatalf("re-encoded %x, want %x", got, b)
		}
	})
}

// TestDecodeRecord_detectsDamage flips every bit of a record, and of its
// key, and checks that the checksum catches each one.
func TestDecodeRecord_detectsDamage(t *testing.T) {
	t.Parallel()
	key := []byte("rsome-key")
	rec := encodeRecord(key, recordHeader{CreatedAt: 10, UpdatedAt: 20, ExpirationTime: 30}, []byte("some value"))
	if _, v, err := decodeRecord(key, rec); err != nil || string(v) != "some value" {
		t.Fatalf("decodeRecord = %q, %v", v, err)
	}
	for i := range len(rec) * 8 {
		bad := bytes.Clone(rec)
		bad[i/8] ^= 1 << (i % 8)
		if _, _, err := decodeRecord(key, bad); !errors.Is(err, errCorruptRecord) {
			t.Fatalf("bit %d of the record flipped: %v", i, err)
		}
	}
	for i := range len(key) * 8 {
		bad := bytes.Clone(key)
		bad[i/8] ^= 1 << (i % 8)
		if _, _, err := decodeRecord(bad, rec); !errors.Is(err, errCorruptRecord) {
			t.Fatalf("bit %d of the key flipped: %v", i, err)
		}
	}
	if _, _, err := decodeRecord(key, rec[:len(rec)-1]); !errors.Is(err, errCorruptRecord) {
		t.Fatalf("truncated value: %v", err)
	}
}

// FuzzExpiryKey checks the expiry index key parser: it never panics, and
// what it accepts re-encodes to the same bytes.
func FuzzExpiryKey(f *testing.F) {
	f.Add(appendExpiryKey(nil, 5, "map", true, "key"))
	f.Add(appendExpiryKey(nil, 1, "m", false, ""))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 1, 'm', 0, 2})
	f.Fuzz(func(t *testing.T, k []byte) {
		exp, m, backup, key, err := parseExpiryKey(k)
		if err != nil {
			return
		}
		if got := appendExpiryKey(nil, exp, string(m), backup, string(key)); !bytes.Equal(got, k) {
			t.Fatalf("re-encoded %x, want %x", got, k)
		}
	})
}

// FuzzCheckFile checks the bbolt header check on arbitrary file contents:
// it never panics, and a file it accepts opens and reads (or fails) without
// a panic.
func FuzzCheckFile(f *testing.F) {
	dir := f.TempDir()
	seedPath := filepath.Join(dir, "seed.redb")
	b, err := Open(context.Background(), seedPath, &Options{NoSync: true})
	if err != nil {
		f.Fatal(err)
	}
	batch := &abi.Batch{Now: 1}
	for i := range 20 {
		batch.Put("m", strconv.Itoa(i), i%2 == 0, []byte("value"), int64(i))
	}
	if err := b.Apply(context.Background(), batch); err != nil {
		f.Fatal(err)
	}
	_ = b.Close()
	seed, err := os.ReadFile(seedPath)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add(seed[:8192])
	f.Add([]byte("not a database"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := checkFile(bytes.NewReader(data), int64(len(data))); err != nil {
			return
		}
		path := filepath.Join(t.TempDir(), "f.redb")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		b, err := Open(context.Background(), path, &Options{NoSync: true})
		if err != nil {
			return
		}
		defer b.Close()
		ctx := context.Background()
		maps, _ := b.ListMaps(ctx)
		for _, m := range append(maps, "m") {
			_, _ = b.Scan(ctx, abi.ScanRequest{Map: m, Limit: 50})
			_, _ = b.Scan(ctx, abi.ScanRequest{Map: m, Backup: true, Limit: 50})
		}
		_, _ = b.ListExpired(ctx, 1<<40, 50)
		_, _ = b.Get(ctx, "m", false, []string{"0", "1", "2"})
		// No writes: a write on a damaged tree can make bbolt allocate (and
		// grow the file) by whatever size a damaged page header claims,
		// which is slow rather than unsafe. TestBackend_corruptPages covers
		// writes on damaged files.
	})
}
