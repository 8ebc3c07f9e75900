package abreport

import (
	"bytes"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/adedge/adedge/abtest"
	"github.com/adedge/adedge/abtest/report"
	"github.com/adedge/adedge/abtest/rows"
)

// world is simulated traffic through the real bucketer and counters,
// one flush per day: each device has a persistent appetite (how often it
// requests and how likely it fills), so its pre-period predicts its test
// period (what CUPED exploits).
type world struct {
	devices       int
	fill          [4]float64 // by test index
	errRate       [4]float64
	slowShare     [4]float64 // share of requests at ~5ms instead of ~200us
	seed          uint64
	dims          bool  // label rows with country/os/format by device
	oldEdge       bool  // with dims: impressions and clicks without them (edges before token dims reached the counters)
	usPrice       int64 // with dims: the price of a US impression (micros; 0: 2000 as everywhere)
	countries     []string
	t3LossFromDay int // from this day on, t3 loses 10% of its devices (0: never)
}

func (w *world) run(t *testing.T, dir string, first time.Time, days int) {
	t.Helper()
	b, err := abtest.NewBucketer(testSet(), abtest.Defaults)
	if err != nil {
		t.Fatal(err)
	}
	c := abtest.NewCounters()
	g := c.Serving("production", "snap-1", b)
	for day := 0; day < days; day++ {
		rng := rand.New(rand.NewPCG(w.seed, uint64(day)+uint64(first.Unix())))
		for d := 0; d < w.devices; d++ {
			dev := []byte("dev-" + strconv.Itoa(d))
			a := b.Assign(dev)
			if w.t3LossFromDay > 0 && day >= w.t3LossFromDay-1 && a.Test == 3 && d%10 == 0 {
				continue
			}
			appetite := 1 + d%3               // 1..3 requests a day
			taste := 0.6 + 0.8*float64(d%7)/6 // 0.6..1.4: the device's fill propensity
			for r := 0; r < appetite; r++ {
				o := abtest.NoFill
				p := math.Min(1, w.fill[a.Test]*taste)
				switch x := rng.Float64(); {
				case x < w.errRate[a.Test]:
					o = abtest.Error
				case rng.Float64() < p:
					o = abtest.Fill
				}
				lat := time.Duration(100+rng.IntN(150)) * time.Microsecond
				if rng.Float64() < w.slowShare[a.Test] {
					lat = 5 * time.Millisecond
				}
				var dims *abtest.Dims
				price := int64(2000)
				if w.dims {
					// What an edge counts (server/edge decisionDims): the
					// device's country and OS, the ad's format.
					dims = &abtest.Dims{Country: [2]byte([]byte(w.countries[d%len(w.countries)])), OS: uint8(1 + d%2), Format: 1}
					g.RequestDims(a, dev, o, lat, dims)
					if w.usPrice != 0 && dims.Country == [2]byte{'U', 'S'} {
						price = w.usPrice
					}
					if w.oldEdge {
						dims = nil
					}
				} else {
					g.Request(a, dev, o, lat)
				}
				if o == abtest.Fill {
					// The token carries the decision's dimensions
					// (server/edge trackDims).
					g.ImpressionDims(a, price, dims)
					if rng.Float64() < 0.03 {
						g.ClickDims(a, dims)
					}
				}
			}
		}
		start := first.Add(time.Duration(day) * 24 * time.Hour)
		flushed := c.Flush("edge-a", start, start.Add(24*time.Hour))
		if _, err := rows.WriteFile(dir, "edge-a", start, flushed); err != nil {
			t.Fatal(err)
		}
	}
}

