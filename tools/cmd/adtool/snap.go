package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/adedge/adedge/internal/cliflag"
	"github.com/adedge/adedge/tools/snaptool"
)

func init() {
	register("inspect", "summarise a snapshot: counts, bytes per section, biggest candidate lists", runInspect)
	register("verify", "verify a snapshot's checksums and references (exit 1 on any mismatch)", runVerify)
	register("diff", "compare two snapshots: campaigns, placements, ranking on the busiest keys", runDiff)
	register("lookup", "rank a placement's candidates for a country and OS, with eCPM and eligibility", runLookup)
}

// exitFor maps a tool error to an exit code: 1 for a finding, 2 for bad
// arguments or unreadable input.
func exitFor(cmd string, err error) int {
	if err == nil {
		return 0
	}
	fmt.Fprintf(os.Stderr, "adtool %s: %v\n", cmd, err)
	if errors.Is(err, snaptool.ErrVerify) || errors.Is(err, snaptool.ErrNotFound) {
		return 1
	}
	return 2
}

// oneArg parses the flags and wants exactly want path arguments; when it
// is not ok, code is the exit status.
func oneArg(fs *cliflag.Set, args []string, want int) (paths []string, code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		return nil, cliflag.ExitCode(err), false
	}
	if fs.NArg() != want {
		fmt.Fprintf(os.Stderr, "%s: want %d snapshot path(s), got %d (run '%s -h' for the flags)\n", fs.Name(), want, fs.NArg(), fs.Name())
		return nil, 2, false
	}
	return fs.Args(), 0, true
}

func runInspect(args []string) int {
	fs := newFlagSet("inspect", "FILE.snap")
	var o snaptool.InspectOptions
	fs.IntVar(&o.Top, "top", 10, "how many of the biggest candidate lists to show")
	fs.BoolVar(&o.JSON, "json", false, "JSON output")
	paths, code, ok := oneArg(fs, args, 1)
	if !ok {
		return code
	}
	return exitFor("inspect", snaptool.Inspect(os.Stdout, paths[0], o))
}

func runVerify(args []string) int {
	fs := newFlagSet("verify", "FILE.snap")
	var o snaptool.VerifyOptions
	manifest := fs.String("manifest", "", "manifest to check size and xxhash64 against (default: the one beside the file)")
	fs.BoolVar(&o.NoManifest, "no-manifest", false, "skip the manifest comparison")
	fs.BoolVar(&o.JSON, "json", false, "JSON output")
	paths, code, ok := oneArg(fs, args, 1)
	if !ok {
		return code
	}
	return exitFor("verify", snaptool.Verify(os.Stdout, paths[0], *manifest, o))
}

func runDiff(args []string) int {
	fs := newFlagSet("diff", "OLD.snap", "NEW.snap")
	var o snaptool.DiffOptions
	fs.IntVar(&o.Keys, "keys", 5, "busiest candidate lists to compare")
	fs.IntVar(&o.Top, "top", 10, "ranks compared per list")
	fs.IntVar(&o.Limit, "limit", 50, "changed records listed per kind (-1 = all)")
	fs.BoolVar(&o.JSON, "json", false, "JSON output")
	paths, code, ok := oneArg(fs, args, 2)
	if !ok {
		return code
	}
	return exitFor("diff", snaptool.Diff(os.Stdout, paths[0], paths[1], o))
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func runLookup(args []string) int {
	fs := newFlagSet("lookup")
	var o snaptool.LookupOptions
	path := fs.String("snapshot", "", "snapshot file")
	placement := fs.String("placement", "", "placement id")
	country := fs.String("country", "US", "two-letter country code")
	osName := fs.String("os", "android", "android | ios")
	fs.StringVar(&o.OSVersion, "osv", "", "device OS version (empty = unknown: campaigns with a minimum OS version are skipped, as at the edge)")
	fs.StringVar(&o.DeviceType, "devtype", "", "phone | tablet (empty = phone, as at the edge)")
	fs.StringVar(&o.Test, "test", "control", "A/B bucket: control or a test id of the snapshot's experiment set (its floor multiplier, bid weights and min CTR apply)")
	segments := fs.String("segments", "", "the user profile's segments, comma-separated (unset = no profile; \"\" with --profile = a profile in no segment)")
	withProfile := fs.Bool("profile", false, "the request has a user profile (implied by --segments)")
	fs.IntVar(&o.MaxScan, "max-scan", 0, "the edge's --max-scan (0 = default)")
	fs.IntVar(&o.Limit, "limit", 20, "candidates shown (-1 = all)")
	at := fs.String("at", "", "evaluate schedules at this RFC 3339 time (default now)")
	fs.BoolVar(&o.JSON, "json", false, "JSON output")
	formats := fs.String("formats", "", "the slot's accepted creative formats, comma-separated: banner, video, native (empty = all the placement allows, as /v1/ad)")
	sizes := fs.String("sizes", "", "the slot's banner sizes, comma-separated WxH (empty = any)")
	mimes := fs.String("mimes", "", "the player's video mime types, comma-separated (empty = any)")
	fs.IntVar(&o.Slot.MinDuration, "minduration", 0, "video minimum duration, seconds (0 = none)")
	fs.IntVar(&o.Slot.MaxDuration, "maxduration", 0, "video maximum duration, seconds (0 = none)")
	fs.BoolVar(&o.Slot.Interstitial, "instl", false, "the slot is interstitial (imp.instl=1)")
	fs.StringVar(&o.Slot.App, "app", "", "the request's app bundle (empty = the placement's app)")
	if err := fs.Parse(args); err != nil {
		return cliflag.ExitCode(err)
	}
	o.Slot.Formats, o.Slot.Sizes, o.Slot.Mimes = splitList(*formats), splitList(*sizes), splitList(*mimes)
	if *path == "" || *placement == "" {
		fmt.Fprintln(os.Stderr, "adtool lookup: --snapshot and --placement are required")
		return 2
	}
	if *segments != "" || *withProfile {
		o.Segments = []string{}
		for _, seg := range strings.Split(*segments, ",") {
			if seg = strings.TrimSpace(seg); seg != "" {
				o.Segments = append(o.Segments, seg)
			}
		}
	}
	if *at != "" {
		t, err := time.Parse(time.RFC3339, *at)
		if err != nil {
			fmt.Fprintf(os.Stderr, "adtool lookup: --at: %v\n", err)
			return 2
		}
		o.Now = t
	}
	return exitFor("lookup", snaptool.Lookup(os.Stdout, *path, *placement, *country, *osName, o))
}
