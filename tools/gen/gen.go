// Package gen writes realistic, deterministic synthetic inventory: the
// campaigns, creatives, placements, predictions and experiments files the
// builder reads (schema: builder/inventory) plus the profiles.jsonl the edge's
// embedded profile store reads.
//
// The same seed and scale always give the same bytes: every value comes from
// math/rand/v2 PCG streams derived from the seed (one per file, plus shared
// world and campaign-plan streams), dates are offsets from a fixed base date
// (2026-01-01, never the clock), and files are generated concurrently without
// sharing a stream, so scheduling cannot change the output.
//
// Distributions aim at what an analyst would expect of a mobile ad network:
// Zipf-skewed countries (US first, ~60 real ISO codes), advertisers, publisher
// apps and installed apps; Android ~70% / iOS ~30%; CPI-heavy bid mix with
// log-normal bids and budgets; interstitial and rewarded heavy for games;
// sparse predictions (~85% of targeted campaign x country x OS).
package gen

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/adedge/adedge/builder/inventory"
)

// Scale sets how much inventory Generate writes.
type Scale struct {
	Campaigns   int // campaigns.jsonl lines, >= 1
	Creatives   int // creatives.jsonl lines, exact; in [Campaigns, 10*Campaigns] (1-10 per campaign)
	Placements  int // placements.jsonl lines
	Advertisers int // advertiser pool campaigns are drawn from (Zipf); some may get none
	Apps        int // publisher apps owning placements (Zipf); >= 1 when Placements > 0
	Profiles    int // profiles.jsonl lines
	// PredictionCoverage is the fraction of targeted (campaign, country, OS)
	// triples that get a predictions.jsonl row, in [0, 1].
	PredictionCoverage float64
}

// Scales are the named sizes: "small" for demos and tests, "medium" for
// benchmarks, "large" for production-sized builds (roughly 600 MB).
var Scales = map[string]Scale{
	"small":  {Campaigns: 200, Creatives: 1_000, Placements: 500, Advertisers: 40, Apps: 120, Profiles: 2_000, PredictionCoverage: 0.85},
	"medium": {Campaigns: 10_000, Creatives: 50_000, Placements: 25_000, Advertisers: 1_500, Apps: 4_000, Profiles: 100_000, PredictionCoverage: 0.85},
	"large":  {Campaigns: 200_000, Creatives: 1_000_000, Placements: 500_000, Advertisers: 20_000, Apps: 60_000, Profiles: 1_000_000, PredictionCoverage: 0.85},
}

// Validate reports why a scale cannot be generated.
func (s Scale) Validate() error {
	switch {
	case s.Campaigns < 1:
		return errors.New("gen: scale needs at least one campaign")
	case s.Creatives < s.Campaigns || s.Creatives > 10*s.Campaigns:
		return fmt.Errorf("gen: %d creatives for %d campaigns: need 1 to 10 per campaign", s.Creatives, s.Campaigns)
	case s.Advertisers < 1:
		return errors.New("gen: scale needs at least one advertiser")
	case s.Placements < 0 || s.Profiles < 0 || s.Apps < 0:
		return errors.New("gen: negative count in scale")
	case s.Placements > 0 && s.Apps < 1:
		return errors.New("gen: placements need at least one app")
	case !(s.PredictionCoverage >= 0 && s.PredictionCoverage <= 1):
		return fmt.Errorf("gen: prediction coverage %v outside [0,1]", s.PredictionCoverage)
	}
	return nil
}

// FileNames lists the files Generate writes, in Stats.Files order.
var FileNames = []string{
	inventory.CampaignsFile,
	inventory.CreativesFile,
	inventory.PlacementsFile,
	inventory.PredictionsFile,
	inventory.ExperimentsFile,
	inventory.ProfilesFile,
}

// FileStats describes one generated file.
type FileStats struct {
	Name    string
	Records int   // lines (experiments.json: tests)
	Bytes   int64 // file size
	Elapsed time.Duration
}

// Stats summarises one Generate call.
type Stats struct {
	Files   []FileStats // in FileNames order
	Records int
	Bytes   int64
	Elapsed time.Duration
}

// File returns the stats of the named file (zero if absent).
func (s Stats) File(name string) FileStats {
	for _, f := range s.Files {
		if f.Name == name {
			return f
		}
	}
	return FileStats{}
}

// Profile is one line of profiles.jsonl: what the edge's profile store holds
// for a device.
type Profile struct {
	Device        string   `json:"device"` // IDFA (upper-case UUID, iOS) or GAID (lower-case UUID, Android)
	Segments      []string `json:"segments"`
	InstalledApps []string `json:"installed_apps"`
}