func build(t *testing.T, o report.Options, dirs ...string) *report.Report {
	t.Helper()
	rs, files, skipped, err := Load(dirs, Filter{Env: "production"})
	if err != nil || len(skipped) != 0 {
		t.Fatal(err, skipped)
	}
	rep, err := report.Build(rs, files, o)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

var day0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// Ten days: t1 lifts fill by 10% and is found in both views; t2 (A/A) is
// found in neither; t3 doubles errors and adds slow requests: its
// guardrails say harm. Every day is a look: history, per-day SRM.
func TestSequentialReportOverDays(t *testing.T) {
	d := t.TempDir()
	w := &world{devices: 6000, seed: 1,
		fill:      [4]float64{0.5, 0.55, 0.5, 0.5},
		errRate:   [4]float64{0.01, 0.01, 0.01, 0.03},
		slowShare: [4]float64{0.001, 0.001, 0.001, 0.05},
		dims:      true, countries: []string{"US", "DE", "BR", "IN", "JP"}}
	w.run(t, d, day0, 10)
	for _, view := range []report.View{report.Sequential, report.Fixed} {
		rep := build(t, report.Options{View: view}, d)
		er := rep.Experiments[0]
		if len(er.DaySRM) != 10 || er.SRM.Failed {
			t.Fatalf("%s: %d day checks, SRM %+v", view, len(er.DaySRM), er.SRM)
		}
		for _, ds := range er.DaySRM {
			if ds.Failed {
				t.Fatalf("%s: balanced day flagged: %+v", view, ds)
			}
		}
		t1, t2, t3 := comparison(t, er, "t1"), comparison(t, er, "t2"), comparison(t, er, "t3")
		if p := t1.P(view, "fill_rate"); p > 0.001 || t1.Holm["fill_rate"] > 0.01 {
			t.Errorf("%s: t1's +10%% fill not found: p %g, Holm %g", view, p, t1.Holm["fill_rate"])
		}
		lo, hi := t1.RelCI(view, "fill_rate")
		if !(lo < 0.10 && 0.10 < hi) {
			t.Errorf("%s: t1 fill interval [%g, %g] misses +10%%", view, lo, hi)
		}
		if t2.Holm["fill_rate"] < 0.05 || t2.BH["fill_rate"] < 0.05 {
			t.Errorf("%s: A/A significant after correction: %v %v", view, t2.Holm, t2.BH)
		}
		harm := map[string]bool{}
		for _, g := range t3.Guardrails {
			harm[g.Metric] = g.Harm
		}
		if !harm["error_rate"] || !harm["p99_latency_us"] {
			t.Errorf("%s: t3's tripled errors and slow tail not judged harm: %+v", view, t3.Guardrails)
		}
		for _, g := range t1.Guardrails {
			if g.Harm {
				t.Errorf("%s: t1 harmless, judged %+v", view, g)
			}
		}
		if h := t1.History["fill_rate"]; len(h) != 10 || math.IsNaN(h[0].DayRel) || math.IsNaN(h[9].CumRel) {
			t.Errorf("%s: history %+v", view, h)
		}
		// Holm >= BH >= raw.
		for _, m := range report.MetricNames {
			raw := t2.P(view, m)
			if math.IsNaN(raw) {
				continue
			}
			if t2.Holm[m] < t2.BH[m]-1e-12 || t2.BH[m] < raw-1e-12 {
				t.Errorf("%s %s: raw %g BH %g Holm %g", view, m, raw, t2.BH[m], t2.Holm[m])
			}
		}
		if view == report.Sequential {
			// Always-valid intervals are wider than fixed-horizon ones.
			flo, fhi := t1.RelCI(report.Fixed, "fill_rate")
			if !(hi-lo > fhi-flo) {
				t.Errorf("confidence sequence [%g, %g] not wider than the CI [%g, %g]", lo, hi, flo, fhi)
			}
		}
		text, page, csvOut := render(t, rep)
		for _, want := range []string{"!!! HARM", "sample ratio by day", string(view)} {
			if !strings.Contains(strings.ToLower(text.String()), strings.ToLower(want)) {
				t.Errorf("%s: text lacks %q", view, want)
			}
		}
		for _, want := range []string{`class="v-harm">HARM`, "Sample ratio by day", "relative lift by day", "<polygon"} {
			if !strings.Contains(page.String(), want) {
				t.Errorf("%s: page lacks %q", view, want)
			}
		}
		if out := os.Getenv("ABREPORT_SAMPLE_HTML"); out != "" && view == report.Sequential {
			// For looking at the page (docs/REPORTS.md's screenshot).
			if err := os.WriteFile(out, page.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if !strings.Contains(csvOut.String(), ",harm") || !strings.Contains(csvOut.String(), ","+string(view)+",") {
			t.Errorf("%s: csv lacks verdict or view", view)
		}
	}
}

// A group that starts losing users on day 6 fails that day's check
// (and the days after), not the first five.
func TestDaySRMFindsTheDay(t *testing.T) {
	d := t.TempDir()
	w := &world{devices: 20000, seed: 2, fill: [4]float64{0.5, 0.5, 0.5, 0.5}, t3LossFromDay: 6}
	w.run(t, d, day0, 8)
	er := build(t, report.Options{}, d).Experiments[0]
	for i, ds := range er.DaySRM {
		if want := i >= 5; ds.Failed != want {
			t.Errorf("day %d (%s): failed %v p=%g, want %v", i+1, ds.Day.Format("01-02"), ds.Failed, ds.P, want)
		}
	}
}

// With the same users' previous week as pre-period, CUPED narrows the
// intervals and keeps covering the true lift.
func TestCUPEDWithPrePeriod(t *testing.T) {
	pre, cur := t.TempDir(), t.TempDir()
	w := &world{devices: 6000, seed: 3, fill: [4]float64{0.5, 0.5, 0.5, 0.5}}
	w.run(t, pre, day0, 7)
	w.fill = [4]float64{0.5, 0.55, 0.5, 0.5}
	w.seed = 4
	w.run(t, cur, day0.Add(7*24*time.Hour), 7)
	preRows, _, _, err := Load([]string{pre}, Filter{Env: "production"})
	if err != nil {
		t.Fatal(err)
	}
	plain := build(t, report.Options{View: report.Fixed}, cur)
	cuped := build(t, report.Options{View: report.Fixed, Pre: preRows}, cur)
	p1, c1 := comparison(t, plain.Experiments[0], "t1"), comparison(t, cuped.Experiments[0], "t1")
	vr, ok := c1.CUPED["fill_rate"]
	if !ok || !(vr < 0.8) {
		t.Fatalf("CUPED not applied or no reduction: %v (%s)", c1.CUPED, cuped.Experiments[0].CUPEDNote)
	}
	pl, cl := p1.Lifts["fill_rate"], c1.Lifts["fill_rate"]
	if !(cl.RelHi-cl.RelLo < pl.RelHi-pl.RelLo) || !(cl.RelLo < 0.10 && 0.10 < cl.RelHi) {
		t.Errorf("CUPED interval [%g, %g] vs plain [%g, %g] (true +10%%)", cl.RelLo, cl.RelHi, pl.RelLo, pl.RelHi)
	}
	if !strings.Contains(cuped.Experiments[0].CUPEDNote, "CUPED on") || !strings.Contains(plain.Experiments[0].CUPEDNote, "CUPED off") {
		t.Errorf("notes %q / %q", cuped.Experiments[0].CUPEDNote, plain.Experiments[0].CUPEDNote)
	}
}

// Breakdowns: from the breakdown rows the counters write, every
// country's requests and revenue add up to the group's, each country's
// eCPM is its price (US impressions pay double), rows of edges whose
// impressions carried no dimensions show revenue as n/a, not 0, and
// rows without dimensions (older edges) make no breakdown at all.
func TestBreakdowns(t *testing.T) {
	d := t.TempDir()
	w := &world{devices: 3000, seed: 5, fill: [4]float64{0.5, 0.55, 0.5, 0.5}, dims: true, usPrice: 4000,
		countries: []string{"US", "DE", "FR", "BR", "IN", "JP", "GB", "ES", "IT", "NL", "SE", "PL", "MX", "CA", "AU"}}
	w.run(t, d, day0, 2)
	er := build(t, report.Options{MaxBreakdown: 5}, d).Experiments[0]
	if len(er.Breakdowns) != 3 {
		t.Fatalf("breakdowns %d", len(er.Breakdowns))
	}
	bc := er.Breakdowns[0]
	if bc.Dim != "country" || len(bc.Values) != 6 || bc.Values[5].Value != "(other)" {
		t.Fatalf("country breakdown values %d", len(bc.Values))
	}
	for _, g := range er.Groups {
		gk := report.GroupKey(g.Test, g.Variant)
		var req, rev float64
		for _, v := range bc.Values {
			req += v.Requests[gk]
			rev += v.Revenue[gk]
			ecpm := v.Metrics[gk]["ecpm"]
			switch {
			case v.Value == "US" && math.Abs(ecpm-4) > 1e-9, v.Value != "US" && v.Value != "(other)" && math.Abs(ecpm-2) > 1e-9:
				t.Errorf("%s in %s: eCPM %v, want the price (4 US, 2 elsewhere)", gk, v.Value, ecpm)
			}
			if rpr := v.Metrics[gk]["revenue_per_request"]; math.Abs(rpr-v.Revenue[gk]/v.Requests[gk]) > 1e-12 {
				t.Errorf("%s in %s: revenue/request %v, revenue %v over %v requests", gk, v.Value, rpr, v.Revenue[gk], v.Requests[gk])
			}
		}
		if req != float64(g.Requests) || math.Abs(rev-float64(g.RevenueMicros)/1e6) > 1e-9 {
			t.Errorf("%s: countries add to %g requests, %g revenue; the group has %d, %g", gk, req, rev, g.Requests, float64(g.RevenueMicros)/1e6)
		}
	}
	if l := bc.Values[0].Lifts[report.GroupKey("t1", "better")]["ecpm"]; math.IsNaN(l.Rel) || math.Abs(l.Rel) > 1e-9 {
		t.Errorf("t1's eCPM lift in %s %+v, want 0 (the same price)", bc.Values[0].Value, l)
	}
	var page, text bytes.Buffer
	rep := build(t, report.Options{MaxBreakdown: 20}, d) // every country listed
	if err := WriteHTML(&page, rep, nil); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"By country", "By os", "By format", "android", "<th>fill</th><th>revenue</th><th>eCPM</th>", "<td>4.0000</td>"} {
		if !strings.Contains(page.String(), want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page.String(), "Impressions carry no") {
		t.Error("page still says impressions carry no dimensions")
	}
	WriteText(&text, rep, nil)
	if !strings.Contains(text.String(), "eCPM 4.0000") {
		t.Errorf("text breakdown lacks the US eCPM:\n%s", text.String())
	}

	old := t.TempDir()
	w.oldEdge = true
	w.run(t, old, day0, 1)
	w.oldEdge = false
	bo := build(t, report.Options{}, old).Experiments[0].Breakdowns[0].Values[0]
	for _, m := range []string{"ecpm", "revenue_per_request", "ctr"} {
		if v := bo.Metrics[report.GroupKey("control", "control")][m]; !math.IsNaN(v) {
			t.Errorf("%s by country from rows without impressions by dimension %v, want n/a", m, v)
		}
	}
	if v := bo.Revenue[report.GroupKey("control", "control")]; !math.IsNaN(v) {
		t.Errorf("revenue by country from rows without impressions by dimension %v, want n/a", v)
	}
	plain := t.TempDir()
	w.dims = false
	w.run(t, plain, day0, 1)
	if bd := build(t, report.Options{}, plain).Experiments[0].Breakdowns; len(bd) != 0 {
		t.Errorf("rows without dimensions gave breakdowns %+v", bd)
	}
}

func TestOptionsRefused(t *testing.T) {
	for _, o := range []report.Options{{View: "bayesian"}, {Alpha: 0.7}, {Alpha: -1}, {TauRel: -0.1}, {MaxBreakdown: -2}, {Alpha: math.NaN()}} {
		if _, err := report.Build(nil, 0, o); err == nil {
			t.Errorf("options %+v accepted", o)
		}
	}
}
