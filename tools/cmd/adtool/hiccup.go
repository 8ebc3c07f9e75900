package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/adedge/adedge/internal/cliflag"
	"github.com/adedge/adedge/internal/hiccup"
)

func init() {
	register("hiccup", "measure the platform's stalls: per CPU, a SCHED_FIFO thread sleeping 1 ms and how late it wakes", runHiccup)
}

func runHiccup(args []string) int {
	fs := newFlagSet("hiccup")
	cpus := fs.String("cpus", "0", "CPUs to measure, comma-separated (one thread each)")
	d := fs.Duration("duration", 10*time.Second, "how long to measure (SIGINT or SIGTERM ends it early and still reports)")
	var o hiccup.Options
	fs.DurationVar(&o.Period, "period", time.Millisecond, "each sleep: the finest stall resolved, and 1/period wake-ups a second")
	fs.DurationVar(&o.Threshold, "threshold", time.Millisecond, "lateness counted as a stall")
	fs.IntVar(&o.Priority, "priority", 99, "SCHED_FIFO priority 1..99 (root); 0 = normal priority, where the guest's own load delays the threads too")
	asJSON := fs.Bool("json", false, "print JSON instead of lines")
	if err := fs.Parse(args); err != nil {
		return cliflag.ExitCode(err)
	}
	for _, f := range strings.Split(*cpus, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || c < 0 {
			fmt.Fprintf(os.Stderr, "adtool hiccup: --cpus %q: want CPU numbers such as 0,1\n", *cpus)
			return 2
		}
		o.CPUs = append(o.CPUs, c)
	}
	// Each thread keeps its P while it sleeps (a raw syscall): give the
	// rest of the process Ps of its own.
	runtime.GOMAXPROCS(len(o.CPUs) + 2)
	m, err := hiccup.Start(o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "adtool %v\n", err) // "adtool hiccup: ..."
		return 1
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-time.After(*d):
	case <-sig:
	}
	res := m.Stop()
	if *asJSON {
		b, _ := json.Marshal(struct {
			PeriodNS    time.Duration `json:"period_ns"`
			ThresholdNS time.Duration `json:"threshold_ns"`
			CPUs        []hiccup.CPU  `json:"cpus"`
		}{o.Period, o.Threshold, res})
		fmt.Println(string(b))
		return 0
	}
	for _, c := range res {
		fmt.Printf("cpu %d (SCHED_FIFO %d): %d wake-ups, %d more than %v late, the latest %v late\n",
			c.CPU, c.Priority, c.Wakeups, c.Stalls, o.Threshold, c.MaxLate.Round(10*time.Microsecond))
		for _, s := range c.Largest {
			fmt.Printf("  at %v: %v late\n", s.At.Round(time.Millisecond), s.Late.Round(10*time.Microsecond))
		}
	}
	return 0
}
