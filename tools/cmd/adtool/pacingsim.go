package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"

	"github.com/adedge/adedge/internal/cliflag"
	"github.com/adedge/adedge/tools/pacingsim"
)

func init() {
	register("pacing-sim", "a fleet's day compressed against a real Aerospike spend store: overspend, delivery, pace error, both modes", runPacingSim)
}

func runPacingSim(args []string) int {
	fs := newFlagSet("pacing-sim")
	var o pacingsim.Options
	fs.StringVar(&o.Spend, "spend", "", "aerospike://HOST:PORT/NAMESPACE/SET to use; empty = start a server from the Aerospike kit (../shared/aerospike)")
	fs.IntVar(&o.Edges, "edges", 8, "edges: each an OS process of its own (adtool again) with its own store client")
	fs.BoolVar(&o.InProcess, "in-process", false, "run the edges as goroutines of this process, sharing one store client")
	fs.StringVar(&o.OutageKind, "outage-kind", "kill", "how the store goes down at noon: kill (SIGKILL; restarted with its counters from a file) or pause (SIGSTOP: a hung node)")
	fs.IntVar(&o.Campaigns, "campaigns", 0, "campaigns (0 = 200, 50 with --quick)")
	fs.DurationVar(&o.DayWall, "day", 0, "wall time of the simulated day (0 = 4m, 15s with --quick)")
	fs.DurationVar(&o.Outage, "outage", -1, "the store is down at noon for this much of the day's wall clock (-1 = 30s, 1s with --quick; 0 = none); the simulated span is outage*24h/day")
	fs.BoolVar(&o.Quick, "quick", false, "the short form: 50 campaigns, a 15 s day, both modes in well under 2 minutes")
	fs.BoolVar(&o.JSON, "json", false, "one JSON object instead of the table")
	if err := fs.Parse(args); err != nil {
		return cliflag.ExitCode(err)
	}
	if o.Outage < 0 {
		o.Outage = 30e9
		if o.Quick {
			o.Outage = 1e9
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	o.Log = os.Stderr
	res, err := pacingsim.Run(ctx, o, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "adtool pacing-sim:", err)
		return 1
	}
	for _, ok := range res.Targets {
		if !ok {
			return 1
		}
	}
	return 0
}
