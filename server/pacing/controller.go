// Package pacing keeps campaigns inside their budgets across a fleet of
// edges. Every edge adds its spend to a shared counter store (Store) at
// least once a second, reads the fleet's totals back in the same call, and
// computes a serve probability per campaign from the same inputs (fleet
// spend, budget, time left in the day, the traffic curve), so edges agree
// without talking to each other. The hot path reads that probability with
// one atomic load (Table.Allow). docs/PACING.md has the model and the
// figures.
package pacing

import (
	"math"
	"time"
)

// Mode is how a campaign spends its daily budget.
type Mode uint8

// Pacing modes.
const (
	// Even spreads the budget over the day along the traffic curve.
	Even Mode = iota
	// ASAP serves until the remaining budget falls below the reserve.
	ASAP
)

func (m Mode) String() string {
	if m == ASAP {
		return "asap"
	}
	return "even"
}

// Billing is the event a campaign pays for.
type Billing uint8

// Billing events.
const (
	// BillImpression charges the token's price on each impression.
	BillImpression Billing = iota
	// BillClick charges the campaign's bid on each click (CPC).
	BillClick
)

func (b Billing) String() string {
	if b == BillClick {
		return "click"
	}
	return "impression"
}

// State is where a campaign stands against its budget.
type State uint8

// States, as adtool pacing and the metrics name them.
const (
	NoBudget  State = iota // no daily or lifetime budget: always served
	Pacing                 // serving, at the planned rate or below it
	Capped                 // held back: what is left is reserved for spend already committed
	Exhausted              // the counted spend reached the budget
	Unknown                // no fleet totals yet (a restarted edge) or the records are unreadable: not served
	NumStates
)

var stateNames = [NumStates]string{"no_budget", "pacing", "capped", "exhausted", "unknown"}

func (s State) String() string {
	if s < NumStates {
		return stateNames[s]
	}
	return "invalid"
}

// Params tune the controller; zero fields take the defaults. All durations
// are in the clock the controller is fed (a simulation compresses them).
type Params struct {
	// Tick is how often Update runs (default 1 s).
	Tick time.Duration
	// StoreDelay is how old the fleet's totals are when they arrive: the
	// other edges' flush interval plus the store's round trip (default
	// 1 s: every edge flushes every second).
	StoreDelay time.Duration
	// ImpLag covers most of the delay between serving an ad and counting
	// its billing event (default 60 s); the served value of that window is
	// reserved as committed.
	ImpLag time.Duration
	// HalfLife smooths the measured serve rate (default 30 s).
	HalfLife time.Duration
	// StaleAfter: fleet totals older than this make an edge fall back to
	// its own spend against budget / ExpectedEdges (default 5 s).
	StaleAfter time.Duration
	// ExpectedEdges is the fleet size for the fallback share (default 1).
	ExpectedEdges int
	// Track is the horizon over which even pacing makes up a gap to its
	// plan (default 10 min): a spike the curve does not know, or a stretch
	// paced on own spend, is corrected within the hour instead of being
	// spread over the rest of the day.
	Track time.Duration
	// Probe is the serve probability while a campaign's demand is still
	// unmeasured (default 0.1).
	Probe float64
}

func (p *Params) defaults() {
	if p.Tick <= 0 {
		p.Tick = time.Second
	}
	if p.StoreDelay <= 0 {
		p.StoreDelay = time.Second
	}
	if p.ImpLag <= 0 {
		p.ImpLag = 60 * time.Second
	}
	if p.HalfLife <= 0 {
		p.HalfLife = 30 * time.Second
	}
	if p.StaleAfter <= 0 {
		p.StaleAfter = 5 * time.Second
	}
	if p.ExpectedEdges <= 0 {
		p.ExpectedEdges = 1
	}
	if p.Track <= 0 {
		p.Track = 10 * time.Minute
	}
	if p.Probe <= 0 || p.Probe > 1 {
		p.Probe = 0.1
	}
}

