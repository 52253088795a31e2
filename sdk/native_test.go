//go:build !wasip1

package sdk

import (
	"testing"

	"github.com/topgun-go/topgun/abi"
)

func TestLog_native(t *testing.T) {
	var got []string
	SetLogOutput(func(level abi.LogLevel, msg string) { got = append(got, msg) })
	defer SetLogOutput(nil)
	Logf(abi.LogInfo, "hello %d", 7)
	if len(got) != 1 || got[0] != "hello 7" {
		t.Errorf("logged %q", got)
	}
}
