package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/adedge/adedge/abtest"
	"github.com/adedge/adedge/abtest/report"
	"github.com/adedge/adedge/internal/cliflag"
	"github.com/adedge/adedge/server/events/ship"
	"github.com/adedge/adedge/tools/abreport"
	"github.com/adedge/adedge/tools/abtraffic"
)

func init() {
	register("abreport", "A/B report from rows files or ClickHouse: sequential p-values, Holm/BH, CUPED, guardrails, SRM, breakdowns (text, CSV, HTML)", runABReport)
	register("stagecheck", "Nagios-style check of staging vs production from rows files (exit 0/1/2/3)", runStagecheck)
}

// dirList collects repeated --rows flags (and comma lists).
type dirList []string

func (d *dirList) String() string { return strings.Join(*d, ",") }
func (d *dirList) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p != "" {
			*d = append(*d, p)
		}
	}
	return nil
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil { // "-2h": relative to now
		return time.Now().Add(d), nil
	}
	return time.Time{}, fmt.Errorf("%q: want RFC3339, YYYY-MM-DD[THH:MM] or a duration like -2h", s)
}

func runABReport(args []string) int {
	fs := newFlagSet("abreport", "[DIR...]")
	var dirs dirList
	fs.Var(&dirs, "rows", "directory of rows files (repeat, or comma-separate, for many edges)")
	from := fs.String("from", "", "first interval start to include (RFC3339, or -24h for relative)")
	to := fs.String("to", "", "last interval end to include")
	env := fs.String("env", "production", "environment to report (empty = all)")
	format := fs.String("format", "text", "text | csv | html")
	out := fs.String("out", "", "write to this file instead of stdout")
	view := fs.String("view", "sequential", "sequential (always-valid p-values, valid at every look) | fixed (fixed-horizon, one planned look)")
	alpha := fs.Float64("alpha", 0.05, "level of intervals, corrections and guardrail verdicts")
	tau := fs.Float64("msprt-tau", 0.1, "mSPRT mixing sd, relative to control's value (the effect size the sequential test is tuned for)")
	preFrom := fs.String("pre-from", "", "CUPED pre-period start (rows of the same groups before the test window)")
	preTo := fs.String("pre-to", "", "CUPED pre-period end (default: --from)")
	chURL := fs.String("clickhouse", "", "read the warehouse instead of rows files: http://HOST:8123/?database=adedge (docs/EVENTS.md)")
	chTimeout := fs.Duration("clickhouse-timeout", time.Minute, "per-query timeout for --clickhouse")
	if err := fs.Parse(args); err != nil {
		return cliflag.ExitCode(err)
	}
	opts := report.Options{View: report.View(*view), Alpha: *alpha, TauRel: *tau}
	if err := opts.Validate(); err != nil || *alpha == 0 || *tau == 0 {
		if err == nil {
			err = fmt.Errorf("--alpha and --msprt-tau must be > 0")
		}
		fmt.Fprintf(os.Stderr, "abreport: %v\n", err)
		return 2
	}
	switch *format {
	case "text", "csv", "html":
	default:
		fmt.Fprintf(os.Stderr, "abreport: --format %q: want text, csv or html\n", *format)
		return 2
	}
	dirs = append(dirs, fs.Args()...) // "--rows DIR DIR2 ..." as in the usage line
	if len(dirs) == 0 && *chURL == "" {
		fmt.Fprintln(os.Stderr, "abreport: --rows DIR (or --clickhouse URL) is required")
		return 2
	}
	if len(dirs) > 0 && *chURL != "" {
		fmt.Fprintln(os.Stderr, "abreport: --rows and --clickhouse are two sources of the same report: give one")
		return 2
	}
	var ch *ship.Client
	if *chURL != "" {
		tg, err := ship.ParseTarget(*chURL)
		if err != nil {
			fmt.Fprintf(os.Stderr, "abreport: --clickhouse: %v\n", err)
			return 2
		}
		if *chTimeout <= 0 {
			fmt.Fprintln(os.Stderr, "abreport: --clickhouse-timeout must be > 0")
			return 2
		}
		ch = ship.NewClient(tg, *chTimeout)
	}
	var f abreport.Filter
	var err error
	if f.From, err = parseTime(*from); err != nil {
		fmt.Fprintf(os.Stderr, "abreport: --from %v\n", err)
		return 2
	}
	if f.To, err = parseTime(*to); err != nil {
		fmt.Fprintf(os.Stderr, "abreport: --to %v\n", err)
		return 2
	}
	f.Env = *env
	var rows []abtest.Row
	var files int
	var skipped []abreport.Skipped
	var info abreport.CHInfo
	if ch != nil {
		rows, info, err = abreport.LoadClickHouse(context.Background(), ch, f, &opts)
	} else {
		rows, files, skipped, err = abreport.Load(dirs, f)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "abreport: %v\n", err)
		return 1
	}
	for _, s := range skipped {
		fmt.Fprintf(os.Stderr, "abreport: skipped %s: %v\n", s.Path, s.Err)
	}
	if *preFrom != "" {
		var pf abreport.Filter
		if pf.From, err = parseTime(*preFrom); err != nil {
			fmt.Fprintf(os.Stderr, "abreport: --pre-from %v\n", err)
			return 2
		}
		pf.To = f.From
		if *preTo != "" {
			if pf.To, err = parseTime(*preTo); err != nil {
				fmt.Fprintf(os.Stderr, "abreport: --pre-to %v\n", err)
				return 2
			}
		}
		if pf.To.IsZero() || !pf.From.Before(pf.To) {
			fmt.Fprintln(os.Stderr, "abreport: --pre-from needs --pre-to (or --from) after it")
			return 2
		}
		pf.Env = f.Env
		if ch != nil {
			var preOpts report.Options
			opts.Pre, _, err = abreport.LoadClickHouse(context.Background(), ch, pf, &preOpts)
		} else {
			opts.Pre, _, _, err = abreport.Load(dirs, pf)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "abreport: pre-period: %v\n", err)
			return 1
		}
	}
	rep, err := report.Build(rows, files, opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "abreport: %v\n", err)
		return 1
	}
	if ch != nil {
		abreport.NoteSource(rep, info)
		fmt.Fprintf(os.Stderr, "abreport: clickhouse %s: %d queries in %v\n", info.Source, info.Queries, info.Elapsed.Round(time.Millisecond))
	}
	w := os.Stdout
	if *out != "" {
		fh, err := os.Create(*out)
		if err != nil {
			fmt.Fprintf(os.Stderr, "abreport: %v\n", err)
			return 1
		}
		defer fh.Close()
		w = fh
	}
	switch *format {
	case "text":
		abreport.WriteText(w, rep, skipped)
	case "csv":
		err = abreport.WriteCSV(w, rep)
	case "html":
		err = abreport.WriteHTML(w, rep, skipped)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "abreport: %v\n", err)
		return 1
	}
	for _, er := range rep.Experiments {
		if er.SRM.Failed {
			fmt.Fprintf(os.Stderr, "abreport: SAMPLE RATIO MISMATCH in %s/%s (p=%.2g): do not trust its lifts\n", er.Env, er.Experiment, er.SRM.P)
		}
	}
	return 0
}

