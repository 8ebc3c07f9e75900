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
table{border-collapse:collapse;font-size:13px;margin:6px 0}th,td{padding:4px 10px;border-bottom:1px solid #e3e3e3;text-align:right}
th{background:#f4f6f8}td.l,th.l{text-align:left}.sig{font-weight:bold}.pos{color:#17803d}.neg{color:#b3261e}
.srmbad{background:#b3261e;color:#fff;padding:12px 16px;font-weight:bold;font-size:16px;border-radius:4px}
.srmok{background:#e7f4ea;padding:8px 12px;border-radius:4px}.warn{background:#fff4d6;padding:8px 12px;border-radius:4px;margin:4px 0}
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
		fmt.Fprintf(&b, "<h2>env %s &middot; experiment set %s</h2><p class=note>edges: %d; snapshots %s</p>",
			esc(er.Env), esc(er.Experiment), len(er.Edges), esc(strings.Join(er.Snapshots, ", ")))
		for _, wm := range er.Warnings {
			fmt.Fprintf(&b, `<div class="warn">%s</div>`, esc(wm))
		}
		if er.SRM.Failed {
			fmt.Fprintf(&b, `<div class="srmbad">%s</div>`, esc(srmLine(er)))
		} else {
			fmt.Fprintf(&b, `<div class="srmok">%s</div>`, esc(srmLine(er)))
		}
		b.WriteString(`<h3>Groups</h3><table><tr><th class=l>test / variant</th><th>share</th><th>users</th><th>requests</th><th>fill rate</th><th>CTR</th><th>eCPM</th><th>revenue/request</th><th>revenue/user</th></tr>`)
		for i, g := range er.Groups {
			fmt.Fprintf(&b, `<tr><td class=l><span style="color:%s">&#9632;</span> %s</td><td>%s</td><td>%.0f</td><td>%d</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>`,
				color(i), esc(report.GroupKey(g.Test, g.Variant)), fmtShare(g), g.Users, g.Requests,
				fmtMetric("fill_rate", g.Metrics["fill_rate"].Value), fmtMetric("ctr", g.Metrics["ctr"].Value), fmtMetric("ecpm", g.Metrics["ecpm"].Value),
				fmtMetric("x", g.Metrics["revenue_per_request"].Value), fmtMetric("x", g.Metrics["revenue_per_user"].Value))
		}
		b.WriteString("</table>")
		ctl := er.Control()
		for _, c := range er.Comparisons {
			fmt.Fprintf(&b, "<h3>%s (%s) vs control</h3>", esc(c.Test), esc(c.Variant))
			b.WriteString(`<table><tr><th class=l>metric</th><th>control</th><th>variant</th><th>abs lift</th><th>95% CI</th><th>rel lift</th><th>95% CI</th><th>p</th></tr>`)
			vg := er.Group(c.Test, c.Variant)
			for _, m := range report.MetricNames {
				l := c.Lifts[m]
				cls := ""
				if l.P < 0.05 {
					cls = " sig neg"
					if l.Abs > 0 {
						cls = " sig pos"
					}
				}
				fmt.Fprintf(&b, `<tr><td class=l>%s</td><td>%s</td><td>%s</td><td class="%s">%s</td><td>[%s, %s]</td><td class="%s">%s</td><td>[%s, %s]</td><td class="%s">%s</td></tr>`,
					metricLabel[m], fmtMetric(m, ctl.Metrics[m].Value), fmtMetric(m, vg.Metrics[m].Value), cls, fmtAbs(m, l.Abs), fmtAbs(m, l.AbsLo), fmtAbs(m, l.AbsHi),
					cls, fmtRel(l.Rel), fmtRel(l.RelLo), fmtRel(l.RelHi), cls, fmtP(l.P))
			}
			b.WriteString("</table>")
			b.WriteString(forest(c))
		}
		b.WriteString(`<h3>Over time</h3><div class="charts">`)
		names := groupNames(er)
		b.WriteString(lineChart("requests per interval", er, names, func(p report.Point) float64 { return float64(p.Requests) }, "%.0f"))
		b.WriteString(lineChart("fill rate", er, names, func(p report.Point) float64 { return ratio(p.Fills, p.Requests) * 100 }, "%.1f%%"))
		b.WriteString(lineChart("CTR", er, names, func(p report.Point) float64 { return ratio(p.Clicks, p.Impressions) * 100 }, "%.2f%%"))
		b.WriteString(lineChart("eCPM", er, names, func(p report.Point) float64 { return ratio(p.RevenueMicros, p.Impressions) / 1000 }, "%.3f"))
		b.WriteString("</div>")
	}
	b.WriteString(`<p class=note>Lifts: variant minus control; 95% confidence intervals and two-sided p-values from Welch's t-test, with each metric's variance estimated from its 64 user shards (ratio-estimator variance, Cochran 1977 §6), i.e. at user level. Users are HyperLogLog estimates (axiomhq/hyperloglog, precision 14, summed over disjoint shards). The sample-ratio check is Pearson's chi-square of users against the configured shares, with the sketches' error added to each group's variance; it fails below p = 0.001. Generated by adtool abreport.</p></body></html>`)
	_, err := io.WriteString(w, b.String())
	return err
}

func esc(s string) string { return html.EscapeString(s) }

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
func forest(c report.TestComparison) string {
	const w, rowH, left, right = 620, 26, 140, 20
	h := rowH*len(report.MetricNames) + 40
	lo, hi := -0.05, 0.05
	for _, m := range report.MetricNames {
		l := c.Lifts[m]
		for _, v := range []float64{l.RelLo, l.RelHi, l.Rel} {
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	pad := (hi - lo) * 0.08
	lo, hi = lo-pad, hi+pad
	x := func(v float64) float64 { return left + (v-lo)/(hi-lo)*(w-left-right) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img"><title>relative lift with 95%% CI</title>`, w, h, w, h)
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
		if l.P < 0.05 {
			col = "#b3261e"
			if l.Abs > 0 {
				col = "#17803d"
			}
		}
		if !math.IsNaN(l.RelLo) {
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="2"/>`, x(l.RelLo), y, x(l.RelHi), y, col)
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
