// Package abreport is `adtool abreport` and `adtool stagecheck`: it reads
// the rows files edges write (rows.WriteFile), merges them and prints
// per-test comparisons (text, CSV or a self-contained HTML page), or
// compares staging with production for a monitoring check.
package abreport

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/adedge/adedge/abtest"
	"github.com/adedge/adedge/abtest/report"
	"github.com/adedge/adedge/abtest/rows"
	"github.com/adedge/adedge/abtest/stats"
)

// Skipped is a rows file refused as a whole, and why.
type Skipped struct {
	Path string
	Err  error
}

// Filter selects rows: the interval must lie inside [From, To) when set,
// and Env must match when not empty.
type Filter struct {
	From, To time.Time
	Env      string
}

func (f *Filter) keep(r *abtest.Row) bool {
	if !f.From.IsZero() && r.Start.Before(f.From) {
		return false
	}
	if !f.To.IsZero() && r.End.After(f.To) {
		return false
	}
	return f.Env == "" || r.Env == f.Env
}

// Load reads every rows file under dirs. A file that fails any check is
// skipped whole and listed; it never contributes a row.
func Load(dirs []string, f Filter) (out []abtest.Row, files int, skipped []Skipped, err error) {
	paths, err := rows.ListFiles(dirs)
	if err != nil {
		return nil, 0, nil, err
	}
	for _, p := range paths {
		rs, err := rows.ReadFile(p)
		if err != nil {
			skipped = append(skipped, Skipped{p, err})
			continue
		}
		used := false
		for i := range rs {
			if f.keep(&rs[i]) {
				out = append(out, rs[i])
				used = true
			}
		}
		if used {
			files++
		}
	}
	return out, files, skipped, nil
}

// metric labels and how to print values.
var metricLabel = map[string]string{
	"fill_rate":           "fill rate",
	"ctr":                 "CTR",
	"ecpm":                "eCPM",
	"revenue_per_request": "revenue/request",
	"revenue_per_user":    "revenue/user",
	"error_rate":          "error rate",
	"p99_latency_us":      "p99 latency",
}

func fmtMetric(m string, v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "-"
	}
	switch m {
	case "fill_rate", "ctr", "error_rate":
		return fmt.Sprintf("%.3f%%", 100*v)
	case "p99_latency_us":
		return fmt.Sprintf("%.0fus", v)
	case "ecpm":
		return fmt.Sprintf("%.4f", v)
	default:
		return fmt.Sprintf("%.6f", v)
	}
}

func fmtAbs(m string, v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	switch m {
	case "fill_rate", "ctr", "error_rate":
		return fmt.Sprintf("%+.3fpp", 100*v)
	case "p99_latency_us":
		return fmt.Sprintf("%+.0fus", v)
	case "ecpm":
		return fmt.Sprintf("%+.4f", v)
	default:
		return fmt.Sprintf("%+.6f", v)
	}
}

func fmtRel(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "-"
	}
	if math.Abs(v) < 5e-7 {
		v = 0 // no "-0.00%"
	}
	return fmt.Sprintf("%+.2f%%", 100*v)
}

func fmtP(p float64) string {
	switch {
	case math.IsNaN(p):
		return "-"
	case p < 0.0001:
		return "<0.0001"
	}
	return fmt.Sprintf("%.4f", p)
}

func fmtShare(g *report.GroupTotals) string {
	if g.Unassigned {
		return "-"
	}
	return fmt.Sprintf("%.2f%%", float64(g.ShareBP)/100)
}

// srmLine is the sample-ratio verdict, loud when it fails.
func srmLine(er *report.ExperimentReport) string {
	s := er.SRM
	if math.IsNaN(s.P) {
		return "sample ratio check: not enough groups"
	}
	if s.Failed {
		return fmt.Sprintf("!!! SAMPLE RATIO MISMATCH: users per group do not match the configured shares (chi2=%.2f, df=%d, p=%s < %g). "+
			"Assignment or logging is broken for this experiment: DO NOT TRUST THE LIFTS BELOW until the cause is found. !!!",
			s.Stat, s.DF, fmtP(s.P), report.SRMThreshold)
	}
	return fmt.Sprintf("sample ratio check: OK (users vs configured shares: chi2=%.2f, df=%d, p=%s)", s.Stat, s.DF, fmtP(s.P))
}

