// Command adtool is the operator's and analyst's toolbox: synthetic
// inventory, snapshot inspection and verification, diffs and lookups.
package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/adedge/adedge/internal/cliflag"
	"github.com/adedge/adedge/tools/pacingsim"
)

// command is one adtool subcommand: run parses its own flags and returns the
// process exit code (0 ok, 1 failure found, 2 usage error).
type command struct {
	summary string
	run     func(args []string) int
}

var commands = map[string]command{}

func register(name, summary string, run func(args []string) int) {
	commands[name] = command{summary, run}
}

// newFlagSet is a command's flags. Every flag can also come from
// ADTOOL_<FLAG>; a bad value stops with exit 2 naming it, -h prints the
// usage and exits 0 (internal/cliflag). operands name the arguments after
// the flags, for the usage line. Parse with
//
//	if err := fs.Parse(args); err != nil {
//		return cliflag.ExitCode(err)
//	}
func newFlagSet(name string, operands ...string) *cliflag.Set {
	syn := "adtool " + name + " [flags]"
	if len(operands) > 0 {
		syn += " " + strings.Join(operands, " ")
	}
	s := cliflag.New("adtool "+name, "ADTOOL_", syn)
	if c, ok := commands[strings.Fields(name)[0]]; ok {
		s.About(c.summary)
	}
	return s
}

func commandNames() []string {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: adtool <command> [flags]\n\ncommands:")
	for _, n := range commandNames() {
		fmt.Fprintf(w, "  %-11s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nrun 'adtool <command> -h' for the command's flags; every flag can also be set as\nADTOOL_FLAG_NAME (capitals, dashes as underscores; the command line wins)")
}

func main() {
	// adtool pacing-sim re-executes adtool as its edge processes.
	if code, ok := pacingsim.Worker(); ok {
		os.Exit(code)
	}
	if len(os.Args) < 2 {
		usage(os.Stderr)
		os.Exit(2)
	}
	name := os.Args[1]
	if name == "-h" || name == "--help" || name == "-help" || name == "help" {
		usage(os.Stdout)
		return
	}
	c, ok := commands[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "adtool: unknown command %q\n\n", name)
		usage(os.Stderr)
		os.Exit(2)
	}
	os.Exit(c.run(os.Args[2:]))
}
