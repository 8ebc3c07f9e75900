package pacing

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"sync"
	"time"
)

// SimConfig describes a simulated day: many edges, each a real Service
// (flush, fleet read, controllers, Table.Allow on every opportunity)
// against one Store, on a simulated clock. It is deterministic for a given
// seed with the Local store.
type SimConfig struct {
	Edges     int
	Campaigns int
	Seed      uint64
	Mode      Mode // every campaign's pacing mode
	// Tick is the simulated controller and flush period (default 10 s:
	// 8640 ticks a day).
	Tick time.Duration
	// Curve is the diurnal shape both the traffic and the plan follow;
	// the spike is traffic the plan does not know about.
	Curve       Curve
	SpikeHour   float64       // hour of day the spike starts (0 = none)
	SpikeLength time.Duration // default 1 h
	SpikeFactor float64       // traffic multiplier during the spike (default 3)
	// Demand scales every campaign's demand (opportunities per day at p = 1).
	Demand float64
	// FireRate is the share of served ads whose impression fires (default
	// 0.85); ImpDelay their mean delay (default 30 s, exponential).
	FireRate float64
	ImpDelay time.Duration
	// OutageAt and OutageFor: the store fails every call in that window
	// of the day (0 = no outage).
	OutageAt, OutageFor time.Duration
	// Off serves without pacing (every campaign always allowed): the
	// baseline the overspend is compared with.
	Off bool
	// Store is the fleet's store; nil = a fresh Local. With another store
	// the campaign ids are prefixed with RunID so runs do not mix.
	Store Store `json:"-"`
	RunID string
	// Timeout bounds each edge's flush (default the Service's 500 ms).
	Timeout time.Duration
	// Parallel flushes the edges concurrently each tick, as a fleet does
	// (pacing-sim against Aerospike: a tick with the store away then waits
	// one timeout, not one per edge). Off, the edges flush in turn, which
	// keeps a run with the Local store deterministic.
	Parallel bool
	// OnTick, if set, runs before every tick (pacing-sim: wall-clock pace,
	// killing the store).
	OnTick func(tick int, simNow time.Time) `json:"-"`
	// Fleet, if set, is where the edges run (adtool pacing-sim: one
	// process per edge, each a SimEdge with its own store client); Store
	// is then only read after the day. Nil: Edges SimEdges in process.
	Fleet SimFleet `json:"-"`
}

// SimCampaign is one campaign's outcome.
type SimCampaign struct {
	ID           string  `json:"id"`
	Mode         string  `json:"mode"`
	Billing      string  `json:"billing"`
	Budget       int64   `json:"budget_micros"`
	DemandValue  int64   `json:"demand_value_micros"` // what traffic could have billed at p = 1, without the spike
	Spent        int64   `json:"spent_micros"`
	OverPct      float64 `json:"overspend_pct"`
	Reachable    bool    `json:"reachable"`
	WorstHourPct float64 `json:"worst_hour_error_pct"`
	hourly       [24]int64
	plan         [24]float64
}

// SimResult is the day's figures (docs/PACING.md names the targets).
type SimResult struct {
	Mode               string  `json:"mode"`
	Edges              int     `json:"edges"`
	Campaigns          int     `json:"campaigns"`
	Ticks              int     `json:"ticks"`
	Opportunities      int64   `json:"opportunities"`
	Served             int64   `json:"served"`
	MaxOverspendPct    float64 `json:"max_overspend_pct"`
	TotalOverspendPct  float64 `json:"total_overspend_pct"`
	UnderdeliveryPct   float64 `json:"underdelivery_pct"`
	HourlyPaceErrorPct float64 `json:"hourly_pace_error_pct"`
	MedianCampaignHour float64 `json:"median_campaign_worst_hour_pct"`
	StoreErrors        uint64  `json:"store_errors"`
	FallbackTicks      int64   `json:"fallback_campaign_ticks"`
	// StoreSpend is the store's day totals summed after the day,
	// CountedSpend what the edges counted (and flushed): more in the store
	// is adds counted twice (a flush that failed on the edge but reached
	// the store is sent again), less is increments lost.
	StoreSpend   int64         `json:"store_spend_micros"`
	CountedSpend int64         `json:"counted_spend_micros"`
	Hours        [24][2]int64  `json:"hours"` // planned, actual (even, reachable campaigns)
	PerCampaign  []SimCampaign `json:"per_campaign,omitempty"`
}

