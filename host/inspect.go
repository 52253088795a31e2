package host

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/topgun-go/topgun/abi"
)

// Info describes a plugin file, for `topgun plugin inspect`.
type Info struct {
	Path   string
	Size   int64
	SHA256 string
	// ABIMajor and ABIMinor are what topgun_abi_version reports, the
	// minor lowered to describe's or this server's when that is lower:
	// the version the server speaks with the plugin.
	ABIMajor, ABIMinor uint32
	// Name and Capabilities are what describe reports before open.
	Name         string
	Capabilities abi.Capability
	// Exports and Imports list the module's functions with their
	// signatures, e.g. "topgun_call(i32, i32) -> (i64)" and
	// "topgun_v1.log(i32, i32, i32) -> ()".
	Exports []string
	Imports []string
	// InitialMemoryPages is the instance's memory after _initialize.
	InitialMemoryPages uint32
	CompileTime        time.Duration
	InitTime           time.Duration
	// Deadlines says how a sandboxed call of this module is stopped at its
	// deadline: "metered (N check sites)" or why the host falls back to
	// wazero's interruption.
	Deadlines string
}

// Inspect loads the plugin at path far enough to describe it: it verifies
// and compiles the file, starts one instance and calls describe, but not
// open (no configuration or data directory is used). The returned Info is
// filled as far as inspection got, also when err is non-nil.
func Inspect(ctx context.Context, path string, opts *Options) (Info, error) {
	info := Info{Path: path}
	var o Options
	if opts != nil {
		o = *opts
	}
	o.DataDir, o.Config = "", nil
	// Inspect needs no custom section's payload but the name section's
	// (see readPluginFile).
	p, err := compile(ctx, path, &o, nil, true)
	if p != nil {
		info.Size, info.SHA256 = p.size, p.sum
	}
	if err != nil {
		return info, err
	}
	defer p.close(ctx)
	info.CompileTime = p.compileTime
	info.Deadlines = p.deadlines
	for name, f := range p.mod.ExportedFunctions() {
		info.Exports = append(info.Exports, name+sig(f.ParamTypes(), f.ResultTypes()))
	}
	for _, f := range p.importedFunctions() {
		mod, name, _ := f.Import()
		info.Imports = append(info.Imports, mod+"."+name+sig(f.ParamTypes(), f.ResultTypes()))
	}
	sort.Strings(info.Exports)
	sort.Strings(info.Imports)

	start := time.Now()
	in, err := p.startInstance(ctx)
	info.InitTime = time.Since(start)
	if in != nil {
		defer in.discard(ctx)
		info.InitialMemoryPages = in.mem.Size() / 65536
		info.ABIMajor, info.ABIMinor = in.major, in.minor
	}
	if err != nil {
		return info, err
	}
	d, err := abi.NewCaller(in, p.prefix).Describe(ctx)
	if err != nil {
		return info, err
	}
	info.Name, info.Capabilities = d.Name, d.Capabilities
	// The host sends no op newer than either minor, nor than its own
	// (see load).
	info.ABIMinor = min(info.ABIMinor, d.ABIMinor, abi.VersionMinor)
	// Load refuses a description of another major (see load); inspect
	// must not pass what the server will not load.
	if d.ABIMajor != abi.VersionMajor {
		return info, fmt.Errorf("%s: describe says storage ABI %d.%d, this server implements %d.%d; rebuild the plugin against ABI %d",
			p.prefix, d.ABIMajor, d.ABIMinor, abi.VersionMajor, abi.VersionMinor, abi.VersionMajor)
	}
	return info, nil
}

// String formats the Info for people.
func (i Info) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "file:         %s (%d bytes)\n", i.Path, i.Size)
	fmt.Fprintf(&b, "sha256:       %s\n", i.SHA256)
	fmt.Fprintf(&b, "name:         %s\n", printable(i.Name))
	fmt.Fprintf(&b, "abi:          %d.%d (this server: %d.%d)\n", i.ABIMajor, i.ABIMinor, abi.VersionMajor, abi.VersionMinor)
	fmt.Fprintf(&b, "capabilities: %s\n", strings.Join(i.Capabilities.Names(), ", "))
	fmt.Fprintf(&b, "memory:       %d pages (%d KiB) after init\n", i.InitialMemoryPages, i.InitialMemoryPages*64)
	fmt.Fprintf(&b, "compile:      %s, init %s\n", i.CompileTime.Round(time.Millisecond), i.InitTime.Round(time.Microsecond))
	fmt.Fprintf(&b, "deadlines:    %s\n", i.Deadlines)
	fmt.Fprintf(&b, "exports:      %s\n", strings.Join(printables(i.Exports), "\n              "))
	fmt.Fprintf(&b, "imports:      %s\n", strings.Join(printables(i.Imports), "\n              "))
	return b.String()
}

// printable returns s, or s quoted when it holds anything but printable
// characters: a module's export and import names are any UTF-8 its author
// chose, and a newline or a terminal escape in one would forge lines of
// the output or drive the reader's terminal.
func printable(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

func printables(list []string) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = printable(s)
	}
	return out
}
