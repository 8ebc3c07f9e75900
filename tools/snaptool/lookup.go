package snaptool

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/adedge/adedge/snapshot"
)

// Errors Lookup wraps, so a caller can tell bad arguments (exit 2, usage)
// from a placement the snapshot does not have.
var (
	ErrBadArgument = errors.New("bad argument")
	ErrNotFound    = errors.New("not found")
)

// LookupOptions configure Lookup. Empty OSVersion and DeviceType skip those
// checks (the request did not say).
type LookupOptions struct {
	OSVersion  string // "major[.minor[.patch]]"
	DeviceType string // "phone" or "tablet"
	// Limit is how many ranked candidates to show; 0 means 20, negative
	// means all. Eligibility counts always cover the whole list.
	Limit int
	// Now is the request time for the schedule check; zero means the wall
	// clock.
	Now time.Time
	// JSON writes a LookupReport as JSON instead of text.
	JSON bool
}

// LookupReport is what Lookup prints; with LookupOptions.JSON it is written
// as is.
type LookupReport struct {
	Snapshot   SnapshotRef   `json:"snapshot"`
	Placement  PlacementInfo `json:"placement"`
	Key        string        `json:"key"` // "format/country/os"
	Country    string        `json:"country"`
	OS         string        `json:"os"`
	OSVersion  string        `json:"os_version,omitempty"`
	DeviceType string        `json:"device_type,omitempty"`
	Now        string        `json:"now"`
	Candidates int           `json:"candidates"`
	Eligible   int           `json:"eligible"`
	// First is the first eligible candidate: what the edge would serve
	// given no user-profile exclusions (segments, frequency caps,
	// installed apps); nil when none is eligible.
	First *CandidateRow  `json:"first_eligible"`
	Rows  []CandidateRow `json:"rows"`
}

// PlacementInfo is the looked-up placement.
type PlacementInfo struct {
	ID                 string   `json:"id"`
	App                string   `json:"app"`
	Format             string   `json:"format"`
	FloorMicros        int64    `json:"floor_micros"`
	BlockedAdvertisers []string `json:"blocked_advertisers"`
	BlockedCategories  []string `json:"blocked_categories"`
}

// CandidateRow is one ranked candidate and why it is or is not eligible.
type CandidateRow struct {
	Rank       int      `json:"rank"` // 1-based position in the list
	Campaign   string   `json:"campaign"`
	Advertiser string   `json:"advertiser"`
	Category   string   `json:"category"`
	BidType    string   `json:"bid_type"`
	BidMicros  int64    `json:"bid_micros"`
	CTR        float32  `json:"ctr"`
	ECPMMicros int64    `json:"ecpm_micros"`
	Creatives  []string `json:"creatives"`
	Eligible   bool     `json:"eligible"`
	// WhyNot lists every reason the candidate is not eligible.
	WhyNot []string `json:"why_not"`
	// Needs lists conditions that depend on the user profile, which Lookup
	// does not have (segments, frequency cap, promoted app installed).
	Needs []string `json:"needs"`
}

// Lookup shows what the edge's selection sees for one request: the
// placement, the candidate list for (placement format, country, os), and
// each ranked candidate with whether the snapshot alone makes it eligible
// (blocked advertiser or category, eCPM below the floor, OS version below
// the campaign's minimum, device type not targeted, outside its schedule at
// opts.Now) and why not.
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
	hasOSVer  bool
	device    uint8
	now       time.Time
}

func parseLookupArgs(country, os string, opts LookupOptions) (lookupArgs, error) {
	var a lookupArgs
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
		a.hasOSVer = true
	}
	if opts.DeviceType != "" {
		if a.device, ok = snapshot.ParseDeviceType(opts.DeviceType); !ok {
			return a, fmt.Errorf("%w: device type %q: want phone or tablet", ErrBadArgument, opts.DeviceType)
		}
	}
	a.now = opts.Now
	if a.now.IsZero() {
		a.now = time.Now()
	}
	return a, nil
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
	rep := &LookupReport{
		Snapshot: SnapshotRef{Version: h.Version, Created: unixTime(h.Created)},
		Placement: PlacementInfo{
			ID: placementID, App: r.String(pl.App), Format: pl.Format.String(), FloorMicros: pl.FloorMicros,
			BlockedAdvertisers: dictNames(r, pl.BlockedAdvertisers, r.Advertiser),
			BlockedCategories:  dictNames(r, pl.BlockedCategories, r.Category),
		},
		Country: snapshot.CountryCode(a.country), OS: a.os.String(), OSVersion: opts.OSVersion, DeviceType: opts.DeviceType,
		Now:  a.now.UTC().Format(time.RFC3339),
		Rows: []CandidateRow{},
	}
	if int(pl.Format) >= snapshot.NumFormats {
		return nil, fmt.Errorf("placement %q has unknown format %d (run adtool verify)", placementID, pl.Format)
	}
	rep.Key = keyName(snapshot.KeyIndex(pl.Format, a.country, a.os))
	blockedAdv, blockedCat := r.List(pl.BlockedAdvertisers), r.List(pl.BlockedCategories)
	l := r.Candidates(pl.Format, a.country, a.os)
	rep.Candidates = l.Len()
	now := a.now.Unix()
	for i := 0; i < l.Len(); i++ {
		cd := l.At(i)
		cp, ok := r.Campaign(int(cd.Campaign))
		var why []string
		if !ok {
			why = append(why, fmt.Sprintf("campaign index %d out of range (run adtool verify)", cd.Campaign))
		} else {
			if blockedAdv.Contains(cp.Advertiser) {
				why = append(why, "advertiser "+nameOr(r.Advertiser(cp.Advertiser), cp.Advertiser)+" blocked")
			}
			if blockedCat.Contains(cp.Category) {
				why = append(why, "category "+nameOr(r.Category(cp.Category), cp.Category)+" blocked")
			}
			if cd.ECPMMicros < pl.FloorMicros {
				why = append(why, fmt.Sprintf("eCPM %s < floor %s", money(cd.ECPMMicros), money(pl.FloorMicros)))
			}
			if minV := cp.MinOSVersion[a.os]; a.hasOSVer && a.osVersion < minV {
				why = append(why, fmt.Sprintf("%s %s < min %s", a.os, snapshot.FormatOSVersion(a.osVersion), snapshot.FormatOSVersion(minV)))
			}
			if a.device != 0 && cp.DeviceTypes&a.device == 0 {
				why = append(why, fmt.Sprintf("device %s not targeted (%s only)", opts.DeviceType, strings.Join(deviceNames(cp.DeviceTypes), ",")))
			}
			switch {
			case now < cp.Start:
				why = append(why, "not started (starts "+unixTime(cp.Start)+")")
			case now >= cp.End:
				why = append(why, "ended "+unixTime(cp.End))
			}
		}
		eligible := len(why) == 0
		if eligible {
			rep.Eligible++
		}
		if limit > 0 && i >= limit && (!eligible || rep.First != nil) {
			continue
		}
		row := candidateRow(r, i, cd, cp, a, opts)
		row.Eligible, row.WhyNot = eligible, why
		if row.WhyNot == nil {
			row.WhyNot = []string{}
		}
		if eligible && rep.First == nil {
			first := row
			rep.First = &first
		}
		if limit < 0 || i < limit {
			rep.Rows = append(rep.Rows, row)
		}
	}
	return rep, nil
}