// SimDay is the simulated day (UTC): Simulate measures it, after the warm-up.
var SimDay = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

type simEvent struct {
	camp  int32
	click bool
}

// simCamp is one simulated campaign: its spec and its traffic.
type simCamp struct {
	spec    Spec
	price   int64 // per impression
	ctr     float64
	perTick float64 // opportunities per second at curve weight 1, whole fleet
}

// simDefaults fills cfg's zero fields.
func simDefaults(cfg *SimConfig) error {
	if cfg.Edges <= 0 || cfg.Campaigns <= 0 {
		return errors.New("pacing sim: edges and campaigns must be > 0")
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 10 * time.Second
	}
	if cfg.SpikeLength <= 0 {
		cfg.SpikeLength = time.Hour
	}
	if cfg.SpikeFactor <= 0 {
		cfg.SpikeFactor = 3
	}
	if cfg.Demand <= 0 {
		cfg.Demand = 1
	}
	if cfg.FireRate <= 0 || cfg.FireRate > 1 {
		cfg.FireRate = 0.85
	}
	if cfg.ImpDelay <= 0 {
		cfg.ImpDelay = 30 * time.Second
	}
	return nil
}

// simParams are the controller's parameters for the simulated clock.
func simParams(cfg *SimConfig) Params {
	return Params{Tick: cfg.Tick, StoreDelay: cfg.Tick, ImpLag: 3 * cfg.ImpDelay,
		HalfLife: 3 * cfg.Tick, StaleAfter: 3 * cfg.Tick, ExpectedEdges: cfg.Edges}
}

// simCampaigns builds the day's campaigns from the seed: demand
// log-uniform over two decades; budgets from a few hundred events to more
// than the traffic can fill. Every edge (and every edge process) builds
// the same ones from the same SimConfig.
func simCampaigns(cfg *SimConfig) ([]simCamp, []SimCampaign) {
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5eed))
	camps := make([]simCamp, cfg.Campaigns)
	out := make([]SimCampaign, cfg.Campaigns)
	plan := newDayPlan(&cfg.Curve, SimDay.Unix(), SimDay.Unix()+86400)
	for i := range camps {
		demand := cfg.Demand * 2000 * math.Pow(100, rng.Float64()) // opportunities per day
		price := int64(500 * math.Pow(10, rng.Float64()))
		c := simCamp{price: price, perTick: demand / 86400}
		b := Budget{Mode: cfg.Mode, Unit: price}
		bid := int64(0)
		if i%10 == 9 {
			c.ctr = 0.05
			b.Billing = BillClick
			bid = int64(float64(price) / c.ctr)
			b.Unit = bid
		}
		value := demand * cfg.FireRate * float64(price)
		var ratio float64
		switch {
		case i%10 == 0:
			ratio = 0.01 + 0.02*rng.Float64() // very small
		case i%10 >= 7 && i%10 != 9:
			ratio = 1.5 + rng.Float64() // never reached
		default:
			ratio = 0.1 + 0.7*rng.Float64()
		}
		b.Daily = int64(max(ratio*value, 300*float64(b.Unit)))
		id := "sim-" + strconv.Itoa(i)
		if cfg.RunID != "" {
			id = cfg.RunID + "-" + strconv.Itoa(i)
		}
		c.spec = Spec{ID: id, Budget: b, Bid: bid}
		camps[i] = c
		pc := &out[i]
		*pc = SimCampaign{ID: id, Mode: b.Mode.String(), Billing: b.Billing.String(), Budget: b.Daily,
			DemandValue: int64(value), Reachable: float64(b.Daily) <= 0.95*value}
		for h := 0; h < 24; h++ {
			t0 := SimDay.Unix() + int64(h)*3600
			pc.plan[h] = float64(b.Daily) * (plan.Fraction(t0+3600) - plan.Fraction(t0))
		}
	}
	return camps, out
}

// SimEdge is one simulated edge: a real Service (the edge's flush, fleet
// read, controllers and Table.Allow on every opportunity) with its own
// random stream and the billing events its served ads will fire. Simulate
// runs its edges in process; adtool pacing-sim runs each in a process of
// its own with its own store client, driven tick by tick over a pipe.
type SimEdge struct {
	svc   *Service
	rng   *rand.Rand
	wheel map[int][]simEvent
	camps []simCamp
	idb   [][]byte
	edges int
	dt    float64
	fire  float64
	delay float64
	off   bool
}

