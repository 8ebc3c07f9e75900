package abreport

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/adedge/adedge/abtest/report"
	"github.com/adedge/adedge/abtest/rows"
	"github.com/adedge/adedge/server/events/ship"
)

const goodSums = "day\t2026-11-01\tproduction\texp-1\t1\tbetter\tt1\t5\t100\t50\t1\t40\t2\t80000\n"

func TestParseAnswersRefuseBadInput(t *testing.T) {
	for name, c := range map[string]struct {
		answer, want string
	}{
		"columns":   {"day\t2026-11-01\tproduction\texp-1\n", "4 columns, want 14"},
		"key type":  {strings.Replace(goodSums, "day", "week", 1), `unknown key type "week"`},
		"day":       {strings.Replace(goodSums, "2026-11-01", "yesterday", 1), `day "yesterday"`},
		"shard":     {strings.Replace(goodSums, "\tt1\t5\t", "\tt1\t64\t", 1), "shard 64"},
		"test code": {strings.Replace(goodSums, "\t1\tbetter", "\t9\tbetter", 1), "test_code 9"},
		"negative":  {strings.Replace(goodSums, "\t100\t", "\t-100\t", 1), `count "-100"`},
		"float":     {strings.Replace(goodSums, "\t80000", "\t8e4", 1), `count "8e4"`},
		"env":       {strings.Replace(goodSums, "production", "", 1), "env and variant are required"},
	} {
		_, err := parseSums([]byte(c.answer), newCHGroups())
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("%s: %v, want an error with %q and the line", name, err, c.want)
		}
	}
	if m, err := parseSums([]byte(goodSums), newCHGroups()); err != nil || len(m["day"]) != 1 || m["day"][0].RevenueMicros != 80000 || m["day"][0].Shard != 5 {
		rs := m["day"]
		t.Fatalf("good answer: %+v %v", rs, err)
	}
	if err := parseShares([]byte("production\texp-1\t1\tbetter\tt1\t20000\n"), newCHGroups()); err == nil {
		t.Error("share_bp over 10000 accepted")
	}
	if err := parseUsers([]byte("production\texp-1\t1\tbetter\tt1\t99\t5\n"), "shard", newCHGroups(), map[report.UserKey]float64{}); err == nil {
		t.Error("user shard 99 accepted")
	}
}

// A ClickHouse that answers errors, garbage or nothing gives a clear error,
// never a report built on part of an answer.
func TestLoadClickHouseBadAnswers(t *testing.T) {
	columns := "events\tkind\nevents\ttime\nevents\tduplicate\nevents\tenv\nevents\texperiment\nevents\ttest\nevents\tvariant\nevents\ttest_code\nevents\tshard\nevents\toutcome\nevents\tweight\nevents\tprice_micros\nevents\tcountry\nevents\tos\nevents\tformat\n"
	for name, c := range map[string]struct {
		handler func(w http.ResponseWriter, q string)
		want    string
	}{
		"no table": {func(w http.ResponseWriter, q string) {}, "no usable"},
		"500": {func(w http.ResponseWriter, q string) {
			if strings.Contains(q, "system.columns") {
				_, _ = w.Write([]byte(columns))
				return
			}
			http.Error(w, "Code: 60, DB::Exception: Table adedge.events doesn't exist", 500)
		}, "HTTP 500"},
		"garbage": {func(w http.ResponseWriter, q string) {
			if strings.Contains(q, "system.columns") {
				_, _ = w.Write([]byte(columns))
				return
			}
			_, _ = w.Write([]byte("<html>proxy error</html>\n"))
		}, "1 columns, want 14"},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { c.handler(w, r.URL.Query().Get("query")) }))
		tg, _ := ship.ParseTarget(srv.URL + "/?database=adedge")
		var o report.Options
		_, _, err := LoadClickHouse(context.Background(), ship.NewClient(tg, 0), Filter{}, &o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
		srv.Close()
	}
}

