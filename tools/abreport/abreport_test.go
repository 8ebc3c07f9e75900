package abreport

import (
	"bytes"
	"context"
	"encoding/csv"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/adedge/adedge/abtest"
	"github.com/adedge/adedge/abtest/report"
	"github.com/adedge/adedge/abtest/rows"
	"github.com/adedge/adedge/server/events/ship"
	"github.com/adedge/adedge/snapshot"
)

var t0 = time.Date(2026, 12, 1, 7, 0, 0, 0, time.UTC)

func testSet() abtest.Set {
	return abtest.Set{ID: "exp-1", Salt: "s1", Tests: []abtest.Test{
		{ID: "t1", Variant: "better", ShareBP: 2000},
		{ID: "t2", Variant: "aa", ShareBP: 2000},
		{ID: "t3", Variant: "small", ShareBP: 1000},
	}}
}

// simulate runs devices through the real bucketer and counters for a few
// intervals: fill probability 0.50 (control, t2, t3) or fillT1 (t1); each
// fill is an impression worth 2000 micros; 3% of impressions click.
// skipT3 drops that share of t3's devices (a broken assignment: SRM).
func simulate(t *testing.T, dir, edge, env string, devices int, fillT1, skipT3 float64, seed uint64) {
	t.Helper()
	b, err := abtest.NewBucketer(testSet(), abtest.Defaults)
	if err != nil {
		t.Fatal(err)
	}
	c := abtest.NewCounters()
	g := c.Serving(env, "snap-1", b)
	rng := rand.New(rand.NewPCG(seed, 1))
	for iv := 0; iv < 3; iv++ {
		for d := 0; d < devices; d++ {
			dev := []byte(edge + "-dev-" + strconv.Itoa(d))
			a := b.Assign(dev)
			if a.Test == 3 && float64(d%100) < 100*skipT3 {
				continue
			}
			p := 0.5
			if a.Test == 1 {
				p = fillT1
			}
			for r := 0; r < 2; r++ {
				o := abtest.NoFill
				if rng.Float64() < p {
					o = abtest.Fill
				}
				g.Request(a, dev, o, time.Duration(50+rng.IntN(200))*time.Microsecond)
				if o == abtest.Fill {
					g.Impression(a, 2000)
					if rng.Float64() < 0.03 {
						g.Click(a)
					}
				}
			}
		}
		start := t0.Add(time.Duration(iv) * time.Minute)
		flushed := c.Flush(edge, start, start.Add(time.Minute))
		if _, err := rows.WriteFile(dir, edge, start, flushed); err != nil {
			t.Fatal(err)
		}
	}
}

func load(t *testing.T, dirs ...string) (*report.Report, []Skipped) {
	t.Helper()
	rows, files, skipped, err := Load(dirs, Filter{Env: "production"})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := report.BuildReport(rows, files)
	if err != nil {
		t.Fatal(err)
	}
	return rep, skipped
}

func comparison(t *testing.T, er *report.ExperimentReport, test string) report.TestComparison {
	for _, c := range er.Comparisons {
		if c.Test == test {
			return c
		}
	}
	t.Fatalf("no comparison for %s", test)
	return report.TestComparison{}
}

