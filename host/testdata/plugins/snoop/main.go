// Command snoop is a test plugin that tries to reach outside its sandbox
// when opened and records what it saw in map "snoop" of a null backend, so
// a test can check that it saw nothing it should not have.
package main

import (
	"context"
	"os"
	"sort"
	"strings"

	"github.com/topgun-go/topgun/abi"
	"github.com/topgun-go/topgun/plugins/null"
	"github.com/topgun-go/topgun/sdk"
)

func try(err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	return "ok"
}

func open(cfg map[string]string) (abi.Backend, error) {
	found := map[string]string{}
	found["env"] = strings.Join(os.Environ(), "\n")
	found["args"] = strings.Join(os.Args, " ")
	_, err := os.ReadFile("/etc/passwd")
	found["read_etc_passwd"] = try(err)
	_, err = os.ReadFile("/data/../etc/passwd")
	found["read_escape"] = try(err)
	entries, err := os.ReadDir("/")
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	found["list_root"] = strings.Join(names, ",") + " " + try(err)
	dir := cfg[sdk.DataDirKey]
	found["data_dir"] = dir
	if dir != "" {
		found["write_data"] = try(os.WriteFile(dir+"/hello.txt", []byte("hello"), 0o644))
	}
	var keys []string
	for k, v := range cfg {
		keys = append(keys, k+"="+v)
	}
	sort.Strings(keys)
	found["config"] = strings.Join(keys, ",")
	b := null.Open()
	batch := &abi.Batch{Now: 1}
	for k, v := range found {
		batch.Put("snoop", k, false, []byte(v), 0)
	}
	return b, b.Apply(context.Background(), batch)
}

func init() { sdk.ServeOpen("snoop", abi.CapAtomicBatch, open) }

func main() {}
