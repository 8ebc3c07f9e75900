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
	Store Store
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
	OnTick func(tick int, simNow time.Time)
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
	Mode               string        `json:"mode"`
	Edges              int           `json:"edges"`
	Campaigns          int           `json:"campaigns"`
	Ticks              int           `json:"ticks"`
	Opportunities      int64         `json:"opportunities"`
	Served             int64         `json:"served"`
	MaxOverspendPct    float64       `json:"max_overspend_pct"`
	TotalOverspendPct  float64       `json:"total_overspend_pct"`
	UnderdeliveryPct   float64       `json:"underdelivery_pct"`
	HourlyPaceErrorPct float64       `json:"hourly_pace_error_pct"`
	MedianCampaignHour float64       `json:"median_campaign_worst_hour_pct"`
	StoreErrors        uint64        `json:"store_errors"`
	FallbackTicks      int64         `json:"fallback_campaign_ticks"`
	Hours              [24][2]int64  `json:"hours"` // planned, actual (even, reachable campaigns)
	PerCampaign        []SimCampaign `json:"per_campaign,omitempty"`
}

// SimDay is the simulated day (UTC): Simulate measures it, after the warm-up.
var SimDay = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

type simEvent struct {
	camp  int32
	click bool
}

// Simulate runs one day.
func Simulate(ctx context.Context, cfg SimConfig) (SimResult, error) {
	if cfg.Edges <= 0 || cfg.Campaigns <= 0 {
		return SimResult{}, errors.New("pacing sim: edges and campaigns must be > 0")
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
	store := cfg.Store
	var local *Local
	if store == nil {
		local = NewLocal()
		store = local
	}
	dayStart := SimDay
	outage := func(now time.Time) bool {
		off := now.Sub(dayStart)
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
	par := Params{Tick: cfg.Tick, StoreDelay: cfg.Tick, ImpLag: 3 * cfg.ImpDelay,
		HalfLife: 3 * cfg.Tick, StaleAfter: 3 * cfg.Tick, ExpectedEdges: cfg.Edges}

	// Campaigns: demand log-uniform over two decades; budgets from a few
	// hundred events to more than the traffic can fill.
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5eed))
	type camp struct {
		spec    Spec
		price   int64 // per impression
		ctr     float64
		perTick float64 // opportunities per second at curve weight 1, whole fleet
	}
	camps := make([]camp, cfg.Campaigns)
	specs := make([]Spec, cfg.Campaigns)
	res := SimResult{Mode: cfg.Mode.String(), Edges: cfg.Edges, Campaigns: cfg.Campaigns}
	if cfg.Off {
		res.Mode += "/off"
	}
	res.PerCampaign = make([]SimCampaign, cfg.Campaigns)
	w := cfg.Curve.weights()
	plan := newDayPlan(&cfg.Curve, dayStart.Unix(), dayStart.Unix()+86400)
	for i := range camps {
		demand := cfg.Demand * 2000 * math.Pow(100, rng.Float64()) // opportunities per day
		price := int64(500 * math.Pow(10, rng.Float64()))
		c := camp{price: price, perTick: demand / 86400}
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
		camps[i], specs[i] = c, c.spec
		pc := &res.PerCampaign[i]
		*pc = SimCampaign{ID: id, Mode: b.Mode.String(), Billing: b.Billing.String(), Budget: b.Daily,
			DemandValue: int64(value), Reachable: float64(b.Daily) <= 0.95*value}
		for h := 0; h < 24; h++ {
			t0 := dayStart.Unix() + int64(h)*3600
			pc.plan[h] = float64(b.Daily) * (plan.Fraction(t0+3600) - plan.Fraction(t0))
		}
	}

	type edge struct {
		svc   *Service
		rng   *rand.Rand
		wheel map[int][]simEvent
	}
	edges := make([]*edge, cfg.Edges)
	for e := range edges {
		svc := NewService(Config{Store: store, Params: par, Curve: cfg.Curve, Salt: cfg.Seed*131 + uint64(e), Timeout: cfg.Timeout})
		svc.SetCampaigns("sim", specs)
		edges[e] = &edge{svc: svc, rng: rand.New(rand.NewPCG(cfg.Seed, uint64(e)+1)), wheel: map[int][]simEvent{}}
	}
	dt := cfg.Tick.Seconds()
	dayTicks := int(24 * time.Hour / cfg.Tick)
	spikeFrom := dayStart.Add(time.Duration(cfg.SpikeHour * float64(time.Hour)))
	spent := make([]int64, cfg.Campaigns)
	idb := make([][]byte, cfg.Campaigns)
	for i := range camps {
		idb[i] = []byte(camps[i].spec.ID)
	}
	for tick := 0; tick < dayTicks; tick++ {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		now := dayStart.Add(time.Duration(tick) * cfg.Tick)
		clock = now
		if cfg.OnTick != nil {
			cfg.OnTick(tick, now)
		}
		hour := int(now.Sub(dayStart) / time.Hour)
		factor := w[hour]
		if cfg.SpikeHour > 0 && !now.Before(spikeFrom) && now.Before(spikeFrom.Add(cfg.SpikeLength)) {
			factor *= cfg.SpikeFactor
		}
		for _, ed := range edges {
			for _, ev := range ed.wheel[tick] {
				c := &camps[ev.camp]
				ed.svc.Counted(idb[ev.camp], ev.click, c.price)
				amt := c.price
				if ev.click {
					amt = c.spec.Bid
				}
				// Counted today: the edges add it to today's records, and to
				// the hour it is counted in (billed), which is what the plan
				// is for. What would fire after midnight is the next day's.
				spent[ev.camp] += amt
				res.PerCampaign[ev.camp].hourly[hour] += amt
			}
			delete(ed.wheel, tick)
			if factor > 0 {
				tab := ed.svc.Table()
				for i := range camps {
					c := &camps[i]
					n := poisson(ed.rng, c.perTick*factor*dt/float64(cfg.Edges))
					res.Opportunities += int64(n)
					for k := 0; k < n; k++ {
						if !cfg.Off && !tab.Allow(i, ed.rng.Uint64()) {
							continue
						}
						res.Served++
						tab.Served(i, c.price)
						if ed.rng.Float64() >= cfg.FireRate {
							continue
						}
						click := false
						if c.spec.Budget.Billing == BillClick {
							if ed.rng.Float64() >= c.ctr {
								continue
							}
							click = true
						}
						delay := ed.rng.ExpFloat64() * cfg.ImpDelay.Seconds()
						due := tick + 1 + int(delay/dt)
						ed.wheel[due] = append(ed.wheel[due], simEvent{camp: int32(i), click: click})
					}
				}
			}
			if !cfg.Parallel {
				ed.svc.Tick(ctx, now)
			}
		}
		if cfg.Parallel {
			var wg sync.WaitGroup
			for _, ed := range edges {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ed.svc.Tick(ctx, now)
				}()
			}
			wg.Wait()
		}
		for _, ed := range edges {
			res.FallbackTicks += ed.svc.Stats().Fallback.Load()
		}
		res.Ticks++
	}
	for _, ed := range edges {
		res.StoreErrors += ed.svc.Stats().StoreErrors.Load()
	}
	res.summarise(spent, cfg.Mode == Even)
	return res, nil
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
