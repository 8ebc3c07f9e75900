// Command adbuilder turns inventory exports into verified, checksummed
// snapshots for the edges.
//
//	adbuilder build --input DIR --out DIR [--created RFC3339]
//	adbuilder serve --input DIR --data DIR --listen ADDR --key FILE
package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/adedge/adedge/builder"
	"github.com/adedge/adedge/builder/inventory"
	"github.com/adedge/adedge/internal/cliflag"
)

const usage = `usage: adbuilder <command> [flags]

commands:
  build   validate an inventory directory and write <version>.snap + manifest.json
  serve   build on input change, seed over BitTorrent, publish signed channel manifests

run 'adbuilder <command> -h' for the command's flags; every flag can also be set as
ADBUILDER_FLAG_NAME (capitals, dashes as underscores; the command line wins)
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
	case "-h", "--help", "-help", "help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "adbuilder: unknown command %q\n%s", os.Args[1], usage)
		os.Exit(2)
	}
}

type buildArgs struct {
	input, out, created, state string
	quiet                      bool
}

// buildFlags are `adbuilder build`'s flags (ADBUILDER_<FLAG> too).
func buildFlags(a *buildArgs) *cliflag.Set {
	fs := cliflag.New("adbuilder build", "ADBUILDER_", "adbuilder build --input DIR --out DIR [flags]")
	fs.About("Validates an inventory directory and writes <version>.snap, <version>.manifest.json and\nmanifest.json atomically (nothing is written for a bad inventory).")
	g := fs.Group("Flags")
	g.String(&a.input, "input", "", "inventory directory (campaigns.jsonl, creatives.jsonl, placements.jsonl, predictions.jsonl, experiments.json)")
	g.String(&a.out, "out", "", "output directory for <version>.snap and manifest.json")
	g.String(&a.created, "created", "", "snapshot data time, RFC 3339 (default: $SOURCE_DATE_EPOCH, else the newest input's mtime)", rfc3339)
	g.String(&a.state, "experiments-state", "", "experiment-set state file: the previous set, whose running tests a new experiments.json may not move (default OUT/"+builder.StateFile+"; \"none\" skips the check)")
	g.Bool(&a.quiet, "quiet", false, "no progress output")
	fs.Require("input", "out")
	fs.After(func() error {
		if a.created == "" {
			_, _, err := builder.SourceDateEpoch()
			return err
		}
		return nil
	})
	return fs
}

// rfc3339 refuses a time that is not RFC 3339 (empty is the default).
func rfc3339(v string) string {
	if _, err := time.Parse(time.RFC3339, v); v != "" && err != nil {
		return "an RFC 3339 time like 2026-11-22T05:00:00Z"
	}
	return ""
}

func build(args []string) int {
	var a buildArgs
	fs := buildFlags(&a)
	if err := fs.Parse(args); err != nil {
		return cliflag.ExitCode(err)
	}
	opts := builder.Options{Input: a.input, Out: a.out, State: a.state}
	if a.created != "" {
		opts.Created, _ = time.Parse(time.RFC3339, a.created) // checked by the flag
	}
	if !a.quiet {
		opts.Progress = builder.NewProgress(os.Stderr)
	}
	start := time.Now()
	res, err := builder.Build(opts)
	if err != nil {
		var ve *inventory.ValidationError
		if errors.As(err, &ve) {
			fmt.Fprintln(os.Stderr, ve.Error())
			fmt.Fprintf(os.Stderr, "adbuilder build: inventory %s refused: %d problem(s); nothing was written\n", a.input, ve.Total)
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
