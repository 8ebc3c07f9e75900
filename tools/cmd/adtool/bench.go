package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"

	"github.com/adedge/adedge/internal/cliflag"
	"github.com/adedge/adedge/tools/benchsuite"
)

func init() {
	register("bench", "run the benchmark suite and write docs/BENCHMARKS.md and its JSON twin (make bench, make bench-quick)", runBench)
}

func runBench(args []string) int {
	fs := newFlagSet("bench")
	var o benchsuite.Options
	fs.BoolVar(&o.Quick, "quick", false, "short runs, one repetition (a smoke test of the suite, < 2 min)")
	fs.StringVar(&o.Bin, "bin", "bin", "directory with adedge, adbuilder, adtool")
	fs.StringVar(&o.Src, "src", ".", "repository root")
	fs.StringVar(&o.Work, "work", filepath.Join(os.TempDir(), "adedge-bench-suite"), "scratch directory")
	md := fs.String("out", "docs/BENCHMARKS.md", "markdown file whose generated part is replaced")
	js := fs.String("json", "docs/BENCHMARKS.json", "JSON twin")
	fs.BoolVar(&o.FIFO, "fifo", false, "run the servers under test and load generators at SCHED_FIFO 1 (chrt -f 1; needs CAP_SYS_NICE) so other sessions' jobs do not show in the latency figures")
	render := fs.Bool("render", false, "only rewrite --out from the report in --json (after editing notes in it)")
	only := fs.String("only", "", "comma-separated steps to run (micro, throughput, find-max, latency, aerospike, swaps, builder, distribution, pacing); default all")
	if err := fs.Parse(args); err != nil {
		return cliflag.ExitCode(err)
	}
	if *only != "" {
		o.Only = strings.Split(*only, ",")
	}
	var err error
	if o.Bin, err = filepath.Abs(o.Bin); err != nil {
		fmt.Fprintln(os.Stderr, "adtool bench:", err)
		return 2
	}
	if *render {
		rep, err := benchsuite.ReadReport(*js)
		if err == nil {
			err = rep.WriteMarkdown(*md)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "adtool bench:", err)
			return 1
		}
		return 0
	}
	o.Log = os.Stderr
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep, err := benchsuite.Run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "adtool bench:", err)
		if rep == nil || len(rep.Rows) == 0 {
			return 1
		}
	}
	if len(o.Only) > 0 {
		if old, err := benchsuite.ReadReport(*js); err == nil {
			rep.MergeOld(old, o.Only)
		}
	}
	if err := rep.WriteMarkdown(*md); err != nil {
		fmt.Fprintln(os.Stderr, "adtool bench:", err)
		return 1
	}
	if err := rep.WriteJSON(*js); err != nil {
		fmt.Fprintln(os.Stderr, "adtool bench:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "adtool bench: %d rows in %.0f s -> %s, %s (%d steps skipped)\n", len(rep.Rows), rep.Duration, *md, *js, len(rep.Skipped))
	return 0
}
