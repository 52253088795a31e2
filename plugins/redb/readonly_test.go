package redb

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/topgun-go/topgun/abi"
)

// A read-only open never writes: it refuses Apply, creates no missing file,
// leaves an empty one alone, shares the file with other readers and is kept
// out (with a clear error, not a hang) by a writer.
func TestOpen_readOnly(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "db.redb")
	w, err := Open(ctx, path, &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	b := &abi.Batch{Now: 1}
	b.Put("m", "k", false, []byte("v"), 7)
	if err := w.Apply(ctx, b); err != nil {
		t.Fatal(err)
	}
	ro := &Options{ReadOnly: true, Timeout: 100 * time.Millisecond}
	if _, err := Open(ctx, path, ro); abi.CodeOf(err) != abi.CodeUnavailable {
		t.Errorf("read-only open of a file a writer holds: %v, want CodeUnavailable", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	r1, err := Open(ctx, path, ro)
	if err != nil {
		t.Fatal(err)
	}
	defer r1.Close()
	r2, err := Open(ctx, path, ro)
	if err != nil {
		t.Fatalf("a second reader: %v", err)
	}
	defer r2.Close()
	if _, err := Open(ctx, path, &Options{Timeout: 100 * time.Millisecond}); abi.CodeOf(err) != abi.CodeUnavailable {
		t.Errorf("writer open while readers hold the file: %v, want CodeUnavailable", err)
	}
	rec, err := abi.GetOne(ctx, r1, "m", "k", false)
	if err != nil || string(rec.Value) != "v" || rec.ExpirationTime != 7 {
		t.Errorf("read %+v, %v", rec, err)
	}
	if err := r1.Apply(ctx, b); abi.CodeOf(err) != abi.CodeUnsupported {
		t.Errorf("Apply on a read-only backend: %v, want CodeUnsupported", err)
	}

	missing := filepath.Join(dir, "missing.redb")
	if _, err := Open(ctx, missing, ro); abi.CodeOf(err) != abi.CodeNotFound {
		t.Errorf("read-only open of a missing file: %v, want CodeNotFound", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("read-only open created the missing file: %v", err)
	}
	empty := filepath.Join(dir, "empty.redb")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, empty, ro); abi.CodeOf(err) != abi.CodeInvalidArgument {
		t.Errorf("read-only open of an empty file: %v, want CodeInvalidArgument", err)
	}
	if st, err := os.Stat(empty); err != nil || st.Size() != 0 {
		t.Errorf("read-only open wrote to the empty file: %v", err)
	}
}
