package builder

import (
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/adedge/adedge/builder/inventory"
	"github.com/adedge/adedge/snapshot"
)

// encodedSection is one section ready for the Writer.
type encodedSection struct {
	id, recSize uint32
	b           []byte
	stream      func(w *snapshot.Writer) error // instead of b, for the largest sections
}

// encoded is what encode hands Build: the sections in file order and counts
// for the manifest.
type encoded struct {
	sections   []encodedSection
	candidates int
	expired    int
}

// encoder is what the section encoders share: the inventory, the string
// table and u32 pool every section refers into, the dictionaries, and what
// one step computes for the next.
type encoder struct {
	inv *inventory.Inventory
	now int64 // the snapshot's created time: campaigns ended by then are not ranked
	p   *Progress

	st   snapshot.StringTable
	pool snapshot.U32Pool
	err  error // the first string table or pool error (they fail only past 4 GiB)

	advs, cats, segs dict
	bundles          dict
	crFormat         []snapshot.Format // creative index -> format (encodeCreatives)
	plans            []campaignPlan    // campaign index -> what ranking reads (encodeCampaigns)
	scratch          []uint32

	out encoded
}

// campaignPlan is what ranking needs of one campaign record.
type campaignPlan struct {
	creatives, countries snapshot.ListRef
	osMask               uint8
	bt                   snapshot.BidType
	live                 bool
}

// encode turns a validated inventory into the snapshot's sections.
//
// The steps run in this order because each reads what an earlier one made
// (the dictionaries index campaigns and placements, the creatives' formats
// order each campaign's creative list, the campaign plans are what the
// candidates rank), and because strings and lists enter the string table and
// pool in this order: changing it changes the bytes, and the golden fixture
// (snapshot/testdata/golden) and the determinism tests say so. Each step adds
// its own sections with e.add; the file holds them in section id order.
//
// To add a section: give it an id in snapshot/format.go, write a step that
// builds it (from e.inv, e.plans, ...) and calls e.add, and list the step
// below after the steps it reads from. To add a field to a record, set it in
// that record's *Record function.
func encode(inv *inventory.Inventory, now int64, p *Progress) (*encoded, error) {
	e := &encoder{inv: inv, now: now, p: p}
	for _, step := range []func() error{
		e.encodeDictionaries,
		e.reserve,
		e.encodeCreatives,
		e.encodeCampaigns,
		e.encodeCandidates, // releases inv.Creatives when done with them
		e.encodePlacements,
		e.encodeExperiments,
		e.encodePacing,
	} {
		if err := step(); err != nil {
			return nil, err
		}
		if e.err != nil {
			return nil, e.err
		}
	}
	e.add(snapshot.SecStrings, 0, e.st.Bytes())
	e.add(snapshot.SecU32Pool, 4, e.pool.Bytes())
	slices.SortFunc(e.out.sections, func(a, b encodedSection) int { return cmp.Compare(a.id, b.id) })
	return &e.out, nil
}

// add registers a finished section (recSize 0 for a blob).
func (e *encoder) add(id, recSize uint32, b []byte) {
	e.out.sections = append(e.out.sections, encodedSection{id: id, recSize: recSize, b: b})
}

// str stores s once in the string table (for repeated strings: apps,
// dictionary names); unique stores it without deduplication (ids, URLs).
// list stores vs in the pool. Errors are kept in e.err (the first one wins)
// so record builders read as plain field assignments.
func (e *encoder) str(s string) snapshot.StrRef {
	ref, err := e.st.Add(s)
	e.fail(err)
	return ref
}

func (e *encoder) unique(s string) snapshot.StrRef {
	ref, err := e.st.AddUnique(s)
	e.fail(err)
	return ref
}

func (e *encoder) list(vs []uint32) snapshot.ListRef {
	ref, err := e.pool.Add(vs)
	e.fail(err)
	return ref
}

func (e *encoder) fail(err error) {
	if e.err == nil {
		e.err = err
	}
}

// dict assigns dense indexes to sorted distinct names.
type dict struct {
	names []string
	index map[string]uint32
}

// nameSet collects the distinct names of a dictionary.
type nameSet map[string]struct{}

func (s nameSet) add(names ...string) {
	for _, n := range names {
		s[n] = struct{}{}
	}
}

