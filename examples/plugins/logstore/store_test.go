package logstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/abi"
)

// A hclog.Logger is a Logger.
var _ Logger = hclog.NewNullLogger()

// testWriter sends log output to t.Log, so it shows only when a test fails.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t testing.TB) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "logstore", Level: hclog.Debug, Output: testWriter{t}})
}

func testOptions(t testing.TB) *Options {
	o := DefaultOptions()
	o.Logger = testLogger(t)
	return o
}

func openT(t testing.TB, dir string, o *Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), dir, o)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func applyT(t testing.TB, s *Store, b *abi.Batch) {
	t.Helper()
	if err := s.Apply(context.Background(), b); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

// scanAll returns every record of one map.
func scanAll(t testing.TB, s abi.Backend, mapName string, backup bool) []abi.Record {
	t.Helper()
	var out []abi.Record
	req := abi.ScanRequest{Map: mapName, Backup: backup, Limit: 7}
	for {
		p, err := s.Scan(context.Background(), req)
		if err != nil {
			t.Fatalf("Scan(%q): %v", mapName, err)
		}
		out = append(out, p.Records...)
		if p.Cursor == nil {
			return out
		}
		req.Cursor = p.Cursor
	}
}

func TestOptions_Validate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		modify func(*Options)
		ok     bool
	}{
		{"defaults", func(*Options) {}, true},
		{"negative min", func(o *Options) { o.CompactMinBytes = -1 }, false},
		{"zero ratio", func(o *Options) { o.CompactGarbageRatio = 0 }, false},
		{"ratio above one", func(o *Options) { o.CompactGarbageRatio = 1.5 }, false},
		{"ratio one", func(o *Options) { o.CompactGarbageRatio = 1 }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := DefaultOptions()
			tt.modify(o)
			err := o.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, abi.ErrInvalidArgument) {
				t.Fatalf("Validate() = %v, want CodeInvalidArgument", err)
			}
			if _, err := Open(context.Background(), t.TempDir(), o); (err == nil) != tt.ok {
				t.Fatalf("Open with these options = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestOpen_emptyDir(t *testing.T) {
	t.Parallel()
	_, err := Open(context.Background(), "", nil)
	if !errors.Is(err, abi.ErrInvalidArgument) {
		t.Fatalf("Open(\"\") = %v, want CodeInvalidArgument", err)
	}
}

func TestStore_Describe(t *testing.T) {
	t.Parallel()
	s := openT(t, t.TempDir(), testOptions(t))
	d := s.Describe()
	want := abi.CapDurable | abi.CapAtomicBatch | abi.CapExpiryIndex
	if d.Name != Name || d.Capabilities != want || d.ABIMajor != abi.VersionMajor {
		t.Fatalf("Describe() = %+v, want name %q, capabilities %v", d, Name, want.Names())
	}
}

// TestOpen_tornTail cuts the log at every byte inside its last batch, and
// checks that the reopened store has every earlier batch, nothing of the
// last one, a log truncated to the end of the last whole batch, and that it
// keeps working.
func TestOpen_tornTail(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openT(t, dir, testOptions(t))
	var b1, b2, b3 abi.Batch
	b1.Now, b2.Now, b3.Now = 100, 200, 300
	b1.Put("m", "a", false, []byte("a1"), 0)
	b1.Put("m", "b", false, []byte("b1"), 0)
	b2.Put("m", "c", false, []byte("c2"), 5000)
	b2.Delete("m", "a", false)
	b3.Put("m", "b", false, []byte("b3-overwritten"), 0)
	b3.Put("m", "d", true, []byte("d3"), 0)
	b3.Delete("m", "c", false)
	applyT(t, s, &b1)
	applyT(t, s, &b2)
	end2 := s.Stats().FileBytes
	applyT(t, s, &b3)
	end3 := s.Stats().FileBytes
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	full, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(full)) != end3 {
		t.Fatalf("log is %d bytes, Stats said %d", len(full), end3)
	}

	checkAfterB2 := func(t *testing.T, s *Store) {
		t.Helper()
		got := scanAll(t, s, "m", false)
		if len(got) != 2 || got[0].Key != "b" || string(got[0].Value) != "b1" || got[1].Key != "c" || got[1].ExpirationTime != 5000 {
			t.Fatalf("primary records = %+v, want b=b1 and c (batch 2 state)", got)
		}
		if got := scanAll(t, s, "m", true); len(got) != 0 {
			t.Fatalf("backup records = %+v, want none (batch 3 must not be visible)", got)
		}
	}

	for cut := end2; cut < end3; cut++ {
		t.Run(fmt.Sprintf("cut=%d", cut), func(t *testing.T) {
			d := t.TempDir()
			if err := os.WriteFile(filepath.Join(d, FileName), full[:cut], 0o644); err != nil {
				t.Fatal(err)
			}
			s := openT(t, d, testOptions(t))
			checkAfterB2(t, s)
			if st, err := os.Stat(filepath.Join(d, FileName)); err != nil || st.Size() != end2 {
				t.Fatalf("log after open is %v bytes (err %v), want truncated to %d", st.Size(), err, end2)
			}
			// The store keeps working after the truncation.
			applyT(t, s, &b3)
			s.Close()
			s = openT(t, d, testOptions(t))
			if got := scanAll(t, s, "m", true); len(got) != 1 || string(got[0].Value) != "d3" {
				t.Fatalf("after re-applying batch 3 and reopening, backup records = %+v", got)
			}
		})
	}

	damaged := map[string]func([]byte) []byte{
		"flipped byte in last batch": func(b []byte) []byte { b[end2+10] ^= 0x40; return b },
		"zeroed commit frame":        func(b []byte) []byte { clear(b[end3-13:]); return b },
		"zero-filled tail":           func(b []byte) []byte { return append(b[:end2], make([]byte, 4096)...) },
		// The last batch's frames may reach the disk out of order: a
		// damaged length with the rest of its batch intact after it is
		// still a torn tail, however many frames the damage covers.
		"length of first frame in last batch": func(b []byte) []byte { b[end2] ^= 0x40; return b },
		"length zeroed in last batch":         func(b []byte) []byte { clear(b[end2 : end2+4]); return b },
		"two frames zeroed in last batch":     func(b []byte) []byte { clear(b[end2 : end2+40]); return b },
		"length of last commit":               func(b []byte) []byte { b[end3-13] ^= 0x01; return b },
	}
	for name, damage := range damaged {
		t.Run(name, func(t *testing.T) {
			d := t.TempDir()
			if err := os.WriteFile(filepath.Join(d, FileName), damage(slices.Clone(full)), 0o644); err != nil {
				t.Fatal(err)
			}
			checkAfterB2(t, openT(t, d, testOptions(t)))
		})
	}

	t.Run("garbage after last batch", func(t *testing.T) {
		d := t.TempDir()
		data := append(slices.Clone(full), "\x07\x00\x00\x00garbage"...)
		if err := os.WriteFile(filepath.Join(d, FileName), data, 0o644); err != nil {
			t.Fatal(err)
		}
		s := openT(t, d, testOptions(t))
		if got := scanAll(t, s, "m", true); len(got) != 1 {
			t.Fatalf("backup records = %+v, want batch 3's d3", got)
		}
		if s.Stats().FileBytes != end3 {
			t.Fatalf("FileBytes = %d, want %d", s.Stats().FileBytes, end3)
		}
	})
}

// Damage in the middle of the log (a later batch follows the damaged one
// intact) is refused and the file left as it is: cutting it there, as a
// torn tail is cut, would lose acknowledged batches and bring back a key
// a later batch deleted. That holds when the damaged frame is a batch's
// commit followed by exactly one more batch too (the next commit is then
// that batch's own), and when the damage is to a frame's length, which no
// longer says where the next frame starts.
func TestOpen_damagedMiddleRefused(t *testing.T) {
	t.Parallel()
	// Batch 2 starts at end1 with its put; batch 1's commit frame is its
	// last 13 bytes.
	const commitLen = frameHeaderLen + 5
	for _, tc := range []struct {
		name    string
		batches int
		// damage damages data, given the file size after batch 1.
		damage func(data []byte, end1 int64)
	}{
		{"body of put of batch 2 of 3", 3, func(b []byte, end1 int64) { b[end1+frameHeaderLen+2] ^= 0x01 }},
		{"checksum of put of batch 2 of 3", 3, func(b []byte, end1 int64) { b[end1+5] ^= 0x01 }},
		{"commit of batch 1 of 2", 2, func(b []byte, end1 int64) { b[end1-1] ^= 0x01 }},
		{"checksum of commit of batch 1 of 2", 2, func(b []byte, end1 int64) { b[end1-commitLen+4] ^= 0x01 }},
		{"length of put of batch 2 of 3 zeroed", 3, func(b []byte, end1 int64) { clear(b[end1 : end1+4]) }},
		{"length of put of batch 2 of 3 one longer", 3, func(b []byte, end1 int64) { b[end1]++ }},
		{"length of put of batch 2 of 3 one shorter", 3, func(b []byte, end1 int64) { b[end1]-- }},
		{"length of put of batch 2 of 3 past the end", 3, func(b []byte, end1 int64) { b[end1+2] ^= 0x10 }},
		{"length of put of batch 2 of 3 huge", 3, func(b []byte, end1 int64) { b[end1+3] = 0xff }},
		{"length of commit of batch 1 of 2", 2, func(b []byte, end1 int64) { b[end1-commitLen] ^= 0x40 }},
		{"commit of batch 1 of 2 zeroed", 2, func(b []byte, end1 int64) { clear(b[end1-commitLen : end1]) }},
		{"start of put of batch 2 of 3 zeroed", 3, func(b []byte, end1 int64) { clear(b[end1 : end1+frameHeaderLen+4]) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s := openT(t, dir, testOptions(t))
			bs := make([]abi.Batch, 3)
			bs[0].Put("m", "a", false, []byte("a1"), 0)
			bs[1].Put("m", "b", false, []byte("b2"), 0)
			bs[2].Delete("m", "a", false)
			var end1 int64
			for i := range tc.batches {
				bs[i].Now = int64(i + 1)
				applyT(t, s, &bs[i])
				if i == 0 {
					end1 = s.Stats().FileBytes
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, FileName)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			tc.damage(data, end1)
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			s2, err := Open(context.Background(), dir, testOptions(t))
			if err == nil {
				got := scanAll(t, s2, "m", false)
				s2.Close()
				t.Fatalf("Open succeeded with records %+v; want the damage refused (every batch was acknowledged)", got)
			}
			if !errors.Is(err, abi.ErrInternal) || !strings.Contains(err.Error(), "damaged in the middle") || !strings.Contains(err.Error(), "offset") {
				t.Fatalf("Open = %v, want the damage refused", err)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(after, data) {
				t.Fatalf("the file changed: %d bytes, was %d", len(after), len(data))
			}
		})
	}
}

// TestOpen_invalidContent checks that a log whose checksums match but whose
// content is invalid is refused, not truncated.
func TestOpen_invalidContent(t *testing.T) {
	t.Parallel()
	valid := appendHeader(nil)
	valid, _ = appendPut(valid, false, "m", "k", 0, 1, 1, []byte("v"))
	valid = appendCommit(valid, 1)

	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"not a log", []byte("this is some other file, long enough"), abi.ErrInvalidArgument},
		{"other format version", func() []byte {
			h := binary.LittleEndian.AppendUint32([]byte(fileMagic), formatVersion+1)
			return binary.LittleEndian.AppendUint32(h, crc32.Checksum(h, castagnoli))
		}(), abi.ErrInvalidArgument},
		{"unknown frame kind", func() []byte {
			b := appendHeader(nil)
			b = append(b, make([]byte, frameHeaderLen)...)
			b = append(b, 9, 1, 2, 3)
			return sealFrame(b, headerLen)
		}(), abi.ErrInternal},
		{"commit count mismatch", func() []byte {
			b, _ := appendPut(appendHeader(nil), false, "m", "k", 0, 1, 1, nil)
			return appendCommit(b, 2)
		}(), abi.ErrInternal},
		{"invalid key", func() []byte {
			b, _ := appendPut(appendHeader(nil), false, "m", "a\x00b", 0, 1, 1, nil)
			return appendCommit(b, 1)
		}(), abi.ErrInternal},
		{"valid control", valid, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := t.TempDir()
			path := filepath.Join(d, FileName)
			if err := os.WriteFile(path, tt.data, 0o644); err != nil {
				t.Fatal(err)
			}
			s, err := Open(context.Background(), d, testOptions(t))
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				s.Close()
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open = %v, want %v", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "logstore: ") {
				t.Fatalf("error %q does not name the package", err)
			}
			after, _ := os.ReadFile(path)
			if !bytes.Equal(after, tt.data) {
				t.Fatalf("Open changed a log it refused")
			}
		})
	}
}