// NewSimEdge returns edge e (0-based) of cfg's fleet, on cfg.Store (this
// edge's client of the fleet's store; nil = no store).
func NewSimEdge(cfg SimConfig, e int) (*SimEdge, error) {
	if err := simDefaults(&cfg); err != nil {
		return nil, err
	}
	if e < 0 || e >= cfg.Edges {
		return nil, fmt.Errorf("pacing sim: edge %d of %d", e, cfg.Edges)
	}
	camps, _ := simCampaigns(&cfg)
	specs := make([]Spec, len(camps))
	idb := make([][]byte, len(camps))
	for i := range camps {
		specs[i] = camps[i].spec
		idb[i] = []byte(camps[i].spec.ID)
	}
	svc := NewService(Config{Store: cfg.Store, Params: simParams(&cfg), Curve: cfg.Curve, Salt: cfg.Seed*131 + uint64(e), Timeout: cfg.Timeout})
	svc.SetCampaigns("sim", specs)
	return &SimEdge{svc: svc, rng: rand.New(rand.NewPCG(cfg.Seed, uint64(e)+1)), wheel: map[int][]simEvent{},
		camps: camps, idb: idb, edges: cfg.Edges, dt: cfg.Tick.Seconds(), fire: cfg.FireRate,
		delay: cfg.ImpDelay.Seconds(), off: cfg.Off}, nil
}

// Service is the edge's pacing service.
func (ed *SimEdge) Service() *Service { return ed.svc }

// Serve runs tick's traffic on this edge before its flush: it counts the
// billing events due at tick (Service.Counted, adding what each bills to
// counted[campaign]), then draws this edge's share of the opportunities
// at traffic factor (the curve's weight times any spike) and serves those
// the table allows. It returns the opportunities and the ads served.
func (ed *SimEdge) Serve(tick int, factor float64, counted []int64) (opportunities, served int64) {
	for _, ev := range ed.wheel[tick] {
		c := &ed.camps[ev.camp]
		ed.svc.Counted(ed.idb[ev.camp], ev.click, c.price)
		amt := c.price
		if ev.click {
			amt = c.spec.Bid
		}
		counted[ev.camp] += amt
	}
	delete(ed.wheel, tick)
	if factor <= 0 {
		return 0, 0
	}
	tab := ed.svc.Table()
	for i := range ed.camps {
		c := &ed.camps[i]
		n := poisson(ed.rng, c.perTick*factor*ed.dt/float64(ed.edges))
		opportunities += int64(n)
		for k := 0; k < n; k++ {
			if !ed.off && !tab.Allow(i, ed.rng.Uint64()) {
				continue
			}
			served++
			tab.Served(i, c.price)
			if ed.rng.Float64() >= ed.fire {
				continue
			}
			click := false
			if c.spec.Budget.Billing == BillClick {
				if ed.rng.Float64() >= c.ctr {
					continue
				}
				click = true
			}
			delay := ed.rng.ExpFloat64() * ed.delay
			due := tick + 1 + int(delay/ed.dt)
			ed.wheel[due] = append(ed.wheel[due], simEvent{camp: int32(i), click: click})
		}
	}
	return opportunities, served
}

// Flush is the edge's pacing tick at now: flush, fleet read, control.
func (ed *SimEdge) Flush(ctx context.Context, now time.Time) { ed.svc.Tick(ctx, now) }

// SimStep is what a fleet's edges did in one tick.
type SimStep struct {
	Opportunities, Served int64
	Fallback              int64  // campaigns paced on own spend after the tick, summed over edges
	StoreErrors           uint64 // failed flushes so far, summed over edges
}

// SimFleet is a simulated day's edges: Simulate's own in-process ones,
// or adtool pacing-sim's edge processes.
type SimFleet interface {
	// Step runs tick at now on every edge (SimEdge.Serve at factor, then
	// SimEdge.Flush), adding the billed amounts counted to counted.
	Step(ctx context.Context, tick int, now time.Time, factor float64, counted []int64) (SimStep, error)
}

