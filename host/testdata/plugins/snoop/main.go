// Command snoop is a test plugin that tries to reach outside its sandbox
// when opened and records what it saw in map "snoop" of a null backend, so
// a test can check that it saw nothing it should not have.
package main

import (
	"context"
	"net"
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
	found["getenv"] = os.Getenv("TOPGUN_TEST_SECRET")
	if addr := cfg["dial"]; addr != "" {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		found["dial"] = try(err)
	}
	// Go's net package for wasip1 emulates a network inside the guest:
	// a listener it opens is not a socket of the host.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err == nil {
		found["listen_addr"] = l.Addr().String()
		l.Close()
	}
	found["listen"] = try(err)
	dir := cfg[sdk.DataDirKey]
	found["data_dir"] = dir
	if dir != "" {
		found["write_data"] = try(os.WriteFile(dir+"/hello.txt", []byte("hello"), 0o644))
		// A symlink the operator (or an earlier run) left in the data
		// directory that points outside it, and one the plugin makes.
		data, err := os.ReadFile(dir + "/link")
		found["read_symlink"] = try(err) + " " + string(data)
		data = nil
		err = os.Symlink("/etc/passwd", dir+"/mylink")
		if err == nil {
			data, err = os.ReadFile(dir + "/mylink")
		}
		found["make_symlink"] = try(err) + " " + string(data)
		data = nil
		data, err = os.ReadFile(dir + "/../outside.txt")
		found["read_dotdot"] = try(err) + " " + string(data)
		err = os.WriteFile(dir+"/../written.txt", []byte("x"), 0o644)
		found["write_dotdot"] = try(err)
		err = os.WriteFile(dir+"/link", []byte("overwritten"), 0o644)
		found["write_symlink"] = try(err)
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
