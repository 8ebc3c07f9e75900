package pacing

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// always is the threshold that serves without a draw.
const always = 1 << 32

// Spec is one campaign as the snapshot gives it.
type Spec struct {
	ID     string
	Budget Budget
	Bid    int64 // micros: what a click costs a CPC campaign
}

// Table is the serve probabilities for one snapshot's campaigns, indexed
// like the snapshot's campaign records. The hot path reads it without
// locks: one atomic load per candidate.
type Table struct {
	key  any // the snapshot (its reader) the indexes refer to
	thr  []atomic.Uint64
	ent  []*entry // nil for campaigns without a budget
	byID map[string]*entry
	salt uint64
}

// For reports whether t's indexes are those of the snapshot key.
func (t *Table) For(key any) bool { return t != nil && t.key == key }

// Allow decides whether campaign i may serve, with one atomic load and
// one draw derived from seed (the request's) and i.
func (t *Table) Allow(i int, seed uint64) bool {
	if uint(i) >= uint(len(t.thr)) {
		return false
	}
	th := t.thr[i].Load()
	if th >= always {
		return true
	}
	return mix(seed^t.salt^uint64(i)*0x9e3779b97f4a7c15)&(always-1) < th
}

// Served records that campaign i won a request at price (micros): the
// value committed until its billing event is counted.
func (t *Table) Served(i int, price int64) {
	if uint(i) < uint(len(t.ent)) {
		if e := t.ent[i]; e != nil {
			e.pendServed.Add(price)
			e.ownServed.Add(price)
		}
	}
}

// mix is splitmix64's finaliser: a well-spread draw from a counter.
func mix(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// entry is one budgeted campaign on this edge; it outlives snapshots
// (keyed by campaign id) so measured rates and unflushed spend carry over.
type entry struct {
	spec   Spec
	ctl    *Controller
	day    uint32 // the day the own totals are for
	dayEnd int64  // unix seconds it ends

	pendSpend, pendServed atomic.Int64 // not yet flushed
	ownDay, ownServed     atomic.Int64 // this edge's totals today

	// Owned by the ticking goroutine.
	fleet   Totals
	fleetAt time.Time
	// Last decision, guarded by Service.mu for Status.
	last Decision
}

// Config configures a Service.
type Config struct {
	Store  Store
	Params Params
	Curve  Curve
	// Timeout bounds one flush-and-read call (default 500 ms).
	Timeout time.Duration
	// Salt decorrelates this edge's draws from other edges'.
	Salt uint64
}

// Service is one edge's pacing: it flushes its spend to the store and
// reads the fleet's totals back every tick, runs a Controller per
// budgeted campaign, and publishes a Table.
type Service struct {
	cfg Config
	tab atomic.Pointer[Table]

	mu      sync.Mutex // entries, status
	entries map[string]*entry
	active  []*entry // budgeted campaigns of the current table
	idx     []int    // their indexes in it

	deltas []Delta
	totals []Totals

	stats  Stats
	health atomic.Pointer[string] // "" = ok

	newCurve atomic.Pointer[Curve] // set by SetCurve, installed by the next Tick
}

// Stats are the counters the metrics export.
type Stats struct {
	Ticks, StoreErrors, BadRecords, UnknownCampaign atomic.Uint64 // Ticks: completed ticks
	LastGood                                        atomic.Int64  // unix nanos of the last good flush
	States                                          [NumStates]atomic.Int64
	Fallback                                        atomic.Int64 // campaigns paced on own spend
	OverspendMicros                                 atomic.Int64 // sum over campaigns of spend beyond today's budget
	CurveRequests                                   atomic.Int64 // requests the warehouse curve in use sums (0 = the configured curve)
}

// NewService returns a Service; call SetCampaigns before the first Tick.
func NewService(cfg Config) *Service {
	cfg.Params.defaults()
	if cfg.Timeout <= 0 {
		cfg.Timeout = 500 * time.Millisecond
	}
	s := &Service{cfg: cfg, entries: map[string]*entry{}}
	s.tab.Store(&Table{byID: map[string]*entry{}})
	return s
}

// Table returns the current table; its For says whether it belongs to the
// snapshot at hand.
func (s *Service) Table() *Table { return s.tab.Load() }

// Stats returns the service's counters.
func (s *Service) Stats() *Stats { return &s.stats }

// SetCampaigns installs the campaigns of a new snapshot (key identifies
// it; specs are in its campaign order). Budgeted campaigns start held
// (probability 0) until the next Tick has read the fleet's totals; the
// others are served at once.
func (s *Service) SetCampaigns(key any, specs []Spec) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := &Table{key: key, thr: make([]atomic.Uint64, len(specs)), ent: make([]*entry, len(specs)),
		byID: make(map[string]*entry, len(specs)), salt: mix(s.cfg.Salt)}
	active := make([]*entry, 0, len(specs))
	idx := make([]int, 0, len(specs))
	for i, sp := range specs {
		if !sp.Budget.Limited() {
			t.thr[i].Store(always)
			continue
		}
		e := s.entries[sp.ID]
		if e == nil {
			e = &entry{spec: sp, ctl: NewController(sp.Budget, &s.cfg.Curve, s.cfg.Params)}
			s.entries[sp.ID] = e
		} else {
			e.spec = sp
			e.ctl.SetBudget(sp.Budget)
			t.thr[i].Store(threshold(e.ctl.P()))
		}
		t.ent[i] = e
		t.byID[sp.ID] = e
		active = append(active, e)
		idx = append(idx, i)
	}
	s.active, s.idx = active, idx
	s.tab.Store(t)
}

