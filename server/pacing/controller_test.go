package pacing

import (
	"math"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

func obsAt(now time.Time, day, served int64) Obs {
	return Obs{Now: now, FleetAt: now, FleetOK: true, FleetDay: day, FleetServed: served, FleetLife: day}
}

func TestNoBudgetAlwaysServes(t *testing.T) {
	c := NewController(Budget{}, nil, Params{})
	if d := c.Update(Obs{Now: t0}); d.P != 1 || d.State != NoBudget {
		t.Fatalf("got %+v", d)
	}
}

// A restarted edge (or any edge at a new day) does not serve a budgeted
// campaign before it has read the fleet's totals.
func TestWaitsForFleetTotals(t *testing.T) {
	c := NewController(Budget{Daily: 1e9, Mode: ASAP, Unit: 1000}, nil, Params{})
	d := c.Update(Obs{Now: t0.Add(time.Hour)})
	if d.P != 0 || d.State != Unknown {
		t.Fatalf("before any read: %+v, want p=0 unknown", d)
	}
	d = c.Update(obsAt(t0.Add(time.Hour+time.Second), 0, 0))
	if d.P <= 0 || d.State != Pacing {
		t.Fatalf("after a read: %+v, want serving", d)
	}
}

func TestExhaustedAndCapped(t *testing.T) {
	c := NewController(Budget{Daily: 1_000_000, Mode: ASAP, Unit: 1000}, nil, Params{})
	now := t0.Add(time.Hour)
	if d := c.Update(obsAt(now, 1_000_000, 1_100_000)); d.State != Exhausted || d.P != 0 {
		t.Fatalf("spent = budget: %+v", d)
	}
	// Spent 90%, but the last minute's served value would take it past the
	// budget once counted: hold back.
	c = NewController(Budget{Daily: 1_000_000, Mode: ASAP, Unit: 1000}, nil, Params{})
	for i := 0; i < 5; i++ {
		c.Update(obsAt(now.Add(time.Duration(i)*time.Second), 900_000, 1_000_000))
	}
	if d := c.Update(obsAt(now.Add(5*time.Second), 900_000, 1_000_000)); d.State != Capped || d.P != 0 || d.Reserve < 100_000 {
		t.Fatalf("committed past the budget: %+v, want capped with the served-not-counted value reserved", d)
	}
}

// fluid runs one controller against a deterministic fleet: demand (value
// per second at p = 1) times p is served each second and counted lag
// seconds later.
func fluid(c *Controller, start time.Time, secs int, demand func(time.Time) float64, lag int) (spent float64, perHour [24]float64) {
	var served, counted float64
	hist := make([]float64, 0, secs)
	p := 0.0
	for s := 0; s < secs; s++ {
		now := start.Add(time.Duration(s) * time.Second)
		d := c.Update(obsAt(now, int64(counted), int64(served)))
		p = d.P
		v := demand(now) * p
		served += v
		hist = append(hist, v)
		if s >= lag {
			counted += hist[s-lag]
			perHour[now.Add(-time.Duration(lag)*time.Second).Hour()] += hist[s-lag]
		}
	}
	return counted, perHour
}

func TestEvenFollowsTheCurve(t *testing.T) {
	b := Budget{Daily: 1_000_000_000, Mode: Even, Unit: 1000}
	c := NewController(b, &diurnal, Params{})
	w := diurnal.weights()
	demand := func(now time.Time) float64 { return 50_000 * w[now.Hour()] } // ~4.3x the budget
	spent, hours := fluid(c, t0, 86400, demand, 20)
	if spent > float64(b.Daily) || spent < 0.99*float64(b.Daily) {
		t.Fatalf("spent %.0f of %d", spent, b.Daily)
	}
	for h := 1; h < 24; h++ {
		plan := float64(b.Daily) * w[h] / 24
		if math.Abs(hours[h]-plan) > 0.05*plan {
			t.Errorf("hour %d: %.0f, plan %.0f", h, hours[h], plan)
		}
	}
}

func TestASAPStopsAtTheBudget(t *testing.T) {
	b := Budget{Daily: 100_000_000, Mode: ASAP, Unit: 1000}
	c := NewController(b, nil, Params{})
	spent, hours := fluid(c, t0, 86400, func(time.Time) float64 { return 20_000 }, 30)
	if spent > float64(b.Daily) || spent < 0.99*float64(b.Daily) {
		t.Fatalf("spent %.0f of %d", spent, b.Daily)
	}
	// 20000/s spends the 100M in 5000 s: all of it in the first two hours.
	if hours[0]+hours[1] < 0.99*float64(b.Daily) {
		t.Fatalf("asap spread its budget: %.0f in hours 0-1", hours[0]+hours[1])
	}
}

// The fallback: totals older than StaleAfter make the edge pace its own
// spend against (what was left) / expected edges, never more.
func TestFallbackOwnShare(t *testing.T) {
	par := Params{ExpectedEdges: 4, StaleAfter: 5 * time.Second}
	c := NewController(Budget{Daily: 4_000_000, Mode: ASAP, Unit: 100}, nil, par)
	now := t0.Add(time.Hour)
	good := obsAt(now, 0, 0)
	c.Update(good)
	// The store stops answering; this edge serves and counts on its own.
	var own int64
	for s := 1; s < 600; s++ {
		o := good
		o.Now = now.Add(time.Duration(s) * time.Second)
		o.FleetOK = false
		o.OwnDay, o.OwnServed = own, own
		o.UnflushedDay, o.UnflushedServed = own, own
		d := c.Update(o)
		if s > 5 && !d.Fallback {
			t.Fatalf("second %d: not in fallback with a %ds old read", s, s)
		}
		own += int64(d.P * 20_000)
	}
	if own > 1_000_000 {
		t.Fatalf("own spend %d in fallback, over budget/edges = 1000000", own)
	}
	if own < 900_000 {
		t.Fatalf("own spend %d in fallback: the share was not used", own)
	}
}

func TestLifetimeBudget(t *testing.T) {
	c := NewController(Budget{Daily: 10_000_000, Lifetime: 50_000_000, Mode: ASAP, Unit: 100}, nil, Params{})
	now := t0.Add(time.Hour)
	o := obsAt(now, 1_000_000, 1_000_000)
	o.FleetLife = 45_000_000 // 44M on earlier days, 1M today
	if d := c.Update(o); d.Budget != 6_000_000 {
		t.Fatalf("allowance %d, want today's 1M + the 5M the lifetime budget leaves", d.Budget)
	}
	o.FleetLife = 50_000_000
	if d := c.Update(o); d.State != Exhausted {
		t.Fatalf("lifetime spent: %+v", d)
	}
}

func TestDayBoundsTimeZones(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skip("no tzdata:", err)
	}
	// 2026-03-08 is the spring-forward day in New York: 23 hours.
	s, e, key := DayBounds(ny, time.Date(2026, 3, 8, 12, 0, 0, 0, time.UTC))
	if key != 20260308 || e-s != 23*3600 {
		t.Fatalf("key %d, length %dh", key, (e-s)/3600)
	}
	if got := time.Unix(s, 0).UTC(); got != time.Date(2026, 3, 8, 5, 0, 0, 0, time.UTC) {
		t.Fatalf("NY midnight at %v UTC", got)
	}
	// 03:00 UTC is still the previous day in New York.
	if _, _, key := DayBounds(ny, time.Date(2026, 3, 9, 3, 0, 0, 0, time.UTC)); key != 20260308 {
		t.Fatalf("key %d", key)
	}
	if _, _, key := DayBounds(nil, time.Date(2026, 3, 9, 3, 0, 0, 0, time.UTC)); key != 20260309 {
		t.Fatalf("UTC key %d", key)
	}
}

