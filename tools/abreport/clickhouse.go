package abreport

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/adedge/adedge/abtest"
	"github.com/adedge/adedge/abtest/report"
	"github.com/adedge/adedge/abtest/rows"
	"github.com/adedge/adedge/server/events/ship"
)

// The A/B report from the warehouse (issue 10's and 15's `abreport
// --clickhouse`): the same report.Build over rows the events table (or
// its hourly rollup) aggregates into, one row per (group, shard, UTC
// day), breakdown rows per dimension apart, users counted by ClickHouse.
//
// Sums (requests, fills, errors, impressions, clicks, revenue) are exact:
// from `experiment_hourly FINAL` (the events engineer's rollup, rebuilt
// from `events FINAL`) when it exists, else from `events FINAL` (slow at
// 100M events). Users and the latency histogram need the v2 `ad` fields
// device_hash and latency_us and come from `events` without FINAL: a
// distinct count does not change when a record is stored twice, and a
// re-sent decision moves a latency quantile by nothing measurable.

// CHInfo says what the warehouse had.
type CHInfo struct {
	Source  string   // the table sums came from
	Notes   []string // metrics it could not give, and why
	Queries int
	Elapsed time.Duration
}

// chTables is what the database has: table -> columns.
type chTables map[string]map[string]bool

func (t chTables) has(table string, cols ...string) bool {
	c := t[table]
	if c == nil {
		return false
	}
	for _, n := range cols {
		if !c[n] {
			return false
		}
	}
	return true
}

// RollupTable is the exact hourly A/B rollup the events shipper maintains.
const RollupTable = "experiment_hourly"

var rollupCols = []string{"hour", "env", "experiment", "layer", "test", "variant", "shard", "country", "os", "format",
	"requests", "fills", "errors", "impressions", "clicks", "revenue_micros"}

// unknownCode marks a row whose test index the rollup does not keep; the
// decisions' test_code fills it in (chGroups.label).
const unknownCode = 255

