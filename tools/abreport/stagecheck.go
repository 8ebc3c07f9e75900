package abreport

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/adedge/adedge/abtest"
	"github.com/adedge/adedge/abtest/report"
)

// Nagios plugin exit codes.
const (
	OK       = 0
	Warning  = 1
	Critical = 2
	Unknown  = 3
)

var statusNames = [...]string{"OK", "WARNING", "CRITICAL", "UNKNOWN"}

// Thresholds are stagecheck's limits. Relative ones compare staging with
// production ("0.1" = 10% worse); error ones are absolute excess of the
// staging error rate over production's.
type Thresholds struct {
	WarnFillDrop, CritFillDrop  float64
	WarnErrorExcess, CritErrExc float64
	WarnP99Ratio, CritP99Ratio  float64
	WarnECPMDrop, CritECPMDrop  float64
	MinRequests                 uint64
}

// DefaultThresholds are the stagecheck defaults (docs/REPORTS.md).
var DefaultThresholds = Thresholds{
	WarnFillDrop: 0.05, CritFillDrop: 0.15,
	WarnErrorExcess: 0.005, CritErrExc: 0.02,
	WarnP99Ratio: 1.5, CritP99Ratio: 3,
	WarnECPMDrop: 0.10, CritECPMDrop: 0.25,
	MinRequests: 500,
}

// envTotals are one env's sums over the window.
type envTotals struct{ report.Totals }

func (e *envTotals) fill() float64 { return ratio(e.Fills, e.Requests) }
func (e *envTotals) errRate() float64 {
	return ratio(e.Errors+e.ForwardErrors, e.Requests+e.ForwardErrors)
}
func (e *envTotals) p99() float64  { return report.LatencyQuantile(e.Latency[:], 0.99) }
func (e *envTotals) ecpm() float64 { return ratio(e.RevenueMicros, e.Impressions) / 1000 }

// StageCheck compares staging with production over rows (already limited
// to the window) and returns the exit code and the one status line.
func StageCheck(rows []abtest.Row, skipped []Skipped, window time.Duration, th Thresholds) (int, string) {
	var prod, stg envTotals
	for i := range rows {
		r := &rows[i]
		t := &prod
		if r.Env == "staging" {
			t = &stg
		} else if r.Env != "production" {
			continue
		}
		t.Add(r)
	}
	status := OK
	var problems []string
	raise := func(s int, msg string) {
		if s > status {
			status = s
		}
		problems = append(problems, msg)
	}
	if len(skipped) > 0 {
		raise(Warning, fmt.Sprintf("%d rows files skipped (truncated or malformed)", len(skipped)))
	}
	if prod.Requests < th.MinRequests || stg.Requests+stg.ForwardErrors < th.MinRequests {
		line := fmt.Sprintf("STAGECHECK UNKNOWN - too little traffic in the last %s to compare (staging %d, production %d requests; need %d each)",
			window, stg.Requests+stg.ForwardErrors, prod.Requests, th.MinRequests)
		if len(problems) > 0 {
			line += "; " + strings.Join(problems, "; ")
		}
		return Unknown, line
	}
	// Fill rate and eCPM: relative drops.
	if d := drop(stg.fill(), prod.fill()); d > th.CritFillDrop {
		raise(Critical, fmt.Sprintf("fill rate %.1f%% below production", 100*d))
	} else if d > th.WarnFillDrop {
		raise(Warning, fmt.Sprintf("fill rate %.1f%% below production", 100*d))
	}
	if ex := stg.errRate() - prod.errRate(); ex > th.CritErrExc {
		raise(Critical, fmt.Sprintf("error rate %.2fpp above production", 100*ex))
	} else if ex > th.WarnErrorExcess {
		raise(Warning, fmt.Sprintf("error rate %.2fpp above production", 100*ex))
	}
	if r := stg.p99() / prod.p99(); r > th.CritP99Ratio {
		raise(Critical, fmt.Sprintf("p99 latency %.1fx production", r))
	} else if r > th.WarnP99Ratio {
		raise(Warning, fmt.Sprintf("p99 latency %.1fx production", r))
	}
	if prod.Impressions > 0 && stg.Impressions > 0 {
		if d := drop(stg.ecpm(), prod.ecpm()); d > th.CritECPMDrop {
			raise(Critical, fmt.Sprintf("eCPM %.1f%% below production", 100*d))
		} else if d > th.WarnECPMDrop {
			raise(Warning, fmt.Sprintf("eCPM %.1f%% below production", 100*d))
		}
	}
	summary := fmt.Sprintf("staging vs production, last %s: fill %.2f%% vs %.2f%%, errors %.2f%% vs %.2f%%, p99 %.0fus vs %.0fus, eCPM %s vs %s",
		window, 100*stg.fill(), 100*prod.fill(), 100*stg.errRate(), 100*prod.errRate(), stg.p99(), prod.p99(), f3(stg.ecpm()), f3(prod.ecpm()))
	head := "STAGECHECK " + statusNames[status] + " - "
	if len(problems) > 0 {
		head += strings.Join(problems, "; ") + "; "
	}
	perf := fmt.Sprintf("fill_staging=%.4f fill_production=%.4f errors_staging=%.4f errors_production=%.4f p99_staging=%.0fus p99_production=%.0fus requests_staging=%dc requests_production=%dc",
		stg.fill(), prod.fill(), stg.errRate(), prod.errRate(), stg.p99(), prod.p99(), stg.Requests, prod.Requests)
	return status, head + summary + " | " + perf
}

// drop is how much lower a is than b, relative to b (0 when not lower).
func drop(a, b float64) float64 {
	if math.IsNaN(a) || math.IsNaN(b) || b <= 0 || a >= b {
		return 0
	}
	return (b - a) / b
}

func f3(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf("%.3f", v)
}
