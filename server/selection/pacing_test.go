package selection

import (
	"context"
	"testing"
	"time"

	"github.com/adedge/adedge/abtest"
	"github.com/adedge/adedge/server/pacing"
	"github.com/adedge/adedge/snapshot"
)

// filledRequest finds a request some campaign wins, with that campaign.
func filledRequest(t testing.TB, w *world, sel *Selector) (Request, int) {
	t.Helper()
	us, _ := snapshot.CountryIndex("US")
	for _, pl := range w.inv.Placements {
		for _, os := range []snapshot.OS{snapshot.OSAndroid, snapshot.OSiOS} {
			req := Request{Placement: []byte(pl.ID), Country: us, OS: os, OSVersion: 15 << 16,
				DeviceType: snapshot.DevicePhone, Now: created.Unix(), Seed: 1}
			var res Result
			sel.Select(w.r, &req, nil, &abtest.Defaults, &res)
			if res.Outcome == Filled {
				return req, res.Campaign
			}
		}
	}
	t.Fatal("no request fills")
	return Request{}, 0
}

// A throttled campaign is skipped with its own reason and the next one
// wins; an exhausted budget (read from the store) throttles for good.
func TestPacingSkipsThrottled(t *testing.T) {
	w := newWorld(t, "small")
	st := pacing.NewLocal()
	svc := pacing.NewService(pacing.Config{Store: st})
	sel := Selector{Pacing: svc}
	specs := make([]pacing.Spec, w.r.NumCampaigns())
	for i := range specs {
		c, _ := w.r.Campaign(i)
		specs[i] = pacing.Spec{ID: w.r.String(c.ID)} // no budgets: all served
	}
	svc.SetCampaigns(w.r, specs)
	req, winner := filledRequest(t, w, &sel)

	specs[winner].Budget = pacing.Budget{Daily: 1000, Mode: pacing.ASAP}
	svc.SetCampaigns(w.r, specs)
	now := time.Unix(req.Now, 0)
	_, _, day := pacing.DayBounds(nil, now)
	out := make([]pacing.Totals, 1)
	_ = st.Apply(context.Background(), []pacing.Delta{{Campaign: specs[winner].ID, Day: day, Spend: 1000}}, out)
	svc.Tick(context.Background(), now)

	var res Result
	sel.Select(w.r, &req, nil, &abtest.Defaults, &res)
	if res.Outcome == Filled && res.Campaign == winner {
		t.Fatal("an exhausted campaign won")
	}
	// One skip per list the campaign is in (a placement showing banners
	// and videos merges two), all of them the exhausted campaign.
	throttled := 0
	for _, c := range sel.Explain(w.r, &req, nil, &abtest.Defaults).Candidates {
		if c.Skip == SkipPacing {
			if int(c.Candidate.Campaign) != winner {
				t.Fatalf("campaign %d throttled, only %d is budgeted", c.Candidate.Campaign, winner)
			}
			throttled++
		}
	}
	if res.Skipped[SkipPacing] == 0 || int(res.Skipped[SkipPacing]) != throttled {
		t.Fatalf("pacing skips %d, Explain says %d (%+v)", res.Skipped[SkipPacing], throttled, res)
	}

	// Half the draws pass at p = 0.5.
	svc.Table().Force(winner, 0.5)
	wins := 0
	for i := 0; i < 2000; i++ {
		req.Seed = uint64(i)
		sel.Select(w.r, &req, nil, &abtest.Defaults, &res)
		if res.Outcome == Filled && res.Campaign == winner {
			wins++
		}
	}
	if wins < 900 || wins > 1100 {
		t.Fatalf("p=0.5 won %d of 2000", wins)
	}
	if a := testing.AllocsPerRun(200, func() { req.Seed++; sel.Select(w.r, &req, nil, &abtest.Defaults, &res) }); a != 0 {
		t.Fatalf("Select with pacing: %v allocs", a)
	}
}

// A snapshot the pacing table has not caught up with serves no budgeted
// campaign (it may have spent its budget) and every other one.
func TestPacingPendingSnapshot(t *testing.T) {
	w := newWorld(t, "small")
	svc := pacing.NewService(pacing.Config{Store: pacing.NewLocal()})
	paced := Selector{Pacing: svc}
	svc.SetCampaigns("another snapshot", nil)
	var plain Selector
	us, _ := snapshot.CountryIndex("US")
	var fills, budgetedPlain, budgetedPaced, skips int
	for _, pl := range w.inv.Placements {
		for _, os := range []snapshot.OS{snapshot.OSAndroid, snapshot.OSiOS} {
			req := Request{Placement: []byte(pl.ID), Country: us, OS: os, OSVersion: 15 << 16,
				DeviceType: snapshot.DevicePhone, Now: created.Unix(), Seed: 1}
			var a, b Result
			plain.Select(w.r, &req, nil, &abtest.Defaults, &a)
			paced.Select(w.r, &req, nil, &abtest.Defaults, &b)
			checkExplain(t, &paced, w.r, &req, nil, &abtest.Defaults, &b) // pacing skips among the verdicts
			if a.Outcome == Filled {
				if c, _ := w.r.Campaign(a.Campaign); c.DailyBudgetMicros > 0 {
					budgetedPlain++
				} else if b.Outcome != Filled || b.Campaign != a.Campaign {
					t.Fatalf("unbudgeted winner %d not served while the table is pending: %+v", a.Campaign, b)
				}
			}
			if b.Outcome == Filled {
				fills++
				if c, _ := w.r.Campaign(b.Campaign); c.DailyBudgetMicros > 0 {
					budgetedPaced++
				}
			}
			skips += int(b.Skipped[SkipPacing])
		}
	}
	if budgetedPlain == 0 {
		t.Fatal("the inventory exercises nothing: no budgeted winner")
	}
	t.Logf("%d budgeted winners unpaced; paced: %d fills, %d pacing skips", budgetedPlain, fills, skips)
	if budgetedPaced != 0 || skips < budgetedPlain {
		t.Fatalf("pending table: %d budgeted winners, %d pacing skips (unpaced: %d budgeted winners)", budgetedPaced, skips, budgetedPlain)
	}
}

// BenchmarkSelectPacing is BenchmarkSelect with every campaign budgeted
// at p = 0.9: one atomic load and one draw per candidate.
func BenchmarkSelectPacing(b *testing.B) { benchSelectPaced(b, 0.9) }

// BenchmarkSelectPacingThrottled holds most campaigns back (p = 0.1, a day
// whose budgets are nearly spent): the scan walks far down the lists, and
// a held candidate must cost no more than its load and draw.
func BenchmarkSelectPacingThrottled(b *testing.B) { benchSelectPaced(b, 0.1) }

func benchSelectPaced(b *testing.B, p float64) {
	w := newWorld(b, "medium")
	svc := pacing.NewService(pacing.Config{Store: pacing.NewLocal()})
	specs := pacing.SpecsFromSnapshot(w.r)
	for i := range specs {
		specs[i].Budget.Daily = 1e12
	}
	svc.SetCampaigns(w.r, specs)
	for i := range specs {
		svc.Table().Force(i, p)
	}
	benchSelect(b, w, &Selector{Pacing: svc})
}