// WriteText prints the report as aligned tables.
func WriteText(w io.Writer, rep *report.Report, skipped []Skipped) {
	fmt.Fprintf(w, "A/B report: %s .. %s, %d rows from %d files\n", tfmt(rep.From), tfmt(rep.To), rep.Rows, rep.Files)
	fmt.Fprintln(w, rep.Options.UserSketch.Describe())
	writeSkipped(w, skipped)
	if len(rep.Experiments) == 0 {
		fmt.Fprintln(w, "no rows in the window")
	}
	for _, er := range rep.Experiments {
		layer := ""
		if er.Layer != "" {
			layer = ", layer " + er.Layer
		}
		fmt.Fprintf(w, "\n== env %s, experiment set %s%s (edges: %d; snapshots %v)\n", er.Env, er.Experiment, layer, len(er.Edges), er.Snapshots)
		for _, wmsg := range er.Warnings {
			fmt.Fprintf(w, "WARNING: %s\n", wmsg)
		}
		fmt.Fprintln(w, srmLine(er))
		fmt.Fprintf(w, "\n%-34s %7s %9s %10s %9s %8s %10s %12s %12s\n", "group (test/variant)", "share", "users", "requests", "fill", "CTR", "eCPM", "rev/request", "rev/user")
		for _, g := range er.Groups {
			fmt.Fprintf(w, "%-34s %7s %9.0f %10d %9s %8s %10s %12s %12s\n", report.GroupKey(g.Test, g.Variant), fmtShare(g), g.Users, g.Requests,
				fmtMetric("fill_rate", g.Metrics["fill_rate"].Value), fmtMetric("ctr", g.Metrics["ctr"].Value),
				fmtMetric("ecpm", g.Metrics["ecpm"].Value), fmtMetric("rpr", g.Metrics["revenue_per_request"].Value),
				fmtMetric("rpu", g.Metrics["revenue_per_user"].Value))
		}
		ctl := er.Control()
		view := rep.Options.View
		for _, c := range er.Comparisons {
			fmt.Fprintf(w, "\n-- %s (%s) vs control: %s\n", c.Test, c.Variant, viewLine(rep, er))
			fmt.Fprintf(w, "%-16s %12s %12s %30s %30s %9s %9s %9s %9s %s\n", "metric", "control", "variant",
				"abs lift ["+intervalName(view)+"]", "rel lift ["+intervalName(view)+"]", "p", "p fixed", "p Holm", "p BH", "CUPED")
			vg := er.Group(c.Test, c.Variant)
			for _, m := range report.MetricNames {
				l := c.Lifts[m]
				alo, ahi := c.AbsCI(view, m)
				rlo, rhi := c.RelCI(view, m)
				fmt.Fprintf(w, "%-16s %12s %12s %30s %30s %9s %9s %9s %9s %s\n", metricLabel[m], fmtMetric(m, ctl.Metrics[m].Value), fmtMetric(m, vg.Metrics[m].Value),
					fmtAbs(m, l.Abs)+" ["+fmtAbs(m, alo)+", "+fmtAbs(m, ahi)+"]",
					fmtRel(l.Rel)+" ["+fmtRel(rlo)+", "+fmtRel(rhi)+"]", fmtP(c.P(view, m)), fmtP(l.P), fmtP(c.Holm[m]), fmtP(c.BH[m]), cupedCell(c, m))
			}
			fmt.Fprintf(w, "guardrails (harm = significantly worse, %s):\n", intervalName(view))
			for _, gr := range c.Guardrails {
				m := gr.Metric
				l := c.Lifts[m]
				rlo, rhi := c.RelCI(view, m)
				mark := ""
				if gr.Harm {
					mark = "  !!! HARM"
				}
				fmt.Fprintf(w, "  %-16s %12s -> %-12s %10s [%s, %s] p=%s  %s%s\n", metricLabel[m], fmtMetric(m, ctl.Metrics[m].Value), fmtMetric(m, vg.Metrics[m].Value),
					fmtRel(l.Rel), fmtRel(rlo), fmtRel(rhi), fmtP(c.P(view, m)), gr.Verdict, mark)
			}
		}
		if len(er.DaySRM) > 1 {
			fmt.Fprintln(w, "\nsample ratio by day:")
			for _, d := range er.DaySRM {
				fmt.Fprintf(w, "  %s  p=%s%s\n", d.Day.Format("2006-01-02"), fmtP(d.P), map[bool]string{true: "  !!! MISMATCH", false: ""}[d.Failed])
			}
		}
		for _, bd := range er.Breakdowns {
			fmt.Fprintf(w, "\nby %s (fill rate, revenue, eCPM; explore, do not decide):\n", bd.Dim)
			if n := breakdownNote(bd); n != "" {
				fmt.Fprintf(w, "  (%s)\n", n)
			}
			for _, v := range bd.Values {
				fmt.Fprintf(w, "  %-12s", valueLabel(bd.Dim, v.Value))
				for _, g := range er.Groups {
					gk := report.GroupKey(g.Test, g.Variant)
					fmt.Fprintf(w, "  %s fill %s rev %s eCPM %s (%.0f req)", gk, fmtMetric("fill_rate", v.Metrics[gk]["fill_rate"]),
						fmtRevenue(v.Revenue[gk]), fmtMetric("ecpm", v.Metrics[gk]["ecpm"]), v.Requests[gk])
				}
				fmt.Fprintln(w)
			}
		}
	}
}

