package ship

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/adedge/adedge/internal/chkit"
)

// rollupDay is the issue day of TestRollupRebuildCost's synthetic events.
var rollupDay = time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)

// syntheticDaySQL is an INSERT ... SELECT that makes the events of
// numbers [from, from+n) of one issue day inside ClickHouse, with
// delivery keys of a mid-size network (50 campaigns of 4 creatives, 100
// placements, 5 countries: at most 100,000 delivery keys an hour; 4 tests
// in 2 layers, 64 shards, 2 OSes, 3 formats): 85%
// decisions (half of them fills), 14% impressions, 1% clicks. A number
// is always the same event (kind, id, fields), so inserting it again is
// a re-send the table collapses; dup marks the copies as replays
// (duplicate = 1), which the rollups leave out.
func syntheticDaySQL(table string, from, n int64, every int64, dup bool) string {
	d := "0"
	if dup {
		d = "1"
	}
	sel := map[string]string{
		"day": "toDate(t)", "kind": "kind", "event_id": "hex(intHash64(number))", "time": "t", "time_ms": "0", "issued": "t",
		"duplicate": d, "env": "'production'", "test_code": "code", "shard": "toUInt8(intHash64(dev * 13) % 64)",
		"outcome":      "if(kind = 'ad', if(r2 < 50, 'fill', 'nofill'), '')",
		"format":       "toUInt8(1 + cr % 3)",
		"price_micros": "if(kind = 'imp' OR (kind = 'ad' AND r2 < 50), 1000 + cr % 997, 0)",
		"weight":       "1", "edge": "concat('edge-', toString(number % 8))", "snapshot": "'snap-1'",
		"placement":  "concat('pl-', toString(intHash64(number * 5) % 100))",
		"campaign":   "concat('c', toString(intDiv(cr, 4)))",
		"creative":   "concat('cr', toString(cr))",
		"experiment": "'exp-1'", "test": "arrayElement(['control', 't1', 't2', 't3'], code + 1)",
		"variant": "arrayElement(['control', 'a', 'b', 'c'], code + 1)",
		"layers":  "concat('L1:', arrayElement(['control', 't1', 't2', 't3'], code + 1), ':v;L2:', if(dev % 2 = 0, 'ctl:control', 't9:x'))",
		"country": "arrayElement(['US', 'DE', 'BR', 'IN', 'JP'], intHash64(dev * 5) % 5 + 1)",
		"os":      "arrayElement(['android', 'ios'], intHash64(dev * 3) % 2 + 1)", "device_type": "'phone'",
		"device_hash": "intHash64(dev) + 1",
	}
	var names, exprs []string
	for _, c := range Columns {
		if e, ok := sel[c.Name]; ok {
			names = append(names, c.Name)
			exprs = append(exprs, e)
		}
	}
	return fmt.Sprintf(`INSERT INTO %s (%s)
SELECT %s FROM (
  SELECT number, dev, cr, toUInt8(intHash64(dev) %% 4) AS code, intHash64(number * 7) %% 100 AS r2,
         multiIf(intHash64(number * 3) %% 100 < 85, 'ad', intHash64(number * 3) %% 100 < 99, 'imp', 'click') AS kind,
         toDateTime(%d + intHash64(number) %% 86400) AS t
  FROM (SELECT number, intHash64(number * 31) %% 2000000 AS dev, intHash64(number * 11) %% 200 AS cr
        FROM (SELECT number + %d AS number FROM numbers(%d)) WHERE number %% %d = 0))`,
		table, strings.Join(names, ", "), strings.Join(exprs, ", "), rollupDay.Unix(), from, n, every)
}

