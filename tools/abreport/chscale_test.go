package abreport

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/adedge/adedge/abtest/report"
	"github.com/adedge/adedge/internal/chkit"
	"github.com/adedge/adedge/server/events/ship"
)

// SyntheticEventsSQL is an INSERT ... SELECT that makes events number
// [offset, offset+n) of a 30-day test inside ClickHouse (no client round
// trips), all issued on the UTC day that starts at day (one partition per
// insert: a 30-day insert would cut every block into 30 parts): 2M
// devices, each with a fixed group (control 50%, t1/t2 20%, t3 10%) and
// user shard; 85% decisions (50% fill, 1% error; t1 fills 55%), 14%
// impressions at 2000 micros, 1% clicks; 5 countries, 2 OSes. cols are
// the events table's columns: the v2 fields (latency_us, device_hash,
// share_bp) are filled when the table has them.
func SyntheticEventsSQL(table string, offset, n int64, day time.Time, cols map[string]bool) string {
	sel := map[string]string{
		"day": "toDate(t)", "kind": "kind", "event_id": "toString(number)", "time": "t", "time_ms": "0", "issued": "t", "duplicate": "0",
		"env": "'production'", "test_code": "code", "shard": "toUInt8(intHash64(dev * 13) % 64)",
		"outcome":      "if(kind = 'ad', multiIf(r2 < 1, 'error', r2 < 51 + 5 * (code = 1), 'fill', 'nofill'), '')",
		"format":       "if(kind = 'ad' AND r2 >= 1 AND r2 < 51 + 5 * (code = 1), 1, 0)",
		"price_micros": "if(kind = 'imp' OR (kind = 'ad' AND r2 >= 1 AND r2 < 51 + 5 * (code = 1)), 2000, 0)",
		"cap_period":   "0", "weight": "1", "edge": "'edge-1'", "snapshot": "'snap-1'", "placement": "'pl-1'", "campaign": "'c1'", "creative": "'cr1'",
		"experiment": "'exp-1'", "test": "arrayElement(['control', 't1', 't2', 't3'], code + 1)",
		"variant": "arrayElement(['control', 'better', 'aa', 'small'], code + 1)",
		"country": "arrayElement(['US', 'DE', 'BR', 'IN', 'JP'], intHash64(dev * 5) % 5 + 1)",
		"os":      "arrayElement(['android', 'ios'], intHash64(dev * 3) % 2 + 1)", "device_type": "'phone'",
		"latency_us":  "toUInt32(80 + intHash64(number * 11) % 400 + if(intHash64(number * 17) % 1000 = 0, 5000, 0))",
		"device_hash": "intHash64(dev) + 1", "share_bp": "toUInt32(arrayElement([5000, 2000, 2000, 1000], code + 1))",
	}
	var names, exprs []string
	for _, c := range []string{"day", "kind", "event_id", "time", "time_ms", "issued", "duplicate", "env", "test_code", "shard", "outcome", "format",
		"price_micros", "cap_period", "weight", "edge", "snapshot", "placement", "campaign", "creative", "experiment", "test", "variant",
		"country", "os", "device_type", "latency_us", "device_hash", "share_bp"} {
		if cols[c] {
			names = append(names, c)
			exprs = append(exprs, sel[c])
		}
	}
	return fmt.Sprintf(`INSERT INTO %s (%s)
SELECT %s FROM (
  SELECT number, dev, toUInt8(arrayElement([0, 0, 0, 0, 0, 1, 1, 2, 2, 3], intHash64(dev) %% 10 + 1)) AS code,
         intHash64(number * 3) %% 100 AS r1, intHash64(number * 7) %% 100 AS r2,
         multiIf(r1 < 85, 'ad', r1 < 99, 'imp', 'click') AS kind,
         toDateTime(%d + intHash64(number) %% 86400) AS t
  FROM (SELECT num AS number, intHash64(num * 31) %% 2000000 AS dev FROM (SELECT number + %d AS num FROM numbers(%d))))`,
		table, strings.Join(names, ", "), strings.Join(exprs, ", "), day.Unix(), offset, n)
}

