package snaptool

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/adedge/adedge/abtest"
	"github.com/adedge/adedge/server/profiles"
	"github.com/adedge/adedge/server/selection"
	"github.com/adedge/adedge/snapshot"
)

// Errors Lookup wraps, so a caller can tell bad arguments (exit 2, usage)
// from a placement the snapshot does not have.
var (
	ErrBadArgument = errors.New("bad argument")
	ErrNotFound    = errors.New("not found")
)

// LookupOptions configure Lookup: the request, the A/B bucket and the
// profile the edge would have. The defaults are what the edge assumes when
// a request does not say.
type LookupOptions struct {
	// OSVersion is the request's "major[.minor[.patch]]". Empty: the request
	// has none, and, as at the edge, campaigns with a minimum OS version are
	// skipped.
	OSVersion string
	// DeviceType is "phone" or "tablet"; empty means phone, as at the edge.
	DeviceType string
	// Test is the A/B bucket: "control" (also when empty) or a test id of the
	// snapshot's experiment set, whose parameters (floor multiplier, bid
	// weights, MinCTR) then apply.
	Test string
	// Segments, when not nil, are the user profile's segments: the request
	// has a profile (with no frequency-cap counters and no installed apps).
	// Nil means no profile, as when the request has no device id or the
	// profile store misses: segment-targeted campaigns are skipped.
	Segments []string
	// MaxScan is the edge's --max-scan (0: selection.DefaultMaxScan).
	MaxScan int
	// Limit is how many ranked candidates to show; 0 means 20, negative
	// means all. Counts and the served candidate always cover the whole
	// list.
	Limit int
	// Now is the request time for the schedule check; zero means the wall
	// clock.
	Now time.Time
	// JSON writes a LookupReport as JSON instead of text.
	JSON bool

	// The slot, as an OpenRTB imp describes it (all empty: /v1/ad, which
	// takes whatever the placement allows).
	Slot SlotOptions
}

// SlotOptions describe the ad slot of a request: what selection matches
// creatives against (selection.Request).
type SlotOptions struct {
	Formats      []string // accepted creative formats (banner, video, native); empty = all
	Sizes        []string // banner sizes "WxH"; empty = any
	Mimes        []string // video mime types; empty = any
	MinDuration  int      // video seconds; 0 = no bound
	MaxDuration  int      // video seconds; 0 = no bound
	Interstitial bool     // imp.instl=1
	App          string   // the request's app bundle; empty = the placement's app
}

// LookupReport is what Lookup prints; with LookupOptions.JSON it is written
// as is.
type LookupReport struct {
	Snapshot  SnapshotRef   `json:"snapshot"`
	Placement PlacementInfo `json:"placement"`
	Keys      []string      `json:"keys"` // the candidate lists read, "format/country/os" each
	// Formats are the creative formats the request can get here: the
	// placement's, narrowed by what the slot accepts.
	Formats    []string   `json:"formats"`
	Country    string     `json:"country"`
	OS         string     `json:"os"`
	OSVersion  string     `json:"os_version,omitempty"`
	DeviceType string     `json:"device_type"`
	Now        string     `json:"now"`
	Bucket     BucketInfo `json:"bucket"`
	// Profile is false for a request without a user profile; Segments are
	// the profile's segments.
	Profile  bool     `json:"profile"`
	Segments []string `json:"segments"`
	// FloorMicros is the placement's floor after the bucket's multiplier.
	FloorMicros int64 `json:"floor_micros"`
	// Outcome is the edge's selection outcome (selection.Outcome).
	Outcome    string `json:"outcome"`
	Candidates int    `json:"candidates"`
	Eligible   int    `json:"eligible"`
	// Serves is the candidate the edge's selection returns for this request,
	// bucket and profile (selection.Explain); nil on a no-fill.
	Serves *CandidateRow  `json:"serves"`
	Rows   []CandidateRow `json:"rows"`
}

