// Package selection picks the ad for one request from a snapshot: placement
// -> the creative formats it allows and the request accepts, floor and
// blocks -> the (format, country, OS) candidate lists, read as one list in
// eCPM order -> skip the ineligible campaigns and the creatives that do not
// fit the slot -> the best weighted eCPM at or above the floor.
//
// It runs on every request, so it reads records in place and allocates
// nothing; A/B tests change its behaviour only through abtest.Params.
package selection

import (
	"math"
	"strings"
	"unsafe"

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

	// App is the app bundle the ad shows in (OpenRTB app.bundle, /v1/ad
	// app), matched against campaigns' bundle lists; empty = the
	// placement's app.
	App []byte
	// What the slot takes (OpenRTB imp); zero values take anything the
	// placement allows (/v1/ad).
	Accept       snapshot.FormatMask // formats: the imp's banner, video, native objects; 0 = all
	Interstitial bool                // imp.instl=1 (or video.plcmt=3): full-screen banners fit
	Sizes        []snapshot.Size     // banner sizes accepted; empty = any
	Mimes        [][]byte            // video mime types the player plays; empty = any
	MinDuration  int32               // video seconds; 0 = no bound
	MaxDuration  int32               // video seconds; 0 = no bound
	Protocols    uint64              // video protocols accepted (bit n: AdCOM protocol n); 0 = not given
}

// MinInterstitialSide is the shorter side a sized banner needs to fill an
// interstitial slot that names no size (320x480, 480x320, 768x1024 do;
// 320x50 and 300x250 do not).
const MinInterstitialSide = 320

// VAST4Protocols are the AdCOM video protocols of the inline VAST 4.2 the
// edge writes (VAST 4.0, 4.1, 4.2): a player that names protocols and none
// of these gets no video.
const VAST4Protocols uint64 = 1<<7 | 1<<11 | 1<<13

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
	SkipBundle    // the app is not in the campaign's allowed bundles, or is in its blocked ones
	SkipFormat    // none of the campaign's creatives of this format fits the slot (Fit says why)
	NumSkips
)

// SkipNames label the skip reasons in metrics.
var SkipNames = [NumSkips]string{"schedule", "device_type", "os_version", "blocked", "segment", "frequency_cap", "installed", "min_ctr", "corrupt", "pacing", "duplicate", "bundle", "format"}

// Fit says whether one creative fits the slot, and if not why.
type Fit uint8

// Fits, checked in this order (the first that fails is the answer).
const (
	Fits          Fit = iota
	FitCategory       // the creative's IAB category is blocked by the placement
	FitFullScreen     // a full-screen (0x0) banner for a slot that is not interstitial
	FitSize           // a banner size the slot did not ask for
	FitTooSmall       // a sized banner under 320 x 320 for an interstitial slot that names no size
	FitDuration       // a video shorter than minduration or longer than maxduration
	FitMime           // no media file of a mime type the player takes
	NumFits
)

var fitNames = [NumFits]string{"fits", "category_blocked", "full_screen_not_interstitial", "size_not_requested", "too_small_for_interstitial", "duration_out_of_range", "mime_not_accepted"}

// String names the fit for tools ("size_not_requested", ...).
func (f Fit) String() string {
	if f < NumFits {
		return fitNames[f]
	}
	return "unknown"
}

// DefaultMaxScan bounds how many candidates one request may examine, so a
// huge list of ineligible campaigns cannot blow the latency budget.
const DefaultMaxScan = 4096