// LoadClickHouse aggregates the window of f from the warehouse into rows
// for report.Build, with the options that carry ClickHouse's user counts
// and per-dimension rows set in opts.
func LoadClickHouse(ctx context.Context, c *ship.Client, f Filter, opts *report.Options) ([]abtest.Row, CHInfo, error) {
	start := time.Now()
	var info CHInfo
	tabs, err := describe(ctx, c)
	info.Queries++
	if err != nil {
		return nil, info, err
	}
	if !tabs.has(ship.Table, "kind", "time", "duplicate", "env", "experiment", "test", "variant", "test_code", "shard", "outcome", "weight", "price_micros", "country", "os", "format") {
		return nil, info, fmt.Errorf("clickhouse: no usable %s.%s table (create it with `adtool events schema --clickhouse URL`)", c.T.Database, ship.Table)
	}
	if tabs.has(ship.DailyTable, dailyCols...) && dailyWindow(f) {
		out, err := c.Query(ctx, "SELECT count() FROM "+quoteIdentDB(c.T.Database)+"."+ship.DailyTable+" WHERE "+dayWindowSQL(f)+" FORMAT TabSeparated")
		info.Queries++
		if err != nil {
			return nil, info, err
		}
		if strings.TrimSpace(string(out)) != "0" {
			info.Source = c.T.Database + "." + ship.DailyTable + " FINAL"
			rs, err := loadDaily(ctx, c, f, opts, &info)
			info.Elapsed = time.Since(start)
			return rs, info, err
		}
		info.Notes = append(info.Notes, ship.DailyTable+" has no rows in the window (not rebuilt yet): slower sources below")
	} else if tabs.has(ship.DailyTable, dailyCols...) {
		info.Notes = append(info.Notes, "the window does not start and end at UTC midnights: "+ship.DailyTable+" (fast, every layer) not used")
	}
	info.Notes = append(info.Notes, "sets without layers only (layer ''): layered sets are reported from "+ship.DailyTable)
	ev := c.T.TableName()
	where := windowSQL("time", f)
	envCond := ""
	if f.Env != "" {
		envCond = " AND env = " + quote(f.Env)
	}
	// One scan for the sums: each row counts under four keys (its UTC
	// day, country, OS, format) through ARRAY JOIN, so the answer is the
	// per-day rows and each dimension's rows apart, never their cross
	// product (and FINAL's merge runs once, not four times).
	var from, sums, cond string
	keysSQL := keysSQL
	useRollup := false
	if tabs.has(RollupTable, rollupCols...) {
		// An empty rollup for the window (not rebuilt yet, or another
		// database's shipper does it) must not read as no traffic.
		out, err := c.Query(ctx, "SELECT count() FROM "+quoteIdentDB(c.T.Database)+"."+RollupTable+" WHERE "+windowSQL("hour", f)+" FORMAT TabSeparated")
		info.Queries++
		if err != nil {
			return nil, info, err
		}
		useRollup = strings.TrimSpace(string(out)) != "0"
		if !useRollup {
			info.Notes = append(info.Notes, RollupTable+" has no rows in the window: read events FINAL instead")
		}
	}
	codeSQL := "test_code"
	if useRollup {
		// Sets without layers only (layer ''): the decisions' own test,
		// variant and shard are the unnamed layer's.
		info.Source = c.T.Database + "." + RollupTable + " FINAL"
		codeSQL = strconv.Itoa(unknownCode)
		from = quoteIdentDB(c.T.Database) + "." + RollupTable + " FINAL"
		sums = "sum(requests), sum(fills), sum(errors), sum(impressions), sum(clicks), sum(revenue_micros)"
		cond = windowSQL("hour", f) + envCond + " AND layer = ''"
		keysSQL = strings.ReplaceAll(keysSQL, "TIME", "hour")
	} else {
		info.Source = c.T.Database + "." + ship.Table + " FINAL"
		info.Notes = append(info.Notes, "sums from events FINAL: exact but slow at scale (the "+RollupTable+" rollup makes it fast)")
		from = ev + " FINAL"
		sums = `sumIf(weight, kind = 'ad'), sumIf(weight, kind = 'ad' AND outcome = 'fill'), sumIf(weight, kind = 'ad' AND outcome = 'error'),
    countIf(kind = 'imp'), countIf(kind = 'click'), sumIf(price_micros, kind = 'imp')`
		cond = "duplicate = 0 AND kind IN ('ad', 'imp', 'click') AND " + where + envCond
		keysSQL = strings.ReplaceAll(keysSQL, "TIME", "time")
	}
	q := fmt.Sprintf(`SELECT k.1 AS kt, k.2 AS kv, env, experiment, %s AS tc, variant, test, shard,
    %s
FROM %s ARRAY JOIN %s AS k WHERE %s
GROUP BY kt, kv, env, experiment, tc, variant, test, shard FORMAT TabSeparated`, codeSQL, sums, from, keysSQL, cond)
	out, err := c.Query(ctx, q)
	info.Queries++
	if err != nil {
		return nil, info, err
	}
	groups := newCHGroups()
	byKey, err := parseSums(out, groups)
	if err != nil {
		return nil, info, err
	}
	byDay := byKey["day"]
	dimRows := [3][]abtest.Row{byKey["country"], byKey["os"], byKey["format"]}
	// Latency histogram and shares, from decisions.
	if tabs.has(ship.Table, "latency_us") {
		var b strings.Builder
		for i := range abtest.NumLatencyBuckets {
			lo, hi := "0", "4294967295"
			if i > 0 {
				lo = strconv.Itoa(int(abtest.LatencyBoundsUS[i-1]))
			}
			if i < len(abtest.LatencyBoundsUS) {
				hi = strconv.Itoa(int(abtest.LatencyBoundsUS[i]))
			}
			cond := "latency_us <= " + hi
			if i > 0 {
				cond = "latency_us > " + lo + " AND " + cond
			}
			fmt.Fprintf(&b, ", sumIf(weight, %s)", cond)
		}
		q := fmt.Sprintf(`SELECT toDate(time, 'UTC') AS d, env, experiment, test_code, variant, test, shard%s
FROM %s WHERE duplicate = 0 AND kind = 'ad' AND latency_us > 0 AND %s%s
GROUP BY d, env, experiment, test_code, variant, test, shard FORMAT TabSeparated`, b.String(), ev, where, envCond)
		out, err := c.Query(ctx, q)
		info.Queries++
		if err != nil {
			return nil, info, err
		}
		lat, err := parseLatency(out, groups)
		if err != nil {
			return nil, info, err
		}
		if len(lat) == 0 {
			// Records from before format 2 read latency_us as 0.
			info.Notes = append(info.Notes, "p99 latency n/a: no decision in the window carries latency_us (records before events format 2)")
		}
		byDay = append(byDay, lat...)
	} else {
		info.Notes = append(info.Notes, "p99 latency n/a: the events table has no latency_us (events format v1)")
	}
	if tabs.has(ship.Table, "share_bp") {
		q := fmt.Sprintf(`SELECT env, experiment, test_code, variant, test, max(share_bp) FROM %s
WHERE duplicate = 0 AND kind = 'ad' AND %s%s GROUP BY env, experiment, test_code, variant, test FORMAT TabSeparated`, ev, where, envCond)
		out, err := c.Query(ctx, q)
		info.Queries++
		if err != nil {
			return nil, info, err
		}
		if err := parseShares(out, groups); err != nil {
			return nil, info, err
		}
		known := false
		for _, v := range groups.shares {
			known = known || v > 0
		}
		if !known {
			info.Notes = append(info.Notes, "sample-ratio check n/a: no decision in the window carries share_bp (records before events format 2)")
		}
	} else {
		info.Notes = append(info.Notes, "sample-ratio check n/a: the events table has no share_bp (events format v1)")
	}
	users := map[report.UserKey]float64{}
	if tabs.has(ship.Table, "device_hash") {
		for _, q := range []struct{ key, sql string }{
			{"shard", fmt.Sprintf(`SELECT env, experiment, test_code, variant, test, shard, %s FROM %s
WHERE kind = 'ad' AND device_hash != 0 AND %s%s GROUP BY env, experiment, test_code, variant, test, shard FORMAT TabSeparated`, EventsUsersSQL, ev, where, envCond)},
			{"day", fmt.Sprintf(`SELECT env, experiment, test_code, variant, test, toDate(time, 'UTC') AS d, %s FROM %s
WHERE kind = 'ad' AND device_hash != 0 AND %s%s GROUP BY env, experiment, test_code, variant, test, d FORMAT TabSeparated`, EventsUsersSQL, ev, where, envCond)},
		} {
			out, err := c.Query(ctx, q.sql)
			info.Queries++
			if err != nil {
				return nil, info, err
			}
			if err := parseUsers(out, q.key, groups, users); err != nil {
				return nil, info, err
			}
		}
		if len(users) == 0 {
			info.Notes = append(info.Notes, "users, revenue/user and the sample-ratio check n/a: no decision in the window carries a device_hash (anonymous, or records before events format 2)")
		}
	} else {
		info.Notes = append(info.Notes, "users, revenue/user and the sample-ratio check n/a: the events table has no device_hash (events format v1)")
	}
	all := groups.label(byDay)
	for i := range dimRows {
		dimRows[i] = groups.label(dimRows[i])
	}
	opts.DimRows = &dimRows
	opts.UserSketch = EventsSketch
	opts.Users = func(k report.UserKey) (float64, bool) {
		v, ok := users[k]
		return v, ok
	}
	for i := range all {
		if err := rows.Check(&all[i]); err != nil {
			return nil, info, fmt.Errorf("clickhouse answer: %w", err)
		}
	}
	info.Elapsed = time.Since(start)
	return all, info, nil
}