// localFleet is the in-process fleet.
type localFleet struct {
	edges    []*SimEdge
	parallel bool
}

func (f *localFleet) Step(ctx context.Context, tick int, now time.Time, factor float64, counted []int64) (SimStep, error) {
	var st SimStep
	for _, ed := range f.edges {
		o, s := ed.Serve(tick, factor, counted)
		st.Opportunities += o
		st.Served += s
		if !f.parallel {
			ed.Flush(ctx, now)
		}
	}
	if f.parallel {
		var wg sync.WaitGroup
		for _, ed := range f.edges {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ed.Flush(ctx, now)
			}()
		}
		wg.Wait()
	}
	for _, ed := range f.edges {
		st.Fallback += ed.svc.Stats().Fallback.Load()
		st.StoreErrors += ed.svc.Stats().StoreErrors.Load()
	}
	return st, nil
}

// trafficFactor is the fleet's traffic at now relative to the curve's
// mean: the curve's weight for the hour, times SpikeFactor inside the
// spike (traffic the plan does not know about).
func (cfg *SimConfig) trafficFactor(w *[24]float64, now time.Time) float64 {
	hour := int(now.Sub(SimDay) / time.Hour)
	factor := w[hour]
	spikeFrom := SimDay.Add(time.Duration(cfg.SpikeHour * float64(time.Hour)))
	if cfg.SpikeHour > 0 && !now.Before(spikeFrom) && now.Before(spikeFrom.Add(cfg.SpikeLength)) {
		factor *= cfg.SpikeFactor
	}
	return factor
}

// Simulate runs one day.
func Simulate(ctx context.Context, cfg SimConfig) (SimResult, error) {
	if err := simDefaults(&cfg); err != nil {
		return SimResult{}, err
	}
	store := cfg.Store
	var local *Local
	if store == nil && cfg.Fleet == nil {
		local = NewLocal()
		store = local
	}
	outage := func(now time.Time) bool {
		off := now.Sub(SimDay)
		return cfg.OutageFor > 0 && off >= cfg.OutageAt && off < cfg.OutageAt+cfg.OutageFor
	}
	var clock time.Time
	if local != nil {
		local.Fail = func() error {
			if outage(clock) {
				return errors.New("simulated outage")
			}
			return nil
		}
	}
	camps, per := simCampaigns(&cfg)
	res := SimResult{Mode: cfg.Mode.String(), Edges: cfg.Edges, Campaigns: cfg.Campaigns, PerCampaign: per}
	if cfg.Off {
		res.Mode += "/off"
	}
	fleet := cfg.Fleet
	if fleet == nil {
		lf := &localFleet{parallel: cfg.Parallel}
		ecfg := cfg
		ecfg.Store = store
		for e := 0; e < cfg.Edges; e++ {
			ed, err := NewSimEdge(ecfg, e)
			if err != nil {
				return res, err
			}
			lf.edges = append(lf.edges, ed)
		}
		fleet = lf
	}
	w := cfg.Curve.weights()
	dayTicks := int(24 * time.Hour / cfg.Tick)
	spent := make([]int64, cfg.Campaigns)
	counted := make([]int64, cfg.Campaigns)
	for tick := 0; tick < dayTicks; tick++ {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		now := SimDay.Add(time.Duration(tick) * cfg.Tick)
		clock = now
		if cfg.OnTick != nil {
			cfg.OnTick(tick, now)
		}
		hour := int(now.Sub(SimDay) / time.Hour)
		st, err := fleet.Step(ctx, tick, now, cfg.trafficFactor(&w, now), counted)
		if err != nil {
			return res, err
		}
		// Counted today: the edges add it to today's records, and to the
		// hour it is counted in (billed), which is what the plan is for.
		// What would fire after midnight is the next day's.
		for i, amt := range counted {
			if amt != 0 {
				spent[i] += amt
				res.PerCampaign[i].hourly[hour] += amt
				counted[i] = 0
			}
		}
		res.Opportunities += st.Opportunities
		res.Served += st.Served
		res.FallbackTicks += st.Fallback
		res.StoreErrors = st.StoreErrors
		res.Ticks++
	}
	if store != nil {
		if err := res.readStore(ctx, store, camps, spent); err != nil {
			return res, err
		}
	}
	res.summarise(spent, cfg.Mode == Even)
	return res, nil
}

