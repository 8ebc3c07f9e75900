package abreport

import (
	"fmt"
	"html"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/adedge/adedge/abtest/report"
)

// palette: control first (grey-blue), tests in distinct hues.
var palette = []string{"#4c6a92", "#d9822b", "#2e9e5b", "#b8336a", "#7a5cc7", "#888888"}

// WriteHTML writes one self-contained page: tables, a forest plot of the
// lifts and charts over time, as inline SVG and CSS; no scripts, fonts or
// other files to fetch.
func WriteHTML(w io.Writer, rep *report.Report, skipped []Skipped) error {
	var b strings.Builder
	b.WriteString(`<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>adedge A/B report</title><style>
body{font-family:-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:18px;margin-top:36px;border-bottom:1px solid #ccc;padding-bottom:4px}h3{font-size:15px;margin:20px 0 6px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}.scroll{overflow-x:auto;max-width:100%}.bd td.bdv{vertical-align:top;font-weight:600;border-bottom:1px solid #bbb}th,td{padding:4px 10px;border-bottom:1px solid #e3e3e3;text-align:right}
th{background:#f4f6f8}td.l,th.l{text-align:left}.sig{font-weight:bold}.pos{color:#17803d}.neg{color:#b3261e}
.srmbad{background:#b3261e;color:#fff;padding:12px 16px;font-weight:bold;font-size:16px;border-radius:4px}
.srmok{background:#e7f4ea;padding:8px 12px;border-radius:4px}.warn{background:#fff4d6;padding:8px 12px;border-radius:4px;margin:4px 0}
.v-harm{background:#b3261e;color:#fff;padding:1px 6px;border-radius:3px;font-weight:bold}.v-ok{background:#17803d;color:#fff;padding:1px 6px;border-radius:3px}
.v-inconclusive,.v-no-data{background:#ddd;padding:1px 6px;border-radius:3px}
.charts{display:flex;flex-wrap:wrap;gap:16px}.note{color:#666;font-size:12px}
svg text{font-family:inherit}
</style></head><body>`)
	fmt.Fprintf(&b, "<h1>A/B report</h1><p>%s &ndash; %s &middot; %d rows from %d files</p>", tfmt(rep.From), tfmt(rep.To), rep.Rows, rep.Files)
	if len(skipped) > 0 {
		fmt.Fprintf(&b, `<div class="warn"><b>%d rows file(s) skipped whole</b> (not merged):<ul>`, len(skipped))
		for _, s := range skipped {
			fmt.Fprintf(&b, "<li>%s: %s</li>", esc(s.Path), esc(s.Err.Error()))
		}
		b.WriteString("</ul></div>")
	}
	if len(rep.Experiments) == 0 {
		b.WriteString("<p>No rows in the window.</p>")
	}
	for _, er := range rep.Experiments {
		layer := ""
		if er.Layer != "" {
			layer = " &middot; layer " + esc(er.Layer)
		}
		fmt.Fprintf(&b, "<h2>env %s &middot; experiment set %s%s</h2><p class=note>edges: %d; snapshots %s</p>",
			esc(er.Env), esc(er.Experiment), layer, len(er.Edges), esc(strings.Join(er.Snapshots, ", ")))
		for _, wm := range er.Warnings {
			fmt.Fprintf(&b, `<div class="warn">%s</div>`, esc(wm))
		}
		if er.SRM.Failed {
			fmt.Fprintf(&b, `<div class="srmbad">%s</div>`, esc(srmLine(er)))
		} else {
			fmt.Fprintf(&b, `<div class="srmok">%s</div>`, esc(srmLine(er)))
		}
		b.WriteString(`<h3>Groups</h3><div class=scroll><table><tr><th class=l>test / variant</th><th>share</th><th>users</th><th>requests</th><th>fill rate</th><th>CTR</th><th>eCPM</th><th>revenue/request</th><th>revenue/user</th></tr>`)
		for i, g := range er.Groups {
			fmt.Fprintf(&b, `<tr><td class=l><span style="color:%s">&#9632;</span> %s</td><td>%s</td><td>%.0f</td><td>%d</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>`,
				color(i), esc(report.GroupKey(g.Test, g.Variant)), fmtShare(g), g.Users, g.Requests,
				fmtMetric("fill_rate", g.Metrics["fill_rate"].Value), fmtMetric("ctr", g.Metrics["ctr"].Value), fmtMetric("ecpm", g.Metrics["ecpm"].Value),
				fmtMetric("x", g.Metrics["revenue_per_request"].Value), fmtMetric("x", g.Metrics["revenue_per_user"].Value))
		}
		b.WriteString("</table></div>")
		ctl := er.Control()
		view := rep.Options.View
		fmt.Fprintf(&b, `<p class=note>%s</p>`, esc(viewLine(rep, er)))
		for _, c := range er.Comparisons {
			fmt.Fprintf(&b, "<h3>%s (%s) vs control</h3>", esc(c.Test), esc(c.Variant))
			iv := intervalName(view)
			fmt.Fprintf(&b, `<div class=scroll><table><tr><th class=l>metric</th><th>control</th><th>variant</th><th>abs lift</th><th>%s</th><th>rel lift</th><th>%s</th><th>p</th><th>p fixed</th><th>p Holm</th><th>p BH</th><th>CUPED</th></tr>`, iv, iv)
			vg := er.Group(c.Test, c.Variant)
			for _, m := range report.MetricNames {
				l := c.Lifts[m]
				p := c.P(view, m)
				cls := ""
				if c.Holm[m] < rep.Options.Alpha {
					cls = " sig neg"
					if l.Abs > 0 {
						cls = " sig pos"
					}
				}
				alo, ahi := c.AbsCI(view, m)
				rlo, rhi := c.RelCI(view, m)
				fmt.Fprintf(&b, `<tr><td class=l>%s</td><td>%s</td><td>%s</td><td class="%s">%s</td><td>[%s, %s]</td><td class="%s">%s</td><td>[%s, %s]</td><td>%s</td><td>%s</td><td class="%s">%s</td><td>%s</td><td>%s</td></tr>`,
					metricLabel[m], fmtMetric(m, ctl.Metrics[m].Value), fmtMetric(m, vg.Metrics[m].Value), cls, fmtAbs(m, l.Abs), fmtAbs(m, alo), fmtAbs(m, ahi),
					cls, fmtRel(l.Rel), fmtRel(rlo), fmtRel(rhi), fmtP(p), fmtP(l.P), cls, fmtP(c.Holm[m]), fmtP(c.BH[m]), cupedCell(c, m))
			}
			b.WriteString("</table></div>")
			b.WriteString(`<div class=scroll><table><tr><th class=l>guardrail</th><th>control</th><th>variant</th><th>rel lift</th><th>` + iv + `</th><th>p</th><th class=l>verdict</th></tr>`)
			for _, gr := range c.Guardrails {
				m := gr.Metric
				rlo, rhi := c.RelCI(view, m)
				fmt.Fprintf(&b, `<tr><td class=l>%s</td><td>%s</td><td>%s</td><td>%s</td><td>[%s, %s]</td><td>%s</td><td class=l><span class="v-%s">%s</span></td></tr>`,
					metricLabel[m], fmtMetric(m, ctl.Metrics[m].Value), fmtMetric(m, vg.Metrics[m].Value), fmtRel(c.Lifts[m].Rel), fmtRel(rlo), fmtRel(rhi),
					fmtP(c.P(view, m)), strings.ReplaceAll(gr.Verdict, " ", "-"), esc(strings.ToUpper(gr.Verdict)))
			}
			b.WriteString("</table></div>")
			b.WriteString(forest(c, view))
			b.WriteString(`<div class="charts">`)
			for _, m := range []string{"fill_rate", "revenue_per_request", "ctr", "error_rate"} {
				b.WriteString(liftChart(metricLabel[m]+": relative lift by day", c.History[m], view))
			}
			b.WriteString("</div>")
		}
		if len(er.DaySRM) > 0 {
			b.WriteString(`<h3>Sample ratio by day</h3><div class=scroll><table><tr><th class=l>day</th>`)
			for _, g := range er.Groups {
				if !g.Unassigned {
					fmt.Fprintf(&b, "<th>%s users</th>", esc(report.GroupKey(g.Test, g.Variant)))
				}
			}
			b.WriteString("<th>p</th><th class=l>check</th></tr>")
			for _, d := range er.DaySRM {
				fmt.Fprintf(&b, "<tr><td class=l>%s</td>", d.Day.Format("2006-01-02"))
				for _, g := range er.Groups {
					if !g.Unassigned {
						fmt.Fprintf(&b, "<td>%.0f</td>", d.Users[report.GroupKey(g.Test, g.Variant)])
					}
				}
				verdict := `<span class="v-ok">OK</span>`
				if d.Failed {
					verdict = `<span class="v-harm">MISMATCH</span>`
				} else if math.IsNaN(d.P) {
					verdict = "-"
				}
				fmt.Fprintf(&b, "<td>%s</td><td class=l>%s</td></tr>", fmtP(d.P), verdict)
			}
			b.WriteString("</table></div>")
		}
		for _, bd := range er.Breakdowns {
			fmt.Fprintf(&b, `<h3>By %s</h3><p class=note>Fixed-horizon lifts, not corrected for the many values: for exploring, not for decisions. Requests count under the decision's %s; impressions, clicks and revenue under their tracking token's (the same value). "-": nothing to divide by (no requests, or no impressions, with this value), or n/a.`, esc(bd.Dim), esc(bd.Dim))
			if n := breakdownNote(bd); n != "" {
				fmt.Fprintf(&b, " %s.", esc(capitalize(n)))
			}
			b.WriteString("</p>")
			// One line per value and group, each variant's lifts on its own
			// line: every figure fits the page's width (a column per group
			// and lift ran to 20+ columns with four groups, the lifts hidden
			// past the scroll box's edge).
			b.WriteString(`<div class=scroll><table class=bd><tr><th class=l>` + esc(bd.Dim) + `</th><th class=l>test / variant</th><th>requests</th><th>fill</th><th>revenue</th><th>eCPM</th><th>rev/request</th><th>fill lift [95% CI]</th><th>rev/request lift [95% CI]</th></tr>`)
			lifts := make(map[string]bool, len(er.Comparisons))
			for _, c := range er.Comparisons {
				lifts[report.GroupKey(c.Test, c.Variant)] = true
			}
			for _, v := range bd.Values {
				for i, g := range er.Groups {
					gk := report.GroupKey(g.Test, g.Variant)
					b.WriteString("<tr>")
					if i == 0 {
						fmt.Fprintf(&b, `<td class="l bdv" rowspan=%d>%s</td>`, len(er.Groups), esc(valueLabel(bd.Dim, v.Value)))
					}
					fmt.Fprintf(&b, "<td class=l>%s</td><td>%.0f</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td>", esc(gk), v.Requests[gk], fmtMetric("fill_rate", v.Metrics[gk]["fill_rate"]),
						fmtRevenue(v.Revenue[gk]), fmtMetric("ecpm", v.Metrics[gk]["ecpm"]), fmtMetric("revenue_per_request", v.Metrics[gk]["revenue_per_request"]))
					for _, m := range []string{"fill_rate", "revenue_per_request"} {
						l, ok := v.Lifts[gk][m]
						if !lifts[gk] || !ok {
							b.WriteString("<td>-</td>")
							continue
						}
						fmt.Fprintf(&b, "<td>%s [%s, %s]</td>", fmtRel(l.Rel), fmtRel(l.RelLo), fmtRel(l.RelHi))
					}
					b.WriteString("</tr>")
				}
			}
			b.WriteString("</table></div>")
		}
		b.WriteString(`<h3>Over time</h3><div class="charts">`)
		names := groupNames(er)
		b.WriteString(lineChart("requests per interval", er, names, func(p report.Point) float64 { return float64(p.Requests) }, "%.0f"))
		b.WriteString(lineChart("fill rate", er, names, func(p report.Point) float64 { return ratio(p.Fills, p.Requests) * 100 }, "%.1f%%"))
		b.WriteString(lineChart("CTR", er, names, func(p report.Point) float64 { return ratio(p.Clicks, p.Impressions) * 100 }, "%.2f%%"))
		b.WriteString(lineChart("eCPM", er, names, func(p report.Point) float64 { return ratio(p.RevenueMicros, p.Impressions) / 1000 }, "%.3f"))
		b.WriteString("</div>")
	}
	b.WriteString(`<p class=note>Lifts: variant minus control. Sequential view (default): always-valid p-values and confidence sequences of the mixture SPRT (Johari, Pekelis, Walsh, "Always Valid Inference", Operations Research 2022), folded over daily looks: valid however often the report is read. Fixed-horizon view: Welch's t-test, valid for one look at a planned sample size. Either way each metric's variance comes from its 64 user shards (ratio-estimator variance, Cochran 1977 §6; p99 latency by the delete-one-shard jackknife), i.e. at user level. Holm and Benjamini–Hochberg adjust the leading p-values across every test and primary metric of the experiment set; bold marks Holm-adjusted significance. CUPED (Deng et al. 2013) uses each user shard's pre-period metric when a pre-period is given. Guardrails: HARM when significantly worse in the leading view. ` + esc(rep.Options.UserSketch.Describe()) + ` The sample-ratio check is Pearson's chi-square of users against the configured shares, with that error added to each group's variance; it fails below p = 0.001. Generated by adtool abreport.</p></body></html>`)
	_, err := io.WriteString(w, b.String())
	return err
}

