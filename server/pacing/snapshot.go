package pacing

import (
	"github.com/adedge/adedge/snapshot"
)

// Limited reports whether campaign i of r has a budget, read from the
// snapshot itself: selection asks it for a snapshot the Table has not
// caught up with yet, so a budgeted campaign is never served unpaced.
func Limited(r *snapshot.Reader, i int, camp *snapshot.Campaign) bool {
	return camp.DailyBudgetMicros > 0
}

// SpecsFromSnapshot lists r's campaigns in its order, with their budgets.
func SpecsFromSnapshot(r *snapshot.Reader) []Spec {
	n := r.NumCampaigns()
	specs := make([]Spec, n)
	for i := 0; i < n; i++ {
		c, ok := r.Campaign(i)
		if !ok {
			continue
		}
		b := Budget{Daily: c.DailyBudgetMicros, End: c.End}
		// A typical billed amount: the bid per impression for CPM, per
		// click for CPC; CPI campaigns bill impressions at the token's
		// price, a small fraction of the bid.
		switch c.BidType {
		case snapshot.BidCPM:
			b.Unit = c.BidMicros / 1000
		default:
			b.Unit = max(1, c.BidMicros/100)
		}
		specs[i] = Spec{ID: r.String(c.ID), Budget: b, Bid: c.BidMicros}
	}
	return specs
}
