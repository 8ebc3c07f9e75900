// Package report computes the A/B report from rows (abtest.Row, read with
// package abtest/rows): per experiment set and bucket, totals, per-user-
// shard ratio metrics with confidence intervals, each test's lifts against
// control, the sample-ratio-mismatch check and the per-interval series for
// charts. BuildReport is the API: adtool abreport and stagecheck render
// it; any other source of rows can call it the same way.
package report

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/axiomhq/hyperloglog"

	"github.com/adedge/adedge/abtest"
	"github.com/adedge/adedge/abtest/stats"
)

// SRMThreshold is the p-value below which the sample-ratio check fails.
// 0.001 is the usual bar (a real mismatch gives far smaller p-values at
// A/B sample sizes; a looser bar would cry wolf on the sketches' ~0.1%
// count error).
const SRMThreshold = 0.001

// Metric names, in report order.
var MetricNames = []string{"fill_rate", "ctr", "ecpm", "revenue_per_request", "revenue_per_user"}

// GroupTotals are one bucket's totals over the report window, with the
// per-shard totals the variance comes from.
type GroupTotals struct {
	Test, Variant string
	Index         uint8
	ShareBP       uint32
	Unassigned    bool
	Users         float64 // sum over shards of the merged sketches' estimates
	Totals

	shard    [abtest.Shards]shardTotals
	sketches [abtest.Shards]*hyperloglog.Sketch
	Metrics  map[string]stats.RatioEstimate
}

type shardTotals struct {
	requests, fills, impressions, clicks, revenue, users float64
}

// TestComparison is one test's variant against control, metric by metric.
type TestComparison struct {
	Test, Variant string
	Lifts         map[string]stats.Lift
}

// SRM is the sample-ratio-mismatch check over users.
type SRM struct {
	Stat, P float64
	DF      int
	Failed  bool
}

// Point is one interval of one group for the charts.
type Point struct {
	Start                                               time.Time
	Requests, Fills, Impressions, Clicks, RevenueMicros uint64
}

// ExperimentReport is one (env, experiment set).
type ExperimentReport struct {
	Env, Experiment string
	Snapshots       []string
	Edges           []string
	Groups          []*GroupTotals // control, tests by index, unassigned last
	Comparisons     []TestComparison
	SRM             SRM
	Series          map[string][]Point // by group key "test/variant"
	Warnings        []string
}

// Report is the merged view of many edges' rows.
type Report struct {
	From, To    time.Time // the rows' actual span
	Files, Rows int
	Experiments []*ExperimentReport
}

// GroupKey is "test/variant", the name of a group in series and output.
func GroupKey(test, variant string) string { return test + "/" + variant }

