package host

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// readdirGuest is readdircall.wasm on dir, with the host's WASI (host) or
// wazero's own.
func readdirGuest(t *testing.T, dir string, host bool) api.Module {
	t.Helper()
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	t.Cleanup(func() { _ = rt.Close(ctx) })
	if host {
		if err := instantiateWASI(ctx, rt); err != nil {
			t.Fatal(err)
		}
	} else {
		wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	}
	bin, err := os.ReadFile("testdata/wat/readdircall.wasm")
	if err != nil {
		t.Fatal(err)
	}
	cfg := wazero.NewModuleConfig().WithFSConfig(wazero.NewFSConfig().WithDirMount(dir, "/"))
	m, err := rt.InstantiateWithConfig(ctx, bin, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func guestCall(t *testing.T, m api.Module, name string, args ...uint64) uint32 {
	t.Helper()
	r, err := m.ExportedFunction(name).Call(context.Background(), args...)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(r[0])
}

// wholeEnd is where the last whole entry of a fd_readdir answer ends, and
// the d_next of that entry (cookie when there is none).
func wholeEnd(b []byte, cookie uint64) (uint32, uint64) {
	var pos uint32
	for uint64(pos)+direntSize <= uint64(len(b)) {
		size := uint64(direntSize) + uint64(binary.LittleEndian.Uint32(b[pos+16:]))
		if uint64(pos)+size > uint64(len(b)) {
			break
		}
		cookie = binary.LittleEndian.Uint64(b[pos:])
		pos += uint32(size)
	}
	return pos, cookie
}

// The host reads a directory for fd_readdir in chunks (readdirChunked):
// what the guest gets is what wazero's own fd_readdir answers, for every
// buffer size, cut entry and end of memory, reading on from the last whole
// entry as a libc does.
func TestReaddirChunked_sameAsWazero(t *testing.T) {
	dir := t.TempDir()
	var want []string
	for i := 0; i < 1000; i++ {
		name := fmt.Sprintf("%d-", i)
		name += strings.Repeat("n", max(0, i%255+1-len(name)))
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		want = append(want, name)
	}
	want = append(want, ".", "..")
	slices.Sort(want)
	ref, got := readdirGuest(t, dir, false), readdirGuest(t, dir, true)
	memSize := ref.Memory().Size()
	const usedAt = 40 // after the path "." at 8, which open reads
	for _, buf := range []uint32{1024, 1027, memSize - 5000, memSize - 1100, memSize - 30, memSize - 10} {
		for _, bufLen := range []uint32{24, 100, 1024, 1025, 1300, 4096, 8192, 50000, 200000, memSize - buf, memSize - buf + 1, 0xffffffff} {
			name := fmt.Sprintf("buf %d buf_len %d", buf, bufLen)
			fdRef, fdGot := guestCall(t, ref, "open"), guestCall(t, got, "open")
			if int32(fdRef) < 0 || int32(fdGot) < 0 {
				t.Fatalf("open: %d, %d", int32(fdRef), int32(fdGot))
			}
			var names []string
			cookie := uint64(0)
			for round := 0; ; round++ {
				for _, m := range []api.Module{ref, got} {
					b, _ := m.Memory().Read(32, memSize-32)
					for i := range b {
						b[i] = 0xaa
					}
				}
				eRef := guestCall(t, ref, "readdir", uint64(fdRef), uint64(buf), uint64(bufLen), cookie, usedAt)
				eGot := guestCall(t, got, "readdir", uint64(fdGot), uint64(buf), uint64(bufLen), cookie, usedAt)
				if eRef != eGot {
					t.Fatalf("%s, cookie %d: errno %d, wazero's %d", name, cookie, eGot, eRef)
				}
				if eRef != 0 {
					break // EFAULT and EINVAL leave no answer to compare
				}
				bRef, _ := ref.Memory().Read(0, memSize)
				bGot, _ := got.Memory().Read(0, memSize)
				used := binary.LittleEndian.Uint32(bRef[usedAt:])
				// bufused may pass the end of memory: wazero answers
				// buf_len when the cut entry's header fits before it.
				end, next := wholeEnd(bRef[buf:min(uint64(buf)+uint64(used), uint64(memSize))], cookie)
				skipFrom, skipTo := uint64(buf)+uint64(end), uint64(buf)+uint64(end)
				if used == bufLen && bufLen-end < direntSize {
					// wazero leaves the room too small for a header as it was;
					// a chunk may have written the start of the header there.
					skipTo = min(uint64(buf)+uint64(bufLen), uint64(memSize))
				}
				if !slices.Equal(bGot[:skipFrom], bRef[:skipFrom]) || !slices.Equal(bGot[skipTo:], bRef[skipTo:]) {
					i := 0
					for i < len(bRef) && bGot[i] == bRef[i] {
						i++
					}
					t.Fatalf("%s, cookie %d: memory differs from wazero's from byte %d (buffer at %d, bufused %d)", name, cookie, i, buf, used)
				}
				for pos := uint32(0); pos < end; {
					e := bRef[buf+pos:]
					n := binary.LittleEndian.Uint32(e[16:])
					names = append(names, string(e[direntSize:direntSize+n]))
					pos += direntSize + n
				}
				if used < bufLen {
					break
				}
				if next == cookie {
					break // an entry longer than the buffer
				}
				cookie = next
				if round > 5000 {
					t.Fatalf("%s: no end", name)
				}
			}
			if bufLen > 300 && uint64(buf)+uint64(bufLen) <= uint64(memSize) {
				slices.Sort(names)
				if !slices.Equal(names, want) {
					t.Fatalf("%s: read %d names, want %d", name, len(names), len(want))
				}
			}
		}
	}
}

// A Go plugin lists a directory through the chunks (os.ReadDir reads with
// 8 KiB buffers) as it is.
func TestReaddirChunked_goPlugin(t *testing.T) {
	dir := t.TempDir()
	var want []string
	for i := 0; i < 3000; i++ {
		name := fmt.Sprintf("%d-", i)
		name += strings.Repeat("n", max(0, i%255+1-len(name)))
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		want = append(want, name)
	}
	slices.Sort(want)
	o := testOptions(t)
	o.DataDir = dir
	b := mustLoad(t, buildTestPlugin(t, "tenant"), o)
	got, err := tenantGet(b, "ls", "/data")
	if err != nil {
		t.Fatal(err)
	}
	if w := "ok: " + strings.Join(want, ","); got != w {
		t.Fatalf("listed %d bytes, want %d", len(got), len(w))
	}
}

// A directory whose entries end exactly at the end of a chunk, less than a
// header before the end of the buffer: wazero answers bufused less than
// buf_len (the end of the directory), and EFAULT when the buffer passes the
// end of memory, as it counts that room for a cut entry only when there is
// one. The host answered buf_len and 0, without asking wazero about the room.
func TestReaddirChunked_endAtAChunk(t *testing.T) {
	dir := t.TempDir()
	// "." and ".." take 51 bytes, these 973: 1024 in all.
	for i, n := range []int{255, 255, 255, 112} {
		name := fmt.Sprintf("%d", i) + strings.Repeat("n", n-1)
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ref, got := readdirGuest(t, dir, false), readdirGuest(t, dir, true)
	memSize := ref.Memory().Size()
	const usedAt = 40
	check := func(buf, bufLen uint32) {
		t.Helper()
		var es [2]uint32
		var used [2]uint32
		for i, m := range []api.Module{ref, got} {
			fd := guestCall(t, m, "open")
			es[i] = guestCall(t, m, "readdir", uint64(fd), uint64(buf), uint64(bufLen), 0, usedAt)
			used[i], _ = m.Memory().ReadUint32Le(usedAt)
		}
		if es[0] != es[1] || es[0] == 0 && used[0] != used[1] {
			t.Errorf("buf %d buf_len %d: errno %d bufused %d, wazero's %d and %d", buf, bufLen, es[1], used[1], es[0], used[0])
		}
	}
	for _, bufLen := range []uint32{1025, 1030, 1047} {
		check(1024, bufLen)
	}
	check(memSize-1026, 1030)
	// One entry more: it is cut, bufused is buf_len.
	if err := os.WriteFile(filepath.Join(dir, "4"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	check(1024, 1030)
	check(memSize-1026, 1030)
}