// TestRollupRebuildCost is a measurement (docs/BENCHMARKS.md), not part
// of make test: with ADEDGE_ROLLUP_EVENTS=N it makes N synthetic events of
// one issue day, re-sends 2% of them and replays 2% more (the collapse
// FINAL has to do), merges the first insert (a table at rest, the newest
// parts unmerged), then times Rebuild of one hour (the shipper's job each
// --events-rollup) and of the whole day (a day's `report delivery
// --refresh`), 3 times each, and checks the rollups against `events
// FINAL`. With ADEDGE_ROLLUP_CH=URL it uses that server and keeps its
// data (database rollupcost_N), so the events are made once (a heavy
// step, ADEDGE_ROLLUP_RUNS=0) and the timing is taken alone on a quiet
// machine:
//
//	adtool events clickhouse /tmp/rollupch > /tmp/rollupch.url &
//	export ADEDGE_ROLLUP_EVENTS=10000000 ADEDGE_ROLLUP_CH=$(cat /tmp/rollupch.url)
//	ADEDGE_ROLLUP_RUNS=0 go test -count=1 -v -run RollupRebuildCost ./server/events/ship/
//	go test -count=1 -v -run RollupRebuildCost ./server/events/ship/
func TestRollupRebuildCost(t *testing.T) {
	n, _ := strconv.ParseInt(os.Getenv("ADEDGE_ROLLUP_EVENTS"), 10, 64)
	if n <= 0 {
		t.Skip("a measurement: set ADEDGE_ROLLUP_EVENTS=1000000 (docs/BENCHMARKS.md has the command)")
	}
	url := strings.TrimSpace(os.Getenv("ADEDGE_ROLLUP_CH"))
	if url == "" {
		url = chkit.Start(t).URL()
	}
	runs := 3
	if r, err := strconv.Atoi(os.Getenv("ADEDGE_ROLLUP_RUNS")); err == nil && r >= 0 {
		runs = r // 0: only make the events (the heavy step before a quiet timing)
	}
	db := fmt.Sprintf("rollupcost_%d", n)
	tg, err := ParseTarget(strings.TrimRight(url, "/") + "/?database=" + db)
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(tg, 60*time.Minute)
	ctx := context.Background()
	q := func(sql string) string {
		t.Helper()
		out, err := c.Query(ctx, sql+" FORMAT TSV")
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out))
	}
	if err := c.EnsureSchema(ctx); err != nil {
		t.Fatal(err)
	}
	tab := tg.TableName()
	// The data set is n first copies plus the re-sends and the replays of
	// every 50th number each.
	rows := n + 2*((n+49)/50)
	if got := q("SELECT count() FROM " + tab); got != strconv.FormatInt(rows, 10) {
		start := time.Now()
		for _, st := range []string{"TRUNCATE TABLE " + tab, syntheticDaySQL(tab, 0, n, 1, false), "OPTIMIZE TABLE " + tab + " FINAL",
			syntheticDaySQL(tab, 0, n, 50, false), syntheticDaySQL(tab, 0, n, 50, true)} {
			if _, err := c.Exec(ctx, st, nil, true); err != nil {
				t.Fatalf("%.60s: %v", st, err)
			}
		}
		t.Logf("made %d events (%d rows with the re-sends and replays) in %v", n, rows, time.Since(start).Round(time.Millisecond))
	}
	for settle := time.Now().Add(10 * time.Minute); ; {
		if q("SELECT count() FROM system.merges WHERE database = '"+db+"'") == "0" {
			break
		}
		if time.Now().After(settle) {
			t.Fatal("background merges still running after 10 minutes")
		}
		time.Sleep(500 * time.Millisecond) // polling interval: background merges settle
	}
	t.Logf("events: %s rows in %s parts", q("SELECT count() FROM "+tab),
		q("SELECT count() FROM system.parts WHERE database = '"+db+"' AND table = 'events' AND active"))
	if runs == 0 {
		return
	}

	hour := rollupDay.Add(12 * time.Hour)
	cases := []struct {
		name     string
		from, to time.Time
	}{{"one hour", hour, hour.Add(time.Hour)}, {"whole day (24 hours)", rollupDay, rollupDay.Add(24 * time.Hour)}}
	version := time.Now().UnixMilli()
	for _, cs := range cases {
		var els []time.Duration
		for run := 0; run < runs; run++ {
			version++
			s := time.Now()
			if err := c.Rebuild(ctx, cs.from, cs.to, version); err != nil {
				t.Fatal(err)
			}
			els = append(els, time.Since(s))
		}
		sorted := append([]time.Duration(nil), els...)
		sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
		t.Logf("REBUILD %s, %d events in the day: runs %v, median %v", cs.name, n, els, sorted[len(sorted)/2].Round(time.Millisecond))
	}

	// The rollups agree with events FINAL (first-seen records, each once).
	where := fmt.Sprintf(" WHERE issued >= toDateTime(%d) AND issued < toDateTime(%d)", rollupDay.Unix(), rollupDay.Add(24*time.Hour).Unix())
	raw := q("SELECT countIf(kind = 'ad'), countIf(kind = 'ad' AND outcome = 'fill'), countIf(kind = 'imp'), countIf(kind = 'click'), " +
		"sumIf(price_micros, kind = 'imp') FROM " + tab + " FINAL" + where + " AND duplicate = 0")
	for _, r := range []struct{ table, spend, div string }{{"delivery_hourly", "spend_micros", "1"}, {"experiment_hourly", "revenue_micros", "2"}} {
		// experiment_hourly has a row per layer: two layers here.
		got := q(fmt.Sprintf("SELECT intDiv(sum(requests), %[3]s), intDiv(sum(fills), %[3]s), intDiv(sum(impressions), %[3]s), intDiv(sum(clicks), %[3]s), intDiv(sum(%[2]s), %[3]s) FROM %[1]s FINAL",
			tg.RollupName(r.table), r.spend, r.div))
		if strings.Join(strings.Fields(got), " ") != strings.Join(strings.Fields(raw), " ") {
			t.Errorf("%s: %q, events FINAL: %q", r.table, got, raw)
		}
	}
	t.Logf("events FINAL (requests, fills, impressions, clicks, spend): %s; rollup rows: delivery_hourly %s, experiment_hourly %s", raw,
		q("SELECT count() FROM "+tg.RollupName("delivery_hourly")+" FINAL"), q("SELECT count() FROM "+tg.RollupName("experiment_hourly")+" FINAL"))
	if got := q("SELECT count() FROM " + tab + " FINAL" + where + " AND duplicate = 0"); got != strconv.FormatInt(n, 10) {
		t.Errorf("events FINAL holds %s first-seen events, want %d: the re-sends did not collapse", got, n)
	}
}