// viewLine says which statistics lead the tables.
func viewLine(rep *report.Report, er *report.ExperimentReport) string {
	o := rep.Options
	n := len(er.Comparisons) * len(report.MetricNames)
	if o.View == report.Fixed {
		return fmt.Sprintf("FIXED-HORIZON view (Welch t; valid for one look at a planned size only), %g%% CIs; Holm/BH across %d comparisons; %s",
			100*(1-o.Alpha), n, er.CUPEDNote)
	}
	return fmt.Sprintf("sequential view (always-valid p-values and %g%% confidence sequences, mSPRT, mixing sd %g%% of control; valid at every look); Holm/BH across %d comparisons; %s",
		100*(1-o.Alpha), 100*o.TauRel, n, er.CUPEDNote)
}

func intervalName(v report.View) string {
	if v == report.Fixed {
		return "95% CI"
	}
	return "95% CS"
}

func cupedCell(c report.TestComparison, m string) string {
	if r, ok := c.CUPED[m]; ok && !math.IsNaN(r) {
		return fmt.Sprintf("var x%.2f", r)
	}
	return "-"
}

// fmtRevenue is a revenue sum in units ("-" when n/a).
func fmtRevenue(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf("%.2f", v)
}

// valueLabel is how the reports print a breakdown value; "" is a value
// the decision (or the impression's token) did not have, which means a
// different thing per dimension (emptyMeaning).
func valueLabel(dim, v string) string {
	if v != "" {
		return v
	}
	if dim == abtest.DimFormat {
		return "(no format)"
	}
	return "(unknown)"
}

// emptyMeaning says what counts under a dimension's empty value, from
// server/edge's decisionDims (requests) and trackDims (impressions and
// clicks: a v1 token carries no dimensions).
func emptyMeaning(dim string) string {
	what := map[string]string{
		abtest.DimCountry: "requests whose country the edge could not tell",
		abtest.DimOS:      "requests of an OS the snapshot does not know",
		// A no-fill in a slot of several formats is that set
		// ("banner+video"), not this.
		abtest.DimFormat: "requests for an unknown placement or for a slot that takes none of the request's formats",
	}[dim]
	if what == "" {
		return ""
	}
	return valueLabel(dim, "") + ": " + what + "; and impressions and clicks of v1 tokens, which carry no dimensions"
}

// breakdownNote is what a breakdown's cells need said: what its empty
// value holds, when it has one, and why revenue is n/a, when it is.
func breakdownNote(bd report.Breakdown) string {
	var parts []string
	if m := emptyMeaning(bd.Dim); m != "" && slices.ContainsFunc(bd.Values, func(v report.BreakdownValue) bool { return v.Value == "" }) {
		parts = append(parts, m)
	}
	if bd.NoImpressions {
		parts = append(parts, fmt.Sprintf("these rows carry no impressions by %s (edges from before impressions carried their tokens' dimensions): revenue, CTR, eCPM and revenue per request are n/a", bd.Dim))
	}
	return strings.Join(parts, ". ")
}

func writeSkipped(w io.Writer, skipped []Skipped) {
	if len(skipped) == 0 {
		return
	}
	fmt.Fprintf(w, "WARNING: %d rows file(s) skipped whole (not merged):\n", len(skipped))
	for _, s := range skipped {
		fmt.Fprintf(w, "  %s: %v\n", s.Path, s.Err)
	}
}

