// Package builder turns a validated inventory into a snapshot: it joins
// campaigns with creatives and predictions, computes eCPM per campaign x
// country x OS, ranks candidate lists per (format, country, OS), and writes
// <version>.snap plus manifest.json atomically.
package builder

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/adedge/adedge/builder/inventory"
	"github.com/adedge/adedge/internal/atomicfile"
	"github.com/adedge/adedge/snapshot"
)

// Options configure one build.
type Options struct {
	Input string // inventory directory
	Out   string // output directory (created if missing)
	// Created is the snapshot's data time. Zero means SOURCE_DATE_EPOCH when
	// set, else the newest input file's modification time: never the wall
	// clock, so the same inputs give the same bytes.
	Created time.Time
	// Progress receives phase reports; nil discards them.
	Progress *Progress
	// State is the experiment-set state file (ExperimentsState): read
	// before the build, so that experiments.json cannot move a running
	// test's users, and rewritten after it. "" means Out/StateFile;
	// NoState skips both.
	State string
}

// Result describes a finished build.
type Result struct {
	Path         string // the .snap file
	ManifestPath string
	Manifest     snapshot.Manifest
	Expired      int // campaigns whose window ended before Created: kept as records, left out of candidate lists
}

// Build validates the inventory, then writes the snapshot and manifest. On a
// validation failure it returns *inventory.ValidationError and writes nothing.
func Build(opts Options) (*Result, error) {
	p := opts.Progress
	statePath := opts.statePath()
	var state *ExperimentsState
	if statePath != "" {
		var err error
		if state, err = ReadState(statePath); err != nil {
			return nil, err
		}
	}
	p.Phase("load inventory")
	inv, err := inventory.Load(opts.Input, inventory.Options{Progress: p.RecordsIn, Previous: state.previous(statePath)})
	if err != nil {
		return nil, err
	}
	p.Done()
	created, err := dataTime(opts)
	if err != nil {
		return nil, err
	}
	contentHash := hashInputs(inv.Inputs)
	version := created.UTC().Format("20060102T150405Z") + "-" + snapshot.Hex16(contentHash)[:8]

	counts := map[string]int64{
		"campaigns":   int64(len(inv.Campaigns)),
		"creatives":   int64(len(inv.Creatives)),
		"placements":  int64(len(inv.Placements)),
		"predictions": int64(len(inv.Predictions)),
		"experiments": int64(len(inv.Experiments.Tests)),
	}
	p.Phase("join and rank")
	enc, err := encode(inv, created.Unix(), p) // releases inv.Creatives when done with them
	if err != nil {
		return nil, err
	}
	p.Done()

	if err := os.MkdirAll(opts.Out, 0o755); err != nil {
		return nil, err
	}
	p.Phase("write snapshot")
	path := filepath.Join(opts.Out, version+".snap")
	var sum snapshot.Summary
	err = atomicfile.Write(path, func(f *os.File) error {
		w, err := snapshot.NewWriter(f, snapshot.Header{Created: created.Unix(), ContentHash: contentHash, Version: version})
		if err != nil {
			return err
		}
		for _, s := range enc.sections {
			if s.stream != nil {
				if err := w.BeginSection(s.id, s.recSize); err != nil {
					return err
				}
				if err := s.stream(w); err != nil {
					return err
				}
				if err := w.EndSection(); err != nil {
					return err
				}
				continue
			}
			if err := w.WriteSection(s.id, s.recSize, s.b); err != nil {
				return err
			}
		}
		sum, err = w.Close()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	p.Done()

	m := snapshot.Manifest{
		Version:       version,
		File:          version + ".snap",
		Size:          sum.Size,
		XXHash64:      snapshot.Hex16(sum.XXHash64),
		FormatVersion: snapshot.FormatVersion,
		Created:       created.UTC().Format(time.RFC3339),
		ContentHash:   snapshot.Hex16(contentHash),
		Counts:        counts,
	}
	counts["candidates"] = int64(enc.candidates)
	counts["expired"] = int64(enc.expired)
	for _, s := range sum.Sections {
		m.Sections = append(m.Sections, snapshot.ManifestSection{Name: s.Name(), Bytes: s.Length, Records: s.Count, XXHash64: snapshot.Hex16(s.XXHash64)})
	}
	for _, in := range inv.Inputs {
		m.Inputs = append(m.Inputs, snapshot.ManifestInput{Name: in.Name, Size: in.Size, XXHash64: snapshot.Hex16(in.XXHash64)})
	}
	mb, err := json.MarshalIndent(&m, "", "  ")
	if err != nil {
		return nil, err
	}
	mb = append(mb, '\n')
	// The per-version manifest first, then manifest.json (the newest build):
	// a reader of manifest.json never sees a version whose file is missing.
	for _, name := range []string{version + ".manifest.json", "manifest.json"} {
		if err := atomicfile.WriteBytes(filepath.Join(opts.Out, name), mb); err != nil {
			return nil, fmt.Errorf("write %s: %w", name, err)
		}
	}
	if statePath != "" {
		if err := writeState(statePath, state.next(version, inv.Experiments)); err != nil {
			return nil, fmt.Errorf("write %s: %w", statePath, err)
		}
	}
	return &Result{Path: path, ManifestPath: filepath.Join(opts.Out, "manifest.json"), Manifest: m, Expired: enc.expired}, nil
}

// SourceDateEpoch reads $SOURCE_DATE_EPOCH (reproducible builds): ok is
// false when it is unset or empty, err says a bad value.
func SourceDateEpoch() (t time.Time, ok bool, err error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return time.Time{}, false, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, false, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want unix seconds (a non-negative integer)", s)
	}
	return time.Unix(n, 0), true, nil
}

// dataTime picks the snapshot's created time without looking at the clock.
func dataTime(opts Options) (time.Time, error) {
	if !opts.Created.IsZero() {
		return opts.Created.Truncate(time.Second), nil
	}
	if t, ok, err := SourceDateEpoch(); ok || err != nil {
		return t, err
	}
	var newest time.Time
	for _, name := range []string{inventory.CampaignsFile, inventory.CreativesFile, inventory.PlacementsFile, inventory.PredictionsFile, inventory.ExperimentsFile} {
		st, err := os.Stat(filepath.Join(opts.Input, name))
		if err != nil {
			return time.Time{}, err
		}
		if st.ModTime().After(newest) {
			newest = st.ModTime()
		}
	}
	return newest.Truncate(time.Second), nil
}

// hashInputs is the build id: xxhash64 over the format version and every
// input's name and content hash.
func hashInputs(in []inventory.InputFile) uint64 {
	d := xxhash.New()
	fmt.Fprintf(d, "adedge-snapshot-v%d\n", snapshot.FormatVersion)
	for _, f := range in {
		fmt.Fprintf(d, "%s %d %016x\n", f.Name, f.Size, f.XXHash64)
	}
	return d.Sum64()
}

// ECPMMicros is the expected revenue of one thousand impressions in micros:
// CPM bids pay per mille, CPC bids pay per click (CTR per impression), CPI
// bids per install (install rate per impression).
func ECPMMicros(bt snapshot.BidType, bidMicros int64, ctr, installRate float64) int64 {
	var v float64
	switch bt {
	case snapshot.BidCPM:
		return bidMicros
	case snapshot.BidCPC:
		v = float64(bidMicros) * ctr * 1000
	case snapshot.BidCPI:
		v = float64(bidMicros) * installRate * 1000
	}
	if v > math.MaxInt64/2 || math.IsNaN(v) {
		return math.MaxInt64 / 2
	}
	return int64(math.Round(v))
}

// predictionAt finds the prediction for (campaign ci, country, os) in the
// run of sorted predictions starting at from, or the documented defaults.
func predictionAt(preds []inventory.PredictionRow, from, ci int, country uint16, os snapshot.OS) (ctr, ir float64) {
	for i := from; i < len(preds) && int(preds[i].Campaign) == ci; i++ {
		if preds[i].Country == country && snapshot.OS(preds[i].OS) == os {
			return float64(preds[i].CTR), float64(preds[i].InstallRate)
		}
	}
	return inventory.DefaultCTR, inventory.DefaultInstallRate
}
