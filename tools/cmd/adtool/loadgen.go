package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"time"

	"github.com/adedge/adedge/internal/cliflag"
	"github.com/adedge/adedge/tools/loadgen"
)

func init() {
	register("loadgen", "open-loop load at a fixed rate (or --find-max) with HdrHistogram latency percentiles", runLoadgen)
}

func runLoadgen(args []string) int {
	fs := newFlagSet("loadgen")
	var o loadgen.Options
	fs.StringVar(&o.Target, "target", "http://127.0.0.1:8080", "base URL of the server")
	fs.StringVar(&o.Path, "path", "/v1/ad", "request path (the query is drawn from the inventory)")
	fs.Float64Var(&o.Rate, "rate", 1000, "requests per second, all connections together")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "how long to send, warm-up included")
	fs.DurationVar(&o.Warmup, "warmup", 0, "first part of the run not recorded (connections dialled, caches warm)")
	fs.IntVar(&o.Conns, "conns", 64, "connections, each with its own share of the schedule")
	fs.DurationVar(&o.Timeout, "timeout", time.Second, "per-request timeout")
	fs.StringVar(&o.Inventory, "inventory", "", "inventory directory (placements.jsonl, profiles.jsonl) for the request mix")
	fs.Float64Var(&o.PostShare, "post", 0.2, "share of requests sent as POST with a JSON body")
	fs.Uint64Var(&o.Seed, "seed", 1, "request mix seed")
	findMax := fs.Bool("find-max", false, "search for the highest rate whose p99 stays within --p99")
	p99 := fs.Duration("p99", time.Millisecond, "with --find-max: the p99 bound")
	trial := fs.Duration("trial", 5*time.Second, "with --find-max: length of each trial (a fifth of it warm-up)")
	startRate := fs.Float64("start-rate", 1000, "with --find-max: first rate tried")
	maxRate := fs.Float64("max-rate", 2_000_000, "with --find-max: never try above")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	quiet := fs.Bool("quiet", false, "no progress lines")
	cpuProfile := fs.String("cpuprofile", "", "write the generator's own CPU profile (pprof) to this file")
	if err := fs.Parse(args); err != nil {
		return cliflag.ExitCode(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "adtool loadgen: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	// Draw the mix once, not per trial.
	if o.Targets == nil {
		m, err := loadgen.Mix(o.Inventory, orDefault(o.Path, "/v1/ad"), 20000, o.PostShare, o.Seed)
		if err != nil {
			fmt.Fprintf(os.Stderr, "adtool loadgen: %v\n", err)
			return 2
		}
		o.Targets = m
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "adtool loadgen: %v\n", err)
			return 2
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	if *findMax {
		f := loadgen.FindMaxOptions{Run: o, P99: *p99, Start: *startRate, MaxRate: *maxRate, Trial: *trial, Confirm: true}
		if !*quiet {
			f.Log = os.Stderr
		}
		res, err := loadgen.FindMax(ctx, f)
		if err != nil {
			fmt.Fprintf(os.Stderr, "adtool loadgen: %v\n", err)
			return 2
		}
		if *asJSON {
			writeJSON(res)
		} else if res.Best == nil {
			fmt.Printf("no rate tried kept p99 <= %v (lowest tried %.0f/s)\n", *p99, res.Trials[len(res.Trials)-1].Rate)
		} else {
			fmt.Printf("highest rate with p99 <= %v: %.0f/s (%d trials of %v)\n", *p99, res.MaxRate, len(res.Trials), *trial)
			res.Best.WriteTable(os.Stdout)
		}
		if res.Best == nil {
			return 1
		}
		return 0
	}
	if !*quiet {
		o.Progress = os.Stderr
		if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			o.ProgressTTY = true
		}
	}
	res, err := loadgen.Run(ctx, o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "adtool loadgen: %v\n", err)
		return 2
	}
	if *asJSON {
		writeJSON(res)
	} else {
		res.WriteTable(os.Stdout)
	}
	if res.Errors > 0 {
		return 1
	}
	return 0
}

func writeJSON(v any) {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