func TestReportFindsTheLiftAndMergesEdges(t *testing.T) {
	d1, d2 := t.TempDir(), t.TempDir()
	simulate(t, d1, "edge-a", "production", 6000, 0.55, 0, 1)
	simulate(t, d2, "edge-b", "production", 6000, 0.55, 0, 2)
	rep, skipped := load(t, d1, d2)
	if len(skipped) != 0 || rep.Files != 6 || len(rep.Experiments) != 1 {
		t.Fatalf("files %d skipped %v experiments %d", rep.Files, skipped, len(rep.Experiments))
	}
	er := rep.Experiments[0]
	if len(er.Edges) != 2 {
		t.Fatalf("edges %v", er.Edges)
	}
	ctl := er.Control()
	// 12000 distinct devices in all, half of them control.
	var users float64
	for _, g := range er.Groups {
		users += g.Users
	}
	if math.Abs(users-12000) > 120 {
		t.Fatalf("users %.0f, want ~12000 (devices seen in 3 intervals on one edge count once)", users)
	}
	if math.Abs(ctl.Users/users-0.5) > 0.03 {
		t.Fatalf("control users %.0f of %.0f", ctl.Users, users)
	}
	// t1: true fill-rate lift +5pp, +10% relative: the CI covers it, p is tiny.
	l := comparison(t, er, "t1").Lifts["fill_rate"]
	if !(l.AbsLo < 0.05 && 0.05 < l.AbsHi) || !(l.RelLo < 0.10 && 0.10 < l.RelHi) || l.P > 1e-4 {
		t.Fatalf("t1 fill lift %+v: want CI around +0.05 / +10%% and p < 1e-4", l)
	}
	// Revenue per request rises with fill: 2000 micros per fill.
	if rl := comparison(t, er, "t1").Lifts["revenue_per_request"]; rl.Rel < 0.05 || rl.P > 0.001 {
		t.Fatalf("t1 revenue/request lift %+v", rl)
	}
	// t2 is an A/A test: no significant difference, CI covers 0.
	aa := comparison(t, er, "t2").Lifts["fill_rate"]
	if aa.P < 0.01 || aa.AbsLo > 0 || aa.AbsHi < 0 {
		t.Fatalf("A/A fill lift %+v", aa)
	}
	if er.SRM.Failed || er.SRM.DF != 3 {
		t.Fatalf("balanced assignment failed SRM: %+v", er.SRM)
	}
	var text bytes.Buffer
	WriteText(&text, rep, skipped)
	for _, want := range []string{"t1/better", "sample ratio check: OK", "fill rate", "rel lift [95% CS]", "p Holm", "guardrails"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
	var csvOut bytes.Buffer
	if err := WriteCSV(&csvOut, rep); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(csvOut.String()), "\n")
	if len(lines) != 1+4*(len(report.MetricNames)+2) || !strings.HasPrefix(lines[0], "env,experiment,test,variant") {
		t.Fatalf("csv: %d lines, header %q", len(lines), lines[0])
	}
}