func esc(s string) string { return html.EscapeString(s) }

// capitalize starts a note's sentence.
func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func color(i int) string { return palette[i%len(palette)] }

func ratio(a, b uint64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return float64(a) / float64(b)
}

func groupNames(er *report.ExperimentReport) []string {
	var out []string
	for _, g := range er.Groups {
		out = append(out, report.GroupKey(g.Test, g.Variant))
	}
	return out
}

// forest draws each metric's relative lift with its 95% CI against a zero
// line.
func forest(c report.TestComparison, view report.View) string {
	const w, rowH, left, right = 620, 26, 140, 20
	h := rowH*len(report.MetricNames) + 40
	lo, hi := -0.05, 0.05
	for _, m := range report.MetricNames {
		l := c.Lifts[m]
		rlo, rhi := c.RelCI(view, m)
		for _, v := range []float64{rlo, rhi, l.Rel} {
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	pad := (hi - lo) * 0.08
	lo, hi = lo-pad, hi+pad
	x := func(v float64) float64 { return left + (v-lo)/(hi-lo)*(w-left-right) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img"><title>relative lift with its interval</title>`, w, h, w, h)
	fmt.Fprintf(&b, `<line x1="%.1f" y1="8" x2="%.1f" y2="%d" stroke="#999" stroke-dasharray="4 3"/>`, x(0), x(0), h-24)
	for _, t := range ticks(lo, hi, 5) {
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="11" text-anchor="middle" fill="#666">%s</text>`, x(t), h-8, fmtRel(t))
	}
	for i, m := range report.MetricNames {
		l := c.Lifts[m]
		y := 20 + i*rowH
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="12">%s</text>`, 4, y+4, metricLabel[m])
		if math.IsNaN(l.Rel) || math.IsInf(l.Rel, 0) {
			fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11" fill="#999">no data</text>`, left, y+4)
			continue
		}
		col := "#555"
		rlo, rhi := c.RelCI(view, m)
		if c.P(view, m) < 0.05 {
			col = "#b3261e"
			if l.Abs > 0 {
				col = "#17803d"
			}
		}
		if !math.IsNaN(rlo) {
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="2"/>`, x(rlo), y, x(rhi), y, col)
		}
		fmt.Fprintf(&b, `<circle cx="%.1f" cy="%d" r="4" fill="%s"/>`, x(l.Rel), y, col)
	}
	b.WriteString("</svg>")
	return b.String()
}

// lineChart draws one value per group per interval.
func lineChart(title string, er *report.ExperimentReport, names []string, f func(report.Point) float64, yfmt string) string {
	const w, h, left, right, top, bottom = 560, 240, 62, 34, 26, 58
	var tmin, tmax time.Time
	ymin, ymax := math.Inf(1), math.Inf(-1)
	for _, n := range names {
		for _, p := range er.Series[n] {
			v := f(p)
			if math.IsNaN(v) {
				continue
			}
			if tmin.IsZero() || p.Start.Before(tmin) {
				tmin = p.Start
			}
			if p.Start.After(tmax) {
				tmax = p.Start
			}
			ymin, ymax = math.Min(ymin, v), math.Max(ymax, v)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img"><title>%s</title>`, w, h, w, h, esc(title))
	fmt.Fprintf(&b, `<text x="%d" y="16" font-size="13" font-weight="bold">%s</text>`, left, esc(title))
	if math.IsInf(ymin, 1) {
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="12" fill="#999">no data</text></svg>`, left, h/2)
		return b.String()
	}
	if ymin > 0 {
		ymin = 0
	}
	if ymax <= ymin {
		ymax = ymin + 1
	}
	ymax *= 1.08
	span := tmax.Sub(tmin).Seconds()
	x := func(t time.Time) float64 {
		if span == 0 {
			return float64(left) + float64(w-left-right)/2
		}
		return float64(left) + t.Sub(tmin).Seconds()/span*float64(w-left-right)
	}
	y := func(v float64) float64 { return float64(top) + (1-(v-ymin)/(ymax-ymin))*float64(h-top-bottom) }
	for _, t := range ticks(ymin, ymax, 5) {
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#eee"/><text x="%d" y="%.1f" font-size="10" text-anchor="end" fill="#666">%s</text>`,
			left, y(t), w-right, y(t), left-4, y(t)+3, esc(fmt.Sprintf(yfmt, t)))
	}
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#999"/>`, left, h-bottom, w-right, h-bottom)
	lastLabel := ""
	for i := 0; i <= 4; i++ {
		t := tmin.Add(time.Duration(float64(tmax.Sub(tmin)) * float64(i) / 4))
		if span == 0 && i != 2 || t.UTC().Format("15:04:05") == lastLabel {
			continue
		}
		lastLabel = t.UTC().Format("15:04:05")
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="10" text-anchor="middle" fill="#666">%s</text>`, x(t), h-bottom+14, t.UTC().Format("15:04:05"))
	}
	for i, n := range names {
		pts := er.Series[n]
		var path []string
		for _, p := range pts {
			v := f(p)
			if math.IsNaN(v) {
				continue
			}
			path = append(path, fmt.Sprintf("%.1f,%.1f", x(p.Start), y(v)))
		}
		if len(path) > 1 {
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`, color(i), strings.Join(path, " "))
		}
		for _, pt := range path {
			if len(path) > 60 {
				break // a day of minutes: the line alone reads better
			}
			xy := strings.Split(pt, ",")
			fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="2.5" fill="%s"/>`, xy[0], xy[1], color(i))
		}
		lx := left + (i%3)*((w-left)/3)
		ly := h - 22 + (i/3)*13
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="10" height="3" fill="%s"/><text x="%d" y="%d" font-size="10">%s</text>`, lx, ly-4, color(i), lx+14, ly, esc(n))
	}
	b.WriteString("</svg>")
	return b.String()
}

