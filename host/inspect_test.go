package host

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/topgun-go/topgun/abi"
)

func TestInspect(t *testing.T) {
	ctx := context.Background()
	t.Run("Null", func(t *testing.T) {
		info, err := Inspect(ctx, nullWasm(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("\n%s", info)
		if info.Name != "null" || info.ABIMajor != abi.VersionMajor || info.Capabilities != abi.CapAtomicBatch {
			t.Errorf("info = %+v", info)
		}
		if !slices.Contains(info.Exports, "topgun_call(i32, i32) -> (i64)") {
			t.Errorf("exports %v lack topgun_call", info.Exports)
		}
		if len(info.SHA256) != 64 || info.Size == 0 || info.InitialMemoryPages == 0 {
			t.Errorf("info = %+v", info)
		}
		if !strings.HasPrefix(info.Deadlines, "metered (") {
			t.Errorf("deadlines: %q, want the null plugin metered", info.Deadlines)
		}
	})
	t.Run("ServeOpenBeforeOpen", func(t *testing.T) {
		info, err := Inspect(ctx, buildTestPlugin(t, "snoop"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if info.Name != "snoop" {
			t.Errorf("name = %q, want the name given to ServeOpen", info.Name)
		}
	})
	t.Run("WrongMajor", func(t *testing.T) {
		info, err := Inspect(ctx, "testdata/wat/v2export.wasm", nil)
		if err == nil {
			t.Fatal("Inspect of an ABI 2 plugin succeeded")
		}
		if info.ABIMajor != 2 || info.ABIMinor != 3 || info.SHA256 == "" {
			t.Errorf("info = %+v, want ABI 2.3 and the hash", info)
		}
	})
}