func TestReportSampleRatioMismatch(t *testing.T) {
	d := t.TempDir()
	simulate(t, d, "edge-a", "production", 20000, 0.5, 0.1, 3) // 10% of t3's devices lost
	rep, _ := load(t, d)
	er := rep.Experiments[0]
	if !er.SRM.Failed || er.SRM.P > 1e-4 {
		t.Fatalf("10%% loss in one group not flagged: %+v", er.SRM)
	}
	var text, page bytes.Buffer
	WriteText(&text, rep, nil)
	if !strings.Contains(text.String(), "!!! SAMPLE RATIO MISMATCH") {
		t.Fatalf("no loud warning:\n%s", text.String())
	}
	if err := WriteHTML(&page, rep, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(page.String(), `class="srmbad"`) {
		t.Fatal("HTML has no SRM banner")
	}
}

func TestSkipsDamagedFiles(t *testing.T) {
	d := t.TempDir()
	simulate(t, d, "edge-a", "production", 300, 0.5, 0, 4)
	files, _ := rows.ListFiles([]string{d})
	good, _ := load(t, d)
	// Truncate one file, garble a line of another's copy.
	data, _ := os.ReadFile(files[0])
	if err := os.WriteFile(files[0], data[:len(data)-40], 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "rows-x-20261201T070000.000Z-1-0000000000000000.jsonl"), []byte("{garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rep, skipped := load(t, d)
	if len(skipped) != 2 || rep.Files != 2 {
		t.Fatalf("skipped %v, files %d", skipped, rep.Files)
	}
	var want, got uint64
	for _, g := range good.Experiments[0].Groups {
		want += g.Requests
	}
	for _, g := range rep.Experiments[0].Groups {
		got += g.Requests
	}
	if got >= want || got == 0 {
		t.Fatalf("requests %d after skipping a file of %d: part of the damaged file merged?", got, want)
	}
	var text bytes.Buffer
	WriteText(&text, rep, skipped)
	if !strings.Contains(text.String(), "2 rows file(s) skipped whole") {
		t.Fatalf("skips not reported:\n%s", text.String())
	}
}

func TestHTMLSelfContained(t *testing.T) {
	d := t.TempDir()
	simulate(t, d, "edge-a", "production", 3000, 0.55, 0, 5)
	rep, _ := load(t, d)
	var page bytes.Buffer
	if err := WriteHTML(&page, rep, nil); err != nil {
		t.Fatal(err)
	}
	s := page.String()
	for _, bad := range []string{"<script", "<link", "<img", "@import", "url("} {
		if strings.Contains(s, bad) {
			t.Errorf("page contains %q", bad)
		}
	}
	if n := strings.Count(s, "http"); n != strings.Count(s, `xmlns="http://www.w3.org/2000/svg"`) {
		t.Errorf("page references something external (%d http mentions)", n)
	}
	if strings.Count(s, "<svg") < 4+3 || !strings.Contains(s, "<polyline") {
		t.Errorf("expected 4 time charts and 3 forest plots with lines")
	}
}

func TestStageCheck(t *testing.T) {
	mk := func(env string, req, fills, errs uint64, latBucket int) abtest.Row {
		r := abtest.Row{Start: t0, End: t0.Add(time.Minute), Env: env, Test: "control", Variant: "control",
			Requests: req, Fills: fills, Errors: errs, Impressions: fills, RevenueMicros: fills * 2000,
			LatencyUS: make([]uint64, abtest.NumLatencyBuckets)}
		r.LatencyUS[latBucket] = req
		return r
	}
	for _, c := range []struct {
		name string
		rows []abtest.Row
		want int
		text string
	}{
		{"healthy", []abtest.Row{mk("production", 10000, 6000, 5, 5), mk("staging", 1000, 600, 1, 5)}, OK, "STAGECHECK OK - staging vs production"},
		{"fill drop", []abtest.Row{mk("production", 10000, 6000, 5, 5), mk("staging", 1000, 540, 1, 5)}, Warning, "fill rate 10.0% below"},
		{"errors", []abtest.Row{mk("production", 10000, 6000, 5, 5), mk("staging", 1000, 600, 100, 5)}, Critical, "error rate"},
		{"slow", []abtest.Row{mk("production", 10000, 6000, 5, 5), mk("staging", 1000, 600, 1, 12)}, Critical, "p99 latency"},
		{"no staging", []abtest.Row{mk("production", 10000, 6000, 5, 5)}, Unknown, "too little traffic"},
	} {
		code, line := StageCheck(c.rows, nil, 15*time.Minute, DefaultThresholds)
		if code != c.want || !strings.Contains(line, c.text) || strings.Count(line, "\n") != 0 {
			t.Errorf("%s: exit %d %q, want %d containing %q", c.name, code, line, c.want, c.text)
		}
	}
	// Forward errors count against staging.
	s := mk("staging", 1000, 600, 0, 5)
	s.ForwardErrors = 100
	if code, line := StageCheck([]abtest.Row{mk("production", 10000, 6000, 5, 5), s}, nil, time.Minute, DefaultThresholds); code != Critical {
		t.Errorf("forward errors: %d %s", code, line)
	}
}

func TestFilterWindow(t *testing.T) {
	d := t.TempDir()
	simulate(t, d, "edge-a", "production", 200, 0.5, 0, 6)
	all, _, _, _ := Load([]string{d}, Filter{})
	some, files, _, err := Load([]string{d}, Filter{From: t0.Add(time.Minute), To: t0.Add(2 * time.Minute)})
	if err != nil || files != 1 || len(some) == 0 || len(some) >= len(all) {
		t.Fatalf("window kept %d of %d rows from %d files (%v)", len(some), len(all), files, err)
	}
	for _, r := range some {
		if !r.Start.Equal(t0.Add(time.Minute)) {
			t.Fatalf("row from %v outside the window", r.Start)
		}
	}
	if staging, _, _, _ := Load([]string{d}, Filter{Env: "staging"}); len(staging) != 0 {
		t.Fatalf("env filter kept %d production rows", len(staging))
	}
}

// render writes rep in the three formats.
func render(t *testing.T, rep *report.Report) (text, page, csvOut *bytes.Buffer) {
	t.Helper()
	text, page, csvOut = &bytes.Buffer{}, &bytes.Buffer{}, &bytes.Buffer{}
	WriteText(text, rep, nil)
	if err := WriteHTML(page, rep, nil); err != nil {
		t.Fatal(err)
	}
	if err := WriteCSV(csvOut, rep); err != nil {
		t.Fatal(err)
	}
	return text, page, csvOut
}

// fakeDaily is a ClickHouse that has the daily rollup and answers its
// four queries for control and t1 over a few shards of one day.
func fakeDaily(t *testing.T) *ship.Client {
	t.Helper()
	var cols strings.Builder
	for _, c := range []string{"kind", "time", "duplicate", "env", "experiment", "test", "variant", "test_code", "shard", "outcome", "weight",
		"price_micros", "country", "os", "format"} {
		cols.WriteString(ship.Table + "\t" + c + "\n")
	}
	for _, c := range dailyCols {
		cols.WriteString(ship.DailyTable + "\t" + c + "\n")
	}
	lat := "[" + strings.TrimSuffix(strings.Repeat("0,", abtest.NumLatencyBuckets-1)+"100", ",") + "]"
	groups := [][2]string{{"0\tcontrol\tcontrol", "5000"}, {"1\tbetter\tt1", "5000"}}
	answer := func(q string) string {
		var b strings.Builder
		switch {
		case strings.Contains(q, "system.columns"):
			return cols.String()
		case strings.Contains(q, "SELECT count()"):
			return "8\n"
		case strings.Contains(q, "max(share_bp)"):
			for _, g := range groups {
				b.WriteString("production\texp-1\t\t" + g[0] + "\t" + g[1] + "\n")
			}
		case strings.Contains(q, "toString(day), uniqHLL12Merge"):
			for _, g := range groups {
				b.WriteString("production\texp-1\t\t" + g[0] + "\t2026-11-01\t4000\n")
			}
		case strings.Contains(q, "uniqHLL12Merge"):
			for _, g := range groups {
				for sh := range 4 {
					b.WriteString("production\texp-1\t\t" + g[0] + "\t" + strconv.Itoa(sh) + "\t1000\n")
				}
			}
		case strings.Contains(q, " FINAL WHERE"):
			for _, g := range groups {
				for sh := range 4 {
					b.WriteString("\t2026-11-01\tproduction\texp-1\t\t" + g[0] + "\t" + strconv.Itoa(sh) + "\t2000\t1000\t10\t1000\t30\t2000000\t" + lat + "\n")
				}
			}
		default:
			t.Errorf("unexpected query %q", q)
		}
		return b.String()
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(answer(r.URL.Query().Get("query"))))
	}))
	t.Cleanup(srv.Close)
	tg, err := ship.ParseTarget(srv.URL + "/?database=adedge")
	if err != nil {
		t.Fatal(err)
	}
	return ship.NewClient(tg, time.Minute)
}