// BucketInfo is the A/B bucket a lookup ran in and its parameters.
type BucketInfo struct {
	ExperimentSet string        `json:"experiment_set"`
	Test          string        `json:"test"`
	Variant       string        `json:"variant"`
	Params        abtest.Params `json:"params"`
	// Invalid is set when the snapshot's experiment set is refused: the edge
	// then serves everyone as control, and so does lookup.
	Invalid string `json:"invalid,omitempty"`
}

// PlacementInfo is the looked-up placement.
type PlacementInfo struct {
	ID                 string   `json:"id"`
	App                string   `json:"app"`
	Formats            []string `json:"formats"`
	Interstitial       bool     `json:"interstitial"`
	Rewarded           bool     `json:"rewarded"`
	FloorMicros        int64    `json:"floor_micros"`
	BlockedAdvertisers []string `json:"blocked_advertisers"`
	BlockedCategories  []string `json:"blocked_categories"`
}

// CandidateRow is one ranked candidate and selection's verdict on it.
type CandidateRow struct {
	Rank        int      `json:"rank"` // 1-based position in the list
	Campaign    string   `json:"campaign"`
	Advertiser  string   `json:"advertiser"`
	Category    string   `json:"category"`
	BidType     string   `json:"bid_type"`
	BidMicros   int64    `json:"bid_micros"`
	CTR         float32  `json:"ctr"`
	ECPMMicros  int64    `json:"ecpm_micros"`
	ScoreMicros int64    `json:"score_micros"` // eCPM times the bucket's bid-type weight: what ranking compares
	Format      string   `json:"format"`       // the list the candidate is in: its creatives' format
	Creatives   []string `json:"creatives"`
	// Fits is how each creative fits the slot (selection.Fit), judged for
	// candidates the campaign rules admit; Served is the creative the
	// winner serves.
	Fits   []CreativeFitRow `json:"fits"`
	Served string           `json:"served,omitempty"`
	// Verdict is selection's: won, skipped, below_floor, outscored,
	// not_scanned.
	Verdict string `json:"verdict"`
	// Eligible is true for won and outscored.
	Eligible bool `json:"eligible"`
	// WhyNot is why the candidate is not served (empty for the winner).
	WhyNot []string `json:"why_not"`
	// Needs lists, for a request with a profile, the profile conditions
	// lookup cannot know (frequency-cap counters, the promoted app
	// installed), which the edge checks against the real profile.
	Needs []string `json:"needs"`
}

// CreativeFitRow is one creative and whether it fits the slot.
type CreativeFitRow struct {
	Creative string `json:"creative"`
	Fit      string `json:"fit"`    // selection.Fit: fits, size_not_requested, ...
	Detail   string `json:"detail"` // the creative's side of it: "320x50", "video 30s", ...
}

// Lookup shows what the edge's selection does with one request: the
// placement, the candidate lists for (each format the slot may get,
// country, os) read as one, the
// candidate served, and for each ranked candidate selection's verdict and
// why. It runs the edge's own selection (selection.Explain) with the
// bucket's A/B parameters, so it cannot disagree with the edge.
func Lookup(w io.Writer, path, placementID, country, os string, opts LookupOptions) error {
	// Arguments first: a typo should not cost a snapshot open.
	if _, err := parseLookupArgs(country, os, opts); err != nil {
		return err
	}
	r, err := snapshot.Open(path)
	if err != nil {
		return err
	}
	defer r.Close()
	rep, err := BuildLookupReport(r, placementID, country, os, opts)
	if err != nil {
		return err
	}
	if opts.JSON {
		return writeJSON(w, rep)
	}
	return rep.writeText(w)
}

type lookupArgs struct {
	country   uint16
	os        snapshot.OS
	osVersion uint32
	device    uint8
	now       time.Time
	accept    snapshot.FormatMask
	sizes     []snapshot.Size
	mimes     [][]byte
}

