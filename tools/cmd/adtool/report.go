package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/adedge/adedge/internal/cliflag"
	"github.com/adedge/adedge/server/events/ship"
	"github.com/adedge/adedge/tools/evtool"
)

func init() {
	register("report", "report delivery --clickhouse URL --by campaign|creative|placement|country|hour: requests, fills, impressions, clicks, CTR, spend, eCPM from the warehouse", runReport)
}

func runReport(args []string) int {
	const use = "usage: adtool report delivery --clickhouse URL [--from T] [--to T] [--by campaign|creative|placement|country|hour] [--format table|csv] [--raw] [--refresh]"
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
		fmt.Println(use)
		return 0
	}
	if len(args) == 0 || args[0] != "delivery" {
		fmt.Fprintln(os.Stderr, use)
		return 2
	}
	fs := newFlagSet("report delivery")
	url := fs.String("clickhouse", "", "ClickHouse HTTP URL, http://HOST:8123/?database=adedge (required)")
	from := fs.String("from", "-24h", "start of the window (RFC3339, YYYY-MM-DD[THH:MM], or -24h relative to now)")
	to := fs.String("to", "", "end of the window, exclusive (default now)")
	by := fs.String("by", "campaign", "one row per "+strings.Join(evtool.ByValues, " | "))
	format := fs.String("format", "table", "table | csv")
	raw := fs.Bool("raw", false, "read the events table (FINAL) instead of the delivery_hourly rollup")
	refresh := fs.Bool("refresh", false, "rebuild the window's hours in the rollups before reading them")
	if err := fs.Parse(args[1:]); err != nil {
		return cliflag.ExitCode(err)
	}
	if *url == "" {
		fmt.Fprintln(os.Stderr, "adtool report delivery: --clickhouse is required")
		return 2
	}
	tg, err := ship.ParseTarget(*url)
	if err != nil {
		fmt.Fprintf(os.Stderr, "adtool report delivery: %v\n", err)
		return 2
	}
	f, err := parseTime(*from)
	if err != nil {
		fmt.Fprintf(os.Stderr, "adtool report delivery: --from %v\n", err)
		return 2
	}
	t := time.Now()
	if *to != "" {
		if t, err = parseTime(*to); err != nil {
			fmt.Fprintf(os.Stderr, "adtool report delivery: --to %v\n", err)
			return 2
		}
	}
	if err := evtool.CheckBy(*by); err != nil {
		fmt.Fprintf(os.Stderr, "adtool report delivery: %v\n", err)
		return 2
	}
	if *format != "table" && *format != "csv" {
		fmt.Fprintf(os.Stderr, "adtool report delivery: --format %q: want table or csv\n", *format)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rows, err := evtool.Delivery(ctx, ship.NewClient(tg, 2*time.Minute), *by, f, t, evtool.DeliveryOptions{Raw: *raw, Refresh: *refresh})
	if err != nil {
		fmt.Fprintf(os.Stderr, "adtool report delivery: %v\n", err)
		return 1
	}
	if err := evtool.WriteDelivery(os.Stdout, *by, *format, rows); err != nil {
		fmt.Fprintf(os.Stderr, "adtool report delivery: %v\n", err)
		return 1
	}
	return 0
}