func tfmt(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// WriteCSV prints one line per (env, experiment, test, variant, metric):
// a long format spreadsheets and dataframes pivot as they like. The
// first columns are the fixed-horizon statistics (as before the
// sequential view existed); the sequential, adjusted, CUPED and guardrail
// columns follow; then dimension, dimension_value and revenue. Lines with
// an empty dimension are the groups' (as before breakdowns came to the
// CSV); then each breakdown value's lines, per group and breakdown metric,
// with that value's requests, revenue and fixed-horizon lifts
// (uncorrected: no Holm/BH, no sequential columns; no users per value).
// New columns only ever go at the end, so readers by position keep working.
func WriteCSV(w io.Writer, rep *report.Report) error {
	cw := newCSV(w)
	cw.row("env", "experiment", "test", "variant", "share_bp", "users", "requests", "metric", "control_value", "variant_value",
		"abs_lift", "abs_ci_low", "abs_ci_high", "rel_lift", "rel_ci_low", "rel_ci_high", "p_value", "df", "srm_p_value", "srm_failed",
		"view", "seq_p_value", "seq_abs_low", "seq_abs_high", "seq_rel_low", "seq_rel_high", "p_holm", "p_bh", "cuped_variance_ratio", "guardrail_verdict",
		"dimension", "dimension_value", "revenue")
	metrics := slices.Clone(report.MetricNames)
	for _, m := range report.GuardrailNames {
		if !slices.Contains(metrics, m) {
			metrics = append(metrics, m)
		}
	}
	for _, er := range rep.Experiments {
		ctl := er.Control()
		for _, g := range er.Groups {
			var comp *report.TestComparison
			for i := range er.Comparisons {
				if er.Comparisons[i].Test == g.Test && er.Comparisons[i].Variant == g.Variant {
					comp = &er.Comparisons[i]
				}
			}
			for _, m := range metrics {
				l := newCSVLine(rep, er, g, m)
				l.users, l.requests, l.variant, l.revenue = num(g.Users), fmt.Sprint(g.Requests), g.Metrics[m].Value, float64(g.RevenueMicros)/1e6
				if ctl != nil {
					l.control = ctl.Metrics[m].Value
				}
				if comp != nil {
					l.lift, l.seq = comp.Lifts[m], comp.Seq[m]
					if v, ok := comp.Holm[m]; ok {
						l.holm, l.bh = v, comp.BH[m]
					}
					if v, ok := comp.CUPED[m]; ok {
						l.cuped = v
					}
					for _, gr := range comp.Guardrails {
						if gr.Metric == m {
							l.verdict = gr.Verdict
						}
					}
				}
				cw.line(&l)
			}
		}
		for _, bd := range er.Breakdowns {
			for _, v := range bd.Values {
				for _, g := range er.Groups {
					gk := report.GroupKey(g.Test, g.Variant)
					for _, m := range report.BreakdownMetrics {
						l := newCSVLine(rep, er, g, m)
						l.dim, l.value = bd.Dim, valueLabel(bd.Dim, v.Value)
						l.requests, l.revenue, l.variant = fmt.Sprintf("%.0f", v.Requests[gk]), v.Revenue[gk], v.Metrics[gk][m]
						if ctl != nil {
							l.control = v.Metrics[report.GroupKey(ctl.Test, ctl.Variant)][m]
						}
						if lf, ok := v.Lifts[gk][m]; ok {
							l.lift = lf
						}
						cw.line(&l)
					}
				}
			}
		}
	}
	return cw.flush()
}

// csvLine is one CSV line's cells before formatting (NaN: null).
type csvLine struct {
	env, experiment, test, variantName, view, metric string
	share                                            uint32
	users, requests                                  string
	control, variant                                 float64
	lift                                             stats.Lift
	seq                                              stats.SeqLift
	srmP                                             float64
	srmFailed                                        bool
	holm, bh, cuped                                  float64
	verdict, dim, value                              string
	revenue                                          float64
}

// newCSVLine is group g's line for metric m with every statistic null.
func newCSVLine(rep *report.Report, er *report.ExperimentReport, g *report.GroupTotals, m string) csvLine {
	nan := math.NaN()
	return csvLine{env: er.Env, experiment: er.Experiment, test: g.Test, variantName: g.Variant, view: string(rep.Options.View), metric: m,
		share: g.ShareBP, control: nan, variant: nan,
		lift: stats.Lift{Abs: nan, AbsLo: nan, AbsHi: nan, Rel: nan, RelLo: nan, RelHi: nan, P: nan, DF: nan},
		seq:  stats.SeqLift{P: nan, AbsLo: nan, AbsHi: nan, RelLo: nan, RelHi: nan},
		srmP: er.SRM.P, srmFailed: er.SRM.Failed, holm: nan, bh: nan, cuped: nan, revenue: nan}
}

func (c *csvWriter) line(x *csvLine) {
	l, sq := &x.lift, &x.seq
	revenue := ""
	if !math.IsNaN(x.revenue) {
		revenue = fmt.Sprintf("%.6f", x.revenue) // units to the micro
	}
	c.row(x.env, x.experiment, x.test, x.variantName, fmt.Sprint(x.share), x.users, x.requests, x.metric,
		num(x.control), num(x.variant), num(l.Abs), num(l.AbsLo), num(l.AbsHi), num(l.Rel), num(l.RelLo), num(l.RelHi),
		num(l.P), num(l.DF), num(x.srmP), fmt.Sprint(x.srmFailed),
		x.view, num(sq.P), num(sq.AbsLo), num(sq.AbsHi), num(sq.RelLo), num(sq.RelHi), num(x.holm), num(x.bh), num(x.cuped), x.verdict,
		x.dim, x.value, revenue)
}

// num prints a float for CSV: empty for NaN so readers see a null.
func num(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return ""
	}
	return fmt.Sprintf("%.10g", v)
}