func parseLookupArgs(country, os string, opts LookupOptions) (lookupArgs, error) {
	a := lookupArgs{device: snapshot.DevicePhone}
	var ok bool
	if a.country, ok = snapshot.CountryIndex(country); !ok {
		hint := ""
		if _, up := snapshot.CountryIndex(strings.ToUpper(country)); up {
			hint = fmt.Sprintf(" (codes are upper-case: %q)", strings.ToUpper(country))
		}
		return a, fmt.Errorf("%w: country %q is not a two-letter ISO 3166-1 alpha-2 code such as US%s", ErrBadArgument, country, hint)
	}
	if a.os, ok = snapshot.ParseOS(os); !ok {
		return a, fmt.Errorf("%w: os %q: want android or ios", ErrBadArgument, os)
	}
	if opts.OSVersion != "" {
		if a.osVersion, ok = snapshot.ParseOSVersion(opts.OSVersion); !ok {
			return a, fmt.Errorf("%w: os version %q: want major[.minor[.patch]] such as 14.2", ErrBadArgument, opts.OSVersion)
		}
	}
	if opts.DeviceType != "" {
		if a.device, ok = snapshot.ParseDeviceType(opts.DeviceType); !ok {
			return a, fmt.Errorf("%w: device type %q: want phone or tablet", ErrBadArgument, opts.DeviceType)
		}
	}
	sl := opts.Slot
	for _, f := range sl.Formats {
		fm, ok := snapshot.ParseFormat(f)
		if !ok {
			return a, fmt.Errorf("%w: format %q: want banner, video or native", ErrBadArgument, f)
		}
		a.accept |= 1 << fm
	}
	for _, sz := range sl.Sizes {
		var w, h uint16
		if n, err := fmt.Sscanf(sz, "%dx%d", &w, &h); n != 2 || err != nil || w == 0 || h == 0 {
			return a, fmt.Errorf("%w: size %q: want WxH such as 320x50", ErrBadArgument, sz)
		}
		a.sizes = append(a.sizes, snapshot.Size{W: w, H: h})
	}
	for _, m := range sl.Mimes {
		a.mimes = append(a.mimes, []byte(m))
	}
	if sl.MinDuration < 0 || sl.MaxDuration < 0 || (sl.MaxDuration > 0 && sl.MinDuration > sl.MaxDuration) {
		return a, fmt.Errorf("%w: durations %d..%d: want 0 <= min <= max seconds", ErrBadArgument, sl.MinDuration, sl.MaxDuration)
	}
	a.now = opts.Now
	if a.now.IsZero() {
		a.now = time.Now()
	}
	return a, nil
}

// lookupBucket resolves the bucket's parameters as the edge does.
func lookupBucket(r *snapshot.Reader, test string) (BucketInfo, *abtest.Params, error) {
	b, setErr := abtest.SnapshotBucketer(r.ExperimentsJSON(), abtest.Defaults)
	if test == "" {
		test = abtest.ControlTest
	}
	a, ok := b.Only(test)
	if !ok {
		ids := []string{abtest.ControlTest}
		for _, t := range b.Set().Tests {
			ids = append(ids, t.ID)
		}
		return BucketInfo{}, nil, fmt.Errorf("%w: test %q is not in experiment set %q (tests: %s)", ErrBadArgument, test, b.Set().ID, strings.Join(ids, ", "))
	}
	info := BucketInfo{ExperimentSet: b.Set().ID, Test: test, Variant: abtest.ControlVariant, Params: *b.Params(a)}
	for i := range b.Set().Tests {
		if t := &b.Set().Tests[i]; t.ID == test {
			info.Variant = t.Variant
		}
	}
	if setErr != nil {
		info.Invalid = setErr.Error()
	}
	return info, b.Params(a), nil
}

