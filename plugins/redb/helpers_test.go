package redb

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	bolt "go.etcd.io/bbolt"

	"github.com/topgun-go/topgun/abi"
)

// tWriter sends log lines to t.Log, so they show only when a test fails.
type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t testing.TB) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "storage.redb", Output: tWriter{t}, Level: hclog.Trace})
}

// testOptions are the options tests open with: real fsync (the backend
// as shipped) and logs to t.Log.
func testOptions(t testing.TB) *Options {
	o := DefaultOptions()
	o.Logger = testLogger(t)
	return o
}

// openTemp opens a fresh database in t.TempDir() and, at cleanup, checks
// its consistency and closes it.
func openTemp(t testing.TB) *Backend {
	t.Helper()
	b, err := Open(context.Background(), filepath.Join(t.TempDir(), "test.redb"), testOptions(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if !b.closed.Load() {
			checkConsistency(t, b)
		}
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

// reopen closes b and opens its file again.
func reopen(t testing.TB, b *Backend) *Backend {
	t.Helper()
	checkConsistency(t, b)
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	nb, err := Open(context.Background(), b.Path(), testOptions(t))
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	t.Cleanup(func() { _ = nb.Close() })
	return nb
}

// checkConsistency checks bbolt's own invariants (tx.Check) and the
// package's: every record decodes and has exactly one expiry index entry
// when it expires, every index entry points to such a record, and no map
// bucket is empty.
func checkConsistency(t testing.TB, b *Backend) {
	t.Helper()
	err := b.db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		want := map[string]bool{}
		err := tx.ForEach(func(name []byte, mb *bolt.Bucket) error {
			var backup bool
			switch {
			case bytes.Equal(name, bucketMeta) || bytes.Equal(name, bucketExpiry):
				return nil
			case bytes.HasPrefix(name, []byte(prefixPrimary)):
			case bytes.HasPrefix(name, []byte(prefixBackup)):
				backup = true
			default:
				return fmt.Errorf("unexpected bucket %q", name)
			}
			mapName := string(name[2:])
			n := 0
			err := mb.ForEach(func(k, v []byte) error {
				n++
				if bytes.IndexByte(k, 0) >= 0 && !bytes.Equal(k, emptyRecordKey) {
					return fmt.Errorf("record key %q contains NUL", k)
				}
				h, _, err := decodeRecord(k, v)
				if err != nil {
					return err
				}
				if h.ExpirationTime != 0 {
					want[string(appendExpiryKey(nil, h.ExpirationTime, mapName, backup, keyOf(k)))] = true
				}
				return nil
			})
			if err == nil && n == 0 {
				err = fmt.Errorf("empty map bucket %q", name)
			}
			return err
		})
		if err != nil {
			return err
		}
		err = tx.Bucket(bucketExpiry).ForEach(func(k, _ []byte) error {
			if !want[string(k)] {
				return fmt.Errorf("dangling expiry index entry %q", k)
			}
			delete(want, string(k))
			return nil
		})
		if err == nil && len(want) > 0 {
			err = fmt.Errorf("%d expiring records have no expiry index entry", len(want))
		}
		return err
	})
	if err != nil {
		t.Fatalf("consistency check of %s: %v", b.Path(), err)
	}
}

func mustApply(t testing.TB, b abi.Backend, batch *abi.Batch) {
	t.Helper()
	if err := b.Apply(context.Background(), batch); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

func wantCode(t testing.TB, err error, code abi.Code) {
	t.Helper()
	if got := abi.CodeOf(err); got != code {
		t.Fatalf("error code = %v (%v), want %v", got, err, code)
	}
}

func recordsEqual(a, b []abi.Record) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.Map != y.Map || x.Key != y.Key || x.Backup != y.Backup || !bytes.Equal(x.Value, y.Value) ||
			x.ExpirationTime != y.ExpirationTime || x.CreatedAt != y.CreatedAt || x.UpdatedAt != y.UpdatedAt {
			return false
		}
	}
	return true
}

// scanAll pages through a map with the given page bounds.
func scanAll(t testing.TB, b abi.Backend, mapName string, backup bool, limit, maxBytes int) []abi.Record {
	t.Helper()
	var out []abi.Record
	var cursor []byte
	for pages := 0; ; pages++ {
		if pages > 1_000_000 {
			t.Fatal("scan does not end")
		}
		p, err := b.Scan(context.Background(), abi.ScanRequest{Map: mapName, Backup: backup, Cursor: cursor, Limit: limit, MaxBytes: maxBytes})
		if err != nil {
			t.Fatalf("Scan: %v", err)
		}
		out = append(out, p.Records...)
		if p.Cursor == nil {
			return out
		}
		if len(p.Records) == 0 {
			t.Fatal("scan returned an empty page with a cursor")
		}
		cursor = p.Cursor
	}
}
