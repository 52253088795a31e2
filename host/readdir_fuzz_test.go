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

// FuzzReaddirChunked compares the host's fd_readdir (readdirChunked) with
// wazero's own on a directory of fuzzed names, for fuzzed buf, buf_len,
// cookie and bufused, then reads on from the last whole entry as a libc
// does: errnos, and on success the whole memory, must be the same. Only
// the documented difference is left out (bufused in a buffer over 1 KiB).
func FuzzReaddirChunked(f *testing.F) {
	ctx := context.Background()
	bin, err := os.ReadFile("testdata/wat/readdircall.wasm")
	if err != nil {
		f.Fatal(err)
	}
	var rts [2]wazero.Runtime
	var cms [2]wazero.CompiledModule
	for i := range rts {
		rts[i] = wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
		defer rts[i].Close(ctx)
		if i == 1 {
			err = instantiateWASI(ctx, rts[i])
		} else {
			_, err = wasi_snapshot_preview1.Instantiate(ctx, rts[i])
		}
		if err != nil {
			f.Fatal(err)
		}
		if cms[i], err = rts[i].CompileModule(ctx, bin); err != nil {
			f.Fatal(err)
		}
	}
	f.Add([]byte{0, 1, 254, 254, 254, 100}, uint32(1024), uint32(1040), uint64(0), uint32(40), uint8(0))
	f.Add([]byte{254, 254, 254, 111}, uint32(1024), uint32(1030), uint64(0), uint32(40), uint8(0))
	f.Add([]byte("some names of many sizes, some long"), uint32(100), uint32(3000), uint64(0), uint32(40), uint8(4))
	f.Add([]byte{200, 200, 200, 200, 200, 200, 200, 200}, uint32(2000), uint32(0xffffffff), uint64(2), uint32(4000), uint8(1))
	f.Add([]byte("names read from the middle, then again from the start"), uint32(3000), uint32(5000), uint64(300<<32|5), uint32(40), uint8(96))
	f.Fuzz(func(t *testing.T, names []byte, buf, bufLen uint32, cookie uint64, usedAt uint32, mode uint8) {
		if len(names) > 80 {
			names = names[:80]
		}
		dir := t.TempDir()
		for i, b := range names {
			name := fmt.Sprintf("%d-", i)
			name += strings.Repeat("n", max(0, int(b)%255+1-len(name)))
			if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		var ms [2]api.Module
		for i := range ms {
			cfg := wazero.NewModuleConfig().WithName("").WithFSConfig(wazero.NewFSConfig().WithDirMount(dir, "/"))
			m, err := rts[i].InstantiateModule(ctx, cms[i], cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close(ctx)
			ms[i] = m
		}
		memSize := ms[0].Memory().Size()
		if mode&1 == 0 {
			bufLen %= 24000
		}
		switch mode >> 1 & 3 {
		case 0:
			buf %= memSize
		case 1:
			buf = memSize - buf%32768
		}
		if mode&8 == 0 {
			usedAt %= memSize + 8
		}
		// A read of at most 1 KiB from cookie 0 first (wazero's alone), so
		// that the fuzzed cookie may be of an entry in the middle.
		prime := uint32(cookie>>32) % (maxReaddirChunk + 1)
		if mode&16 == 0 {
			cookie %= 100
		}
		if bufLen > maxReaddirChunk && uint64(usedAt)+4 > uint64(buf) && uint64(usedAt) < uint64(buf)+uint64(bufLen) {
			return // documented: one chunk only
		}
		var fds [2]uint64
		for i, m := range ms {
			fds[i] = uint64(guestCall(t, m, "open"))
			if int32(fds[i]) < 0 {
				t.Fatalf("open: %d", int32(fds[i]))
			}
		}
		if mode&32 != 0 {
			for i, m := range ms {
				guestCall(t, m, "readdir", fds[i], uint64(buf), uint64(prime), 0, uint64(usedAt))
			}
		}
		// Rounds go on from the last whole entry, and the last (mode&64)
		// reads again from cookie 0.
		for round := 0; round < 5; round++ {
			if round == 4 {
				if mode&64 == 0 {
					return
				}
				cookie = 0
			}
			var es [2]uint32
			for i, m := range ms {
				es[i] = guestCall(t, m, "readdir", fds[i], uint64(buf), uint64(bufLen), cookie, uint64(usedAt))
			}
			what := fmt.Sprintf("%d names, buf %d buf_len %d cookie %d bufused at %d, round %d", len(names), buf, bufLen, cookie, usedAt, round)
			if es[0] != es[1] {
				t.Fatalf("%s: errno %d, wazero's %d", what, es[1], es[0])
			}
			if es[0] != 0 {
				return
			}
			bRef, _ := ms[0].Memory().Read(0, memSize)
			bGot, _ := ms[1].Memory().Read(0, memSize)
			if !slices.Equal(bRef, bGot) {
				i := 0
				for bGot[i] == bRef[i] {
					i++
				}
				t.Fatalf("%s: memory differs from wazero's from byte %d: bufused %d, wazero's %d", what, i,
					binary.LittleEndian.Uint32(bGot[usedAt:]), binary.LittleEndian.Uint32(bRef[usedAt:]))
			}
			used := binary.LittleEndian.Uint32(bRef[usedAt:])
			_, next := wholeEnd(bRef[buf:min(uint64(buf)+uint64(used), uint64(memSize))], cookie)
			if round == 4 {
				return
			}
			if used < bufLen || next == cookie {
				round = 3
				continue
			}
			cookie = next
		}
	})
}