// BuildLookupReport computes Lookup's report from an open snapshot.
func BuildLookupReport(r *snapshot.Reader, placementID, country, os string, opts LookupOptions) (*LookupReport, error) {
	a, err := parseLookupArgs(country, os, opts)
	if err != nil {
		return nil, err
	}
	limit := opts.Limit
	if limit == 0 {
		limit = 20
	}
	h := r.Header()
	pi, ok := r.LookupPlacement(placementID)
	if !ok {
		return nil, fmt.Errorf("%w: placement %q is not in snapshot %s (%d placements)", ErrNotFound, placementID, h.Version, r.NumPlacements())
	}
	pl, _ := r.Placement(pi)
	if pl.Formats == 0 || pl.Formats&^snapshot.AllFormats != 0 {
		return nil, fmt.Errorf("placement %q has format bits %#x (run adtool verify)", placementID, pl.Formats)
	}
	bucket, params, err := lookupBucket(r, opts.Test)
	if err != nil {
		return nil, err
	}
	var prof *profiles.Profile
	if opts.Segments != nil {
		prof = &profiles.Profile{Segments: opts.Segments}
	}
	sl := opts.Slot
	req := selection.Request{Placement: []byte(placementID), Country: a.country, OS: a.os, OSVersion: a.osVersion, DeviceType: a.device, Now: a.now.Unix(),
		Accept: a.accept, Sizes: a.sizes, Mimes: a.mimes, MinDuration: int32(sl.MinDuration), MaxDuration: int32(sl.MaxDuration),
		Interstitial: sl.Interstitial, App: []byte(sl.App)}
	sel := selection.Selector{MaxScan: opts.MaxScan}
	ex := sel.Explain(r, &req, prof, params)

	rep := &LookupReport{
		Snapshot: SnapshotRef{Version: h.Version, Created: unixTime(h.Created)},
		Placement: PlacementInfo{
			ID: placementID, App: r.String(pl.App), Formats: formatNames(pl.Formats), FloorMicros: pl.FloorMicros,
			Interstitial: pl.Interstitial(), Rewarded: pl.Rewarded(),
			BlockedAdvertisers: dictNames(r, pl.BlockedAdvertisers, r.Advertiser),
			BlockedCategories:  dictNames(r, pl.BlockedCategories, r.Category),
		},
		Formats: formatNames(ex.Formats), Keys: []string{},
		Country: snapshot.CountryCode(a.country), OS: a.os.String(), OSVersion: opts.OSVersion,
		DeviceType: strings.Join(deviceNames(a.device), ","),
		Now:        a.now.UTC().Format(time.RFC3339),
		Bucket:     bucket, Profile: prof != nil, Segments: opts.Segments,
		FloorMicros: int64(math.Round(ex.Floor)), Outcome: ex.Outcome.String(),
		Candidates: len(ex.Candidates), Rows: []CandidateRow{},
	}
	if rep.Segments == nil {
		rep.Segments = []string{}
	}
	for _, f := range rep.Formats {
		fm, _ := snapshot.ParseFormat(f)
		rep.Keys = append(rep.Keys, keyName(snapshot.KeyIndex(fm, a.country, a.os)))
	}
	lc := lookupContext{r: r, a: a, ex: ex, params: params, placementFloor: pl.FloorMicros, blockedAdv: r.List(pl.BlockedAdvertisers), blockedCat: r.List(pl.BlockedCategories), prof: prof, app: sl.App}
	if lc.app == "" {
		lc.app = r.String(pl.App)
	}
	for i := range ex.Candidates {
		if ex.Candidates[i].Verdict == selection.Won {
			lc.winner = &ex.Candidates[i]
		}
	}
	for i := range ex.Candidates {
		e := &ex.Candidates[i]
		if e.Verdict == selection.Won || e.Verdict == selection.Outscored {
			rep.Eligible++
		}
		if e.Verdict != selection.Won && limit > 0 && i >= limit {
			continue
		}
		row := lc.row(e)
		if e.Verdict == selection.Won {
			won := row
			rep.Serves = &won
		}
		if limit < 0 || i < limit {
			rep.Rows = append(rep.Rows, row)
		}
	}
	return rep, nil
}