// Budget is one campaign's limits, from the snapshot.
type Budget struct {
	Daily    int64 // micros per day; 0 = no daily limit
	Lifetime int64 // micros over the campaign's life; 0 = no lifetime limit
	Mode     Mode
	Billing  Billing
	Loc      *time.Location // day boundary; nil = UTC
	End      int64          // unix seconds the campaign stops (spreads a lifetime budget); 0 = none
	// Unit is a typical billed amount (micros per billing event): the
	// granularity the reserve keeps against the randomness of what is
	// still to be counted.
	Unit int64
}

// Limited reports whether the campaign has any budget to pace.
func (b *Budget) Limited() bool { return b.Daily > 0 || b.Lifetime > 0 }

// Obs is what one edge knows about one campaign at one tick.
type Obs struct {
	Now time.Time
	// FleetAt is when the fleet totals were read (zero: never, this day).
	FleetAt time.Time
	// FleetOK is false when the records could not be read or were not
	// counters (missing, negative, wrong type): unknown, never zero.
	FleetOK bool
	// Fleet totals as read, this edge's flushed spend included.
	FleetDay, FleetServed, FleetLife int64
	// This edge's own totals today (flushed or not) and the part of them
	// not yet in the fleet totals.
	OwnDay, OwnServed             int64
	UnflushedDay, UnflushedServed int64
}

// Decision is one tick's answer for one campaign.
type Decision struct {
	P        float64 // serve probability in [0, 1]
	State    State
	Fallback bool  // paced on this edge's own spend (store stale or unreadable)
	Spent    int64 // the spend today the decision used (fleet estimate, or own in fallback)
	Planned  int64 // what the plan allows by now (even: along the curve; asap: the budget)
	Budget   int64 // today's allowance (daily, or what the lifetime budget leaves for today)
	Reserve  int64 // committed but not yet counted
}

const ringLen = 128

// Controller paces one campaign on one edge. It is not safe for
// concurrent use; the Service calls Update from one goroutine.
type Controller struct {
	par    Params
	budget Budget
	curve  *Curve

	dayKey uint32
	plan   dayPlan

	// history of the (estimated) fleet served value, one entry per tick
	ring   [ringLen]int64
	ringN  int // entries filled this day
	ringAt int

	lastAt         time.Time
	lastServed     float64 // served value at lastAt (the view in use)
	lastOwnServed  float64
	servedRate     float64 // fleet view, value per second, smoothed
	ownRate        float64 // this edge's, smoothed
	pBar, ownPBar  float64 // the probabilities that produced those rates, smoothed alike
	fleetW, ownW   float64 // the smoothing's total weight so far (bias correction)
	demand, ownDem float64 // served value per second at p = 1
	ticks          int
	p              float64
	hadGood        bool // a fresh fleet read this day
	goodSpent      int64
	goodServed     int64
	estN           int // ring entries estimated in fallback (rebased at recovery)
	settle         int // ticks after a recovery without a fleet rate (the others still flushing)
	goodReserve    int64
	goodOwnDay     int64
	goodOwnServed  int64
	fallbackAllow  int64
	fbFrac         float64 // the plan's fraction of the day when fallbackAllow was set
	inFallback     bool
	fire           float64 // billed share of served value, last measured
}

// NewController paces b along curve (nil = flat).
func NewController(b Budget, curve *Curve, par Params) *Controller {
	par.defaults()
	if curve == nil {
		curve = &Curve{}
	}
	return &Controller{par: par, budget: b, curve: curve, p: par.Probe, fire: 1}
}

// SetBudget replaces the campaign's limits (a new snapshot) and keeps what
// was measured.
func (c *Controller) SetBudget(b Budget) {
	if b.Loc.String() != c.budget.Loc.String() {
		c.dayKey = 0 // a new day boundary: start the day over
	}
	c.budget = b
}

// Budget returns the campaign's limits.
func (c *Controller) Budget() Budget { return c.budget }