// keysSQL lists the keys each summed row counts under (TIME: the time
// column).
var keysSQL = "[('day', toString(toDate(TIME, 'UTC'))), ('country', country), ('os', os), ('format', toString(format))]"

// windowSQL is the time condition of f on column col.
func windowSQL(col string, f Filter) string {
	var c []string
	if !f.From.IsZero() {
		c = append(c, fmt.Sprintf("%s >= toDateTime(%d)", col, f.From.Unix()))
	}
	if !f.To.IsZero() {
		c = append(c, fmt.Sprintf("%s < toDateTime(%d)", col, f.To.Unix()))
	}
	if len(c) == 0 {
		return "1"
	}
	return strings.Join(c, " AND ")
}

// quote is a ClickHouse string literal.
func quote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

func quoteIdentDB(s string) string {
	return "`" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "`", "\\`") + "`"
}

func describe(ctx context.Context, c *ship.Client) (chTables, error) {
	out, err := c.Query(ctx, "SELECT table, name FROM system.columns WHERE database = "+quote(c.T.Database)+" FORMAT TabSeparated")
	if err != nil {
		return nil, err
	}
	t := chTables{}
	err = eachLine(out, 2, func(f []string) error {
		if t[f[0]] == nil {
			t[f[0]] = map[string]bool{}
		}
		t[f[0]][f[1]] = true
		return nil
	})
	return t, err
}