// lookupContext is what turning selection's verdicts into rows needs.
type lookupContext struct {
	r              *snapshot.Reader
	a              lookupArgs
	ex             *selection.Explanation
	winner         *selection.Explained // nil on a no-fill
	params         *abtest.Params
	placementFloor int64
	blockedAdv     snapshot.U32List
	blockedCat     snapshot.U32List
	prof           *profiles.Profile
	app            string // the app bundle matched against campaigns' bundle lists
}

func (lc *lookupContext) row(e *selection.Explained) CandidateRow {
	r, cd, cp := lc.r, e.Candidate, e.Campaign
	row := CandidateRow{
		Rank: e.Rank + 1, Campaign: campaignID(r, cd.Campaign),
		Advertiser: nameOr(r.Advertiser(cp.Advertiser), cp.Advertiser), Category: nameOr(r.Category(cp.Category), cp.Category),
		BidType: cp.BidType.String(), BidMicros: cp.BidMicros, CTR: cd.CTR, ECPMMicros: cd.ECPMMicros,
		ScoreMicros: int64(math.Round(e.Score)),
		Verdict:     e.Verdict.String(), Eligible: e.Verdict == selection.Won || e.Verdict == selection.Outscored,
		Creatives: []string{}, WhyNot: []string{}, Needs: []string{},
	}
	row.Format = e.Format.String()
	cl := r.List(snapshot.ListRef{Off: cd.CreativesOff, Len: uint32(cd.CreativesLen)})
	for j := 0; j < cl.Len(); j++ {
		v := cl.At(j)
		row.Creatives = append(row.Creatives, nameOr(recID(r, r.Creative, int(v)), v))
	}
	row.Fits = []CreativeFitRow{}
	for _, cf := range e.Creatives {
		cr, _ := r.Creative(cf.Creative)
		row.Fits = append(row.Fits, CreativeFitRow{Creative: nameOr(recID(r, r.Creative, cf.Creative), uint32(cf.Creative)), Fit: cf.Fit.String(), Detail: creativeDetail(r, &cr)})
	}
	if e.Verdict == selection.Won {
		row.Served = nameOr(recID(r, r.Creative, lc.ex.Creative), uint32(lc.ex.Creative))
	}
	if why := lc.whyNot(e); why != "" {
		row.WhyNot = append(row.WhyNot, why)
	}
	if lc.prof == nil { // without a profile the edge applies neither
		return row
	}
	if cp.FreqCapCount > 0 {
		row.Needs = append(row.Needs, "under cap "+freqCap(cp))
	}
	if app := r.String(cp.PromotedApp); app != "" {
		row.Needs = append(row.Needs, app+" not installed")
	}
	return row
}

