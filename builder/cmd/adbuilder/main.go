// Command adbuilder turns inventory exports into verified, checksummed
// snapshots for the edges.
//
//	adbuilder build --input DIR --out DIR [--created RFC3339]
//	adbuilder serve --input DIR --data DIR --listen ADDR --key FILE
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/adedge/adedge/builder"
	"github.com/adedge/adedge/builder/inventory"
)

const usage = `usage: adbuilder <command> [flags]

commands:
  build   validate an inventory directory and write <version>.snap + manifest.json
  serve   build on input change, seed over BitTorrent, publish signed channel manifests

run 'adbuilder <command> -h' for the command's flags
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	switch os.Args[1] {
	case "build":
		os.Exit(build(os.Args[2:]))
	case "serve":
		os.Exit(serve(os.Args[2:]))
	case "-h", "--help", "help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "adbuilder: unknown command %q\n%s", os.Args[1], usage)
		os.Exit(2)
	}
}

func build(args []string) int {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	input := fs.String("input", "", "inventory directory (campaigns.jsonl, creatives.jsonl, placements.jsonl, predictions.jsonl, experiments.json)")
	out := fs.String("out", "", "output directory for <version>.snap and manifest.json")
	created := fs.String("created", "", "snapshot data time, RFC 3339 (default: $SOURCE_DATE_EPOCH, else the newest input's mtime)")
	quiet := fs.Bool("quiet", false, "no progress output")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *input == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "adbuilder build: --input and --out are required")
		fs.Usage()
		return 2
	}
	opts := builder.Options{Input: *input, Out: *out}
	if *created != "" {
		t, err := time.Parse(time.RFC3339, *created)
		if err != nil {
			fmt.Fprintf(os.Stderr, "adbuilder build: --created %q: want RFC 3339 like 2026-11-22T05:00:00Z\n", *created)
			return 2
		}
		opts.Created = t
	}
	if !*quiet {
		opts.Progress = builder.NewProgress(os.Stderr)
	}
	start := time.Now()
	res, err := builder.Build(opts)
	if err != nil {
		var ve *inventory.ValidationError
		if errors.As(err, &ve) {
			fmt.Fprintln(os.Stderr, ve.Error())
			fmt.Fprintf(os.Stderr, "adbuilder build: inventory %s refused: %d problem(s); nothing was written\n", *input, ve.Total)
			return 1
		}
		fmt.Fprintf(os.Stderr, "adbuilder build: %v\n", err)
		return 1
	}
	m := res.Manifest
	fmt.Printf("built %s in %s: %d bytes, xxhash64 %s, %d campaigns, %d creatives, %d placements, %d candidates (%d expired campaigns left out of ranking)\n",
		res.Path, time.Since(start).Round(time.Millisecond), m.Size, m.XXHash64,
		m.Counts["campaigns"], m.Counts["creatives"], m.Counts["placements"], m.Counts["candidates"], res.Expired)
	fmt.Printf("manifest %s\n", res.ManifestPath)
	return 0
}