// The report says which sketch counted its users and its error: the rows
// files' axiomhq p14 sketches from rows, the daily rollup's uniqHLL12
// from ClickHouse (never the rows' wording), in text and HTML; the
// ClickHouse report's sample-ratio check gets uniqHLL12's error.
func TestReportNamesItsUserSketch(t *testing.T) {
	d := t.TempDir()
	simulate(t, d, "edge-a", "production", 300, 0.5, 0, 7)
	fromRows, _ := load(t, d)

	opts := report.Options{}
	rs, info, err := LoadClickHouse(context.Background(), fakeDaily(t), Filter{Env: "production"}, &opts)
	if err != nil {
		t.Fatal(err)
	}
	fromCH, err := report.Build(rs, 0, opts)
	if err != nil {
		t.Fatal(err)
	}
	NoteSource(fromCH, info)
	if fromCH.Options.UserSketch != DailySketch || fromRows.Options.UserSketch != report.RowsSketch {
		t.Fatalf("sketches: clickhouse %+v, rows %+v", fromCH.Options.UserSketch, fromRows.Options.UserSketch)
	}
	for _, c := range []struct {
		name      string
		rep       *report.Report
		want, not []string
	}{
		{"rows", fromRows, []string{"axiomhq/hyperloglog", "precision 14", "0.8125%"}, []string{"uniqHLL12", "precision 12"}},
		{"clickhouse daily", fromCH, []string{"uniqHLL12", ship.DailyTable, "precision 12", "1.625%"}, []string{"axiomhq", "precision 14"}},
	} {
		text, page, _ := render(t, c.rep)
		for out, s := range map[string]string{"text": text.String(), "html": page.String()} {
			for _, w := range c.want {
				if !strings.Contains(s, w) {
					t.Errorf("%s %s lacks %q", c.name, out, w)
				}
			}
			for _, w := range c.not {
				if strings.Contains(s, w) {
					t.Errorf("%s %s says %q", c.name, out, w)
				}
			}
		}
	}
	// What the sample-ratio check widens by (report.TestSRMUsesTheReportsSketch).
	if e := fromCH.Options.UserSketch.RelError(); math.Abs(e-1.04/64) > 1e-12 {
		t.Errorf("daily sketch error %g, want 1.04/64", e)
	}
}

