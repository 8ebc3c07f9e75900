package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"github.com/adedge/adedge/tools/profilesload"
)

func init() {
	register("profiles", "profiles load --from profiles.jsonl --to aerospike://HOST:PORT/NS/SET", runProfiles)
}

func runProfiles(args []string) int {
	if len(args) == 0 || args[0] != "load" {
		fmt.Fprintln(os.Stderr, "usage: adtool profiles load --from profiles.jsonl --to aerospike://HOST:PORT/NAMESPACE/SET")
		return 2
	}
	fs := flag.NewFlagSet("profiles load", flag.ContinueOnError)
	from := fs.String("from", "", "profiles.jsonl to read")
	to := fs.String("to", "", "destination store, aerospike://HOST:PORT/NAMESPACE/SET")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if *from == "" || *to == "" {
		fmt.Fprintln(os.Stderr, "adtool profiles load: --from and --to are required")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	written, failed, err := profilesload.Load(ctx, *from, *to, os.Stderr)
	fmt.Printf("profiles written: %d, failed: %d\n", written, failed)
	if err != nil {
		fmt.Fprintf(os.Stderr, "adtool profiles load: %v\n", err)
		return 1
	}
	if failed > 0 {
		return 1
	}
	return 0
}
