package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"

	"github.com/adedge/adedge/internal/cliflag"
	"github.com/adedge/adedge/server/events/ship"
	"github.com/adedge/adedge/server/pacing"
	"github.com/adedge/adedge/tools/pacingtool"
)

func init() {
	register("pacing", "per budgeted campaign: budget, fleet spend today, planned by now, serve probability, state", runPacing)
}

func runPacing(args []string) int {
	fs := newFlagSet("pacing")
	var o pacingtool.Options
	var curve string
	fs.StringVar(&o.Spend, "spend", "", "the fleet's spend store, aerospike://HOST:PORT/NAMESPACE/SET")
	fs.StringVar(&o.Snapshot, "snapshot", "", "the snapshot whose campaigns to report (FILE.snap)")
	fs.StringVar(&curve, "pacing-curve", "flat", "the edges' --pacing-curve (for the planned spend of even campaigns)")
	var curveFrom string
	fs.StringVar(&curveFrom, "pacing-curve-from", "", "the edges' --pacing-curve-from: the events warehouse whose previous 7 days' traffic shape they plan along, http://HOST:8123/?database=NAME")
	fs.BoolVar(&o.JSON, "json", false, "one JSON object instead of the table")
	fs.IntVar(&o.Limit, "limit", 50, "rows printed (0 = all); the summary counts all")
	if err := fs.Parse(args); err != nil {
		return cliflag.ExitCode(err)
	}
	c, err := pacing.ParseCurve(curve)
	if err != nil {
		fmt.Fprintln(os.Stderr, "adtool pacing: --pacing-curve:", err)
		return 2
	}
	o.Curve = c
	if curveFrom != "" {
		if o.CurveFrom, err = ship.ParseTarget(curveFrom); err != nil {
			fmt.Fprintln(os.Stderr, "adtool pacing: --pacing-curve-from:", err)
			return 2
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := pacingtool.Run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "adtool pacing:", err)
		return 1
	}
	return 0
}
