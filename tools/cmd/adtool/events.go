package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/adedge/adedge/internal/chkit"
	"github.com/adedge/adedge/internal/cliflag"
	"github.com/adedge/adedge/server/events/ship"
	"github.com/adedge/adedge/tools/evtool"
)

func init() {
	register("events", "an edge's billing event log: cat | stats DIR, schema [--clickhouse URL] (docs/EVENTS.md)", runEvents)
}

const eventsUsage = `usage:
  adtool events cat [--json] DIR      every record, one per line (--json: the ClickHouse row)
  adtool events stats [--json] DIR    counts by kind (unique, duplicates), damaged spans, torn tail
  adtool events schema [--clickhouse URL]
                                      print the ClickHouse schema; with --clickhouse, create it (idempotent)
  adtool events clickhouse DIR        run a local clickhouse-server with its data in DIR (demos): prints
                                      its URL, stops on SIGTERM or SIGINT`

func runEvents(args []string) int {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help" || args[0] == "help") {
		fmt.Println("usage: adtool events cat|stats|schema ...")
		fmt.Println(strings.TrimPrefix(eventsUsage, "usage:\n"))
		return 0
	}
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, eventsUsage)
		return 2
	}
	sub, args := args[0], args[1:]
	var fs *cliflag.Set
	switch sub {
	case "cat", "stats":
		fs = newFlagSet("events "+sub, "DIR")
	case "schema":
		fs = newFlagSet("events schema")
	case "clickhouse":
		return eventsClickHouse(args)
	default:
		fmt.Fprintf(os.Stderr, "adtool events: unknown subcommand %q\n%s\n", sub, eventsUsage)
		return 2
	}
	asJSON := fs.Bool("json", false, "JSON output")
	chURL := fs.String("clickhouse", "", "schema: ClickHouse HTTP URL, http://HOST:8123/?database=adedge, to create it in")
	if err := fs.Parse(args); err != nil {
		return cliflag.ExitCode(err)
	}
	if sub == "schema" {
		return eventsSchema(*chURL)
	}
	if fs.NArg() != 1 {
		fmt.Fprintf(os.Stderr, "adtool events %s: want one DIR\n%s\n", sub, eventsUsage)
		return 2
	}
	dir := fs.Arg(0)
	if sub == "cat" {
		r, err := evtool.Cat(os.Stdout, dir, *asJSON)
		if err != nil {
			fmt.Fprintf(os.Stderr, "adtool events cat: %v\n", err)
			return 1
		}
		if len(r.Damaged) > 0 || r.Torn > 0 {
			fmt.Fprintf(os.Stderr, "adtool events cat: skipped %d damaged spans, %d torn tail bytes\n", len(r.Damaged), r.Torn)
		}
		return 0
	}
	st, err := evtool.ComputeStats(dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "adtool events stats: %v\n", err)
		return 1
	}
	if *asJSON {
		fmt.Println(string(st.AppendJSON(nil)))
		return 0
	}
	if err := st.WriteText(os.Stdout); err != nil {
		return 1
	}
	return 0
}

func eventsSchema(url string) int {
	db := "adedge"
	var tg *ship.Target
	if url != "" {
		var err error
		if tg, err = ship.ParseTarget(url); err != nil {
			fmt.Fprintf(os.Stderr, "adtool events schema: %v\n", err)
			return 2
		}
		db = tg.Database
	}
	fmt.Printf("-- adedge events schema (ClickHouse >= %s)\n%s;\n", ship.MinClickHouse, strings.Join(ship.Schema(db), ";\n\n"))
	if tg == nil {
		return 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ship.NewClient(tg, 30*time.Second).EnsureSchema(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "adtool events schema: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "schema created in %s (or already there)\n", ship.Redact(url))
	return 0
}

// eventsClickHouse runs the tests' ClickHouse kit as a foreground process
// for the demo: the first stdout line is the URL.
func eventsClickHouse(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: adtool events clickhouse DIR")
		return 2
	}
	srv, err := chkit.StartServer(args[0])
	if err != nil {
		fmt.Fprintf(os.Stderr, "adtool events clickhouse: %v\n", err)
		return 1
	}
	fmt.Println(srv.URL())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	<-sigs
	_ = srv.Stop()
	return 0
}
