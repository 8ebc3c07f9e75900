// Package selection picks the ad for one request from a snapshot: placement
// -> format, floor and blocks -> the (format, country, OS) candidate list ->
// skip the ineligible -> the best weighted eCPM at or above the floor.
//
// It runs on every request, so it reads records in place and allocates
// nothing; A/B tests change its behaviour only through abtest.Params.
package selection

import (
	"math"
	"strings"

	"github.com/adedge/adedge/abtest"
	"github.com/adedge/adedge/server/pacing"
	"github.com/adedge/adedge/server/profiles"
	"github.com/adedge/adedge/snapshot"
)

// Request is the part of an ad request selection reads.
type Request struct {
	Placement  []byte
	Country    uint16 // snapshot.CountryIndex
	OS         snapshot.OS
	OSVersion  uint32 // packed (snapshot.ParseOSVersion); 0 = unknown
	DeviceType uint8  // snapshot.DevicePhone or DeviceTablet
	Now        int64  // unix seconds
	Seed       uint64 // rotates among a campaign's creatives
	// MinECPMMicros raises the placement's floor for this request (an
	// OpenRTB imp.bidfloor); 0 = the placement's floor alone.
	MinECPMMicros int64
	// Exclude lists campaign indexes that may not win (those already in
	// the same multi-imp response); nil for a single ad.
	Exclude []uint32
}

// Outcome says how a selection ended.
type Outcome uint8

// Outcomes. Everything but Filled is a no-fill (HTTP 204) except
// UnknownPlacement, which the handler reports as a client error.
const (
	Filled Outcome = iota
	UnknownPlacement
	NoCandidates  // nothing targets this format, country and OS
	BelowFloor    // candidates exist, none at or above the floor
	AllIneligible // candidates above the floor, none eligible for this user
	NumOutcomes
)

var outcomeNames = [NumOutcomes]string{"filled", "unknown_placement", "no_candidates", "below_floor", "all_ineligible"}

// String names the outcome for metrics labels.
func (o Outcome) String() string {
	if o < NumOutcomes {
		return outcomeNames[o]
	}
	return "unknown"
}

// Skip reasons, counted per request in Result.Skipped.
const (
	SkipSchedule = iota
	SkipDevice
	SkipOSVersion
	SkipBlocked
	SkipSegment
	SkipFreqCap
	SkipInstalled
	SkipMinCTR
	SkipCorrupt
	SkipPacing    // throttled by its budget's serve probability (or its fleet totals not read yet)
	SkipDuplicate // already chosen for another imp of the same request
	NumSkips
)

// SkipNames label the skip reasons in metrics.
var SkipNames = [NumSkips]string{"schedule", "device_type", "os_version", "blocked", "segment", "frequency_cap", "installed", "min_ctr", "corrupt", "pacing", "duplicate"}

// DefaultMaxScan bounds how many candidates one request may examine, so a
// huge list of ineligible campaigns cannot blow the latency budget.
const DefaultMaxScan = 4096

// Result is a selection's answer. Indexes refer to the snapshot used.
type Result struct {
	Outcome     Outcome
	Placement   int
	Campaign    int
	Creative    int
	ECPMMicros  int64 // the winner's eCPM
	PriceMicros int64 // charged per impression: eCPM / 1000
	CapPeriod   uint32
	Scanned     int  // candidates examined
	Truncated   bool // the scan stopped at MaxScan
	Skipped     [NumSkips]uint16
}

// Selector holds selection settings shared by all requests.
type Selector struct {
	MaxScan int // 0 means DefaultMaxScan
	// Pacing, if set, throttles budgeted campaigns (docs/PACING.md).
	Pacing *pacing.Service
}