func candidateRow(r *snapshot.Reader, i int, cd snapshot.Candidate, cp snapshot.Campaign, a lookupArgs, opts LookupOptions) CandidateRow {
	row := CandidateRow{
		Rank: i + 1, Campaign: campaignID(r, cd.Campaign),
		Advertiser: nameOr(r.Advertiser(cp.Advertiser), cp.Advertiser), Category: nameOr(r.Category(cp.Category), cp.Category),
		BidType: cp.BidType.String(), BidMicros: cp.BidMicros, CTR: cd.CTR, ECPMMicros: cd.ECPMMicros,
		Creatives: []string{}, Needs: []string{},
	}
	cl := r.List(snapshot.ListRef{Off: cd.CreativesOff, Len: uint32(cd.CreativesLen)})
	for j := 0; j < cl.Len(); j++ {
		v := cl.At(j)
		row.Creatives = append(row.Creatives, nameOr(recID(r, r.Creative, int(v)), v))
	}
	if segs := segmentNames(r, cp.Segments, nil); len(segs) > 0 {
		row.Needs = append(row.Needs, "segment "+strings.Join(segs, "|"))
	}
	if cp.FreqCapCount > 0 {
		row.Needs = append(row.Needs, "under cap "+freqCap(cp))
	}
	if app := r.String(cp.PromotedApp); app != "" {
		row.Needs = append(row.Needs, app+" not installed")
	}
	if minV := cp.MinOSVersion[a.os]; !a.hasOSVer && minV != 0 {
		row.Needs = append(row.Needs, fmt.Sprintf("%s >= %s", a.os, snapshot.FormatOSVersion(minV)))
	}
	if opts.DeviceType == "" && cp.DeviceTypes != snapshot.AllDevices {
		row.Needs = append(row.Needs, strings.Join(deviceNames(cp.DeviceTypes), ",")+" only")
	}
	return row
}

func (rep *LookupReport) writeText(w io.Writer) error {
	p := rep.Placement
	tw := newTab(w)
	fmt.Fprintf(tw, "snapshot\t%s (created %s)\n", rep.Snapshot.Version, rep.Snapshot.Created)
	fmt.Fprintf(tw, "placement\t%s\tapp %s\tformat %s\tfloor %s\n", p.ID, p.App, p.Format, money(p.FloorMicros))
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
	fmt.Fprintf(tw, "list\t%s: %d candidates, %d eligible\n", rep.Key, rep.Candidates, rep.Eligible)
	if rep.First != nil {
		fmt.Fprintf(tw, "serves\t%s (rank %d, eCPM %s) unless the user profile excludes it\n", rep.First.Campaign, rep.First.Rank, money(rep.First.ECPMMicros))
	} else {
		fmt.Fprintf(tw, "serves\tnothing: no-fill\n")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(rep.Rows) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw = newTab(w)
	fmt.Fprintln(tw, "rank\tcampaign\tadvertiser\tcategory\tbid type\tbid\tCTR\teCPM\tcreative\teligible / why not\t")
	for _, row := range rep.Rows {
		cr := "-"
		if len(row.Creatives) > 0 {
			cr = row.Creatives[0]
			if len(row.Creatives) > 1 {
				cr += fmt.Sprintf(" (+%d)", len(row.Creatives)-1)
			}
		}
		verdict := "yes"
		if !row.Eligible {
			verdict = "no: " + strings.Join(row.WhyNot, "; ")
		}
		if len(row.Needs) > 0 {
			verdict += " [needs " + strings.Join(row.Needs, "; ") + "]"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%.4f\t%s\t%s\t%s\t\n", row.Rank, row.Campaign, row.Advertiser, row.Category,
			row.BidType, money(row.BidMicros), row.CTR, money(row.ECPMMicros), cr, verdict)
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