// whyNot words selection's verdict on a candidate that is not served.
func (lc *lookupContext) whyNot(e *selection.Explained) string {
	r, a, cp, ex := lc.r, lc.a, &e.Campaign, lc.ex
	switch e.Verdict {
	case selection.UnderFloor:
		floor := "floor " + money(int64(math.Round(ex.Floor)))
		if m := lc.params.FloorMultiplier; m != 1 {
			floor += fmt.Sprintf(" (%s x %g)", money(lc.placementFloor), m)
		}
		return fmt.Sprintf("eCPM %s < %s", money(e.Candidate.ECPMMicros), floor)
	case selection.Outscored:
		if lc.winner != nil {
			return fmt.Sprintf("outscored by %s (score %s)", campaignID(r, lc.winner.Candidate.Campaign), money(int64(math.Round(lc.winner.Score))))
		}
		return "outscored"
	case selection.NotScanned:
		return "beyond the scan limit"
	case selection.Skipped:
	default:
		return ""
	}
	switch e.Skip {
	case selection.SkipSchedule:
		if a.now.Unix() < cp.Start {
			return "not started (starts " + unixTime(cp.Start) + ")"
		}
		return "ended " + unixTime(cp.End)
	case selection.SkipDevice:
		return fmt.Sprintf("device %s not targeted (%s only)", strings.Join(deviceNames(a.device), ","), strings.Join(deviceNames(cp.DeviceTypes), ","))
	case selection.SkipOSVersion:
		minV := cp.MinOSVersion[a.os]
		if a.osVersion == 0 {
			return fmt.Sprintf("%s version unknown, min %s", a.os, snapshot.FormatOSVersion(minV))
		}
		return fmt.Sprintf("%s %s < min %s", a.os, snapshot.FormatOSVersion(a.osVersion), snapshot.FormatOSVersion(minV))
	case selection.SkipBlocked:
		if lc.blockedAdv.Contains(cp.Advertiser) {
			return "advertiser " + nameOr(r.Advertiser(cp.Advertiser), cp.Advertiser) + " blocked"
		}
		if lc.blockedCat.Contains(cp.Category) {
			return "category " + nameOr(r.Category(cp.Category), cp.Category) + " blocked"
		}
		var cats []string
		for _, cf := range e.Creatives {
			cr, _ := r.Creative(cf.Creative)
			cats = append(cats, nameOr(recID(r, r.Creative, cf.Creative), uint32(cf.Creative))+" "+CreativeCategory(r, &cr))
		}
		return "every creative's category blocked: " + strings.Join(cats, ", ")
	case selection.SkipSegment:
		segs := strings.Join(segmentNames(r, cp.Segments, nil), "|")
		if lc.prof == nil {
			return "segment " + segs + ": needs a user profile"
		}
		return "user not in segment " + segs
	case selection.SkipMinCTR:
		return fmt.Sprintf("CTR %.4f < min_ctr %g", e.Candidate.CTR, lc.params.MinCTR)
	case selection.SkipCorrupt:
		return fmt.Sprintf("campaign index %d out of range (run adtool verify)", e.Candidate.Campaign)
	case selection.SkipBundle:
		app := string(lc.app)
		if cp.AllowedBundles.Len > 0 && !slices.Contains(dictNames(r, cp.AllowedBundles, r.Bundle), app) {
			return "app " + app + " not in the allowed bundles " + strings.Join(dictNames(r, cp.AllowedBundles, r.Bundle), "|")
		}
		return "app " + app + " in the blocked bundles"
	case selection.SkipFormat:
		var why []string
		for _, cf := range e.Creatives {
			cr, _ := r.Creative(cf.Creative)
			why = append(why, fmt.Sprintf("%s %s (%s)", nameOr(recID(r, r.Creative, cf.Creative), uint32(cf.Creative)), cf.Fit, creativeDetail(r, &cr)))
		}
		return "no creative fits the slot: " + strings.Join(why, ", ")
	}
	return selection.SkipNames[e.Skip]
}

// creativeDetail is the side of a creative the slot is matched on.
func creativeDetail(r *snapshot.Reader, cr *snapshot.Creative) string {
	size := fmt.Sprintf("%dx%d", cr.Width, cr.Height)
	if cr.Width == 0 {
		size = "full screen"
	}
	switch cr.Format {
	case snapshot.FormatVideo:
		var mimes []string
		for k := 0; k < int(cr.MediaFiles.Len); k++ {
			m, ok := r.MediaFile(int(cr.MediaFiles.Off) + k)
			if !ok {
				break
			}
			if mime := r.String(m.MIME); !slices.Contains(mimes, mime) {
				mimes = append(mimes, mime)
			}
		}
		return fmt.Sprintf("video %ds %s", cr.DurationSeconds, strings.Join(mimes, "|"))
	case snapshot.FormatBanner:
		if ci, ok := cr.HasCategory(); ok {
			return size + " " + r.Category(ci)
		}
	}
	return size
}

