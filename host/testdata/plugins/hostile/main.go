// Command hostile is a test plugin: the null backend, except that applying a
// batch to certain maps misbehaves, so tests can check that the host
// survives it: "loop" spins forever, "panic" panics, "oom" allocates until
// the memory limit, "exit" exits, "slow" takes 300ms, "log" logs a very long line and writes to
// stdout and stderr, "partial" writes to stderr a line it does not end,
// "chatty" logs 2000 debug lines, then an error line.
package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/plugins/null"
	"github.com/topgun-go/topgun/sdk"
)

type hostile struct{ *null.Backend }

var sink [][]byte

func (h hostile) Apply(ctx context.Context, b *abi.Batch) error {
	if len(b.Mutations) > 0 {
		switch b.Mutations[0].Map {
		case "loop":
			n := 0
			for {
				n++
			}
		case "slow":
			start := time.Now()
			for time.Since(start) < 300*time.Millisecond {
			}
		case "panic":
			panic("hostile: asked to panic")
		case "oom":
			for {
				sink = append(sink, make([]byte, 8<<20))
			}
		case "exit":
			os.Exit(3)
		case "log":
			sdk.Log(abi.LogWarn, "hostile: "+strings.Repeat("x", 10000))
			fmt.Println("hello from stdout")
			fmt.Fprintln(os.Stderr, "hello from stderr")
		case "partial":
			fmt.Fprint(os.Stderr, "half a line from stderr")
		case "chatty":
			for i := 0; i < 2000; i++ {
				sdk.Log(abi.LogDebug, "hostile: debug chatter")
			}
			sdk.Log(abi.LogError, "hostile: the error after the chatter")
		}
	}
	return h.Backend.Apply(ctx, b)
}

func init() { sdk.Serve(hostile{null.Open()}) }

func main() {}
