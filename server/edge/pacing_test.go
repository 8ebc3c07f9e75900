package edge

import (
	"context"
	"testing"
	"time"

	"github.com/adedge/adedge/server/pacing"
	"github.com/adedge/adedge/snapshot"
)

// The edge's pacing loop: selection throttles by the table, a counted
// impression's price is flushed to the spend store, and a campaign whose
// fleet spend reached its budget stops winning (skipped as "pacing").
func TestPacingEndToEnd(t *testing.T) {
	st := pacing.NewLocal()
	svc := pacing.NewService(pacing.Config{Store: st})
	e := newEnv(t, envOpts{httpServer: true, config: func(c *Config) { c.Pacing = svc }})
	e.metrics.RegisterPacingMetrics(svc)
	qs := e.search(1, func(_ *snapshot.Reader, c *snapshot.Campaign) bool { return c.DailyBudgetMicros > 0 })
	q := qs[0]

	// Before the table knows the snapshot, budgeted campaigns do not serve.
	if r := e.get(q.uri()); r.code == 200 && decodeAd(t, r).Campaign == q.campaign {
		t.Fatal("a budgeted campaign served before its fleet totals were read")
	}
	// RunPacing installs the snapshot's campaigns and reads the totals.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.srv.RunPacing(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	snap := e.src.Acquire()
	r := snap.R
	snap.Release()
	// A tick may complete before the snapshot's campaigns are installed, so
	// wait for the state the gauges must reach, not for the first tick.
	waitFor(t, "a budgeted campaign of the serving snapshot in the pacing gauges", func() bool {
		return svc.Table().For(r) && svc.Stats().Ticks.Load() > 0 &&
			e.metric("adedge_pacing_campaigns", "state", "pacing")+e.metric("adedge_pacing_campaigns", "state", "capped") > 0
	})
	cancel()
	<-done // the test ticks by hand from here on

	ci := -1
	for i := 0; i < r.NumCampaigns(); i++ {
		if c, _ := r.Campaign(i); r.String(c.ID) == q.campaign {
			ci = i
		}
	}
	svc.Table().Force(ci, 1)
	ad := checkFill(t, e, e.get(q.uri()), q, "production")
	if rr := e.get(trackPath(t, ad.ImpressionURL)); rr.code != 204 {
		t.Fatalf("impression: %v", rr)
	}
	now := time.Now()
	svc.Tick(context.Background(), now)
	_, _, day := pacing.DayBounds(nil, now)
	out := make([]pacing.Totals, 1)
	if err := st.Read(context.Background(), []pacing.Delta{{Campaign: q.campaign, Day: day}}, out); err != nil {
		t.Fatal(err)
	}
	if out[0].Day != ad.PriceMicros || out[0].Served < ad.PriceMicros {
		t.Fatalf("store: spend %d served %d, want the impression's price %d", out[0].Day, out[0].Served, ad.PriceMicros)
	}

	// The fleet spends the rest of the budget: the campaign is exhausted.
	camp := e.campaign(q.campaign)
	_ = st.Apply(context.Background(), []pacing.Delta{{Campaign: q.campaign, Day: day, Spend: camp.DailyBudgetMicros}}, out)
	svc.Tick(context.Background(), now.Add(time.Second))
	before := e.metric("adedge_selection_skips_total", "reason", "pacing")
	if rr := e.get(q.uri()); rr.code == 200 && decodeAd(t, rr).Campaign == q.campaign {
		t.Fatal("an exhausted campaign won")
	}
	if after := e.metric("adedge_selection_skips_total", "reason", "pacing"); after <= before {
		t.Fatalf("pacing skips %v -> %v", before, after)
	}
	if e.metric("adedge_pacing_campaigns", "state", "exhausted") < 1 {
		t.Fatal("exhausted gauge")
	}
	if e.metric("adedge_pacing_last_flush_age_seconds") < 0 {
		t.Fatal("no good flush recorded")
	}
}

// BenchmarkServeAdPacing is BenchmarkServeAd/no-device with pacing off
// (no pacing service) and on: every campaign of the medium snapshot
// budgeted (never reached) and forced to p = 0.9, so each candidate pays
// the atomic load and the draw (the worst case: at p = 1 the draw is
// skipped), and each win the served-value add. Run side by side in one
// pinned process for the on/off throughput ratio (docs/BENCHMARKS.md).
func BenchmarkServeAdPacing(b *testing.B) {
	b.Run("off", func(b *testing.B) {
		e := newEnv(b, envOpts{scale: "medium", store: "none", noWorkers: true})
		serveLoop(b, e.srv.Handler, fillMix(b, e, 64, nil))
	})
	b.Run("on", func(b *testing.B) {
		svc := pacing.NewService(pacing.Config{Store: pacing.NewLocal()})
		e := newEnv(b, envOpts{scale: "medium", store: "none", noWorkers: true, config: func(c *Config) { c.Pacing = svc }})
		snap := e.src.Acquire()
		specs := pacing.SpecsFromSnapshot(snap.R)
		for i := range specs {
			specs[i].Budget.Daily = 1e12
		}
		svc.SetCampaigns(snap.R, specs)
		snap.Release()
		for i := range specs {
			svc.Table().Force(i, 0.9)
		}
		serveLoop(b, e.srv.Handler, fillMix(b, e, 64, nil))
		if e.metric("adedge_selection_skips_total", "reason", "pacing") == 0 {
			b.Fatal("pacing on, and no candidate was skipped by it: the table is not in the path")
		}
	})
}