// formatNames lists the formats of a mask.
func formatNames(m snapshot.FormatMask) []string {
	out := []string{}
	for f := snapshot.Format(0); f < snapshot.NumFormats; f++ {
		if m.Has(f) {
			out = append(out, f.String())
		}
	}
	return out
}
func (rep *LookupReport) writeText(w io.Writer) error {
	p := rep.Placement
	tw := newTab(w)
	fmt.Fprintf(tw, "snapshot\t%s (created %s)\n", rep.Snapshot.Version, rep.Snapshot.Created)
	kind := strings.Join(p.Formats, ",")
	if p.Interstitial {
		kind += " interstitial"
	}
	if p.Rewarded {
		kind += " rewarded"
	}
	fmt.Fprintf(tw, "placement\t%s\tapp %s\tformats %s\tfloor %s\n", p.ID, p.App, kind, money(p.FloorMicros))
	fmt.Fprintf(tw, "blocked\tadvertisers: %s\tcategories: %s\t\n", listOrNone(p.BlockedAdvertisers), listOrNone(p.BlockedCategories))
	req := []string{"country " + rep.Country, "os " + rep.OS}
	if rep.OSVersion != "" {
		req[1] += " " + rep.OSVersion
	}
	if rep.DeviceType != "" {
		req = append(req, "device "+rep.DeviceType)
	}
	req = append(req, "at "+rep.Now)
	fmt.Fprintf(tw, "request\t%s\n", strings.Join(req, ", "))
	profile := "none (no device id or profile miss)"
	if rep.Profile {
		profile = "segments " + listOrNone(rep.Segments) + " (no cap counters, no installed apps)"
	}
	fmt.Fprintf(tw, "profile\t%s\n", profile)
	b := rep.Bucket
	fmt.Fprintf(tw, "bucket\t%s/%s (set %s): floor x%g, weights cpm %g cpc %g cpi %g, min CTR %g\n", b.Test, b.Variant, b.ExperimentSet,
		b.Params.FloorMultiplier, b.Params.WeightCPM, b.Params.WeightCPC, b.Params.WeightCPI, b.Params.MinCTR)
	if b.Invalid != "" {
		fmt.Fprintf(tw, "\texperiment set refused (%s): the edge serves everyone as control\n", b.Invalid)
	}
	fmt.Fprintf(tw, "formats\t%s (what the placement allows and the slot takes)\n", listOrNone(rep.Formats))
	fmt.Fprintf(tw, "lists\t%s: %d candidates, %d eligible\n", listOrNone(rep.Keys), rep.Candidates, rep.Eligible)
	if rep.Serves != nil {
		fmt.Fprintf(tw, "serves\t%s creative %s (%s, rank %d, eCPM %s, score %s)\n", rep.Serves.Campaign, rep.Serves.Served, rep.Serves.Format, rep.Serves.Rank, money(rep.Serves.ECPMMicros), money(rep.Serves.ScoreMicros))
	} else {
		fmt.Fprintf(tw, "serves\tnothing: no-fill (%s)\n", rep.Outcome)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(rep.Rows) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw = newTab(w)
	fmt.Fprintln(tw, "rank\tcampaign\tadvertiser\tcategory\tbid type\tbid\tCTR\teCPM\tformat\tcreative\tserved / why not\t")
	for _, row := range rep.Rows {
		cr := "-"
		if len(row.Creatives) > 0 {
			cr = row.Creatives[0]
			if row.Served != "" {
				cr = row.Served
			}
			if len(row.Creatives) > 1 {
				cr += fmt.Sprintf(" (+%d)", len(row.Creatives)-1)
			}
		}
		verdict := "serves"
		if row.Verdict != selection.Won.String() {
			verdict = "no: " + strings.Join(row.WhyNot, "; ")
		}
		if len(row.Needs) > 0 {
			verdict += " [needs " + strings.Join(row.Needs, "; ") + "]"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%.4f\t%s\t%s\t%s\t%s\t\n", row.Rank, row.Campaign, row.Advertiser, row.Category,
			row.BidType, money(row.BidMicros), row.CTR, money(row.ECPMMicros), row.Format, cr, verdict)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if n := rep.Candidates - len(rep.Rows); n > 0 {
		_, err := fmt.Fprintf(w, "... %d more candidates (raise the limit to see them)\n", n)
		return err
	}
	return nil
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}
