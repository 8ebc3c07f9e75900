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
	Rank      int // 0-based position in the candidate list
	Candidate snapshot.Candidate
	Campaign  snapshot.Campaign // zero when the record is missing (Skip is SkipCorrupt)
	Verdict   Verdict
	Skip      int     // a Skip* reason when Verdict is Skipped, else -1
	Score     float64 // eCPM times the bid type's weight: what the ranking compares
}

// Explanation is what Explain reports: the Result Select gives, the floor
// and weights it used, and a verdict for every candidate of the list.
type Explanation struct {
	Result
	Floor      float64 // micros, after the floor multiplier
	Weights    [snapshot.NumBidTypes]float64
	Candidates []Explained
}

// Explain is Select for tools (adtool lookup): the same Result, plus why each
// candidate of the list did or did not win. It runs Select itself, then
// judges every candidate with the rules Select uses (the floor, eligible,
// pacing, the weights), so the two cannot drift; the request path never
// pays for it. It allocates the explanation. With Pacing set it counts the
// winner as served, as Select does, and reads the pacing table again for
// the verdicts (a table updated in between may disagree); tools run
// without Pacing.
func (s *Selector) Explain(r *snapshot.Reader, req *Request, prof *profiles.Profile, p *abtest.Params) *Explanation {
	ex := &Explanation{Weights: weightsOf(p)}
	s.Select(r, req, prof, p, &ex.Result)
	if ex.Outcome == UnknownPlacement {
		return ex
	}
	pl, _ := r.Placement(ex.Placement)
	ex.Floor = floorOf(&pl, p, req)
	var userSeg [4]uint64
	if prof != nil {
		userSeg = UserSegments(r, prof)
	}
	blockedAdv, blockedCat := r.List(pl.BlockedAdvertisers), r.List(pl.BlockedCategories)
	list := r.Candidates(pl.Format, req.Country, req.OS)
	maxScan := s.maxScan()
	pc := s.pacer(r)
	ex.Candidates = make([]Explained, list.Len())
	for i := range ex.Candidates {
		c := list.At(i)
		e := &ex.Candidates[i]
		*e = Explained{Rank: i, Candidate: c, Skip: -1}
		camp, ok := r.Campaign(int(c.Campaign))
		if ok {
			e.Campaign = camp
			e.Score = float64(c.ECPMMicros) * weightOf(&ex.Weights, camp.BidType)
		}
		switch {
		case ex.Outcome == Filled && int(c.Campaign) == ex.Campaign:
			e.Verdict = Won
		case float64(c.ECPMMicros) < ex.Floor:
			e.Verdict = UnderFloor
		case i >= maxScan:
			e.Verdict = NotScanned
		case !ok:
			e.Verdict, e.Skip = Skipped, SkipCorrupt
		default:
			if reason := eligible(r, &camp, &c, req, prof, &userSeg, blockedAdv, blockedCat, p); reason >= 0 {
				e.Verdict, e.Skip = Skipped, reason
			} else if pc.on() && pc.throttled(r, int(c.Campaign), &camp, req.Seed) {
				e.Verdict, e.Skip = Skipped, SkipPacing
			} else {
				e.Verdict = Outscored
			}
		}
	}
	return ex
}
