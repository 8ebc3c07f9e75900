package pacing

import (
	"github.com/adedge/adedge/snapshot"
)

// Limited reports whether campaign i of r has a budget, read from the
// snapshot itself: selection asks it for a snapshot the Table has not
// caught up with yet, so a budgeted campaign is never served unpaced.
func Limited(r *snapshot.Reader, i int, camp *snapshot.Campaign) bool {
	if camp.DailyBudgetMicros > 0 {
		return true
	}
	p, _ := r.CampaignPacing(i)
	return p.LifetimeBudgetMicros > 0
}

// SpecsFromSnapshot lists r's campaigns in its order, with their budgets
// (the campaign records and the PACING section).
func SpecsFromSnapshot(r *snapshot.Reader) []Spec {
	n := r.NumCampaigns()
	specs := make([]Spec, n)
	for i := 0; i < n; i++ {
		c, ok := r.Campaign(i)
		if !ok {
			continue
		}
		p, _ := r.CampaignPacing(i)
		b := Budget{Daily: c.DailyBudgetMicros, Lifetime: p.LifetimeBudgetMicros, End: c.End}
		if p.Mode == snapshot.PacingASAP {
			b.Mode = ASAP
		}
		// A typical billed amount: the bid per impression for CPM, per
		// click for click-billed CPC; otherwise impressions at the token's
		// price, a small fraction of the bid.
		switch {
		case p.Billing == snapshot.BillClick:
			b.Billing = BillClick
			b.Unit = c.BidMicros
		case c.BidType == snapshot.BidCPM:
			b.Unit = c.BidMicros / 1000
		default:
			b.Unit = max(1, c.BidMicros/100)
		}
		if tz := r.String(p.TimeZone); tz != "" {
			// Validated by the builder; a zone this edge cannot load pacing
			// in UTC is better than not pacing.
			if loc, err := snapshot.LoadZone(tz); err == nil {
				b.Loc = loc
			}
		}
		specs[i] = Spec{ID: r.String(c.ID), Budget: b, Bid: c.BidMicros}
	}
	return specs
}