func runStagecheck(args []string) int {
	fs := newFlagSet("stagecheck", "[DIR...]")
	var dirs dirList
	fs.Var(&dirs, "rows", "directory of rows files (repeat, or comma-separate)")
	window := fs.Duration("window", 15*time.Minute, "compare the rows of this last stretch of time")
	th := abreport.DefaultThresholds
	fs.Float64Var(&th.WarnFillDrop, "warn-fill-drop", th.WarnFillDrop, "WARNING when staging's fill rate is this much lower, relative")
	fs.Float64Var(&th.CritFillDrop, "crit-fill-drop", th.CritFillDrop, "CRITICAL fill-rate drop, relative")
	fs.Float64Var(&th.WarnErrorExcess, "warn-error-excess", th.WarnErrorExcess, "WARNING when staging's error rate exceeds production's by this (absolute)")
	fs.Float64Var(&th.CritErrExc, "crit-error-excess", th.CritErrExc, "CRITICAL error-rate excess (absolute)")
	fs.Float64Var(&th.WarnP99Ratio, "warn-p99-ratio", th.WarnP99Ratio, "WARNING when staging's p99 latency is this many times production's")
	fs.Float64Var(&th.CritP99Ratio, "crit-p99-ratio", th.CritP99Ratio, "CRITICAL p99 ratio")
	fs.Float64Var(&th.WarnECPMDrop, "warn-ecpm-drop", th.WarnECPMDrop, "WARNING eCPM drop, relative")
	fs.Float64Var(&th.CritECPMDrop, "crit-ecpm-drop", th.CritECPMDrop, "CRITICAL eCPM drop, relative")
	fs.Uint64Var(&th.MinRequests, "min-requests", th.MinRequests, "UNKNOWN below this many requests per env in the window")
	if err := fs.Parse(args); err != nil {
		if cliflag.ExitCode(err) == 0 {
			return 0 // help asked for
		}
		return abreport.Unknown
	}
	dirs = append(dirs, fs.Args()...)
	if len(dirs) == 0 {
		fmt.Println("STAGECHECK UNKNOWN - --rows DIR is required")
		return abreport.Unknown
	}
	rows, _, skipped, err := abreport.Load(dirs, abreport.Filter{From: time.Now().Add(-*window)})
	if err != nil {
		fmt.Printf("STAGECHECK UNKNOWN - %v\n", err)
		return abreport.Unknown
	}
	code, line := abreport.StageCheck(rows, skipped, *window, th)
	fmt.Println(line)
	return code
}

func init() {
	register("abtraffic", "demo SDK traffic: ad requests from the inventory's mix, firing some impression and click URLs", runABTraffic)
}

func runABTraffic(args []string) int {
	fs := newFlagSet("abtraffic")
	var o abtraffic.Options
	fs.StringVar(&o.Target, "target", "http://127.0.0.1:8080", "base URL of the edge")
	fs.StringVar(&o.Inventory, "inventory", "", "inventory directory (placements.jsonl, profiles.jsonl)")
	fs.IntVar(&o.Requests, "requests", 5000, "ad requests to send")
	fs.IntVar(&o.Workers, "workers", 8, "concurrent clients")
	fs.Float64Var(&o.ImpressionP, "impression-p", 0.8, "chance a fill's impression URL is fired")
	fs.Float64Var(&o.ClickP, "click-p", 0.05, "chance an impression's click URL is fired")
	fs.Uint64Var(&o.Seed, "seed", 1, "request mix seed")
	if err := fs.Parse(args); err != nil {
		return cliflag.ExitCode(err)
	}
	res, err := abtraffic.Run(o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "abtraffic: %v\n", err)
		return 1
	}
	fmt.Println(res)
	return 0
}
