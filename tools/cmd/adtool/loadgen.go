package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/adedge/adedge/tools/loadgen"
)

func init() {
	register("loadgen", "open-loop load at a fixed rate with HdrHistogram latency percentiles", runLoadgen)
}

func runLoadgen(args []string) int {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	var o loadgen.Options
	fs.StringVar(&o.Target, "target", "http://127.0.0.1:8080", "base URL of the server")
	fs.StringVar(&o.Path, "path", "/v1/ad", "request path (the query is drawn from the inventory)")
	fs.Float64Var(&o.Rate, "rate", 1000, "requests per second")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "how long to send")
	fs.IntVar(&o.Conns, "conns", 64, "concurrent connections")
	fs.DurationVar(&o.Timeout, "timeout", time.Second, "per-request timeout")
	fs.StringVar(&o.Inventory, "inventory", "", "inventory directory (placements.jsonl, profiles.jsonl) for the request mix")
	fs.Uint64Var(&o.Seed, "seed", 1, "request mix seed")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	quiet := fs.Bool("quiet", false, "no progress lines")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if !*quiet {
		o.Progress = os.Stderr
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := loadgen.Run(ctx, o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "adtool loadgen: %v\n", err)
		return 2
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(res)
	} else {
		res.WriteTable(os.Stdout)
	}
	if res.Errors > 0 {
		return 1
	}
	return 0
}
