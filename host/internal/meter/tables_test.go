package meter

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
)

// module builds a wasm binary with the given table section body.
func moduleWithTables(tables ...[]byte) []byte {
	body := []byte{byte(len(tables))}
	for _, t := range tables {
		body = append(body, t...)
	}
	out := []byte("\x00asm\x01\x00\x00\x00")
	out = append(out, secTable, byte(len(body)))
	return append(out, body...)
}

func TestCapTables(t *testing.T) {
	t.Parallel()
	noMax := []byte{0x70, 0x00, 0x05}                     // funcref, min 5
	bigMax := []byte{0x70, 0x01, 0x05, 0xff, 0xff, 0x03}  // funcref, min 5, max 65535
	smallMax := []byte{0x6f, 0x01, 0x01, 0x02}            // externref, min 1, max 2
	hugeMin := []byte{0x70, 0x00, 0x80, 0x80, 0x80, 0x01} // min 2^21
	ctx := context.Background()
	for _, c := range []struct {
		name   string
		in     []byte
		want   []byte // the capped table section entries
		errHas string
	}{
		{"no maximum gets one", moduleWithTables(noMax), moduleWithTables([]byte{0x70, 0x01, 0x05, 0x80, 0x80, 0x10}), ""},
		{"a smaller maximum stays", moduleWithTables(smallMax, bigMax), moduleWithTables(smallMax, bigMax), ""},
		{"minimum over the limit", moduleWithTables(hugeMin), nil, "the limit is 262144"},
		{"too many tables", moduleWithTables(noMax, noMax, noMax, noMax, noMax), nil, "5 tables, the limit is 4"},
	} {
		out, err := CapTables(c.in)
		if c.errHas != "" {
			if err == nil || !strings.Contains(err.Error(), c.errHas) {
				t.Errorf("%s: err %v, want %q", c.name, err, c.errHas)
			}
			continue
		}
		if err != nil || !bytes.Equal(out, c.want) {
			t.Errorf("%s: %x %v, want %x", c.name, out, err, c.want)
			continue
		}
		// What it writes is a module wazero takes.
		rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
		if _, err := rt.CompileModule(ctx, out); err != nil {
			t.Errorf("%s: wazero refuses the capped module: %v", c.name, err)
		}
		rt.Close(ctx)
	}
}