// UserSegments maps a profile's segment names to the snapshot's segment
// bitset. Segment names are sorted in the snapshot, so each is a binary
// search.
func UserSegments(r *snapshot.Reader, prof *profiles.Profile) (set [4]uint64) {
	if prof == nil {
		return set
	}
	n := r.NumSegments()
	for _, s := range prof.Segments {
		lo, hi := 0, n
		for lo < hi {
			m := int(uint(lo+hi) >> 1)
			if strings.Compare(r.Segment(uint32(m)), s) < 0 {
				lo = m + 1
			} else {
				hi = m
			}
		}
		if lo < n && r.Segment(uint32(lo)) == s {
			set[lo/64] |= 1 << (lo % 64)
		}
	}
	return set
}

// Select fills out for req. prof is nil when the request is served without
// personalisation (no device, profile miss or timeout): campaigns that need
// a profile (segment targeting) are then skipped, caps and installs are not
// known and so not applied.
func (s *Selector) Select(r *snapshot.Reader, req *Request, prof *profiles.Profile, p *abtest.Params, out *Result) {
	*out = Result{Placement: -1, Campaign: -1, Creative: -1}
	pi, ok := r.LookupPlacementBytes(req.Placement)
	if !ok {
		out.Outcome = UnknownPlacement
		return
	}
	out.Placement = pi
	pl, _ := r.Placement(pi)
	list := r.Candidates(pl.Format, req.Country, req.OS)
	n := list.Len()
	if n == 0 {
		out.Outcome = NoCandidates
		return
	}
	floor := floorOf(&pl, p, req)
	weights := weightsOf(p)
	maxW := max(weights[0], weights[1], weights[2])
	uniform := weights[0] == weights[1] && weights[1] == weights[2]
	var userSeg [4]uint64
	if prof != nil {
		userSeg = UserSegments(r, prof)
	}
	blockedAdv := r.List(pl.BlockedAdvertisers)
	blockedCat := r.List(pl.BlockedCategories)
	maxScan := s.maxScan()
	pc := s.pacer(r)

	best, bestScore := -1, math.Inf(-1)
	var bestCand snapshot.Candidate
	var bestCamp snapshot.Campaign
	aboveFloor := false
	for i := 0; i < n; i++ {
		if i >= maxScan {
			out.Truncated = true
			break
		}
		c := list.At(i)
		e := float64(c.ECPMMicros)
		if e < floor {
			break // sorted by eCPM: nothing below can pass the floor
		}
		if best >= 0 && e*maxW <= bestScore {
			break // no later candidate can outscore the best, even at the top weight
		}
		aboveFloor = true
		out.Scanned++
		camp, ok := r.Campaign(int(c.Campaign))
		if !ok {
			out.Skipped[SkipCorrupt]++
			continue
		}
		if reason := eligible(r, &camp, &c, req, prof, &userSeg, blockedAdv, blockedCat, p); reason >= 0 {
			out.Skipped[reason]++
			continue
		}
		if pc.on() && pc.throttled(r, int(c.Campaign), &camp, req.Seed) {
			out.Skipped[SkipPacing]++
			continue
		}
		if score := e * weightOf(&weights, camp.BidType); score > bestScore {
			best, bestScore, bestCand, bestCamp = i, score, c, camp
		}
		if uniform {
			break // weights keep the list order: the first eligible wins
		}
	}
	if best < 0 {
		switch {
		case !aboveFloor:
			out.Outcome = BelowFloor
		default:
			out.Outcome = AllIneligible
		}
		return
	}
	crs := r.List(snapshot.ListRef{Off: bestCand.CreativesOff, Len: uint32(bestCand.CreativesLen)})
	if crs.Len() == 0 {
		out.Outcome = AllIneligible
		out.Skipped[SkipCorrupt]++
		return
	}
	out.Outcome = Filled
	out.Campaign = int(bestCand.Campaign)
	out.Creative = int(crs.At(int(req.Seed % uint64(crs.Len()))))
	out.ECPMMicros = bestCand.ECPMMicros
	out.PriceMicros = bestCand.ECPMMicros / 1000
	out.CapPeriod = bestCamp.FreqCapPeriod
	if bestCamp.FreqCapCount == 0 {
		out.CapPeriod = 0
	}
	if pc.pt != nil {
		pc.pt.Served(out.Campaign, out.PriceMicros)
	}
}

