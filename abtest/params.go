// Package abtest is the A/B layer on the edge's request path: the ranking
// parameters a test may override (Params), the experiment-set rules
// (Set.Check), bucketing devices into the staging layer and the tests
// (Bucketer, Staging), and the lock-free per-bucket counters with their
// Prometheus export and per-interval rows (Counters, Row).
//
// The rest of A/B lives beside it: abtest/rows is the rows file format,
// abtest/report computes reports from rows, abtest/stats is the statistics
// the report uses.
package abtest

// Params are the knobs selection reads per request. Control uses Defaults; an
// A/B test overrides some of them for its bucket.
type Params struct {
	// WeightCPM, WeightCPC and WeightCPI multiply the eCPM of campaigns of that
	// bid type when ranking (not the price charged).
	WeightCPM, WeightCPC, WeightCPI float64
	// FloorMultiplier scales every placement's floor.
	FloorMultiplier float64
	// MinCTR drops candidates whose predicted CTR is below it.
	MinCTR float64
}

// Defaults are the parameters control runs with.
var Defaults = Params{WeightCPM: 1, WeightCPC: 1, WeightCPI: 1, FloorMultiplier: 1, MinCTR: 0}

// ParamNames lists the names experiments.json may override, with their valid
// range, so a typo or an absurd value is refused at build time.
var ParamNames = map[string]ParamRange{
	"weight_cpm":       {Min: 0, Max: 10},
	"weight_cpc":       {Min: 0, Max: 10},
	"weight_cpi":       {Min: 0, Max: 10},
	"floor_multiplier": {Min: 0, Max: 10},
	"min_ctr":          {Min: 0, Max: 1},
}

// ParamRange is the inclusive range a parameter override must fall in.
type ParamRange struct{ Min, Max float64 }

// Apply returns p with the named overrides set. Unknown names are ignored
// here; the builder refuses them before they reach a snapshot.
func (p Params) Apply(overrides map[string]float64) Params {
	for k, v := range overrides {
		switch k {
		case "weight_cpm":
			p.WeightCPM = v
		case "weight_cpc":
			p.WeightCPC = v
		case "weight_cpi":
			p.WeightCPI = v
		case "floor_multiplier":
			p.FloorMultiplier = v
		case "min_ctr":
			p.MinCTR = v
		}
	}
	return p
}