// FuzzParseAnswer: any answer is parsed into rows that pass the rows
// rule, or refused; never a panic.
func FuzzParseAnswer(f *testing.F) {
	f.Add([]byte(goodSums), uint8(0))
	f.Add([]byte("2026-11-01\tproduction\texp-1\t0\tcontrol\tcontrol\t3"+strings.Repeat("\t7", 22)+"\n"), uint8(1))
	f.Add([]byte("production\texp-1\t0\tcontrol\tcontrol\t5000\n"), uint8(2))
	f.Add([]byte("production\texp-1\t0\tcontrol\tcontrol\t2026-11-02\t17\n"), uint8(3))
	f.Add([]byte("country\tUS\tproduction\texp-1\t0\tcontrol\t\\N\t3\t1\t1\t0\t0\t0\t0\n"), uint8(0))
	f.Fuzz(func(t *testing.T, answer []byte, which uint8) {
		g := newCHGroups()
		switch which % 4 {
		case 0:
			m, err := parseSums(answer, g)
			if err == nil {
				for _, r := range g.label(m["day"]) {
					if err := rows.Check(&r); err != nil {
						t.Fatalf("accepted a row the rows rule refuses: %v %+v", err, r)
					}
				}
			}
		case 1:
			rs, err := parseLatency(answer, g)
			if err == nil {
				for _, r := range g.label(rs) {
					if err := rows.Check(&r); err != nil {
						t.Fatalf("accepted a row the rows rule refuses: %v %+v", err, r)
					}
				}
			}
		case 2:
			_ = parseShares(answer, g)
		case 3:
			_ = parseUsers(answer, "day", g, map[report.UserKey]float64{})
		}
	})
}

// The daily rollup's answers are checked as strictly as the others.
func TestParseDailyAnswersRefuseBadInput(t *testing.T) {
	lat := "[" + strings.TrimSuffix(strings.Repeat("1,", 22), ",") + "]"
	good := "\t2026-11-01\tproduction\texp-1\tmain\t1\tbetter\tt1\t5\t100\t50\t1\t40\t2\t80000\t" + lat + "\n"
	for name, c := range map[string]struct{ answer, want string }{
		"columns":   {"\t2026-11-01\tproduction\n", "3 columns, want 16"},
		"dim":       {"city" + good, `dim "city"`},
		"shard":     {strings.Replace(good, "\tt1\t5\t", "\tt1\t64\t", 1), "shard 64"},
		"code":      {strings.Replace(good, "\t1\tbetter", "\t7\tbetter", 1), "test_code 7"},
		"no test":   {strings.Replace(strings.Replace(good, "\t1\tbetter", "\t255\tbetter", 1), "\tt1\t", "\t\t", 1), "without its test id"},
		"latency":   {strings.Replace(good, lat, "[1,2]", 1), "2 buckets"},
		"lat shape": {strings.Replace(good, lat, "1,2", 1), "want [n,...]"},
		"negative":  {strings.Replace(good, "\t100\t", "\t-100\t", 1), `count "-100"`},
	} {
		a := &dailyAnswer{ids: map[dailyID]bool{}, shares: map[dailyID]uint32{}}
		err := a.parseSums([]byte(c.answer))
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("%s: %v, want an error with %q and the line", name, err, c.want)
		}
	}
	a := &dailyAnswer{ids: map[dailyID]bool{}, shares: map[dailyID]uint32{}}
	if err := a.parseSums([]byte(good + "country\tUS\tproduction\texp-1\tmain\t1\tbetter\tt1\t5\t100\t50\t1\t40\t2\t80000\t[]\n")); err != nil || len(a.sums) != 2 {
		t.Fatalf("good answer: %v %+v", err, a.sums)
	}
	if err := a.parseShares([]byte("production\texp-1\tmain\t1\tbetter\tt1\t20000\n")); err == nil {
		t.Error("share_bp over 10000 accepted")
	}
	if err := a.parseUsers([]byte("production\texp-1\tmain\t1\tbetter\tt1\t99\t5\n"), true); err == nil {
		t.Error("user shard 99 accepted")
	}
}