// The rules Select and Explain share.

func (s *Selector) maxScan() int {
	if s.MaxScan <= 0 {
		return DefaultMaxScan
	}
	return s.MaxScan
}

// pacer is one request's view of pacing: the table, or pending when the
// table has not caught up with this snapshot (then every budgeted campaign
// waits).
type pacer struct {
	pt      *pacing.Table
	pending bool
}

func (s *Selector) pacer(r *snapshot.Reader) pacer {
	var pc pacer
	if s.Pacing != nil {
		if pc.pt = s.Pacing.Table(); !pc.pt.For(r) {
			pc.pt, pc.pending = nil, true
		}
	}
	return pc
}

// on reports whether pacing applies at all (inlined: the unpaced path pays
// one compare).
func (pc *pacer) on() bool { return pc.pt != nil || pc.pending }

// throttled reports whether pacing holds campaign ci back for this request
// (a draw derived from the request's seed).
func (pc *pacer) throttled(r *snapshot.Reader, ci int, camp *snapshot.Campaign, seed uint64) bool {
	return (pc.pt != nil && !pc.pt.Allow(ci, seed)) || (pc.pending && pacing.Limited(r, ci, camp))
}

// floorOf is the placement's floor under the test's multiplier, or the
// request's own floor when that is higher.
func floorOf(pl *snapshot.Placement, p *abtest.Params, req *Request) float64 {
	return max(float64(pl.FloorMicros)*p.FloorMultiplier, float64(req.MinECPMMicros))
}

// weightsOf is the ranking weight per bid type.
func weightsOf(p *abtest.Params) [snapshot.NumBidTypes]float64 {
	return [snapshot.NumBidTypes]float64{p.WeightCPM, p.WeightCPC, p.WeightCPI}
}

// weightOf is bt's weight (0 for a bid type the format does not know).
func weightOf(weights *[snapshot.NumBidTypes]float64, bt snapshot.BidType) float64 {
	if int(bt) < snapshot.NumBidTypes {
		return weights[bt]
	}
	return 0
}

// eligible returns -1 when the campaign may serve this request, else the
// skip reason.
func eligible(r *snapshot.Reader, camp *snapshot.Campaign, c *snapshot.Candidate, req *Request, prof *profiles.Profile,
	userSeg *[4]uint64, blockedAdv, blockedCat snapshot.U32List, p *abtest.Params) int {
	if req.Now < camp.Start || req.Now >= camp.End {
		return SkipSchedule
	}
	for _, x := range req.Exclude {
		if x == c.Campaign {
			return SkipDuplicate
		}
	}
	if camp.DeviceTypes&req.DeviceType == 0 {
		return SkipDevice
	}
	if int(req.OS) < snapshot.NumOS {
		if min := camp.MinOSVersion[req.OS]; min != 0 && req.OSVersion < min {
			return SkipOSVersion
		}
	}
	if p.MinCTR > 0 && camp.BidType != snapshot.BidCPM && float64(c.CTR) < p.MinCTR {
		return SkipMinCTR
	}
	if (blockedAdv.Len() > 0 && blockedAdv.Contains(camp.Advertiser)) || (blockedCat.Len() > 0 && blockedCat.Contains(camp.Category)) {
		return SkipBlocked
	}
	if seg := camp.Segments; seg != [4]uint64{} {
		if seg[0]&userSeg[0]|seg[1]&userSeg[1]|seg[2]&userSeg[2]|seg[3]&userSeg[3] == 0 {
			return SkipSegment
		}
	}
	if prof != nil {
		if camp.PromotedAppHash != 0 && prof.HasApp(camp.PromotedAppHash) {
			return SkipInstalled
		}
		if camp.FreqCapCount > 0 && len(prof.Caps) > 0 &&
			prof.CapCount(r.String(camp.ID), camp.FreqCapPeriod, req.Now) >= camp.FreqCapCount {
			return SkipFreqCap
		}
	}
	return -1
}