// groupKey is how ClickHouse rows name a group: test index and variant
// (impressions may lack the test id: the edge that counted them did not
// know the set); the id comes from whichever rows carry it.
type groupKey struct {
	env, exp, layer string
	code            uint8
	variant         string
}

type chGroups struct {
	ids    map[groupKey]string
	shares map[groupKey]uint32
	codes  map[[5]string]uint8 // env, experiment, layer, test, variant -> test index
}

func newCHGroups() *chGroups {
	return &chGroups{ids: map[groupKey]string{}, shares: map[groupKey]uint32{}, codes: map[[5]string]uint8{}}
}

func (g *chGroups) learn(k groupKey, test string) {
	if test != "" && k.code != unknownCode {
		g.ids[k] = test
		g.codes[[5]string{k.env, k.exp, k.layer, test, k.variant}] = k.code
	}
}

// code resolves a rollup row's test index: from the decisions, else
// control 0 and the rest by test id from 1 (labels only: the statistics
// do not depend on it).
func (g *chGroups) code(r *abtest.Row, others []abtest.Row) uint8 {
	if c, ok := g.codes[[5]string{r.Env, r.Experiment, r.Layer, r.Test, r.Variant}]; ok {
		return c
	}
	if r.Test == abtest.ControlTest {
		return 0
	}
	var ids []string
	for i := range others {
		if o := &others[i]; o.Env != r.Env || o.Experiment != r.Experiment || o.Layer != r.Layer {
			continue
		}
		if t := others[i].Test; t != abtest.ControlTest && t != abtest.HoldoutTest && !slices.Contains(ids, t) {
			ids = append(ids, t)
		}
	}
	slices.Sort(ids)
	return uint8(min(slices.Index(ids, r.Test)+1, abtest.MaxTests))
}

// label fills each row's test id and share from what was learnt.
func (g *chGroups) label(rs []abtest.Row) []abtest.Row {
	for i := range rs {
		r := &rs[i]
		if r.TestIndex == unknownCode {
			r.TestIndex = g.code(r, rs)
		}
		k := groupKey{r.Env, r.Experiment, r.Layer, r.TestIndex, r.Variant}
		if id, ok := g.ids[k]; ok {
			r.Test = id
		}
		if r.Test == "" && r.TestIndex == 0 {
			r.Test = abtest.ControlTest
		}
		if r.Test == "" {
			r.Test = "test-" + strconv.Itoa(int(r.TestIndex))
		}
		r.ShareBP = g.shares[k]
		if r.Variant == abtest.UnassignedVariant && r.TestIndex == 0 {
			r.ShareBP = 0
		}
	}
	return rs
}

