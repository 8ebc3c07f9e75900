package selection

import (
	"github.com/adedge/adedge/abtest"
	"github.com/adedge/adedge/server/profiles"
	"github.com/adedge/adedge/snapshot"
)

// Verdict is explain mode's account of one candidate.
type Verdict uint8

// Verdicts, one per candidate of the list.
const (
	Won        Verdict = iota // the candidate Select returns
	Skipped                   // ineligible for this request: Explained.Skip says why
	UnderFloor                // eCPM below the placement's floor (after the test's multiplier)
	Outscored                 // eligible, but the winner's weighted eCPM is higher
	NotScanned                // beyond the selector's MaxScan: never examined
	NumVerdicts
)

var verdictNames = [NumVerdicts]string{"won", "skipped", "below_floor", "outscored", "not_scanned"}

// String names the verdict for tools ("won", "skipped", ...).
func (v Verdict) String() string {
	if v < NumVerdicts {
		return verdictNames[v]
	}
	return "unknown"
}

// Explained is one candidate and its verdict.
type Explained struct {
	Rank      int             // 0-based position in the merged candidate list
	Format    snapshot.Format // the list it came from: the format of its creatives
	Candidate snapshot.Candidate
	Campaign  snapshot.Campaign // zero when the record is missing (Skip is SkipCorrupt)
	Verdict   Verdict
	Skip      int     // a Skip* reason when Verdict is Skipped, else -1
	Score     float64 // eCPM times the bid type's weight: what the ranking compares
	// Creatives is how each creative of the candidate fits the slot, in
	// the order pick tries them for this request (judged for every
	// candidate the campaign rules admit).
	Creatives []CreativeFit
}

// CreativeFit is one creative and whether it fits the slot.
type CreativeFit struct {
	Creative int // creative index
	Fit      Fit
}

// Explanation is what Explain reports: the Result Select gives, the floor
// and weights it used, and a verdict for every candidate of the list.
type Explanation struct {
	Result
	Floor   float64 // micros, after the floor multiplier
	Weights [snapshot.NumBidTypes]float64
	// Interstitial is whether the slot counted as full screen (the
	// placement's flag or the request's).
	Interstitial bool
	Candidates   []Explained
}

// Explain is Select for tools (adtool lookup): the same Result, plus why each
// candidate of the list did or did not win. It runs Select itself, then
// judges every candidate with the rules Select uses, in its order (the
// floor, pacing, eligible, the weights), so the two cannot drift; the
// request path never pays for it. It allocates the explanation. With Pacing
// set it counts the winner as served, as Select does, and reads the pacing
// table again for the verdicts (a table updated in between may disagree);
// tools run without Pacing.
func (s *Selector) Explain(r *snapshot.Reader, req *Request, prof *profiles.Profile, p *abtest.Params) *Explanation {
	ex := &Explanation{Weights: weightsOf(p)}
	s.Select(r, req, prof, p, &ex.Result)
	if ex.Outcome == UnknownPlacement {
		return ex
	}
	pl, _ := r.Placement(ex.Placement)
	var sc scan
	sc.prepare(r, &pl, req, prof, p)
	ex.Floor, ex.Interstitial = sc.floor, sc.instl
	maxScan := s.maxScan()
	pc := s.pacer(r)
	ex.Candidates = make([]Explained, 0, sc.lists.n)
	for i := 0; ; i++ {
		c, f, more := sc.lists.next()
		if !more {
			break
		}
		ex.Candidates = append(ex.Candidates, Explained{Rank: i, Format: f, Candidate: c, Skip: -1})
		e := &ex.Candidates[i]
		camp, ok := r.Campaign(int(c.Campaign))
		if ok {
			e.Campaign = camp
			e.Score = float64(c.ECPMMicros) * weightOf(&ex.Weights, camp.BidType)
		}
		eligible := -1
		if ok {
			if eligible = sc.eligible(r, &camp, &c, req, prof, p); eligible < 0 {
				e.Creatives = sc.fits(r, &c, req)
			}
		}
		switch {
		case ex.Outcome == Filled && i == ex.Rank:
			e.Verdict = Won
		case float64(c.ECPMMicros) < ex.Floor:
			e.Verdict = UnderFloor
		case i >= maxScan:
			e.Verdict = NotScanned
		case pc.held(int(c.Campaign), req.Seed):
			e.Verdict, e.Skip = Skipped, SkipPacing
		case !ok:
			e.Verdict, e.Skip = Skipped, SkipCorrupt
		case pc.waits(r, int(c.Campaign), &camp):
			e.Verdict, e.Skip = Skipped, SkipPacing
		case eligible >= 0:
			e.Verdict, e.Skip = Skipped, eligible
		default:
			if cr, reason := sc.pick(r, &c, req); cr < 0 {
				e.Verdict, e.Skip = Skipped, reason
			} else {
				e.Verdict = Outscored
			}
		}
	}
	return ex
}

// fits judges every creative of the candidate in pick's order.
func (sc *scan) fits(r *snapshot.Reader, c *snapshot.Candidate, req *Request) []CreativeFit {
	crs := r.List(snapshot.ListRef{Off: c.CreativesOff, Len: uint32(c.CreativesLen)})
	n := crs.Len()
	if n == 0 {
		return nil
	}
	out := make([]CreativeFit, 0, n)
	start := int(req.Seed % uint64(n))
	for k := 0; k < n; k++ {
		idx := int(crs.At((start + k) % n))
		cr, _ := r.Creative(idx)
		out = append(out, CreativeFit{Creative: idx, Fit: sc.fit(r, &cr, req)})
	}
	return out
}
