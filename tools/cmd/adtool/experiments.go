package main

import (
	"fmt"
	"os"

	"github.com/adedge/adedge/internal/cliflag"
	"github.com/adedge/adedge/tools/exptool"
)

func init() {
	register("bucket", "where devices fall in every layer of a snapshot's experiment set (the edge's own bucketing): device layer test variant", runBucket)
	register("experiments", "experiments diff OLD NEW: the share of each test's users a new experiment set would move (snapshot, state or experiments.json)", runExperiments)
}

func runBucket(args []string) int {
	fs := newFlagSet("bucket")
	snap := fs.String("snapshot", "", "snapshot file (.snap) whose experiment set to bucket with")
	device := fs.String("device", "", "device id (IDFA/GAID)")
	devices := fs.String("devices", "", "file of device ids, one a line (- for stdin)")
	if err := fs.Parse(args); err != nil {
		return cliflag.ExitCode(err)
	}
	if *snap == "" || (*device == "") == (*devices == "") {
		fmt.Fprintln(os.Stderr, "adtool bucket: --snapshot FILE and one of --device ID or --devices FILE are required")
		return 2
	}
	b, invalid, err := exptool.SnapshotBucketer(*snap)
	if err != nil {
		fmt.Fprintf(os.Stderr, "adtool bucket: %v\n", err)
		return 1
	}
	if invalid != nil {
		fmt.Fprintf(os.Stderr, "adtool bucket: %s: the edge refuses this experiment set and serves everyone as control: %v\n", *snap, invalid)
	}
	if *device != "" {
		err = exptool.WriteBucket(os.Stdout, b, *device)
	} else {
		in := os.Stdin
		if *devices != "-" {
			f, ferr := os.Open(*devices)
			if ferr != nil {
				fmt.Fprintf(os.Stderr, "adtool bucket: %v\n", ferr)
				return 1
			}
			defer f.Close()
			in = f
		}
		err = exptool.WriteBuckets(os.Stdout, b, in)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "adtool bucket: %s: %v\n", *devices, err)
		return 1
	}
	return 0
}

func runExperiments(args []string) int {
	const use = "usage: adtool experiments diff OLD NEW (each a .snap, a builder experiments.state.json or an experiments.json)"
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
		fmt.Println(use)
		fmt.Println("exit 0: the builder would accept NEW after OLD; 1: it would refuse (a running test's users move); 2: bad arguments or files")
		return 0
	}
	if len(args) != 3 || args[0] != "diff" {
		fmt.Fprintln(os.Stderr, use)
		return 2
	}
	old, err := exptool.LoadSet(args[1])
	if err != nil {
		fmt.Fprintf(os.Stderr, "adtool experiments diff: OLD: %v\n", err)
		return 2
	}
	nw, err := exptool.LoadSet(args[2])
	if err != nil {
		fmt.Fprintf(os.Stderr, "adtool experiments diff: NEW: %v\n", err)
		return 2
	}
	refused, err := exptool.WriteDiff(os.Stdout, old, nw)
	if err != nil {
		fmt.Fprintf(os.Stderr, "adtool experiments diff: %v\n", err)
		return 2
	}
	if refused {
		return 1
	}
	return 0
}
