// Command topgun is the operator and plugin-author CLI of the TopGun
// server.
//
//	topgun plugin inspect FILE.wasm     describe a storage plugin without running its storage
//	topgun plugin test FILE.wasm        run the conformance suite against a storage plugin
//	topgun bench [flags]                drive a running server with writes; print ops/s and latency
//	topgun copy --from SPEC --to SPEC   copy every stored record to another (empty) storage backend
//
// copy moves a server's data to another backend, or takes an offline
// backup: a SPEC is redb:PATH, postgres:URL (postgres alone reads
// DATABASE_URL) or PATH.wasm. The source is only read (a redb file is
// opened read-only), the destination must hold no record, and both are
// read again at the end to compare each map's count and checksum.
//
// Run `topgun help` or `topgun COMMAND -h` for the flags of each command.
// SIGINT (Ctrl-C) or SIGTERM asks the running command to stop; a second
// one kills the process at once.
// Exit status: 0 on success, 1 when the command ran and failed (a failed
// case, a plugin that does not load), 2 for usage errors.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// command is one entry of a dispatch table. A command with subcommands
// dispatches to its own table from run.
type command struct {
	name    string
	args    string // the arguments after the name, for usage lines
	summary string
	run     func(ctx context.Context, c *cli, args []string) int
}

// commands is the top-level dispatch table, in the order of the usage text.
// A new command is one more entry here.
var commands = []command{
	{name: "plugin", args: "COMMAND ...", summary: "inspect and test wasm storage plugins", run: runPlugin},
	{name: "bench", args: "[flags]", summary: "drive a running server with acknowledged writes; print ops/s and latency", run: runBench},
	{name: "copy", args: "--from SPEC --to SPEC", summary: "copy every stored record into another, empty storage backend (switch backends, back up)", run: runCopy},
}

// cli carries what every command needs; main fills it from the process.
type cli struct {
	stdout, stderr io.Writer
	// lookupEnv reads a setting from the environment (os.LookupEnv).
	lookupEnv func(string) (string, bool)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first signal asks the command to stop, which a plugin call in
	// progress may delay up to its deadline (or forever, in trusted mode);
	// a second one then kills the process, as without NotifyContext.
	context.AfterFunc(ctx, stop)
	code := runContext(ctx, os.Args[1:], &cli{stdout: os.Stdout, stderr: os.Stderr, lookupEnv: os.LookupEnv})
	stop()
	os.Exit(code)
}

// run runs the CLI with args (without the program name) and returns its
// exit code.
func run(args []string, stdout, stderr io.Writer) int {
	return runContext(context.Background(), args, &cli{stdout: stdout, stderr: stderr, lookupEnv: os.LookupEnv})
}

func runContext(ctx context.Context, args []string, c *cli) int {
	return c.dispatch(ctx, "topgun", commands, args)
}

// dispatch runs the command of table named by args[0]. prog is the command
// line so far ("topgun", "topgun plugin"), for messages.
func (c *cli) dispatch(ctx context.Context, prog string, table []command, args []string) int {
	if len(args) == 0 {
		c.printCommands(c.stderr, prog, table)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			// "topgun help plugin" is "topgun plugin -h".
			for _, cmd := range table {
				if cmd.name == args[1] {
					return cmd.run(ctx, c, append(args[2:], "-h"))
				}
			}
			return c.usageError(prog, "unknown command %q", args[1])
		}
		c.printCommands(c.stdout, prog, table)
		return exitOK
	}
	for _, cmd := range table {
		if cmd.name == name {
			return cmd.run(ctx, c, args[1:])
		}
	}
	return c.usageError(prog, "unknown command %q", name)
}

func (c *cli) printCommands(w io.Writer, prog string, table []command) {
	fmt.Fprintf(w, "Usage: %s COMMAND [flags]\n\nCommands:\n", prog)
	width := 0
	for _, cmd := range table {
		width = max(width, len(cmd.name)+1+len(cmd.args))
	}
	for _, cmd := range table {
		fmt.Fprintf(w, "  %-*s  %s\n", width, strings.TrimSpace(cmd.name+" "+cmd.args), cmd.summary)
	}
	fmt.Fprintf(w, "\nRun '%s COMMAND -h' for the flags of a command.\n", prog)
}

// usageError reports a usage error on stderr and returns exitUsage.
func (c *cli) usageError(prog, format string, args ...any) int {
	fmt.Fprintf(c.stderr, "%s: %s\nRun '%s -h' for usage.\n", prog, fmt.Sprintf(format, args...), prog)
	return exitUsage
}

// fail reports a failure of a command on stderr and returns exitFail.
func (c *cli) fail(prog string, err error) int {
	fmt.Fprintf(c.stderr, "%s: %v\n", prog, err)
	return exitFail
}
