package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/topgun-go/topgun/host"
)

const pluginInspectUsage = `Usage: topgun plugin inspect [flags] FILE.wasm

Prints what a storage plugin file is: its size and SHA-256, the storage ABI
version it implements, the name and capabilities it declares, its exported
and imported functions with their signatures, and its memory after start.
The plugin is compiled and started, but its storage is not opened: no data
directory or configuration is used.
` + envSettings

// inspectJSON is the -json output of inspect.
type inspectJSON struct {
	Path               string   `json:"path"`
	Size               int64    `json:"size"`
	SHA256             string   `json:"sha256"`
	ABIMajor           uint32   `json:"abi_major"`
	ABIMinor           uint32   `json:"abi_minor"`
	Name               string   `json:"name"`
	Capabilities       []string `json:"capabilities"`
	Exports            []string `json:"exports"`
	Imports            []string `json:"imports"`
	InitialMemoryPages uint32   `json:"initial_memory_pages"`
}

func runPluginInspect(ctx context.Context, c *cli, args []string) int {
	const prog = "topgun plugin inspect"
	fs := newFlagSet(prog, pluginInspectUsage)
	asJSON := fs.Bool("json", false, "print a JSON object instead of text")
	logLevel := fs.String("log-level", "warn", "level of the host's and the plugin's log lines on stderr: trace, debug, info, warn, error or off")
	pos, code, done := c.parseFlags(fs, args)
	if done {
		return code
	}
	if len(pos) != 1 {
		return c.usageError(prog, "want one plugin file, got %d arguments", len(pos))
	}
	opts, err := c.hostOptions(*logLevel, "TOPGUN_PLUGIN_DATA_DIR", "TOPGUN_PLUGIN_CONFIG")
	if err != nil {
		return c.usageError(prog, "%v", err)
	}
	info, err := host.Inspect(ctx, pos[0], opts)
	if err != nil {
		return c.fail(prog, err)
	}
	if !*asJSON {
		fmt.Fprint(c.stdout, info.String())
		return exitOK
	}
	out := inspectJSON{
		Path: info.Path, Size: info.Size, SHA256: info.SHA256,
		ABIMajor: info.ABIMajor, ABIMinor: info.ABIMinor,
		Name: info.Name, Capabilities: info.Capabilities.Names(),
		Exports: info.Exports, Imports: info.Imports,
		InitialMemoryPages: info.InitialMemoryPages,
	}
	if out.Capabilities == nil {
		out.Capabilities = []string{}
	}
	if out.Imports == nil {
		out.Imports = []string{}
	}
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		return c.fail(prog, err)
	}
	return exitOK
}