// csvHeader30 is the CSV header as consumers read it before breakdowns
// came to the CSV: these columns must stay where they are.
var csvHeader30 = []string{"env", "experiment", "test", "variant", "share_bp", "users", "requests", "metric", "control_value", "variant_value",
	"abs_lift", "abs_ci_low", "abs_ci_high", "rel_lift", "rel_ci_low", "rel_ci_high", "p_value", "df", "srm_p_value", "srm_failed",
	"view", "seq_p_value", "seq_abs_low", "seq_abs_high", "seq_rel_low", "seq_rel_high", "p_holm", "p_bh", "cuped_variance_ratio", "guardrail_verdict"}

// The CSV carries the breakdowns: the old columns in place, the groups'
// lines as before (empty dimension), then per dimension, value, group and
// breakdown metric a line with that value's requests, revenue, metric
// values and fixed-horizon lift, which add up to and equal the report's.
func TestCSVBreakdowns(t *testing.T) {
	d := t.TempDir()
	w := &world{devices: 2000, seed: 8, fill: [4]float64{0.5, 0.55, 0.5, 0.5}, dims: true, usPrice: 4000, countries: []string{"US", "DE", "FR"}}
	w.run(t, d, day0, 2)
	rep := build(t, report.Options{}, d)
	er := rep.Experiments[0]
	var out bytes.Buffer
	if err := WriteCSV(&out, rep); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&out).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	head := recs[0]
	if len(head) != 33 || strings.Join(head[:30], ",") != strings.Join(csvHeader30, ",") || strings.Join(head[30:], ",") != "dimension,dimension_value,revenue" {
		t.Fatalf("header %v", head)
	}
	col := map[string]int{}
	for i, h := range head {
		col[h] = i
	}
	main, byDim := 0, map[string]int{}
	reqs := map[[3]string]float64{} // dimension, group, metric -> requests summed over values
	for _, r := range recs[1:] {
		if r[col["dimension"]] == "" {
			main++
			continue
		}
		byDim[r[col["dimension"]]]++
		v, err := strconv.ParseFloat(r[col["requests"]], 64)
		if err != nil {
			t.Fatalf("requests %q: %v", r[col["requests"]], err)
		}
		reqs[[3]string{r[col["dimension"]], r[col["test"]] + "/" + r[col["variant"]], r[col["metric"]]}] += v
		if r[col["users"]] != "" || r[col["p_holm"]] != "" || r[col["seq_p_value"]] != "" {
			t.Errorf("breakdown line claims users, Holm or a sequential p-value: %v", r)
		}
	}
	if main != len(er.Groups)*7 {
		t.Errorf("%d group lines, want %d", main, len(er.Groups)*7)
	}
	for _, bd := range er.Breakdowns {
		if want := len(bd.Values) * len(er.Groups) * len(report.BreakdownMetrics); byDim[bd.Dim] != want {
			t.Errorf("%s: %d lines, want %d", bd.Dim, byDim[bd.Dim], want)
		}
		for _, g := range er.Groups {
			gk := report.GroupKey(g.Test, g.Variant)
			if got := reqs[[3]string{bd.Dim, gk, "fill_rate"}]; got != float64(g.Requests) {
				t.Errorf("%s, %s: values' requests add to %g, want %d", bd.Dim, gk, got, g.Requests)
			}
		}
	}
	// One line checked cell by cell: t1's US fill rate.
	var us report.BreakdownValue
	for _, v := range er.Breakdowns[0].Values {
		if v.Value == "US" {
			us = v
		}
	}
	found := false
	for _, r := range recs[1:] {
		if r[col["dimension"]] != "country" || r[col["dimension_value"]] != "US" || r[col["test"]] != "t1" || r[col["metric"]] != "ecpm" {
			continue
		}
		found = true
		l := us.Lifts["t1/better"]["ecpm"]
		for name, want := range map[string]float64{"variant_value": us.Metrics["t1/better"]["ecpm"], "control_value": us.Metrics["control/control"]["ecpm"],
			"rel_lift": l.Rel, "p_value": l.P, "revenue": us.Revenue["t1/better"]} {
			got, err := strconv.ParseFloat(r[col[name]], 64)
			if err != nil && !math.IsNaN(want) {
				t.Errorf("%s %q: %v", name, r[col[name]], err)
			}
			if err == nil && math.Abs(got-want) > 1e-6*math.Max(1, math.Abs(want)) {
				t.Errorf("%s %g, want %g", name, got, want)
			}
		}
		if got, _ := strconv.ParseFloat(r[col["variant_value"]], 64); math.Abs(got-4) > 1e-9 {
			t.Errorf("US eCPM %g, want the US price 4", got)
		}
	}
	if !found {
		t.Error("no line for t1's US eCPM")
	}
}