// ticks returns about n round values spanning [lo, hi].
func ticks(lo, hi float64, n int) []float64 {
	if hi <= lo {
		return []float64{lo}
	}
	step := (hi - lo) / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(step)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= step {
			step = m * mag
			break
		}
	}
	var out []float64
	for v := math.Ceil(lo/step) * step; v <= hi+step*1e-9; v += step {
		out = append(out, v)
	}
	return slices.Compact(out)
}

// liftChart draws a comparison's relative lift by day: the cumulative
// lift as a line inside its interval (the view's: confidence sequence or
// CI) and each day's own lift as a dot.
func liftChart(title string, hist []report.HistPoint, view report.View) string {
	const w, h, left, right, top, bottom = 420, 220, 56, 16, 26, 40
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img"><title>%s</title>`, w, h, w, h, esc(title))
	fmt.Fprintf(&b, `<text x="%d" y="16" font-size="13" font-weight="bold">%s</text>`, left, esc(title))
	lo, hi := math.Inf(1), math.Inf(-1)
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	for _, p := range hist {
		for _, v := range []float64{p.CumRel, p.CumLo, p.CumHi, p.DayRel} {
			if finite(v) {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	if math.IsInf(lo, 1) || len(hist) == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="12" fill="#999">no data</text></svg>`, left, h/2)
		return b.String()
	}
	lo, hi = math.Min(lo, 0), math.Max(hi, 0)
	if hi-lo < 0.01 {
		hi, lo = hi+0.005, lo-0.005
	}
	pad := (hi - lo) * 0.08
	lo, hi = lo-pad, hi+pad
	n := len(hist)
	x := func(i int) float64 {
		if n == 1 {
			return float64(left) + float64(w-left-right)/2
		}
		return float64(left) + float64(i)/float64(n-1)*float64(w-left-right)
	}
	y := func(v float64) float64 { return float64(top) + (1-(v-lo)/(hi-lo))*float64(h-top-bottom) }
	for _, t := range ticks(lo, hi, 4) {
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#eee"/><text x="%d" y="%.1f" font-size="10" text-anchor="end" fill="#666">%s</text>`,
			left, y(t), w-right, y(t), left-4, y(t)+3, fmtRel(t))
	}
	fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#999" stroke-dasharray="4 3"/>`, left, y(0), w-right, y(0))
	// The band: upper bounds left to right, lower bounds back.
	var upper, lower []string
	for i, p := range hist {
		if finite(p.CumLo) && finite(p.CumHi) {
			upper = append(upper, fmt.Sprintf("%.1f,%.1f", x(i), y(p.CumHi)))
			lower = append([]string{fmt.Sprintf("%.1f,%.1f", x(i), y(p.CumLo))}, lower...)
		}
	}
	if len(upper) > 0 {
		fmt.Fprintf(&b, `<polygon fill="#4c6a92" fill-opacity="0.18" stroke="none" points="%s"/>`, strings.Join(append(upper, lower...), " "))
	}
	var line []string
	for i, p := range hist {
		if finite(p.CumRel) {
			line = append(line, fmt.Sprintf("%.1f,%.1f", x(i), y(p.CumRel)))
		}
		if finite(p.DayRel) {
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="2.5" fill="#d9822b"/>`, x(i), y(p.DayRel))
		}
	}
	if len(line) > 0 {
		fmt.Fprintf(&b, `<polyline fill="none" stroke="#4c6a92" stroke-width="2" points="%s"/>`, strings.Join(line, " "))
	}
	step := max(1, n/5)
	for i := 0; i < n; i += step {
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="10" text-anchor="middle" fill="#666">%s</text>`, x(i), h-bottom+14, hist[i].Day.Format("01-02"))
	}
	band := "95% confidence sequence"
	if view == report.Fixed {
		band = "95% CI (fixed horizon)"
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="10" height="3" fill="#4c6a92"/><text x="%d" y="%d" font-size="10">cumulative, band: %s</text>`, left, h-14, left+14, h-10, band)
	fmt.Fprintf(&b, `<circle cx="%d" cy="%d" r="2.5" fill="#d9822b"/><text x="%d" y="%d" font-size="10">that day</text>`, w-90, h-12, w-84, h-9)
	b.WriteString("</svg>")
	return b.String()
}
