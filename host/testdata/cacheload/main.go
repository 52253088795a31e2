// Command cacheload loads plugins through a compilation cache directory,
// as a server process sharing that directory would, for the tests of the
// cache: cacheload <cache dir> <rounds> <plugin.wasm>... It logs at debug
// level to stderr and exits 1 when a load or a call fails.
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"

	"github.com/hashicorp/go-hclog"

	"github.com/topgun-go/topgun/host"
)

func main() {
	if len(os.Args) < 4 {
		fmt.Fprintln(os.Stderr, "usage: cacheload <cache dir> <rounds> <plugin.wasm>...")
		os.Exit(2)
	}
	rounds, err := strconv.Atoi(os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx := context.Background()
	o := host.DefaultOptions()
	o.CacheDir = os.Args[1]
	o.Logger = hclog.New(&hclog.LoggerOptions{Output: os.Stderr, Level: hclog.Debug})
	plugins := os.Args[3:]
	for r := range rounds {
		path := plugins[r%len(plugins)]
		b, err := host.Load(ctx, path, o)
		if err != nil {
			fmt.Fprintf(os.Stderr, "LOAD FAILED: %s: %v\n", path, err)
			os.Exit(1)
		}
		if _, err := b.Get(ctx, "m", false, []string{"k"}); err != nil {
			fmt.Fprintf(os.Stderr, "GET FAILED: %s: %v\n", path, err)
			os.Exit(1)
		}
		if err := b.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "CLOSE FAILED: %s: %v\n", path, err)
			os.Exit(1)
		}
	}
}
