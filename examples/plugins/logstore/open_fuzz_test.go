//go:build !wasip1

package logstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/topgun-go/topgun/abi"
)

// logFromOps builds the frames of a log from ops, three bytes each: a kind
// (put, delete, commit of the pending frames, commit of a wrong count, or a
// flipped byte in the frames written so far) and two arguments.
func logFromOps(ops []byte) []byte {
	log := appendHeader(nil)
	pending := 0
	for ; len(ops) >= 3; ops = ops[3:] {
		a, b := ops[1], ops[2]
		mapName, key := string('m'+rune(a&1)), string('a'+rune(b%8))
		switch ops[0] % 6 {
		case 0, 1:
			log, _ = appendPut(log, a&2 != 0, mapName, key, int64(a>>4), int64(b), int64(a), make([]byte, int(a>>2)))
			pending++
		case 2:
			log = appendDelete(log, a&2 != 0, mapName, key)
			pending++
		case 3:
			log = appendCommit(log, uint32(pending))
			pending = 0
		case 4:
			log = appendCommit(log, uint32(a))
			pending = 0
		case 5:
			if len(log) > headerLen {
				log[headerLen+(int(a)<<8|int(b))%(len(log)-headerLen)] ^= 1 << (b % 8)
			}
		}
	}
	return log
}

type storeDump struct {
	Maps    []string
	Records map[string][]abi.Record
	Expired []abi.Record
}

// dumpStore reads everything a store holds through its API.
func dumpStore(t *testing.T, s *Store) storeDump {
	ctx := context.Background()
	maps, err := s.ListMaps(ctx)
	if err != nil {
		t.Fatalf("ListMaps: %v", err)
	}
	d := storeDump{Maps: maps, Records: map[string][]abi.Record{}}
	seen := map[string]bool{}
	for _, m := range append(maps, "m", "n") {
		if seen[m] {
			continue
		}
		seen[m] = true
		for _, backup := range []bool{false, true} {
			var keys []string
			var cursor []byte
			for range 100 {
				p, err := s.Scan(ctx, abi.ScanRequest{Map: m, Backup: backup, Cursor: cursor, Limit: 3})
				if err != nil {
					t.Fatalf("Scan: %v", err)
				}
				for _, r := range p.Records {
					keys = append(keys, r.Key)
				}
				id := m + "/" + string(rune('0'+btoi(backup)))
				d.Records[id] = append(d.Records[id], p.Records...)
				if cursor = p.Cursor; cursor == nil {
					break
				}
			}
			got, err := s.Get(ctx, m, backup, keys)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if len(got) != len(keys) {
				t.Fatalf("Get of %d scanned keys returned %d records", len(keys), len(got))
			}
		}
	}
	if d.Expired, err = s.ListExpired(ctx, 1<<62, 1000); err != nil {
		t.Fatalf("ListExpired: %v", err)
	}
	return d
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// FuzzOpen opens a log built from the fuzzer's bytes, as a damaged log
// would be met at open: raw frames (the checksum stops most of them) or
// frames built from ops with valid checksums, wrong commit counts and
// flipped bits. Open must not panic; it either refuses the log with an
// error or opens it, and then everything it holds can be read, and
// reopening it finds the same content.
func FuzzOpen(f *testing.F) {
	f.Add([]byte{0, 1, 2, 2, 0, 3, 3, 0, 0}, false)
	f.Add([]byte{0, 1, 2, 3, 0, 0, 0, 5, 3, 5, 0, 9, 3, 0, 0}, false)
	f.Add([]byte{0, 1, 2, 4, 7, 0, 1, 0, 0, 3, 0, 0}, false)
	f.Add([]byte{0, 0, 0, 0, 1, 2, 3, 4}, true)
	f.Fuzz(func(t *testing.T, data []byte, raw bool) {
		if len(data) > 4096 {
			return
		}
		log := appendHeader(nil)
		if raw {
			log = append(log, data...)
		} else {
			log = logFromOps(data)
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, FileName), log, 0o644); err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		s, err := Open(ctx, dir, nil)
		if err != nil {
			var ae *abi.Error
			if !errors.As(err, &ae) {
				t.Fatalf("Open failed with a non-ABI error: %v", err)
			}
			return
		}
		first := dumpStore(t, s)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s, err = Open(ctx, dir, nil)
		if err != nil {
			t.Fatalf("reopening a log Open accepted: %v", err)
		}
		defer s.Close()
		if again := dumpStore(t, s); !reflect.DeepEqual(first, again) {
			t.Fatalf("reopen changed the content:\n%+v\n%+v", first, again)
		}
	})
}