// BuildReport merges rows (already filtered by the caller) into per-test
// comparisons.
func BuildReport(rows []abtest.Row, files int) (*Report, error) {
	rep := &Report{Files: files, Rows: len(rows)}
	type ekey struct{ env, exp string }
	exps := map[ekey]*ExperimentReport{}
	groups := map[ekey]map[string]*GroupTotals{}
	snaps := map[ekey]map[string]bool{}
	edges := map[ekey]map[string]bool{}
	series := map[ekey]map[string]map[time.Time]*Point{}
	for i := range rows {
		r := &rows[i]
		if rep.From.IsZero() || r.Start.Before(rep.From) {
			rep.From = r.Start
		}
		if r.End.After(rep.To) {
			rep.To = r.End
		}
		k := ekey{r.Env, r.Experiment}
		er := exps[k]
		if er == nil {
			er = &ExperimentReport{Env: r.Env, Experiment: r.Experiment, Series: map[string][]Point{}}
			exps[k] = er
			groups[k] = map[string]*GroupTotals{}
			snaps[k] = map[string]bool{}
			edges[k] = map[string]bool{}
			series[k] = map[string]map[time.Time]*Point{}
		}
		snaps[k][r.Snapshot] = true
		edges[k][r.Edge] = true
		gk := GroupKey(r.Test, r.Variant)
		g := groups[k][gk]
		if g == nil {
			g = &GroupTotals{Test: r.Test, Variant: r.Variant, Index: r.TestIndex, ShareBP: r.ShareBP,
				Unassigned: r.Variant == abtest.UnassignedVariant && r.Test == abtest.ControlTest}
			groups[k][gk] = g
		} else if g.ShareBP != r.ShareBP || g.Index != r.TestIndex {
			w := fmt.Sprintf("group %s: rows disagree on share_bp (%d vs %d) or test index: the experiment set changed under the same id; the sample-ratio check uses the first",
				gk, g.ShareBP, r.ShareBP)
			if !slices.Contains(er.Warnings, w) {
				er.Warnings = append(er.Warnings, w)
			}
		}
		g.Add(r)
		s := &g.shard[r.Shard]
		s.requests += float64(r.Requests)
		s.fills += float64(r.Fills)
		s.impressions += float64(r.Impressions)
		s.clicks += float64(r.Clicks)
		s.revenue += float64(r.RevenueMicros) / 1e6
		sk, err := r.Sketch()
		if err != nil {
			return nil, fmt.Errorf("row of %s: %w", r.Edge, err)
		}
		if sk != nil {
			if g.sketches[r.Shard] == nil {
				g.sketches[r.Shard] = sk
			} else if err := g.sketches[r.Shard].Merge(sk); err != nil {
				return nil, err
			}
		}
		sm := series[k][gk]
		if sm == nil {
			sm = map[time.Time]*Point{}
			series[k][gk] = sm
		}
		p := sm[r.Start]
		if p == nil {
			p = &Point{Start: r.Start}
			sm[r.Start] = p
		}
		p.Requests += r.Requests
		p.Fills += r.Fills
		p.Impressions += r.Impressions
		p.Clicks += r.Clicks
		p.RevenueMicros += r.RevenueMicros
	}
	for k, er := range exps {
		for s := range snaps[k] {
			er.Snapshots = append(er.Snapshots, s)
		}
		for e := range edges[k] {
			er.Edges = append(er.Edges, e)
		}
		slices.Sort(er.Snapshots)
		slices.Sort(er.Edges)
		for gk, sm := range series[k] {
			pts := make([]Point, 0, len(sm))
			for _, p := range sm {
				pts = append(pts, *p)
			}
			slices.SortFunc(pts, func(a, b Point) int { return a.Start.Compare(b.Start) })
			er.Series[gk] = pts
		}
		for _, g := range groups[k] {
			g.finish()
			er.Groups = append(er.Groups, g)
		}
		slices.SortFunc(er.Groups, func(a, b *GroupTotals) int {
			ra, rb := groupRank(a), groupRank(b)
			if ra != rb {
				return ra - rb
			}
			return strings.Compare(GroupKey(a.Test, a.Variant), GroupKey(b.Test, b.Variant))
		})
		er.compare()
		rep.Experiments = append(rep.Experiments, er)
	}
	slices.SortFunc(rep.Experiments, func(a, b *ExperimentReport) int {
		if a.Env != b.Env {
			if a.Env == "production" {
				return -1
			}
			if b.Env == "production" {
				return 1
			}
			return strings.Compare(a.Env, b.Env)
		}
		return strings.Compare(a.Experiment, b.Experiment)
	})
	return rep, nil
}

func groupRank(g *GroupTotals) int {
	switch {
	case g.Unassigned:
		return 100
	case g.Test == abtest.ControlTest:
		return 0
	}
	return int(g.Index) + 1
}

func (g *GroupTotals) finish() {
	for sh := range g.sketches {
		if g.sketches[sh] != nil {
			u := float64(g.sketches[sh].Estimate())
			g.shard[sh].users = u
			g.Users += u
		}
	}
	col := func(f func(s *shardTotals) float64) []float64 {
		out := make([]float64, abtest.Shards)
		for i := range g.shard {
			out[i] = f(&g.shard[i])
		}
		return out
	}
	req := col(func(s *shardTotals) float64 { return s.requests })
	imp := col(func(s *shardTotals) float64 { return s.impressions })
	rev := col(func(s *shardTotals) float64 { return s.revenue })
	ecpmNum := col(func(s *shardTotals) float64 { return s.revenue * 1000 })
	g.Metrics = map[string]stats.RatioEstimate{
		"fill_rate":           stats.Ratio(col(func(s *shardTotals) float64 { return s.fills }), req),
		"ctr":                 stats.Ratio(col(func(s *shardTotals) float64 { return s.clicks }), imp),
		"ecpm":                stats.Ratio(ecpmNum, imp),
		"revenue_per_request": stats.Ratio(rev, req),
		"revenue_per_user":    stats.Ratio(rev, col(func(s *shardTotals) float64 { return s.users })),
	}
}