// readStore reads the store's day totals after the day and compares
// them with the spend the edges counted: equal when no flush was
// ambiguous (an add that failed on the edge but reached the store is
// sent again, and counted twice).
func (r *SimResult) readStore(ctx context.Context, store Store, camps []simCamp, spent []int64) error {
	_, _, day := DayBounds(nil, SimDay)
	keys := make([]Delta, len(camps))
	for i := range camps {
		keys[i] = Delta{Campaign: camps[i].spec.ID, Day: day}
	}
	out := make([]Totals, len(keys))
	var err error
	for try := 0; try < 50; try++ {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err = store.Read(cctx, keys, out)
		cancel()
		if err == nil || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("pacing sim: reading the day's totals: %w", err)
	}
	var inStore, counted int64
	for i := range out {
		if out[i].Err != nil && !errors.Is(out[i].Err, ErrNoRecord) {
			return fmt.Errorf("pacing sim: %s: %w", keys[i].Campaign, out[i].Err)
		}
		inStore += out[i].Day
		counted += spent[i]
	}
	r.StoreSpend, r.CountedSpend = inStore, counted
	return nil
}

func (r *SimResult) summarise(spent []int64, even bool) {
	var over, budgets, reach, under float64
	var hours [24][2]float64
	var worst []float64
	for i := range r.PerCampaign {
		c := &r.PerCampaign[i]
		c.Spent = spent[i]
		b := float64(c.Budget)
		if o := float64(c.Spent) - b; o > 0 {
			c.OverPct = 100 * o / b
			over += o
		}
		budgets += b
		r.MaxOverspendPct = max(r.MaxOverspendPct, c.OverPct)
		if c.Reachable {
			reach += b
			under += max(0, b-float64(c.Spent))
		}
		// Pace error: campaigns the plan can be followed for in every hour
		// (a budget at most 80% of the traffic's value).
		if even && float64(c.Budget) <= 0.8*float64(c.DemandValue) {
			for h := 0; h < 24; h++ {
				hours[h][0] += c.plan[h]
				hours[h][1] += float64(c.hourly[h])
				if c.plan[h] > 0 {
					c.WorstHourPct = max(c.WorstHourPct, 100*math.Abs(float64(c.hourly[h])-c.plan[h])/c.plan[h])
				}
			}
			worst = append(worst, c.WorstHourPct)
		}
	}
	if budgets > 0 {
		r.TotalOverspendPct = 100 * over / budgets
	}
	if reach > 0 {
		r.UnderdeliveryPct = 100 * under / reach
	}
	for h := range hours {
		r.Hours[h] = [2]int64{int64(hours[h][0]), int64(hours[h][1])}
		if hours[h][0] > 0 {
			r.HourlyPaceErrorPct = max(r.HourlyPaceErrorPct, 100*math.Abs(hours[h][1]-hours[h][0])/hours[h][0])
		}
	}
	if len(worst) > 0 {
		sort.Float64s(worst)
		r.MedianCampaignHour = worst[len(worst)/2]
	}
}

// poisson draws a Poisson count (normal approximation above a mean of 30).
func poisson(r *rand.Rand, mean float64) int {
	if mean <= 0 {
		return 0
	}
	if mean > 30 {
		return max(0, int(math.Round(mean+math.Sqrt(mean)*r.NormFloat64())))
	}
	l, k, p := math.Exp(-mean), 0, 1.0
	for {
		p *= r.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// Table formats results as the text table adtool pacing-sim prints.
func FormatSimTable(rs ...SimResult) string {
	s := fmt.Sprintf("%-10s %6s %9s %12s %11s %14s %13s %14s %12s\n", "mode", "edges", "campaigns",
		"max_over_%", "total_over_%", "underdeliv_%", "hour_err_%", "median_camp_h%", "store_errs")
	for _, r := range rs {
		s += fmt.Sprintf("%-10s %6d %9d %12.3f %11.3f %14.3f %13.2f %14.2f %12d\n", r.Mode, r.Edges, r.Campaigns,
			r.MaxOverspendPct, r.TotalOverspendPct, r.UnderdeliveryPct, r.HourlyPaceErrorPct, r.MedianCampaignHour, r.StoreErrors)
	}
	return s
}