// Generate writes a full inventory for scale and seed into dir (created if
// missing; existing files of the same names are replaced). Each file is
// written to a temporary name and renamed when complete. progress, if not
// nil, receives one line per file phase and periodic records/s lines.
func Generate(dir string, scale Scale, seed uint64, progress io.Writer) (Stats, error) {
	if err := scale.Validate(); err != nil {
		return Stats{}, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Stats{}, fmt.Errorf("gen: %w", err)
	}
	start := time.Now()
	rep := &reporter{w: progress}
	w := buildWorld(seed, scale)
	p := buildPlan(seed, scale, w)
	rep.printf("gen: world and plan: %d advertisers, %d promoted apps, %d publisher apps, %d campaigns (%v)",
		len(w.advs), len(w.apps), len(w.pubApps), len(p.camps), time.Since(start).Round(time.Millisecond))
	g := &generator{seed: seed, sc: scale, w: w, p: p}

	// Biggest first so two workers finish together.
	jobs := []struct {
		name   string
		expect int
		fn     func(*sink)
	}{
		{inventory.CreativesFile, scale.Creatives, g.creatives},
		{inventory.ProfilesFile, scale.Profiles, g.profiles},
		{inventory.CampaignsFile, scale.Campaigns, g.campaigns},
		{inventory.PredictionsFile, int(float64(p.pairs) * scale.PredictionCoverage), g.predictions},
		{inventory.PlacementsFile, scale.Placements, g.placements},
		{inventory.ExperimentsFile, 3, g.experiments},
	}
	results := make(map[string]FileStats, len(jobs))
	errs := make([]error, len(jobs))
	var mu sync.Mutex
	next := make(chan int, len(jobs))
	for i := range jobs {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	for range workers(len(jobs)) {
		wg.Go(func() {
			for i := range next {
				j := jobs[i]
				fs, err := writeFile(dir, j.name, j.expect, rep, j.fn)
				mu.Lock()
				results[j.name], errs[i] = fs, err
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return Stats{}, err
	}
	st := Stats{Elapsed: time.Since(start)}
	for _, name := range FileNames {
		fs := results[name]
		st.Files = append(st.Files, fs)
		st.Records += fs.Records
		st.Bytes += fs.Bytes
	}
	rep.printf("gen: done: %d records, %.1f MB in %v (%.0f records/s)", st.Records, float64(st.Bytes)/1e6,
		st.Elapsed.Round(time.Millisecond), float64(st.Records)/st.Elapsed.Seconds())
	return st, nil
}

// generator holds what the per-file writers share (read-only).
type generator struct {
	seed uint64
	sc   Scale
	w    *world
	p    *plan
}

// writeFile runs fn into a temporary file and renames it into place.
func writeFile(dir, name string, expect int, rep *reporter, fn func(*sink)) (FileStats, error) {
	final := filepath.Join(dir, name)
	f, err := os.CreateTemp(dir, "."+name+".tmp*")
	if err != nil {
		return FileStats{}, fmt.Errorf("gen: %w", err)
	}
	tmp := f.Name()
	s := &sink{f: f, name: name, expect: expect, rep: rep, start: time.Now(), buf: make([]byte, 0, bufSize+64<<10)}
	s.last = s.start
	fn(s)
	s.flush()
	if err := f.Chmod(0o644); err != nil && s.err == nil {
		s.err = err
	}
	if err := f.Close(); err != nil && s.err == nil {
		s.err = err
	}
	if s.err == nil {
		s.err = os.Rename(tmp, final)
	}
	if s.err != nil {
		os.Remove(tmp)
		return FileStats{}, fmt.Errorf("gen: %s: %w", name, s.err)
	}
	el := time.Since(s.start)
	rep.printf("gen: %-17s %9d records %8.1f MB in %6v (%.0f records/s)", name, s.records, float64(s.bytes)/1e6,
		el.Round(time.Millisecond), float64(s.records)/el.Seconds())
	return FileStats{Name: name, Records: s.records, Bytes: s.bytes, Elapsed: el}, nil
}

// workers says how many files to write at once (a variable so tests can
// check that the output does not depend on it).
var workers = func(jobs int) int { return min(max(runtime.GOMAXPROCS(0), 2), jobs) }

const bufSize = 4 << 20

// sink is a file plus a big append buffer: writers append JSON straight into
// buf and call done after each record.
type sink struct {
	f       *os.File
	buf     []byte
	bytes   int64
	records int
	err     error

	name        string
	expect      int
	rep         *reporter
	start, last time.Time
}

func (s *sink) done() {
	s.records++
	if len(s.buf) >= bufSize && s.f != nil {
		s.flush()
	}
	if s.records&0xffff == 0 && s.rep.w != nil {
		if now := time.Now(); now.Sub(s.last) >= time.Second {
			s.last = now
			s.rep.printf("gen: %-17s %9d/%d records (%.0f records/s)", s.name, s.records, s.expect,
				float64(s.records)/now.Sub(s.start).Seconds())
		}
	}
}

func (s *sink) flush() {
	if s.err == nil && len(s.buf) > 0 {
		var n int
		n, s.err = s.f.Write(s.buf)
		s.bytes += int64(n)
	}
	s.buf = s.buf[:0]
}

// reporter serialises progress lines from concurrent writers.
type reporter struct {
	mu sync.Mutex
	w  io.Writer
}

func (r *reporter) printf(format string, args ...any) {
	if r.w == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(r.w, format+"\n", args...)
}