// TestOpen_newerFormatVersion checks that a log of a newer format version is
// refused as such, untouched, and not as a file that is no logstore log: the
// operator needs a newer build, not another directory.
func TestOpen_newerFormatVersion(t *testing.T) {
	t.Parallel()
	h := binary.LittleEndian.AppendUint32([]byte(fileMagic), formatVersion+1)
	data := binary.LittleEndian.AppendUint32(h, crc32.Checksum(h, castagnoli))
	data = append(data, "frames of the newer format"...)
	d := t.TempDir()
	path := filepath.Join(d, FileName)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), d, testOptions(t))
	if !errors.Is(err, abi.ErrInvalidArgument) {
		t.Fatalf("Open = %v, want %v", err, abi.ErrInvalidArgument)
	}
	if msg := err.Error(); !strings.Contains(msg, "newer") || !strings.Contains(msg, fmt.Sprintf("version %d", formatVersion+1)) || strings.Contains(msg, "not a logstore log") {
		t.Fatalf("Open = %q; want it to say the log is of a newer format version", msg)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, data) {
		t.Fatalf("Open changed a log it refused")
	}
}

// TestOpen_newFileCrash covers a crash between creating the log and
// syncing its header: a file shorter than the header is started afresh.
func TestOpen_newFileCrash(t *testing.T) {
	t.Parallel()
	// A header cut short, or zeros where it was being written (a file
	// system that extended the file before the data landed).
	for _, data := range [][]byte{nil, appendHeader(nil)[:1], appendHeader(nil)[:headerLen-1], make([]byte, headerLen), make([]byte, 4096)} {
		n := len(data)
		d := t.TempDir()
		if err := os.WriteFile(filepath.Join(d, FileName), data, 0o644); err != nil {
			t.Fatal(err)
		}
		s := openT(t, d, testOptions(t))
		var b abi.Batch
		b.Now = 1
		b.Put("m", "k", false, []byte("v"), 0)
		applyT(t, s, &b)
		s.Close()
		s = openT(t, d, testOptions(t))
		if r, err := abi.GetOne(context.Background(), s, "m", "k", false); err != nil || string(r.Value) != "v" {
			t.Fatalf("file of %d bytes: GetOne = %+v, %v", n, r, err)
		}
	}
}