// TestClickHouseReportScale is the long form (docs/BENCHMARKS.md): with
// ABREPORT_CH_EVENTS=N it makes N synthetic events of 30 days in a real
// ClickHouse, rebuilds the rollups, and times the report from them (three
// runs, the best one counts). Outside that it does not run (it takes
// minutes at 10M, an hour of CPU at 100M).
//
// ABREPORT_CH_DIR=DIR keeps the server's data there (database
// scale_<N>), so the long generation runs once, at low priority, and the
// timing later in a quiet moment: a run whose database already holds the
// N events skips the generation, and one whose daily rollup holds the
// window skips the rebuild. ABREPORT_CH_URL=http://127.0.0.1:PORT/ uses a
// server already running instead. ABREPORT_CH_GEN_ONLY=1 stops after
// generating.
func TestClickHouseReportScale(t *testing.T) {
	n, _ := strconv.ParseInt(os.Getenv("ABREPORT_CH_EVENTS"), 10, 64)
	if n <= 0 {
		t.Skip("long form: set ABREPORT_CH_EVENTS=10000000 (or 100000000) to run")
	}
	var ch *chkit.Server
	url := os.Getenv("ABREPORT_CH_URL")
	if url != "" {
		// A server already running (on an ABREPORT_CH_DIR of a run before).
	} else if dir := os.Getenv("ABREPORT_CH_DIR"); dir != "" {
		if err := chkit.Available(); err != nil {
			t.Skip(err)
		}
		var err error
		if ch, err = chkit.StartServer(dir); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ch.Stop() })
	} else {
		ch = chkit.Start(t)
	}
	if ch != nil {
		url = ch.URL()
	}
	tg, err := ship.ParseTarget(url + "?database=scale_" + strconv.FormatInt(n, 10))
	if err != nil {
		t.Fatal(err)
	}
	c := ship.NewClient(tg, 60*time.Minute)
	ctx := context.Background()
	if err := c.EnsureSchema(ctx); err != nil {
		t.Fatal(err)
	}
	tabs, err := describe(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	count := func(q string) int64 {
		out, err := c.Query(ctx, q+" FORMAT TabSeparated")
		if err != nil {
			t.Fatal(err)
		}
		v, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
		if err != nil {
			t.Fatalf("%s: %q", q, out)
		}
		return v
	}
	const days = 30
	f := Filter{Env: "production", From: day0, To: day0.Add(days * 24 * time.Hour)}
	if have := count("SELECT count() FROM " + tg.TableName()); have != n {
		if have != 0 {
			t.Fatalf("%s holds %d events, not 0 or %d: drop the database or use another ABREPORT_CH_DIR", tg.TableName(), have, n)
		}
		start := time.Now()
		for d := int64(0); d < days; d++ {
			lo, hi := n*d/days, n*(d+1)/days
			if _, err := c.Exec(ctx, SyntheticEventsSQL(tg.TableName(), lo, hi-lo, day0.Add(time.Duration(d)*24*time.Hour), tabs[ship.Table]), nil, true); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("inserted %d events in %v", n, time.Since(start).Round(time.Millisecond))
		if _, err := c.Exec(ctx, "OPTIMIZE TABLE "+tg.TableName()+" FINAL", nil, true); err != nil {
			t.Logf("optimize: %v", err)
		}
		t.Logf("merged in %v", time.Since(start).Round(time.Millisecond))
	}
	if count("SELECT count() FROM "+tg.RollupName(ship.DailyTable)+" WHERE "+dayWindowSQL(f)) == 0 {
		start := time.Now()
		for d := 0; d < days; d++ {
			from := day0.Add(time.Duration(d) * 24 * time.Hour)
			if err := c.Rebuild(ctx, from, from.Add(24*time.Hour), time.Now().UnixMilli()); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("rollups rebuilt in %v", time.Since(start).Round(time.Millisecond))
	}
	if os.Getenv("ABREPORT_CH_GEN_ONLY") != "" {
		return
	}
	var best time.Duration
	for run := 0; run < 3; run++ {
		s := time.Now()
		var opts report.Options
		rs, info, err := LoadClickHouse(ctx, c, f, &opts)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := report.Build(rs, 0, opts)
		if err != nil {
			t.Fatal(err)
		}
		el := time.Since(s)
		if run == 0 || el < best {
			best = el
		}
		er := rep.Experiments[0]
		var req uint64
		for _, g := range er.Groups {
			req += g.Requests
		}
		t.Logf("run %d: %v (queries %v, %d queries, source %s); %d groups, %d requests, %.0f users, t1 fill lift %+.4f p=%.3g, SRM p=%.3g; notes %v",
			run+1, el.Round(time.Millisecond), info.Elapsed.Round(time.Millisecond), info.Queries, info.Source, len(er.Groups), req, users(er),
			er.Comparisons[0].Lifts["fill_rate"].Rel, er.Comparisons[0].P(report.Sequential, "fill_rate"), er.SRM.P, info.Notes)
		if req < uint64(n)*80/100 || req > uint64(n)*90/100 {
			t.Fatalf("requests %d of %d events: the report lost or invented decisions", req, n)
		}
	}
	t.Logf("REPORT TIME %d events: best of 3 %v", n, best.Round(time.Millisecond))
}

func users(er *report.ExperimentReport) float64 {
	var u float64
	for _, g := range er.Groups {
		u += g.Users
	}
	return u
}
