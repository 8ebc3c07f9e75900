// Package builder turns a validated inventory into a snapshot: it joins
// campaigns with creatives and predictions, computes eCPM per campaign x
// country x OS, ranks candidate lists per (format, country, OS), and writes
// <version>.snap plus manifest.json atomically.
package builder

import (
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
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
	p.Phase("load inventory")
	inv, err := inventory.Load(opts.Input, inventory.Options{Progress: p.RecordsIn})
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
	return &Result{Path: path, ManifestPath: filepath.Join(opts.Out, "manifest.json"), Manifest: m, Expired: enc.expired}, nil
}

// dataTime picks the snapshot's created time without looking at the clock.
func dataTime(opts Options) (time.Time, error) {
	if !opts.Created.IsZero() {
		return opts.Created.Truncate(time.Second), nil
	}
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want unix seconds", s)
		}
		return time.Unix(n, 0), nil
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

type encodedSection struct {
	id, recSize uint32
	b           []byte
	stream      func(w *snapshot.Writer) error // instead of b, for the largest sections
}

type encoded struct {
	sections   []encodedSection
	candidates int
	expired    int
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

// dict assigns dense indexes to sorted distinct names.
type dict struct {
	names []string
	index map[string]uint32
}

func newDict(names map[string]struct{}) dict {
	d := dict{index: make(map[string]uint32, len(names))}
	for n := range names {
		d.names = append(d.names, n)
	}
	slices.Sort(d.names)
	for i, n := range d.names {
		d.index[n] = uint32(i)
	}
	return d
}

func (d dict) section(id uint32, st *snapshot.StringTable) (encodedSection, error) {
	b := make([]byte, 0, len(d.names)*snapshot.RefSize)
	for _, n := range d.names {
		r, err := st.Add(n)
		if err != nil {
			return encodedSection{}, err
		}
		b = snapshot.AppendRef(b, r.Off, r.Len)
	}
	return encodedSection{id: id, recSize: snapshot.RefSize, b: b}, nil
}

func encode(inv *inventory.Inventory, now int64, p *Progress) (*encoded, error) {
	var st snapshot.StringTable
	var pool snapshot.U32Pool
	out := &encoded{}

	advNames, catNames, segNames := map[string]struct{}{}, map[string]struct{}{}, map[string]struct{}{}
	for i := range inv.Campaigns {
		c := &inv.Campaigns[i]
		advNames[c.Advertiser] = struct{}{}
		catNames[c.Category] = struct{}{}
		for _, s := range c.Targeting.Segments {
			segNames[s] = struct{}{}
		}
	}
	for i := range inv.Placements {
		for _, a := range inv.Placements[i].BlockedAdvertisers {
			advNames[a] = struct{}{}
		}
		for _, c := range inv.Placements[i].BlockedCategories {
			catNames[c] = struct{}{}
		}
	}
	if len(segNames) > snapshot.MaxSegments {
		return nil, fmt.Errorf("%d segments, the format holds %d", len(segNames), snapshot.MaxSegments)
	}
	advs, cats, segs := newDict(advNames), newDict(catNames), newDict(segNames)
	var dictSecs [3]encodedSection
	var err error
	for i, d := range []struct {
		d  dict
		id uint32
	}{{advs, snapshot.SecAdvertisers}, {cats, snapshot.SecCategories}, {segs, snapshot.SecSegments}} {
		if dictSecs[i], err = d.d.section(d.id, &st); err != nil {
			return nil, err
		}
	}

	// Reserve the string table and pool once: at the large scale they are
	// hundreds of MB, and append doubling would briefly hold two copies.
	strBytes, poolLen := 0, 0
	for i := range inv.Creatives {
		c := &inv.Creatives[i]
		strBytes += len(c.ID) + len(c.AssetURL) + len(c.ClickURL)
	}
	for i := range inv.Campaigns {
		c := &inv.Campaigns[i]
		strBytes += len(c.ID) + len(c.PromotedApp)
		poolLen += len(c.CreativeIDs) + len(c.Targeting.Countries)
	}
	for i := range inv.Placements {
		pl := &inv.Placements[i]
		strBytes += len(pl.ID) + len(pl.App)
		poolLen += len(pl.BlockedAdvertisers) + len(pl.BlockedCategories)
	}
	st.Grow(strBytes)
	pool.Grow(poolLen)

	// Creatives.
	creatives := make([]byte, 0, len(inv.Creatives)*snapshot.CreativeSize)
	crFormat := make([]snapshot.Format, len(inv.Creatives))
	for i := range inv.Creatives {
		c := &inv.Creatives[i]
		f, ok := snapshot.ParseFormat(c.Format)
		if !ok {
			return nil, fmt.Errorf("creative %s: format %q", c.ID, c.Format)
		}
		crFormat[i] = f
		rec := snapshot.Creative{Format: f, Width: c.Width, Height: c.Height}
		if rec.ID, err = st.AddUnique(c.ID); err != nil {
			return nil, err
		}
		if rec.AssetURL, err = st.AddUnique(c.AssetURL); err != nil {
			return nil, err
		}
		if rec.ClickURL, err = st.AddUnique(c.ClickURL); err != nil {
			return nil, err
		}
		creatives = snapshot.AppendCreative(creatives, &rec)
	}
	p.Records(len(inv.Creatives))

	// Campaigns. Candidate entries are placed afterwards by a counting pass,
	// so the largest structure is allocated once at its final size.
	campaigns := make([]byte, 0, len(inv.Campaigns)*snapshot.CampaignSize)
	type plan struct {
		creatives, countries snapshot.ListRef
		osMask               uint8
		bt                   snapshot.BidType
		live                 bool
	}
	plans := make([]plan, len(inv.Campaigns))
	crIdx := make([]uint32, 0, 16)
	countries := make([]uint32, 0, 32)
	for ci := range inv.Campaigns {
		c := &inv.Campaigns[ci]
		bt, ok := snapshot.ParseBidType(c.BidType)
		if !ok {
			return nil, fmt.Errorf("campaign %s: bid type %q", c.ID, c.BidType)
		}
		start, err1 := time.Parse(time.RFC3339, c.Start)
		end, err2 := time.Parse(time.RFC3339, c.End)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("campaign %s: %w", c.ID, err)
		}
		rec := snapshot.Campaign{
			Advertiser:        advs.index[c.Advertiser],
			Category:          cats.index[c.Category],
			BidType:           bt,
			BidMicros:         c.BidMicros,
			DailyBudgetMicros: c.DailyBudgetMicros,
			Start:             start.Unix(),
			End:               end.Unix(),
		}
		if rec.ID, err = st.AddUnique(c.ID); err != nil {
			return nil, err
		}
		if c.PromotedApp != "" {
			rec.PromotedAppHash = xxhash.Sum64String(c.PromotedApp)
			if rec.PromotedApp, err = st.Add(c.PromotedApp); err != nil {
				return nil, err
			}
		}
		if c.FrequencyCap != nil {
			rec.FreqCapCount, rec.FreqCapPeriod = c.FrequencyCap.Count, c.FrequencyCap.PeriodSeconds
		}
		for _, d := range c.Targeting.DeviceTypes {
			bit, _ := snapshot.ParseDeviceType(d)
			rec.DeviceTypes |= bit
		}
		if rec.DeviceTypes == 0 {
			rec.DeviceTypes = snapshot.AllDevices
		}
		for _, o := range c.Targeting.OS {
			os, _ := snapshot.ParseOS(o.Name)
			rec.OSMask |= 1 << os
			if o.MinVersion != "" {
				rec.MinOSVersion[os], _ = snapshot.ParseOSVersion(o.MinVersion)
			}
		}
		for _, s := range c.Targeting.Segments {
			b := segs.index[s]
			rec.Segments[b/64] |= 1 << (b % 64)
		}
		// Creatives ordered by (format, index) so each format is one sub-run.
		crIdx = crIdx[:0]
		for _, id := range c.CreativeIDs {
			idx, ok := inv.CreativeIndex(id)
			if !ok {
				return nil, fmt.Errorf("campaign %s: creative %s missing", c.ID, id)
			}
			crIdx = append(crIdx, uint32(idx))
		}
		slices.SortFunc(crIdx, func(a, b uint32) int {
			return cmp.Or(cmp.Compare(crFormat[a], crFormat[b]), cmp.Compare(a, b))
		})
		if rec.Creatives, err = pool.Add(crIdx); err != nil {
			return nil, err
		}
		countries = countries[:0]
		for _, cc := range c.Targeting.Countries {
			idx, _ := snapshot.CountryIndex(cc)
			countries = append(countries, uint32(idx))
		}
		slices.Sort(countries)
		if rec.Countries, err = pool.Add(countries); err != nil {
			return nil, err
		}
		campaigns = snapshot.AppendCampaign(campaigns, &rec)
		plans[ci] = plan{creatives: rec.Creatives, countries: rec.Countries, osMask: rec.OSMask, bt: bt, live: rec.End > now}
		if !plans[ci].live {
			out.expired++
		}
		if ci%50000 == 49999 {
			p.Records(50000)
		}
	}
	p.Records(len(inv.Campaigns) % 50000)
	poolU32 := func(ref snapshot.ListRef, i int) uint32 {
		return binary.LittleEndian.Uint32(pool.Bytes()[4*(int(ref.Off)+i):])
	}
	// each calls fn for every (key, creative run) of campaign ci.
	each := func(ci int, fn func(key int, country uint16, os snapshot.OS, runOff, runLen int)) {
		pl := &plans[ci]
		for k := 0; k < int(pl.countries.Len); k++ {
			country := uint16(poolU32(pl.countries, k))
			for os := snapshot.OS(0); os < snapshot.NumOS; os++ {
				if pl.osMask&(1<<os) == 0 {
					continue
				}
				for j, n := 0, int(pl.creatives.Len); j < n; {
					f := crFormat[poolU32(pl.creatives, j)]
					e := j
					for e < n && crFormat[poolU32(pl.creatives, e)] == f {
						e++
					}
					fn(snapshot.KeyIndex(f, country, os), country, os, j, e-j)
					j = e
				}
			}
		}
	}
	// Count per key, then place each entry at its key's next free slot.
	starts := make([]int, snapshot.NumKeys+1)
	for ci := range plans {
		if plans[ci].live {
			each(ci, func(key int, _ uint16, _ snapshot.OS, _, _ int) { starts[key+1]++ })
		}
	}
	for k := 1; k <= snapshot.NumKeys; k++ {
		starts[k] += starts[k-1]
	}
	cands := make([]snapshot.Candidate, starts[snapshot.NumKeys])
	next := slices.Clone(starts[:snapshot.NumKeys])
	pred := 0 // cursor into the predictions, sorted by campaign
	for ci := range plans {
		pl := &plans[ci]
		if !pl.live {
			continue
		}
		for pred < len(inv.Predictions) && int(inv.Predictions[pred].Campaign) < ci {
			pred++
		}
		bid := inv.Campaigns[ci].BidMicros
		each(ci, func(key int, country uint16, os snapshot.OS, runOff, runLen int) {
			ctr, ir := predictionAt(inv.Predictions, pred, ci, country, os)
			cands[next[key]] = snapshot.Candidate{
				Campaign:     uint32(ci),
				CreativesOff: pl.creatives.Off + uint32(runOff),
				CreativesLen: uint16(min(runLen, math.MaxUint16)),
				CTR:          float32(ctr),
				ECPMMicros:   ECPMMicros(pl.bt, bid, ctr, ir),
			}
			next[key]++
		})
	}
	// Rank each run: eCPM descending, then campaign index ascending.
	keys := make([]byte, 0, snapshot.NumKeys*snapshot.RefSize)
	for k := 0; k < snapshot.NumKeys; k++ {
		run := cands[starts[k]:starts[k+1]]
		slices.SortFunc(run, func(a, b snapshot.Candidate) int {
			return cmp.Or(cmp.Compare(b.ECPMMicros, a.ECPMMicros), cmp.Compare(a.Campaign, b.Campaign))
		})
		keys = snapshot.AppendRef(keys, uint32(starts[k]), uint32(len(run)))
	}
	out.candidates = len(cands)
	// The inventory's creatives are encoded and no longer needed: let the
	// collector have them before the placements are encoded.
	inv.Creatives = nil

	// Placements and their hash index.
	placements := make([]byte, 0, len(inv.Placements)*snapshot.PlacementSize)
	ids := make([]string, len(inv.Placements))
	var blocked []uint32
	for i := range inv.Placements {
		pl := &inv.Placements[i]
		ids[i] = pl.ID
		f, ok := snapshot.ParseFormat(pl.Format)
		if !ok {
			return nil, fmt.Errorf("placement %s: format %q", pl.ID, pl.Format)
		}
		rec := snapshot.Placement{Format: f, FloorMicros: pl.FloorMicros}
		if rec.ID, err = st.AddUnique(pl.ID); err != nil {
			return nil, err
		}
		if rec.App, err = st.Add(pl.App); err != nil {
			return nil, err
		}
		blocked = blocked[:0]
		for _, a := range pl.BlockedAdvertisers {
			blocked = append(blocked, advs.index[a])
		}
		slices.Sort(blocked)
		blocked = slices.Compact(blocked)
		if rec.BlockedAdvertisers, err = pool.Add(blocked); err != nil {
			return nil, err
		}
		blocked = blocked[:0]
		for _, c := range pl.BlockedCategories {
			blocked = append(blocked, cats.index[c])
		}
		slices.Sort(blocked)
		blocked = slices.Compact(blocked)
		if rec.BlockedCategories, err = pool.Add(blocked); err != nil {
			return nil, err
		}
		placements = snapshot.AppendPlacement(placements, &rec)
	}
	p.Records(len(inv.Placements))
	index := snapshot.BuildPlacementIndex(ids)

	exp, err := json.Marshal(&inv.Experiments) // maps marshal with sorted keys: canonical
	if err != nil {
		return nil, err
	}
	out.sections = []encodedSection{
		{id: snapshot.SecStrings, b: st.Bytes()},
		{id: snapshot.SecU32Pool, recSize: 4, b: pool.Bytes()},
		dictSecs[0], dictSecs[1], dictSecs[2],
		{id: snapshot.SecCampaigns, recSize: snapshot.CampaignSize, b: campaigns},
		{id: snapshot.SecCreatives, recSize: snapshot.CreativeSize, b: creatives},
		{id: snapshot.SecPlacements, recSize: snapshot.PlacementSize, b: placements},
		{id: snapshot.SecPlacementIndex, recSize: snapshot.SlotSize, b: index},
		{id: snapshot.SecCandidateIndex, recSize: snapshot.RefSize, b: keys},
		{id: snapshot.SecCandidates, recSize: snapshot.CandidateSize, stream: func(w *snapshot.Writer) error {
			buf := make([]byte, 0, 4096*snapshot.CandidateSize)
			for i := range cands {
				buf = snapshot.AppendCandidate(buf, &cands[i])
				if len(buf) == cap(buf) || i == len(cands)-1 {
					if _, err := w.Write(buf); err != nil {
						return err
					}
					buf = buf[:0]
				}
			}
			return nil
		}},
		{id: snapshot.SecExperiments, b: exp},
	}
	return out, nil
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
