// Package report computes the A/B report from rows (abtest.Row, read with
// package abtest/rows or aggregated by the warehouse): per experiment set
// and bucket, totals, per-user-shard ratio metrics, each test's lifts
// against control in the sequential (always-valid) and the fixed-horizon
// view, Holm and Benjamini–Hochberg adjusted p-values across the report's
// tests and metrics, CUPED with a pre-period, guardrails with a harm
// verdict, the sample-ratio check overall and per day, per-day and
// cumulative lifts, and breakdowns by country, OS and placement format.
// BuildReport is the API: adtool abreport and stagecheck render it; any
// other source of rows calls it the same way.
package report

import (
	"errors"
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

// MetricNames are the primary metrics, in report order.
var MetricNames = []string{"fill_rate", "ctr", "ecpm", "revenue_per_request", "revenue_per_user"}

// GuardrailNames are the metrics a variant must not harm, in report
// order; GuardrailBad says which direction is harm (+1: up is bad).
var (
	GuardrailNames = []string{"error_rate", "p99_latency_us", "fill_rate"}
	GuardrailBad   = map[string]int{"error_rate": +1, "p99_latency_us": +1, "fill_rate": -1}
)

// View is which p-values and intervals lead the report.
type View string

// Views.
const (
	// Sequential: always-valid p-values and confidence sequences (mSPRT):
	// valid however often the report is looked at. The default.
	Sequential View = "sequential"
	// Fixed: fixed-horizon Welch t p-values and intervals, valid only
	// when the report is read once, at a sample size chosen in advance.
	Fixed View = "fixed"
)

// Options tune the statistics; the zero value is the defaults.
type Options struct {
	View   View    // Sequential when empty
	Alpha  float64 // level of intervals, verdicts and corrections; 0.05 when 0
	TauRel float64 // mSPRT mixing sd as a fraction of control's value; 0.1 when 0
	// Pre are rows of a pre-period in which each group already held the
	// same users (the same experiment set and allocation): each user
	// shard's pre-period metric is CUPED's covariate. None: no CUPED.
	Pre []abtest.Row
	// Users, when set, gives user counts instead of the rows' sketches
	// (the warehouse counts distinct devices itself).
	Users func(k UserKey) (float64, bool)
	// UserSketch is what counted the users (Users' counts, or the rows'
	// sketches): the report prints it and the sample-ratio check widens
	// each group's variance by its RelError. RowsSketch when zero; required
	// with Users, whose counts only the loader can name.
	UserSketch UserSketch
	// DimRows, when set, are where the breakdowns come from instead of the
	// rows' own dimension fields: DimRows[DimCountry] are rows keyed by
	// country (their other dimensions ignored), and so on. A warehouse
	// answers each dimension apart rather than their cross product.
	DimRows *[numDims][]abtest.Row
	// MaxBreakdown bounds the values listed per breakdown dimension (by
	// requests; the rest are summed as "(other)"); 12 when 0.
	MaxBreakdown int
}

// UserKey names one user count: a group's shard over the window (Day
// zero) or a whole group on one day (Shard -1).
type UserKey struct {
	Env, Experiment, Layer, Test, Variant string
	Shard                                 int
	Day                                   time.Time
}

func (o *Options) defaults() {
	if o.UserSketch == (UserSketch{}) {
		o.UserSketch = RowsSketch
	}
	if o.View == "" {
		o.View = Sequential
	}
	if o.Alpha == 0 {
		o.Alpha = 0.05
	}
	if o.TauRel == 0 {
		o.TauRel = 0.1
	}
	if o.MaxBreakdown == 0 {
		o.MaxBreakdown = 12
	}
}

// Validate refuses options no report can use.
func (o Options) Validate() error {
	switch {
	case o.View != "" && o.View != Sequential && o.View != Fixed:
		return fmt.Errorf("view %q: want sequential or fixed", o.View)
	case o.Alpha < 0 || o.Alpha >= 0.5 || math.IsNaN(o.Alpha):
		return fmt.Errorf("alpha %g: want 0 < alpha < 0.5", o.Alpha)
	case o.TauRel < 0 || o.TauRel > 10 || math.IsNaN(o.TauRel):
		return fmt.Errorf("tau %g: want 0 < tau <= 10 (relative effect size)", o.TauRel)
	case o.MaxBreakdown < 0:
		return fmt.Errorf("max breakdown %d: want >= 0", o.MaxBreakdown)
	case o.Users != nil && o.UserSketch == (UserSketch{}):
		return errors.New("user counts without their sketch: set UserSketch, which the report prints and the sample-ratio check uses")
	case o.UserSketch != (UserSketch{}) && (o.UserSketch.Name == "" || o.UserSketch.Precision < 4 || o.UserSketch.Precision > 18):
		return fmt.Errorf("user sketch %+v: want a name and a HyperLogLog precision of 4 to 18", o.UserSketch)
	}
	return nil
}

// GroupTotals are one bucket's totals over the report window, with the
// per-shard totals the variance comes from.
type GroupTotals struct {
	Test, Variant string
	Index         uint8
	ShareBP       uint32
	Unassigned    bool
	Users         float64 // sum over shards of the merged sketches' estimates
	Totals

	shard    shardArr
	sketches [abtest.Shards]*hyperloglog.Sketch
	days     map[time.Time]*dayAcc
	dims     [numDims]map[string]*shardArr
	pre      *shardArr
	preSk    [abtest.Shards]*hyperloglog.Sketch
	Metrics  map[string]stats.RatioEstimate // primary metrics and guardrails
}

type dayAcc struct {
	shard  shardArr
	sketch *hyperloglog.Sketch
	users  float64
}

// shardTotals are one shard's sums, indexed by the f* constants (one
// array, so adding two is one loop).
type shardTotals [fLatency + abtest.NumLatencyBuckets]float64

const (
	fRequests = iota
	fFills
	fErrors
	fImpressions
	fClicks
	fRevenue // units, not micros
	fUsers
	fLatency // first of the latency buckets
)

func (s *shardTotals) latency() []float64 { return s[fLatency:] }

type shardArr [abtest.Shards]shardTotals

func (a *shardArr) add(b *shardArr) {
	for i := range a {
		for j := range a[i] {
			a[i][j] += b[i][j]
		}
	}
}

func (s *shardTotals) addRow(r *abtest.Row) {
	s[fRequests] += float64(r.Requests)
	s[fFills] += float64(r.Fills)
	s[fErrors] += float64(r.Errors)
	s[fImpressions] += float64(r.Impressions)
	s[fClicks] += float64(r.Clicks)
	s[fRevenue] += float64(r.RevenueMicros) / 1e6
	for j, v := range r.LatencyUS {
		if j < abtest.NumLatencyBuckets {
			s[fLatency+j] += float64(v)
		}
	}
}

// Dimensions of the breakdowns.
const (
	DimCountry = iota
	DimOS
	DimFormat
	numDims
)

// DimNames name the breakdown dimensions.
var DimNames = abtest.DimNames

func dimIndex(name string) int { return slices.Index(DimNames[:], name) }

func dimValue(r *abtest.Row, d int) string {
	switch d {
	case DimCountry:
		return r.Country
	case DimOS:
		return r.OS
	}
	return r.Format
}

// TestComparison is one test's variant against control, metric by metric.
type TestComparison struct {
	Test, Variant string
	Lifts         map[string]stats.Lift    // fixed-horizon, on the whole window
	Seq           map[string]stats.SeqLift // always-valid, over the daily looks
	// Holm and BH are the view's p-values adjusted across every test and
	// primary metric of this experiment report.
	Holm, BH map[string]float64
	// CUPED is the variance left after CUPED (adjusted/unadjusted), for
	// the metrics it was applied to.
	CUPED      map[string]float64
	Guardrails []Guardrail
	History    map[string][]HistPoint // primary metrics and guardrails, by day
}

// P is the leading p-value of metric m in view v.
func (c *TestComparison) P(v View, m string) float64 {
	if v == Fixed {
		return c.Lifts[m].P
	}
	return c.Seq[m].P
}

// RelCI is the relative lift's interval in view v (confidence sequence
// or fixed-horizon confidence interval).
func (c *TestComparison) RelCI(v View, m string) (lo, hi float64) {
	if v == Fixed {
		return c.Lifts[m].RelLo, c.Lifts[m].RelHi
	}
	return c.Seq[m].RelLo, c.Seq[m].RelHi
}

// AbsCI is the absolute lift's interval in view v.
func (c *TestComparison) AbsCI(v View, m string) (lo, hi float64) {
	if v == Fixed {
		return c.Lifts[m].AbsLo, c.Lifts[m].AbsHi
	}
	return c.Seq[m].AbsLo, c.Seq[m].AbsHi
}

// Guardrail is one guardrail metric's verdict.
type Guardrail struct {
	Metric string
	// Verdict is "harm" (significantly worse in the report's view), "ok"
	// (not significantly worse) or "no data".
	Verdict string
	Harm    bool
}

// HistPoint is one day of a comparison: the cumulative relative lift up
// to the day's end with the view's interval, and the day's own lift.
type HistPoint struct {
	Day                    time.Time
	CumRel, CumLo, CumHi   float64
	DayRel, DayLo, DayHi   float64
	ControlDay, VariantDay float64 // the day's metric values
}

// SRM is the sample-ratio-mismatch check over users.
type SRM struct {
	Stat, P float64
	DF      int
	Failed  bool
}

// DaySRM is one day's sample-ratio check.
type DaySRM struct {
	Day   time.Time
	Users map[string]float64 // by group key
	SRM
}

// Point is one interval of one group for the charts.
type Point struct {
	Start                                               time.Time
	Requests, Fills, Impressions, Clicks, RevenueMicros uint64
}

// Breakdown is one dimension's values with each group's metrics and the
// tests' fill-rate lifts (fixed-horizon, uncorrected: for exploring).
type Breakdown struct {
	Dim    string
	Values []BreakdownValue
	// NoImpressions: the rows carry impressions, but none by this
	// dimension (edges from before impressions carried their tokens'
	// dimensions), so revenue and the impression metrics are n/a.
	NoImpressions bool
}

// BreakdownValue is one value of a dimension ("" when the decision or
// the token had none: tools/abreport's valueLabel says what that means
// per dimension).
type BreakdownValue struct {
	Value    string
	Requests map[string]float64 // by group key
	// Revenue is each group's revenue (units, not micros) from the
	// impressions whose tokens carried the value; NaN when the rows
	// carry no revenue by dimension (edges from before it did).
	Revenue map[string]float64
	Metrics map[string]map[string]float64    // group key -> metric -> value
	Lifts   map[string]map[string]stats.Lift // test/variant -> metric -> lift
}

// BreakdownMetrics are the metrics breakdowns show: the main table's
// per-request and per-impression ones (revenue per user has no user
// count per value).
var BreakdownMetrics = []string{"fill_rate", "error_rate", "ctr", "ecpm", "revenue_per_request"}

// impressionMetric says whether m rests on impressions, clicks or
// revenue: what rows without them by dimension cannot break down.
func impressionMetric(m string) bool { return m == "ctr" || m == "ecpm" || m == "revenue_per_request" }

// ExperimentReport is one (env, experiment set, layer): each layer's rows
// count every request once, so layers are reported apart, never added.
type ExperimentReport struct {
	Env, Experiment string
	Layer           string // "" for a set without layers
	Snapshots       []string
	Edges           []string
	Groups          []*GroupTotals // control, tests by index, unassigned last
	Comparisons     []TestComparison
	SRM             SRM
	DaySRM          []DaySRM
	Series          map[string][]Point // by group key "test/variant"
	Breakdowns      []Breakdown
	CUPEDNote       string // why CUPED is off, or how it was applied
	Warnings        []string
}

// Report is the merged view of many edges' rows.
type Report struct {
	From, To    time.Time // the rows' actual span
	Files, Rows int
	Options     Options
	Experiments []*ExperimentReport
}

// GroupKey is "test/variant", the name of a group in series and output.
func GroupKey(test, variant string) string { return test + "/" + variant }

// BuildReport merges rows (already filtered by the caller) into per-test
// comparisons with the default options.
func BuildReport(rows []abtest.Row, files int) (*Report, error) {
	return Build(rows, files, Options{})
}

type ekey struct{ env, exp, layer string }

func dayOf(t time.Time) time.Time {
	return t.UTC().Truncate(24 * time.Hour)
}

// Build merges rows into the report with opts.
func Build(rows []abtest.Row, files int, opts Options) (*Report, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts.defaults()
	rep := &Report{Files: files, Rows: len(rows), Options: opts}
	exps := map[ekey]*ExperimentReport{}
	groups := map[ekey]map[string]*GroupTotals{}
	snaps := map[ekey]map[string]bool{}
	edges := map[ekey]map[string]bool{}
	series := map[ekey]map[string]map[time.Time]*Point{}
	// Edges that write breakdown rows leave their ordinary rows without
	// dimensions: those must not all count as "(unknown)".
	ownDims := opts.DimRows == nil && !slices.ContainsFunc(rows, func(r abtest.Row) bool { return r.Breakdown != "" })
	for i := range rows {
		r := &rows[i]
		if rep.From.IsZero() || r.Start.Before(rep.From) {
			rep.From = r.Start
		}
		if r.End.After(rep.To) {
			rep.To = r.End
		}
		k := ekey{r.Env, r.Experiment, r.Layer}
		er := exps[k]
		if er == nil {
			er = &ExperimentReport{Env: r.Env, Experiment: r.Experiment, Layer: r.Layer, Series: map[string][]Point{}}
			exps[k] = er
			groups[k] = map[string]*GroupTotals{}
			snaps[k] = map[string]bool{}
			edges[k] = map[string]bool{}
			series[k] = map[string]map[time.Time]*Point{}
		}
		if r.Snapshot != "" {
			snaps[k][r.Snapshot] = true
		}
		if r.Edge != "" {
			edges[k][r.Edge] = true
		}
		gk := GroupKey(r.Test, r.Variant)
		g := groups[k][gk]
		if g == nil {
			g = newGroup(r)
			groups[k][gk] = g
		}
		if r.Breakdown != "" {
			if opts.DimRows == nil {
				g.addDim(dimIndex(r.Breakdown), dimValue(r, dimIndex(r.Breakdown)), r)
			}
			continue
		}
		if g.ShareBP != r.ShareBP || g.Index != r.TestIndex {
			w := fmt.Sprintf("group %s: rows disagree on share_bp (%d vs %d) or test index: the experiment set changed under the same id; the sample-ratio check uses the first",
				gk, g.ShareBP, r.ShareBP)
			if !slices.Contains(er.Warnings, w) {
				er.Warnings = append(er.Warnings, w)
			}
		}
		if err := g.addRow(r, ownDims); err != nil {
			return nil, fmt.Errorf("row of %s: %w", r.Edge, err)
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
	if opts.DimRows != nil {
		for dim, rs := range opts.DimRows {
			for i := range rs {
				r := &rs[i]
				if g := groups[ekey{r.Env, r.Experiment, r.Layer}][GroupKey(r.Test, r.Variant)]; g != nil {
					g.addDim(dim, dimValue(r, dim), r)
				}
			}
		}
	}
	for i := range opts.Pre {
		r := &opts.Pre[i]
		if r.Breakdown != "" {
			continue
		}
		g := groups[ekey{r.Env, r.Experiment, r.Layer}][GroupKey(r.Test, r.Variant)]
		if g == nil {
			continue // a group that is not in the window
		}
		if err := g.addPre(r); err != nil {
			return nil, fmt.Errorf("pre-period row of %s: %w", r.Edge, err)
		}
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
			g.finish(k, opts.Users)
			er.Groups = append(er.Groups, g)
		}
		slices.SortFunc(er.Groups, func(a, b *GroupTotals) int {
			ra, rb := groupRank(a), groupRank(b)
			if ra != rb {
				return ra - rb
			}
			return strings.Compare(GroupKey(a.Test, a.Variant), GroupKey(b.Test, b.Variant))
		})
		er.compare(&opts)
		er.daySRM(opts.UserSketch.RelError())
		er.breakdowns(&opts)
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
		if a.Experiment != b.Experiment {
			return strings.Compare(a.Experiment, b.Experiment)
		}
		return strings.Compare(a.Layer, b.Layer)
	})
	return rep, nil
}

func newGroup(r *abtest.Row) *GroupTotals {
	g := &GroupTotals{Test: r.Test, Variant: r.Variant, Index: r.TestIndex, ShareBP: r.ShareBP,
		// The global holdout, like requests without a device, is not
		// part of a layer's comparisons.
		Unassigned: r.Variant == abtest.UnassignedVariant && r.Test == abtest.ControlTest || r.Test == abtest.HoldoutTest,
		days:       map[time.Time]*dayAcc{}}
	for d := range g.dims {
		g.dims[d] = map[string]*shardArr{}
	}
	return g
}

func mergeSketch(dst **hyperloglog.Sketch, sk *hyperloglog.Sketch) error {
	if sk == nil {
		return nil
	}
	if *dst == nil {
		c := sk.Clone()
		*dst = c
		return nil
	}
	return (*dst).Merge(sk)
}

func (g *GroupTotals) addDim(dim int, v string, r *abtest.Row) {
	a := g.dims[dim][v]
	if a == nil {
		a = &shardArr{}
		g.dims[dim][v] = a
	}
	a[r.Shard].addRow(r)
}

func (g *GroupTotals) addRow(r *abtest.Row, ownDims bool) error {
	g.Add(r)
	g.shard[r.Shard].addRow(r)
	day := dayOf(r.Start)
	d := g.days[day]
	if d == nil {
		d = &dayAcc{}
		g.days[day] = d
	}
	d.shard[r.Shard].addRow(r)
	if ownDims {
		for dim := range g.dims {
			g.addDim(dim, dimValue(r, dim), r)
		}
	}
	sk, err := r.Sketch()
	if err != nil {
		return err
	}
	if err := mergeSketch(&g.sketches[r.Shard], sk); err != nil {
		return err
	}
	return mergeSketch(&d.sketch, sk)
}

func (g *GroupTotals) addPre(r *abtest.Row) error {
	if g.pre == nil {
		g.pre = &shardArr{}
	}
	g.pre[r.Shard].addRow(r)
	sk, err := r.Sketch()
	if err != nil {
		return err
	}
	return mergeSketch(&g.preSk[r.Shard], sk)
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

func (g *GroupTotals) finish(k ekey, users func(UserKey) (float64, bool)) {
	key := UserKey{Env: k.env, Experiment: k.exp, Layer: k.layer, Test: g.Test, Variant: g.Variant}
	for sh := range g.shard {
		u := 0.0
		if users != nil {
			key.Shard = sh
			u, _ = users(key)
		} else if g.sketches[sh] != nil {
			u = float64(g.sketches[sh].Estimate())
		}
		g.shard[sh][fUsers] = u
		g.Users += u
		if g.pre != nil && g.preSk[sh] != nil {
			g.pre[sh][fUsers] = float64(g.preSk[sh].Estimate())
		}
	}
	for day, d := range g.days {
		if users != nil {
			key.Shard, key.Day = -1, day
			d.users, _ = users(key)
		} else if d.sketch != nil {
			d.users = float64(d.sketch.Estimate())
		}
	}
	g.Metrics = map[string]stats.RatioEstimate{}
	for _, m := range allMetrics() {
		g.Metrics[m] = metric(m, &g.shard)
	}
}

func allMetrics() []string {
	out := slices.Clone(MetricNames)
	for _, m := range GuardrailNames {
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

// clusters are a ratio metric's per-shard numerators and denominators.
func clusters(m string, a *shardArr) (x, y []float64) {
	x, y = make([]float64, abtest.Shards), make([]float64, abtest.Shards)
	num, den := -1, -1
	scale := 1.0
	switch m {
	case "fill_rate":
		num, den = fFills, fRequests
	case "error_rate":
		num, den = fErrors, fRequests
	case "ctr":
		num, den = fClicks, fImpressions
	case "ecpm":
		num, den, scale = fRevenue, fImpressions, 1000
	case "revenue_per_request":
		num, den = fRevenue, fRequests
	case "revenue_per_user":
		num, den = fRevenue, fUsers
	default:
		panic("report: no ratio metric " + m)
	}
	for i := range a {
		x[i], y[i] = a[i][num]*scale, a[i][den]
	}
	return x, y
}

// metric estimates m from per-shard totals: a ratio of sums with
// Cochran's variance, or the p99 latency with the delete-one-shard
// jackknife's.
func metric(m string, a *shardArr) stats.RatioEstimate {
	if m == "p99_latency_us" {
		var present []int
		var total [abtest.NumLatencyBuckets]float64
		for i := range a {
			if a[i][fRequests] > 0 || sum(a[i].latency()) > 0 {
				present = append(present, i)
			}
			for j, v := range a[i].latency() {
				total[j] += v
			}
		}
		h := make([]uint64, abtest.NumLatencyBuckets)
		return stats.Jackknife(present, func(skip int) float64 {
			for j := range h {
				v := total[j]
				if skip >= 0 {
					v -= a[skip][fLatency+j]
				}
				h[j] = uint64(math.Round(v))
			}
			return LatencyQuantile(h, 0.99)
		})
	}
	x, y := clusters(m, a)
	return stats.Ratio(x, y)
}

func sum(v []float64) (s float64) {
	for _, x := range v {
		s += x
	}
	return s
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

// Add adds a row's counters; a breakdown row adds nothing (its requests
// are in the ordinary rows too).
func (t *Totals) Add(r *abtest.Row) {
	if r.Breakdown != "" {
		return
	}
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

// UserSketch names what counted a report's users. Each loader defines its
// own once (RowsSketch here; the warehouse's in tools/abreport) and the
// report carries it in Options: the pages print Describe and the
// sample-ratio check uses RelError, so the wording and the figure the
// statistics use cannot drift apart.
type UserSketch struct {
	Name      string // what counted, as the report prints it
	Precision uint   // the HyperLogLog's precision: 2^Precision registers
}

// RelError is one count's relative standard error, 1.04/sqrt(2^Precision)
// (Flajolet et al. 2007): an upper bound while a sketch is small and
// near exact.
func (s UserSketch) RelError() float64 {
	return 1.04 / math.Sqrt(float64(uint(1)<<s.Precision))
}

// Describe is the sentence the text and HTML reports print about users.
func (s UserSketch) Describe() string {
	return fmt.Sprintf("Users are %s: HyperLogLog precision %d, %.4g%% relative standard error per count (1.04/sqrt(2^%d)), "+
		"one count per group and user shard, summed over the %d disjoint shards (a day's users: one count per group).",
		s.Name, s.Precision, 100*s.RelError(), s.Precision, abtest.Shards)
}

// RowsSketch is the rows files' user count: the edges' per-row
// axiomhq/hyperloglog sketches, merged per group and shard.
var RowsSketch = UserSketch{Name: "estimates from the rows files' axiomhq/hyperloglog sketches", Precision: abtest.HLLPrecision}

// usersVariance bounds the variance of Users from the sketches' error: the
// shards' sketches are independent, so their variances add.
func (g *GroupTotals) usersVariance(rel float64) float64 {
	var v float64
	for i := range g.shard {
		e := rel * g.shard[i][fUsers]
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

// sortedDays lists the days with rows of any group.
func (er *ExperimentReport) sortedDays() []time.Time {
	var out []time.Time
	for _, g := range er.Groups {
		for d := range g.days {
			if !slices.ContainsFunc(out, d.Equal) {
				out = append(out, d)
			}
		}
	}
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return out
}

// cupedMetric says whether CUPED can adjust m (ratio metrics whose
// pre-period the rows have).
func cupedMetric(m string) bool { return m != "p99_latency_us" }

// lift compares variant with control on metric m over the shard totals
// given, with CUPED when both have a pre-period; it returns the variance
// ratio CUPED left (NaN when not applied).
func lift(m string, v, c *shardArr, vPre, cPre *shardArr) (stats.Lift, float64) {
	if vPre != nil && cPre != nil && cupedMetric(m) {
		vx, vy := clusters(m, v)
		cx, cy := clusters(m, c)
		vpx, vpy := clusters(m, vPre)
		cpx, cpy := clusters(m, cPre)
		mk := func(x, y, px, py []float64) []stats.CUPEDCluster {
			out := make([]stats.CUPEDCluster, len(x))
			for i := range x {
				out[i] = stats.CUPEDCluster{X: x[i], Y: y[i], PX: px[i], PY: py[i]}
			}
			return out
		}
		if res, ok := stats.CUPED([][]stats.CUPEDCluster{mk(cx, cy, cpx, cpy), mk(vx, vy, vpx, vpy)}); ok {
			return stats.Compare(res.Groups[1], res.Groups[0]), res.VarianceRatio
		}
	}
	return stats.Compare(metric(m, v), metric(m, c)), math.NaN()
}

func (er *ExperimentReport) compare(o *Options) {
	ctl := er.Control()
	var obs, exp, hllVar []float64
	days := er.sortedDays()
	usePre := ctl != nil && ctl.pre != nil
	for _, g := range er.Groups {
		if g.Unassigned {
			continue
		}
		obs = append(obs, g.Users)
		exp = append(exp, float64(g.ShareBP))
		hllVar = append(hllVar, g.usersVariance(o.UserSketch.RelError()))
		if ctl == nil || g == ctl {
			continue
		}
		if g.pre == nil {
			usePre = false
		}
		er.Comparisons = append(er.Comparisons, er.compareGroup(o, g, ctl, days))
	}
	switch {
	case len(o.Pre) == 0:
		er.CUPEDNote = "CUPED off: no pre-period given (--pre-from/--pre-to)"
	case !usePre:
		er.CUPEDNote = "CUPED off for some groups: the pre-period has no rows of them"
	default:
		er.CUPEDNote = "CUPED on: each user shard's pre-period metric is the covariate"
	}
	er.SRM = SRM{P: math.NaN()}
	if len(obs) >= 2 {
		er.SRM.Stat, er.SRM.DF, er.SRM.P = stats.ChiSquareGOFExtra(obs, exp, hllVar)
		er.SRM.Failed = er.SRM.P < SRMThreshold
	}
	if ctl == nil {
		er.Warnings = append(er.Warnings, "no control rows: nothing to compare the tests with")
	}
	// Holm and BH across every test and primary metric of the report.
	var ps []float64
	for i := range er.Comparisons {
		for _, m := range MetricNames {
			ps = append(ps, er.Comparisons[i].P(o.View, m))
		}
	}
	holm, bh := stats.Holm(ps), stats.BH(ps)
	j := 0
	for i := range er.Comparisons {
		c := &er.Comparisons[i]
		c.Holm, c.BH = map[string]float64{}, map[string]float64{}
		for _, m := range MetricNames {
			c.Holm[m], c.BH[m] = holm[j], bh[j]
			j++
		}
	}
}

func (er *ExperimentReport) compareGroup(o *Options, g, ctl *GroupTotals, days []time.Time) TestComparison {
	c := TestComparison{Test: g.Test, Variant: g.Variant, Lifts: map[string]stats.Lift{}, Seq: map[string]stats.SeqLift{},
		CUPED: map[string]float64{}, History: map[string][]HistPoint{}}
	var vPre, cPre *shardArr
	if g.pre != nil && ctl.pre != nil {
		vPre, cPre = g.pre, ctl.pre
	}
	// Cumulative shard totals at the end of each day: the looks.
	var vCum, cCum shardArr
	type look struct {
		day        time.Time
		vDay, cDay *shardArr
		v, c       shardArr
	}
	looks := make([]look, 0, len(days))
	for _, d := range days {
		l := look{day: d}
		if a := g.days[d]; a != nil {
			vCum.add(&a.shard)
			l.vDay = &a.shard
		}
		if a := ctl.days[d]; a != nil {
			cCum.add(&a.shard)
			l.cDay = &a.shard
		}
		l.v, l.c = vCum, cCum
		looks = append(looks, l)
	}
	for _, m := range allMetrics() {
		full, vr := lift(m, &g.shard, &ctl.shard, vPre, cPre)
		c.Lifts[m] = full
		if !math.IsNaN(vr) {
			c.CUPED[m] = vr
		}
		var seqLooks []stats.Lift
		var controls []float64
		var hist []HistPoint
		for i := range looks {
			l := &looks[i]
			var cum stats.Lift
			cv := 0.0
			if i == len(looks)-1 {
				cum, cv = full, ctl.Metrics[m].Value // the window, with its user counts
			} else if m != "revenue_per_user" { // users per shard are counted for the window only
				cum, _ = lift(m, &l.v, &l.c, vPre, cPre)
				cv = metric(m, &l.c).Value
			} else {
				cum, cv = stats.Compare(stats.RatioEstimate{Value: math.NaN()}, stats.RatioEstimate{Value: math.NaN()}), math.NaN()
			}
			seqLooks = append(seqLooks, cum)
			controls = append(controls, cv)
			sq := stats.Sequential(seqLooks, controls, o.TauRel, o.Alpha)
			hp := HistPoint{Day: l.day, CumRel: cum.Rel, CumLo: cum.RelLo, CumHi: cum.RelHi,
				DayRel: math.NaN(), DayLo: math.NaN(), DayHi: math.NaN(), ControlDay: math.NaN(), VariantDay: math.NaN()}
			if o.View == Sequential {
				hp.CumLo, hp.CumHi = sq.RelLo, sq.RelHi
			}
			if l.vDay != nil && l.cDay != nil && m != "revenue_per_user" {
				dl := stats.Compare(metric(m, l.vDay), metric(m, l.cDay))
				hp.DayRel, hp.DayLo, hp.DayHi = dl.Rel, dl.RelLo, dl.RelHi
				hp.ControlDay, hp.VariantDay = metric(m, l.cDay).Value, metric(m, l.vDay).Value
			}
			hist = append(hist, hp)
		}
		c.Seq[m] = stats.Sequential(seqLooks, controls, o.TauRel, o.Alpha)
		c.History[m] = hist
	}
	for _, m := range GuardrailNames {
		c.Guardrails = append(c.Guardrails, verdict(&c, o, m))
	}
	return c
}

// verdict judges a guardrail in the report's view: "harm" when the lift
// is in the bad direction and significant at alpha (an interval wholly
// on the bad side of zero), "ok" otherwise, "no data" without traffic to
// judge. Guardrails are not in the Holm/BH family: a missed harm costs
// more than a false alarm, so each is judged at alpha on its own.
func verdict(c *TestComparison, o *Options, m string) Guardrail {
	bad := GuardrailBad[m]
	p := c.P(o.View, m)
	l := c.Lifts[m]
	gr := Guardrail{Metric: m, Verdict: "ok"}
	switch {
	case math.IsNaN(l.Abs):
		gr.Verdict = "no data"
	case math.IsNaN(p) && l.Var == 0: // no variance at all: both exact (e.g. no errors anywhere)
		if float64(bad)*l.Abs > 0 {
			gr.Verdict, gr.Harm = "harm", true
		}
	case math.IsNaN(p):
		gr.Verdict = "no data"
	case p < o.Alpha && float64(bad)*l.Abs > 0:
		gr.Verdict, gr.Harm = "harm", true
	}
	return gr
}

// daySRM runs the sample-ratio check on each day's users (each group's
// day count is one sketch: its error is rel of the count).
func (er *ExperimentReport) daySRM(rel float64) {
	for _, d := range er.sortedDays() {
		ds := DaySRM{Day: d, Users: map[string]float64{}, SRM: SRM{P: math.NaN()}}
		var obs, exp, hv []float64
		for _, g := range er.Groups {
			if g.Unassigned {
				continue
			}
			u := 0.0
			if a := g.days[d]; a != nil {
				u = a.users
			}
			ds.Users[GroupKey(g.Test, g.Variant)] = u
			obs = append(obs, u)
			exp = append(exp, float64(g.ShareBP))
			e := rel * u
			hv = append(hv, e*e)
		}
		if len(obs) >= 2 {
			ds.Stat, ds.DF, ds.P = stats.ChiSquareGOFExtra(obs, exp, hv)
			ds.Failed = ds.P < SRMThreshold
		}
		er.DaySRM = append(er.DaySRM, ds)
	}
}

// breakdowns lists each dimension's values by requests, the top
// MaxBreakdown and "(other)".
func (er *ExperimentReport) breakdowns(o *Options) {
	ctl := er.Control()
	for dim := range numDims {
		reqs := map[string]float64{}
		for _, g := range er.Groups {
			for v, a := range g.dims[dim] {
				for i := range a {
					reqs[v] += a[i][fRequests]
				}
			}
		}
		if len(reqs) == 0 || len(reqs) == 1 && reqs[""] >= 0 && hasOnly(reqs, "") {
			continue // rows without this dimension
		}
		vals := make([]string, 0, len(reqs))
		for v := range reqs {
			vals = append(vals, v)
		}
		slices.SortFunc(vals, func(a, b string) int {
			if reqs[a] != reqs[b] {
				if reqs[a] > reqs[b] {
					return -1
				}
				return 1
			}
			return strings.Compare(a, b)
		})
		top := vals
		var rest []string
		if len(vals) > o.MaxBreakdown {
			top, rest = vals[:o.MaxBreakdown], vals[o.MaxBreakdown:]
		}
		bd := Breakdown{Dim: DimNames[dim]}
		// Rows of edges from before impressions reached the counters with
		// their tokens' dimensions carry no impressions by dimension:
		// "-", not a 0 that reads as a finding.
		var dimImps, allImps float64
		for _, g := range er.Groups {
			allImps += float64(g.Impressions)
			for _, a := range g.dims[dim] {
				for i := range a {
					dimImps += a[i][fImpressions]
				}
			}
		}
		noRevenue := dimImps == 0 && allImps > 0
		bd.NoImpressions = noRevenue
		collect := func(label string, names []string) {
			bv := BreakdownValue{Value: label, Requests: map[string]float64{}, Revenue: map[string]float64{},
				Metrics: map[string]map[string]float64{}, Lifts: map[string]map[string]stats.Lift{}}
			arrs := map[*GroupTotals]*shardArr{}
			for _, g := range er.Groups {
				a := &shardArr{}
				for _, n := range names {
					if x := g.dims[dim][n]; x != nil {
						a.add(x)
					}
				}
				arrs[g] = a
				gk := GroupKey(g.Test, g.Variant)
				var r, rev float64
				for i := range a {
					r += a[i][fRequests]
					rev += a[i][fRevenue]
				}
				bv.Requests[gk] = r
				bv.Revenue[gk] = rev
				if noRevenue {
					bv.Revenue[gk] = math.NaN()
				}
				bv.Metrics[gk] = map[string]float64{}
				for _, m := range BreakdownMetrics {
					bv.Metrics[gk][m] = metric(m, a).Value
					if impressionMetric(m) && noRevenue {
						bv.Metrics[gk][m] = math.NaN()
					}
				}
			}
			if ctl != nil {
				for _, g := range er.Groups {
					if g == ctl || g.Unassigned {
						continue
					}
					lm := map[string]stats.Lift{}
					for _, m := range BreakdownMetrics {
						if impressionMetric(m) && noRevenue {
							continue
						}
						lm[m] = stats.Compare(metric(m, arrs[g]), metric(m, arrs[ctl]))
					}
					bv.Lifts[GroupKey(g.Test, g.Variant)] = lm
				}
			}
			bd.Values = append(bd.Values, bv)
		}
		for _, v := range top {
			collect(v, []string{v})
		}
		if len(rest) > 0 {
			collect("(other)", rest)
		}
		er.Breakdowns = append(er.Breakdowns, bd)
	}
}

func hasOnly(m map[string]float64, k string) bool {
	_, ok := m[k]
	return ok && len(m) == 1
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
