package main

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/adedge/adedge/internal/cliflag"
	"github.com/adedge/adedge/tools/gen"
)

func init() {
	register("gen", "write a synthetic inventory (and profiles.jsonl) for demos and benchmarks", runGen)
}

func runGen(args []string) int {
	fs := newFlagSet("gen")
	names := make([]string, 0, len(gen.Scales))
	for n := range gen.Scales {
		names = append(names, n)
	}
	sort.Strings(names)
	scale := fs.String("scale", "small", "inventory size: "+strings.Join(names, "|"))
	seed := fs.Uint64("seed", 1, "random seed: the same seed writes the same bytes")
	out := fs.String("out", "", "output directory (created if missing)")
	quiet := fs.Bool("quiet", false, "no progress output")
	factor := fs.Float64("factor", 1, "multiply the scale's counts (benchmarks: --scale large --factor 1.7 builds a ~570 MB snapshot)")
	if err := fs.Parse(args); err != nil {
		return cliflag.ExitCode(err)
	}
	sc, ok := gen.Scales[*scale]
	if *factor > 0 && *factor != 1 {
		mul := func(n *int) { *n = max(1, int(float64(*n)**factor)) }
		for _, n := range []*int{&sc.Campaigns, &sc.Creatives, &sc.Placements, &sc.Advertisers, &sc.Apps, &sc.Profiles} {
			mul(n)
		}
	}
	if !ok || *out == "" {
		fmt.Fprintf(os.Stderr, "adtool gen: want --scale %s and --out DIR\n", strings.Join(names, "|"))
		return 2
	}
	var progress *os.File
	if !*quiet {
		progress = os.Stderr
	}
	var st gen.Stats
	var err error
	if progress != nil {
		st, err = gen.Generate(*out, sc, *seed, progress)
	} else {
		st, err = gen.Generate(*out, sc, *seed, nil)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "adtool gen: %v\n", err)
		return 1
	}
	fmt.Printf("wrote %d records, %d bytes to %s in %s\n", st.Records, st.Bytes, *out, st.Elapsed.Round(1e6))
	return 0
}
