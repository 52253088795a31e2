package host

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/host/internal/meter"
)

// withSection returns trap.wasm, made multi-instance, with the entries of
// body (a vector) added to its section id, or as a new section.
func withSection(t *testing.T, id byte, body []byte) string {
	t.Helper()
	bin, err := os.ReadFile("testdata/wat/trap.wasm")
	if err != nil {
		t.Fatal(err)
	}
	// capabilities atomic_batch|multi_instance, so that several instances live
	bin = bytes.Replace(bin, []byte("\xa4trap\x01\x00\x04"), []byte("\xa4trap\x01\x00\x14"), 1)
	out := append([]byte(nil), bin[:8]...)
	section := func(b []byte) {
		out = append(out, id)
		out = binary.AppendUvarint(out, uint64(len(b)))
		out = append(out, b...)
	}
	done := false
	for i := 8; i < len(bin); {
		sid := bin[i]
		n, k := binary.Uvarint(bin[i+1:])
		end := i + 1 + k + int(n)
		switch {
		case done || sid == 0 || sid < id:
			out = append(out, bin[i:end]...)
		case sid == id:
			old := bin[i+1+k : end]
			on, ok := binary.Uvarint(old)
			bn, bk := binary.Uvarint(body)
			merged := binary.AppendUvarint(nil, on+bn)
			merged = append(append(merged, old[ok:]...), body[bk:]...)
			section(merged)
			done = true
		default:
			section(body)
			out = append(out, bin[i:end]...)
			done = true
		}
		i = end
	}
	if !done {
		section(body)
	}
	path := filepath.Join(t.TempDir(), "amp.wasm")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// vector returns a vector of n copies of item.
func vector(n int, prefix []byte, item ...byte) []byte {
	b := binary.AppendUvarint(append([]byte(nil), prefix...), uint64(n))
	for i := 0; i < n; i++ {
		b = append(b, item...)
	}
	return b
}

// What wazero allocates on the Go heap for each instance, beside its
// linear memory, is bounded: a few megabytes of a module cannot make every
// instance of a pool take tens of megabytes outside TOPGUN_PLUGIN_MEMORY_MB
// (globals, data segments and element entries are allocated per instance).
func TestTenants_instanceHeapOutsideMemoryLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates hundreds of megabytes")
	}
	for _, c := range []struct {
		name string
		id   byte
		body []byte
		load bool // within the limits: refusing it would leave nothing checked
	}{
		// i32 globals, 5 bytes each
		{"globals", 6, vector(1<<20, nil, 0x7f, 0x00, 0x41, 0x00, 0x0b), false},
		// empty passive data segments, 2 bytes each
		{"dataSegments", 11, vector(2<<20, nil, 0x01, 0x00), false},
		// one passive segment of 8M references to function 0
		{"elementEntries", 9, vector(8<<20, []byte{1, 1, 0}, 0), false},
		// empty passive element segments, 3 bytes each
		{"elementSegments", 9, vector(2<<20, nil, 1, 0, 0), false},
		// as many as a module may have
		{"globalsAtLimit", 6, vector(meter.MaxGlobals, nil, 0x7f, 0x00, 0x41, 0x00, 0x0b), true},
		{"dataSegmentsAtLimit", 11, vector(meter.MaxSegments-1000, nil, 0x01, 0x00), true},
		{"elementEntriesAtLimit", 9, vector(meter.MaxElements, []byte{1, 1, 0}, 0), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := testOptions(t)
			o.Logger = hclog.NewNullLogger()
			o.CacheDir = "-"
			o.MemoryLimitMB = 1
			o.PoolSize = 2
			b, err := Load(context.Background(), withSection(t, c.id, c.body), o)
			if err != nil {
				if c.load {
					t.Fatalf("refused: %v", err)
				}
				t.Logf("refused: %v", err)
				return
			}
			defer b.Close()
			first, _, err := b.pool.acquire(context.Background(), abi.CallGet, false)
			if err != nil {
				t.Fatal(err)
			}
			defer b.pool.release(first)
			before := heapAfterGC()
			second, _, err := b.pool.acquire(context.Background(), abi.CallGet, false)
			if err != nil {
				t.Fatal(err)
			}
			defer b.pool.release(second)
			grew := int64(heapAfterGC()) - int64(before)
			t.Logf("a second instance takes %d MiB of heap", grew>>20)
			if grew > 16<<20 {
				t.Errorf("an instance limited to 1 MiB of memory takes %d MiB of the host's heap", grew>>20)
			}
		})
	}
}