func threshold(p float64) uint64 {
	if p >= 1 {
		return always
	}
	if p <= 0 || math.IsNaN(p) {
		return 0
	}
	return uint64(p * always)
}

// Counted records one first-seen billing event for campaign id: an
// impression at price (micros) for impression-billed campaigns, a click
// at the bid for CPC ones. The other event kind is ignored.
func (s *Service) Counted(id []byte, click bool, price int64) {
	e := s.tab.Load().byID[string(id)]
	if e == nil {
		// Not budgeted in the serving snapshot (or not in it at all).
		return
	}
	amt := price
	if e.spec.Budget.Billing == BillClick {
		if !click {
			return
		}
		amt = e.spec.Bid
	} else if click {
		return
	}
	e.pendSpend.Add(amt)
	e.ownDay.Add(amt)
}

// Run ticks every Params.Tick until ctx ends, then flushes once more (so
// a stopping edge's spend reaches the store). sync, if set, runs first and
// then every 50 ms: it installs a new snapshot's campaigns
// (SetCampaigns), after which the fleet's totals are read at once, so a
// budgeted campaign of a new snapshot waits one round trip, not a tick.
func (s *Service) Run(ctx context.Context, sync func()) {
	t := time.NewTicker(s.cfg.Params.Tick)
	defer t.Stop()
	check := time.NewTicker(50 * time.Millisecond)
	defer check.Stop()
	if sync != nil {
		sync()
	}
	s.Tick(ctx, time.Now())
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
			s.Tick(fctx, time.Now())
			cancel()
			return
		case <-t.C:
			s.Tick(ctx, time.Now())
		case <-check.C:
			if sync == nil {
				continue
			}
			before := s.tab.Load()
			sync()
			if s.tab.Load() != before {
				s.Tick(ctx, time.Now())
			}
		}
	}
}

// SetCurve replaces the traffic curve even pacing plans along (the
// warehouse's shape, read in the background). The next Tick installs it
// and re-plans today for every campaign: edges that read the same shape
// plan alike from then on; the gap to the new plan is made up like any
// other (Params.Track).
func (s *Service) SetCurve(c Curve) { s.newCurve.Store(&c) }