// Group returns the group with these labels, or nil.
func (er *ExperimentReport) Group(test, variant string) *GroupTotals {
	for _, g := range er.Groups {
		if g.Test == test && g.Variant == variant {
			return g
		}
	}
	return nil
}

// Totals are the counters of many rows added up.
type Totals struct {
	Requests, Fills, Errors, ForwardErrors, Impressions, Clicks, RevenueMicros uint64
	Latency                                                                    [abtest.NumLatencyBuckets]uint64
}

// Add adds a row's counters.
func (t *Totals) Add(r *abtest.Row) {
	t.Requests += r.Requests
	t.Fills += r.Fills
	t.Errors += r.Errors
	t.ForwardErrors += r.ForwardErrors
	t.Impressions += r.Impressions
	t.Clicks += r.Clicks
	t.RevenueMicros += r.RevenueMicros
	for j, v := range r.LatencyUS {
		if j < len(t.Latency) {
			t.Latency[j] += v
		}
	}
}

// HLLRelError is the relative standard error of one sketch's estimate,
// 1.04/sqrt(2^HLLPrecision) (Flajolet et al. 2007): an upper bound, since
// small sketches stay sparse and are near exact.
var HLLRelError = 1.04 / math.Sqrt(float64(uint(1)<<abtest.HLLPrecision))

// usersVariance bounds the variance of Users from the sketches' error: the
// shards' sketches are independent, so their variances add.
func (g *GroupTotals) usersVariance() float64 {
	var v float64
	for i := range g.shard {
		e := HLLRelError * g.shard[i].users
		v += e * e
	}
	return v
}

// Control returns the control group (nil if the set gives control 0%).
func (er *ExperimentReport) Control() *GroupTotals {
	for _, g := range er.Groups {
		if g.Test == abtest.ControlTest && !g.Unassigned {
			return g
		}
	}
	return nil
}

func (er *ExperimentReport) compare() {
	ctl := er.Control()
	var obs, exp, hllVar []float64
	for _, g := range er.Groups {
		if g.Unassigned {
			continue
		}
		obs = append(obs, g.Users)
		exp = append(exp, float64(g.ShareBP))
		hllVar = append(hllVar, g.usersVariance())
		if ctl == nil || g == ctl {
			continue
		}
		c := TestComparison{Test: g.Test, Variant: g.Variant, Lifts: map[string]stats.Lift{}}
		for _, m := range MetricNames {
			c.Lifts[m] = stats.Compare(g.Metrics[m], ctl.Metrics[m])
		}
		er.Comparisons = append(er.Comparisons, c)
	}
	er.SRM = SRM{P: math.NaN()}
	if len(obs) >= 2 {
		er.SRM.Stat, er.SRM.DF, er.SRM.P = stats.ChiSquareGOFExtra(obs, exp, hllVar)
		er.SRM.Failed = er.SRM.P < SRMThreshold
	}
	if ctl == nil {
		er.Warnings = append(er.Warnings, "no control rows: nothing to compare the tests with")
	}
}

// LatencyQuantile estimates the q quantile (0..1) of a latency histogram in
// microseconds, interpolating linearly inside the bucket it falls in (the
// open last bucket reports its lower bound).
func LatencyQuantile(h []uint64, q float64) float64 {
	var n uint64
	for _, v := range h {
		n += v
	}
	if n == 0 {
		return math.NaN()
	}
	rank := q * float64(n)
	var cum float64
	for i, v := range h {
		if v == 0 {
			continue
		}
		if cum+float64(v) >= rank {
			lo := 0.0
			if i > 0 {
				lo = float64(abtest.LatencyBoundsUS[i-1])
			}
			if i >= len(abtest.LatencyBoundsUS) {
				return lo
			}
			hi := float64(abtest.LatencyBoundsUS[i])
			return lo + (hi-lo)*(rank-cum)/float64(v)
		}
		cum += float64(v)
	}
	return float64(abtest.LatencyBoundsUS[len(abtest.LatencyBoundsUS)-1])
}