// P is the last probability Update returned.
func (c *Controller) P() float64 { return c.p }

// Update computes the serve probability from one tick's observation.
func (c *Controller) Update(o Obs) Decision {
	b := &c.budget
	if !b.Limited() {
		c.p = 1
		return Decision{P: 1, State: NoBudget}
	}
	now := o.Now
	if sec := now.Unix(); c.dayKey == 0 || sec < c.plan.start || sec >= c.plan.end {
		start, end, key := DayBounds(b.Loc, now)
		c.newDay(key, start, end, o)
	}
	dt := now.Sub(c.lastAt).Seconds()
	if c.lastAt.IsZero() || dt <= 0 {
		dt = 0
	}
	fresh := o.FleetOK && !o.FleetAt.IsZero() && now.Sub(o.FleetAt) <= c.par.StaleAfter

	// The fleet view: totals as read plus what this edge has not flushed.
	spent := o.FleetDay + o.UnflushedDay
	served := o.FleetServed + o.UnflushedServed
	life := o.FleetLife + o.UnflushedDay

	// Rates: the own one always (the fallback needs it ready), the fleet's
	// only while its totals are fresh.
	alpha := 1.0
	if dt > 0 {
		alpha = 1 - math.Exp2(-dt/c.par.HalfLife.Seconds())
	}
	if dt > 0 {
		own := float64(o.OwnServed)
		if r := (own - c.lastOwnServed) / dt; r >= 0 {
			c.ownRate += alpha * (r - c.ownRate)
			c.ownPBar += alpha * (c.p - c.ownPBar)
			c.ownW += alpha * (1 - c.ownW)
		}
	}
	c.lastOwnServed = float64(o.OwnServed)

	if fresh {
		if c.inFallback {
			c.inFallback = false
			c.lastServed = float64(served) // no rate across the gap
			dt = 0
			c.rebase(served - c.estServed(o))
			// The other edges flush what they held during the outage within
			// one flush interval: that jump is not a serve rate.
			c.settle = int((c.par.StoreDelay+c.par.Tick-1)/c.par.Tick) + 1
		}
		if c.settle > 0 {
			c.settle--
			dt = 0
		}
		if dt > 0 {
			if r := (float64(served) - c.lastServed) / dt; r >= 0 {
				c.servedRate += alpha * (r - c.servedRate)
				c.pBar += alpha * (c.p - c.pBar)
				c.fleetW += alpha * (1 - c.fleetW)
			}
		}
		c.lastServed = float64(served)
		c.push(served)
	}
	c.lastAt = now
	c.ticks++
	warm := c.ticks > int((c.par.StoreDelay+2*c.par.Tick)/c.par.Tick)
	// The smoothed rate over the smoothed probability is the demand; both
	// start at zero and grow alike, so the ratio needs no bias correction,
	// but the probability's floor does.
	if warm && c.pBar >= 0.02*c.fleetW && c.pBar > 0 {
		c.demand = c.servedRate / c.pBar
	}
	if warm && c.ownPBar >= 0.02*c.ownW && c.ownPBar > 0 {
		c.ownDem = c.ownRate / c.ownPBar
	}

	var d Decision
	switch {
	case fresh:
		allow := c.allowance(spent, life, now)
		reserve := c.reserve(spent, served, now.Sub(o.FleetAt))
		d = c.decide(allow, spent, reserve, 0, c.demand*c.fire, warm, now)
		c.hadGood = true
		c.goodSpent, c.goodReserve, c.goodServed = spent, reserve, served
		c.goodOwnDay, c.goodOwnServed = o.OwnDay, o.OwnServed
		c.fallbackAllow = -1
	case !c.hadGood:
		// A restarted edge (or a new day) without fleet totals: the fleet may
		// have spent it all already. Wait for the store.
		c.p = 0
		return Decision{State: Unknown, Fallback: true}
	default:
		// Pace this edge's own spend since the last good read against its
		// share of what was left then: budget / expected edges, never more.
		c.inFallback = true
		if c.fallbackAllow < 0 {
			left := max(0, c.allowance(c.goodSpent, c.goodSpent+(life-spent), now)-c.goodSpent-c.goodReserve)
			c.fallbackAllow = left / int64(c.par.ExpectedEdges)
			c.fbFrac = c.plan.Fraction(now.Add(c.par.ImpLag + c.par.StoreDelay).Unix())
		}
		ownSpent := o.OwnDay - c.goodOwnDay
		ownServed := o.OwnServed - c.goodOwnServed
		// What this edge served since the good read and has not seen
		// counted yet, at the billed share measured while the store was up.
		reserve := max(0, int64(c.fire*float64(ownServed))-ownSpent)
		d = c.decide(c.fallbackAllow, ownSpent, reserve, c.fbFrac, c.ownDem*c.fire, warm, now)
		d.Fallback = true
		// Keep the served history going (the reserve's lag reads it when
		// the store is back): the fleet as this edge's share of it.
		c.push(c.estServed(o))
		c.estN++
	}
	c.p = d.P
	return d
}