// Result is a selection's answer. Indexes refer to the snapshot used.
type Result struct {
	Outcome     Outcome
	Placement   int
	Campaign    int
	Creative    int
	Rank        int                 // the winner's position in the merged candidate list
	Format      snapshot.Format     // the winning creative's format
	Formats     snapshot.FormatMask // the formats the request could get at the placement
	ECPMMicros  int64               // the winner's eCPM
	PriceMicros int64               // charged per impression: eCPM / 1000
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
	*out = Result{Placement: -1, Campaign: -1, Creative: -1, Rank: -1}
	pi, ok := r.LookupPlacementBytes(req.Placement)
	if !ok {
		out.Outcome = UnknownPlacement
		return
	}
	out.Placement = pi
	pl, _ := r.Placement(pi)
	var sc scan
	sc.prepare(r, &pl, req, prof, p)
	out.Formats = sc.formats
	if sc.lists.n == 0 {
		out.Outcome = NoCandidates
		return
	}
	weights := weightsOf(p)
	maxW := max(weights[0], weights[1], weights[2])
	uniform := weights[0] == weights[1] && weights[1] == weights[2]
	maxScan := s.maxScan()
	pc := s.pacer(r)

	best, bestScore, bestCreative := -1, math.Inf(-1), -1
	var bestCand snapshot.Candidate
	var bestCamp snapshot.Campaign
	var bestFormat snapshot.Format
	aboveFloor := false
	for i := 0; ; i++ {
		c, f, more := sc.lists.next()
		if !more {
			break
		}
		if i >= maxScan {
			out.Truncated = true
			break
		}
		e := float64(c.ECPMMicros)
		if e < sc.floor {
			break // sorted by eCPM: nothing below can pass the floor
		}
		if best >= 0 && e*maxW <= bestScore {
			break // no later candidate can outscore the best, even at the top weight
		}
		aboveFloor = true
		out.Scanned++
		if pc.held(int(c.Campaign), req.Seed) {
			out.Skipped[SkipPacing]++ // before the campaign is decoded: a throttled candidate costs a load and a draw
			continue
		}
		camp, ok := r.Campaign(int(c.Campaign))
		if !ok {
			out.Skipped[SkipCorrupt]++
			continue
		}
		if pc.waits(r, int(c.Campaign), &camp) {
			out.Skipped[SkipPacing]++
			continue
		}
		if reason := sc.eligible(r, &camp, &c, req, prof, p); reason >= 0 {
			out.Skipped[reason]++
			continue
		}
		cr, reason := sc.pick(r, &c, req)
		if cr < 0 {
			out.Skipped[reason]++
			continue
		}
		if score := e * weightOf(&weights, camp.BidType); score > bestScore {
			best, bestScore, bestCand, bestCamp, bestCreative, bestFormat = i, score, c, camp, cr, f
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
	out.Outcome = Filled
	out.Campaign = int(bestCand.Campaign)
	out.Creative = bestCreative
	out.Rank = best
	out.Format = bestFormat
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

// lists is a request's candidate lists, one per format it may get, read
// as one list: a merge by eCPM descending, then campaign index ascending
// (each list is sorted so), then format.
type lists struct {
	l    [snapshot.NumFormats]snapshot.CandidateList
	pos  [snapshot.NumFormats]int
	head [snapshot.NumFormats]snapshot.Candidate
	n    int // candidates in all lists
}

func (m *lists) init(r *snapshot.Reader, formats snapshot.FormatMask, country uint16, os snapshot.OS) {
	*m = lists{}
	for f := snapshot.Format(0); f < snapshot.NumFormats; f++ {
		if formats.Has(f) {
			m.l[f] = r.Candidates(f, country, os)
			if n := m.l[f].Len(); n > 0 {
				m.head[f] = m.l[f].At(0)
				m.n += n
			}
		}
	}
}

// next returns the next candidate in merged order and its list's format;
// false at the end.
func (m *lists) next() (snapshot.Candidate, snapshot.Format, bool) {
	best := -1
	for f := range m.l {
		if m.pos[f] >= m.l[f].Len() {
			continue
		}
		if h := &m.head[f]; best < 0 || h.ECPMMicros > m.head[best].ECPMMicros ||
			(h.ECPMMicros == m.head[best].ECPMMicros && h.Campaign < m.head[best].Campaign) {
			best = f
		}
	}
	if best < 0 {
		return snapshot.Candidate{}, 0, false
	}
	c := m.head[best]
	if m.pos[best]++; m.pos[best] < m.l[best].Len() {
		m.head[best] = m.l[best].At(m.pos[best])
	}
	return c, snapshot.Format(best), true
}

// scan is what one request's selection derives once from the request and
// the placement, for every candidate: Select and Explain both fill it
// with prepare, so they judge with the same values.
type scan struct {
	formats                snapshot.FormatMask
	lists                  lists
	floor                  float64
	userSeg                [4]uint64
	blockedAdv, blockedCat snapshot.U32List
	app                    uint32 // BUNDLES index of the request's app
	appKnown               bool   // the app is in BUNDLES (else no allow list admits it, no block list names it)
	instl                  bool
}

func (sc *scan) prepare(r *snapshot.Reader, pl *snapshot.Placement, req *Request, prof *profiles.Profile, p *abtest.Params) {
	*sc = scan{formats: FormatsFor(pl, req), floor: floorOf(pl, p, req),
		blockedAdv: r.List(pl.BlockedAdvertisers), blockedCat: r.List(pl.BlockedCategories),
		instl: pl.Interstitial() || req.Interstitial}
	if prof != nil {
		sc.userSeg = UserSegments(r, prof)
	}
	app := unsafe.String(unsafe.SliceData(req.App), len(req.App))
	if app == "" {
		app = r.String(pl.App)
	}
	sc.app, sc.appKnown = r.LookupBundle(app)
	sc.lists.init(r, sc.formats, req.Country, req.OS)
}

// FormatsFor is the creative formats a request may get at a placement:
// those the placement allows and the request accepts, without video when
// the request names video protocols and none is a VAST 4 the edge writes.
func FormatsFor(pl *snapshot.Placement, req *Request) snapshot.FormatMask {
	m := pl.Formats & snapshot.AllFormats
	if req.Accept != 0 {
		m &= req.Accept
	}
	if req.Protocols != 0 && req.Protocols&VAST4Protocols == 0 {
		m &^= 1 << snapshot.FormatVideo
	}
	return m
}

// pick chooses the candidate's creative for the slot: the first that fits
// in rotation order from the request's seed (so a campaign's fitting
// creatives share its traffic), or -1 and the skip reason: SkipBlocked when
// every creative's category is blocked, else SkipFormat.
func (sc *scan) pick(r *snapshot.Reader, c *snapshot.Candidate, req *Request) (int, int) {
	crs := r.List(snapshot.ListRef{Off: c.CreativesOff, Len: uint32(c.CreativesLen)})
	n := crs.Len()
	if n == 0 {
		return -1, SkipCorrupt
	}
	start := int(req.Seed % uint64(n))
	blockedOnly := true
	for k := 0; k < n; k++ {
		idx := int(crs.At((start + k) % n))
		cr, ok := r.Creative(idx)
		if !ok {
			return -1, SkipCorrupt
		}
		switch sc.fit(r, &cr, req) {
		case Fits:
			return idx, -1
		case FitCategory:
		default:
			blockedOnly = false
		}
	}
	if blockedOnly {
		return -1, SkipBlocked
	}
	return -1, SkipFormat
}

// fit is the one rule for whether a creative fits the slot.
func (sc *scan) fit(r *snapshot.Reader, cr *snapshot.Creative, req *Request) Fit {
	if ci, ok := cr.HasCategory(); ok && sc.blockedCat.Len() > 0 && sc.blockedCat.Contains(ci) {
		return FitCategory
	}
	switch cr.Format {
	case snapshot.FormatBanner:
		if cr.Width == 0 && cr.Height == 0 {
			if !sc.instl {
				return FitFullScreen
			}
			return Fits // full screen: whatever size the slot has
		}
		switch {
		case len(req.Sizes) > 0:
			if !hasSize(req.Sizes, cr.Width, cr.Height) {
				return FitSize
			}
		case sc.instl && min(cr.Width, cr.Height) < MinInterstitialSide:
			return FitTooSmall
		}
	case snapshot.FormatVideo:
		d := int32(cr.DurationSeconds)
		if (req.MinDuration > 0 && d < req.MinDuration) || (req.MaxDuration > 0 && d > req.MaxDuration) {
			return FitDuration
		}
		if len(req.Mimes) > 0 && MediaFileFor(r, cr, req.Mimes) < 0 {
			return FitMime
		}
	}
	return Fits
}

func hasSize(sizes []snapshot.Size, w, h uint16) bool {
	for _, s := range sizes {
		if s.W == w && s.H == h {
			return true
		}
	}
	return false
}

// MediaFileFor is the MEDIA_FILES index of the video creative's first
// media file whose mime type is in mimes (any, when mimes is empty); -1
// when none is.
func MediaFileFor(r *snapshot.Reader, cr *snapshot.Creative, mimes [][]byte) int {
	for k := 0; k < int(cr.MediaFiles.Len); k++ {
		i := int(cr.MediaFiles.Off) + k
		m, ok := r.MediaFile(i)
		if !ok {
			return -1
		}
		if AcceptsMIME(mimes, r.String(m.MIME)) {
			return i
		}
	}
	return -1
}

// AcceptsMIME reports whether a player that takes mimes plays a media file
// of type mime (every type, when mimes is empty).
func AcceptsMIME(mimes [][]byte, mime string) bool {
	if len(mimes) == 0 {
		return true
	}
	for _, m := range mimes {
		if string(m) == mime {
			return true
		}
	}
	return false
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

// held reports whether the pacing table holds campaign ci back for this
// request: one atomic load and a draw derived from the request's seed. It
// is the first test a candidate meets after the floor, so a throttled or
// exhausted campaign costs no decode, no targeting and no creative pick
// (late in a day most budgets may be spent; the scan walks past them). A
// candidate both throttled and ineligible counts as a pacing skip.
func (pc *pacer) held(ci int, seed uint64) bool {
	return pc.pt != nil && !pc.pt.Allow(ci, seed)
}

// waits reports whether campaign ci waits for a pending table: it has a
// budget the table has not read yet.
func (pc *pacer) waits(r *snapshot.Reader, ci int, camp *snapshot.Campaign) bool {
	return pc.pending && pacing.Limited(r, ci, camp)
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
func (sc *scan) eligible(r *snapshot.Reader, camp *snapshot.Campaign, c *snapshot.Candidate, req *Request, prof *profiles.Profile, p *abtest.Params) int {
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
	if (sc.blockedAdv.Len() > 0 && sc.blockedAdv.Contains(camp.Advertiser)) || (sc.blockedCat.Len() > 0 && sc.blockedCat.Contains(camp.Category)) {
		return SkipBlocked
	}
	if camp.AllowedBundles.Len > 0 && (!sc.appKnown || !r.List(camp.AllowedBundles).Contains(sc.app)) {
		return SkipBundle
	}
	if camp.BlockedBundles.Len > 0 && sc.appKnown && r.List(camp.BlockedBundles).Contains(sc.app) {
		return SkipBundle
	}
	if seg := camp.Segments; seg != [4]uint64{} {
		u := &sc.userSeg
		if seg[0]&u[0]|seg[1]&u[1]|seg[2]&u[2]|seg[3]&u[3] == 0 {
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