// Curve is the traffic curve in use (after the next Tick, the last one
// set).
func (s *Service) Curve() Curve {
	if c := s.newCurve.Load(); c != nil {
		return *c
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg.Curve
}

// Tick flushes this edge's spend, reads the fleet's totals in the same
// call, runs every campaign's controller and publishes the probabilities.
func (s *Service) Tick(ctx context.Context, now time.Time) {
	// Counted when the tick is over, so a reader that sees Ticks move also
	// sees the states, thresholds and health that tick published.
	defer s.stats.Ticks.Add(1)
	s.mu.Lock()
	active, idx, tab := s.active, s.idx, s.tab.Load()
	if c := s.newCurve.Swap(nil); c != nil {
		// The controllers point at cfg.Curve; only this goroutine reads it.
		s.cfg.Curve = *c
		for _, e := range s.entries {
			e.ctl.replan()
		}
	}
	s.mu.Unlock()

	s.deltas = s.deltas[:0]
	for _, e := range active {
		day := e.day
		if now.Unix() >= e.dayEnd || day == 0 {
			_, e.dayEnd, day = DayBounds(e.spec.Budget.Loc, now)
		}
		if day != e.day {
			// A new day: this edge's totals restart; what is still unflushed
			// goes to the new day's record (docs/PACING.md).
			e.day = day
			e.ownDay.Store(0)
			e.ownServed.Store(0)
			e.fleet, e.fleetAt = Totals{}, time.Time{}
		}
		s.deltas = append(s.deltas, Delta{Campaign: e.spec.ID, Day: day,
			Spend: e.pendSpend.Swap(0), Served: e.pendServed.Swap(0), P: e.ctl.P(), At: now.Unix()})
	}
	if cap(s.totals) < len(s.deltas) {
		s.totals = make([]Totals, len(s.deltas))
	}
	out := s.totals[:len(s.deltas)]
	clear(out)
	var err error
	if s.cfg.Store == nil {
		err = errors.New("no spend store")
	} else if len(s.deltas) > 0 {
		cctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
		err = s.cfg.Store.Apply(cctx, s.deltas, out)
		cancel()
	}
	if err != nil {
		s.stats.StoreErrors.Add(1)
	}
	var states [NumStates]int64
	var fallback, over int64
	bad := 0
	for i, e := range active {
		d := s.deltas[i]
		tot := out[i]
		switch {
		case err != nil || !tot.Applied:
			// Not added: keep it for the next flush. (An add the store may
			// have applied before failing is added again: spend is
			// over-counted, never lost.)
			e.pendSpend.Add(d.Spend)
			e.pendServed.Add(d.Served)
			if err == nil {
				bad++
			}
		case tot.Err != nil:
			bad++
		default:
			e.fleet, e.fleetAt = tot, now
		}
		fleetOK := err == nil && tot.Applied && tot.Err == nil
		obs := Obs{Now: now, FleetAt: e.fleetAt, FleetOK: fleetOK,
			FleetDay: e.fleet.Day, FleetServed: e.fleet.Served, FleetLife: e.fleet.Life,
			OwnDay: e.ownDay.Load(), OwnServed: e.ownServed.Load(),
			UnflushedDay: e.pendSpend.Load(), UnflushedServed: e.pendServed.Load()}
		if !fleetOK {
			// Between good reads the fleet totals keep their last value; the
			// controller sees them stale and falls back.
			obs.FleetOK = !e.fleetAt.IsZero()
		}
		dec := e.ctl.Update(obs)
		s.mu.Lock()
		e.last = dec
		s.mu.Unlock()
		states[dec.State]++
		if dec.Fallback {
			fallback++
		}
		if !dec.Fallback && dec.Budget < math.MaxInt64 && dec.Spent > dec.Budget {
			over += dec.Spent - dec.Budget
		}
		tab.thr[idx[i]].Store(threshold(dec.P))
	}
	if bad > 0 {
		s.stats.BadRecords.Add(uint64(bad))
	}
	for i := range states {
		s.stats.States[i].Store(states[i])
	}
	s.stats.States[NoBudget].Store(int64(len(tab.thr) - len(active)))
	s.stats.Fallback.Store(fallback)
	s.stats.OverspendMicros.Store(over)
	switch {
	case err != nil:
		msg := fmt.Sprintf("spend store %s: %v", s.storeName(), err)
		s.health.Store(&msg)
	case bad > 0:
		msg := fmt.Sprintf("spend store %s: %d campaign records unreadable (paced on own spend)", s.storeName(), bad)
		s.health.Store(&msg)
	default:
		s.stats.LastGood.Store(now.UnixNano())
		s.health.Store(nil)
	}
}

func (s *Service) storeName() string {
	if s.cfg.Store == nil {
		return "none"
	}
	return s.cfg.Store.Name()
}

// Problem is why pacing is degraded ("" when the last flush was good).
func (s *Service) Problem() string {
	if p := s.health.Load(); p != nil {
		return *p
	}
	return ""
}

// Status is one campaign's pacing as of the last tick.
type Status struct {
	ID string
	Decision
	Mode Mode
}

// Status lists the budgeted campaigns' last decisions.
func (s *Service) Status() []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Status, 0, len(s.active))
	for _, e := range s.active {
		out = append(out, Status{ID: e.spec.ID, Decision: e.last, Mode: e.spec.Budget.Mode})
	}
	return out
}

// Force sets campaign i's probability until the next Tick: for tests and
// benchmarks of the code that reads the table.
func (t *Table) Force(i int, p float64) {
	if uint(i) < uint(len(t.thr)) {
		t.thr[i].Store(threshold(p))
	}
}

// Report is one campaign's pacing as adtool pacing shows it, from the
// fleet's totals alone.
type Report struct {
	ID      string  `json:"id"`
	Mode    string  `json:"mode"`
	Billing string  `json:"billing"`
	Budget  int64   `json:"budget_micros"` // today's allowance (0 = no budget)
	Spent   int64   `json:"spent_micros"`  // fleet spend counted today
	Planned int64   `json:"planned_micros"`
	P       float64 `json:"serve_probability"` // as an edge last published it (-1 = none yet)
	PAge    int64   `json:"probability_age_seconds"`
	State   string  `json:"state"`
	Error   string  `json:"error,omitempty"`
}

// Describe reports sp from its totals t (read at now).
func Describe(sp Spec, t Totals, now time.Time, curve *Curve) Report {
	b := sp.Budget
	r := Report{ID: sp.ID, Mode: b.Mode.String(), Billing: b.Billing.String(), Spent: t.Day, P: -1}
	if !b.Limited() {
		r.State, r.P = NoBudget.String(), 1
		return r
	}
	if t.Err != nil && !errors.Is(t.Err, ErrNoRecord) {
		r.State, r.Error = Unknown.String(), t.Err.Error()
		return r
	}
	c := NewController(b, curve, Params{})
	start, end, _ := DayBounds(b.Loc, now)
	c.plan = newDayPlan(c.curve, start, end)
	r.Budget = c.allowance(t.Day, t.Life, now)
	frac := c.plan.Fraction(now.Unix())
	if b.Mode == Even {
		r.Planned = int64(float64(r.Budget) * frac)
	} else {
		r.Planned = r.Budget
	}
	if t.PAt > 0 {
		r.P, r.PAge = t.P, max(0, now.Unix()-t.PAt)
	}
	switch {
	case t.Day >= r.Budget:
		r.State = Exhausted.String()
	case r.P == 0:
		r.State = Capped.String()
	default:
		r.State = Pacing.String()
	}
	return r
}
