package abreport

import (
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

// The fast path of `abreport --clickhouse` (issue 15): the daily A/B
// rollup ship.DailyTable, a few tens of thousands of rows for a 30-day
// test whatever its event count. Every experiment layer is its own
// report, as from rows files; users come from the rollup's uniqHLL12
// states (merged over days for each shard, over shards for each day),
// p99 latency from its histograms, shares from the decisions (a layer
// after the first: from its entry in the decisions' layers field).

// DailySketch is what counts users on the daily path: the rollup's
// uniqHLL12 states (2^12 registers), merged per shard over days and per
// day over shards. The states are the shipper's (ship.DailyTable's
// schema); their precision is ClickHouse's, fixed by the function.
var DailySketch = report.UserSketch{Name: "ClickHouse uniqHLL12 counts from the " + ship.DailyTable + " rollup's states", Precision: 12}

var dailyCols = []string{"day", "env", "experiment", "layer", "test", "variant", "test_code", "shard", "dim", "value",
	"requests", "fills", "errors", "impressions", "clicks", "revenue_micros", "latency", "share_bp", "users", "version"}

// dailyWindow reports whether f can be answered from daily rows: its
// ends, when set, are UTC midnights.
func dailyWindow(f Filter) bool {
	whole := func(t time.Time) bool { return t.IsZero() || t.UTC().Truncate(24*time.Hour).Equal(t) }
	return whole(f.From) && whole(f.To)
}

func dayWindowSQL(f Filter) string {
	var c []string
	if !f.From.IsZero() {
		c = append(c, "day >= '"+f.From.UTC().Format(time.DateOnly)+"'")
	}
	if !f.To.IsZero() {
		c = append(c, "day < '"+f.To.UTC().Format(time.DateOnly)+"'")
	}
	if len(c) == 0 {
		return "1"
	}
	return strings.Join(c, " AND ")
}

// dailyID names a group as the rollup does (test may be "" on rows of
// impressions from an edge that did not know the set; code is 255 for a
// layer after the first).
type dailyID struct {
	env, exp, layer string
	code            uint8
	variant, test   string
}

type dailyAnswer struct {
	ids    map[dailyID]bool
	sums   []dailyRow
	users  []dailyUsers
	shares map[dailyID]uint32
}

type dailyRow struct {
	id     dailyID
	dim    string
	key    string
	shard  uint8
	counts [6]uint64
	lat    []uint64
}

type dailyUsers struct {
	id    dailyID
	shard int
	day   time.Time
	n     float64
}

func parseDailyID(f []string) (dailyID, error) {
	code, err := parseUint(f[3], 8, "test_code")
	if err != nil {
		return dailyID{}, err
	}
	if code > abtest.MaxTests && code != unknownCode {
		return dailyID{}, fmt.Errorf("test_code %d, want <= %d", code, abtest.MaxTests)
	}
	id := dailyID{env: f[0], exp: f[1], layer: f[2], code: uint8(code), variant: f[4], test: f[5]}
	if id.env == "" || id.variant == "" {
		return id, errors.New("env and variant are required")
	}
	if id.code == unknownCode && id.test == "" {
		return id, errors.New("a row of a later layer without its test id")
	}
	return id, nil
}

func parseShard(s string) (uint8, error) {
	sh, err := parseUint(s, 8, "shard")
	if err != nil {
		return 0, err
	}
	if sh >= abtest.Shards {
		return 0, fmt.Errorf("shard %d, want < %d", sh, abtest.Shards)
	}
	return uint8(sh), nil
}

// parseLatencyArray reads a TabSeparated Array(UInt64): "[1,2,...]" of
// the histogram's buckets, or "[]" (dimension rows).
func parseLatencyArray(s string) ([]uint64, error) {
	if len(s) < 2 || s[0] != '[' || s[len(s)-1] != ']' {
		return nil, fmt.Errorf("latency %q: want [n,...]", s)
	}
	out := make([]uint64, abtest.NumLatencyBuckets)
	if s == "[]" {
		return out, nil
	}
	parts := strings.Split(s[1:len(s)-1], ",")
	if len(parts) != abtest.NumLatencyBuckets {
		return nil, fmt.Errorf("latency has %d buckets, want %d", len(parts), abtest.NumLatencyBuckets)
	}
	for i, p := range parts {
		v, err := parseUint(p, 64, "latency count")
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

func (a *dailyAnswer) parseSums(out []byte) error {
	return eachLine(out, 16, func(f []string) error {
		id, err := parseDailyID(f[2:])
		if err != nil {
			return err
		}
		r := dailyRow{id: id, dim: f[0], key: f[1]}
		if r.dim != "" && !slices.Contains(abtest.DimNames[:], r.dim) {
			return fmt.Errorf("dim %q", r.dim)
		}
		if r.shard, err = parseShard(f[8]); err != nil {
			return err
		}
		for i := range r.counts {
			if r.counts[i], err = parseUint(f[9+i], 64, "count"); err != nil {
				return err
			}
		}
		if r.lat, err = parseLatencyArray(f[15]); err != nil {
			return err
		}
		a.ids[id] = true
		a.sums = append(a.sums, r)
		return nil
	})
}

func (a *dailyAnswer) parseUsers(out []byte, byShard bool) error {
	return eachLine(out, 8, func(f []string) error {
		id, err := parseDailyID(f)
		if err != nil {
			return err
		}
		u := dailyUsers{id: id, shard: -1}
		if byShard {
			sh, err := parseShard(f[6])
			if err != nil {
				return err
			}
			u.shard = int(sh)
		} else if u.day, err = parseDay(f[6]); err != nil {
			return err
		}
		n, err := parseUint(f[7], 64, "users")
		if err != nil {
			return err
		}
		u.n = float64(n)
		a.ids[id] = true
		a.users = append(a.users, u)
		return nil
	})
}

func (a *dailyAnswer) parseShares(out []byte) error {
	return eachLine(out, 7, func(f []string) error {
		id, err := parseDailyID(f)
		if err != nil {
			return err
		}
		v, err := parseUint(f[6], 32, "share_bp")
		if err != nil {
			return err
		}
		if v > abtest.Slots {
			return fmt.Errorf("share_bp %d, want <= %d", v, abtest.Slots)
		}
		a.ids[id] = true
		a.shares[id] = max(a.shares[id], uint32(v))
		return nil
	})
}

// group is a rollup id's report group: (test id, variant, test index).
type dailyGroup struct {
	env, exp, layer, test, variant string
	code                           uint8
}

// resolve names every id's group: a missing test id from the rows of
// the same (layer, code, variant) that have it; a later layer's test
// index from the first-layer rows of the same test when there are any,
// else control and the holdout 0 and the tests by id from 1 (labels
// only: the statistics do not depend on them).
func (a *dailyAnswer) resolve() map[dailyID]dailyGroup {
	type ck struct {
		env, exp, layer string
		code            uint8
		variant         string
	}
	named := map[ck]string{}
	codes := map[[5]string]uint8{}
	tests := map[[3]string][]string{}
	for id := range a.ids {
		if id.test != "" && id.code != unknownCode {
			named[ck{id.env, id.exp, id.layer, id.code, id.variant}] = id.test
			codes[[5]string{id.env, id.exp, id.layer, id.test, id.variant}] = id.code
		}
	}
	testOf := func(id dailyID) string {
		if id.test != "" {
			return id.test
		}
		if t, ok := named[ck{id.env, id.exp, id.layer, id.code, id.variant}]; ok {
			return t
		}
		switch {
		case id.code == 0 && id.variant == abtest.HoldoutTest:
			return abtest.HoldoutTest
		case id.code == 0:
			return abtest.ControlTest
		}
		return "test-" + strconv.Itoa(int(id.code))
	}
	for id := range a.ids {
		t := testOf(id)
		k := [3]string{id.env, id.exp, id.layer}
		if t != abtest.ControlTest && t != abtest.HoldoutTest && !slices.Contains(tests[k], t) {
			tests[k] = append(tests[k], t)
		}
	}
	for _, ts := range tests {
		slices.Sort(ts)
	}
	out := map[dailyID]dailyGroup{}
	for id := range a.ids {
		t := testOf(id)
		code := id.code
		if code == unknownCode {
			if c, ok := codes[[5]string{id.env, id.exp, id.layer, t, id.variant}]; ok {
				code = c
			} else if t == abtest.ControlTest || t == abtest.HoldoutTest {
				code = 0
			} else {
				code = uint8(min(slices.Index(tests[[3]string{id.env, id.exp, id.layer}], t)+1, abtest.MaxTests))
			}
		}
		out[id] = dailyGroup{id.env, id.exp, id.layer, t, id.variant, code}
	}
	return out
}

// sumRows adds up the rows of one (dimension, day or value, group,
// shard): a dimension value's rows of every day in the window.
func sumRows(in []dailyRow) []dailyRow {
	type k struct {
		dim, key string
		id       dailyID
		shard    uint8
	}
	at := map[k]int{}
	var out []dailyRow
	for _, r := range in {
		kk := k{r.dim, r.key, r.id, r.shard}
		i, ok := at[kk]
		if !ok {
			at[kk] = len(out)
			out = append(out, r)
			continue
		}
		o := &out[i]
		for j := range o.counts {
			o.counts[j] += r.counts[j]
		}
		for j := range o.lat {
			o.lat[j] += r.lat[j]
		}
	}
	return out
}

// loadDaily is LoadClickHouse from ship.DailyTable.
func loadDaily(ctx context.Context, c *ship.Client, f Filter, opts *report.Options, info *CHInfo) ([]abtest.Row, error) {
	// Sums need FINAL (a day rebuilt twice has two versions of its rows
	// until they merge). Users and shares do not: a union of distinct
	// devices and a maximum are the same over a duplicated state, and an
	// older version of a day saw a subset of what the newest saw. FINAL
	// through the user states costs more than the rest of the report.
	tab := quoteIdentDB(c.T.Database) + "." + ship.DailyTable
	final := tab + " FINAL"
	cond := dayWindowSQL(f)
	if f.Env != "" {
		cond += " AND env = " + quote(f.Env)
	}
	grp := "env, experiment, layer, test_code, variant, test"
	a := &dailyAnswer{ids: map[dailyID]bool{}, shares: map[dailyID]uint32{}}
	for _, q := range []struct {
		sql   string
		parse func([]byte) error
	}{
		// The rows as stored (~77,000 for a 30-day test): the dimension
		// rows' days are summed here, cheaper than a GROUP BY there.
		{`SELECT dim, if(dim = '', toString(day), value), ` + grp + `, shard,
    requests, fills, errors, impressions, clicks, revenue_micros, latency
FROM ` + final + ` WHERE ` + cond + ` FORMAT TabSeparated`, a.parseSums},
		{`SELECT ` + grp + `, shard, uniqHLL12Merge(users) FROM ` + tab + ` WHERE dim = '' AND ` + cond +
			` GROUP BY ` + grp + `, shard FORMAT TabSeparated`, func(b []byte) error { return a.parseUsers(b, true) }},
		{`SELECT ` + grp + `, toString(day), uniqHLL12Merge(users) FROM ` + tab + ` WHERE dim = '' AND ` + cond +
			` GROUP BY ` + grp + `, day FORMAT TabSeparated`, func(b []byte) error { return a.parseUsers(b, false) }},
		{`SELECT ` + grp + `, max(share_bp) FROM ` + tab + ` WHERE dim = '' AND ` + cond +
			` GROUP BY ` + grp + ` FORMAT TabSeparated`, a.parseShares},
	} {
		out, err := c.Query(ctx, q.sql)
		info.Queries++
		if err != nil {
			return nil, err
		}
		if err := q.parse(out); err != nil {
			return nil, err
		}
	}
	a.sums = sumRows(a.sums)
	groups := a.resolve()
	shares := map[dailyGroup]uint32{}
	for id, v := range a.shares {
		g := groups[id]
		shares[g] = max(shares[g], v)
	}
	mk := func(id dailyID) abtest.Row {
		g := groups[id]
		r := abtest.Row{Env: g.env, Experiment: g.exp, Layer: g.layer, Test: g.test, Variant: g.variant, TestIndex: g.code,
			ShareBP: shares[g]}
		if g.variant == abtest.UnassignedVariant && g.test == abtest.ControlTest {
			r.ShareBP = 0
		}
		return r
	}
	var all []abtest.Row
	var dims [3][]abtest.Row
	noShare := map[string]bool{}
	for _, d := range a.sums {
		r := mk(d.id)
		r.Shard = d.shard
		r.Requests, r.Fills, r.Errors, r.Impressions, r.Clicks, r.RevenueMicros = d.counts[0], d.counts[1], d.counts[2], d.counts[3], d.counts[4], d.counts[5]
		r.LatencyUS = d.lat
		if d.dim == "" {
			if err := setKey(&r, "day", d.key); err != nil {
				return nil, fmt.Errorf("clickhouse answer: %w", err)
			}
			if r.ShareBP == 0 && r.Variant != abtest.UnassignedVariant {
				noShare[r.Layer] = true
			}
			all = append(all, r)
			continue
		}
		di := slices.Index(abtest.DimNames[:], d.dim)
		if err := setKey(&r, d.dim, d.key); err != nil {
			return nil, fmt.Errorf("clickhouse answer: %w", err)
		}
		dims[di] = append(dims[di], r)
	}
	users := map[report.UserKey]float64{}
	for _, u := range a.users {
		g := groups[u.id]
		users[report.UserKey{Env: g.env, Experiment: g.exp, Layer: g.layer, Test: g.test, Variant: g.variant, Shard: u.shard, Day: u.day}] += u.n
	}
	if len(users) == 0 && len(all) > 0 {
		info.Notes = append(info.Notes, "users, revenue/user and the sample-ratio check n/a: no decision in the window carries a device_hash (anonymous, or records before events format 2)")
	}
	for l := range noShare {
		info.Notes = append(info.Notes, fmt.Sprintf("sample-ratio check of layer %q n/a: its decisions carry no share (records before events format 2, or layers fields without shares)", l))
	}
	opts.DimRows = &dims
	opts.UserSketch = DailySketch
	opts.Users = func(k report.UserKey) (float64, bool) {
		v, ok := users[k]
		return v, ok
	}
	for i := range all {
		if err := rows.Check(&all[i]); err != nil {
			return nil, fmt.Errorf("clickhouse answer: %w", err)
		}
	}
	return all, nil
}