// The empty breakdown value is labelled per dimension for what it holds
// (decisionDims): "(unknown)" country or OS, "(no format)" for a
// request of an unknown placement or of a slot that takes none of its
// formats, while a no-fill in a slot of several formats is its set
// ("banner+video"); the page and the text say what the empty value
// holds, and say revenue is n/a only where it is.
func TestBreakdownEmptyValues(t *testing.T) {
	b, err := abtest.NewBucketer(testSet(), abtest.Defaults)
	if err != nil {
		t.Fatal(err)
	}
	c := abtest.NewCounters()
	g := c.Serving("production", "snap-1", b)
	multi := abtest.FormatCode(1<<snapshot.FormatBanner | 1<<snapshot.FormatVideo)
	for i := range 4000 {
		dev := []byte("ev-" + strconv.Itoa(i))
		a := b.Assign(dev)
		dims := &abtest.Dims{Country: [2]byte{'U', 'S'}, OS: 1, Format: 1}
		o := abtest.Fill
		switch i % 4 {
		case 1: // no geo match, an OS the snapshot does not know, a slot of two formats
			dims, o = &abtest.Dims{Format: multi}, abtest.NoFill
		case 2: // an unknown placement
			dims, o = &abtest.Dims{Country: [2]byte{'D', 'E'}, OS: 2}, abtest.Error
		}
		g.RequestDims(a, dev, o, time.Millisecond, dims)
		if o == abtest.Fill {
			g.ImpressionDims(a, 2000, dims)
		}
	}
	d := t.TempDir()
	if _, err := rows.WriteFile(d, "edge-a", day0, c.Flush("edge-a", day0, day0.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	rep := build(t, report.Options{}, d)
	labels := map[string][]string{}
	for _, bd := range rep.Experiments[0].Breakdowns {
		for _, v := range bd.Values {
			labels[bd.Dim] = append(labels[bd.Dim], valueLabel(bd.Dim, v.Value))
		}
		if bd.NoImpressions {
			t.Errorf("%s: impressions by dimension judged missing", bd.Dim)
		}
	}
	if strings.Join(labels["format"], ",") != "banner,(no format),banner+video" || !strings.Contains(strings.Join(labels["country"], ","), "(unknown)") ||
		!strings.Contains(strings.Join(labels["os"], ","), "(unknown)") {
		t.Fatalf("labels %v", labels)
	}
	text, page, out := render(t, rep)
	for name, s := range map[string]string{"text": text.String(), "html": page.String()} {
		for _, want := range []string{"(no format)", "banner+video", "(no format): requests for an unknown placement or for a slot that takes none of the request&#39;s formats",
			"(unknown): requests whose country the edge could not tell"} {
			if name == "text" {
				want = strings.ReplaceAll(want, "&#39;", "'")
			}
			if !strings.Contains(s, want) {
				t.Errorf("%s lacks %q", name, want)
			}
		}
		if strings.Contains(s, "carry no revenue") || strings.Contains(s, "carry no impressions") {
			t.Errorf("%s says the rows carry no revenue by dimension; they do", name)
		}
	}
	if !strings.Contains(out.String(), ",format,(no format),") {
		t.Error("CSV lacks the (no format) lines")
	}
	// Rows of edges whose impressions carried no dimensions: the page says
	// why revenue is n/a.
	old := t.TempDir()
	w := &world{devices: 600, seed: 9, fill: [4]float64{0.5, 0.5, 0.5, 0.5}, dims: true, oldEdge: true, countries: []string{"US", "DE"}}
	w.run(t, old, day0, 1)
	if text, page, _ := render(t, build(t, report.Options{}, old)); !strings.Contains(page.String(), "These rows carry no impressions by country") ||
		!strings.Contains(text.String(), "these rows carry no impressions by country") {
		t.Error("page or text does not say why revenue by country is n/a")
	}
}

// Every table of the page sits in a horizontally scrolling box, and the
// breakdown tables stay nine columns wide however many groups there are
// (a column per group and lift ran to 23 with four groups, the lifts past
// the page's right edge at 1300 px): each variant's lifts sit on its own
// line, control's are "-".
func TestHTMLWideTablesScroll(t *testing.T) {
	d := t.TempDir()
	w := &world{devices: 600, seed: 10, fill: [4]float64{0.5, 0.5, 0.5, 0.5}, dims: true, countries: []string{"US"}}
	w.run(t, d, day0, 2)
	var page bytes.Buffer
	if err := WriteHTML(&page, build(t, report.Options{}, d), nil); err != nil {
		t.Fatal(err)
	}
	s := page.String()
	n := strings.Count(s, "<table")
	if n < 5 || strings.Count(s, "<div class=scroll><table") != n || strings.Count(s, "</table></div>") != n {
		t.Errorf("%d tables, %d in a scroll box", n, strings.Count(s, "<div class=scroll><table"))
	}
	rep := build(t, report.Options{}, d)
	er := rep.Experiments[0]
	if len(er.Groups) != 4 || len(er.Breakdowns) == 0 {
		t.Fatalf("%d groups, %d breakdowns", len(er.Groups), len(er.Breakdowns))
	}
	i := strings.Index(s, "<table class=bd>")
	if i < 0 {
		t.Fatal("no breakdown table")
	}
	bd := s[i : i+strings.Index(s[i:], "</table>")]
	rows := strings.Split(bd, "<tr>")[1:]
	if h := strings.Count(rows[0], "<th"); h != 9 {
		t.Errorf("breakdown header has %d columns, want 9", h)
	}
	if len(rows) != 1+len(er.Breakdowns[0].Values)*len(er.Groups) {
		t.Errorf("%d breakdown lines for %d values of %d groups", len(rows)-1, len(er.Breakdowns[0].Values), len(er.Groups))
	}
	v := er.Breakdowns[0].Values[0]
	for _, line := range rows[1 : 1+len(er.Groups)] {
		cells := strings.Split(line, "<td")
		last := cells[len(cells)-2:]
		switch {
		case strings.Contains(line, ">control/control<"):
			if !strings.HasPrefix(last[0], ">-<") || !strings.HasPrefix(last[1], ">-<") {
				t.Errorf("control's line has lifts: %s", line)
			}
		default:
			c := er.Comparisons[slices.IndexFunc(er.Comparisons, func(c report.TestComparison) bool {
				return strings.Contains(line, ">"+report.GroupKey(c.Test, c.Variant)+"<")
			})]
			l := v.Lifts[report.GroupKey(c.Test, c.Variant)]["fill_rate"]
			if want := ">" + fmtRel(l.Rel) + " [" + fmtRel(l.RelLo) + ", " + fmtRel(l.RelHi) + "]<"; !strings.HasPrefix(last[0], want) {
				t.Errorf("%s/%s line's fill lift %q, want %q", c.Test, c.Variant, last[0], want)
			}
		}
	}
	if !strings.Contains(s, ".scroll{overflow-x:auto") {
		t.Error("no horizontal scrolling for the scroll box")
	}
}