func (c *Controller) newDay(key uint32, start, end int64, o Obs) {
	c.dayKey = key
	c.plan = newDayPlan(c.curve, start, end)
	c.ringN, c.ringAt, c.estN = 0, 0, 0
	c.hadGood = false
	c.inFallback = false
	c.fallbackAllow = -1
	c.lastServed = float64(o.FleetServed + o.UnflushedServed)
	c.lastOwnServed = float64(o.OwnServed)
}

// replan recomputes today's plan from the curve (it changed).
func (c *Controller) replan() {
	if c.dayKey != 0 {
		c.plan = newDayPlan(c.curve, c.plan.start, c.plan.end)
	}
}

// estServed estimates the fleet's served value today while the store is
// away: the last good read plus this edge's served value since, times the
// expected fleet size.
func (c *Controller) estServed(o Obs) int64 {
	return c.goodServed + (o.OwnServed-c.goodOwnServed)*int64(c.par.ExpectedEdges)
}

// rebase moves the served history estimated during a fallback by off (the
// true fleet total minus the estimate, known once the store is back), so
// the reserve's lagged value is the true total minus the fleet's served
// value since then as estimated, not everything served during the outage.
func (c *Controller) rebase(off int64) {
	n := min(c.estN, c.ringN)
	for k := 1; k <= n; k++ {
		c.ring[(c.ringAt-k+ringLen)%ringLen] += off
	}
	c.estN = 0
}

func (c *Controller) push(served int64) {
	c.ring[c.ringAt] = served
	c.ringAt = (c.ringAt + 1) % ringLen
	if c.ringN < ringLen {
		c.ringN++
	}
}

// lagged is the served value ImpLag ago (0 before the day's history
// reaches back that far: all of today's served value counts as committed).
func (c *Controller) lagged() (int64, bool) {
	n := int((c.par.ImpLag + c.par.Tick - 1) / c.par.Tick)
	if n >= ringLen {
		n = ringLen - 1
	}
	if c.ringN <= n {
		return 0, false
	}
	return c.ring[(c.ringAt-1-n+2*ringLen)%ringLen], true
}

// reserve is the spend committed but not yet counted: the served value of
// the last ImpLag times the share of served value that gets billed, plus
// what other edges served since their last flush and since the totals
// were read (age).
func (c *Controller) reserve(spent, served int64, age time.Duration) int64 {
	lag, ok := c.lagged()
	// Until today's history shows the billed share, the last one measured
	// (yesterday's, carried over midnight); 1 on a fresh edge.
	fire := c.fire
	if ok && lag > 20*max(c.budget.Unit, 1) {
		fire = min(1.2, max(0.05, float64(spent)/float64(lag)))
	}
	c.fire = fire
	r := fire * (float64(served-lag) + c.servedRate*(c.par.StoreDelay+max(0, age)).Seconds())
	return int64(max(0, r))
}