func newDict(names nameSet) dict {
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

// encodeDictionaries indexes advertisers, categories and segments (names a
// placement blocks count, even when no campaign uses them) and writes their
// sections. Their names are the first strings in the table.
func (e *encoder) encodeDictionaries() error {
	advs, cats, segs, bundles := nameSet{}, nameSet{}, nameSet{}, nameSet{}
	for i := range e.inv.Campaigns {
		c := &e.inv.Campaigns[i]
		advs.add(c.Advertiser)
		cats.add(c.Category)
		segs.add(c.Targeting.Segments...)
		bundles.add(c.AllowedBundles...)
		bundles.add(c.BlockedBundles...)
	}
	for i := range e.inv.Creatives {
		if c := e.inv.Creatives[i].IABCategory; c != "" {
			cats.add(c)
		}
	}
	for i := range e.inv.Placements {
		pl := &e.inv.Placements[i]
		advs.add(pl.BlockedAdvertisers...)
		cats.add(pl.BlockedCategories...)
	}
	if len(segs) > snapshot.MaxSegments {
		return fmt.Errorf("%d segments, the format holds %d", len(segs), snapshot.MaxSegments)
	}
	e.advs, e.cats, e.segs, e.bundles = newDict(advs), newDict(cats), newDict(segs), newDict(bundles)
	for _, d := range []struct {
		d  *dict
		id uint32
	}{{&e.advs, snapshot.SecAdvertisers}, {&e.cats, snapshot.SecCategories}, {&e.segs, snapshot.SecSegments}, {&e.bundles, snapshot.SecBundles}} {
		b := make([]byte, 0, len(d.d.names)*snapshot.RefSize)
		for _, n := range d.d.names {
			r := e.str(n)
			b = snapshot.AppendRef(b, r.Off, r.Len)
		}
		e.add(d.id, snapshot.RefSize, b)
	}
	return nil
}

// reserve sizes the string table and pool once: at the large scale they are
// hundreds of MB, and append doubling would briefly hold two copies.
func (e *encoder) reserve() error {
	strBytes, poolLen := 0, 0
	for i := range e.inv.Creatives {
		c := &e.inv.Creatives[i]
		strBytes += len(c.ID) + len(c.AssetURL) + len(c.ClickURL)
		if c.Video != nil {
			for j := range c.Video.MediaFiles {
				strBytes += len(c.Video.MediaFiles[j].URL)
			}
		}
	}
	for i := range e.inv.Campaigns {
		c := &e.inv.Campaigns[i]
		strBytes += len(c.ID) + len(c.PromotedApp)
		poolLen += len(c.CreativeIDs) + len(c.Targeting.Countries) + len(c.AllowedBundles) + len(c.BlockedBundles)
	}
	for i := range e.inv.Placements {
		pl := &e.inv.Placements[i]
		strBytes += len(pl.ID) + len(pl.App)
		poolLen += len(pl.BlockedAdvertisers) + len(pl.BlockedCategories)
	}
	e.st.Grow(strBytes)
	e.pool.Grow(poolLen)
	return nil
}

// encodeCreatives writes CREATIVES and MEDIA_FILES and keeps each
// creative's format.
func (e *encoder) encodeCreatives() error {
	crs := e.inv.Creatives
	b := make([]byte, 0, len(crs)*snapshot.CreativeSize)
	var media []byte
	e.crFormat = make([]snapshot.Format, len(crs))
	for i := range crs {
		rec, err := e.creativeRecord(&crs[i], &media)
		if err != nil {
			return err
		}
		e.crFormat[i] = rec.Format
		b = snapshot.AppendCreative(b, &rec)
	}
	e.p.Records(len(crs))
	e.add(snapshot.SecCreatives, snapshot.CreativeSize, b)
	e.add(snapshot.SecMediaFiles, snapshot.MediaFileSize, media)
	return nil
}

// creativeRecord is one creative's record; its media files are appended
// to *media.
func (e *encoder) creativeRecord(c *inventory.Creative, media *[]byte) (snapshot.Creative, error) {
	f, ok := snapshot.ParseFormat(c.Format)
	if !ok {
		return snapshot.Creative{}, fmt.Errorf("creative %s: format %q", c.ID, c.Format)
	}
	// e.err is read after the literal: the order of a plain read among the
	// calls of one expression is unspecified.
	rec := snapshot.Creative{
		ID:       e.unique(c.ID),
		Format:   f,
		Width:    c.Width,
		Height:   c.Height,
		AssetURL: e.unique(c.AssetURL),
		ClickURL: e.unique(c.ClickURL),
		ADomain:  e.str(c.ADomain),
	}
	if c.IABCategory != "" {
		rec.Category = e.cats.index[c.IABCategory] + 1
	}
	if v := c.Video; v != nil {
		rec.DurationSeconds = v.DurationSeconds
		rec.MediaFiles = snapshot.ListRef{Off: uint32(len(*media) / snapshot.MediaFileSize), Len: uint32(len(v.MediaFiles))}
		for j := range v.MediaFiles {
			m := &v.MediaFiles[j]
			d, _ := snapshot.ParseDelivery(m.Delivery) // "" = progressive
			mf := snapshot.MediaFile{URL: e.unique(m.URL), MIME: e.str(m.MIME), Width: m.Width, Height: m.Height,
				BitrateKbps: m.BitrateKbps, Delivery: d}
			*media = snapshot.AppendMediaFile(*media, &mf)
		}
	}
	return rec, e.err
}

// encodeCampaigns writes CAMPAIGNS and keeps each campaign's plan for
// ranking.
func (e *encoder) encodeCampaigns() error {
	cs := e.inv.Campaigns
	b := make([]byte, 0, len(cs)*snapshot.CampaignSize)
	e.plans = make([]campaignPlan, len(cs))
	for ci := range cs {
		rec, err := e.campaignRecord(&cs[ci])
		if err != nil {
			return err
		}
		b = snapshot.AppendCampaign(b, &rec)
		e.plans[ci] = campaignPlan{creatives: rec.Creatives, countries: rec.Countries, osMask: rec.OSMask, bt: rec.BidType, live: rec.End > e.now}
		if !e.plans[ci].live {
			e.out.expired++
		}
		if ci%50000 == 49999 {
			e.p.Records(50000)
		}
	}
	e.p.Records(len(cs) % 50000)
	e.add(snapshot.SecCampaigns, snapshot.CampaignSize, b)
	return nil
}

// campaignRecord is one campaign's record.
func (e *encoder) campaignRecord(c *inventory.Campaign) (snapshot.Campaign, error) {
	bt, ok := snapshot.ParseBidType(c.BidType)
	if !ok {
		return snapshot.Campaign{}, fmt.Errorf("campaign %s: bid type %q", c.ID, c.BidType)
	}
	start, err1 := time.Parse(time.RFC3339, c.Start)
	end, err2 := time.Parse(time.RFC3339, c.End)
	if err := errors.Join(err1, err2); err != nil {
		return snapshot.Campaign{}, fmt.Errorf("campaign %s: %w", c.ID, err)
	}
	rec := snapshot.Campaign{
		ID:                e.unique(c.ID),
		Advertiser:        e.advs.index[c.Advertiser],
		Category:          e.cats.index[c.Category],
		BidType:           bt,
		BidMicros:         c.BidMicros,
		DailyBudgetMicros: c.DailyBudgetMicros,
		Start:             start.Unix(),
		End:               end.Unix(),
	}
	if c.PromotedApp != "" {
		rec.PromotedAppHash = xxhash.Sum64String(c.PromotedApp)
		rec.PromotedApp = e.str(c.PromotedApp)
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
		b := e.segs.index[s]
		rec.Segments[b/64] |= 1 << (b % 64)
	}
	var err error
	if rec.Creatives, err = e.creativeList(c); err != nil {
		return rec, err
	}
	rec.Countries = e.countryList(c.Targeting.Countries)
	rec.AllowedBundles = e.indexSet(c.AllowedBundles, &e.bundles)
	rec.BlockedBundles = e.indexSet(c.BlockedBundles, &e.bundles)
	return rec, e.err
}

// creativeList stores a campaign's creative indexes ordered by (format,
// index), so the creatives of each format are one sub-run a candidate
// points at.
func (e *encoder) creativeList(c *inventory.Campaign) (snapshot.ListRef, error) {
	e.scratch = e.scratch[:0]
	for _, id := range c.CreativeIDs {
		idx, ok := e.inv.CreativeIndex(id)
		if !ok {
			return snapshot.ListRef{}, fmt.Errorf("campaign %s: creative %s missing", c.ID, id)
		}
		e.scratch = append(e.scratch, uint32(idx))
	}
	slices.SortFunc(e.scratch, func(a, b uint32) int {
		return cmp.Or(cmp.Compare(e.crFormat[a], e.crFormat[b]), cmp.Compare(a, b))
	})
	return e.list(e.scratch), nil
}

// countryList stores country indexes ascending (U32List.Contains searches
// them).
func (e *encoder) countryList(codes []string) snapshot.ListRef {
	e.scratch = e.scratch[:0]
	for _, cc := range codes {
		idx, _ := snapshot.CountryIndex(cc)
		e.scratch = append(e.scratch, uint32(idx))
	}
	slices.Sort(e.scratch)
	return e.list(e.scratch)
}

// indexSet stores the dictionary indexes of names ascending and without
// repeats (U32List.Contains searches them): a placement's blocked
// advertisers and categories, a campaign's bundle lists.
func (e *encoder) indexSet(names []string, d *dict) snapshot.ListRef {
	e.scratch = e.scratch[:0]
	for _, n := range names {
		e.scratch = append(e.scratch, d.index[n])
	}
	slices.Sort(e.scratch)
	return e.list(slices.Compact(e.scratch))
}

// poolU32 is element i of the pool list ref.
func (e *encoder) poolU32(ref snapshot.ListRef, i int) uint32 {
	return binary.LittleEndian.Uint32(e.pool.Bytes()[4*(int(ref.Off)+i):])
}

// eachRun calls fn for every (key, creative run) of campaign ci: each
// targeted country and OS, times each format among its creatives.
func (e *encoder) eachRun(ci int, fn func(key int, country uint16, os snapshot.OS, runOff, runLen int)) {
	pl := &e.plans[ci]
	for k := 0; k < int(pl.countries.Len); k++ {
		country := uint16(e.poolU32(pl.countries, k))
		for os := snapshot.OS(0); os < snapshot.NumOS; os++ {
			if pl.osMask&(1<<os) == 0 {
				continue
			}
			for j, n := 0, int(pl.creatives.Len); j < n; {
				f := e.crFormat[e.poolU32(pl.creatives, j)]
				end := j
				for end < n && e.crFormat[e.poolU32(pl.creatives, end)] == f {
					end++
				}
				fn(snapshot.KeyIndex(f, country, os), country, os, j, end-j)
				j = end
			}
		}
	}
}

// encodeCandidates ranks the live campaigns per (format, country, OS) and
// writes CANDIDATE_INDEX and CANDIDATES. A counting pass first, so the
// largest structure is allocated once at its final size.
func (e *encoder) encodeCandidates() error {
	starts := make([]int, snapshot.NumKeys+1)
	for ci := range e.plans {
		if e.plans[ci].live {
			e.eachRun(ci, func(key int, _ uint16, _ snapshot.OS, _, _ int) { starts[key+1]++ })
		}
	}
	for k := 1; k <= snapshot.NumKeys; k++ {
		starts[k] += starts[k-1]
	}
	cands := e.placeCandidates(starts)
	// Rank each run: eCPM descending, then campaign index ascending.
	keys := make([]byte, 0, snapshot.NumKeys*snapshot.RefSize)
	for k := 0; k < snapshot.NumKeys; k++ {
		run := cands[starts[k]:starts[k+1]]
		slices.SortFunc(run, func(a, b snapshot.Candidate) int {
			return cmp.Or(cmp.Compare(b.ECPMMicros, a.ECPMMicros), cmp.Compare(a.Campaign, b.Campaign))
		})
		keys = snapshot.AppendRef(keys, uint32(starts[k]), uint32(len(run)))
	}
	e.out.candidates = len(cands)
	e.add(snapshot.SecCandidateIndex, snapshot.RefSize, keys)
	e.out.sections = append(e.out.sections, encodedSection{id: snapshot.SecCandidates, recSize: snapshot.CandidateSize, stream: streamCandidates(cands)})
	// The inventory's creatives are encoded and no longer needed: let the
	// collector have them before the placements are encoded.
	e.inv.Creatives = nil
	return nil
}

// placeCandidates puts each live campaign's entry for each key at the key's
// next free slot (starts: the counting pass's prefix sums), with the eCPM
// of its prediction.
func (e *encoder) placeCandidates(starts []int) []snapshot.Candidate {
	cands := make([]snapshot.Candidate, starts[snapshot.NumKeys])
	next := slices.Clone(starts[:snapshot.NumKeys])
	preds := e.inv.Predictions
	pred := 0 // cursor into the predictions, sorted by campaign
	for ci := range e.plans {
		pl := &e.plans[ci]
		if !pl.live {
			continue
		}
		for pred < len(preds) && int(preds[pred].Campaign) < ci {
			pred++
		}
		bid := e.inv.Campaigns[ci].BidMicros
		e.eachRun(ci, func(key int, country uint16, os snapshot.OS, runOff, runLen int) {
			ctr, ir := predictionAt(preds, pred, ci, country, os)
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
	return cands
}

// streamCandidates writes the candidate records in 4096-record chunks, so
// the largest section is never encoded whole in memory.
func streamCandidates(cands []snapshot.Candidate) func(w *snapshot.Writer) error {
	return func(w *snapshot.Writer) error {
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
	}
}

// encodePlacements writes PLACEMENTS and their hash index.
func (e *encoder) encodePlacements() error {
	pls := e.inv.Placements
	b := make([]byte, 0, len(pls)*snapshot.PlacementSize)
	ids := make([]string, len(pls))
	for i := range pls {
		ids[i] = pls[i].ID
		rec, err := e.placementRecord(&pls[i])
		if err != nil {
			return err
		}
		b = snapshot.AppendPlacement(b, &rec)
	}
	e.p.Records(len(pls))
	e.add(snapshot.SecPlacements, snapshot.PlacementSize, b)
	e.add(snapshot.SecPlacementIndex, snapshot.SlotSize, snapshot.BuildPlacementIndex(ids))
	return nil
}

// placementRecord is one placement's record.
func (e *encoder) placementRecord(pl *inventory.Placement) (snapshot.Placement, error) {
	var formats snapshot.FormatMask
	for _, name := range pl.Formats {
		f, ok := snapshot.ParseFormat(name)
		if !ok {
			return snapshot.Placement{}, fmt.Errorf("placement %s: format %q", pl.ID, name)
		}
		formats |= 1 << f
	}
	if formats == 0 {
		return snapshot.Placement{}, fmt.Errorf("placement %s: no formats", pl.ID)
	}
	rec := snapshot.Placement{
		ID:                 e.unique(pl.ID),
		App:                e.str(pl.App),
		Formats:            formats,
		FloorMicros:        pl.FloorMicros,
		BlockedAdvertisers: e.indexSet(pl.BlockedAdvertisers, &e.advs),
		BlockedCategories:  e.indexSet(pl.BlockedCategories, &e.cats),
	}
	if pl.Interstitial {
		rec.Flags |= snapshot.PlacementInterstitial
	}
	if pl.Rewarded {
		rec.Flags |= snapshot.PlacementRewarded
	}
	return rec, e.err
}

// encodeExperiments writes the experiment set as canonical JSON (maps
// marshal with sorted keys).
func (e *encoder) encodeExperiments() error {
	b, err := json.Marshal(&e.inv.Experiments)
	if err != nil {
		return err
	}
	e.add(snapshot.SecExperiments, 0, b)
	return nil
}

// encodePacing writes the PACING section (issue 11): lifetime budget,
// pacing mode, billing event and time zone per campaign, in campaign
// order. It is written only when some campaign sets one of them, so an
// inventory without them builds the same bytes as before the section
// existed (a compatible addition: no format version change).
func (e *encoder) encodePacing() error {
	cs := e.inv.Campaigns
	any := false
	for ci := range cs {
		c := &cs[ci]
		if c.LifetimeBudgetMicros != 0 || c.Pacing != "" || c.BillingEvent != "" || c.TimeZone != "" {
			any = true
			break
		}
	}
	if !any {
		return nil
	}
	b := make([]byte, 0, len(cs)*snapshot.PacingSize)
	for ci := range cs {
		c := &cs[ci]
		p := snapshot.CampaignPacing{LifetimeBudgetMicros: c.LifetimeBudgetMicros}
		if c.Pacing == "asap" {
			p.Mode = snapshot.PacingASAP
		}
		if c.BillingEvent == "click" {
			p.Billing = snapshot.BillClick
		}
		if c.TimeZone != "" && c.TimeZone != "UTC" {
			p.TimeZone = e.str(c.TimeZone)
		}
		b = snapshot.AppendPacing(b, &p)
	}
	e.add(snapshot.SecPacing, snapshot.PacingSize, b)
	return nil
}