func TestPlanFraction(t *testing.T) {
	p := newDayPlan(&diurnal, t0.Unix(), t0.Unix()+86400)
	if f := p.Fraction(t0.Unix() + 43200); math.Abs(f-sumTo(12)) > 1e-9 {
		t.Fatalf("noon fraction %v, want %v", f, sumTo(12))
	}
	flat := newDayPlan(&Curve{}, t0.Unix(), t0.Unix()+86400)
	if f := flat.Fraction(t0.Unix() + 21600); math.Abs(f-0.25) > 1e-9 {
		t.Fatalf("flat 6h fraction %v", f)
	}
	if flat.Fraction(t0.Unix()-1) != 0 || flat.Fraction(t0.Unix()+86400) != 1 {
		t.Fatal("outside the day")
	}
}

func sumTo(h int) float64 {
	var a, all float64
	for i, v := range diurnal {
		if i < h {
			a += v
		}
		all += v
	}
	return a / all
}

func TestParseCurve(t *testing.T) {
	if c, err := ParseCurve("flat"); err != nil || c != (Curve{}) {
		t.Fatal(c, err)
	}
	if _, err := ParseCurve(strings.Repeat("1,", 23) + "2"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"1,2", strings.Repeat("1,", 23) + "-1", strings.Repeat("0,", 23) + "0", strings.Repeat("1,", 23) + "x", strings.Repeat("1,", 23) + "NaN"} {
		if _, err := ParseCurve(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// One of four identical edges, even mode on a flat curve, the store away
// from 02:00 to 04:00. When it is back this edge's flush lands first and
// the other three's a second later (a jump in the fleet's served value,
// not a serve rate), and the served history kept during the outage is an
// estimate. The fleet's counted spend must stay within 10% of the plan in
// every hour around the outage (the hour after it was 17% short when the
// reserve took the whole outage's served value for committed and the
// jump for a rate).
func TestEvenAcrossAnOutage(t *testing.T) {
	const edges, lag = 4, 30
	b := Budget{Daily: 24_000_000_000, Mode: Even, Unit: 1000}
	c := NewController(b, nil, Params{ExpectedEdges: edges, StaleAfter: 5 * time.Second})
	demand := 2 * float64(b.Daily) / 86400 // fleet value per second at p = 1
	from, to := 2*3600, 4*3600
	var served, counted float64 // this edge's
	hist := make([]float64, 0, 6*3600)
	var hours [24]float64
	var atFrom Obs
	for s := 0; s < 6*3600; s++ {
		now := t0.Add(time.Duration(s) * time.Second)
		own := Obs{Now: now, FleetOK: true, OwnDay: int64(counted), OwnServed: int64(served)}
		o := own
		switch {
		case s < from || s > to:
			o.FleetAt, o.FleetDay, o.FleetServed, o.FleetLife = now, edges*o.OwnDay, edges*o.OwnServed, edges*o.OwnDay
			if s == from-1 {
				atFrom = o
			}
		case s < to:
			// Stale: the last good totals, this edge's since then unflushed.
			o.FleetAt, o.FleetDay, o.FleetServed, o.FleetLife = atFrom.FleetAt, atFrom.FleetDay, atFrom.FleetServed, atFrom.FleetLife
			o.UnflushedDay, o.UnflushedServed = o.OwnDay-atFrom.OwnDay, o.OwnServed-atFrom.OwnServed
		default: // s == to: only this edge has flushed yet
			o.FleetAt = now
			o.FleetDay = atFrom.FleetDay + (o.OwnDay - atFrom.OwnDay)
			o.FleetServed = atFrom.FleetServed + (o.OwnServed - atFrom.OwnServed)
			o.FleetLife = o.FleetDay
		}
		d := c.Update(o)
		if s == from+60 && !d.Fallback {
			t.Fatalf("a minute into the outage: not in fallback: %+v", d)
		}
		v := demand / edges * d.P
		served += v
		hist = append(hist, v)
		if s >= lag {
			counted += hist[s-lag]
			hours[now.Hour()] += edges * hist[s-lag]
		}
	}
	plan := float64(b.Daily) / 24
	for h := 1; h < 6; h++ {
		if math.Abs(hours[h]-plan) > 0.1*plan {
			t.Errorf("hour %d: fleet counted %.0f, plan %.0f (%+.1f%%)", h, hours[h], plan, 100*(hours[h]-plan)/plan)
		}
	}
}
