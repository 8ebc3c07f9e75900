package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"

	"github.com/adedge/adedge/internal/cliflag"
	"github.com/adedge/adedge/tools/profilesload"
)

func init() {
	register("profiles", "profiles load --from profiles.jsonl --to aerospike://HOST:PORT/NS/SET", runProfiles)
}

func runProfiles(args []string) int {
	const use = "usage: adtool profiles load --from profiles.jsonl --to aerospike://HOST:PORT/NAMESPACE/SET"
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
		fmt.Println(use)
		return 0
	}
	if len(args) == 0 || args[0] != "load" {
		fmt.Fprintln(os.Stderr, use)
		return 2
	}
	fs := newFlagSet("profiles load")
	from := fs.String("from", "", "profiles.jsonl to read")
	to := fs.String("to", "", "destination store, aerospike://HOST:PORT/NAMESPACE/SET")
	if err := fs.Parse(args[1:]); err != nil {
		return cliflag.ExitCode(err)
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