// A module whose name section claims four billion names, followed by a
// section id the meter does not know, is refused before wazero sees it:
// before, the meter's "unsupported" let it through and wazero's decoder
// took the process (and every tenant in it) down with an out-of-memory
// fatal error.
func TestLoad_nameBombBeforeUnknownSection(t *testing.T) {
	bin := "\x00asm\x01\x00\x00\x00" +
		"\x00\x10\x04name\x01\x09\xff\xff\xff\xff\x0f\x00\x00\x00\x00" +
		"\x7f\x00"
	path := filepath.Join(t.TempDir(), "bypass.wasm")
	if err := os.WriteFile(path, []byte(bin), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, trust := range []Trust{TrustSandboxed, TrustTrusted} {
		o := testOptions(t)
		o.CacheDir = "-"
		o.Trust = trust
		b, err := Load(context.Background(), path, o)
		if err == nil {
			_ = b.Close()
		}
		if err == nil || !strings.Contains(err.Error(), "plugin bypass.wasm: invalid wasm module:") {
			t.Errorf("%s: err = %v, want an invalid module", trust, err)
		}
	}
}

// A plugin cannot make the host allocate for a descriptor number of its
// choice: fd_renumber to 2^26 grew wazero's descriptor table to hold every
// number up to it, 512 MiB of the host's heap outside the memory limit
// (16 GiB for 2^31-1, the out-of-memory end of the process and of every
// tenant in it), kept while the instance lived.
func TestTenants_renumberFarDescriptor(t *testing.T) {
	o := testOptions(t)
	o.Logger = hclog.NewNullLogger()
	o.DataDir = t.TempDir()
	b := mustLoad(t, "testdata/wat/renumber.wasm", o)
	before := heapAfterGC()
	if _, err := b.Get(context.Background(), "evil", false, []string{"k"}); err != nil {
		t.Fatal(err)
	}
	grew := int64(heapAfterGC()) - int64(before)
	t.Logf("the renumber took %d MiB of heap", grew>>20)
	if grew > 16<<20 {
		t.Errorf("a plugin limited to %d MiB of memory made the host allocate %d MiB for one descriptor", o.MemoryLimitMB, grew>>20)
	}
}

// One poll_oneoff cannot make the host allocate for subscriptions of the
// guest's choice: 800,000 of them (64 MiB of the guest's memory) took
// about 70 MiB of the host's heap; more than maxPollSubscriptions are
// refused (EINVAL).
func TestTenants_pollSubscriptionsOnTheHostHeap(t *testing.T) {
	o := testOptions(t)
	o.Logger = hclog.NewNullLogger()
	b := mustLoad(t, "testdata/wat/pollflood.wasm", o)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if _, err := b.Get(context.Background(), "m", false, []string{"k"}); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	n := after.TotalAlloc - before.TotalAlloc
	t.Logf("the poll allocated %d MiB", n>>20)
	if n > 16<<20 {
		t.Errorf("one poll_oneoff allocated %d MiB on the host's heap", n>>20)
	}
}

// longNamesDir returns a new directory of n files with names of 245 bytes.
func longNamesDir(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	pad := strings.Repeat("x", 240)
	for i := 0; i < n; i++ {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%05d%s", i, pad)))
		if err != nil {
			t.Fatal(err)
		}
		_ = f.Close()
	}
	return dir
}

// fd_readdir cannot make the host keep a directory of the guest's choice:
// wazero reads, and keeps until the descriptor's next read or close, up to
// buf_len/24 entries of it, whatever part of them the guest's memory can
// take. 16 descriptors read with buf_len 0xffffffff (readdir.wasm, 128 KiB
// of memory) kept a directory of 20,000 long names 16 times, 88 MiB of the
// host's heap; 1024 open descriptors on 50,000 such names would keep 14 GiB.
func TestTenants_readdirCacheOnTheHostHeap(t *testing.T) {
	o := testOptions(t)
	o.Logger = hclog.NewNullLogger()
	o.DataDir = longNamesDir(t, 20000)
	o.CallTimeout = time.Minute
	b := mustLoad(t, "testdata/wat/readdir.wasm", o)
	before := heapAfterGC()
	if _, err := b.Get(context.Background(), "m", false, []string{"k"}); err != nil {
		t.Fatal(err)
	}
	grew := int64(heapAfterGC()) - int64(before)
	t.Logf("16 descriptors read kept %d MiB of heap", grew>>20)
	in, _, err := b.pool.acquire(context.Background(), abi.CallGet, false)
	if err != nil {
		t.Fatal(err)
	}
	defer b.pool.release(in)
	count := func(off uint32) uint32 { v, _ := in.mem.ReadUint32Le(off); return v }
	// The reads must have run: each opens, then fails only as it writes
	// past the guest's memory.
	if count(80) != 16 || count(88) != 16 {
		t.Fatalf("%d opens, %d reads failing with EFAULT (last errnos %d, %d), want 16 and 16",
			count(80), count(88), count(92), count(96))
	}
	if grew > 16<<20 {
		t.Errorf("16 directory descriptors of a plugin with 128 KiB of memory kept %d MiB of the host's heap", grew>>20)
	}
}

// One fd_readdir cannot hold a call past its deadline: wazero read all of
// a large buffer's entries inside the one host call (an lstat each, about
// 70 ms for 20,000), and a call of a 1 ms deadline whose guest made no
// other host call after it succeeded. The host reads in chunks and traps
// an overdue guest between them.
func TestTenants_readdirPastTheDeadline(t *testing.T) {
	o := testOptions(t)
	o.Logger = hclog.NewNullLogger()
	o.DataDir = longNamesDir(t, 20000)
	b := mustLoad(t, "testdata/wat/readdirlong.wasm", o)
	b.p.opts.CallTimeout = time.Millisecond // after Load, which it would fail
	_, err := b.Get(context.Background(), "m", false, []string{"k"})
	if !errors.Is(err, abi.ErrDeadlineExceeded) {
		t.Fatalf("get = %v, want deadline exceeded", err)
	}
}
