package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// flagSet is a flag set with its command's usage text. Parse errors and
// help are reported by parseFlags, not by the flag package.
type flagSet struct {
	*flag.FlagSet
	usage string // synopsis and description, printed before the flags
}

func newFlagSet(prog, usage string) *flagSet {
	fs := flag.NewFlagSet(prog, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &flagSet{FlagSet: fs, usage: usage}
}

func (fs *flagSet) printUsage(w io.Writer) {
	fmt.Fprint(w, fs.usage)
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprintln(w, "\nFlags:")
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
}

// parseFlags parses args with fs and returns the positional arguments.
// Flags may follow positional arguments ("test FILE.wasm --data-dir DIR");
// everything after "--" is positional. When done is true the command must
// return code: after -h (usage on stdout, exitOK) or a parse error (message
// on stderr, exitUsage).
func (c *cli) parseFlags(fs *flagSet, args []string) (pos []string, code int, done bool) {
	rest := args
	for {
		// Positional arguments after "--" are not parsed.
		var tail []string
		for i, a := range rest {
			if a == "--" {
				rest, tail = rest[:i], rest[i+1:]
				break
			}
		}
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.printUsage(c.stdout)
				return nil, exitOK, true
			}
			return nil, c.usageError(fs.Name(), "%v", err), true
		}
		if fs.NArg() == 0 {
			return append(pos, tail...), 0, false
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
		if tail != nil {
			rest = append(append(rest, "--"), tail...)
		}
	}
}