// allowance is today's budget: the daily one, or what the lifetime budget
// leaves for today (all of it for asap, today's share of the days left for
// even), whichever is smaller.
func (c *Controller) allowance(spent, life int64, now time.Time) int64 {
	b := &c.budget
	allow := int64(math.MaxInt64)
	if b.Daily > 0 {
		allow = b.Daily
	}
	if b.Lifetime > 0 {
		left := max(0, b.Lifetime-life) // still to spend, today included
		share := left
		if b.Mode == Even && b.End > c.plan.end {
			days := 1 + (b.End-c.plan.end+86399)/86400
			share = left / days
		}
		allow = min(allow, spent+share)
	}
	return allow
}

// decide turns an allowance, the spend and reserve against it and the
// demand (billed value per second at p = 1) into a probability.
func (c *Controller) decide(allow, spent, reserve int64, from float64, demand float64, warm bool, now time.Time) Decision {
	d := Decision{Budget: allow, Spent: spent, Reserve: reserve}
	t := float64(now.UnixNano()) / 1e9
	frac := c.plan.Fraction(int64(t))
	if c.budget.Mode == Even {
		d.Planned = int64(float64(allow) * frac)
	} else {
		d.Planned = allow
	}
	if spent >= allow {
		d.State = Exhausted
		return d
	}
	unit := float64(max(c.budget.Unit, 1))
	rem := float64(allow - spent - reserve)
	// Keep back the noise of what is still to be counted (a Poisson count of
	// events of about one unit each) and one unit of granularity.
	margin := 2*math.Sqrt(float64(reserve)*unit) + unit
	if rem-margin <= 0 {
		d.State = Capped
		return d
	}
	if !warm || demand <= 0 {
		d.P = c.par.Probe
		d.State = Pacing
		return d
	}
	tick := c.par.Tick.Seconds()
	// Served value enters the reserve as soon as the store reports it, so
	// a decision's effect is seen a tick plus the store delay later; twice
	// that halves the gap per horizon instead of overshooting it.
	horizon := 2 * (tick + c.par.StoreDelay.Seconds())
	// asap: serve all demand while what is left covers it until the
	// feedback arrives; near the end, just what is left over that horizon.
	p := (rem - margin) / (demand * horizon)
	if c.budget.Mode == Even {
		// even: of what is left, the curve's share of the next tick among
		// what remains of the day.
		// The plan is followed lead ahead: spent + reserve runs ahead of
		// the counted spend by what the reserve holds (about ImpLag plus
		// the store's delay of serving), so planning that far ahead makes
		// the *counted* spend, the billed one, follow the curve.
		lead := (c.par.ImpLag + c.par.StoreDelay).Seconds()
		frac := c.plan.Fraction(int64(t + lead))
		next := c.plan.Fraction(int64(t + lead + tick))
		var need float64
		if frac >= 1 || 1-frac < 1e-9 {
			need = rem
		} else {
			share := (next - frac) / (1 - frac)
			// allow is for the day from the plan fraction f0 on (0; in a
			// fallback, from the last good read).
			f0 := min(from, frac)
			plan := float64(allow) * (next - frac) / (1 - f0)
			gap := rem - float64(allow)*(1-frac)/(1-f0) // behind the plan (> 0) or ahead
			// Correct the gap over the rest of the day or over Track,
			// whichever is sooner, but by at most the plan's own rate (a
			// campaign far behind, say started at noon, spends at most
			// twice the plan, then spreads the rest over the day).
			corr := gap * share
			tr := min(plan, max(-plan, gap*tick/c.par.Track.Seconds()))
			if gap > 0 {
				corr = max(corr, tr)
			} else {
				corr = min(corr, tr)
			}
			need = max(0, plan+corr)
		}
		p = min(p, need/(demand*tick))
	}
	d.P = min(1, max(0, p))
	d.State = Pacing
	if d.P == 0 {
		d.State = Capped
	}
	return d
}
