package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// FindMaxOptions configure a search for the highest rate a server sustains
// within a latency bound.
type FindMaxOptions struct {
	Run Options // the trial template; Rate and Duration are set per trial
	// P99 is the bound: a trial passes when its p99 (from scheduled send
	// time) is at most P99, nothing failed (errors or a status other than
	// 200/204), and at least MinAchieved of the asked rate was answered.
	P99         time.Duration
	MinAchieved float64       // default 0.97
	Start       float64       // first rate tried (default 1000/s)
	MaxRate     float64       // never try above (default 2,000,000/s)
	Trial       time.Duration // per trial, warm-up included (default 5 s)
	Warmup      time.Duration // default Trial/5
	// Precision ends the search when the gap between the best passing and
	// the lowest failing rate is under this share of the former (default 5%).
	Precision float64
	MaxTrials int // default 14
	// Confirm re-runs a failing trial once and fails it only if it fails
	// again: a shared machine produces one-off stalls a real server does
	// not have.
	Confirm bool
	Log     io.Writer // a line per trial; nil for none

	// run is the trial (Run unless a test gives the search a server of
	// known capacity, so the search itself is checked without timing).
	run func(context.Context, Options) (*Result, error)
}

// Trial is one step of the search.
type Trial struct {
	Rate   float64 `json:"rate"`
	Pass   bool    `json:"pass"`
	Why    string  `json:"why,omitempty"`
	Result *Result `json:"result"`
}

// MaxResult is the search's outcome: the highest passing rate and its
// measurements, and every trial.
type MaxResult struct {
	BoundP99US float64  `json:"bound_p99_us"`
	MaxRate    float64  `json:"max_rate"` // 0 when no rate passed
	Best       *Result  `json:"best,omitempty"`
	Trials     []*Trial `json:"trials"`
}

// judge says whether r passes the bound and, if not, why.
func (f *FindMaxOptions) judge(r *Result) (bool, string) {
	switch {
	case r.Bad() > 0:
		return false, fmt.Sprintf("%d failed requests", r.Bad())
	case r.Achieved < f.MinAchieved*r.Rate:
		return false, fmt.Sprintf("achieved %.0f/s of %.0f/s", r.Achieved, r.Rate)
	case r.LatencyUS.P99 > float64(f.P99.Microseconds()):
		return false, fmt.Sprintf("p99 %.0f us > %d us", r.LatencyUS.P99, f.P99.Microseconds())
	}
	return true, ""
}

// FindMax searches rates: doubling from Start until a trial fails, then
// bisecting between the best pass and the lowest failure.
//
// Latency need not fall with the rate: where CPUs idle between requests
// (a light load on a VM, each wake-up a hypervisor exit) a low rate can
// miss a p99 bound that a higher one meets. So while nothing has passed, a
// trial that failed on latency alone, with every request answered at the
// asked rate, is followed by a higher one, up to upTries times; only a
// server that is short of its rate, or still over the bound after that,
// sends the search below Start.
func FindMax(ctx context.Context, f FindMaxOptions) (*MaxResult, error) {
	if f.P99 <= 0 {
		return nil, errors.New("loadgen: find-max needs a p99 bound > 0")
	}
	if f.MinAchieved <= 0 {
		f.MinAchieved = 0.97
	}
	if f.Start <= 0 {
		f.Start = 1000
	}
	if f.MaxRate <= 0 {
		f.MaxRate = 2_000_000
	}
	if f.Trial <= 0 {
		f.Trial = 5 * time.Second
	}
	if f.Warmup <= 0 {
		f.Warmup = f.Trial / 5
	}
	if f.Precision <= 0 {
		f.Precision = 0.05
	}
	if f.MaxTrials <= 0 {
		f.MaxTrials = 14
	}
	out := &MaxResult{BoundP99US: float64(f.P99.Microseconds())}
	run := func(rate float64) (*Trial, error) {
		o := f.Run
		o.Rate, o.Duration, o.Warmup = rate, f.Trial, f.Warmup
		o.Progress = nil
		trial := f.run
		if trial == nil {
			trial = Run
		}
		r, err := trial(ctx, o)
		if err != nil {
			return nil, err
		}
		pass, why := f.judge(r)
		t := &Trial{Rate: rate, Pass: pass, Why: why, Result: r}
		out.Trials = append(out.Trials, t)
		if f.Log != nil {
			verdict := "pass"
			if !pass {
				verdict = "FAIL: " + why
			}
			fmt.Fprintf(f.Log, "find-max: %8.0f/s  achieved %8.0f/s  p99 %7.0f us  p99.9 %7.0f us  generator lag %d  %s\n",
				rate, r.Achieved, r.LatencyUS.P99, r.LatencyUS.P999, r.GeneratorLag, verdict)
		}
		return t, nil
	}
	lo, hi := 0.0, 0.0 // best pass, lowest failure above it (0 = none yet)
	rate := f.Start
	ups := 0 // failed trials followed by a higher rate before any pass
	for n := 0; n < f.MaxTrials && ctx.Err() == nil; n++ {
		t, err := run(rate)
		if err != nil {
			return out, err
		}
		if !t.Pass && f.Confirm {
			if t, err = run(rate); err != nil {
				return out, err
			}
		}
		if t.Pass {
			lo, out.MaxRate, out.Best = rate, rate, t.Result
		} else {
			hi = rate
		}
		switch {
		case lo == 0 && ups < upTries && f.latencyOnly(t) && rate < f.MaxRate:
			ups++
			hi, rate = 0, min(rate*2, f.MaxRate)
		case lo == 0 && ups > 0 && rate > f.Start:
			// Higher did not help: search below Start, as if it had
			// been the first failure.
			hi, rate = f.Start, f.Start/2
		case hi == 0:
			if rate >= f.MaxRate {
				return out, nil
			}
			rate = min(rate*2, f.MaxRate)
		case lo == 0:
			if rate < 20 {
				return out, nil // nothing passes even at a trickle
			}
			rate /= 2
		default:
			if hi-lo <= f.Precision*lo {
				return out, nil
			}
			rate = (lo + hi) / 2
		}
	}
	return out, ctx.Err()
}

// upTries is how many doublings a search tries above a rate that failed on
// latency alone before it looks below Start.
const upTries = 2

// latencyOnly reports whether a failed trial kept up (every request
// answered at the asked rate) and missed only the p99 bound.
func (f *FindMaxOptions) latencyOnly(t *Trial) bool {
	r := t.Result
	return !t.Pass && r.Bad() == 0 && r.Achieved >= f.MinAchieved*r.Rate
}