// TestStore_compaction overwrites and deletes records until the log is
// compacted several times, and checks that the log stays bounded and that
// every record, with its metadata, survives compaction and reopening.
func TestStore_compaction(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	o := testOptions(t)
	o.CompactMinBytes = 8 << 10
	s := openT(t, dir, o)
	ctx := context.Background()
	want := map[string]abi.Record{}
	now := int64(1000)
	for round := 0; round < 40; round++ {
		var b abi.Batch
		now++
		b.Now = now
		for k := 0; k < 50; k++ {
			key := fmt.Sprintf("key-%03d", k)
			if k%7 == round%7 {
				b.Delete("m", key, false)
				delete(want, key)
				continue
			}
			v := bytes.Repeat([]byte{byte(round)}, 40+k)
			exp := int64(0)
			if k%5 == 0 {
				exp = int64(10_000 + k)
			}
			b.Put("m", key, false, v, exp)
			r, ok := want[key]
			if !ok {
				r = abi.Record{Map: "m", Key: key, CreatedAt: now}
			}
			r.Value, r.ExpirationTime, r.UpdatedAt = v, exp, now
			want[key] = r
		}
		applyT(t, s, &b)
		st := s.Stats()
		if st.FileBytes >= o.CompactMinBytes && st.FileBytes-headerLen > 2*st.LiveBytes+(4<<10) {
			t.Fatalf("round %d: log is %d bytes for %d live bytes: compaction did not keep garbage below half", round, st.FileBytes, st.LiveBytes)
		}
	}
	st := s.Stats()
	if st.Compactions < 3 {
		t.Fatalf("Compactions = %d after 40 rounds of overwrites, want several (stats %+v)", st.Compactions, st)
	}
	check := func(s *Store) {
		t.Helper()
		got := scanAll(t, s, "m", false)
		if len(got) != len(want) {
			t.Fatalf("scan has %d records, want %d", len(got), len(want))
		}
		for _, r := range got {
			w := want[r.Key]
			if !bytes.Equal(r.Value, w.Value) || r.CreatedAt != w.CreatedAt || r.UpdatedAt != w.UpdatedAt || r.ExpirationTime != w.ExpirationTime {
				t.Fatalf("record %q = %+v, want %+v", r.Key, r, w)
			}
		}
		exp, err := s.ListExpired(ctx, 1<<40, 0)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, w := range want {
			if w.ExpirationTime > 0 {
				n++
			}
		}
		if len(exp) != n || !slices.IsSortedFunc(exp, func(a, b abi.Record) int { return int(a.ExpirationTime - b.ExpirationTime) }) {
			t.Fatalf("ListExpired = %d records (sorted: %v), want %d in expiration order", len(exp), slices.IsSortedFunc(exp, func(a, b abi.Record) int { return int(a.ExpirationTime - b.ExpirationTime) }), n)
		}
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A leftover compaction file (a crash during compaction) is removed.
	if err := os.WriteFile(filepath.Join(dir, compactFileName), []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, o)
	check(s)
	if _, err := os.Stat(filepath.Join(dir, compactFileName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("leftover compaction file still there: %v", err)
	}
}

// TestStore_compactionAtOpen: a log that is mostly garbage is compacted at
// open, even below the write that would have triggered it.
func TestStore_compactionAtOpen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	o := testOptions(t)
	o.CompactMinBytes = 1 << 30 // never while writing
	s := openT(t, dir, o)
	for i := 0; i < 20; i++ {
		var b abi.Batch
		b.Now = int64(i + 1)
		b.Put("m", "k", false, bytes.Repeat([]byte("x"), 1000), 0)
		applyT(t, s, &b)
	}
	before := s.Stats().FileBytes
	s.Close()
	o.CompactMinBytes = 1 << 10
	s = openT(t, dir, o)
	st := s.Stats()
	if st.Compactions != 1 || st.FileBytes >= before/10 {
		t.Fatalf("after reopening: %+v, want one compaction and a log much smaller than %d bytes", st, before)
	}
	if r, err := abi.GetOne(context.Background(), s, "m", "k", false); err != nil || r.CreatedAt != 1 || r.UpdatedAt != 20 {
		t.Fatalf("GetOne = %+v, %v", r, err)
	}
}

// TestStore_expiryIndex moves expiration times back and forth, so that the
// heap holds stale and duplicate items, and compares ListExpired with a
// brute-force answer.
func TestStore_expiryIndex(t *testing.T) {
	t.Parallel()
	s := openT(t, t.TempDir(), testOptions(t))
	ctx := context.Background()
	exps := map[string]int64{}
	for round := 0; round < 30; round++ {
		var b abi.Batch
		b.Now = int64(round + 1)
		for k := 0; k < 100; k++ {
			key := fmt.Sprintf("k%03d", k)
			switch (k + round) % 4 {
			case 0:
				b.Delete("m", key, false)
				delete(exps, key)
			case 1:
				b.Put("m", key, false, nil, 0)
				exps[key] = 0
			default:
				e := int64(50 + (k*7+round)%3) // few distinct times: many ties and repeats
				b.Put("m", key, false, nil, e)
				exps[key] = e
			}
		}
		applyT(t, s, &b)
		for _, now := range []int64{49, 50, 51, 52} {
			for _, limit := range []int{1, 5, 1000} {
				got, err := s.ListExpired(ctx, now, limit)
				if err != nil {
					t.Fatal(err)
				}
				var want []string
				for k, e := range exps {
					if e > 0 && e <= now {
						want = append(want, fmt.Sprintf("%d/%s", e, k))
					}
				}
				slices.Sort(want) // times are all two digits: string order is time order
				if len(want) > limit {
					want = want[:limit]
				}
				var gotKeys []string
				for _, r := range got {
					if r.Value != nil {
						t.Fatalf("ListExpired returned a value for %q", r.Key)
					}
					gotKeys = append(gotKeys, fmt.Sprintf("%d/%s", r.ExpirationTime, r.Key))
				}
				if !slices.Equal(gotKeys, want) {
					t.Fatalf("round %d, ListExpired(now=%d, limit=%d) = %v, want %v", round, now, limit, gotKeys, want)
				}
			}
		}
	}
	if n := len(s.ix.exp); n > 2*s.ix.nExpiring+1024 {
		t.Fatalf("expiry heap holds %d items for %d expiring records: stale items are not dropped", n, s.ix.nExpiring)
	}
}

// TestStore_expiryIndexSharesMapNames: after a reopen, the expiry heap's
// items share their bucket's map name. Found by measuring the index: Open
// reads a new map name string per frame, and every expiring record's heap
// item kept its own, so with 500-byte map names the index took 687 bytes
// per record after a reopen against 186 before it, and a store that fit in
// a plugin's memory limit could fail to open again.
func TestStore_expiryIndexSharesMapNames(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openT(t, dir, testOptions(t))
	mapName := strings.Repeat("m", abi.MaxMapNameBytes)
	for i := 0; i < 10; i++ {
		var b abi.Batch
		b.Now = int64(i + 1)
		for j := 0; j < 100; j++ {
			b.Put(mapName, fmt.Sprintf("k%02d-%02d", i, j), j%2 == 0, nil, int64(1000+j))
		}
		applyT(t, s, &b)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, testOptions(t))
	names := map[*byte]struct{}{}
	for _, it := range s.ix.exp {
		names[unsafe.StringData(it.id.mapName)] = struct{}{}
	}
	if len(s.ix.exp) != 1000 || len(names) > 2 {
		t.Fatalf("after reopening, %d expiry items hold %d copies of the map name; want 1000 items sharing one per bucket (2)", len(s.ix.exp), len(names))
	}
}

// TestStore_writeFailure makes the file unwritable under the store and
// checks that the failed batch is not applied, that the store refuses
// further writes instead of guessing, and that a reopen recovers.
func TestStore_writeFailure(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openT(t, dir, testOptions(t))
	ctx := context.Background()
	var b1 abi.Batch
	b1.Now = 1
	b1.Put("m", "k", false, []byte("v1"), 0)
	applyT(t, s, &b1)

	ro, err := os.Open(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	rw := s.f
	s.f = ro
	s.mu.Unlock()
	rw.Close()

	var b2 abi.Batch
	b2.Now = 2
	b2.Put("m", "k", false, []byte("v2"), 0)
	b2.Put("m", "k2", false, []byte("v2"), 0)
	if err := s.Apply(ctx, &b2); !errors.Is(err, abi.ErrUnavailable) {
		t.Fatalf("Apply on an unwritable file = %v, want CodeUnavailable", err)
	}
	if r, err := abi.GetOne(ctx, s, "m", "k", false); err != nil || string(r.Value) != "v1" {
		t.Fatalf("after the failed batch GetOne = %+v, %v; want v1", r, err)
	}
	if err := s.Apply(ctx, &b1); !errors.Is(err, abi.ErrUnavailable) || !strings.Contains(err.Error(), "reopen") {
		t.Fatalf("Apply after a failed rollback = %v, want CodeUnavailable telling to reopen", err)
	}
	s.Close()
	s = openT(t, dir, testOptions(t))
	if got := scanAll(t, s, "m", false); len(got) != 1 || string(got[0].Value) != "v1" {
		t.Fatalf("after reopening: %+v, want only k=v1", got)
	}
	applyT(t, s, &b2)
}

// TestStore_deleteMissingWritesNothing: deletes of absent records are not
// errors and do not grow the log.
func TestStore_deleteMissingWritesNothing(t *testing.T) {
	t.Parallel()
	s := openT(t, t.TempDir(), testOptions(t))
	before := s.Stats().FileBytes
	var b abi.Batch
	b.Now = 1
	b.Delete("m", "nope", false)
	b.Delete("m", "nope", true)
	applyT(t, s, &b)
	if after := s.Stats().FileBytes; after != before {
		t.Fatalf("log grew from %d to %d bytes for deletes of absent records", before, after)
	}
}

// TestStore_largeBatchChunks writes a batch larger than the write buffer, so
// that it is written in several chunks, and reads it back after reopening.
func TestStore_largeBatchChunks(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openT(t, dir, testOptions(t))
	var b abi.Batch
	b.Now = 7
	v := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	for i := 0; i < 40; i++ {
		b.Put("big", fmt.Sprintf("k%02d", i), false, append([]byte{byte(i)}, v...), 0)
	}
	applyT(t, s, &b)
	s.Close()
	s = openT(t, dir, testOptions(t))
	got := scanAll(t, s, "big", false)
	if len(got) != 40 {
		t.Fatalf("scan has %d records, want 40", len(got))
	}
	for i, r := range got {
		if r.Value[0] != byte(i) || !bytes.Equal(r.Value[1:], v) {
			t.Fatalf("record %d has the wrong value", i)
		}
	}
}

// TestStore_valuesOwned: values read in one merged read share a buffer;
// appending to one must not change another, and changing a returned value
// must not change the store.
func TestStore_valuesOwned(t *testing.T) {
	t.Parallel()
	s := openT(t, t.TempDir(), testOptions(t))
	var b abi.Batch
	b.Now = 1
	b.Put("m", "a", false, []byte("aaaa"), 0)
	b.Put("m", "b", false, []byte("bbbb"), 0)
	b.Put("m", "c", false, []byte{}, 0)
	applyT(t, s, &b)
	for _, read := range []func() []abi.Record{
		func() []abi.Record { return scanAll(t, s, "m", false) },
		func() []abi.Record {
			r, err := s.Get(context.Background(), "m", false, []string{"c", "a", "b"})
			if err != nil {
				t.Fatal(err)
			}
			slices.SortFunc(r, func(x, y abi.Record) int { return strings.Compare(x.Key, y.Key) })
			return r
		},
	} {
		got := read()
		if len(got) != 3 || got[2].Value == nil {
			t.Fatalf("read %+v, want a, b and c with an empty, non-nil value", got)
		}
		_ = append(got[0].Value, "XXXX"...)
		got[1].Value[0] = 'Z'
		if string(got[1].Value) != "Zbbb" || len(got[2].Value) != 0 {
			t.Fatalf("appending to one value changed another: %q %q", got[1].Value, got[2].Value)
		}
		again := read()
		if string(again[0].Value) != "aaaa" || string(again[1].Value) != "bbbb" {
			t.Fatalf("changing returned values changed the store: %q %q", again[0].Value, again[1].Value)
		}
	}
}

// TestOpen_syncsDirectory: Open makes the log's directory entry durable
// before the store takes writes. A compaction renames its file over the
// log and then syncs the directory; a crash or a trap of the wasm instance
// between the two (at the deadline, every WASI call after the rename
// traps) left a log whose name a power loss could take back to the old
// file, and Open did not sync the directory again, so batches acknowledged
// after it could vanish with the new file. Not parallel: it replaces
// syncDir.
func TestOpen_syncsDirectory(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, testOptions(t))
	var b abi.Batch
	b.Now = 1
	b.Put("m", "k", false, []byte("v"), 0)
	applyT(t, s, &b)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The state a compaction leaves between its rename and its directory
	// sync: a complete log under the log's name.
	orig := syncDir
	t.Cleanup(func() { syncDir = orig })
	var synced []string
	syncDir = func(d string) error {
		synced = append(synced, d)
		return orig(d)
	}
	s = openT(t, dir, testOptions(t))
	if !slices.Contains(synced, dir) {
		t.Fatalf("Open of an existing log synced directories %q; want %s synced before it takes writes", synced, dir)
	}
	// A directory that cannot be synced is reported, not written to.
	s.Close()
	syncDir = func(string) error { return errors.New("sync refused") }
	if s, err := Open(context.Background(), dir, testOptions(t)); err == nil {
		s.Close()
		t.Fatalf("Open with a failing directory sync succeeded; want an error")
	} else if !errors.Is(err, abi.ErrUnavailable) || !strings.Contains(err.Error(), "sync refused") {
		t.Fatalf("Open with a failing directory sync = %v; want CodeUnavailable with the cause", err)
	}
}