// eachLine splits a TabSeparated answer into exactly n fields a line.
func eachLine(out []byte, n int, f func([]string) error) error {
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		fs := strings.Split(sc.Text(), "\t")
		if len(fs) != n {
			return fmt.Errorf("clickhouse answer line %d: %d columns, want %d", line, len(fs), n)
		}
		for i := range fs {
			fs[i] = unescapeTSV(fs[i])
		}
		if err := f(fs); err != nil {
			return fmt.Errorf("clickhouse answer line %d: %w", line, err)
		}
	}
	return sc.Err()
}

func unescapeTSV(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	return strings.NewReplacer(`\t`, "\t", `\n`, "\n", `\\`, `\`, `\'`, "'", `\0`, "\x00").Replace(s)
}

func parseUint(s string, bits int, what string) (uint64, error) {
	v, err := strconv.ParseUint(s, 10, bits)
	if err != nil {
		return 0, fmt.Errorf("%s %q: not an unsigned integer of %d bits", what, s, bits)
	}
	return v, nil
}

// parseGroup reads env, experiment, test_code, variant, test, shard.
func parseGroup(f []string, withShard bool) (r abtest.Row, k groupKey, err error) {
	code, err := parseUint(f[2], 8, "test_code")
	if err != nil {
		return r, k, err
	}
	if code > abtest.MaxTests && code != unknownCode {
		return r, k, fmt.Errorf("test_code %d, want <= %d", code, abtest.MaxTests)
	}
	r = abtest.Row{Env: f[0], Experiment: f[1], TestIndex: uint8(code), Variant: f[3], Test: f[4],
		LatencyUS: make([]uint64, abtest.NumLatencyBuckets)}
	if r.Env == "" || r.Variant == "" {
		return r, k, errors.New("env and variant are required")
	}
	if withShard {
		sh, err := parseUint(f[5], 8, "shard")
		if err != nil {
			return r, k, err
		}
		if sh >= abtest.Shards {
			return r, k, fmt.Errorf("shard %d, want < %d", sh, abtest.Shards)
		}
		r.Shard = uint8(sh)
	}
	return r, groupKey{r.Env, r.Experiment, "", r.TestIndex, r.Variant}, nil
}

func parseDay(s string) (time.Time, error) {
	d, err := time.Parse("2006-01-02", s)
	if err != nil {
		return d, fmt.Errorf("day %q: want YYYY-MM-DD", s)
	}
	return d, nil
}

// parseSums reads "key type, key, group..., shard, requests, fills,
// errors, impressions, clicks, revenue" lines into rows by key type.
func parseSums(out []byte, g *chGroups) (map[string][]abtest.Row, error) {
	rs := map[string][]abtest.Row{}
	err := eachLine(out, 14, func(f []string) error {
		r, k, err := parseGroup(f[2:], true)
		if err != nil {
			return err
		}
		g.learn(k, r.Test)
		if err := setKey(&r, f[0], f[1]); err != nil {
			return err
		}
		for i, p := range []*uint64{&r.Requests, &r.Fills, &r.Errors, &r.Impressions, &r.Clicks, &r.RevenueMicros} {
			if *p, err = parseUint(f[8+i], 64, "count"); err != nil {
				return err
			}
		}
		rs[f[0]] = append(rs[f[0]], r)
		return nil
	})
	return rs, err
}

// setKey puts a day or a dimension value on a row; dimension rows span
// no particular day (the window's first instant stands in).
func setKey(r *abtest.Row, key, v string) error {
	switch key {
	case "day":
		d, err := parseDay(v)
		if err != nil {
			return err
		}
		r.Start, r.End = d, d.Add(24*time.Hour)
		return nil
	case "country":
		r.Country = v
	case "os":
		r.OS = v
	case "format":
		code, err := parseUint(v, 8, "format")
		if err != nil {
			return err
		}
		r.Format = abtest.FormatLabel(uint8(code)) // a set: "banner+video"
	default:
		return fmt.Errorf("unknown key type %q", key)
	}
	r.Start, r.End = time.Unix(0, 0).UTC(), time.Unix(0, 0).UTC()
	return nil
}

// parseLatency reads "day, group..., shard, 22 bucket counts" lines.
func parseLatency(out []byte, g *chGroups) ([]abtest.Row, error) {
	var rs []abtest.Row
	err := eachLine(out, 7+abtest.NumLatencyBuckets, func(f []string) error {
		r, k, err := parseGroup(f[1:], true)
		if err != nil {
			return err
		}
		g.learn(k, r.Test)
		if err := setKey(&r, "day", f[0]); err != nil {
			return err
		}
		for i := range r.LatencyUS {
			if r.LatencyUS[i], err = parseUint(f[7+i], 64, "latency count"); err != nil {
				return err
			}
		}
		rs = append(rs, r)
		return nil
	})
	return rs, err
}

func parseShares(out []byte, g *chGroups) error {
	return eachLine(out, 6, func(f []string) error {
		_, k, err := parseGroup(f, false)
		if err != nil {
			return err
		}
		g.learn(k, f[4])
		v, err := parseUint(f[5], 32, "share_bp")
		if err != nil {
			return err
		}
		if v > abtest.Slots {
			return fmt.Errorf("share_bp %d, want <= %d", v, abtest.Slots)
		}
		g.shares[k] = uint32(v)
		return nil
	})
}

// EventsSketch is what counts users from the events (and on the hourly
// rollup's path): ClickHouse's uniqCombined at the rows' sketch precision
// (abtest.HLLPrecision, 2^14 registers): exact while small, then a
// HyperLogLog with the rows sketches' error, so the sample-ratio check
// assumes the error the counts have (the default precision, 17, was
// finer than the check assumed). The daily rollup's states are coarser
// (DailySketch).
var EventsSketch = report.UserSketch{Name: "ClickHouse uniqCombined(" + strconv.Itoa(abtest.HLLPrecision) + ") counts of the events' device hashes",
	Precision: abtest.HLLPrecision}

// EventsUsersSQL is EventsSketch's expression.
var EventsUsersSQL = fmt.Sprintf("uniqCombined(%d)(device_hash)", EventsSketch.Precision)

// parseUsers reads "group..., shard or day, users" lines into users,
// keyed as report.UserKey (labels resolved after all answers are in).
func parseUsers(out []byte, key string, g *chGroups, users map[report.UserKey]float64) error {
	type pending struct {
		k     groupKey
		shard int
		day   time.Time
		n     float64
	}
	var ps []pending
	err := eachLine(out, 7, func(f []string) error {
		_, k, err := parseGroup(f, false)
		if err != nil {
			return err
		}
		g.learn(k, f[4])
		p := pending{k: k, shard: -1}
		if key == "shard" {
			sh, err := parseUint(f[5], 8, "shard")
			if err != nil {
				return err
			}
			if sh >= abtest.Shards {
				return fmt.Errorf("shard %d, want < %d", sh, abtest.Shards)
			}
			p.shard = int(sh)
		} else if p.day, err = parseDay(f[5]); err != nil {
			return err
		}
		n, err := parseUint(f[6], 64, "users")
		if err != nil {
			return err
		}
		p.n = float64(n)
		ps = append(ps, p)
		return nil
	})
	if err != nil {
		return err
	}
	for _, p := range ps {
		r := g.label([]abtest.Row{{Env: p.k.env, Experiment: p.k.exp, Layer: p.k.layer, TestIndex: p.k.code, Variant: p.k.variant}})[0]
		uk := report.UserKey{Env: r.Env, Experiment: r.Experiment, Layer: r.Layer, Test: r.Test, Variant: r.Variant, Shard: p.shard, Day: p.day}
		users[uk] += p.n
	}
	return nil
}

// NoteSource puts what the warehouse could not give in every experiment's
// warnings, so text, CSV readers and the page say so.
func NoteSource(rep *report.Report, info CHInfo) {
	notes := slices.Clone(info.Notes)
	slices.Sort(notes)
	for _, er := range rep.Experiments {
		er.Warnings = append(er.Warnings, "from ClickHouse ("+info.Source+")")
		er.Warnings = append(er.Warnings, notes...)
	}
}
